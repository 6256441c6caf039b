"""Records as frames, pairing by seed, interval summaries, and the convergence rule on constructed data."""

from __future__ import annotations

import math
import statistics
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from sparsam.book.records import cost_summary, method_label, metrics_frame, paired, records_frame, summarize

from sparsam.book import convergence, stats

from sparsam.book import claims, flatness
from sparsam.book import stats

from conftest import REPO
from sparsam.experiment import results

from sparsam.experiment import robust_regression
from sparsam.experiment.config import TrainConfig

T_975_DF3 = 3.182446305284263  # Student t quantile, 0.975, 3 degrees of freedom


def head() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()


def record(optimizer: str, seed: int, acc: float, *, seconds: float | None = None, commit: str | None = None,
           **config) -> dict:
    """A constructed run record with the fields the frame reads."""
    cfg = TrainConfig(optimizer=optimizer, seed=seed, model="resnet-small", epochs=config.pop("epochs", 4), **config)
    summary = {"config": cfg.to_dict(), "final_test_acc": acc, "run_id": cfg.run_id(), "seconds_per_step": seconds,
               "provenance": {"git_commit": commit or head(), "git_dirty": False}}
    return {"summary": summary, "metrics": [{"epoch": 1, "test_acc": acc / 2}, {"epoch": 2, "test_acc": acc}]}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    runs = [record("sam", s, a, seconds=2.0 + s / 10) for s, a in enumerate([0.90, 0.91, 0.89, 0.92])]
    runs += [record("ssam-f", s, a, seconds=1.8, sparsity=0.9) for s, a in enumerate([0.905, 0.90, 0.895])]
    runs += [record("sgd", s, a, seconds=1.0) for s, a in enumerate([0.88, 0.885, 0.87])]
    runs += [record("sam", 0, 0.95, epochs=8, seconds=2.0)]
    return records_frame(runs)


def test_records_frame_of_the_committed_store():
    store = REPO / "results" / "runs"
    records = results.load_all(store)
    table = records_frame(records)
    assert len(table) == len(records) == len(list(store.glob("*.json")))
    for (_, row), rec in zip(table.iterrows(), records):
        summary = rec["summary"]
        assert row["run_id"] == summary["run_id"] and row["optimizer"] == summary["config"]["optimizer"]
        assert row["final_test_acc"] == pytest.approx(100 * summary["final_test_acc"])
        assert row["commit"] == summary["provenance"]["git_commit"][:7]
        assert row["has_correct"] == ("test_correct" in summary)
        if summary.get("seconds_per_step") is None:  # older records: not recorded
            assert math.isnan(row["seconds_per_step"])
    assert set(TrainConfig.__dataclass_fields__) <= set(table.columns)
    assert table["stale"].dtype == bool


def test_records_frame_fills_later_config_fields_with_defaults(frame):
    assert (frame["augment"] == "crop-flip-cutout").all() and (frame["label_noise"] == 0.0).all()
    assert not frame["stale"].any()  # made at HEAD, clean
    assert frame["mean_eps_norm"].isna().all()


def test_records_frame_reads_later_summary_fields():
    rec = record("ssam-f", 0, 0.9)
    rec["summary"].update(mean_eps_norm=0.07, sparse_step_flops_vs_sgd=1.4, cpu_seconds_per_step=0.5,
                          test_correct=results.pack_bits(np.array([True, False, True])))
    row = records_frame([rec]).iloc[0]
    assert (row["mean_eps_norm"], row["sparse_step_flops_vs_sgd"], row["cpu_seconds_per_step"]) == (0.07, 1.4, 0.5)
    assert row["has_correct"] and results.correctness(rec).tolist() == [True, False, True]
    assert results.correctness(record("sgd", 0, 0.9)) is None


def test_metrics_frame_has_one_row_per_epoch_in_percent(frame):
    runs = [record("sam", 0, 0.9), record("sgd", 1, 0.8)]
    table = metrics_frame(runs)
    assert list(table["epoch"]) == [1, 2, 1, 2] and list(table["seed"]) == [0, 0, 1, 1]
    assert table["test_acc"].tolist() == pytest.approx([45.0, 90.0, 40.0, 80.0])


