"""The study's cost side by side (sparsam.book.study.cost): real trainers at a tiny scale, exact ratios on
constructed times, the registration of the interleaved measurement and the decisions taken from it."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from sparsam.book import layout
from sparsam.book.study import cost as study_cost, model as study_model
from sparsam.book.stats import margins
from sparsam.book.study import comparison_label, load_study
from sparsam.book.processors import processor_label
from sparsam.experiment import provenance
from sparsam.experiment.optimizers import numerics
from sparsam.experiment.train import Trainer

from conftest import REPO, changed_yaml, data_file


@pytest.fixture(scope="module")
def tiny():
    """The registered study with its regime shrunk to a few steps (every configuration kept)."""
    data_file("cifar10-jpeg.npz")
    study = load_study()
    return dataclasses.replace(study, regime={**study.regime, "n_train": 160, "n_test": 64, "width": 4,
                                              "epochs": 3, "num_samples": 16})


def test_measure_interleaves_the_registered_configurations_one_epoch_at_a_time(tiny, monkeypatch):
    names = ["sgd", "sam-every-2", "cost-aware-0.9"]
    config_of = {name: next(c for c in tiny.configs(name) if c.seed == 0) for name in names}
    assert len(set(config_of.values())) == len(names)
    trained = []   # (configuration, epoch) of every epoch trained, in the order they ran
    train_epoch = Trainer.train_epoch

    def recording(self, epoch, progress):
        trained.append((next(n for n, c in config_of.items() if c == self.config), epoch))
        return train_epoch(self, epoch, progress)

    monkeypatch.setattr(Trainer, "train_epoch", recording)
    readings = iter(range(100))  # a load average that counts the epochs begun
    measured = study_cost.measure(tiny, names, rounds=3, loadavg=lambda: (float(next(readings)), 0.0, 0.0))
    # one warm-up epoch each, then rounds in which every configuration trains its next epoch once, the
    # order rotated by one each round: what the trainer saw, not what the record says
    assert trained == ([(n, 0) for n in names] + [(n, 1) for n in names]
                       + [(n, 2) for n in names[1:] + names[:1]] + [(n, 3) for n in names[2:] + names[:2]])
    assert list(measured.columns) == ["round", "configuration", "cpu_seconds_per_step", "epoch", "order", "load"]
    assert list(measured["load"]) == list(measured["order"])  # each epoch's load read as it began, nothing else
    assert sorted(measured["configuration"].unique()) == sorted(names)
    assert measured.groupby("configuration").size().tolist() == [3, 3, 3]
    assert (measured["cpu_seconds_per_step"] > 0).all()
    table = study_cost.ratios(measured)
    assert table.set_index("configuration").loc["sgd", "cost"] == pytest.approx(1.0)
    # the alternation as observed from the calls: the 3 warm-up epochs took positions 0-2, then each
    # round trains each configuration once (its epoch = round + 1), rounds one after the other, the
    # order rotated by one each round
    assert study_cost.alternation_problem(measured) is None
    assert sorted(measured["order"]) == list(range(3, 12))
    assert (measured["epoch"] == measured["round"] + 1).all()
    firsts = [rows.sort_values("order")["configuration"].tolist() for _, rows in measured.groupby("round")]
    assert firsts == [names, names[1:] + names[:1], names[2:] + names[:2]]


def test_a_measurement_record_keeps_the_load_at_its_start_and_end_and_the_processor(tiny):
    readings = iter([(3.0, 2.0, 1.0)] + [(5.0, 4.0, 3.0)] * 6 + [(9.0, 8.0, 7.0)])  # 2 warm-ups, 2 rounds of 2
    ticks = iter([10.0, 70.0])
    record = study_cost.measurement_record(tiny, ["sgd", "sam"], rounds=2, seed=0, args={"rounds": 2},
                                           loadavg=lambda: next(readings), clock=lambda: next(ticks))
    assert record["machine"]["loadavg_start"] == [3.0, 2.0, 1.0] and record["machine"]["loadavg_end"] == [9.0, 8.0, 7.0]
    assert record["machine"]["wall_seconds"] == 60.0 and record["args"] == {"rounds": 2}
    assert record["provenance"]["processor"] == provenance.processor()
    assert record["numerics"] == {n: numerics(next(c for c in tiny.configs(n) if c.seed == 0).to_dict())
                                  for n in ("sgd", "sam")} and record["numerics"]["sgd"] == {}
    assert [row["load"] for row in record["measured"]] == [5.0] * 4
    assert {row["configuration"] for row in record["ratios"]} == {"sgd", "sam"}
    record["measured"] = pd.DataFrame(record["measured"])
    assert processor_label(record["provenance"]) in study_cost.describe(
        {**record, "args": {"seed": 0, "rounds": 2}, "provenance": {**record["provenance"], "git_dirty": False}})


def test_a_cost_record_is_stale_when_any_configuration_it_measured_runs_other_numerics(registration):
    """Every configuration measured counts, not SSAM-F's alone: the sparse ascent pass and the cost model are
    algorithms only cost-aware 0.9 runs."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    study = registration.study
    names = ["sgd", "sam", "cost-aware-0.9"]
    versions = {n: numerics(next(c for c in study.configs(n) if c.seed == 0).to_dict()) for n in names}
    check = {"provenance": {"git_commit": head, "git_dirty": False}, "args": {"seed": 0}, "numerics": versions,
             "measured": _long({n: [1.0, 1.0] for n in names})}
    assert study_cost.stale_reason(check, study) is None
    older = {**versions, "cost-aware-0.9": {**versions["cost-aware-0.9"], "cost_model": 0}}
    reason = study_cost.stale_reason({**check, "numerics": older}, study)
    assert reason.startswith("cost-aware-0.9: numerics changed since") and "cost_model 0 -> 1" in reason
    assert study_cost.stale_reason({**check, "numerics": older}) is None  # SSAM-F's algorithms alone: blind to it
    dirty = {**check, "provenance": {"git_commit": head, "git_dirty": True}}
    assert study_cost.stale_reason(dirty, study).startswith("made in a dirty tree")
    stranger = {**check, "measured": _long({"sgd": [1.0, 1.0], "adam": [1.0, 1.0]})}
    assert study_cost.stale_reason(stranger, study) == "adam is not a configuration of the study with seed 0"
    for path in (registration.record, REPO / "results" / "study" / "cost_side_by_side.json"):
        assert study_cost.stale_reason(study_cost.read(path), study) is None  # the committed records are current


