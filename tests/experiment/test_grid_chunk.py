"""Time-boxed chunks of a training grid (``train-grid --budget-minutes``): what is started and what is skipped,
and why; real runs as plain processes, several at once; the archive of the records a chunk finished; and the
commit of a copy of the code without git, as on a borrowed GPU machine."""

from __future__ import annotations

import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO, data_file
from sparsam import cli
from sparsam.experiment import provenance as code
from sparsam.experiment.chunk import STARTUP_SECONDS, chunk_file, run_chunk
from sparsam.experiment.config import TrainConfig
from sparsam.experiment.grid import run_missing
from sparsam.experiment.results import load_all, record_path
from sparsam.experiment.provenance import provenance
from sparsam.experiment.store import atomic_write_json, read_json

TINY = dict(model="resnet-small", width=4, n_train=64, n_test=32, epochs=1, batch_size=32)
TINY_IMAGENET = dict(TINY, dataset="imagenette-tiny")


def _grid(tmp_path: Path, parameters: dict, grid) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"parameters": parameters, "grid": grid}))
    return path


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        assert all(member.isfile() for member in tar.getmembers())
        return {member.name: tar.extractfile(member).read() for member in tar.getmembers()}


def _restored(archive: Path, folder: Path) -> dict[str, bytes]:
    """What ``tar xzf archive -C folder`` puts into the empty ``folder``, name by name."""
    folder.mkdir()
    subprocess.run(["tar", "xzf", str(archive), "-C", str(folder)], check=True)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_budget_too_small_for_the_estimate_starts_nothing_and_says_why(tmp_path, capsys):
    grid = _grid(tmp_path, TINY, {"seed": [0, 1]})
    store, runs_dir, archive = tmp_path / "store", tmp_path / "runs", tmp_path / "out" / "records.tar.gz"
    configs = [TrainConfig(**TINY, seed=s) for s in (0, 1)]
    common = ["train-grid", str(grid), "--store", str(store), "--runs-dir", str(runs_dir), "--budget-minutes", "1"]
    assert cli.main([*common, "--run-minutes", "5", "--jobs", "2", "--pack", str(archive)]) == 0
    out = capsys.readouterr().out
    needs = f"not started: needs ~{(5 * 60 + STARTUP_SECONDS) / 60:.1f} min, "
    for config in configs:
        [line] = [line for line in out.splitlines() if "skipped" in line and config.run_id() + ":" in line]
        left = float(re.search(re.escape(needs) + r"(\d+\.\d) min left$", line)[1])
        assert 0.9 <= left <= 1.0
    assert "0 finished, 2 skipped, 0 failed" in out
    assert not runs_dir.exists() and list(store.glob("*")) == []  # nothing started, nothing written
    assert _members(archive) == {}
    summary = read_json(chunk_file(archive))
    assert (summary["finished"], summary["skipped"], summary["failed"]) == ([], [c.run_id() for c in configs], [])
    assert summary["budget_minutes"] == 1 and summary["torch"] == torch.__version__

    assert cli.main(common) == 0  # no record to go by and no --run-minutes: no estimate, nothing runs
    out = capsys.readouterr().out
    for config in configs:
        assert (f"skipped      {config.run_id()}: not started: no estimate (no record of this configuration with "
                "another seed in the store, and no --run-minutes)") in out
    assert not runs_dir.exists()


