"""figures.curves: training curves with a band over seeds, a plain line for one seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from figure_checks import close_figures, figure_legend, series  # noqa: F401  (close_figures: autouse)
from sparsam.book import figures


def test_training_curves_bands_over_seeds_and_lines_for_one_seed():
    rows = [{"run_id": f"{m}{k}", "method": m, "epoch": e, "train_loss": 2.0 - e / 10 + k / 10, "test_acc": 50 + e + k}
            for m, seeds in (("SAM", 3), ("SGD", 1)) for k in range(seeds) for e in range(1, 4)]
    fig = figures.curves.training_curves(pd.DataFrame(rows))
    loss, acc = fig.axes[:2]
    assert series(loss) == series(acc) == ["SAM", "SGD"]
    assert len(loss.collections) == len(acc.collections) == 1  # SAM's band; SGD has one seed
    assert np.allclose(loss.get_lines()[0].get_ydata(), [2.0, 1.9, 1.8])  # the mean over SAM's seeds
    assert loss.get_ylabel() == "training loss (cross-entropy, nats)" and acc.get_ylabel() == "test accuracy (%)"
    assert fig.legends[0].get_title().get_text() == (
        "mean, 95% interval over seeds (band); a line without a band: one seed: no interval")
    fig = figures.curves.training_curves(pd.DataFrame([r for r in rows if r["method"] == "SGD"]))
    assert fig.legends[0].get_title().get_text() == "one seed: no interval" and not fig.axes[0].collections
    assert fig._suptitle is None  # no title unless given
    fig = figures.curves.training_curves(pd.DataFrame(rows), title="CPU study: CIFAR-10, 200 epochs")
    assert fig._suptitle.get_text() == "CPU study: CIFAR-10, 200 epochs" and len(fig.axes) == 2


def test_curves_grid_one_row_per_candidate_one_column_per_metric():
    rows = [{"run_id": f"{c}{m}{k}", "candidate": c, "method": m, "epoch": e, "test_acc": 40 + e + k,
             "train_acc": 20 + 10 * e + (k if m == "SGD" else 0)}
            for c in ("A", "B") for m, seeds in (("SGD", 3), ("SAM", 3)) for k in range(seeds) for e in (1, 2, 3)
            if not (c == "B" and m == "SAM")]
    fig = figures.curves.curves_grid(pd.DataFrame(rows), row_titles={"A": "width 8"},
                                     references={"train_acc": (60.0, "60%")})
    axes = fig.axes
    assert len(axes) == 4 and [ax.get_title() for ax in axes] == ["width 8", "width 8", "candidate B", "candidate B"]
    assert series(axes[0]) == ["SGD", "SAM"] and series(axes[2]) == ["SGD"]  # B has no SAM runs: no line
    assert np.allclose(axes[1].get_lines()[0].get_ydata(), [31.0, 41.0, 51.0])  # SGD's mean over seeds 0, 1, 2
    assert len(axes[1].collections) == 2  # a band per method with seeds
    assert [line.get_ydata()[0] for line in axes[3].get_lines() if line.get_linestyle() == "--"] == [60.0]
    assert axes[0].get_ylabel() == "test accuracy (%, clean labels)" and axes[2].get_xlabel() == "epoch"
    sam = axes[0].get_lines()[1].get_color()
    assert axes[1].get_lines()[1].get_color() == sam  # one colour per method in every panel
    assert "60%" in figure_legend(fig)
    assert fig.legends[0].get_title().get_text() == "mean, 95% interval over seeds (band)"
    with pytest.raises(ValueError, match="curves has no rows"):
        figures.curves.curves_grid(pd.DataFrame(columns=["candidate", "method", "epoch", "test_acc"]))
