"""A study's registration written from its pilot by the declared rules (sparsam.book.study.registering, ``register``)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from sparsam.book.study import registering as reg
from sparsam.book.stats import margins as declared_margins, power, seeds_for_power
from sparsam.book.study import load_study
from sparsam.experiment.config import TrainConfig
from test_pilot import GPU, IMAGENET, pilot_runs, summary

GPU_FILE = REPO / "results/gpu_study/gpu_study.yaml"
IMAGENET_FILE = REPO / "results/imagenet_study/imagenet_study.yaml"


def copy(tmp_path, source):
    target = tmp_path / source.name
    shutil.copy(source, target)
    return target


def spread_runs(spec, candidate, gain, wobbles):
    """SGD at 90% and SAM ahead by ``gain`` (fraction) plus a per-seed wobble: the paired SD is the wobbles' SD."""
    runs = []
    for seed, wobble in zip(spec["pilot"]["seeds"], wobbles):
        runs += [summary(spec, candidate, "sgd", seed, 0.90), summary(spec, candidate, "sam", seed, 0.90 + gain + wobble)]
    return runs


def test_the_gpu_registration_takes_the_declared_regime_and_seed_rules_and_copies_the_plan(tmp_path):
    path = copy(tmp_path, GPU_FILE)
    before = path.read_text()
    wobbles = (0.0, 0.004, -0.004)  # SAM - SGD: 1.0, 1.4, 0.6 pp, SD 0.4 pp
    runs = spread_runs(GPU, "A", 0.01, wobbles) + spread_runs(GPU, "B", 0.0, wobbles)
    reg.write_registration(path, runs, store="results/gpu_study/pilot", changes={"capture": "off"})
    text = path.read_text()
    assert text.startswith(before.rstrip("\n")), "nothing declared before the pilot is changed"
    spec = yaml.safe_load(text)
    n = max(5, seeds_for_power(0.5, 0.4, target=0.8))
    assert spec["pilot_result"]["chosen"] == "A" and spec["pilot_result"]["core_seeds"] == n
    assert spec["pilot_result"]["power_at_margin"] == pytest.approx(power(n, 0.5, 0.4), abs=1e-3)
    assert spec["seeds"] == {"core": list(range(n)), "fp32": [0, 1, 2], "rest": [0, 1, 2]}
    assert spec["regime"] == {**GPU["common"], **GPU["candidates"]["A"], "capture": "off"}
    assert spec["configurations"]["sgd-2x"]["epochs"] == 2 * GPU["candidates"]["A"]["epochs"]
    assert spec["comparisons"] == GPU["comparisons_planned"] and spec["correction"] == "holm"
    declared = declared_margins()
    assert all(spec["margins"][c["claim"]]["margin"] == declared[c["claim"]]["margin"] for c in spec["comparisons"])
    study = load_study(path)
    assert study.correction == "holm" and len(study.comparisons) == len(GPU["comparisons_planned"])
    sam = next(c for c in study.configs("sam") if c.seed == 0)
    assert sam == TrainConfig(**{**spec["regime"], "optimizer": "sam", "seed": 0})


def test_a_second_registration_or_a_short_pilot_is_refused_and_nothing_is_written(tmp_path):
    path = copy(tmp_path, GPU_FILE)
    short = spread_runs(GPU, "A", 0.01, (0.0, 0.006))  # two seeds: the rule needs three
    with pytest.raises(ValueError, match="candidate A has 2 seeds"):
        reg.write_registration(path, short, store="s")
    assert path.read_text() == GPU_FILE.read_text()
    reg.write_registration(path, spread_runs(GPU, "A", 0.01, (0.0, 0.006, -0.006)), store="s")
    registered = path.read_text()
    with pytest.raises(ValueError, match="already holds"):
        reg.write_registration(path, [], store="s")
    assert path.read_text() == registered


def test_when_sam_beats_sgd_nowhere_the_papers_network_is_registered_and_the_cap_states_its_power(tmp_path):
    path = copy(tmp_path, GPU_FILE)
    wobbles = (0.0, 0.03, -0.03)  # SD 3 pp: more than 10 seeds would be needed
    runs = spread_runs(GPU, "A", 0.0, wobbles) + spread_runs(GPU, "B", 0.0, wobbles)
    reg.write_registration(path, runs, store="s")
    result = yaml.safe_load(path.read_text())["pilot_result"]
    assert result["chosen"] == "A" and "no candidate" in result["reason"]
    assert result["core_seeds"] == 10 and result["power_at_margin"] == pytest.approx(power(10, 0.5, 3.0), abs=1e-3)


def test_the_imagenet_registration_follows_the_stem_rule_with_its_own_cap(tmp_path):
    path = copy(tmp_path, IMAGENET_FILE)
    runs = []
    for seed, wobble in zip(IMAGENET["pilot"]["seeds"], (0.0, 0.004, -0.004)):
        runs += [summary(IMAGENET, "A", "sgd", seed, 0.80), summary(IMAGENET, "A", "sam", seed, 0.81),
                 summary(IMAGENET, "B", "sgd", seed, 0.83 + wobble / 4),
                 summary(IMAGENET, "B", "sam", seed, 0.84 + wobble, wall=100.0)]
    reg.write_registration(path, runs, store="s")
    spec = yaml.safe_load(path.read_text())
    assert spec["pilot_result"]["chosen"] == "B" and spec["regime"]["model"] == "resnet50-cifar-stem"
    assert spec["seeds"] == {"core": list(range(max(5, seeds_for_power(0.5, 0.3, target=0.8))))}  # SD 0.75 x 0.4 pp
    assert len(load_study(path).configs()) == 4 * len(spec["seeds"]["core"])


def test_a_multiple_of_the_regime_needs_an_integer_there():
    with pytest.raises(ValueError, match="epochs"):
        reg._resolve({"epochs": "2 x regime"}, {"epochs": None})
    assert reg._resolve({"epochs": "3 x regime", "lr": 0.1}, {"epochs": 30}) == {"epochs": 90, "lr": 0.1}


def test_the_command_prints_a_dry_run_and_names_a_missing_store(tmp_path):
    path = copy(tmp_path, GPU_FILE)
    done = subprocess.run([sys.executable, "-m", "sparsam", "register", str(path), "--store", str(tmp_path / "none")],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"error: --store {tmp_path / 'none'} is not a folder of pilot records"]
    (tmp_path / "empty").mkdir()
    done = subprocess.run([sys.executable, "-m", "sparsam", "register", str(path), "--store", str(tmp_path / "empty"),
                           "--dry-run"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2 and "candidate A has 0 seeds" in done.stderr
    assert path.read_text() == GPU_FILE.read_text()
