"""Accuracy figures: accuracy against sparsity with the references' bands (chapter 3) and top-1 accuracy per
method against chance (chapter 5)."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ...experiment.config import OPTIMIZER_NAMES
from ..records import summarize
from .style import interval_errorbar, legend_below, panel, reference_band


DODGE = 0.006  # horizontal offset between series at one sparsity


def accuracy_vs_sparsity(frame: pd.DataFrame, *, methods: Sequence[str] = ("ssam-f", "ssam-d"),
                         references: Sequence[str] = ("sam", "sgd"), series: str = "optimizer",
                         value: str = "final_test_acc", level: float = 0.95, ax: Axes | None = None,
                         title: str | None = None) -> Figure:
    """Accuracy against sparsity, one line per ``series`` value among ``methods``, references as
    dashed lines with shaded intervals; series at one sparsity are offset by :data:`DODGE`.

    ``frame`` is a :func:`sparsam.book.records.records_frame` (filtered to one setting by the caller);
    the intervals are over its seeds.
    """
    fig, ax = panel(ax)
    colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for name in references:
        rows = frame[frame["optimizer"] == name]
        if len(rows):
            row = summarize(rows, "optimizer", value, level).iloc[0]
            reference_band(ax, row, OPTIMIZER_NAMES.get(name, name), next(colors))
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
    if title is not None:
        ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    legend_below(fig, ax, ncol=2)
    return fig


def accuracy_by_method(summary: pd.DataFrame, chance: float, title: str) -> Figure:
    """Notebook 5: top-1 accuracy per method (``summary``: ``method, mean, low, high``), 95% intervals
    over seeds, with the chance level as a reference line."""
    fig, ax = panel(None, (6.0, 4.6))
    interval_errorbar(ax, range(len(summary)), summary["mean"], summary["low"], summary["high"],
                      label="top-1 accuracy", color="tab:blue")
    ax.set_xticks(range(len(summary)), summary["method"])
    ax.axhline(chance, color="tab:red", linestyle=":", label=f"chance ({chance:g} %)")
    ax.set(xlabel="optimizer", ylabel="top-1 accuracy (%)")
    ax.set_title(title, fontsize="medium")
    ax.grid(axis="y", alpha=0.3)
    legend_below(fig, ax, ncol=2)
    return fig
