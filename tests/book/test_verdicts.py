"""Verdicts: exact t-intervals, rules that must fail on constructed data, declared margins, the bootstrap."""

from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np
import pandas as pd
import pytest

from sparsam.book import stats
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
    # half-width 1.03: two significant figures at 1 decimal
    assert v.text() == "+0.8 [-0.2, +1.8], n = 4: inconclusive"
    assert dataclasses.replace(v, unit="pp").text() == "+0.8 [-0.2, +1.8] pp, n = 4: inconclusive"


def test_mean_interval_level_widens_the_interval():
    narrow, wide = stats.mean_interval([1, 2, 4, 7], 0.8), stats.mean_interval([1, 2, 4, 7], 0.99)
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
    frame = stats.verdicts_frame({"b": compare([1.0, 1.1, 0.9], [0, 0, 0]), "a": compare([1], [0])})
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


def test_paired_bootstrap_has_the_distribution_of_resampling_seeds_and_examples_one_by_one():
    """Drawing the examples' counts per pattern of differences across seeds (the function) against drawing every
    example index with replacement and every seed with replacement (written out here): the same distribution of
    the resampled difference, to Monte Carlo error, at a sample size where a wrong grouping shows."""
    rng = np.random.default_rng(3)
    k, m, resamples = 3, 600, 20_000
    a = [_correct(rng, 0.7, m) for _ in range(k)]
    b = [a[0] if i == 0 else _correct(rng, 0.6, m) for i in range(k)]  # seed 0: no difference at all
    diffs = np.stack([x.astype(float) - y.astype(float) for x, y in zip(a, b)])
    draw = np.random.default_rng(4)
    seeds = draw.integers(0, k, size=(resamples, k))
    examples = draw.integers(0, m, size=(resamples, m))
    one_by_one = 100 * np.array([diffs[s][:, e].mean() for s, e in zip(seeds, examples)])
    _, low, high = paired_bootstrap(a, b, resamples=resamples, seed=5)
    expected_low, expected_high = np.percentile(one_by_one, [2.5, 97.5])
    spread = one_by_one.std()
    assert abs(low - expected_low) < 0.05 * spread and abs(high - expected_high) < 0.05 * spread
    # the seeds' spread dominates here: resampling the examples alone (seeds fixed) is visibly narrower
    fixed_seeds = 100 * np.array([diffs[:, e].mean() for e in examples[:4000]])
    assert fixed_seeds.std() < 0.6 * spread


