"""Cost figures: accuracy against measured cost per step with its Pareto front (chapters 3 and 8), FLOPs and
wall time per step against SGD's, the Fisher mask's cost and the ideal against the measured cost of a mask
(chapter 4), FLOPs and seconds per step per method (chapter 5)."""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..records import pareto_front
from .style import NO_INTERVAL, interval_errorbar, legend_below, panel


def pareto(frame: pd.DataFrame, ax: Axes | None = None, *, budget: float | None = None,
           front: bool = False, xlabel: str = "measured cost per training step (SGD steps)",
           title: str | None = None) -> Figure:
    """Accuracy (mean, 95% interval over seeds) against measured cost per step in SGD steps.

    ``frame``: one row per method with ``label``, ``cost`` (seconds per step / SGD's), ``mean``,
    ``low``, ``high`` and optionally ``cost_low``/``cost_high`` (drawn as horizontal bars), as
    :func:`sparsam.book.records.cost_summary` builds it. ``budget``: a vertical line at that cost;
    ``front``: a line through the Pareto front of the means (:func:`sparsam.book.records.pareto_front`);
    ``xlabel`` names what the cost measures.
    """
    missing = sorted({"label", "cost", "mean", "low", "high"} - set(frame.columns))
    if missing:
        raise ValueError(f"frame lacks the columns {missing}")
    fig, ax = panel(ax, (9.0, 6.5) if len(frame) > 6 else (6.4, 4.2))  # room for a long legend below
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
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    if title is not None:
        ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    legend_below(fig, ax, ncol=2 if len(frame) <= 6 else 3)
    return fig


def flops_vs_sparsity(curves: pd.DataFrame, sam: float, title: str) -> Figure:
    """Notebook 4: FLOPs of a step per SGD step against sparsity, one series per mask rule (``curves``:
    ``mask, sparsity, mean, low, high`` as :func:`sparsam.book.records.summarize` gives them), with SAM's
    cost (``sam``) and SGD's (1) as reference lines. With an ``accounting`` column
    (:data:`sparsam.book.efficiency.ACCOUNTINGS`), one panel per accounting, in the order of the rows, one colour
    per mask rule across the panels, the y axis shared."""
    panels = list(dict.fromkeys(curves["accounting"])) if "accounting" in curves.columns else [None]
    fig, axes = plt.subplots(1, len(panels), figsize=(7.2 if len(panels) == 1 else 3.4 * len(panels), 4.8),
                             sharey=True, squeeze=False, layout="constrained")
    colours = {mask: f"C{k}" for k, mask in enumerate(dict.fromkeys(curves["mask"]))}
    for ax, panel in zip(axes[0], panels):
        shown = curves if panel is None else curves[curves["accounting"] == panel]
        for mask, curve in shown.groupby("mask", sort=False):
            ax.plot(curve["sparsity"], curve["mean"], linewidth=1, color=colours[mask])
            interval_errorbar(ax, curve["sparsity"], curve["mean"], curve["low"], curve["high"],
                              label=mask if panel is not None else f"sparse ascent, {mask}", color=colours[mask])
        ax.axhline(sam, color="k", ls="--", label="SAM and explicit SSAM as the official code runs it (any mask)")
        ax.axhline(1.0, color="gray", ls=":", label="SGD")
        ax.set(xlabel="sparsity s (fraction not perturbed)")
        if panel is not None:
            ax.set_title(panel, fontsize="medium")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("FLOPs per step / FLOPs of an SGD step")
    fig.suptitle(title, fontsize="medium")
    legend_below(fig, None if len(panels) > 1 else axes[0][0], ncol=2)
    return fig


