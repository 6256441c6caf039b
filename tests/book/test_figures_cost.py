"""figures.cost: accuracy against cost in SGD steps with its front and budget (chapters 3 and 8), the cost
figures of chapter 4 and the FLOPs and time per method of chapter 5."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from figure_checks import close_figures, figure_legend, legend_texts  # noqa: F401  (close_figures: autouse)
from sparsam.book import figures


def test_pareto_labels_cost_in_sgd_steps():
    table = pd.DataFrame({"label": ["SGD", "SAM"], "cost": [1.0, 2.0], "mean": [90.0, 91.0], "low": [89.5, np.nan],
                          "high": [90.5, np.nan]})
    ax = figures.cost.pareto(table).axes[0]
    assert ax.get_xlabel() == "measured cost per training step (SGD steps)" and ax.get_ylabel() == "test accuracy (%)"
    assert sorted(legend_texts(ax)) == ["SAM (one seed: no interval)", "SGD (mean, 95% interval over seeds)"]
    with pytest.raises(ValueError, match="lacks the columns \\['cost'\\]"):
        figures.cost.pareto(table.drop(columns="cost"))


def test_pareto_draws_cost_intervals_the_front_and_the_budget():
    table = pd.DataFrame({"label": ["SGD", "SAM", "SSAM"], "cost": [1.0, 2.0, 1.8], "mean": [90.0, 91.0, 90.5],
                          "low": [89.5, 90.5, 90.0], "high": [90.5, 91.5, 91.0], "cost_low": [0.9, 1.9, 1.7],
                          "cost_high": [1.1, 2.1, 1.9]})
    ax = figures.cost.pareto(table, budget=1.25, front=True).axes[0]
    assert "1.25 SGD steps" in legend_texts(ax) and "Pareto front of the means" in legend_texts(ax)
    front = next(line for line in ax.get_lines() if line.get_label() == "Pareto front of the means")
    assert list(front.get_xdata()) == [1.0, 1.8, 2.0] and list(front.get_ydata()) == [90.0, 90.5, 91.0]
    x_bars = [c for c in ax.containers if c.has_xerr and not c.has_yerr]
    assert len(x_bars) == 3
    segments = np.concatenate([c.lines[2][0].get_segments() for c in x_bars])
    assert sorted(float(s[0][0]) for s in segments) == pytest.approx([0.9, 1.7, 1.9])


def test_the_cost_figures_of_notebook_4():
    curves = pd.DataFrame({"mask": ["layer", "layer", "filter", "filter"], "sparsity": [0.5, 0.9, 0.5, 0.9],
                           "mean": [1.8, 1.4, 1.7, 1.3], "low": [1.7, 1.3, np.nan, np.nan],
                           "high": [1.9, 1.5, np.nan, np.nan]})
    fig = figures.cost.flops_vs_sparsity(curves, 2.0, "t")
    ax = fig.axes[0]
    assert len(ax.containers) == 1 and [line.get_ydata()[0] for line in ax.get_lines() if
                                        line.get_linestyle() in ("--", ":")] == [2.0, 1.0]
    assert "sparse ascent, layer (mean, 95% interval over seeds)" in figure_legend(fig)
    assert "sparse ascent, filter (one seed: no interval)" in figure_legend(fig)
    dearer = curves.assign(accounting="realised", **{c: curves[c] + 0.1 for c in ("mean", "low", "high")})
    both = pd.concat([curves.assign(accounting="ideal explicit"), dearer])
    fig = figures.cost.flops_vs_sparsity(both, 2.0, "t")  # one panel per accounting, each with its own curves
    assert [ax.get_title() for ax in fig.axes] == ["ideal explicit", "realised"]
    assert [[line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "-"] for ax in fig.axes] \
        == [[1.8, 1.7], [pytest.approx(1.9), pytest.approx(1.8)]]
    assert "layer (mean, 95% interval over seeds)" in figure_legend(fig)
    summary = pd.DataFrame({"mean": [1.0, 2.1], "low": [0.9, 2.0], "high": [1.1, 2.2]}, index=["SGD", "SAM"])
    fig = figures.cost.step_times(summary, "t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["SGD", "SAM"] and ax.containers[0].has_xerr
    assert "SAM (mean)" in figure_legend(fig) and ax.get_xlabel().startswith("wall time per step")
    times = pd.DataFrame({"batched": [0.1, 0.2], "limit: one batched gradient": [0.05, 0.06]}, index=[8, 16])
    fig = figures.cost.fisher_times(times, "t")
    assert [line.get_linestyle() for line in fig.axes[0].get_lines()] == ["-", ":"]
    assert figure_legend(fig)[0] == "batched (one measurement: no interval)"
    rows = pd.DataFrame({"config": ["a fisher", "b cost-aware"], "ideal_seconds_ratio": [1.2, 1.1],
                         "ratio_to_sgd": [1.3, 1.15]})
    fig = figures.cost.ideal_vs_measured(rows, "t")
    assert len(fig.axes[0].collections) == 4  # three rules (one empty) and the 10% band
    assert "measured = ideal" in figure_legend(fig)


def test_cost_by_method_of_notebook_5():
    summary = pd.DataFrame({"method": ["SGD", "SAM"], "mean": [40.0, 42.0], "low": [39.0, np.nan],
                            "high": [41.0, np.nan]})
    fig = figures.cost.cost_by_method(pd.Series([1.0, 2.0], index=["SGD", "SAM"]), summary, 32)
    flops, time = fig.axes
    assert [p.get_height() for p in flops.patches] == [1.0, 2.0] and "batch of 32 images" in flops.get_ylabel()
    assert time.get_ylabel() == "seconds per training step"
