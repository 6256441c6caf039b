"""Figures of the book, drawn from run records and verdicts: intervals everywhere, single runs marked.

Every interval is the 95% t-interval over seeds of :func:`sparsam.book.records.summarize` (or of
:func:`sparsam.book.stats.compare`) and the legends say so; a point with no interval (one seed) is
drawn as a plain marker and labelled "no interval". Each function returns its figure.
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

from ..experiment.config import OPTIMIZER_NAMES
from .records import pareto_front, summarize

INTERVAL = "mean, 95% interval over seeds"
NO_INTERVAL = "one seed: no interval"
DODGE = 0.006  # horizontal offset between series at one sparsity
STATUS_COLORS = {"reproduced": "tab:green", "not reproduced": "tab:red", "inconclusive": "0.5"}
UNIT_AXES = {"pp": "difference method − reference (percentage points)",
             "ratio": "ratio method / reference (log scale)"}
RATIO_TICKS = (0.1, 0.2, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 5.0, 10.0)  # labelled ratios of the claims figure


def _figure(ax: Axes | None, size: tuple[float, float] = (6.4, 4.2)) -> tuple[Figure, Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=size, layout="constrained")
        return fig, ax
    return ax.figure, ax


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


def _reference_band(ax: Axes, row: pd.Series, label: str, color: Any) -> None:
    ax.axhline(row["mean"], color=color, linestyle="--", linewidth=1.2,
               label=f"{label} ({INTERVAL if np.isfinite(row['low']) else NO_INTERVAL})")
    if np.isfinite(row["low"]):
        ax.axhspan(row["low"], row["high"], color=color, alpha=0.15, linewidth=0)


def accuracy_vs_sparsity(frame: pd.DataFrame, *, methods: Sequence[str] = ("ssam-f", "ssam-d"),
                         references: Sequence[str] = ("sam", "sgd"), series: str = "optimizer",
                         value: str = "final_test_acc", level: float = 0.95, ax: Axes | None = None) -> Figure:
    """Accuracy against sparsity, one line per ``series`` value among ``methods``, references as
    dashed lines with shaded intervals; series at one sparsity are offset by :data:`DODGE`.

    ``frame`` is a :func:`sparsam.book.records.records_frame` (filtered to one setting by the caller);
    the intervals are over its seeds.
    """
    fig, ax = _figure(ax)
    colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for name in references:
        rows = frame[frame["optimizer"] == name]
        if len(rows):
            row = summarize(rows, "optimizer", value, level).iloc[0]
            _reference_band(ax, row, OPTIMIZER_NAMES.get(name, name), next(colors))
    present = [name for name in methods if (frame[series] == name).any()]
    for i, name in enumerate(present):
        summary = summarize(frame[frame[series] == name], "sparsity", value, level).sort_values("sparsity")
        x = summary["sparsity"] + DODGE * (i - (len(present) - 1) / 2)  # side by side, not on top of each other
        color = next(colors)
        ax.plot(x, summary["mean"], color=color, linewidth=1, alpha=0.6)
        interval_errorbar(ax, x, summary["mean"], summary["low"], summary["high"],
                          label=OPTIMIZER_NAMES.get(name, str(name)), color=color)
    ax.set_xlabel("sparsity s (fraction of parameters not perturbed)")
    ax.set_ylabel("test accuracy (%)" if "acc" in value else value)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _claim_bounds(row: pd.Series) -> tuple[float, float, float, float]:
    """diff, low, high and the margin's boundary of a verdict row, on the axis of its unit."""
    sign = 1.0 if row["better"] == "higher" else -1.0
    values = np.array([row["diff"], row["low"], row["high"], -sign * row["margin"]], dtype=float)
    return tuple(np.exp(values) if row["unit"] == "ratio" else values)


