"""Loss-landscape figures (chapter 6): where the SAM gradient differs from the gradient, the loss along a random
direction and on a random plane per network, and the Hessian's top eigenvalue and trace per network."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter

from ..flatness import NETWORK_NAMES, curvature_summary
from ..landscape import concentration_curve, layer_means
from .style import NETWORK_COLORS, interval_errorbar, legend_below, panel


def gradient_difference(diff: Mapping[str, Any], fractions: Sequence[float], shares: Sequence[float],
                        norm_layers: Sequence[str] = (), color: str = NETWORK_COLORS["sgd"]) -> Figure:
    """Notebook 6: where g_SAM − g lives. ``diff``: parameter name -> difference tensor. (a) the share of
    the squared difference held by the largest entries (``shares`` at ``fractions`` marked); (b) the
    histogram of |difference| per entry; (c) the mean |difference| per layer, BatchNorm layers
    (``norm_layers``) in purple."""
    flat = np.concatenate([np.abs(np.asarray(d, dtype=float)).ravel() for d in diff.values()])
    if flat.size == 0:
        raise ValueError("diff holds no entries")
    fig, (ax_share, ax_hist, ax_layer) = plt.subplots(1, 3, figsize=(15, 4.8), width_ratios=[1, 1, 1.5],
                                                      layout="constrained")
    ax_share.plot(*concentration_curve(flat), color=color, label="$g_{SAM} - g$")
    even = np.geomspace(1 / len(flat), 1, 200)
    ax_share.plot(even, even, "k--", lw=1, label="evenly spread")
    for f, share in zip(fractions, shares):
        ax_share.plot(f, share, "o", color="black", ms=4)
        ax_share.annotate(f"top {100 * f:g}%: {100 * share:.0f}%", (f, share), textcoords="offset points",
                          xytext=(6, -12), fontsize=8)
    ax_share.set(xscale="log", xlabel="fraction of entries, largest |difference| first",
                 ylabel="share of the squared difference", title="(a) Concentration")
    positive = flat[flat > 0]
    bins = np.geomspace(positive.min(), positive.max(), 60) if positive.size else 10
    ax_hist.hist(positive, bins=bins, color=color, alpha=0.8)
    ax_hist.set(xscale="log", yscale="log", xlabel="|g_SAM − g| per entry (loss units per weight unit)",
                ylabel="number of entries", title="(b) Distribution over entries")
    means = layer_means(diff)
    names = list(means)
    ax_layer.bar(range(len(names)), list(means.values()),
                 color=["tab:purple" if n in norm_layers else color for n in names])
    ax_layer.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax_layer.set(yscale="log", ylabel="mean |g_SAM − g| in the layer",
                 title="(c) Per layer: convolution / linear, BatchNorm in purple")
    for ax in (ax_share, ax_hist, ax_layer):
        ax.grid(alpha=0.3)
    legend_below(fig, ax_share, ncol=2)
    return fig


def _network_label(key: str) -> str:
    return NETWORK_NAMES.get(key, key)


def loss_lines(alphas: Sequence[float], curves: Mapping[str, Sequence[float]]) -> Figure:
    """Notebook 6: the training loss along one random filter-normalised direction, one line per network
    (``curves``: network kind -> losses at ``alphas``); one direction, no interval."""
    fig, ax = panel(None, (6.8, 4.6))
    for key, losses in curves.items():
        ax.plot(np.asarray(alphas, dtype=float), np.asarray(losses, dtype=float), marker=".",
                color=NETWORK_COLORS.get(key), label=_network_label(key))
    ax.set_xlabel("step α along the direction (filter-normalised units)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_ylabel("training loss (cross-entropy, nats, log scale)")
    ax.grid(alpha=0.3)
    legend_below(fig, ax, ncol=4, title="one random direction per network: no interval")
    return fig


def loss_surfaces(grid: Sequence[float], surfaces: Mapping[str, np.ndarray]) -> Figure:
    """Notebook 6: the training loss on the plane of two random directions, one panel per network
    (small multiples, one shared log colour scale); the trained weights are the red cross at (0, 0)."""
    grid = np.asarray(grid, dtype=float)
    low = min(float(s.min()) for s in surfaces.values())
    high = max(float(s.max()) for s in surfaces.values())
    levels = np.geomspace(low, high, 16)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    fig, axes = plt.subplots(1, len(surfaces), figsize=(4.2 * len(surfaces) + 1, 4.4), layout="constrained",
                             squeeze=False, sharey=True)
    for ax, (key, surface) in zip(axes[0], surfaces.items()):
        filled = ax.contourf(a, b, surface, levels=levels, cmap="viridis", norm=LogNorm(low, high))
        ax.contour(a, b, surface, levels=levels, colors="white", linewidths=0.4)
        ax.plot(0, 0, "x", color="red", ms=8)
        ax.set_title(f"{_network_label(key)} (red cross: trained weights)", fontsize=9)
        ax.set_xlabel("α along d₁ (filter-normalised units)")
        ax.set_aspect("equal")
    axes[0][0].set_ylabel("β along d₂ (filter-normalised units)")
    bar = fig.colorbar(filled, ax=axes[0].tolist(), label="training loss (cross-entropy, nats, log scale)")
    bar.set_ticks(levels[::3], labels=[f"{v:.3g}" for v in levels[::3]])
    bar.ax.minorticks_off()
    return fig


def curvature_figure(curv: pd.DataFrame, kinds: Sequence[str], level: float = 0.95) -> Figure:
    """Notebook 6: the Hessian's top eigenvalue and trace per network (``curv``: one row per network and
    seed, with ``method``, ``seed``, ``eigenvalue``, ``trace``, ``trace_stderr`` and
    ``eigenvalue_history``), 95% intervals as :func:`sparsam.book.flatness.curvature_summary` gives them,
    and the power iteration of the first seed measured, one line per network kind of ``kinds``."""
    fig, (ax_eig, ax_tr, ax_it) = plt.subplots(1, 3, figsize=(14, 4.6), layout="constrained")
    for ax, measure, ylabel in ((ax_eig, "eigenvalue", "top Hessian eigenvalue λ_max (nats per unit²)"),
                                (ax_tr, "trace", "Hessian trace (nats per unit²)")):
        summary = curvature_summary(curv, measure, level)
        sources = ", ".join(sorted(set(summary["interval"])))
        interval_errorbar(ax, range(len(summary)), summary["mean"], summary["low"], summary["high"],
                          label=measure, color="tab:blue", interval=sources)
        ax.set_xticks(range(len(summary)), summary["method"], fontsize=8)
        ax.set(ylabel=ylabel, title=f"({'a' if measure == 'eigenvalue' else 'b'}) {measure}; interval: {sources}")
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3, axis="y")
    first = curv["seed"].iloc[0]
    for key in kinds:
        history = curv[(curv["method"] == _network_label(key)) & (curv["seed"] == first)]["eigenvalue_history"]
        if len(history):
            ax_it.plot(range(1, len(history.iloc[0]) + 1), history.iloc[0], marker=".", color=NETWORK_COLORS.get(key),
                       label=_network_label(key))
    ax_it.set(title=f"(c) power iteration, seed {first}", xlabel="power-iteration step (Hessian-vector products)",
              ylabel="Rayleigh quotient vᵀHv (nats per unit²)")
    ax_it.title.set_fontsize(9)
    ax_it.grid(alpha=0.3)
    legend_below(fig, ax_it, ncol=4)
    return fig
