"""figures.masks: chapter 2's densities, heatmaps, turnover, dynamic mask and N:M defect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from figure_checks import close_figures, figure_legend, series  # noqa: F401  (close_figures: autouse)
from sparsam.book import figures


def test_layer_densities_one_panel_per_pattern_without_a_legend():
    fig = figures.masks.layer_densities({"unstructured": [0.4, 0.6, 0.5], "layer": [1.0, 0.0, 1.0]},
                                        {"unstructured": 0.5, "layer": 0.66}, ["conv1", "conv2", "fc"], "title")
    assert len(fig.axes) == 2 and not fig.legends and not any(ax.get_legend() for ax in fig.axes)
    assert [len(ax.patches) for ax in fig.axes] == [3, 3]
    assert fig.axes[1].patches[1].get_height() == 0.0
    assert fig.axes[0].get_title(loc="left") == "unstructured: overall density 0.500 (dashed line)"
    assert "fraction perturbed" in fig.axes[0].get_ylabel() and "weight" in fig.axes[1].get_xlabel()
    with pytest.raises(ValueError, match="has 2 values for 3 layer names"):
        figures.masks.layer_densities({"a": [1, 2]}, {"a": 1}, ["x", "y", "z"], "t")


def test_mask_heatmaps_and_nm_defect():
    scores = np.arange(32, dtype=float).reshape(8, 4)
    mask = scores >= 16
    fig = figures.masks.mask_heatmaps(scores, {"top half": mask, "none": np.zeros_like(mask)}, "conv")
    maps = [ax for ax in fig.axes if ax.images]
    assert len(maps) == 3 and maps[1].get_title(loc="left") == "top half: 0.50 of this layer perturbed (black)"
    assert maps[-1].get_xlabel().startswith("input channel") and all(ax.get_ylabel() == "output channel" for ax in maps)
    with pytest.raises(ValueError, match="has shape"):
        figures.masks.mask_heatmaps(scores, {"bad": mask[:4]}, "conv")
    defect = pd.DataFrame({"groups": [4, 4], "wrong_groups": [1, 0], "chosen_mass": [1.0, 2.0],
                           "intended_mass": [2.0, 2.0], "total_mass": [3.0, 4.0]}, index=["a", "b"])
    fig = figures.masks.nm_defect(scores, mask, ~mask, "conv", defect, 2, 4)
    bars = fig.axes[-1]
    assert [p.get_height() for p in bars.patches] == [0.5, 1.0]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["a", "b"]
    assert np.allclose(bars.get_lines()[0].get_ydata(), [0.75, 1.0])  # n/m of the total over the intended
    category = fig.axes[2].images[0].get_array()
    assert int((category == 2).sum()) == int((~mask).sum())  # every official entry outside the intended one is red
    assert figure_legend(fig) == ["random 2:4 mask (expected)", "intended mask", "official mask"]


def test_mask_turnover_and_dynamic_mask():
    updates = pd.DataFrame({"step": [2, 4], "kept_previous": [np.nan, 0.8], "kept_first": [1.0, 0.8],
                            "dropped": [np.nan, 0.2]})
    fig = figures.masks.mask_turnover(updates, np.array([[0.5, 0.4], [0.6, 0.3]]), ["a", "b"])
    assert series(fig.axes[0]) == ["kept from the previous mask", "kept from the first mask"]
    assert fig.axes[0].get_ylabel() == "share of perturbed entries" and len(fig.axes[1].images) == 1
    assert "density of the layer (fraction perturbed)" in [ax.get_ylabel() for ax in fig.axes]
    fig = figures.masks.dynamic_mask(np.full(5, 0.5), 0.5, pd.Series([0.3, 0.2, 0.1, 0.05, 0.0]), updates,
                                     np.full((5, 2), 0.5), ["a", "b"])
    assert len(figure_legend(fig)) == 4 and len(fig.axes[2].images) == 1
    assert fig.axes[0].get_ylabel() == "overall density (fraction perturbed)"