def claims_figure(verdicts_frame: pd.DataFrame) -> Figure:
    """The reproduction page's summary: each claim's interval, its margin and its status.

    ``verdicts_frame`` has one row per claim, as :func:`sparsam.book.stats.verdicts_frame` builds it
    (columns ``claim, status, diff, low, high, n, test, margin, better, unit``). Claims in
    percentage points, in ratios (log axis) and in any other unit get one panel per unit.
    """
    if verdicts_frame.empty:
        raise ValueError("verdicts_frame holds no claims")
    units = list(dict.fromkeys(verdicts_frame["unit"]))
    heights = [max(1, int((verdicts_frame["unit"] == u).sum())) for u in units]
    fig, axes = plt.subplots(len(units), 1, figsize=(8, 1.2 + 0.55 * sum(heights) + 0.6 * len(units)),
                             height_ratios=heights, layout="constrained", squeeze=False)
    for ax, unit in zip(axes[:, 0], units):
        rows = verdicts_frame[verdicts_frame["unit"] == unit].reset_index(drop=True)
        y = np.arange(len(rows))[::-1]
        for yi, (_, row) in zip(y, rows.iterrows()):
            diff, low, high, boundary = _claim_bounds(row)
            color = STATUS_COLORS.get(row["status"], "black")
            if np.isfinite(low):
                ax.errorbar(diff, yi, xerr=[[diff - low], [high - diff]], fmt="o", color=color, capsize=4)
            elif np.isfinite(diff):
                ax.plot(diff, yi, "o", color=color, markerfacecolor="white")
            if row["test"] == "non-inferiority":
                ax.plot([boundary, boundary], [yi - 0.35, yi + 0.35], color="tab:red", linewidth=2)
        ax.axvline(1.0 if unit == "ratio" else 0.0, color="black", linewidth=0.8)
        if unit == "ratio":
            ax.set_xscale("log")
            low, high = ax.get_xlim()  # a few round ratios inside the data's range, labelled; no crowding
            ticks = [t for t in RATIO_TICKS if low <= t <= high] or [1.0]
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks(y, [f"{c}\n{s} (n = {n})" for c, s, n in zip(rows["claim"], rows["status"], rows["n"])],
                      fontsize=8)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xlabel(UNIT_AXES.get(unit, f"difference method − reference ({unit})" if unit else
                                    "difference method − reference"))
        ax.grid(alpha=0.3, axis="x")
    handles = [Line2D([], [], marker="o", color=c, linestyle="none", label=s) for s, c in STATUS_COLORS.items()]
    handles += [Line2D([], [], marker="o", color="0.3", linestyle="-", label="mean paired difference, 95% interval"),
                Line2D([], [], marker="o", color="0.3", markerfacecolor="white", linestyle="none",
                       label="fewer than two seeds: no interval"),
                Line2D([], [], color="tab:red", linewidth=2, label="non-inferiority margin")]
    axes[0, 0].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def pareto(frame: pd.DataFrame, ax: Axes | None = None, *, budget: float | None = None,
           front: bool = False) -> Figure:
    """Accuracy (mean, 95% interval over seeds) against measured cost per step in SGD steps.

    ``frame``: one row per method with ``label``, ``cost`` (seconds per step / SGD's), ``mean``,
    ``low``, ``high`` and optionally ``cost_low``/``cost_high`` (drawn as horizontal bars), as
    :func:`sparsam.book.records.cost_summary` builds it. ``budget``: a vertical line at that cost;
    ``front``: a line through the Pareto front of the means (:func:`sparsam.book.records.pareto_front`).
    """
    missing = sorted({"label", "cost", "mean", "low", "high"} - set(frame.columns))
    if missing:
        raise ValueError(f"frame lacks the columns {missing}")
    fig, ax = _figure(ax)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^vP*Xhp<>"
    for i, (_, row) in enumerate(frame.iterrows()):
        style = {"color": colors[i % len(colors)], "marker": markers[i // len(colors) % len(markers)]}
        interval_errorbar(ax, [row["cost"]], [row["mean"]], [row["low"]], [row["high"]], label=str(row["label"]),
                          **style)
        if np.isfinite(row.get("cost_low", np.nan)) and np.isfinite(row.get("cost_high", np.nan)):
            ax.errorbar([row["cost"]], [row["mean"]], xerr=[[row["cost"] - row["cost_low"]],
                                                            [row["cost_high"] - row["cost"]]],
                        color=style["color"], capsize=3, linestyle="none", linewidth=0.8)
    if front and len(frame):
        on = frame[pareto_front(frame)].sort_values("cost")
        ax.step(on["cost"], on["mean"], where="post", color="k", linewidth=0.8, alpha=0.6,
                label="Pareto front of the means")
    if budget is not None:
        ax.axvline(budget, color="tab:red", linestyle=":", linewidth=1.2, label=f"{budget:g} SGD steps")
    ax.set_xlabel("measured cost per training step (SGD steps)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
