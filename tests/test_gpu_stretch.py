"""The GPU study's pilot, as declared (results/gpu_study/) and as the stretch script runs it (scripts/gpu/)."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from conftest import REPO
from sparsam.experiment.config import TrainConfig
from sparsam.experiment.grid import is_study_file, load_train_grid

STUDY = yaml.safe_load((REPO / "results/gpu_study/gpu_study.yaml").read_text())
IMAGENET = yaml.safe_load((REPO / "results/imagenet_study/imagenet_study.yaml").read_text())
spec = importlib.util.spec_from_file_location("pilot_stretch", REPO / "scripts/gpu/pilot_stretch.py")
stretch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stretch)


@pytest.mark.parametrize("study", [STUDY, IMAGENET], ids=["gpu", "imagenet"])
def test_the_pilot_grids_are_the_declared_candidates_with_sgd_and_sam_on_pilot_seeds(study):
    pilot = study["pilot"]
    assert set(pilot["grids"]) == set(study["candidates"])
    for name, grid_file in pilot["grids"].items():
        configs = load_train_grid(REPO / grid_file)
        expected = {TrainConfig(**{**study["common"], **study["candidates"][name]}, optimizer=o, seed=s)
                    for o in pilot["configurations"] for s in pilot["seeds"]}
        assert set(configs) == expected, name
    assert min(pilot["seeds"]) >= 100, "pilot seeds are never study seeds (0, 1, 2, ...)"
    assert not is_study_file(study), "candidates, not yet a registration: nothing reads it as a study"


@pytest.mark.parametrize("grid_file", [*STUDY["pilot"]["grids"].values(), *IMAGENET["pilot"]["grids"].values()])
def test_the_smoke_grids_keep_the_optimizers_and_the_kind_of_data_at_a_cpu_size(grid_file):
    grid = yaml.safe_load((REPO / grid_file).read_text())
    configs = load_train_grid_from(stretch.smoke_grid(grid))
    assert {c.optimizer for c in configs} == {c.optimizer for c in load_train_grid(REPO / grid_file)}
    assert all(c.device == "cpu" and c.epochs == 1 and c.capture == "off" for c in configs)
    assert {c.dataset for c in configs} == ({"cifar10"} if grid["parameters"]["dataset"] == "cifar10"
                                            else {"imagenette-tiny"})


def load_train_grid_from(grid):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "grid.yaml"
        path.write_text(yaml.safe_dump(grid))
        return load_train_grid(path)


def test_the_chunks_come_back_as_one_bundle_and_a_calibration_scales_by_its_factor(tmp_path):
    import json
    import tarfile

    for name in ("pilot_A.tar.gz", "pilot_A.chunk.json", "pilot_B_first.tar.gz", "stretch.log"):
        (tmp_path / name).write_text(name)
    target = stretch.bundle(tmp_path)
    with tarfile.open(target) as tar:
        assert sorted(tar.getnames()) == ["pilot_A.chunk.json", "pilot_A.tar.gz", "pilot_B_first.tar.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pilot.tar", "stretch.log"]
    (tmp_path / "run.json").write_text(json.dumps({"summary": {"wall_seconds_this_process": 75.0}}))
    assert stretch.calibrated_minutes(tmp_path, "run") == pytest.approx(2.2 * (75 + stretch.START_SECONDS) / 60)


def _bench(cosine=0.999, distance=1e-4, totals=(10_000, 17_000, 18_000)):
    faith = {name: {"grad_cosine": cosine, "eps_cosine": 0.999} for name in ("SAM", "SSAM-F 0.5")}
    faith["graph_vs_eager"] = {name: {"relative_distance": distance} for name in ("SGD", "SAM", "SSAM-F 0.5", "SSAM-D 0.5")}
    processes = [{"optimizer": "SAM", "processes": n, "images_per_s_total": t, "images_per_s_each": [t / n] * n}
                 for n, t in zip((1, 2, 4), totals)]
    rows = [{"optimizer": "SAM", "path": stretch.FAST_ROW, "images_per_s": totals[0]}]
    return {"faithfulness": faith, "processes": processes, "throughput": rows, "args": {"width": 64}}


def test_the_fast_path_rule_keeps_it_only_when_every_check_passes():
    assert stretch.fast_path_rule(0, _bench()) == {**stretch.fast_path_rule(0, _bench()), "keep_fast_path": True,
                                                   "changes": {}, "reasons": []}
    failed = stretch.fast_path_rule(1, _bench())
    assert not failed["keep_fast_path"] and failed["changes"] == {"capture": "off"}
    far = stretch.fast_path_rule(0, _bench(distance=0.02))
    assert far["changes"] == {"capture": "off"} and "more than 1%" in far["reasons"][0]
    low = stretch.fast_path_rule(0, _bench(cosine=0.98))
    assert low["changes"] == {"capture": "off", "amp": "off"}
    assert stretch.fast_path_rule(0, None)["changes"] == {"capture": "off", "amp": "off"}


def test_runs_at_once_only_where_they_pay_and_the_estimate_follows_the_rate():
    assert stretch.concurrency(_bench())[0] == 4  # 18,000 > 1.1 x 10,000
    assert stretch.concurrency(_bench(totals=(10_000, 10_500, 10_900)))[0] == 1
    jobs, each = stretch.concurrency(_bench())
    grid_a = yaml.safe_load((REPO / STUDY["pilot"]["grids"]["A"]).read_text())
    minutes = stretch.run_minutes(grid_a, _bench(), jobs, each, smoke=False)
    epochs = STUDY["candidates"]["A"]["epochs"]
    assert minutes == pytest.approx((epochs * 52_500 / 4_500 + stretch.START_SECONDS) / 60)
    assert stretch.run_minutes(grid_a, _bench(), 1, each, smoke=False) < minutes
