"""figures.convergence: chapter 1's panels, the running mean's band over seeds and the bound's shape."""

from __future__ import annotations

import numpy as np
import pytest

from figure_checks import close_figures, figure_legend, series  # noqa: F401  (close_figures: autouse)
from sparsam.book import figures, stats


def test_convergence_rates_one_panel_per_run_with_interval_bands_and_the_bound():
    rng = np.random.default_rng(0)
    steps = 300
    grad_sq = {"SGD": rng.uniform(0.5, 1.5, (3, steps)) / np.sqrt(np.arange(1, steps + 1)),
               "SAM": rng.uniform(0.5, 1.5, (3, steps)), "one seed": rng.uniform(0.5, 1.5, (1, steps))}
    fig = figures.convergence.convergence_rates(grad_sq, {"SGD": "converging", "SAM": "not converging"},
                                                bound_scale=2.0, window_start=30, ncols=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3 and [ax.get_title(loc="left") for ax in visible] == [
        "SGD\nconverging", "SAM\nnot converging", "one seed\n"]
    for ax in visible:
        assert ax.get_xscale() == ax.get_yscale() == "log"
        assert len(series(ax)) == 3  # per iterate, running mean, bound shape
    assert len(visible[0].collections) == 1 and len(visible[2].collections) == 0  # the band: none for one seed
    band = visible[0].collections[0].get_paths()[0].vertices[:, 1]
    running = np.cumsum(grad_sq["SGD"], axis=1) / np.arange(1, steps + 1)
    last = stats.mean_interval(running[:, -1])
    assert band.min() <= last[1] and band.max() >= last[2]
    bound = next(line for line in visible[1].get_lines() if "bound" in line.get_label())
    t = bound.get_xdata()
    assert t[0] == 30 and np.allclose(bound.get_ydata(), 2.0 * np.log(t) / np.sqrt(t))
    legend = figure_legend(fig)
    assert "running mean $R_T$ (mean, 95% interval over seeds)" in legend and "window of the rule" in legend
    assert "iteration" in visible[-1].get_xlabel() and "gradient" in visible[0].get_ylabel()
    with pytest.raises(ValueError, match="same number of steps"):
        figures.convergence.convergence_rates({"a": np.ones((2, 5)), "b": np.ones((2, 6))}, {}, bound_scale=1,
                                              window_start=2)