def test_paired_pairs_by_seed_and_drops_unpaired_seeds(frame):
    a, b, seeds = paired(frame, {"optimizer": "ssam-f", "epochs": 4}, {"optimizer": "sam", "epochs": 4},
                                  "final_test_acc")
    assert seeds == [0, 1, 2]
    assert a.tolist() == pytest.approx([90.5, 90.0, 89.5]) and b.tolist() == pytest.approx([90.0, 91.0, 89.0])


def test_paired_refuses_several_configurations_naming_the_column(frame):
    a, _, seeds = paired(frame, {"optimizer": "sam"}, {"optimizer": "sgd"}, "final_test_acc")
    assert seeds == [0, 1, 2] and a[0] == pytest.approx(90.0)  # the only setting both have: 4 epochs
    both = pd.concat([frame, records_frame([record("sgd", 0, 0.93, epochs=8)])])
    with pytest.raises(ValueError, match="select on \\['epochs'\\]"):
        paired(both, {"optimizer": "sam"}, {"optimizer": "sgd"}, "final_test_acc")
    with pytest.raises(ValueError, match="method matches several configurations; select on \\['sparsity'\\]"):
        more = pd.concat([frame, records_frame([record("ssam-f", 0, 0.9, sparsity=0.5)])])
        paired(more, {"optimizer": "ssam-f"}, {"optimizer": "sam", "epochs": 4}, "final_test_acc")


def test_paired_refuses_two_runs_of_one_seed(frame):
    doubled = pd.concat([frame, frame[frame["optimizer"] == "sgd"]])
    with pytest.raises(ValueError, match="several runs of one configuration and seed"):
        paired(doubled, {"optimizer": "sam", "epochs": 4}, {"optimizer": "sgd", "epochs": 4},
                        "final_test_acc")


def test_paired_with_nothing_in_common_is_empty_and_bad_keys_raise(frame):
    a, b, seeds = paired(frame, {"optimizer": "ssam-d"}, {"optimizer": "sam", "epochs": 4},
                                  "final_test_acc")
    assert a.size == b.size == 0 and seeds == []
    with pytest.raises(ValueError, match="not columns"):
        paired(frame, {"optimiser": "sam"}, {"optimizer": "sgd"}, "final_test_acc")
    with pytest.raises(ValueError, match="value must be a column"):
        paired(frame, {"optimizer": "sam"}, {"optimizer": "sgd"}, "accuracy")


def test_paired_ignores_exactly_the_fields_that_do_not_act_on_a_side_s_optimizer():
    """config.ACTS_ON decides: SSAM-F's sparse ascent (pattern, normalize and ascent do not act on SAM) pairs
    with SAM; SSAM-D pairs with SSAM-F whatever SSAM-F's pattern and ascent, but only at its sparsity and
    normalisation (they act on both); against SAM, SSAM-D's two sparsities must be selected."""
    sparse = dict(sparsity=0.9, pattern="filter", normalize="masked", ascent="sparse")
    runs = [record("sam", s, a) for s, a in enumerate([0.90, 0.91])]
    runs += [record("ssam-f", s, a, **sparse) for s, a in enumerate([0.92, 0.93])]
    runs += [record("ssam-d", s, 0.5, sparsity=0.9, normalize="masked") for s in range(2)]
    runs += [record("ssam-d", s, 0.4, sparsity=0.5, normalize="masked") for s in range(2)]
    frame = records_frame(runs)
    a, b, seeds = paired(frame, {"optimizer": "ssam-f"}, {"optimizer": "sam"}, "final_test_acc")
    assert seeds == [0, 1] and a.tolist() == pytest.approx([92.0, 93.0]) and b.tolist() == pytest.approx([90.0, 91.0])
    a, b, seeds = paired(frame, {"optimizer": "ssam-f"}, {"optimizer": "ssam-d"}, "final_test_acc")
    assert seeds == [0, 1] and b.tolist() == pytest.approx([50.0, 50.0])  # the SSAM-D runs at SSAM-F's sparsity
    with pytest.raises(ValueError, match="select on \\['sparsity'\\]"):
        paired(frame, {"optimizer": "ssam-d"}, {"optimizer": "sam"}, "final_test_acc")