def test_two_measurements_disagree_where_neither_interval_holds_the_others_ratio():
    first = _long({"sgd": [1.0, 1.0, 1.0], "sam": [1.9, 2.0, 2.1], "cheap": [1.24, 1.25, 1.26],
                   "wide": [1.2, 1.35, 1.5]})
    second = _long({"sgd": [1.0, 1.0, 1.0], "sam": [1.95, 2.0, 2.05], "cheap": [1.34, 1.35, 1.36],
                    "wide": [1.44, 1.45, 1.46], "only-here": [3.0, 3.0, 3.0]})
    table = study_cost.between_measurements(first, second).set_index("configuration")
    assert list(table.index) == ["cheap", "wide", "sam"]  # timed in both, cheapest first, SGD (the unit) left out
    assert table.loc["sam", "within"] and not table.loc["cheap", "within"]
    assert not table.loc["wide", "within"]  # the wide interval holds the other's ratio, the narrow one not
    # one measurement read by a rule, paired by round: as decide on the rounds themselves
    verdict = study_cost.decide_pair(second, "cost_time_vs_sgd_at_most_1_25", "cheap")
    assert verdict.status == "not reproduced" and verdict.n == 3
    assert verdict.diff == pytest.approx(np.mean(np.log([1.34, 1.35, 1.36])), rel=1e-6)  # the mean log ratio
    with pytest.raises(ValueError, match="measured must time 'adam'"):
        study_cost.decide_pair(second, "cost_time_vs_sgd_at_most_1_25", "adam")
    interval = lambda values: stats.t.interval(0.95, 2, loc=np.mean(np.log(values)), scale=stats.sem(np.log(values)))
    low, high = np.exp(interval([1.24, 1.25, 1.26]))
    mean = math.exp(np.mean(np.log([1.24, 1.25, 1.26])))
    assert table.loc["cheap", "first"] == f"{mean:.3f} [{low:.3f}, {high:.3f}]"  # to the interval's precision


def test_measure_rejects_unknown_names_a_missing_sgd_and_a_seed_not_registered(tiny):
    with pytest.raises(ValueError, match="names must be configurations of the study"):
        study_cost.measure(tiny, ["sgd", "adam"], rounds=2)
    with pytest.raises(ValueError, match="names must include 'sgd'"):
        study_cost.measure(tiny, ["sam"], rounds=2)
    with pytest.raises(ValueError, match="seed must be"):
        study_cost.measure(tiny, ["sgd", "sam-every-2"], rounds=2, seed=4)  # sam-every-2 has seeds 0-2


