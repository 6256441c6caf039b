"""figures.accuracy: accuracy against sparsity (chapter 3) and per method (chapter 5)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from figure_checks import close_figures, figure_legend, legend_texts  # noqa: F401  (close_figures: autouse)
from sparsam.book import figures
from sparsam.experiment.config import TrainConfig


def frame_of(runs: list[tuple[str, float, int, float]]) -> pd.DataFrame:
    """A records-like frame: optimizer, sparsity, seed, final_test_acc."""
    rows = [{**TrainConfig(optimizer=o, sparsity=s, seed=k).to_dict(), "final_test_acc": acc} for o, s, k, acc in runs]
    return pd.DataFrame(rows)


def test_accuracy_vs_sparsity_with_seeds_and_with_one_seed():
    many = frame_of([(o, s, k, 90 + k + s) for o, s in (("ssam-f", 0.5), ("ssam-f", 0.9), ("sam", 0.5), ("sgd", 0.5))
                     for k in range(3)])
    ax = figures.accuracy.accuracy_vs_sparsity(many).axes[0]
    assert ax.get_ylabel() == "test accuracy (%)" and "sparsity" in ax.get_xlabel()
    assert len(ax.containers) == 1  # SSAM-F's error bars
    assert "SSAM-F (mean, 95% interval over seeds)" in legend_texts(ax)
    assert "SAM (mean, 95% interval over seeds)" in legend_texts(ax)
    one = frame_of([("ssam-f", 0.5, 0, 90.0), ("ssam-f", 0.9, 0, 89.0), ("sam", 0.5, 0, 90.5)])
    ax = figures.accuracy.accuracy_vs_sparsity(one).axes[0]
    assert not ax.containers
    assert set(legend_texts(ax)) == {"SSAM-F (one seed: no interval)", "SAM (one seed: no interval)"}


def test_accuracy_by_method_of_notebook_5():
    summary = pd.DataFrame({"method": ["SGD", "SAM"], "mean": [40.0, 42.0], "low": [39.0, np.nan],
                            "high": [41.0, np.nan]})
    fig = figures.accuracy.accuracy_by_method(summary, 10.0, "t")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["SGD", "SAM"]
    assert "chance (10 %)" in figure_legend(fig) and "top-1 accuracy (mean, 95% interval over seeds)" in \
        figure_legend(fig)
