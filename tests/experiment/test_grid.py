"""Training grids: expansion, validation, and real runs through submitit's local executor
(two points in parallel with one failing, a killed job resumed by the next run, a preempted job
requeued by submitit's checkpoint hook)."""

from __future__ import annotations

import io
import os
import platform
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import data_file
from sparsam.cli import build_parser
from sparsam.experiment.config import TrainConfig
from sparsam.experiment.jobs import ExecutorOptions
from sparsam.experiment.grid import config_arguments, expand, load_train_grid, run_train_grid
from sparsam.experiment.store import read_json

TINY = dict(model="resnet-small", width=4, n_train=64, n_test=32, epochs=1, batch_size=32)
LONGER = dict(TINY, n_train=256, epochs=6)  # long enough to be interrupted after its first checkpoint


def _grid(tmp_path: Path, parameters: dict, **grid) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"parameters": parameters, "grid": grid}))
    return path


def test_expand_is_the_product_over_sorted_names():
    points = expand({"epochs": 2, "seed": 9}, {"seed": [0, 1], "optimizer": ["sgd", "sam", "ssam-f"]})
    assert points == [{"epochs": 2, "optimizer": o, "seed": s} for o in ("sgd", "sam", "ssam-f") for s in (0, 1)]
    assert expand({"epochs": 2}, {}) == [{"epochs": 2}]
    for bad in ({"seed": []}, {"seed": 3}, {"seed": None}):
        with pytest.raises(ValueError, match="seed"):
            expand({}, bad)


def test_grid_file_gives_distinct_validated_configs(tmp_path):
    configs = load_train_grid(_grid(tmp_path, dict(TINY, seed=0), optimizer=["sgd", "sam"], seed=[0, 1, 0]))
    assert configs == [TrainConfig(**TINY, optimizer=o, seed=s) for o in ("sgd", "sam") for s in (0, 1)]
    path = tmp_path / "joined.yaml"
    path.write_text(yaml.safe_dump({"parameters": TINY, "grid": [{"optimizer": ["sgd", "sam"]},
                                                                 {"optimizer": ["ssam-f"], "sparsity": [0.5, 0.9]}]}))
    assert load_train_grid(path) == [TrainConfig(**TINY, optimizer="sgd"), TrainConfig(**TINY, optimizer="sam"),
                                     TrainConfig(**TINY, optimizer="ssam-f", sparsity=0.5),
                                     TrainConfig(**TINY, optimizer="ssam-f", sparsity=0.9)]
    path.write_text(yaml.safe_dump({"grid": [["sgd"]]}))
    with pytest.raises(ValueError, match="grid must be"):
        load_train_grid(path)
    with pytest.raises(ValueError, match="sparsity"):
        load_train_grid(_grid(tmp_path, dict(TINY, optimizer="ssam-f"), sparsity=[0.5, 1.5]))
    with pytest.raises(ValueError, match="learning_rate"):
        load_train_grid(_grid(tmp_path, TINY, learning_rate=[0.1]))
    (tmp_path / "bad.yaml").write_text("notebook: x.ipynb\ngrid: {seed: [0]}\n")
    with pytest.raises(ValueError, match="notebook"):
        load_train_grid(tmp_path / "bad.yaml")


def test_config_arguments_give_back_the_config_through_the_train_command():
    for config in (TrainConfig(), TrainConfig(**TINY, optimizer="ssam-f", sparsity=0.9, weight_decay=None,
                                              gpu_resident=False, lr=0.1 / 3, pattern="2:4", amp="bf16",
                                              device="cuda:1"),
                   TrainConfig(optimizer="ssam-f", pattern="layer", mask_rule="cost-aware", ascent_budget=0.25)):
        args = build_parser().parse_args(["train", *config_arguments(config)])
        assert TrainConfig.from_dict({k: getattr(args, k) for k in config.to_dict()}) == config


def _started(path: Path, seconds: float = 300) -> dict:
    """The status of a point once its first checkpoint is written."""
    deadline = time.monotonic() + seconds
    while not (path.parent / "checkpoint.pt").exists():
        assert time.monotonic() < deadline, "the job wrote no checkpoint"
        time.sleep(0.05)
    return read_json(path)


def _in_thread(function, *args, **kwargs) -> tuple[threading.Thread, list]:
    result: list = []
    thread = threading.Thread(target=lambda: result.append(function(*args, **kwargs)))
    thread.start()
    return thread, result


@pytest.mark.slow
def test_local_executor_runs_two_points_in_parallel_and_records_the_failing_one(tmp_path):
    data_file("cifar10-jpeg.npz")
    grid = _grid(tmp_path, TINY, dataset=["cifar10", "imagefolder:/nonexistent"])
    store, runs_dir, out = tmp_path / "store", tmp_path / "runs", io.StringIO()
    good, bad = (TrainConfig(**TINY, dataset=d) for d in ("cifar10", "imagefolder:/nonexistent"))
    options = ExecutorOptions("local", jobs=2, gpus_per_job=1)  # no GPU here: only CUDA_VISIBLE_DEVICES shows it
    assert run_train_grid(grid, options, store, runs_dir, stream=out) == 1
    ok, failed = (read_json(runs_dir / c.run_id() / "job.json") for c in (good, bad))
    assert (ok["job"]["visible_gpus"], failed["job"]["visible_gpus"]) == ("0", "1")  # one GPU each
    assert ok["job"]["job_id"] != failed["job"]["job_id"]
    assert max(ok["submitted"], failed["submitted"]) <= min(ok["finished"], failed["failed"])  # both ran at once
    assert (ok["status"], failed["status"], failed["error"]["type"]) == ("finished", "failed", "FileNotFoundError")
    assert "/nonexistent/train not found" in failed["error"]["message"]
    assert "FileNotFoundError" in Path(failed["errors"]).read_text()  # the job's log, next to its point
    record = read_json(store / f"{good.run_id()}.json")
    assert record["job"] == {"executor": "local", "job_id": ok["job"]["job_id"], "host": platform.node()}
    assert not (store / f"{bad.run_id()}.json").exists()
    lines = out.getvalue().splitlines()
    assert lines[-1] == "1 finished, 1 failed"
    assert any(line.startswith(f"failed     {bad.run_id()}  job {failed['job']['job_id']}  FileNotFoundError")
               for line in lines)


