"""Verdicts: exact t-intervals, rules that must fail on constructed data, declared margins, the bootstrap."""

from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np
import pandas as pd
import pytest

from sparsam.book import stats as verdicts
from sparsam.book.stats import Verdict, compare, decide, margins, paired_bootstrap

T_975_DF3 = 3.182446305284263  # Student t quantile, 0.975, 3 degrees of freedom (printed tables: 3.182)


def test_compare_interval_equals_a_hand_computed_t_interval():
    a, b = [3.2, 2.4, 4.0, 2.9], [2.0, 2.2, 2.5, 2.6]
    d = [x - y for x, y in zip(a, b)]
    half = T_975_DF3 * statistics.stdev(d) / math.sqrt(4)
    v = compare(a, b)
    assert v.n == 4 and v.diff == pytest.approx(statistics.mean(d), abs=1e-12)
    assert (v.low, v.high) == pytest.approx((statistics.mean(d) - half, statistics.mean(d) + half), abs=1e-9)
    assert v.status == "inconclusive"  # the interval [-0.23, 1.83] straddles 0
    assert v.text() == "+0.80 [-0.23, 1.83], n = 4: inconclusive"
    assert dataclasses.replace(v, unit="pp").text() == "+0.80 [-0.23, 1.83] pp, n = 4: inconclusive"


def test_mean_interval_level_widens_the_interval():
    narrow, wide = verdicts.mean_interval([1, 2, 4, 7], 0.8), verdicts.mean_interval([1, 2, 4, 7], 0.99)
    assert narrow[0] == wide[0] == 3.5
    assert wide[1] < narrow[1] < 3.5 < narrow[2] < wide[2]


@pytest.mark.parametrize("shift, expected", [(1.0, "reproduced"), (-1.0, "not reproduced"), (0.0, "inconclusive")])
def test_superiority_reads_the_side_of_zero(shift, expected):
    noise = np.array([0.1, -0.2, 0.15, -0.05, 0.0])
    b = np.array([90.0, 91.0, 89.5, 90.5, 90.2])
    assert compare(b + shift + noise, b).status == expected


def test_superiority_counts_an_exact_tie_as_not_an_improvement():
    b = [90.0, 91.0, 89.5]
    v = compare(b, b)
    assert (v.diff, v.low, v.high) == (0.0, 0.0, 0.0)
    assert v.status == "not reproduced"  # no spread: the data say there is no gain
    noisy = compare([90.1, 90.9, 89.5], b)  # a tie within noise: the data cannot decide
    assert noisy.low < 0 < noisy.high and noisy.status == "inconclusive"
    worse_by_margin = compare([x - 0.5 for x in b], b, margin=0.5, test="non-inferiority")
    assert worse_by_margin.status == "not reproduced"


def test_non_inferiority_rejects_a_method_worse_than_the_margin():
    b = np.array([90.0, 91.0, 89.5, 90.5, 90.2])
    noise = np.array([0.05, -0.05, 0.1, -0.1, 0.0])
    worse = compare(b - 1.0 + noise, b, margin=0.5, test="non-inferiority")
    assert worse.status == "not reproduced" and worse.high < -0.5
    close = compare(b - 0.1 + noise, b, margin=0.5, test="non-inferiority")
    assert close.status == "reproduced" and close.low > -0.5
    # the same small deficit is not an improvement: superiority reads "not reproduced"
    assert compare(b - 0.1 + noise, b).status == "not reproduced"


def test_fewer_pairs_than_min_n_are_always_inconclusive():
    two = compare([95.0, 96.0], [10.0, 11.0])
    assert two.status == "inconclusive" and two.n == 2 and math.isfinite(two.low)
    one = compare([95.0], [10.0])
    assert one.status == "inconclusive" and math.isnan(one.low)
    assert one.text() == "+85.00 (no interval), n = 1: inconclusive"
    assert decide("accuracy_sam_vs_sgd", [95.0], [10.0]).text() == "+85.00 pp (no interval), n = 1: inconclusive"
    none = compare([], [])
    assert none.status == "inconclusive" and none.n == 0 and none.text() == "no paired runs: inconclusive"
    assert compare([95.0, 96.0], [10.0, 11.0], min_n=2).status == "reproduced"


def test_lower_is_better_mirrors_the_rule():
    a, b = np.array([1.0, 1.2, 0.9, 1.1]), np.array([2.0, 2.1, 2.2, 1.9])
    lower = compare(a, b, better="lower")
    assert lower.status == "reproduced" and lower.diff < 0
    assert compare(b, a, better="lower").status == "not reproduced"
    mirrored = compare(-a, -b)
    assert (lower.low, lower.high) == pytest.approx((-mirrored.high, -mirrored.low))


@pytest.mark.parametrize("a, b, kwargs, message", [
    ([1, 2, 3], [1, 2], {}, "a and b must pair"),
    ([1, float("nan"), 3], [1, 2, 3], {}, "a must hold finite"),
    ([1, 2, 3], [1, 2, float("inf")], {}, "b must hold finite"),
    ([1, 2, 3], [1, 2, 3], {"test": "equivalence"}, "test must be one of"),
    ([1, 2, 3], [1, 2, 3], {"margin": 0.5}, "margin applies to test='non-inferiority'"),
    ([1, 2, 3], [1, 2, 3], {"margin": -0.5, "test": "non-inferiority"}, "margin must be in"),
    ([1, 2, 3], [1, 2, 3], {"margin": float("inf"), "test": "non-inferiority"}, "margin must be in"),
    ([1, 2, 3], [1, 2, 3], {"min_n": 1}, "min_n must be an integer >= 2"),
    ([1, 2, 3], [1, 2, 3], {"level": 1.0}, "level must be in"),
    ([1, 2, 3], [1, 2, 3], {"better": "smaller"}, "better must be one of"),
])
def test_bad_input_raises_naming_the_parameter(a, b, kwargs, message):
    with pytest.raises(ValueError, match=message):
        compare(a, b, **kwargs)


