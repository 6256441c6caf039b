"""figures.style: intervals drawn where there are seeds, plain points (and a legend saying so) where there is
one; a band around a line where there is an interval; the figure that says why there is nothing to draw."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer

from figure_checks import close_figures, legend_texts  # noqa: F401  (close_figures: autouse)
from sparsam.book import figures, records


def test_interval_errorbar_draws_bars_only_where_there_is_an_interval():
    fig, ax = plt.subplots()
    artists = figures.style.interval_errorbar(ax, [1, 2], [90.0, 91.0], [89.0, np.nan], [91.0, np.nan], label="SSAM")
    assert isinstance(artists[0], ErrorbarContainer)
    bars = artists[0].lines[2][0].get_segments()
    assert len(bars) == 1 and np.allclose(bars[0], [[1, 89.0], [1, 91.0]])
    ax.legend()
    assert sorted(legend_texts(ax)) == ["SSAM (mean, 95% interval over seeds)", "SSAM (one seed: no interval)"]


def test_interval_errorbar_with_one_seed_draws_plain_points():
    fig, ax = plt.subplots()
    artists = figures.style.interval_errorbar(ax, [0.5, 0.9], [90.0, 91.0], [np.nan] * 2, [np.nan] * 2, label="SSAM-F")
    assert not any(isinstance(a, ErrorbarContainer) for a in artists) and not ax.containers
    ax.legend()
    assert legend_texts(ax) == ["SSAM-F (one seed: no interval)"]
    fig, ax = plt.subplots()
    figures.style.interval_errorbar(ax, [1], [20.0], [18.0], [22.0], label="SGD",
                                    interval="from the estimator's s.e., one seed")
    ax.legend()
    assert legend_texts(ax) == ["SGD (mean, 95% interval from the estimator's s.e., one seed)"]
    with pytest.raises(ValueError, match="one shape"):
        figures.style.interval_errorbar(ax, [1, 2], [1.0], [1.0], [1.0])


def test_band_draws_the_interval_where_there_is_one_and_curve_band_summarizes_over_seeds():
    fig, ax = plt.subplots()
    figures.style.band(ax, [1, 2, 3], [1.0, 2.0, 3.0], [0.5, 1.5, 2.5], [1.5, 2.5, 3.5], color="tab:blue", label="a")
    figures.style.band(ax, [1, 2], [1.0, 2.0], [np.nan, np.nan], [np.nan, np.nan], color="tab:red", label="one")
    assert [line.get_label() for line in ax.get_lines()] == ["a", "one"] and len(ax.collections) == 1
    (vertices,) = [p.vertices for p in ax.collections[0].get_paths()]
    assert {tuple(v) for v in vertices} >= {(1.0, 0.5), (3.0, 2.5), (3.0, 3.5), (1.0, 1.5)}  # from low to high
    assert ax.collections[0].get_facecolor()[0][:3] == pytest.approx(matplotlib.colors.to_rgb("tab:blue"))
    rows = pd.DataFrame({"epoch": [1, 1, 1, 2, 2, 2, 3], "seed": [0, 1, 2, 0, 1, 2, 0],
                         "loss": [1.0, 2.0, 3.0, 0.5, 0.5, 0.8, np.nan]})  # epoch 3: no value, no point
    fig, ax = plt.subplots()
    figures.style.curve_band(ax, rows, "loss", 0.9, marker=".", color="k")
    summary = records.summarize(rows, "epoch", "loss", 0.9)
    line = ax.get_lines()[0]
    assert line.get_xdata().tolist() == [1, 2] and line.get_ydata().tolist() == summary["mean"].tolist()[:2]
    assert line.get_marker() == "." and len(ax.collections) == 1
    top = max(v[1] for v in ax.collections[0].get_paths()[0].vertices)
    assert top == pytest.approx(summary["high"].max())


def test_message_figure_says_why_there_is_nothing():
    fig = figures.style.message_figure("nothing yet")
    assert [t.get_text() for t in fig.axes[0].texts] == ["nothing yet"] and not fig.axes[0].axison