def _long(times: dict[str, list[float]], blocks: bool = False) -> pd.DataFrame:
    """A measurement in measure()'s format: round by round (each round's epochs together, in the order
    of ``times``), or, with ``blocks``, every round of one configuration before the next configuration."""
    k, n = len(times), len(next(iter(times.values())))
    return pd.DataFrame([{"round": r, "configuration": name, "cpu_seconds_per_step": t, "epoch": r + 1,
                          "order": k + (j * n + r if blocks else r * k + j)}
                         for j, (name, values) in enumerate(times.items()) for r, t in enumerate(values)])


def test_ratios_divide_by_sgd_of_the_same_round_and_average_on_the_log_scale():
    # SGD slows down by 2x in the second round (load); SAM takes exactly twice SGD's time in each round
    # and "x" takes 1x then 4x SGD's: its geometric mean is 2, its t-interval that of log(1), log(4)
    table = study_cost.ratios(_long({"sgd": [1.0, 2.0], "sam": [2.0, 4.0], "x": [1.0, 8.0]})).set_index(
        "configuration")
    assert table.loc["sam", "cost"] == pytest.approx(2.0)
    assert table.loc["sam", "cost_low"] == pytest.approx(2.0) and table.loc["sam", "cost_high"] == pytest.approx(2.0)
    half = 12.7062047362 * math.log(4) / 2   # t(0.975, 1) * sd / sqrt(2), sd = log(4) / sqrt(2)
    assert table.loc["x", "cost"] == pytest.approx(2.0)
    assert table.loc["x", "cost_low"] == pytest.approx(2.0 * math.exp(-half))
    assert table.loc["x", "cost_high"] == pytest.approx(2.0 * math.exp(half))
    assert list(table["rounds"]) == [2, 2, 2]
    # the records' way (each configuration's mean over SGD's mean) would call SAM 3/1.5 = 2 too, but "x"
    # 4.5/1.5 = 3: the per-round pairing is what removes the load
    with pytest.raises(ValueError, match="'sgd'"):
        study_cost.ratios(_long({"sam": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="at least 2 rounds"):
        study_cost.ratios(_long({"sgd": [1.0], "sam": [2.0]}))


def test_beside_records_sets_both_costs_side_by_side():
    side = study_cost.ratios(_long({"sgd": [1.0, 1.0], "sam": [2.0, 2.0], "x": [1.5, 1.5]}))
    points = pd.DataFrame({"label": ["sgd", "sam"], "cost": [1.0, 2.2], "cost_low": [0.9, 2.0],
                           "cost_high": [1.1, 2.4]})
    table = study_cost.beside_records(side, points).set_index("configuration")
    assert table.loc["sam", "records / side by side"] == 1.1
    assert table.loc["sam", "records (SGD steps)"] == "2.20 [2.00, 2.40]"
    assert table.loc["sam", "side by side (SGD steps)"] == "2.00 [2.00, 2.00]"
    assert table.loc["x", "records (SGD steps)"] == "no record"
    assert np.isnan(table.loc["x", "records / side by side"])


def test_read_describe_and_staleness_of_a_record(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    record = {"machine": {"threads": 1, "loadavg_start": [2.94, 2.5, 2.2], "loadavg_end": [3.06, 3.0, 2.9],
                          "wall_seconds": 600.0},
              "provenance": {"git_commit": head, "git_dirty": False},
              "args": {"seed": 0, "rounds": 5},
              "measured": _long({"sgd": [1.0, 2.0], "sam": [2.0, 4.0]}).to_dict(orient="records")}
    path = tmp_path / "check.json"
    path.write_text(json.dumps(record))
    check = study_cost.read(path)
    assert study_cost.ratios(check["measured"]).set_index("configuration").loc["sam", "cost"] == pytest.approx(2.0)
    assert study_cost.stale_reason(check) is None
    assert study_cost.describe(check) == (f"seed 0, 5 rounds after one warm-up epoch each, 1 thread(s), load average "
                                          f"2.9 at the start and 3.1 at the end, 10 minutes, no processor recorded "
                                          f"(made before records named it), commit {head[:7]}")
    named = {**check, "provenance": {**check["provenance"], "processor": {"model": "Zen 4", "capability": "AVX512",
                                                                        "mkl": "2024.2", "onednn": "3.12.0"}}}
    assert ", Zen 4 (AVX512; MKL 2024.2, oneDNN 3.12.0), commit" in study_cost.describe(named)
    dirty = {**check, "provenance": {"git_commit": head, "git_dirty": True}}
    assert "dirty" in study_cost.stale_reason(dirty) and "(stale: made in a dirty tree" in study_cost.describe(dirty)
    assert study_cost.stale_reason({**check, "provenance": {}}) == "unknown commit (not recorded)"


# ---- the registered measurement ----------------------------------------------------------------------

REGISTERED = ["sgd", "sam", "sam-every-2", "cost-aware-0.9", "ssam-f-0.9", "ssam-f-0.5"]


@pytest.fixture(scope="module")
def registration():
    return study_model.load_cost_registration()


def _write_changed(tmp_path, **changes) -> Path:
    return changed_yaml(REPO / layout.COST_REGISTRATION, tmp_path, "registration.yaml", **changes)


def test_the_registration_names_every_cost_comparison_of_the_study_and_its_configurations(registration, tmp_path):
    study = load_study()
    units = margins()
    cost = [c for c in study.comparisons if units[c.claim]["unit"] == "ratio"]
    assert len(cost) == 5 and registration.comparisons == tuple(cost)
    assert registration.rounds == 30 and registration.threads == 1 and registration.seed == 0
    assert sorted(registration.configurations) == sorted(REGISTERED)
    assert all(name in study.configurations and 0 in study.configurations[name][1]
               for name in registration.configurations)
    assert registration.record == REPO / "results" / "study" / "cost_interleaved.json"
    with pytest.raises(ValueError, match="comparisons must be the study's cost comparisons"):
        study_model.load_cost_registration(_write_changed(tmp_path, comparisons=[
            {"claim": "cost_time_ssam_vs_sam", "a": "ssam-f-0.5", "b": "sam"}]), study)
    with pytest.raises(ValueError, match="configurations must be"):
        study_model.load_cost_registration(_write_changed(tmp_path, measurement__configurations=REGISTERED[:-1]), study)
    with pytest.raises(ValueError, match="configurations must be"):
        study_model.load_cost_registration(_write_changed(tmp_path, measurement__configurations=REGISTERED + ["sgd"]),
                                     study)
    with pytest.raises(ValueError, match="rounds must be an integer >= 3"):
        study_model.load_cost_registration(_write_changed(tmp_path, measurement__rounds=2), study)
    with pytest.raises(ValueError, match="threads must be 1"):
        study_model.load_cost_registration(_write_changed(tmp_path, measurement__threads=2), study)
    with pytest.raises(ValueError, match="seed must be registered for every configuration"):
        study_model.load_cost_registration(_write_changed(tmp_path, measurement__seed=4), study)  # rest: seeds 0-2
    with pytest.raises(ValueError, match="unit must be"):
        study_model.load_cost_registration(_write_changed(tmp_path, measurement__unit="wall seconds"), study)


def test_the_registered_rounds_follow_from_the_pilots_spread(registration):
    pilot = registration.pilot
    table = study_cost.plan(study_cost.read(REPO / pilot["record"])["measured"], registration.comparisons,
                            level=pilot["level"], target=pilot["target"], min_rounds=pilot["min_rounds"],
                            max_rounds=pilot["max_rounds"])
    assert len(table) == len(pilot["plan"])
    for (_, row), written in zip(table.iterrows(), pilot["plan"]):
        assert (row["a"], row["b"]) == (written["a"], written["b"])
        for field in ("pilot_ratio", "sd_log", "distance_log"):
            digits = len(str(written[field]).split(".")[1])
            assert round(row[field], digits) == pytest.approx(written[field]), field
        assert row["rounds_needed"] == written["rounds_needed"]
    assert study_cost.choose_rounds(list(table["rounds_needed"]), len(registration.configurations)) == \
        registration.rounds
    # the comment's 256 rounds for the comparison out of reach
    out = table[table["rounds_needed"].isna()].iloc[0]
    assert study_cost.rounds_needed(out["sd_log"], out["distance_log"], max_rounds=1000) == 256


def test_power_matches_a_simulation_of_the_t_interval_and_rounds_needed_is_the_fewest():
    rng = np.random.default_rng(0)
    n, sd, distance, trials = 8, 0.05, 0.04, 20000
    d = rng.normal(distance, sd, size=(trials, n))
    half = stats.t.ppf(0.975, n - 1) * d.std(axis=1, ddof=1) / math.sqrt(n)
    simulated = float(np.mean(d.mean(axis=1) - half > 0))
    predicted = study_cost.power(n, sd, distance)
    assert abs(simulated - predicted) < 4 * math.sqrt(predicted * (1 - predicted) / trials)
    assert 0.3 < predicted < 0.7   # a case that tells power apart from 0 or 1
    needed = study_cost.rounds_needed(sd, distance)
    assert study_cost.power(needed - 1, sd, distance) < 0.8 <= study_cost.power(needed, sd, distance)
    assert study_cost.power(5, sd, 0.0) == pytest.approx(0.025)  # at the threshold: the one-sided tail
    assert study_cost.rounds_needed(sd, 0.0, max_rounds=200) is None
    with pytest.raises(ValueError, match="sd must be in"):
        study_cost.power(5, 0.0, 0.1)
    with pytest.raises(ValueError, match="rounds must be an integer >= 2"):
        study_cost.power(1, 0.1, 0.1)
    with pytest.raises(ValueError, match="cycle must be"):
        study_cost.choose_rounds([3], 0)
    assert study_cost.choose_rounds([16, None, 3], 6) == 18
    with pytest.raises(ValueError, match="needed must hold"):
        study_cost.choose_rounds([None], 6)


def _constructed(rounds: int, ratios: dict[str, float], noise: float, seed: int = 1) -> pd.DataFrame:
    """SGD's time drifts by a factor up to 2 over the rounds (the load); every other configuration costs
    its ratio times SGD's in the same round, times a log-normal noise of SD ``noise``."""
    rng = np.random.default_rng(seed)
    sgd = 0.04 * np.exp(np.linspace(0, math.log(2), rounds)) * np.exp(rng.normal(0, noise, rounds))
    times = {"sgd": sgd.tolist()}
    for name, ratio in ratios.items():
        times[name] = (ratio * sgd * np.exp(rng.normal(0, noise, rounds))).tolist()
    return _long(times)


def _independent(a: np.ndarray, b: np.ndarray, margin: float) -> tuple[float, float, float, str]:
    """The ratio a / b paired by round: geometric mean, 95% t-interval, and the lower-is-better rule."""
    d = np.log(a) - np.log(b)
    low, high = stats.t.interval(0.95, d.size - 1, loc=d.mean(), scale=stats.sem(d))
    status = ("reproduced" if high < math.log(margin) else "not reproduced" if low > math.log(margin)
              else "inconclusive")
    return math.exp(d.mean()), math.exp(low), math.exp(high), status


def test_decide_costs_matches_an_independent_paired_computation(registration):
    measured = _constructed(30, {"sam": 1.75, "sam-every-2": 1.45, "cost-aware-0.9": 1.25, "ssam-f-0.9": 1.1,
                                 "ssam-f-0.5": 1.75}, noise=0.03)
    decided = study_cost.decide_costs(registration, measured)
    wide = measured.pivot(index="round", columns="configuration", values="cpu_seconds_per_step")
    statuses = {}
    for c, verdict in decided.items():
        ratio, low, high, status = _independent(wide[c.a].to_numpy(), wide[c.b].to_numpy(),
                                                margins()[c.claim]["margin"])
        assert (math.exp(verdict.diff), math.exp(verdict.low), math.exp(verdict.high)) == pytest.approx(
            (ratio, low, high))
        assert verdict.status == status and verdict.n == 30 and verdict.unit == "ratio"
        statuses[c.a, c.b] = status
    # the constructed ratios make the rules tell the cases apart
    assert statuses == {("sam-every-2", "sgd"): "not reproduced", ("cost-aware-0.9", "sgd"): "inconclusive",
                        ("ssam-f-0.9", "sgd"): "reproduced", ("ssam-f-0.5", "sam"): "inconclusive",
                        ("cost-aware-0.9", "sam"): "reproduced"}
    # pairing by round removes SGD's drift: unpaired, the same data give a far wider interval
    unpaired = stats.t.interval(0.95, 58, loc=0, scale=math.sqrt(np.log(wide["ssam-f-0.9"]).var(ddof=1) / 30
                                                                 + np.log(wide["sgd"]).var(ddof=1) / 30))
    paired = decided[registration.comparisons[2]]
    assert paired.high - paired.low < (unpaired[1] - unpaired[0]) / 5


def test_decide_costs_needs_alternated_rounds_the_registered_rounds_and_configurations(registration):
    ratios = {"sam": 1.75, "sam-every-2": 1.45, "cost-aware-0.9": 1.25, "ssam-f-0.9": 1.1, "ssam-f-0.5": 1.75}
    times = _constructed(30, ratios, noise=0.03).pivot(index="round", columns="configuration",
                                                       values="cpu_seconds_per_step")
    blocked = _long({name: times[name].tolist() for name in ["sgd", *ratios]}, blocks=True)
    assert "overlap" in study_cost.alternation_problem(blocked)
    with pytest.raises(ValueError, match="measured must be interleaved: rounds 0 and 1 overlap"):
        study_cost.decide_costs(registration, blocked)
    with pytest.raises(ValueError, match="no record of the order"):
        study_cost.decide_costs(registration, blocked.drop(columns="order"))
    with pytest.raises(ValueError, match="round 3 times"):
        study_cost.decide_costs(registration, blocked.drop(index=blocked.index[(blocked["round"] == 3)
                                                                               & (blocked["configuration"] == "sam")]))
    with pytest.raises(ValueError, match="the 30 registered rounds, got 29"):
        study_cost.decide_costs(registration, _constructed(29, ratios, noise=0.03))
    with pytest.raises(ValueError, match="the registered configurations"):
        study_cost.decide_costs(registration, _constructed(
            30, {k: v for k, v in ratios.items() if k != "sam-every-2"}, noise=0.03))


def test_cost_rows_need_the_registered_measurement_and_replace_the_records_cost(registration):
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    ratios = {"sam": 1.75, "sam-every-2": 1.45, "cost-aware-0.9": 1.25, "ssam-f-0.9": 1.1, "ssam-f-0.5": 1.75}
    check = {"provenance": {"git_commit": head, "git_dirty": False},
             "args": {"registration": "results/study/cost_registration.yaml"},
             "measured": _constructed(30, ratios, noise=0.03)}
    rows = study_cost.cost_rows(registration, check)
    assert list(rows["claim"]) == [comparison_label(c) for c in registration.comparisons]
    assert set(rows["commits"]) == {head[:7]} and not rows["stale"].any()
    assert list(rows["status"]) == [v.status for v in study_cost.decide_costs(registration, check["measured"]).values()]
    for changed, reason in (({"args": {"registration": None}}, "names registration None"),
                            ({"provenance": {"git_commit": head, "git_dirty": True}}, "clean tree"),
                            ({"provenance": {"git_commit": "0" * 40, "git_dirty": False}},
                             "not in the record's commit")):
        with pytest.raises(ValueError, match=reason):
            study_cost.cost_rows(registration, {**check, **changed})
    with pytest.raises(ValueError, match="clean tree at a known commit"):
        study_cost.cost_rows(registration, {**check, "provenance": {"git_commit": None, "git_dirty": None}})
    sent = {**check, "provenance": {"git_commit": head, "git_dirty": None}}  # a tree sent without .git, commit named
    assert study_cost.registration_problem(sent, registration) is None


def test_the_study_reads_its_cost_comparisons_from_the_interleaved_rows(registration):
    from sparsam.book import study as study_module
    from sparsam.experiment.results import load_all
    registered = load_study()
    records = load_all(REPO / "results" / "study" / "runs")
    frame = study_module.study_frame(registered, records)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    ratios = {"sam": 1.75, "sam-every-2": 1.45, "cost-aware-0.9": 1.25, "ssam-f-0.9": 1.1, "ssam-f-0.5": 1.75}
    rows = study_cost.cost_rows(registration, {"provenance": {"git_commit": head, "git_dirty": False},
                                               "args": {"registration": "results/study/cost_registration.yaml"},
                                               "measured": _constructed(30, ratios, noise=0.03)})
    own = study_module.decide_comparisons(registered, frame, records, resamples=50)
    decided = study_module.decide_comparisons_interleaved(registered, frame, records, rows, resamples=50)
    assert list(decided.columns) == list(own.columns) and list(decided["claim"]) == list(own["claim"])
    cost = decided["unit"] == "ratio"
    assert cost.sum() == 5
    # each comparison's own decision comes from its source; the family is read over all of them after
    # the swap (Holm's step-down sees the interleaved p-values, not the records')
    family = ["family_status", "family_size", "sim_low", "sim_high"]
    own_columns = [c for c in decided.columns if c not in family]
    from_rows = [c for c in own_columns if c in rows.columns]
    pd.testing.assert_frame_equal(decided.loc[cost, from_rows].reset_index(drop=True),
                                  rows[from_rows].reset_index(drop=True), check_dtype=False)
    pd.testing.assert_frame_equal(decided.loc[~cost, own_columns], own.loc[~cost, own_columns], check_dtype=False)
    # the registered rule (the records' own timings) read beside the interleaved one, labelled added after the runs
    assert list(decided.loc[cost, "registered_status"]) == list(own.loc[cost, "status"])
    assert list(decided.loc[cost, "registered_text"]) == list(own.loc[cost, "text"])
    assert set(decided.loc[cost, "provenance"]) == {"added after the runs"}
    assert set(own["provenance"]) == {"registered", "added after the runs"}  # the records' cost is the registered rule
    assert set(own.loc[cost, "provenance"]) == {"registered"} and set(own["registered_text"]) == {""}
    assert (decided["family_size"] == len(decided)).all() and decided["family_status"].ne("").all()
    from sparsam.book import claims
    refamily = claims.family_wise(decided.assign(family_status="", sim_low=float("nan"), sim_high=float("nan")),
                                  study_module.premises(registered, frame))
    assert list(refamily["family_status"]) == list(decided["family_status"])
    assert set(decided.loc[cost, "n"]) == {30}   # rounds, not seeds
    with pytest.raises(ValueError, match="cost must decide every cost comparison"):
        study_module.decide_comparisons_interleaved(registered, frame, records, rows.iloc[1:], resamples=50)
    # the study's answer counts the accuracy seeds only: every planned seed is in, and n = 30 rounds of
    # the cost rows is complete by registration (pairing by seed would expect 3 or 5)
    at_margin = {**ratios, "ssam-f-0.9": 1.25}   # inconclusive against 1.25 SGD steps, like cost-aware-0.9
    rows = study_cost.cost_rows(registration, {"provenance": {"git_commit": head, "git_dirty": False},
                                               "args": {"registration": "results/study/cost_registration.yaml"},
                                               "measured": _constructed(30, at_margin, noise=0.03)})
    undecided = study_module.decide_comparisons_interleaved(registered, frame, records, rows, resamples=50)
    assert study_module.answer(registered, undecided).startswith("Not decided at this scale: every planned seed is in")


def test_the_committed_measurement_is_the_registered_one_and_was_alternated(registration):
    """The record that decides the study's cost: made from a clean tree holding the registration, the
    registered configurations and rounds, and the alternation seen in the order of its epochs."""
    check = study_cost.read(registration.record)
    assert study_cost.registration_problem(check, registration) is None
    measured = check["measured"]
    assert study_cost.alternation_problem(measured) is None
    assert measured["round"].nunique() == registration.rounds == check["args"]["rounds"]
    assert sorted(set(measured["configuration"])) == sorted(registration.configurations)
    assert check["machine"]["threads"] == 1 and check["args"]["seed"] == registration.seed
    k = len(registration.configurations)
    assert sorted(measured["order"]) == list(range(k, k * (registration.rounds + 1)))  # after k warm-up epochs
    positions = measured.assign(position=measured["order"] % k).groupby(["configuration", "position"]).size()
    assert len(positions) == k * k and set(positions) == {registration.rounds // k}  # each at each place alike
    assert len(study_cost.cost_rows(registration, check)) == len(registration.comparisons)


# --- a study on a GPU: the same measurement, timed on the GPU's clock -----------------------------------------

def _gpu_study(tmp_path):
    """The GPU study registered from a constructed pilot (sparsam.book.study.registering) in a copy of its file."""
    from sparsam.book.study.registering import write_registration
    from test_pilot import GPU, summary

    path = tmp_path / "gpu_study.yaml"
    path.write_text((REPO / "results/gpu_study/gpu_study.yaml").read_text())
    runs = [summary(GPU, c, o, seed, 0.9 + (0.01 + 0.002 * (seed - 101) if o == "sam" else 0.0))
            for c in ("A", "B") for seed in GPU["pilot"]["seeds"] for o in ("sgd", "sam")]
    write_registration(path, runs, store="s")
    return path, load_study(path)


def test_a_gpu_measurement_is_decided_like_a_cpu_one_from_its_own_column():
    cpu = _long({"sgd": [1.0, 2.0, 1.5], "sam": [2.0, 4.1, 2.9]})
    gpu = cpu.rename(columns={"cpu_seconds_per_step": "gpu_seconds_per_step"})
    assert study_cost.value_column(cpu) == "cpu_seconds_per_step" and study_cost.value_column(gpu) == \
        "gpu_seconds_per_step"
    pd.testing.assert_frame_equal(study_cost.ratios(cpu), study_cost.ratios(gpu))
    with pytest.raises(ValueError, match="exactly one of the columns"):
        study_cost.ratios(gpu.assign(cpu_seconds_per_step=1.0))
    with pytest.raises(ValueError, match="exactly one of the columns"):
        study_cost.ratios(gpu.drop(columns="gpu_seconds_per_step"))
    assert study_cost.CLOCKS["cuda"].read is __import__("time").perf_counter  # wall time, between synchronisations
    assert study_cost.CLOCKS["cpu"].read is __import__("time").process_time


def test_the_gpu_studys_cost_registration_names_the_gpu_unit(tmp_path):
    path, study = _gpu_study(tmp_path)
    assert study_model.study_device(study) == "cuda" and study_model.study_device(load_study()) == "cpu"
    mixed = dataclasses.replace(study, configurations={**study.configurations,
                                                       "sgd-cpu": ({"optimizer": "sgd", "device": "cpu", "amp": "off",
                                                                    "capture": "off"}, (0,))})
    with pytest.raises(ValueError, match="one of cpu, cuda"):
        study_model.study_device(mixed)
    comparisons = [{"claim": c.claim, "a": c.a, "b": c.b} for c in study_model.cost_comparisons(study)]
    assert [(c["a"], c["b"]) for c in comparisons] == [("ssam-f-0.5", "sam"), ("cost-aware-0.9", "sam")]
    spec = {"study": "gpu_study.yaml", "comparisons": comparisons, "pilot": {},
            "measurement": {"record": "cost_interleaved.json", "configurations": ["sgd", "sam", "ssam-f-0.5",
                                                                                   "cost-aware-0.9"],
                            "seed": 0, "threads": 4, "unit": study_cost.CLOCKS["cuda"].unit, "rounds": 12}}
    file = tmp_path / "cost_registration.yaml"
    file.write_text(yaml.safe_dump(spec))
    registration = study_model.load_cost_registration(file, study)
    assert registration.threads == 4 and registration.rounds == 12  # threads are the CPU study's constraint only
    file.write_text(yaml.safe_dump({**spec, "measurement": {**spec["measurement"], "unit": study_cost.UNIT}}))
    with pytest.raises(ValueError, match="unit must be 'GPU wall seconds.*the study trains on cuda"):
        study_model.load_cost_registration(file, study)


def test_the_registration_planned_from_a_pilot_reproduces_the_cpu_studys_written_one(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    written = yaml.safe_load((REPO / layout.COST_REGISTRATION).read_text())
    spec = study_cost.registration_from_pilot("results/study/cpu_study.yaml", written["pilot"]["record"],
                                              written["measurement"]["record"], max_rounds=written["pilot"]["max_rounds"])
    assert spec["comparisons"] == written["comparisons"]
    assert sorted(spec["measurement"]["configurations"]) == sorted(written["measurement"]["configurations"])
    assert spec["measurement"]["rounds"] == written["measurement"]["rounds"] == 30
    assert spec["measurement"]["unit"] == written["measurement"]["unit"]
    for mine, theirs in zip(spec["pilot"]["plan"], written["pilot"]["plan"]):
        assert (mine["a"], mine["b"], mine["rounds_needed"]) == (theirs["a"], theirs["b"], theirs["rounds_needed"])
        assert mine["pilot_ratio"] == pytest.approx(theirs["pilot_ratio"], abs=1e-3)
    path = tmp_path / "cost_registration.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert study_model.load_cost_registration(path).rounds == 30


def test_a_gpu_pilot_look_plans_a_registration_in_the_gpu_unit(tmp_path):
    path, study = _gpu_study(tmp_path)
    rng = np.random.default_rng(0)
    times = {"sgd": 0.010, "sam": 0.019, "ssam-f-0.5": 0.0195, "cost-aware-0.9": 0.014}
    look = _long({name: list(t * np.exp(rng.normal(0, 0.02, 5))) for name, t in times.items()}).rename(
        columns={"cpu_seconds_per_step": "gpu_seconds_per_step"})
    (tmp_path / "look.json").write_text(json.dumps({"measured": look.to_dict(orient="records")}))
    spec = study_cost.registration_from_pilot(path, tmp_path / "look.json", "cost_interleaved.json")
    assert spec["measurement"]["unit"] == study_cost.CLOCKS["cuda"].unit
    assert spec["measurement"]["configurations"] == ["sgd", "ssam-f-0.5", "sam", "cost-aware-0.9"]
    needed = [row["rounds_needed"] for row in spec["pilot"]["plan"]]
    assert spec["measurement"]["rounds"] == study_cost.choose_rounds(needed, 4) and spec["measurement"]["rounds"] % 4 == 0
    (tmp_path / "cost_registration.yaml").write_text(yaml.safe_dump(spec))
    assert study_model.load_cost_registration(tmp_path / "cost_registration.yaml", study).rounds == spec["measurement"]["rounds"]
    # both SSAM variants as costly as SAM, within the pilot's noise: no budget of 5 rounds decides either
    even = _long({name: list(0.019 * np.exp(rng.normal(0, 0.02, 5))) if name != "sgd" else [0.01] * 5
                  for name in times}).rename(columns={"cpu_seconds_per_step": "gpu_seconds_per_step"})
    (tmp_path / "even.json").write_text(json.dumps({"measured": even.to_dict(orient="records")}))
    with pytest.raises(ValueError, match="within max_rounds=5"):
        study_cost.registration_from_pilot(path, tmp_path / "even.json", "x.json", max_rounds=5)


def test_the_benchmark_writes_a_planned_registration_that_reads_back(tmp_path):
    target = tmp_path / "cost_registration.yaml"
    done = subprocess.run([sys.executable, "benchmarks/bench_study_cost.py", "--plan-registration",
                           "results/study/cost_side_by_side.json", str(target)], cwd=REPO, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"wrote {target}: 30 rounds of ")
    assert target.read_text().startswith("# Pre-registration of the interleaved cost measurement")
    assert study_model.load_cost_registration(target).rounds == 30