def test_chunk_options_are_checked_before_anything_runs(tmp_path, capsys, monkeypatch):
    grid = _grid(tmp_path, TINY, {"seed": [0]})
    where = ["--store", str(tmp_path / "store"), "--runs-dir", str(tmp_path / "runs")]
    for argv, message in [
        (["--budget-minutes", "5", "--executor", "local"], "budget-minutes trains plain processes .* not with "
                                                           "--executor"),
        (["--budget-minutes", "5", "--time", "10", "--no-wait"], "not with --time, --no-wait"),
        (["--budget-minutes", "0"], r"budget_minutes must be in \(0"),
        (["--budget-minutes", "5", "--run-minutes", "-1"], r"run_minutes must be in \(0"),
        (["--budget-minutes", "5", "--pack", str(tmp_path / "records.zip")], "pack must name a .tar.gz file"),
        (["--pack", str(tmp_path / "records.tar.gz")], "--pack: for --budget-minutes only"),
        (["--run-minutes", "3", "--executor", "local"], "--run-minutes: for --budget-minutes only"),
    ]:
        assert cli.main(["train-grid", str(grid), *where, *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(message, err), (argv, err)
    monkeypatch.setattr(code, "code_root", lambda: None)  # a copy of the code without git
    monkeypatch.setenv("SPARSAM_GIT_COMMIT", "not-a-hash")
    assert cli.main(["train-grid", str(grid), *where, "--budget-minutes", "5", "--run-minutes", "1"]) == 2
    assert "SPARSAM_GIT_COMMIT must be a git commit hash" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_runs_whose_recorded_time_fits_are_trained_and_the_others_skipped(tmp_path, capsys):
    """Estimates from the store: a real record of seed 0 times seed 1; a record of another learning rate says it
    takes an hour (its time set so), so that configuration's seed 1 is skipped; one with no record has none."""
    data_file("cifar10-jpeg.npz")
    store, runs_dir, archive = tmp_path / "store", tmp_path / "runs", tmp_path / "out" / "records.tar.gz"
    fits, long = TrainConfig(**TINY, lr=0.05, seed=0), TrainConfig(**TINY, lr=0.1, seed=0)
    [real] = run_missing([fits], store=store, runs_dir=runs_dir)
    hour = json.loads(json.dumps(real))  # the real record, made the record of `long` taking an hour
    hour["summary"].update(config=long.to_dict(), run_id=long.run_id(), wall_seconds_this_process=3600.0)
    atomic_write_json(record_path(long, store), hour)
    before = {p.name: p.read_bytes() for p in store.glob("*.json")}
    grid = _grid(tmp_path, TINY, [{"lr": [0.1, 0.05], "seed": [0, 1]}, {"lr": [0.2], "seed": [3]}])
    assert cli.main(["train-grid", str(grid), "--store", str(store), "--runs-dir", str(runs_dir),
                     "--budget-minutes", "5", "--pack", str(archive)]) == 0
    out = capsys.readouterr().out
    trained, skipped, unknown = fits.replace(seed=1), long.replace(seed=1), TrainConfig(**TINY, lr=0.2, seed=3)
    assert re.search(rf"skipped      {skipped.run_id()}: not started: needs ~"
                     rf"{(3600 + STARTUP_SECONDS) / 60:.1f} min, [45]\.\d min left\n", out)
    assert f"skipped      {unknown.run_id()}: not started: no estimate" in out
    assert re.search(rf"started      {trained.run_id()}  \(pid \d+; estimate "
                     rf"~{_min(real['summary']['wall_seconds_this_process'] + STARTUP_SECONDS)} min from the record "
                     rf"of {fits.run_id()};", out)
    assert "1 finished, 2 skipped, 0 failed" in out
    assert not (runs_dir / skipped.run_id()).exists() and not (runs_dir / unknown.run_id()).exists()

    record = read_json(record_path(trained, store))  # a real run, in its own process
    assert record["summary"]["config"] == trained.to_dict() and record["summary"]["epochs_run"] == 1
    status = read_json(runs_dir / trained.run_id() / "job.json")
    assert status["status"] == "finished"
    assert record["job"] == {"executor": "subprocess", "job_id": status["job"]["job_id"], "host": platform.node()}
    assert int(status["job"]["job_id"]) != os.getpid()
    assert {p.name: p.read_bytes() for p in store.glob("*.json") if p.name in before} == before  # left alone

    summary = read_json(chunk_file(archive))
    assert (summary["finished"], summary["skipped"]) == ([trained.run_id()], [skipped.run_id(), unknown.run_id()])
    [entry] = [run for run in summary["runs"] if run["status"] == "finished"]
    assert entry["estimate_seconds"] == real["summary"]["wall_seconds_this_process"] + STARTUP_SECONDS
    assert 0 < record["summary"]["wall_seconds_this_process"] < entry["wall_seconds"] < summary["seconds"]
    # the archive restores exactly the record this chunk finished: not the earlier ones, no run folder's files
    assert _restored(archive, tmp_path / "empty") == {f"{trained.run_id()}.json": record_path(trained, store).read_bytes()}


def _min(seconds: float) -> str:
    return re.escape(f"{seconds / 60:.1f}")


@pytest.mark.slow
def test_a_copy_without_git_trains_two_runs_at_once_on_the_imagenet_path_and_packs_them(tmp_path):
    """As on a borrowed GPU machine: the working tree without .git, the commit from SPARSAM_GIT_COMMIT, two
    plain processes at once (no submitit), the records in one archive beside the chunk's summary."""
    data_file("imagenette-tiny64.npz")
    copy = tmp_path / "copy"
    shutil.copytree(REPO / "sparsam", copy / "sparsam", ignore=shutil.ignore_patterns("__pycache__"))
    grid = _grid(copy, TINY_IMAGENET, {"seed": [0, 1]})
    commit = code.code_commit()[0] or "0123456789abcdef0123456789abcdef01234567"
    env = {**os.environ, "PYTHONPATH": str(copy), "SPARSAM_GIT_COMMIT": commit, "CUDA_VISIBLE_DEVICES": "0"}
    out = subprocess.run([sys.executable, "-m", "sparsam", "train-grid", "grid.yaml", "--store", "results/runs",
                          "--runs-dir", "runs", "--budget-minutes", "3", "--run-minutes", "1", "--jobs", "2",
                          "--pack", str(tmp_path / "out" / "records.tar.gz")],
                         cwd=copy, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr  # (no wall-time limit here: the machine's load is not the code's)
    configs = [TrainConfig(**TINY_IMAGENET, seed=s) for s in (0, 1)]
    lines = out.stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if "  started  " in line]
    ends = [i for i, line in enumerate(lines) if "  finished  " in line]
    assert len(starts) == len(ends) == 2 and max(starts) < min(ends)  # both ran at once
    assert "2 finished, 0 skipped, 0 failed" in out.stdout

    store = copy / "results" / "runs"
    records = load_all(store)
    assert [r["summary"]["run_id"] for r in records] == sorted(c.run_id() for c in configs)
    for record in records:  # the commit without git, and one process each, all seeing the same GPUs
        assert (record["summary"]["provenance"]["git_commit"], record["summary"]["provenance"]["git_dirty"]) == \
            (commit, None)
        assert record["summary"]["data"]["name"] == "imagenette-tiny" and record["job"]["executor"] == "subprocess"
        status = read_json(copy / "runs" / record["summary"]["run_id"] / "job.json")
        assert status["job"]["visible_gpus"] == "0" and status["job"]["job_id"] == record["job"]["job_id"]
        assert (copy / "runs" / record["summary"]["run_id"] / "checkpoint.pt").exists()
    assert len({r["job"]["job_id"] for r in records}) == 2

    archive = tmp_path / "out" / "records.tar.gz"
    restored = _restored(archive, tmp_path / "empty")
    assert restored == {p.name: p.read_bytes() for p in store.glob("*.json")}  # exactly the records, byte for byte
    assert not any(name.endswith(".pt") or "/" in name for name in _members(archive))
    summary = read_json(chunk_file(archive))
    assert (summary["git_commit"], summary["git_dirty"]) == (commit, None)
    assert summary["finished"] == [c.run_id() for c in configs] and summary["jobs"] == 2
    assert summary["device_name"] and summary["torch"] == torch.__version__
    assert all(0 < run["wall_seconds"] < summary["seconds"] for run in summary["runs"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["records.chunk.json", "records.tar.gz"]


@pytest.mark.slow
def test_a_run_overrunning_its_estimate_is_stopped_when_the_budget_is_spent(tmp_path):
    data_file("imagenette-tiny64.npz")
    config = TrainConfig(**dict(TINY_IMAGENET, epochs=1000))  # far longer than the budget
    out = io.StringIO()
    start = time.monotonic()
    code = run_chunk([config], 0.1, store=tmp_path / "store", runs_dir=tmp_path / "runs", run_minutes=0.01,
                     startup_seconds=0, stream=out)
    assert code == 1 and time.monotonic() - start < 0.1 * 60 + 12  # the budget, and the stop's grace at most
    status = read_json(tmp_path / "runs" / config.run_id() / "job.json")
    assert (status["status"], status["error"]["type"]) == ("failed", "BudgetSpent")
    assert "stopped at the end of the budget" in out.getvalue() and "0 finished, 0 skipped, 1 failed" in out.getvalue()
    assert not (tmp_path / "store").exists() or list((tmp_path / "store").glob("*")) == []


def test_provenance_takes_the_commit_from_git_else_from_the_environment(monkeypatch):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("this copy of the code is not a git work tree")
    monkeypatch.setenv("SPARSAM_GIT_COMMIT", "ABCDEF1")  # git wins where there is git
    found = provenance(torch.device("cpu"))
    assert found["git_commit"] == head.stdout.strip() and isinstance(found["git_dirty"], bool)

    monkeypatch.setattr(code, "code_root", lambda: None)  # no work tree: the code was copied without .git
    found = provenance(torch.device("cpu"))
    assert (found["git_commit"], found["git_dirty"]) == ("abcdef1", None)
    monkeypatch.delenv("SPARSAM_GIT_COMMIT")
    assert provenance(torch.device("cpu"))["git_commit"] is None
    for bad in ("abc", "xyz1234", "0" * 41, "HEAD"):
        monkeypatch.setenv("SPARSAM_GIT_COMMIT", bad)
        with pytest.raises(ValueError, match=f"SPARSAM_GIT_COMMIT must be a git commit hash .* got '{bad}'"):
            provenance(torch.device("cpu"))


def test_the_rerun_page_command_for_a_borrowed_machine_parses():
    """The command line the book shows for a borrowed GPU machine is a valid time-boxed chunk."""
    import shlex

    section = (REPO / "book" / "rerun.md").read_text().split("## On a borrowed GPU machine, in time-boxed chunks", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    words = shlex.split(block.replace("\\\n", " "))
    variables = {w.split("=", 1)[0] for w in words if re.fullmatch(r"[A-Z_]+=.*", w)}
    assert variables == {"SPARSAM_GIT_COMMIT", "SPARSAM_DATA"}
    command = words[len(variables):]
    assert command[:3] == ["python", "-m", "sparsam"]
    args = cli.build_parser().parse_args(command[3:])
    assert (args.command, args.budget_minutes, args.jobs, args.executor) == ("train-grid", 9, 2, "inline")
    assert args.pack == "$OUT/records.tar.gz" and args.run_minutes is None
