"""figures.claims: each claim's interval against its margin and status, read back from the artists; the
detectable difference against the seeds, equal to the power functions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from figure_checks import close_figures, figure_legend, legend_texts  # noqa: F401  (close_figures: autouse)
from sparsam.book import figures, stats


def claims() -> pd.DataFrame:
    return stats.verdicts_frame({
        "SSAM ≥ SAM": stats.decide("accuracy_ssam_vs_sam", [90.1, 90.3, 89.8], [90.0, 90.2, 90.1]),
        "SAM > SGD": stats.decide("accuracy_sam_vs_sgd", [91.0], [90.0]),
        "flatter than SGD": stats.decide("flatness_ssam_vs_sgd", [5.0, 5.5, 4.8], [10.0, 11.0, 9.0]),
    })


def test_claims_figure_one_panel_per_unit_with_margins_and_statuses():
    fig = figures.claims.claims_figure(claims())
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
    fig = figures.claims.claims_figure(claims().assign(unit=["slope", "slope", "pp"]))
    assert [ax.get_xlabel() for ax in fig.axes] == ["difference method − reference (slope)",
                                                    "difference method − reference (percentage points)"]
    with pytest.raises(ValueError, match="no claims"):
        figures.claims.claims_figure(claims().iloc[:0])


def family_claims() -> pd.DataFrame:
    """Four claims read as one family: "gain" is reproduced by the registered rule but not by Holm's."""
    return stats.verdicts_frame(stats.family({
        "close": stats.decide("accuracy_ssam_vs_sam", [90.3, 90.5, 90.2, 90.2, 90.4],
                                 [90.3, 90.4, 90.2, 90.1, 90.5]),
        "gain": stats.decide("accuracy_sam_vs_sgd", [91.0, 90.6, 91.3], [90.0, 90.0, 90.1]),
        "one": stats.decide("accuracy_sam_vs_sgd", [91.0], [90.0]),
        "flat": stats.decide("flatness_ssam_vs_sgd", [5.0, 5.5, 4.8, 5.1], [10.0, 11.0, 9.0, 9.5]),
    }))


def bars_of(ax, label: str) -> list[np.ndarray]:
    """The horizontal bar segments of the error-bar containers of ``ax`` with ``label``, top claim last."""
    return [c.lines[2][0].get_segments()[0] for c in ax.containers if c.get_label() == label]


def test_claims_figure_draws_the_interval_and_the_simultaneous_interval_of_a_family():
    frame = family_claims()
    assert frame.set_index("claim").loc["gain", ["status", "family_status"]].tolist() == ["reproduced", "inconclusive"]
    fig = figures.claims.claims_figure(frame)
    pp, ratio = fig.axes
    # two intervals per claim with an interval, read back from the artists: the frame's exact numbers
    pp_rows = frame[frame["unit"] == "pp"].dropna(subset=["low"])
    for label, (lo, hi) in (("95% interval", ("low", "high")), ("simultaneous 95% interval", ("sim_low", "sim_high"))):
        bars = bars_of(pp, label)
        assert len(bars) == len(pp_rows) == 2
        assert np.allclose([[b[0][0], b[1][0]] for b in bars], pp_rows[[lo, hi]].to_numpy(float), rtol=0, atol=1e-12)
        (flat,) = bars_of(ratio, label)  # ratio claims on the ratio axis: the exponential of the log bounds
        row = frame.set_index("claim").loc["flat"]
        assert np.allclose([flat[0][0], flat[1][0]], np.exp([row[lo], row[hi]]), rtol=1e-12)
    thick, thin = (next(c for c in pp.containers if c.get_label() == lab).lines[2][0].get_linewidth()[0]
                   for lab in ("95% interval", "simultaneous 95% interval"))
    assert thick > 2 * thin  # thick inner bar, thin outer bar
    for inner, outer in zip(bars_of(pp, "95% interval"), bars_of(pp, "simultaneous 95% interval")):
        assert outer[0][0] < inner[0][0] and inner[1][0] < outer[1][0]  # the simultaneous interval is wider
    # the colour is the family-wise status; where it differs, a square and both statuses in the label
    labels = [t.get_text() for t in pp.get_yticklabels()]
    assert labels == ["close\nreproduced (n = 5)", "gain\ninconclusive; per comparison: reproduced (n = 3)",
                      "one\ninconclusive (n = 1)"]
    gain = next(c for c in pp.containers if c.get_label() == "95% interval" and c.lines[0].get_marker() == "s")
    assert gain.lines[0].get_color() == figures.style.STATUS_COLORS["inconclusive"]
    assert np.allclose(gain.lines[0].get_xdata(), [frame.set_index("claim").loc["gain", "diff"]])
    texts = legend_texts(pp)
    assert "thin: simultaneous 95% over the family (Bonferroni, m = 4)" in texts
    assert "mean paired difference, 95% interval (thick)" in texts
    assert "colour: status (family-wise, Holm)" in texts
    assert "square: read per comparison, its status differs (both in its label)" in texts