@pytest.mark.parametrize("a, b, message", [
    ([np.ones(5, bool)], [np.ones(5, bool)] * 2, "pair one array per seed"),
    ([], [], "pair one array per seed"),
    ([np.ones(5, bool)], [np.ones(6, bool)], "same, non-zero length"),
])
def test_paired_bootstrap_rejects_unpaired_input(a, b, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(a, b)


# ---- one-sided p-values, families (Holm), simultaneous intervals, the premise rule ----

@pytest.mark.parametrize("margin, test, better", [(0.0, "superiority", "higher"), (0.5, "non-inferiority", "higher"),
                                                  (0.3, "non-inferiority", "lower")])
def test_the_p_value_is_scipys_one_sided_t_test_against_the_margin_and_matches_the_rule(margin, test, better):
    from scipy import stats as scipy_stats

    rng = np.random.default_rng(3)
    sign = 1.0 if better == "higher" else -1.0
    for _ in range(50):
        b = rng.normal(90, 1, 5)
        a = b + rng.normal(rng.uniform(-1.5, 1.5), 0.6, 5)
        v = compare(a, b, margin=margin, test=test, better=better)
        expected = scipy_stats.ttest_1samp(sign * (a - b) + margin, 0.0, alternative="greater").pvalue
        assert v.p_value == pytest.approx(expected, rel=1e-9, abs=1e-15)
        # the registered two-sided 95% interval is the one-sided test at 2.5% in each direction
        assert (v.status == "reproduced") == (v.p_value < 0.025)
        assert (v.status == "not reproduced") == (v.p_value > 0.975)


def test_p_value_without_spread_and_without_pairs():
    assert compare([2.0, 3.0, 4.0], [1.0, 2.0, 3.0]).p_value == 0.0          # a constant gain: decided exactly
    assert compare([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]).p_value == 1.0          # an exact tie is no gain
    assert math.isnan(compare([1.0], [0.0]).p_value)


def holm_by_hand(p: list[float], alpha: float) -> list[bool]:
    """Holm (1979) written out: reject in increasing order while p_(k) <= alpha / (m - k), then stop."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    reject = [False] * len(p)
    for k, i in enumerate(order):
        if p[i] > alpha / (len(p) - k):
            break
        reject[i] = True
    return reject


def test_holm_agrees_with_the_step_down_written_out_and_never_rejects_a_nan():
    rng = np.random.default_rng(4)
    for _ in range(25):  # statsmodels runs gc.collect() in each call: a few cases, not hundreds
        p = list(rng.uniform(0, 0.06, rng.integers(1, 12)) ** rng.uniform(1, 3))
        assert list(stats.holm(p, 0.05)) == holm_by_hand(p, 0.05)
    assert list(stats.holm([0.001, math.nan, 0.02], 0.05)) == [True, False, True]  # m = 3 all the same
    assert list(stats.holm([0.001, 0.02], 0.05)) == [True, True]
    assert list(stats.holm([0.001, 0.03, 0.9], 0.05)) == [True, False, False]    # 0.03 > 0.05 / 2
    with pytest.raises(ValueError, match="p_values must lie in"):
        stats.holm([1.5])
    with pytest.raises(ValueError, match="alpha must be in"):
        stats.holm([0.1], 0.0)


def _gain(mean: float, seeds: int = 5, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Paired values whose differences have exactly the given mean and a fixed spread."""
    b = np.linspace(89.0, 91.0, seeds)
    wiggle = noise * np.array([0.6, -0.4, 0.9, -0.8, -0.3, 0.5, -0.5][:seeds])
    return b + mean + wiggle - wiggle.mean(), b


def test_a_family_where_every_comparison_is_decided_alone_and_holm_decides_none():
    pair = _gain(1.0)
    alone = compare(*pair)
    assert alone.status == "reproduced" and 0.005 < alone.p_value < 0.025  # decided at 2.5% one-sided
    family = stats.family({f"c{i}": alone for i in range(5)})            # five such: 2p = 0.02 > 0.05 / 5
    assert {v.status for v in family.values()} == {"reproduced"}            # registered decisions kept
    assert {v.family_status for v in family.values()} == {"inconclusive"}
    assert {v.family_size for v in family.values()} == {5}
    one = stats.family({"only": alone})["only"]                          # a family of one is the rule itself
    assert one.family_status == "reproduced" and (one.sim_low, one.sim_high) == pytest.approx((alone.low, alone.high))
    strong = compare(*_gain(3.0))
    mixed = stats.family({"strong": strong, **{f"c{i}": alone for i in range(4)}})
    assert mixed["strong"].family_status == "reproduced" and mixed["c0"].family_status == "inconclusive"
    worse = compare(*_gain(-3.0))                                           # a decided loss is read the same way
    assert stats.family({"w": worse, "s": strong})["w"].family_status == "not reproduced"


def _paired_with_p(p: float, *, margin: float = 0.0, better: str = "higher") -> tuple[np.ndarray, np.ndarray]:
    """Five paired values whose one-sided p-value of "gain > -margin" is ``p``: fixed zero-mean wiggles
    around the mean gain that the t-quantile gives."""
    from scipy import stats as scipy_stats

    wiggle = np.array([0.6, -0.4, 0.9, -0.8, -0.3])
    wiggle -= wiggle.mean()
    gain = wiggle + scipy_stats.t.isf(p, 4) * wiggle.std(ddof=1) / math.sqrt(5) - margin
    b = np.linspace(89.0, 91.0, 5)
    return b + (gain if better == "higher" else -gain), b


def test_a_family_between_the_one_sided_and_the_two_sided_thresholds_reads_as_holm_on_two_sided_p_values():
    """Four comparisons, each decided alone, whose one-sided p-values (or 1 - p for a loss) lie where
    Holm's step-down on the one-sided values decides all four but Holm on the two-sided values
    2 min(p, 1 - p), the registered interval's, stops after the first: reading the one-sided ones would
    double the family-wise error. The expected reading is statsmodels' Holm on p-values from scipy."""
    from scipy import stats as scipy_stats
    from statsmodels.stats.multitest import multipletests

    # Holm at 5% over m = 4 compares the sorted two-sided p-values with 0.0125, 0.0167, 0.025, 0.05,
    # i.e. one-sided values with 0.00625, 0.0083, 0.0125, 0.025
    plan = {"gain": (0.004, {}), "non-inferior": (0.011, dict(margin=0.5, test="non-inferiority")),
            "loss": (0.985, {}), "lower": (0.02, dict(better="lower"))}
    family = {}
    for name, (p, options) in plan.items():
        a, b = _paired_with_p(p, margin=options.get("margin", 0.0), better=options.get("better", "higher"))
        family[name] = compare(a, b, **options)
        sign = 1.0 if options.get("better", "higher") == "higher" else -1.0
        expected_p = scipy_stats.ttest_1samp(sign * (a - b), -options.get("margin", 0.0), alternative="greater").pvalue
        assert family[name].p_value == pytest.approx(expected_p, rel=1e-9) == pytest.approx(p, rel=1e-9)
    assert [v.status for v in family.values()] == ["reproduced", "reproduced", "not reproduced", "reproduced"]
    one_sided = np.array([min(p, 1 - p) for p, _ in plan.values()])
    two_sided = multipletests(2 * one_sided, alpha=0.05, method="holm")[0]
    assert list(two_sided) == [True, False, False, False]
    assert multipletests(one_sided, alpha=0.05, method="holm")[0].all()   # the construction discriminates
    read = stats.family(family)
    assert [v.family_status for v in read.values()] == [
        v.status if rejected else "inconclusive" for v, rejected in zip(family.values(), two_sided)]
    assert [v.status for v in read.values()] == [v.status for v in family.values()]   # registered kept
    # a family of two at one-sided p = 0.016 each: decided alone (< 0.025), not together (2p > 0.025)
    pair = compare(*_paired_with_p(0.016))
    assert pair.status == "reproduced" and multipletests([0.032, 0.032], alpha=0.05, method="holm")[0].sum() == 0
    assert {v.family_status for v in stats.family({"x": pair, "y": pair}).values()} == {"inconclusive"}


def test_family_never_decides_what_the_registered_rule_leaves_open():
    few = compare([95.0, 96.0], [10.0, 11.0])                                # tiny p, but fewer than min_n pairs
    assert few.status == "inconclusive" and few.p_value < 1e-3
    assert stats.family({"few": few})["few"].family_status == "inconclusive"
    with pytest.raises(ValueError, match="share one level"):
        stats.family({"a": compare([1, 2, 3], [0, 0, 0]), "b": compare([1, 2, 3], [0, 0, 0], level=0.9)})


def test_the_simultaneous_interval_is_the_t_interval_at_level_one_minus_alpha_over_m():
    a, b = _gain(0.7, seeds=4)
    for m in (1, 3, 19):
        v = stats.family({i: compare(a, b) for i in range(m)})[0]
        mean, low, high = stats.mean_interval(a - b, 1 - 0.05 / m)      # from the data, directly
        assert (v.sim_low, v.sim_high) == pytest.approx((low, high), rel=1e-12)
    assert all(math.isnan(x) for x in stats.simultaneous_interval(compare([1.0], [0.0]), 3))


def test_non_inferiority_to_sam_with_sam_no_better_than_sgd_reads_premise_not_shown():
    sgd = np.array([70.0, 71.0, 69.5, 70.5, 70.2])
    sam = sgd + np.array([0.3, -0.4, 0.5, -0.2, 0.1])                      # SAM ≈ SGD
    ssam = sam + np.array([0.05, -0.05, 0.1, -0.1, 0.0])                   # SSAM ≈ SAM: non-inferior
    verdict = decide("accuracy_ssam_vs_sam", ssam, sam)
    premise = decide("accuracy_sam_vs_sgd", sam, sgd)
    assert verdict.status == "reproduced" and premise.status == "inconclusive"
    read = stats.family({"ssam vs sam": verdict, "sam vs sgd": premise}, {"ssam vs sam": "sam vs sgd"})
    assert read["ssam vs sam"].status == "reproduced"                        # the registered status is kept
    assert read["ssam vs sam"].family_status == stats.PREMISE_NOT_SHOWN == "inconclusive (premise not shown)"
    assert stats.family({"x": verdict}, {"x": None})["x"].family_status == stats.PREMISE_NOT_SHOWN
    shown = decide("accuracy_sam_vs_sgd", sgd + 2 + (sam - sgd) / 10, sgd)   # SAM clearly above SGD
    read = stats.family({"ssam vs sam": verdict, "sam vs sgd": shown}, {"ssam vs sam": "sam vs sgd"})
    assert read["ssam vs sam"].family_status == "reproduced"
    far_below = decide("accuracy_ssam_vs_sam", sam - 3 + (ssam - sam), sam)  # worse than the margin: no premise needed
    read = stats.family({"low": far_below, "sam vs sgd": premise}, {"low": "sam vs sgd"})
    assert read["low"].family_status == "not reproduced"
    assert stats.combine([stats.PREMISE_NOT_SHOWN, "reproduced"]) == "inconclusive"
    with pytest.raises(ValueError, match="premise of 'x' must be one of"):
        stats.family({"x": verdict}, {"x": "nowhere"})


def test_the_declared_premises_and_the_half_gain_claim():
    declared = margins()
    assert declared["accuracy_ssam_vs_sam"]["premise"] == declared["accuracy_pattern_vs_sam"]["premise"] \
        == "accuracy_sam_vs_sgd"
    half = declared["accuracy_ssam_keeps_half_gain"]
    assert (half["test"], half["unit"], half["margin"], half["contrast"]) == ("superiority", "pp", 0.0, "half-gain")
    assert declared["accuracy_sam_vs_sgd"]["contrast"] == "difference"
    assert declared["flatness_ssam_vs_sam"]["premise"] == "flatness_sam_vs_sgd"  # SAM flatter than SGD
    assert (declared["flatness_sam_vs_sgd"]["test"], declared["flatness_sam_vs_sgd"]["better"]) == ("superiority",
                                                                                                   "lower")


@pytest.mark.parametrize("entry, message", [
    ("{test: superiority, unit: pp, margin: 0.0, reason: r, premise: y}", "only a non-inferiority claim has a premise"),
    ("{test: non-inferiority, unit: pp, margin: 0.5, reason: r, premise: nowhere}", "x.premise must be one of 'y'"),
    ("{test: non-inferiority, unit: pp, margin: 0.5, reason: r, contrast: half-gain}", "half-gain contrast is a sup"),
    ("{test: superiority, unit: pp, margin: 0.0, reason: r, contrast: ratio}", "x.contrast must be one of"),
])
def test_a_bad_premise_or_contrast_is_refused(tmp_path, entry, message):
    path = tmp_path / "margins.yaml"
    path.write_text(f"defaults: {{level: 0.95, min_n: 3}}\nclaims:\n  x: {entry}\n"
                    "  y: {test: superiority, unit: pp, margin: 0.0, reason: r}\n")
    with pytest.raises(ValueError, match=message):
        margins(path)


def test_the_half_gain_contrast_equals_an_independent_computation():
    from scipy import stats as scipy_stats

    ssam = np.array([66.1, 65.2, 67.0, 66.4, 65.9])
    sam = np.array([66.0, 65.9, 66.8, 66.1, 66.3])
    sgd = np.array([64.9, 65.0, 65.6, 65.2, 64.8])
    contrast = (ssam - sgd) - 0.5 * (sam - sgd)                            # per seed, as the claim states it
    mean, se = contrast.mean(), contrast.std(ddof=1) / math.sqrt(5)
    low, high = scipy_stats.t.interval(0.95, 4, loc=mean, scale=se)
    v = decide("accuracy_ssam_keeps_half_gain", *stats.half_gain(ssam, sam, sgd))
    assert (v.diff, v.low, v.high) == pytest.approx((mean, low, high), rel=1e-12)
    assert v.p_value == pytest.approx(scipy_stats.ttest_1samp(contrast, 0.0, alternative="greater").pvalue, rel=1e-9)
    assert v.status == ("reproduced" if low > 0 else "inconclusive")
    like_sgd = decide("accuracy_ssam_keeps_half_gain", *stats.half_gain(sgd + 0.01, sgd + 0.02, sgd))
    assert like_sgd.status != "reproduced"                                 # SAM ≈ SGD: nothing to keep
    with pytest.raises(ValueError, match="method, reference and baseline must pair"):
        stats.half_gain([1, 2, 3], [1, 2], [1, 2, 3])


# ---- power of the registered rule ----

def test_power_agrees_with_a_simulation_of_the_registered_rule():
    rng = np.random.default_rng(5)
    draws = 4000
    for n, distance, sd in ((5, 0.5, 1.15), (5, 1.5, 1.0), (8, 0.8, 0.6)):
        expected = stats.power(n, distance, sd)
        d = rng.normal(distance - 0.5, sd, size=(draws, n))               # true gain: distance beyond -0.5
        decided = np.mean([compare(x, np.zeros(n), margin=0.5, test="non-inferiority").status == "reproduced"
                           for x in d])
        se = math.sqrt(expected * (1 - expected) / draws)
        assert abs(decided - expected) < 4 * se, (n, distance, sd, decided, expected)


def test_seeds_for_power_is_the_fewest_seeds_and_detectable_difference_inverts_power():
    for distance, sd in ((0.5, 1.15), (0.5, 0.4), (1.0, 1.0)):
        n = stats.seeds_for_power(distance, sd)
        assert stats.power(n, distance, sd) >= 0.8 > stats.power(n - 1, distance, sd) if n > 2 else True
    assert stats.seeds_for_power(0.5, 0.01, min_n=3) == 3
    for n in (3, 5, 20):
        d = stats.detectable_difference(n, 1.15)
        assert stats.power(n, d, 1.15) == pytest.approx(0.8, abs=1e-9)
        assert stats.detectable_difference(n, 2.3) == pytest.approx(2 * d, rel=1e-6)   # scales with the SD
    assert stats.detectable_difference(5, 1.15) > stats.detectable_difference(10, 1.15)
    assert stats.power(5, 0.0, 1.0) == pytest.approx(0.025)              # at the threshold: the test's level
    with pytest.raises(ValueError, match="sd must be in"):
        stats.power(5, 0.5, 0.0)
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        stats.power(1, 0.5, 1.0)
    with pytest.raises(ValueError, match="more than max_n=50 seeds"):
        stats.seeds_for_power(0.01, 1.0, max_n=50)


def test_detectable_differences_are_the_detectable_difference_at_every_number_of_seeds():
    curves, needed = stats.detectable_differences({"pilot": 0.59, "study": 1.15}, margin=0.5, seeds=5)
    assert needed == {"pilot": stats.seeds_for_power(0.5, 0.59), "study": stats.seeds_for_power(0.5, 1.15)}
    assert list(curves.columns) == ["pilot", "study"] and curves.index.name == "seeds"
    top = int(max(*needed.values(), 5) * 1.25) + 2  # a little beyond the largest number needed
    assert curves.index.tolist() == list(range(2, top + 1))
    for name, sd in (("pilot", 0.59), ("study", 1.15)):
        assert curves[name].tolist() == [stats.detectable_difference(n, sd) for n in curves.index]
        assert curves.loc[needed[name], name] <= 0.5 < curves.loc[needed[name] - 1, name]  # crosses the margin there
    assert stats.detectable_differences({"a": 0.1}, margin=0.5, seeds=5, max_seeds=9)[0].index.tolist() == \
        list(range(2, 10))
    with pytest.raises(ValueError, match="max_seeds must be an integer above seeds=5"):
        stats.detectable_differences({"a": 0.1}, margin=0.5, seeds=5, max_seeds=5)
