"""The label-noise study's declared rules (sparsam.book.study.fixed_margin) on constructed pilots."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sparsam.book.study import fixed_margin as rules
from sparsam.book.intervals import precision
from sparsam.book.stats import compare

PLANNED = ["sgd", "sam", "ssam-f", "ssam-f", "ssam-d", "ssam-d", "sam-on", "ssam-f"]


def test_margins_are_the_lower_bound_and_its_half_rounded_down():
    sgd, sam = [40.0, 41.0, 39.5], [46.0, 49.0, 47.5]
    diffs = np.subtract(sam, sgd)
    low = diffs.mean() - stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / math.sqrt(3)  # computed here
    m1, m2 = rules.fixed_margins(compare(sam, sgd, test="superiority"))
    assert m1 == pytest.approx(math.floor(low * 100) / 100) and m1 <= low < m1 + 0.01
    assert m2 == pytest.approx(math.floor(m1 * 50) / 100)


def test_no_margin_without_sams_gain():
    with pytest.raises(ValueError, match="needs SAM shown better than SGD"):
        rules.fixed_margins(compare([40.0, 42.0, 41.0], [41.0, 40.0, 42.5], test="superiority"))


def test_seeds_reach_the_power_of_both_contrasts_at_holms_first_step():
    n, p_premise, p_half = rules.seeds_for_both(8.0, 2.5, comparisons=11)
    alpha = 0.025 / 11

    def power(n, distance, sd):  # noncentral t, written out here
        return stats.nct.sf(stats.t.ppf(1 - alpha, n - 1), n - 1, distance * math.sqrt(n) / sd)

    assert p_premise == pytest.approx(power(n, 8.0, 2.5))
    assert p_half == pytest.approx(power(n, 4.0, 2.5 * math.sqrt(0.75)))
    assert min(p_premise, p_half) >= 0.8
    assert n == 5 or min(power(n - 1, 8.0, 2.5), power(n - 1, 4.0, 2.5 * math.sqrt(0.75))) < 0.8
    assert rules.seeds_for_both(1.0, 5.0, comparisons=11) [0] == 10  # the cap binds
    assert rules.seeds_for_both(100.0, 1.0, comparisons=11)[0] == 5  # never fewer than 5


def test_cheapest_powered_candidate_wins_and_a_tie_goes_to_the_first():
    a = rules.plan("A", [40.0, 41.0, 39.5], [46.0, 49.0, 47.5], 600.0, 1200.0, PLANNED, 11)
    b = rules.plan("B", [40.0, 41.0, 39.5], [46.0, 49.0, 47.5], 1800.0, 3600.0, PLANNED, 11)
    assert a.cpu_seconds == a.seeds * (600 + 7 * 1200)
    assert rules.choose_cheapest([a, b])[0] is a
    assert rules.choose_cheapest([b, a])[0] is a
    same = rules.plan("B", [40.0, 41.0, 39.5], [46.0, 49.0, 47.5], 600.0, 1200.0, PLANNED, 11)
    assert rules.choose_cheapest([a, same])[0] is a and rules.choose_cheapest([same, a])[0] is same


def test_an_ineligible_candidate_is_never_chosen_and_none_means_no_study():
    cheap_but_no_gain = rules.plan("A", [40.0, 42.0, 41.0], [41.0, 40.0, 42.5], 1.0, 2.0, PLANNED, 11)
    dear = rules.plan("B", [40.0, 41.0, 39.5], [46.0, 49.0, 47.5], 1800.0, 3600.0, PLANNED, 11)
    assert not cheap_but_no_gain.eligible and dear.eligible
    assert rules.choose_cheapest([cheap_but_no_gain, dear])[0] is dear
    chosen, reason = rules.choose_cheapest([cheap_but_no_gain])
    assert chosen is None and "nothing registered" in reason


def test_a_powered_candidate_beats_a_cheaper_unpowered_one_and_power_orders_the_rest():
    verdict = compare([46.0, 49.0, 47.5], [40.0, 41.0, 39.5], test="superiority")
    cheap = rules.CandidatePlan("A", verdict, 2.0, 10, 0.99, 0.6, 1.0)      # eligible, not powered
    dear = rules.CandidatePlan("B", verdict, 2.0, 7, 0.99, 0.85, 100.0)    # eligible and powered
    weaker = rules.CandidatePlan("C", verdict, 2.0, 10, 0.99, 0.5, 0.5)
    assert cheap.eligible and not cheap.powered and dear.powered
    assert rules.choose_cheapest([cheap, dear])[0] is dear
    chosen, reason = rules.choose_cheapest([weaker, cheap])
    assert chosen is cheap and "no candidate reaches 0.8" in reason


def test_sam_on_radius_and_matched_density():
    assert rules.sam_on_radius({0.5: 3.0, 2.0: 4.0}) == 2.0
    assert rules.sam_on_radius({0.5: 3.0, 2.0: 3.0}) == 0.5
    s = rules.matched_sparsity(720, 78002)
    assert int((1 - s) * 78002) == 720
    with pytest.raises(ValueError, match="kept must be in"):
        rules.matched_sparsity(0, 10)


# --- the registration: the declared rules applied to constructed pilot records -------------------------------

from pathlib import Path

import yaml

from sparsam.book.study.registering import declaration_text, write_fixed_margin_registration
from sparsam.book.study import load_study
from sparsam.experiment.config import TrainConfig
from sparsam.experiment.results import load_all

ROOT = Path(__file__).resolve().parents[2]
DECLARATION = ROOT / "results" / "noise_study" / "noise_study.yaml"  # registered: the declaration is its top
DECLARED = declaration_text(DECLARATION.read_text())
SGD, SAM = [40.0, 41.0, 39.5], [46.0, 49.0, 47.5]


def _record(config: TrainConfig, accuracy: float, cpu_per_step: float) -> dict:
    return {"summary": {"config": config.to_dict(), "final_test_acc": accuracy / 100, "data": {"num_classes": 10}},
            "metrics": [{"cpu_seconds_per_step": cpu_per_step, "steps": 50}, {"cpu_seconds_per_step": cpu_per_step,
                                                                                "steps": 30}]}


def _pilot(sam_on: bool = True) -> list[dict]:
    spec = yaml.safe_load(DECLARATION.read_text())
    records = []
    for candidate, cost in (("A", 1.0), ("B", 4.0)):
        base = TrainConfig(**{**spec["common"], **spec["candidates"][candidate]})
        for seed, sgd, sam in zip(spec["pilot"]["seeds"], SGD, SAM):
            records += [_record(base.replace(optimizer="sgd", seed=seed), sgd, cost),
                        _record(base.replace(optimizer="sam", seed=seed), sam, 2 * cost)]
            if sam_on and candidate == "A":  # gains +2 at rho 0.5, +3 at rho 2.0
                records += [_record(base.replace(optimizer="sam-on", rho=rho, seed=seed), sgd + gain, 2 * cost)
                            for rho, gain in ((0.5, 2.0), (2.0, 3.0))]
    return records


def _margins(tmp_path: Path, m2: float) -> Path:
    content = yaml.safe_load((ROOT / "book" / "margins.yaml").read_text())
    content["claims"]["accuracy_noise_ssam_vs_sam"] = {
        "test": "non-inferiority", "unit": "pp", "better": "higher", "margin": m2,
        "premise": "accuracy_sam_vs_sgd", "reason": "constructed"}
    content["claims"]["accuracy_norm_only_vs_fisher"] = {
        "test": "superiority", "unit": "pp", "better": "higher", "margin": 0.0, "reason": "constructed"}
    path = tmp_path / "margins.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


def _expected_m2() -> float:
    diffs = np.subtract(SAM, SGD)
    low = diffs.mean() - stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / math.sqrt(3)
    return math.floor(math.floor(low * 100) / 2) / 100


def test_the_registration_applies_the_declared_rules_to_the_pilot(tmp_path):
    study_file = tmp_path / "noise_study.yaml"
    study_file.write_text(DECLARED)
    m2 = _expected_m2()
    margins = _margins(tmp_path, m2)
    write_fixed_margin_registration(study_file, _pilot(), store="pilot", margins_path=margins)
    assert study_file.read_text().startswith(DECLARED)  # the declaration unchanged
    study = load_study(study_file, margins)
    assert study.regime["width"] == 8 and study.correction == "holm"  # A: same gain, a quarter of B's CPU time
    n = rules.seeds_for_both(float(np.mean(np.subtract(SAM, SGD))), float(np.std(np.subtract(SAM, SGD), ddof=1)),
                             comparisons=11)[0]
    assert study.configurations["sam"][1] == tuple(range(n))
    assert study.configurations["sam-on"][0]["rho"] == 2.0  # the larger mean gain over SGD
    matched = study.configurations["ssam-f-matched"][0]["sparsity"]
    assert int((1 - matched) * 78002) == 720  # keeps exactly SAM-ON's 720 normalisation weights of width 8
    assert study.margins["accuracy_noise_ssam_vs_sam"]["margin"] == pytest.approx(m2)
    assert len(study.comparisons) == 11
    result = yaml.safe_load(study_file.read_text())["pilot_result"]
    assert result["chosen"] == "A" and result["fixed_margins_pp"]["M2"] == pytest.approx(m2)
    run = 80 * 1.0, 80 * 2.0  # SGD's and SAM's CPU seconds per run (50 + 30 steps)
    assert result["candidates"]["A"]["study_cpu_hours"] == pytest.approx(round(n * (run[0] + 7 * run[1]) / 3600, 1))
    with pytest.raises(ValueError, match="already holds"):
        write_fixed_margin_registration(study_file, _pilot(), store="pilot", margins_path=margins)


def test_the_registration_needs_sam_ons_radius_pilot_and_the_rules_margin(tmp_path):
    study_file = tmp_path / "noise_study.yaml"
    study_file.write_text(DECLARED)
    with pytest.raises(ValueError, match="pilot_sam_on_A.yaml"):
        write_fixed_margin_registration(study_file, _pilot(sam_on=False), store="pilot",
                                        margins_path=_margins(tmp_path, _expected_m2()))
    with pytest.raises(ValueError, match=f"must be M2 = {_expected_m2():.2f} pp"):
        write_fixed_margin_registration(study_file, _pilot(), store="pilot",
                                        margins_path=_margins(tmp_path, _expected_m2() + 0.5))
    assert study_file.read_text() == DECLARED  # nothing written


def test_the_declaration_is_the_registered_file_above_its_registration():
    assert "\nregime:" not in DECLARED and "REGISTRATION" not in DECLARED and "comparisons_planned:" in DECLARED
    assert DECLARATION.read_text().startswith(DECLARED.rstrip("\n"))
    assert declaration_text(DECLARED) == DECLARED  # an unregistered file is its own declaration


def test_the_committed_registration_follows_from_the_committed_pilot(tmp_path):
    """Re-registering the declaration from the pilot's committed records writes the committed registration."""
    study_file = tmp_path / "noise_study.yaml"
    study_file.write_text(DECLARED)
    write_fixed_margin_registration(study_file, load_all(ROOT / "results" / "noise_study" / "pilot"),
                                    store="results/noise_study/pilot", margins_path=ROOT / "book" / "margins.yaml")
    again, committed = yaml.safe_load(study_file.read_text()), yaml.safe_load(DECLARATION.read_text())
    again["pilot_result"].pop("written"), committed["pilot_result"].pop("written")
    assert again == committed


