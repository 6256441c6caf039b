"""Chapter 1's figure: the running mean of the squared gradient norm against the bound's shape, one panel per run."""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ...experiment.robust_regression import log_binned
from ..convergence import running_mean_interval
from .style import band, legend_below


def convergence_rates(grad_sq: Mapping[str, np.ndarray], statuses: Mapping[str, str], *, bound_scale: float,
                      window_start: int, level: float = 0.95, ncols: int = 4) -> Figure:
    """Notebook 1's rate figure: one panel per run (small multiples, shared axes, log-log). Each shows the
    running mean of ‖∇f(w_t)‖² (mean over seeds and its 95% t-interval band), the per-iterate values
    (mean over seeds, log bins), the bound's shape C log T/√T with C = ``bound_scale`` and the window of
    the rule (T from ``window_start``). ``grad_sq``: label -> array (seeds, steps); ``statuses``: the
    rule's status of each label, shown in its panel's title."""
    if not grad_sq:
        raise ValueError("grad_sq holds no run")
    steps = {values.shape[1] for values in grad_sq.values()}
    if len(steps) != 1:
        raise ValueError(f"every run of grad_sq must have the same number of steps, got {sorted(steps)}")
    steps = steps.pop()
    iters = np.arange(1, steps + 1)
    shown = np.unique(np.geomspace(1, steps, min(steps, 200)).astype(int)) - 1  # thinned, even on a log axis
    rows = -(-len(grad_sq) // ncols)
    fig, axes = plt.subplots(rows, ncols, figsize=(3.4 * ncols, 2.9 * rows + 0.8), sharex=True, sharey=True,
                             layout="constrained", squeeze=False)
    shape = np.log(iters) / np.sqrt(iters)
    window = iters >= window_start
    for ax, (label, values) in zip(axes.flat, grad_sq.items()):
        ax.axvspan(window_start, steps, color="0.92", zorder=0, label="window of the rule")
        ax.plot(*log_binned(values.mean(axis=0)), color="0.55", lw=1,
                label=r"$\|\nabla f(w_t)\|^2$ per iterate (mean over seeds, log bins)")
        band(ax, iters[shown], *running_mean_interval(values, iters[shown], level), color="tab:blue", lw=1.8,
              label=r"running mean $R_T$ (mean, 95% interval over seeds)")
        ax.plot(iters[window], bound_scale * shape[window], color="tab:green", ls="--", lw=1.5,
                label=r"bound shape $C\,\log T/\sqrt{T}$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{label}\n{statuses.get(label, '')}", fontsize=9, loc="left")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(grad_sq):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("iteration t (T for the running mean)")
    for ax in axes[:, 0]:
        ax.set_ylabel(r"$\|\nabla f\|^2$ (squared loss-gradient norm)")
    legend_below(fig, axes.flat[0], ncol=4)
    return fig
