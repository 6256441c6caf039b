"""figures.landscape: chapter 6's difference of the gradients, loss lines and surfaces, and curvature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from figure_checks import close_figures, series  # noqa: F401  (close_figures: autouse)
from sparsam.book import figures


def test_the_figures_of_notebook_6():
    diff = {"conv.weight": np.array([[3.0, 0.0], [1.0, 0.0]]), "bn.weight": np.array([1.0, 1.0])}
    fig = figures.landscape.gradient_difference(diff, [0.25], [0.75], norm_layers=["bn"])
    share, hist, layer = fig.axes
    top = [line for line in share.get_lines() if line.get_label() == "$g_{SAM} - g$"][0]
    assert top.get_ydata()[0] == pytest.approx(9 / 12)  # the largest of the 6 entries holds 9 of 12
    assert [p.get_height() for p in layer.patches] == [1.0, 1.0]
    assert [t.get_text() for t in layer.get_xticklabels()] == ["conv", "bn"]
    assert layer.patches[1].get_facecolor() != layer.patches[0].get_facecolor()  # BatchNorm in its own colour
    fig = figures.landscape.loss_lines([-1, 0, 1], {"sgd": [2.0, 1.0, 2.0], "ssam": [1.5, 1.0, 1.5]})
    assert series(fig.axes[0]) == ["SGD", "SSAM-F"] and fig.axes[0].get_yscale() == "log"
    grid = np.linspace(-1, 1, 5)
    surface = 1 + np.add.outer(grid ** 2, grid ** 2)
    fig = figures.landscape.loss_surfaces(grid, {"sgd": surface, "sam": 2 * surface})
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["SGD (red cross: trained weights)", "SAM (red cross: trained weights)"]
    assert "training loss" in fig.axes[-1].get_ylabel()  # the shared colour bar
    curv = pd.DataFrame({"method": ["SGD", "SGD", "SSAM-F", "SSAM-F"], "seed": [0, 1, 0, 1],
                         "eigenvalue": [10.0, 12.0, 5.0, 6.0], "trace": [100.0, 110.0, 50.0, 60.0],
                         "trace_stderr": [1.0] * 4, "eigenvalue_history": [[1.0, 9.0, 10.0]] * 4})
    fig = figures.landscape.curvature_figure(curv, ["sgd", "ssam"])
    eig, trace, power = fig.axes
    assert len(eig.containers) == len(trace.containers) == 1 and "over seeds" in eig.get_title()
    assert series(power) == ["SGD", "SSAM-F"] and list(power.get_lines()[0].get_xdata()) == [1, 2, 3]
