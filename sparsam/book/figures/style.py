"""What every figure of the book shares: its colours and labels, one panel with its legend below it, and the
two ways an interval over seeds is drawn, error bars (:func:`interval_errorbar`) and a band around a line
(:func:`band`, :func:`curve_band`); a point or a line with no interval (one seed) is drawn plain and its label
says so (:data:`NO_INTERVAL`)."""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from ..records import summarize
from ..stats import PREMISE_NOT_SHOWN


INTERVAL = "mean, 95% interval over seeds"
NO_INTERVAL = "one seed: no interval"
STATUS_COLORS = {"reproduced": "tab:green", "not reproduced": "tab:red", "inconclusive": "0.5",
                 PREMISE_NOT_SHOWN: "tab:orange"}
NETWORK_COLORS = {"sgd": "tab:red", "sam": "tab:gray", "ssam": "tab:blue", "ssamd": "tab:orange"}


def panel(ax: Axes | None, size: tuple[float, float] = (6.4, 4.2)) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new figure of ``size`` (inches) with one panel."""
    if ax is None:
        fig, ax = plt.subplots(figsize=size, layout="constrained")
        return fig, ax
    return ax.figure, ax


def legend_below(fig: Figure, ax: Axes | None = None, ncol: int = 3, **extra: Any) -> None:
    """The legend of ``ax`` (or of every panel) under the panels, never over the data."""
    handles, labels = (ax or fig.axes[0]).get_legend_handles_labels()
    if ax is None:
        seen = dict(zip(labels, handles))
        for other in fig.axes[1:]:
            for h, lab in zip(*other.get_legend_handles_labels()):
                seen.setdefault(lab, h)
        labels, handles = list(seen), list(seen.values())
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=8, frameon=False, **extra)


def interval_errorbar(ax: Axes, x: Sequence[float], mean: Sequence[float], low: Sequence[float],
                      high: Sequence[float], *, label: str | None = None, horizontal: bool = False,
                      interval: str = "over seeds", **style: Any) -> list[Any]:
    """Points at ``mean`` with bars from ``low`` to ``high`` (vertical bars at ``x``, or horizontal
    ones at height ``x`` with ``horizontal=True``); points whose interval is NaN are plain markers.

    The legend label gets ``"(mean, 95% interval over seeds)"`` (``interval`` names where the
    interval comes from) or ``"(one seed: no interval)"`` (both parts when some points have an
    interval and others do not). Returns the drawn artists.
    """
    x, mean, low, high = (np.asarray(v, dtype=float) for v in (x, mean, low, high))
    if not (x.shape == mean.shape == low.shape == high.shape):
        raise ValueError(f"x, mean, low and high must have one shape, got {x.shape}, {mean.shape}, {low.shape}, "
                         f"{high.shape}")
    has = np.isfinite(low) & np.isfinite(high)
    style = {"marker": "o", "linestyle": "none", **style}
    artists = []
    if has.any():
        error = np.vstack([mean[has] - low[has], high[has] - mean[has]])
        xy = (mean[has], x[has]) if horizontal else (x[has], mean[has])
        artists.append(ax.errorbar(*xy, **({"xerr": error} if horizontal else {"yerr": error}), capsize=4,
                                   label=None if label is None else f"{label} (mean, 95% interval {interval})",
                                   **style))
    if (~has).any():
        if artists:  # the same series: same colour, open marker
            style = {**style, "color": artists[0].lines[0].get_color(), "markerfacecolor": "white"}
        xy = (mean[~has], x[~has]) if horizontal else (x[~has], mean[~has])
        artists.extend(ax.plot(*xy, label=None if label is None else f"{label} ({NO_INTERVAL})", **style))
    return artists


def reference_band(ax: Axes, row: pd.Series, label: str, color: Any) -> None:
    """A reference's mean (``row``: ``mean, low, high``) as a dashed line across the panel, its interval shaded."""
    ax.axhline(row["mean"], color=color, linestyle="--", linewidth=1.2,
               label=f"{label} ({INTERVAL if np.isfinite(row['low']) else NO_INTERVAL})")
    if np.isfinite(row["low"]):
        ax.axhspan(row["low"], row["high"], color=color, alpha=0.15, linewidth=0)


def band(ax: Axes, x: ArrayLike, mean: ArrayLike, low: ArrayLike, high: ArrayLike, **style: Any) -> None:
    """``mean`` at ``x`` as a line (``style`` goes to it), the interval from ``low`` to ``high`` as a band of its
    colour where there is one (none for one seed: NaN bounds)."""
    ax.plot(x, mean, **style)
    bottom, top = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if np.isfinite(bottom).any():
        ax.fill_between(x, bottom, top, color=style.get("color"), alpha=0.2, linewidth=0)


def curve_band(ax: Axes, rows: pd.DataFrame, value: str, level: float = 0.95, *, by: str = "epoch",
               **style: Any) -> None:
    """A training curve: the mean over seeds of ``value`` at each ``by`` of ``rows`` (e.g. one method's rows of
    :func:`sparsam.book.records.metrics_frame`) as a line, its t-interval over seeds at ``level`` as a band
    (:func:`sparsam.book.records.summarize`, :func:`band`); ``style`` goes to the line."""
    summary = summarize(rows, by, value, level).dropna(subset=["mean"])
    band(ax, summary[by], summary["mean"], summary["low"], summary["high"], **style)


def message_figure(text: str) -> Figure:
    """A figure that says why there is nothing to draw (e.g. no chapter has saved its claims yet)."""
    fig, ax = plt.subplots(figsize=(8, 1.5))
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.axis("off")
    return fig
