"""What the tests of the book's figures (tests/book/test_figures_*.py) read back from a figure: its legends and the
labelled lines of a panel; and the fixture that closes every figure a test drew."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    """Imported by a test module, closes the figures of each of its tests."""
    yield
    plt.close("all")


def legend_texts(ax) -> list[str]:
    """The texts of the legend of ``ax``, or of its figure's legend (drawn below the panels)."""
    legend = ax.get_legend() or (ax.figure.legends[0] if ax.figure.legends else None)
    return [t.get_text() for t in legend.get_texts()]


def figure_legend(fig) -> list[str]:
    assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes), "one legend, below the panels"
    return [t.get_text() for t in fig.legends[0].get_texts()]


def series(ax) -> list[str]:
    """Labels of the lines drawn on ``ax`` that carry one (matplotlib gives unlabelled ones "_child...")."""
    return [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