# --- what the chapter shows of the pilot: the plans beside the interleaved cost, the curves -----------------

from sparsam.book.study import load_candidates


def _bench(sgd_ms: dict, sam_ms: dict, rung: str = "fp32 channels-last") -> dict:
    rows = [{"regime": f"width {w}", "optimizer": name, "rung": r, "cpu_ms_per_step": ms * (1 if r == rung else 9)}
            for r in (rung, "fp32 NCHW") for w in sgd_ms for name, ms in (("SGD", sgd_ms[w]), ("SAM", sam_ms[w]))]
    return {"fastest_faithful": rung, "throughput": rows}


def test_the_interleaved_cost_reads_the_benchmarks_rung_and_the_pilots_steps():
    spec, records = load_candidates(DECLARATION), _pilot()
    plans = rules.candidate_plans(spec, records)
    widths = {name: spec.settings(name)["width"] for name in ("A", "B")}
    cost = rules.side_by_side_cpu_seconds(spec, plans, records, _bench({widths["A"]: 10.0, widths["B"]: 40.0},
                                                                       {widths["A"]: 25.0, widths["B"]: 70.0}))
    steps = 80  # the constructed records: 50 + 30 steps
    for name, (sgd, sam) in (("A", (0.010, 0.025)), ("B", (0.040, 0.070))):  # by hand: 1 SGD and 7 SAM-like runs
        assert cost[name] == pytest.approx(plans[name].seeds * steps * (sgd + 7 * sam))
    assert cost["A"] != pytest.approx(plans["A"].cpu_seconds)  # not the pilot runs' own CPU time
    with pytest.raises(ValueError, match="times no SGD and SAM at width"):
        rules.side_by_side_cpu_seconds(spec, plans, records, _bench({widths["A"]: 10.0}, {widths["A"]: 25.0}))


