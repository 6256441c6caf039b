"""Mask figures (chapter 2): the density of every layer per mask pattern, one layer's Fisher scores above its
masks, how a Fisher mask turns over and how a dynamic mask follows its schedule, and the official N:M masks'
defect."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from ..mask_stats import nm_shares
from .style import legend_below


def layer_densities(densities: Mapping[str, Sequence[float]], overall: Mapping[str, float], layer_names: Sequence[str],
                    title: str) -> Figure:
    """Notebook 2: the perturbed fraction of every conv / linear weight, one panel per mask pattern
    (small multiples, shared axes); the pattern's overall density is the dashed line, named in the title."""
    fig, axes = plt.subplots(len(densities), 1, figsize=(12, 1.9 * len(densities) + 1), sharex=True, sharey=True,
                             layout="constrained", squeeze=False)
    xs = np.arange(len(layer_names))
    for ax, (name, values) in zip(axes[:, 0], densities.items()):
        if len(values) != len(layer_names):
            raise ValueError(f"densities[{name!r}] has {len(values)} values for {len(layer_names)} layer names")
        ax.bar(xs, values, color="tab:blue", width=0.8)
        ax.axhline(overall[name], color="k", ls="--", lw=1)
        ax.set(ylim=(0, 1.05), yticks=[0, 0.5, 1], ylabel="density\n(fraction perturbed)")
        ax.set_title(f"{name}: overall density {overall[name]:.3f} (dashed line)", loc="left", fontsize=10)
    axes[-1, 0].set_xticks(xs, layer_names, rotation=60, ha="right", fontsize=8)
    axes[-1, 0].set_xlabel("conv / linear weight (stem to classifier)")
    fig.suptitle(title)
    return fig


def mask_heatmaps(scores: np.ndarray, masks: Mapping[str, np.ndarray], layer: str) -> Figure:
    """Notebook 2: one layer's Fisher scores (log10, with a colour bar) above its mask in every pattern
    (black: perturbed), all as [C_out, C_in·k·k] maps."""
    scores = np.asarray(scores, dtype=float)
    fig, axes = plt.subplots(len(masks) + 1, 1, figsize=(12, 1.9 * (len(masks) + 1)), sharex=True,
                             layout="constrained", squeeze=False)
    axes = axes[:, 0]
    positive = scores[scores > 0]
    image = axes[0].imshow(np.log10(scores + (positive.min() if positive.size else 1.0)), aspect="auto",
                           cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=axes[0], label="log10 Fisher score", pad=0.01)
    axes[0].set_title(f"Fisher scores of {layer}", loc="left", fontsize=10)
    for ax, (name, mask) in zip(axes[1:], masks.items()):
        mask = np.asarray(mask, dtype=float)
        if mask.shape != scores.shape:
            raise ValueError(f"masks[{name!r}] has shape {mask.shape}, the scores {scores.shape}")
        ax.imshow(mask, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{name}: {mask.mean():.2f} of this layer perturbed (black)", loc="left", fontsize=10)
    for ax in axes:
        ax.set_ylabel("output channel")
    axes[-1].set_xlabel("input channel × k×k tap (flattened C_in·k·k index)")
    return fig


def _layer_heatmap(fig: Figure, ax: Axes, values: np.ndarray, layer_names: Sequence[str], **extent: Any) -> None:
    image = ax.imshow(np.asarray(values, dtype=float).T, aspect="auto", cmap="magma", interpolation="nearest",
                      vmin=0, vmax=1, **extent)
    ax.set_yticks(np.arange(len(layer_names)), layer_names, fontsize=7)
    ax.set_ylabel("conv / linear weight")
    fig.colorbar(image, ax=ax, label="density of the layer (fraction perturbed)", pad=0.01)


def mask_turnover(updates: pd.DataFrame, update_layers: np.ndarray, layer_names: Sequence[str]) -> Figure:
    """Notebook 2, SSAM-F: (a) the share of the perturbed entries each Fisher mask keeps from the previous
    mask and from the first; (b) the density of every layer at every update."""
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(12, 5), width_ratios=[1, 1.6], layout="constrained")
    ax_a.plot(updates["step"], updates["kept_previous"], "o-", color="tab:blue", label="kept from the previous mask")
    ax_a.plot(updates["step"], updates["kept_first"], "s--", color="tab:orange", label="kept from the first mask")
    ax_a.set(xlabel="step of the update (optimizer steps)", ylabel="share of perturbed entries", ylim=(0, 1.05),
             title="(a) How much of the mask survives an update")
    legend_below(fig, ax_a, ncol=2)
    _layer_heatmap(fig, ax_b, update_layers, layer_names)
    ax_b.set_xticks(np.arange(len(updates)), updates["step"])
    ax_b.set(xlabel="step of the update (optimizer steps)", title="(b) Density of each layer, per update")
    return fig