def test_claims_figure_ratio_ticks_do_not_crowd_a_wide_axis():
    wide = stats.verdicts_frame({
        "small": stats.decide("flatness_ssam_vs_sgd", [1.0, 1.1, 0.9], [20.0, 19.0, 21.0]),
        "large": stats.decide("flatness_ssam_vs_sgd", [20.0, 21.0, 19.0], [1.0, 1.1, 0.9]),
    })
    ax = figures.claims.claims_figure(wide).axes[0]
    low, high = ax.get_xlim()
    ticks = np.log(ax.get_xticks())
    assert 0.0 in ticks and len(ticks) >= 3
    assert np.min(np.diff(ticks)) >= (np.log(high) - np.log(low)) / 9 - 1e-12


def test_claims_figure_without_a_family_draws_one_interval_and_no_family_legend():
    fig = figures.claims.claims_figure(claims())
    pp = fig.axes[0]
    assert not bars_of(pp, "simultaneous 95% interval") and len(bars_of(pp, "95% interval")) == 1
    assert not any("simultaneous" in t or "family" in t for t in legend_texts(pp))
    assert "colour: status (per comparison, unadjusted)" in legend_texts(pp)  # the colour's reading, named


def test_a_claims_figure_colours_every_claim_by_one_reading_named_in_its_legend():
    """Some claims read in a family and some alone (chapter 4's CPU-study rows beside its own): the colour is the
    per-comparison status of every claim, never the family-wise one of some and the unadjusted one of others; a
    family-wise reading of such a frame is refused."""
    mixed = pd.concat([family_claims(), claims()], ignore_index=True)
    assert figures.claims.figure_reading(mixed) == stats.PER_COMPARISON
    pp = figures.claims.claims_figure(mixed).axes[0]
    texts = legend_texts(pp)
    assert "colour: status (per comparison, unadjusted)" in texts and not any("Holm" in t for t in texts)
    gain = next(c for c in pp.containers if c.get_label() == "95% interval" and c.lines[0].get_marker() == "s")
    assert gain.lines[0].get_color() == figures.style.STATUS_COLORS["reproduced"]  # its status per comparison
    assert "gain\nreproduced; family-wise: inconclusive (n = 3)" in [t.get_text() for t in pp.get_yticklabels()]
    assert "square: read family-wise, its status differs (both in its label)" in texts
    with pytest.raises(ValueError, match="reading: the family-wise reading needs every row read in a family"):
        figures.claims.claims_figure(mixed, stats.FAMILY_WISE)
    with pytest.raises(ValueError, match="reading must be one of"):
        figures.claims.claims_figure(mixed, "registered")


def test_detectable_difference_figure_lines_equal_the_power_functions():
    sds = {"pilot": 0.59, "study": 1.15}
    fig = figures.claims.detectable_difference_figure(sds, margin=0.5, seeds=5)
    ax = fig.axes[0]
    curves = [line for line in ax.lines if len(line.get_xdata()) > 2]
    assert len(curves) == 2
    for line, sd in zip(curves, sds.values()):
        n = line.get_xdata()
        assert n[0] == 2 and np.all(np.diff(n) == 1)
        expected = [stats.detectable_difference(int(k), sd) for k in n]
        assert np.allclose(line.get_ydata(), expected, rtol=1e-12)
        assert np.all(np.diff(line.get_ydata()) < 0)  # more seeds detect smaller differences
    needed = {name: stats.seeds_for_power(0.5, sd) for name, sd in sds.items()}
    assert needed["pilot"] < needed["study"]
    texts = figure_legend(fig)
    assert texts[:2] == [f"pilot: paired SD 0.59 pp, {needed['pilot']} seeds for 80% power",
                         f"study: paired SD 1.15 pp, {needed['study']} seeds for 80% power"]
    assert "the study's seeds (5)" in texts
    marks = [line for line in ax.lines if len(line.get_xdata()) == 1]
    for mark, name in zip(marks, sds):  # the point where each line crosses the margin: seeds_for_power
        assert mark.get_xdata()[0] == needed[name] and mark.get_ydata()[0] <= 0.5
    straight = [line for line in ax.lines if len(line.get_xdata()) == 2]
    margin = [line for line in straight if np.allclose(line.get_ydata(), [0.5, 0.5])]
    study = [line for line in straight if np.allclose(line.get_xdata(), [5, 5])]
    assert len(margin) == 1 and len(study) == 1
    assert ax.get_xlabel() == "seeds (paired runs per comparison)" and "(pp" in ax.get_ylabel()
    assert max(curves[0].get_xdata()) >= needed["study"]


def test_detectable_difference_figure_rejects_bad_input():
    with pytest.raises(ValueError, match="sds must name"):
        figures.claims.detectable_difference_figure({}, margin=0.5, seeds=5)
    with pytest.raises(ValueError, match=r"sds\['pilot'\] must be a positive"):
        figures.claims.detectable_difference_figure({"pilot": float("nan")}, margin=0.5, seeds=5)
    with pytest.raises(ValueError, match="margin must be a positive"):
        figures.claims.detectable_difference_figure({"pilot": 1.0}, margin=0.0, seeds=5)
    with pytest.raises(ValueError, match="seeds must be an integer >= 2"):
        figures.claims.detectable_difference_figure({"pilot": 1.0}, margin=0.5, seeds=1)
    with pytest.raises(ValueError, match="max_seeds must be an integer above seeds=5"):
        figures.claims.detectable_difference_figure({"pilot": 1.0}, margin=0.5, seeds=5, max_seeds=5)