def test_the_plans_frame_gives_each_candidates_reading_and_both_costs():
    spec, records = load_candidates(DECLARATION), _pilot()
    plans = rules.candidate_plans(spec, records)
    frame = rules.plans_frame(plans, {"A": 3600.0 * 2.5, "B": 3600.0 * 4.0})
    assert list(frame.index) == ["A", "B"]
    v = plans["A"].verdict
    d = precision(v.low, v.high)  # to the precision of the interval
    assert frame.loc["A", "SAM − SGD (pp)"] == f"{v.diff:.{d}f} [{v.low:.{d}f}, {v.high:.{d}f}]"
    assert frame.loc["B", "study CPU-hours (interleaved benchmark)"] == 4.0
    assert frame.loc["B", "study CPU-hours (pilot runs: the registered rule)"] == round(plans["B"].cpu_seconds / 3600, 1)
    assert "study CPU-hours (interleaved benchmark)" not in rules.plans_frame(plans).columns


def test_the_pilot_curves_name_each_candidate_method_and_radius():
    spec, records = load_candidates(DECLARATION), _pilot()
    for r in records:
        r["summary"]["run_id"] = f"{r['summary']['config']['optimizer']}-{r['summary']['config']['seed']}-{id(r)}"
    curves = rules.pilot_curves(spec, records)
    runs = curves.groupby(["candidate", "method"])["run_id"].nunique().to_dict()
    assert runs == {("A", "SGD"): 3, ("A", "SAM"): 3, ("A", "SAM-ON ρ = 0.5"): 3, ("A", "SAM-ON ρ = 2"): 3,
                    ("B", "SGD"): 3, ("B", "SAM"): 3}
    assert len(curves) == 2 * sum(runs.values())  # two epochs a record