def dynamic_mask(density: np.ndarray, target: float, schedule: pd.Series, updates: pd.DataFrame,
                 layers: np.ndarray, layer_names: Sequence[str]) -> Figure:
    """Notebook 2, SSAM-D: (a) the overall density after every step against 1 - s (``target``); (b) the
    share of perturbed entries exchanged at each update against the drop rate α_t (``schedule``,
    indexed by step); (c) every layer's density after every step."""
    fig = plt.figure(figsize=(12, 8.5), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 1.3])
    ax_a, ax_b, ax_c = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])
    steps = np.arange(len(density))
    ax_a.plot(steps, density, marker=".", color="tab:blue", label="overall density after each step")
    ax_a.axhline(target, color="k", ls="--", lw=1, label=r"target density $1 - s$")
    ax_a.set(xlabel="optimizer step", ylabel="overall density (fraction perturbed)", title="(a) Overall density",
             ylim=(0, 1))
    ax_b.plot(schedule.index, schedule.to_numpy(), color="k", lw=1, label=r"drop rate $\alpha_t$ (cosine schedule)")
    ax_b.plot(updates["step"], updates["dropped"], "o", color="tab:orange",
              label="measured: dropped / perturbed before the update")
    ax_b.set(xlabel="step t of the update (optimizer steps)", ylabel="fraction of perturbed entries exchanged",
             title="(b) Entries exchanged at each update", ylim=(0, None))
    _layer_heatmap(fig, ax_c, layers, layer_names, extent=(-0.5, len(density) - 0.5, len(layer_names) - 0.5, -0.5))
    ax_c.set(xlabel="optimizer step", title="(c) Density of each conv / linear weight over time")
    legend_below(fig, ncol=2)
    return fig


def nm_defect(scores: np.ndarray, intended: np.ndarray, official: np.ndarray, layer: str, defect: pd.DataFrame,
              n: int, m: int, rows: int = 16, cols: int = 36) -> Figure:
    """Notebook 2, the official N:M masks of convolutions: the top-left ``rows`` × ``cols`` corner of one
    layer's [C_out, C_in·k·k] scores, its intended mask and its official mask (red: kept although not
    among the n best of its group of m output channels), and per conv layer (``defect``, rows of
    :func:`sparsam.book.mask_stats.nm_defect`) the Fisher score the official mask keeps against the
    intended one and against a random N:M mask's expectation."""
    scores, intended, official = (np.asarray(a) for a in (scores, intended, official))
    if not (scores.shape == intended.shape == official.shape):
        raise ValueError(f"scores, intended and official must have one shape, got {scores.shape}, {intended.shape}, "
                         f"{official.shape}")
    rows, cols = min(rows, scores.shape[0]), min(cols, scores.shape[1])
    zoom, good, off = scores[:rows, :cols], intended[:rows, :cols].astype(bool), official[:rows, :cols].astype(bool)
    category = np.where(off & good, 1, np.where(off & ~good, 2, 0))
    fig = plt.figure(figsize=(12, 9), layout="constrained")
    grid = fig.add_gridspec(4, 1, height_ratios=[1, 1, 1, 1.4])
    axes = [fig.add_subplot(grid[i]) for i in range(3)]
    positive = scores[scores > 0]
    image = axes[0].imshow(np.log10(zoom + (positive.min() if positive.size else 1.0)), aspect="auto",
                           cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=axes[0], label="log10 Fisher score", pad=0.01)
    axes[0].set_title("log10 Fisher score", loc="left", fontsize=10)
    axes[1].imshow(good.astype(float), aspect="auto", cmap=ListedColormap(["white", "tab:green"]), vmin=0, vmax=1,
                   interpolation="nearest")
    axes[1].set_title(f'intended {n}:{m} (masks.n_m, dim="out"): kept entries in green', loc="left", fontsize=10)
    axes[2].imshow(category, aspect="auto", cmap=ListedColormap(["white", "tab:green", "tab:red"]), vmin=0, vmax=2,
                   interpolation="nearest")
    axes[2].set_title(f"official {n}:{m} (masks.n_m_official): green = kept and among the best {n}, "
                      "red = kept but not", loc="left", fontsize=10)
    for ax in axes:
        for r in range(m, rows, m):
            ax.axhline(r - 0.5, color="0.5", lw=0.6)
        ax.set_ylabel("output channel")
    axes[2].set_xlabel(f"flattened C_in·k·k index of {layer} (first {cols})")
    ax = fig.add_subplot(grid[3])
    xs = np.arange(len(defect))
    shares = nm_shares(defect, n, m)
    ax.bar(xs, shares["chosen_mass"], color="tab:red", label="official mask")
    ax.plot(xs, shares["random_mass"], "k_", markersize=12,
            label=f"random {n}:{m} mask (expected)")
    ax.axhline(1.0, color="tab:green", lw=1, label="intended mask")
    ax.set_xticks(xs, [str(name) for name in defect.index], rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="Fisher mass kept / intended", ylim=(0, 1.1), yticks=[0, 0.25, 0.5, 0.75, 1],
           title=f"Fisher score kept by the official {n}:{m} mask, per conv layer")
    legend_below(fig, ax, ncol=3)
    return fig