def step_times(summary: pd.DataFrame, title: str) -> Figure:
    """Notebook 4: wall time per step of each method per SGD step (``summary`` indexed by method, with
    ``mean, low, high``), horizontal 95% intervals over seeds, SGD (1) and SAM as reference lines."""
    fig, ax = panel(None, (7.2, 0.45 * len(summary) + 2.2))
    interval_errorbar(ax, range(len(summary)), summary["mean"], summary["low"], summary["high"], horizontal=True,
                      label="step time / SGD step", color="tab:blue")
    ax.set_yticks(range(len(summary)), summary.index)
    ax.axvline(1.0, color="gray", ls=":", label="SGD")
    if "SAM" in summary.index:
        ax.axvline(summary.loc["SAM", "mean"], color="k", ls="--", lw=0.8, label="SAM (mean)")
    ax.invert_yaxis()
    ax.set_xlabel("wall time per step / wall time of an SGD step")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3, axis="x")
    legend_below(fig, ax, ncol=3)
    return fig


def fisher_times(times: pd.DataFrame, title: str) -> Figure:
    """Notebook 4: seconds per Fisher-mask update against N_F (``times`` indexed by N_F, one column per
    way of computing it; a column named "limit: ..." is drawn dotted). One measurement each: no interval."""
    fig, ax = panel(None, (7.2, 4.4))
    for column in times.columns:
        ax.plot(times.index, times[column], marker="o", ls=":" if str(column).startswith("limit") else "-",
                label=f"{column} ({NO_INTERVAL.replace('one seed', 'one measurement')})")
    ax.set(xlabel="N_F (samples per Fisher estimate)", ylabel="seconds per mask update")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    legend_below(fig, ax, ncol=2)
    return fig


def ideal_vs_measured(rows: pd.DataFrame, title: str,
                      rules: Mapping[str, str] = {"fisher": "papers' rule", "cost-aware": "cost-aware",
                                                  "top blocks": "top blocks only"}) -> Figure:
    """Notebook 4, a benchmark table: measured sparse-ascent step time per SGD step (``ratio_to_sgd``)
    against the ideal cost of its mask (``ideal_seconds_ratio``), one marker per mask rule (the end of
    ``config``), with the line measured = ideal and a band up to 10% above it."""
    fig, ax = panel(None, (6.8, 4.6))
    for (rule, name), marker in zip(rules.items(), "os^vD"):
        pick = rows[rows["config"].str.endswith(rule)]
        ax.scatter(pick["ideal_seconds_ratio"], pick["ratio_to_sgd"], marker=marker, label=f"{name} (one measurement)")
    lims = [float(rows["ideal_seconds_ratio"].min()) * 0.95, float(rows["ratio_to_sgd"].max()) * 1.05]
    ax.plot(lims, lims, color="gray", ls=":", label="measured = ideal")
    ax.fill_between(lims, lims, [1.1 * v for v in lims], color="gray", alpha=0.15, label="within 10% of ideal")
    ax.set(xlabel="ideal cost of the mask (per-layer times it cannot skip) / SGD step",
           ylabel="measured sparse-ascent step / SGD step")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    legend_below(fig, ax, ncol=2)
    return fig


def cost_by_method(gflops: pd.Series, seconds: pd.DataFrame, batch: int) -> Figure:
    """Notebook 5: (a) GFLOPs of one training step per method (``gflops``, counted once: no interval);
    (b) seconds per step (``seconds``: ``method, mean, low, high``), 95% intervals over seeds."""
    fig, (ax_flops, ax_time) = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
    ax_flops.bar(list(gflops.index), gflops.to_numpy(), color="tab:gray")
    interval_errorbar(ax_time, range(len(seconds)), seconds["mean"], seconds["low"], seconds["high"],
                      label="seconds per step", color="tab:blue")
    ax_time.set_xticks(range(len(seconds)), seconds["method"])
    ax_flops.set(xlabel="optimizer", ylabel=f"GFLOPs per step (batch of {batch} images)",
                 title="(a) FLOPs, counted on one batch")
    ax_time.set(xlabel="optimizer", ylabel="seconds per training step", title="(b) Measured time")
    for ax in (ax_flops, ax_time):
        ax.grid(axis="y", alpha=0.3)
    legend_below(fig, ax_time, ncol=2)
    return fig
