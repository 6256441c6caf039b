"""Training curves against epoch, one line per method with its band over seeds: two panels (chapters 3 and 5), or
small multiples of one row per candidate and one column per metric (chapter 9)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .style import INTERVAL, NO_INTERVAL, curve_band, legend_below


CURVE_AXES = {"test_acc": "test accuracy (%, clean labels)", "train_acc": "training accuracy (%, on its labels)",
              "train_loss": "training loss (cross-entropy, nats)"}


def training_curves(curves: pd.DataFrame, level: float = 0.95, title: str | None = None) -> Figure:
    """Notebook 3: training loss and test accuracy against epoch, one line per ``method`` (mean over
    seeds, 95% t-interval band where there are several seeds). ``curves``: rows of
    :func:`sparsam.book.records.metrics_frame` with a ``method`` column; ``title`` (e.g. the runs' scale)
    above both panels."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    if title is not None:
        fig.suptitle(title, fontsize="medium")
    colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for method in curves["method"].dropna().unique():
        color = next(colors)
        for ax, value in zip(axes, ("train_loss", "test_acc")):
            curve_band(ax, curves[curves["method"] == method], value, level, marker=".", color=color, label=method)
    axes[0].set(xlabel="epoch", ylabel="training loss (cross-entropy, nats)")
    axes[1].set(xlabel="epoch", ylabel="test accuracy (%)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    runs = curves.groupby("method")["run_id"].nunique() if "run_id" in curves else pd.Series(dtype=int)
    title = (INTERVAL if len(runs) and (runs > 1).all() else NO_INTERVAL if not (runs > 1).any()
             else f"{INTERVAL} (band); a line without a band: {NO_INTERVAL}")
    legend_below(fig, axes[0], ncol=4, title=title)
    return fig


def curves_grid(curves: pd.DataFrame, values: Sequence[str] = ("test_acc", "train_acc"), *, row: str = "candidate",
                row_titles: Mapping[Any, str] | None = None, references: Mapping[str, tuple[float, str]] | None = None,
                level: float = 0.95) -> Figure:
    """Small multiples of training curves: one row of panels per value of ``curves[row]`` (e.g. a pilot's
    candidates), one column per metric of ``values``, one line per ``method`` (mean over seeds at each epoch where
    the metric was recorded, 95% t-interval band over seeds), shared x axes and one colour per method in every
    panel; ``references``: per metric, a dashed horizontal line (value, label), e.g. the fraction of correct
    training labels. ``curves``: rows of :func:`sparsam.book.records.metrics_frame` with ``method`` and ``row``."""
    keys = list(dict.fromkeys(curves[row]))
    if not keys:
        raise ValueError(f"curves has no rows with a {row!r}")
    methods = list(dict.fromkeys(curves["method"]))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {m: palette[i % len(palette)] for i, m in enumerate(methods)}
    fig, axes = plt.subplots(len(keys), len(values), figsize=(5.2 * len(values), 3.4 * len(keys)), sharex=True,
                             squeeze=False, layout="constrained")
    for i, key in enumerate(keys):
        for j, value in enumerate(values):
            ax = axes[i, j]
            for method in methods:
                part = curves[(curves[row] == key) & (curves["method"] == method)].dropna(subset=[value])
                if part.empty:
                    continue
                curve_band(ax, part, value, level, color=colors[method], label=method)
            if references and value in references:
                level_at, label = references[value]
                ax.axhline(level_at, color="0.4", linestyle="--", linewidth=0.9, label=label)
            ax.set(ylabel=CURVE_AXES.get(value, value), title=(row_titles or {}).get(key, f"{row} {key}"))
            ax.grid(alpha=0.3)
            if i == len(keys) - 1:
                ax.set_xlabel("epoch")
    legend_below(fig, ncol=len(methods) + 1, title=INTERVAL + " (band)")
    return fig
