"""A study's pilot read per declared candidate, and the declared rules that decide from it (sparsam.book.study.pilot)."""

from __future__ import annotations

import pytest
import yaml

from conftest import REPO
from sparsam.book.study import pilot
from sparsam.book.study.model import Candidates
from sparsam.book.stats import power, seeds_for_power
from sparsam.experiment.config import TrainConfig

GPU = yaml.safe_load((REPO / "results/gpu_study/gpu_study.yaml").read_text())
IMAGENET = yaml.safe_load((REPO / "results/imagenet_study/imagenet_study.yaml").read_text())


def summary(spec, candidate, optimizer, seed, acc, *, loss=0.5, wall=60.0, **changes):
    config = TrainConfig(**{**spec["common"], **spec["candidates"][candidate], **changes}, optimizer=optimizer,
                         seed=seed)
    return {"config": config.to_dict(), "final_test_acc": acc, "final_train_loss": loss,
            "wall_seconds_this_process": wall}


def pilot_runs(spec, gains, base=0.90, noise=(0.0, 0.002, -0.002)):
    """SGD and SAM on the pilot seeds of every candidate, SAM ahead by ``gains[candidate]`` (fraction)."""
    runs = []
    for candidate, gain in gains.items():
        for seed, wobble in zip(spec["pilot"]["seeds"], noise):
            runs.append(summary(spec, candidate, "sgd", seed, base + wobble))
            runs.append(summary(spec, candidate, "sam", seed, base + gain + wobble * 1.5, wall=120.0))
    return runs


def test_runs_are_paired_per_candidate_and_the_fast_path_rule_may_have_changed_them():
    runs = pilot_runs(GPU, {"A": 0.01, "B": 0.0})
    runs.append(summary(GPU, "A", "sgd", 0, 0.99))  # a study seed, not a pilot seed: left out
    runs.append(summary(GPU, "A", "sam", 100, 0.10, lr=0.1))  # another configuration: left out
    changed = [dict(r, config={**r["config"], "capture": "off"}) for r in runs[:2]]  # the rule turned graphs off
    pilots = pilot.candidate_pilots(Candidates.of(GPU), changed + runs[2:])
    assert pilots["A"].seeds == (100, 101, 102) and pilots["B"].seeds == (100, 101, 102)
    assert pilots["A"].sgd == pytest.approx((90.0, 90.2, 89.8)) and pilots["A"].sam == pytest.approx((91.0, 91.3, 90.7))
    assert pilots["A"].paired_sd == pytest.approx(0.1)  # the SAM - SGD differences 1.0, 1.1, 0.9
    assert pilots["A"].verdict.status == "reproduced" and pilots["B"].verdict.status == "inconclusive"
    assert pilots["A"].sam_wall_seconds == (120.0, 120.0, 120.0)


def test_the_gpu_rule_takes_the_first_candidate_where_sam_beats_sgd_else_the_papers_network():
    assert pilot.choose_by_sam_gain(pilot.candidate_pilots(Candidates.of(GPU), pilot_runs(GPU, {"A": 0.01, "B": 0.01})))[0] == "A"
    assert pilot.choose_by_sam_gain(pilot.candidate_pilots(Candidates.of(GPU), pilot_runs(GPU, {"A": 0.0, "B": 0.01})))[0] == "B"
    name, reason = pilot.choose_by_sam_gain(pilot.candidate_pilots(Candidates.of(GPU), pilot_runs(GPU, {"A": 0.0, "B": 0.0})))
    assert name == "A" and "no candidate" in reason
    empty = pilot.candidate_pilots(Candidates.of(GPU), [])
    assert empty["A"].seeds == () and pilot.choose_by_sam_gain(empty)[0] == "A"


def test_the_imagenet_rule_takes_the_cifar_stem_only_for_a_clear_sgd_gain_at_an_affordable_cost():
    def runs(sgd_b, wall_b):
        out = []
        for seed, wobble in zip(IMAGENET["pilot"]["seeds"], (0.0, 0.003, -0.003)):
            out += [summary(IMAGENET, "A", "sgd", seed, 0.80 + wobble), summary(IMAGENET, "A", "sam", seed, 0.81),
                    summary(IMAGENET, "B", "sgd", seed, sgd_b + wobble / 2),
                    summary(IMAGENET, "B", "sam", seed, 0.5, wall=wall_b)]
        return pilot.candidate_pilots(Candidates.of(IMAGENET), out)

    assert pilot.choose_stem(runs(0.83, 100.0))[0] == "B"
    assert pilot.choose_stem(runs(0.81, 100.0))[0] == "A", "1 pp: not the declared 2"
    assert pilot.choose_stem(runs(0.83, 200.0))[0] == "A", "a SAM run of 3.3 min: over the 2.5 declared"


def test_the_seed_rule_is_the_power_calculation_with_its_floor_and_cap():
    assert pilot.seeds_needed(0.1) == (5, pytest.approx(power(5, 0.5, 0.1)))  # the floor
    n = seeds_for_power(0.5, 0.4, target=0.8)
    assert 5 < n <= 10 and pilot.seeds_needed(0.4) == (n, pytest.approx(power(n, 0.5, 0.4)))
    capped, achieved = pilot.seeds_needed(2.0)
    assert capped == 10 and achieved < 0.8 and achieved == pytest.approx(power(10, 0.5, 2.0))
    with pytest.raises(ValueError, match="sd"):
        pilot.seeds_needed(float("nan"))