def test_declared_margins_have_a_reason_level_and_min_n():
    declared = margins()
    assert {"accuracy_ssam_vs_sam", "accuracy_sam_vs_sgd", "flatness_ssam_vs_sam", "flatness_ssam_vs_sgd",
            "cost_flops_ssam_vs_sam", "cost_time_ssam_vs_sam"} <= set(declared)
    for name, claim in declared.items():
        assert claim["level"] == 0.95 and claim["min_n"] == 3, name
        assert len(claim["reason"].split()) >= 10, name
    assert declared["accuracy_ssam_vs_sam"]["test"] == "non-inferiority"
    assert declared["accuracy_sam_vs_sgd"]["test"] == "superiority"


@pytest.mark.parametrize("text, message", [
    ("claims: {x: {test: superiority, unit: pp, margin: 0.5, reason: r, level: 0.95, min_n: 3}}",
     "superiority test has no margin"),
    ("claims: {x: {test: non-inferiority, unit: pp, margin: 0.5, level: 0.95, min_n: 3}}", "lacks \\['reason'\\]"),
    ("claims: {x: {test: non-inferiority, unit: ratio, margin: 0.8, reason: r, level: 0.95, min_n: 3}}",
     "x.margin must be in \\[1.0"),
    ("claims: {x: {test: non-inferiority, unit: percent, margin: 0.5, reason: r, level: 0.95, min_n: 3}}",
     "x.unit must be one of"),
])
def test_a_malformed_margins_file_raises(tmp_path, text, message):
    path = tmp_path / "margins.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        margins(path)


def test_decide_compares_ratios_on_the_log_scale_with_the_declared_margin():
    sam = np.array([10.0, 12.0, 8.0, 11.0])
    much_sharper = decide("flatness_ssam_vs_sam", 1.6 * sam * [1.0, 1.02, 0.98, 1.01], sam)
    assert much_sharper.status == "not reproduced" and much_sharper.unit == "ratio"
    assert much_sharper.text().startswith("×1.6") and much_sharper.text().endswith("n = 4: not reproduced")
    as_flat = decide("flatness_ssam_vs_sam", 1.05 * sam * [1.0, 1.02, 0.98, 1.01], sam)
    assert as_flat.status == "reproduced" and as_flat.margin == pytest.approx(math.log(1.25))
    assert decide("flatness_ssam_vs_sgd", 1.05 * sam, sam).status == "not reproduced"  # sharper than the reference
    with pytest.raises(ValueError, match="must be positive"):
        decide("flatness_ssam_vs_sgd", [1.0, 0.0, 1.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="claim must be one of"):
        decide("no_such_claim", [1.0], [1.0])


def test_one_seed_reads_inconclusive_for_every_declared_claim():
    for name in margins():
        assert decide(name, [2.0], [1.0]).status == "inconclusive", name


def test_verdicts_frame_keeps_order_fields_and_text():
    frame = verdicts.verdicts_frame({"b": compare([1.0, 1.1, 0.9], [0, 0, 0]), "a": compare([1], [0])})
    assert list(frame["claim"]) == ["b", "a"]
    assert list(frame["status"]) == ["reproduced", "inconclusive"]
    assert frame.loc[0, "text"] == compare([1.0, 1.1, 0.9], [0, 0, 0]).text()
    rebuilt = Verdict(**frame.drop(columns=["claim", "text"]).iloc[0].to_dict())
    assert pd.Series(rebuilt.as_dict()).equals(pd.Series(compare([1.0, 1.1, 0.9], [0, 0, 0]).as_dict()))  # NaN = NaN


def _correct(rng: np.random.Generator, p: float, m: int) -> np.ndarray:
    return rng.random(m) < p


def test_paired_bootstrap_point_is_the_accuracy_difference_and_interval_covers_it():
    rng = np.random.default_rng(1)
    a = [_correct(rng, 0.8, 2000) for _ in range(3)]
    b = [_correct(rng, 0.75, 2000) for _ in range(3)]
    diff, low, high = paired_bootstrap(a, b, resamples=500)
    expected = 100 * (np.mean([x.mean() for x in a]) - np.mean([y.mean() for y in b]))
    assert diff == pytest.approx(expected, abs=1e-9)
    assert low < diff < high
    assert paired_bootstrap(a, b, resamples=500) == (diff, low, high)  # seeded


def test_paired_bootstrap_with_one_seed_matches_the_normal_interval_of_paired_differences():
    rng = np.random.default_rng(2)
    a, b = _correct(rng, 0.7, 4000), _correct(rng, 0.7, 4000)
    d = a.astype(float) - b.astype(float)
    half = 100 * 1.959964 * d.std(ddof=1) / math.sqrt(d.size)  # independent: normal approximation
    diff, low, high = paired_bootstrap([a], [b], resamples=2000)
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    same = paired_bootstrap([a], [a], resamples=50)
    assert same == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("a, b, message", [
    ([np.ones(5, bool)], [np.ones(5, bool)] * 2, "pair one array per seed"),
    ([], [], "pair one array per seed"),
    ([np.ones(5, bool)], [np.ones(6, bool)], "same, non-zero length"),
])
def test_paired_bootstrap_rejects_unpaired_input(a, b, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(a, b)