def test_summarize_gives_the_t_interval_per_group(frame):
    table = summarize(frame[frame["epochs"] == 4], "optimizer", "final_test_acc").set_index("optimizer")
    sam = [90.0, 91.0, 89.0, 92.0]
    half = T_975_DF3 * statistics.stdev(sam) / 2
    assert table.loc["sam", "n"] == 4
    assert table.loc["sam", ["mean", "low", "high"]].tolist() == pytest.approx(
        [statistics.mean(sam), statistics.mean(sam) - half, statistics.mean(sam) + half])
    one = summarize(frame[frame["epochs"] == 8], "optimizer", "final_test_acc").iloc[0]
    assert one["n"] == 1 and one["mean"] == pytest.approx(95.0) and math.isnan(one["low"])


def test_method_label_names_what_differs_from_the_papers_defaults():
    assert method_label(TrainConfig(optimizer="sam").to_dict()) == "SAM"
    assert method_label(TrainConfig(optimizer="ssam-f", sparsity=0.9).to_dict()) == "SSAM-F s=0.9"
    masked = TrainConfig(optimizer="ssam-f", pattern="layer", mask_rule="cost-aware", normalize="masked").to_dict()
    assert method_label(masked) == "SSAM-F s=0.5 layer, cost-aware, masked"


def test_cost_summary_measures_cost_in_sgd_steps(frame):
    table = cost_summary(frame[frame["epochs"] == 4]).set_index("label")
    assert table.loc["SGD", "cost"] == pytest.approx(1.0)
    assert table.loc["SAM", "cost"] == pytest.approx(2.15)  # mean of 2.0, 2.1, 2.2, 2.3 over SGD's 1.0
    assert table.loc["SSAM-F s=0.9", "mean"] == pytest.approx(90.0)
    assert list(table.index) == ["SGD", "SSAM-F s=0.9", "SAM"]  # cheapest first
    with pytest.raises(ValueError, match="SGD runs"):
        cost_summary(frame[frame["optimizer"] != "sgd"])


# --- the convergence rule ---------------------------------------------------------------------------

def test_bound_local_slope_matches_the_secant_of_log_t_over_sqrt_t():
    def f(t):
        return math.log(math.log(t) / math.sqrt(t))

    secant = (f(2000) - f(200)) / (math.log(2000) - math.log(200))  # -0.343: not -1/2
    assert convergence.bound_local_slope(2000) == pytest.approx(secant, abs=0.01)
    assert convergence.bound_local_slope(20000) < convergence.bound_local_slope(2000) < -0.3


def test_tail_slope_of_a_power_law_is_its_exponent():
    t = np.arange(1, 5001, dtype=float)
    assert convergence.tail_slope(3.0 * t**-0.5) == pytest.approx(-0.5, abs=0.01)
    assert convergence.tail_slope(np.full(5000, 0.2)) == pytest.approx(0.0, abs=1e-12)


def _noisy(rng: np.random.Generator, mean: np.ndarray, seeds: int) -> np.ndarray:
    return np.stack([mean * rng.chisquare(4, mean.size) / 4 for _ in range(seeds)])


def test_a_run_at_the_rate_is_converging():
    t = np.arange(1, 2001, dtype=float)
    runs = _noisy(np.random.default_rng(0), 1 / np.sqrt(t) + 10 * np.exp(-t / 20), 3)
    check = convergence.assess(runs)
    assert check.status == "converging" and convergence.classify(runs) == "converging"
    assert check.iterate[2] < convergence.ITERATE_SLOPE


def test_a_constant_floor_is_rejected_although_its_running_mean_falls_steeply():
    t = np.arange(1, 2001, dtype=float)
    runs = _noisy(np.random.default_rng(1), 0.05 + 50 * np.exp(-t / 30), 3)
    check = convergence.assess(runs)
    assert max(check.running_slopes) < -0.9  # the old rule (slope <= -0.4) called this "reproduced"
    assert check.rate_excess[2] < convergence.TOLERANCE  # the rate condition alone passes it
    assert check.status == "not converging"


def test_a_run_slower_than_the_bound_is_rejected():
    t = np.arange(1, 2001, dtype=float)
    check = convergence.assess(_noisy(np.random.default_rng(2), t**-0.1, 3))
    assert check.status == "not converging" and check.rate_excess[1] > convergence.TOLERANCE