@pytest.mark.slow
def test_killed_local_job_is_recorded_and_the_same_command_resumes_it(tmp_path):
    data_file("cifar10-jpeg.npz")
    grid, store, runs_dir = _grid(tmp_path, LONGER, seed=[3]), tmp_path / "store", tmp_path / "runs"
    config = TrainConfig(**LONGER, seed=3)
    status = runs_dir / config.run_id() / "job.json"
    thread, code = _in_thread(run_train_grid, grid, ExecutorOptions("local"), store, runs_dir, stream=io.StringIO())
    running = _started(status)
    out = io.StringIO()  # the same command meanwhile finds the point running and leaves it to its job
    assert run_train_grid(grid, ExecutorOptions("local"), store, runs_dir, wait=False, stream=out) == 0
    assert out.getvalue().splitlines() == [f"running (job {running['job']['job_id']}, local)  {config.run_id()}",
                                           "nothing to run"]
    os.kill(running["job"]["pid"], signal.SIGKILL)  # as the OOM killer or a lost node would
    thread.join(120)
    assert code == [1]
    killed = read_json(status)
    assert (killed["status"], killed["error"]["type"]) == ("failed", "UncompletedJobError")
    assert not (store / f"{config.run_id()}.json").exists()

    assert run_train_grid(grid, ExecutorOptions("local"), store, runs_dir, stream=io.StringIO()) == 0
    summary = read_json(store / f"{config.run_id()}.json")["summary"]
    assert 1 <= summary["resumed_from_epoch"] < config.epochs
    assert read_json(status)["job"]["job_id"] != killed["job"]["job_id"]


@pytest.mark.slow
def test_preempted_local_job_is_requeued_by_submitit_and_resumes(tmp_path):
    data_file("cifar10-jpeg.npz")
    grid, store, runs_dir = _grid(tmp_path, dict(LONGER, seed=4)), tmp_path / "store", tmp_path / "runs"
    config = TrainConfig(**LONGER, seed=4)
    status = runs_dir / config.run_id() / "job.json"
    thread, code = _in_thread(run_train_grid, grid, ExecutorOptions("local"), store, runs_dir, stream=io.StringIO())
    os.kill(_started(status)["job"]["pid"], signal.SIGUSR2)  # Slurm's signal before the time limit or a preemption
    thread.join(300)
    assert code == [0]
    final = read_json(status)
    assert final["status"] == "finished"
    log = Path(final["log"]).read_text() + Path(final["errors"]).read_text()  # the job's log, next to its point
    assert "Requeued job" in log  # submitit's checkpoint hook
    assert 1 <= read_json(store / f"{config.run_id()}.json")["summary"]["resumed_from_epoch"] < config.epochs


def test_grids_of_the_rerun_page_are_valid(tmp_path):
    """The grid files shown in the book's "On a Slurm cluster" section load, with the runs they announce."""
    from conftest import REPO

    section = (REPO / "book" / "rerun.md").read_text().split("## On a Slurm cluster", 1)[1]
    blocks = [b.split("```", 1)[0] for b in section.split("```yaml\n")[1:]]
    sizes = {}
    for block in blocks:
        name = block.splitlines()[0].split(":")[0].lstrip("# ")
        (tmp_path / name).write_text(block)
        sizes[name] = load_train_grid(tmp_path / name)
    assert {name: len(configs) for name, configs in sizes.items()} == {"cifar-paper.yaml": 36, "imagenet-paper.yaml": 9}
    assert all(c.device == "cuda" and c.epochs == 200 and c.model == "resnet18" for c in sizes["cifar-paper.yaml"])
    assert {c.optimizer for c in sizes["imagenet-paper.yaml"]} == {"sgd", "sam", "ssam-f"}


@pytest.mark.slow
def test_a_point_with_several_processes_trains_under_torchrun(tmp_path):
    """What a job with --gpus-per-job 2 runs, here on CPU (gloo): one process per device, one record."""
    data_file("cifar10-jpeg.npz")
    from sparsam.experiment.jobs import job_info
    from sparsam.experiment.grid import train_point

    config = TrainConfig(**dict(TINY, epochs=2))
    result = train_point(config.to_dict(), str(tmp_path / "store"), str(tmp_path / "runs"), job_info("inline"), nproc=2)
    record = read_json(tmp_path / "store" / f"{config.run_id()}.json")
    assert record["summary"]["world_size"] == 2 and record["summary"]["epochs_run"] == 2
    assert result["final_test_acc"] == record["summary"]["final_test_acc"]
    assert record["job"] == {"executor": "inline", "job_id": None, "host": platform.node()}
    assert read_json(tmp_path / "runs" / config.run_id() / "job.json")["status"] == "finished"
