"""Plots: intervals drawn where there are seeds, plain points (and a legend saying so) where there is one."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

from sparsam.book import plots

from sparsam.book import stats as verdicts  # noqa: E402
from sparsam.experiment.config import TrainConfig  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def frame_of(runs: list[tuple[str, float, int, float]]) -> pd.DataFrame:
    """A records-like frame: optimizer, sparsity, seed, final_test_acc."""
    rows = [{**TrainConfig(optimizer=o, sparsity=s, seed=k).to_dict(), "final_test_acc": acc} for o, s, k, acc in runs]
    return pd.DataFrame(rows)


def test_interval_errorbar_draws_bars_only_where_there_is_an_interval():
    fig, ax = plt.subplots()
    artists = plots.interval_errorbar(ax, [1, 2], [90.0, 91.0], [89.0, np.nan], [91.0, np.nan], label="SSAM")
    assert isinstance(artists[0], ErrorbarContainer)
    bars = artists[0].lines[2][0].get_segments()
    assert len(bars) == 1 and np.allclose(bars[0], [[1, 89.0], [1, 91.0]])
    ax.legend()
    assert sorted(legend_texts(ax)) == ["SSAM (mean, 95% interval over seeds)", "SSAM (one seed: no interval)"]


def test_interval_errorbar_with_one_seed_draws_plain_points():
    fig, ax = plt.subplots()
    artists = plots.interval_errorbar(ax, [0.5, 0.9], [90.0, 91.0], [np.nan] * 2, [np.nan] * 2, label="SSAM-F")
    assert not any(isinstance(a, ErrorbarContainer) for a in artists) and not ax.containers
    ax.legend()
    assert legend_texts(ax) == ["SSAM-F (one seed: no interval)"]
    fig, ax = plt.subplots()
    plots.interval_errorbar(ax, [1], [20.0], [18.0], [22.0], label="SGD",
                            interval="from the estimator's s.e., one seed")
    ax.legend()
    assert legend_texts(ax) == ["SGD (mean, 95% interval from the estimator's s.e., one seed)"]
    with pytest.raises(ValueError, match="one shape"):
        plots.interval_errorbar(ax, [1, 2], [1.0], [1.0], [1.0])


def test_accuracy_vs_sparsity_with_seeds_and_with_one_seed():
    many = frame_of([(o, s, k, 90 + k + s) for o, s in (("ssam-f", 0.5), ("ssam-f", 0.9), ("sam", 0.5), ("sgd", 0.5))
                     for k in range(3)])
    ax = plots.accuracy_vs_sparsity(many).axes[0]
    assert ax.get_ylabel() == "test accuracy (%)" and "sparsity" in ax.get_xlabel()
    assert len(ax.containers) == 1  # SSAM-F's error bars
    assert "SSAM-F (mean, 95% interval over seeds)" in legend_texts(ax)
    assert "SAM (mean, 95% interval over seeds)" in legend_texts(ax)
    one = frame_of([("ssam-f", 0.5, 0, 90.0), ("ssam-f", 0.9, 0, 89.0), ("sam", 0.5, 0, 90.5)])
    ax = plots.accuracy_vs_sparsity(one).axes[0]
    assert not ax.containers
    assert set(legend_texts(ax)) == {"SSAM-F (one seed: no interval)", "SAM (one seed: no interval)"}


def claims() -> pd.DataFrame:
    return verdicts.verdicts_frame({
        "SSAM ≥ SAM": verdicts.decide("accuracy_ssam_vs_sam", [90.1, 90.3, 89.8], [90.0, 90.2, 90.1]),
        "SAM > SGD": verdicts.decide("accuracy_sam_vs_sgd", [91.0], [90.0]),
        "flatter than SGD": verdicts.decide("flatness_ssam_vs_sgd", [5.0, 5.5, 4.8], [10.0, 11.0, 9.0]),
    })


def test_claims_figure_one_panel_per_unit_with_margins_and_statuses():
    fig = plots.claims_figure(claims())
    pp, ratio = fig.axes
    assert "percentage points" in pp.get_xlabel() and "ratio" in ratio.get_xlabel() and ratio.get_xscale() == "log"
    margins = [line for line in pp.lines if np.allclose(line.get_xdata(), [-0.5, -0.5])]
    assert len(margins) == 1  # the non-inferiority margin of "SSAM ≥ SAM", at -0.5 pp
    assert len(pp.containers) == 1  # "SAM > SGD" has one seed: a plain point, no bar
    labels = [t.get_text() for t in pp.get_yticklabels()]
    assert labels == ["SSAM ≥ SAM\ninconclusive (n = 3)", "SAM > SGD\ninconclusive (n = 1)"]
    bar = ratio.containers[0].lines[2][0].get_segments()[0]
    assert bar[1][0] < 1.0  # the flatness ratio's interval lies below 1 on the ratio axis
    assert "mean paired difference, 95% interval" in legend_texts(fig.axes[0])


def test_claims_figure_of_other_units_and_of_no_claims():
    fig = plots.claims_figure(claims().assign(unit=["slope", "slope", "pp"]))
    assert [ax.get_xlabel() for ax in fig.axes] == ["difference method − reference (slope)",
                                                    "difference method − reference (percentage points)"]
    with pytest.raises(ValueError, match="no claims"):
        plots.claims_figure(claims().iloc[:0])


def test_pareto_labels_cost_in_sgd_steps():
    table = pd.DataFrame({"label": ["SGD", "SAM"], "cost": [1.0, 2.0], "mean": [90.0, 91.0], "low": [89.5, np.nan],
                          "high": [90.5, np.nan]})
    ax = plots.pareto(table).axes[0]
    assert ax.get_xlabel() == "measured cost per training step (SGD steps)" and ax.get_ylabel() == "test accuracy (%)"
    assert sorted(legend_texts(ax)) == ["SAM (one seed: no interval)", "SGD (mean, 95% interval over seeds)"]
    with pytest.raises(ValueError, match="lacks the columns \\['cost'\\]"):
        plots.pareto(table.drop(columns="cost"))


def test_pareto_draws_cost_intervals_the_front_and_the_budget():
    table = pd.DataFrame({"label": ["SGD", "SAM", "SSAM"], "cost": [1.0, 2.0, 1.8], "mean": [90.0, 91.0, 90.5],
                          "low": [89.5, 90.5, 90.0], "high": [90.5, 91.5, 91.0], "cost_low": [0.9, 1.9, 1.7],
                          "cost_high": [1.1, 2.1, 1.9]})
    ax = plots.pareto(table, budget=1.25, front=True).axes[0]
    assert "1.25 SGD steps" in legend_texts(ax) and "Pareto front of the means" in legend_texts(ax)
    front = next(line for line in ax.get_lines() if line.get_label() == "Pareto front of the means")
    assert list(front.get_xdata()) == [1.0, 1.8, 2.0] and list(front.get_ydata()) == [90.0, 90.5, 91.0]
    x_bars = [c for c in ax.containers if c.has_xerr and not c.has_yerr]
    assert len(x_bars) == 3
    segments = np.concatenate([c.lines[2][0].get_segments() for c in x_bars])
    assert sorted(float(s[0][0]) for s in segments) == pytest.approx([0.9, 1.7, 1.9])