def test_fewer_than_three_seeds_are_inconclusive():
    t = np.arange(1, 2001, dtype=float)
    runs = _noisy(np.random.default_rng(3), 1 / np.sqrt(t), 2)
    assert convergence.classify(runs) == "inconclusive"
    assert convergence.classify(np.concatenate([runs, runs[:1] * 1.01]), min_n=3) == "converging"


def test_running_mean_interval_is_the_t_interval_over_seeds_of_each_running_mean():
    runs = np.random.default_rng(4).uniform(0.5, 1.5, (3, 50))
    at = [1, 7, 50]
    mean, low, high = convergence.running_mean_interval(runs, at, level=0.9)
    for i, t in enumerate(at):
        assert (mean[i], low[i], high[i]) == pytest.approx(stats.mean_interval(runs[:, :t].mean(axis=1), 0.9),
                                                           rel=1e-12)
    assert low[0] < mean[0] < high[0]
    mean, low, high = convergence.running_mean_interval(runs[:1])  # one seed: its running mean, no interval
    assert np.allclose(mean, np.cumsum(runs[0]) / np.arange(1, 51), rtol=1e-15) and np.isnan(low).all()
    assert np.isnan(high).all() and len(mean) == 50
    with pytest.raises(ValueError, match="at must hold steps between 1 and 50"):
        convergence.running_mean_interval(runs, [0, 51])


@pytest.mark.parametrize("values, message", [
    (np.ones(20), "too short"), (np.ones((3, 2000)) * np.nan, "finite, non-negative"),
    (-np.ones(2000), "finite, non-negative"), (np.ones((2, 3, 2000)), "must be \\(seeds, steps\\)"),
])
def test_convergence_rejects_bad_input(values, message):
    with pytest.raises(ValueError, match=message):
        convergence.assess(values)


@pytest.mark.parametrize("rule, message", [({"tolerance": -0.1}, "tolerance must be in"),
                                           ({"iterate_slope": 0.1}, "iterate_slope must be in"),
                                           ({"min_n": 1}, "min_n must be an integer >= 2"),
                                           ({"start": 1.0}, "start must be in")])
def test_convergence_rejects_a_bad_rule(rule, message):
    with pytest.raises(ValueError, match=message):
        convergence.assess(np.ones((3, 2000)), **rule)


def test_the_negative_control_does_not_converge_and_the_theorem_schedule_does():
    torch.set_num_threads(1)
    problem = robust_regression.make_problem(4096, 20, 0)

    def runs(schedule: str) -> np.ndarray:
        return np.stack([robust_regression.run(problem, "SAM", 0.0, seed, steps=600, lr0=1.0, rho0=0.5, batch_size=8,
                                               schedule=schedule)[0] for seed in range(3)])

    assert convergence.classify(runs("constant")) == "not converging"  # constant ρ and step size
    assert convergence.classify(runs("decaying")) == "converging"      # η_t, ρ_t ∝ 1/√t


# --- flatness ---------------------------------------------------------------------------------------

def curvature(values: dict[str, list[float]], stderr: float = float("nan")) -> pd.DataFrame:
    rows = [{"method": m, "seed": k, "eigenvalue": 2 * v, "trace": v, "trace_stderr": stderr}
            for m, vs in values.items() for k, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_curvature_summary_over_seeds_and_from_the_estimator_for_one_seed():
    many = flatness.curvature_summary(curvature({"SAM": [10.0, 12.0, 11.0, 13.0]}, stderr=5.0), "trace")
    sam = [10.0, 12.0, 11.0, 13.0]
    half = T_975_DF3 * statistics.stdev(sam) / 2
    assert many.iloc[0][["mean", "low", "high", "n", "interval"]].tolist() == pytest.approx(
        [11.5, 11.5 - half, 11.5 + half, 4, "over seeds"])  # the seeds' spread, not the estimator's s.e.
    one = flatness.curvature_summary(curvature({"SGD": [20.0]}, stderr=1.0), "trace").iloc[0]
    assert (one["low"], one["high"]) == pytest.approx((20.0 - 1.959964, 20.0 + 1.959964))
    assert one["interval"] == "from the estimator's s.e., one seed"
    none = flatness.curvature_summary(curvature({"SGD": [20.0]}), "eigenvalue").iloc[0]
    assert math.isnan(none["low"]) and none["interval"] == "none"
    with pytest.raises(ValueError, match="measure must be a column"):
        flatness.curvature_summary(curvature({"SGD": [20.0]}), "sharpness")


def test_flatness_verdicts_decide_both_halves_of_the_claim():
    values = curvature({"SGD": [20.0, 22.0, 21.0], "SAM": [10.0, 11.0, 10.5], "SSAM-F": [10.2, 11.1, 10.4],
                        "SSAM-D": [18.0, 20.0, 19.0]})
    ssam_f = flatness.flatness_verdicts(values, scale="raw")  # the rules, on the raw measures of this frame
    assert list(ssam_f) == ["SSAM-F vs SAM: top Hessian eigenvalue, raw", "SSAM-F vs SAM: Hessian trace, raw",
                            "SSAM-F vs SGD: top Hessian eigenvalue, raw", "SSAM-F vs SGD: Hessian trace, raw"]
    assert {v.status for v in ssam_f.values()} == {"reproduced"}
    ssam_d = flatness.flatness_verdicts(values, method="SSAM-D", measures=("trace",), scale="raw")
    assert ssam_d["SSAM-D vs SAM: Hessian trace, raw"].status == "not reproduced"  # 1.8 times SAM's, margin 1.25
    assert ssam_d["SSAM-D vs SGD: Hessian trace, raw"].status == "reproduced"
    one_seed = flatness.flatness_verdicts(values[values["seed"] == 0], scale="raw")
    assert {v.status for v in one_seed.values()} == {"inconclusive"}


def test_tail_window_is_the_last_decade():
    assert convergence.tail_window(2000) == (200, 2000) and convergence.tail_window(2001) == (201, 2001)


def test_as_flat_as_sam_stands_family_wise_only_on_the_measure_where_sam_is_flatter_than_sgd():
    """Two premise rows, one per measure: each "as flat as SAM" row takes the one of its own measure."""
    values = curvature({"SGD": [20.0, 22.0, 21.0], "SAM": [10.0, 11.0, 10.5], "SSAM-F": [10.2, 11.1, 10.4]})
    values["trace"] = values["eigenvalue"].where(values["method"] != "SAM", values["eigenvalue"] * 2.1)  # SAM > SGD
    premise = flatness.premise_verdicts(values, scale="raw")
    assert list(premise) == ["SAM vs SGD: top Hessian eigenvalue, raw", "SAM vs SGD: Hessian trace, raw"]
    sam, sgd = (values[values["method"] == m].set_index("seed")["eigenvalue"] for m in ("SAM", "SGD"))
    expected = stats.compare(np.log(sam), np.log(sgd), margin=0.0, test="superiority", better="lower")
    assert premise["SAM vs SGD: top Hessian eigenvalue, raw"].diff == pytest.approx(expected.diff)
    assert premise["SAM vs SGD: top Hessian eigenvalue, raw"].status == "reproduced"
    assert premise["SAM vs SGD: Hessian trace, raw"].status == "not reproduced"
    rows = [claims.row(name, claim, verdict) for reference, claim in flatness.rules().items()
            for name, verdict in flatness.flatness_verdicts(values, claims={reference: claim}, scale="raw").items()]
    rows += [claims.row(name, flatness.rules(premise=True)["SGD"], verdict) for name, verdict in premise.items()]
    read = claims.family_wise(claims.claims_frame(rows)).set_index("claim")
    eigen, trace = "SSAM-F vs SAM: top Hessian eigenvalue, raw", "SSAM-F vs SAM: Hessian trace, raw"
    assert read.loc[eigen, "status"] == "reproduced" and read.loc[eigen, "family_status"] == "reproduced"
    assert read.loc[trace, "status"] == "reproduced"  # SSAM-F's trace is SAM's / 2.1: "as flat", unadjusted
    assert read.loc[trace, "family_status"] == stats.PREMISE_NOT_SHOWN  # SAM's trace is above SGD's
