"""Executors: option parsing, and the Slurm path checked without a cluster.

``sbatch`` and ``srun`` are replaced by two small scripts on PATH: submitit then goes through its
real submission code, and the batch script and pickled job it writes are inspected. The job is
finally started the way Slurm starts it (the script's command with Slurm's environment variables).
"""

from __future__ import annotations

import io
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import submitit

from conftest import data_file
from sparsam.experiment.config import TrainConfig
from sparsam.experiment.jobs import (ExecutorOptions, PointJob, parse_mem, parse_slurm_arg, parse_time, slurm_script)
from sparsam.experiment.grid import run_train_grid
from sparsam.experiment.store import read_json
from test_sweep import grid_file, notebook  # noqa: F401  (the sweep tests' tiny notebook, a fixture)

TINY = dict(model="resnet-small", width=4, n_train=64, n_test=32, epochs=1, batch_size=32)
SLURM = dict(executor="slurm", partition="gpu-a100", gpus_per_job=4, cpus_per_job=32, mem="240G",
             time="2-00:00:00", slurm_args=(("account", "sam-lab"), ("qos", "high")))


def test_time_limits_in_slurm_formats_become_minutes():
    assert [parse_time(t) for t in ("90", "90:30", "1:30:00", "2-00", "2-03:30", "1-00:00:01")] == \
        [90, 91, 90, 2880, 3090, 1441]
    for bad in ("", "1h", "1:2:3:4", "-5", "0", "1-"):
        with pytest.raises(ValueError, match="time"):
            parse_time(bad)


def test_memory_sizes_become_sbatch_sizes():
    assert [parse_mem(m) for m in ("64", "64G", "64gb", "500M", "1.5G", "2T", "0.5T")] == \
        ["64G", "64G", "64G", "500M", "1536M", "2T", "524288M"]
    for bad in ("", "64K", "-1G", "0", "lots"):
        with pytest.raises(ValueError, match="mem"):
            parse_mem(bad)


def test_slurm_args_are_key_value_pairs():
    assert parse_slurm_arg("account=abc") == ("account", "abc")
    assert parse_slurm_arg("--mail-type=END,FAIL") == ("mail_type", "END,FAIL")
    assert parse_slurm_arg("constraint=a100|h100") == ("constraint", "a100|h100")
    for bad in ("account", "=abc", "a b=c"):
        with pytest.raises(ValueError, match="slurm-arg"):
            parse_slurm_arg(bad)


def test_bad_executor_options_are_rejected_with_the_parameter_name():
    for bad, name in [(dict(executor="pbs"), "executor"), (dict(executor="local", jobs=0), "jobs"),
                      (dict(executor="slurm", time="1:00:00", gpus_per_job=-1), "gpus_per_job"),
                      (dict(executor="slurm", time="1:00:00", cpus_per_job=0), "cpus_per_job"),
                      (dict(executor="slurm"), "time"), (dict(executor="slurm", time="soon"), "time"),
                      (dict(executor="slurm", time="60", mem="big"), "mem"),
                      (dict(executor="local", partition="gpu"), "partition"),
                      (dict(executor="inline", mem="4G"), "mem"),
                      (dict(executor="slurm", time="60", jobs=4), "jobs"),
                      (dict(executor="inline", gpus_per_job=1), "gpus_per_job"), (dict(time="60"), "time")]:
        with pytest.raises(ValueError, match=name):
            ExecutorOptions(**bad)


def test_local_jobs_get_a_timeout_and_their_own_gpus():
    assert ExecutorOptions("local", jobs=2).submitit_parameters() == \
        {"timeout_min": 7 * 24 * 60, "gpus_per_node": 0, "visible_gpus": ()}
    options = ExecutorOptions("local", jobs=3, time="30", gpus_per_job=2)
    assert [options.submitit_parameters(slot)["visible_gpus"] for slot in range(3)] == [(0, 1), (2, 3), (4, 5)]
    assert options.submitit_parameters(1)["timeout_min"] == 30


def _sbatch_lines(script: str) -> set[str]:
    return {line for line in script.splitlines() if line.startswith("#SBATCH")}


def test_slurm_script_carries_the_resources(tmp_path):
    script = slurm_script(ExecutorOptions(**SLURM), tmp_path / "logs")
    assert {"#SBATCH --partition=gpu-a100", "#SBATCH --gpus-per-node=4", "#SBATCH --cpus-per-task=32",
            "#SBATCH --mem=240G", "#SBATCH --time=2880", "#SBATCH --account=sam-lab", "#SBATCH --qos=high",
            "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1", "#SBATCH --signal=USR2@120",
            f"#SBATCH --output={tmp_path}/logs/%j_0_log.out"} <= _sbatch_lines(script)
    command = script.strip().splitlines()[-1]
    assert command.startswith("srun ") and command.endswith(f"-u -m submitit.core._submit {tmp_path}/logs")
    assert sys.executable in command


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """``sbatch`` that records its arguments and answers job 4242, ``sacct`` that reports job 4242 in
    the state written to ``bin/state`` (RUNNING at first), and an ``srun`` that exists."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls, state = bin_dir / "sbatch.calls", bin_dir / "state"
    state.write_text("RUNNING")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho "Submitted batch job 4242"\n')
    (bin_dir / "sacct").write_text(f'#!/bin/sh\necho "JobID|State|NodeList"\necho "4242|$(cat {state})|node1"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    for tool in ("sbatch", "sacct", "srun"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    yield calls
    submitit.SlurmJob.watcher.clear()  # submitit caches job states in a class-wide watcher


def _grid(tmp_path: Path, **grid) -> Path:
    import yaml

    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"parameters": TINY, "grid": grid}))
    return path


def test_slurm_submission_writes_the_batch_script_and_the_job(tmp_path, fake_slurm):
    grid, store, runs_dir = _grid(tmp_path, seed=[0]), tmp_path / "store", tmp_path / "runs"
    config = TrainConfig(**TINY, seed=0)
    logs = runs_dir / config.run_id() / "logs"
    dry = io.StringIO()
    assert run_train_grid(grid, ExecutorOptions(**SLURM), store, runs_dir, dry_run=True, stream=dry) == 0
    assert not fake_slurm.exists() and not logs.exists()  # nothing submitted
    assert slurm_script(ExecutorOptions(**SLURM), logs) in dry.getvalue()

    out = io.StringIO()
    assert run_train_grid(grid, ExecutorOptions(**SLURM), store, runs_dir, wait=False, stream=out) == 0
    [call] = fake_slurm.read_text().splitlines()  # sbatch ran once, on a script in the point's log folder
    assert Path(call).parent == logs and call.endswith(".sh")
    assert (logs / "4242_submission.sh").read_text() == slurm_script(ExecutorOptions(**SLURM), logs)
    status = read_json(runs_dir / config.run_id() / "job.json")
    assert (status["status"], status["job"]["executor"], status["job"]["job_id"]) == ("submitted", "slurm", "4242")
    assert f"submitted  {config.run_id()}  job 4242" in out.getvalue()
    job = submitit.core.utils.DelayedSubmission.load(logs / "4242_submitted.pkl").function
    assert isinstance(job, PointJob) and job.executor == "slurm"
    assert TrainConfig.from_dict(job.point.kwargs["config"]) == config
    assert job.point.kwargs["nproc"] == 4  # one process per GPU, under torchrun
    assert (job.point.kwargs["store"], job.point.kwargs["runs_dir"]) == (str(store), str(runs_dir))


def test_a_queued_slurm_job_is_left_alone_and_a_dead_one_submitted_again(tmp_path, fake_slurm):
    grid, store, runs_dir = _grid(tmp_path, seed=[2]), tmp_path / "store", tmp_path / "runs"
    run_id, options = TrainConfig(**TINY, seed=2).run_id(), ExecutorOptions(executor="slurm", time="60")
    assert run_train_grid(grid, options, store, runs_dir, wait=False, stream=io.StringIO()) == 0
    out = io.StringIO()  # sacct says RUNNING: the later call collects nothing and submits nothing
    assert run_train_grid(grid, options, store, runs_dir, wait=False, stream=out) == 0
    assert out.getvalue().splitlines() == [f"running (job 4242, slurm)  {run_id}", "nothing to run"]
    assert len(fake_slurm.read_text().splitlines()) == 1
    (fake_slurm.parent / "state").write_text("NODE_FAIL")  # the job died before it could write anything
    out = io.StringIO()
    assert run_train_grid(grid, options, store, runs_dir, wait=False, stream=out) == 0
    assert out.getvalue().splitlines()[0] == f"interrupted  {run_id}"
    assert len(fake_slurm.read_text().splitlines()) == 2  # submitted again


@pytest.mark.slow
def test_submitted_job_runs_as_slurm_starts_it_and_records_its_job(tmp_path, fake_slurm):
    data_file("cifar10-jpeg.npz")
    grid, store, runs_dir = _grid(tmp_path, seed=[1]), tmp_path / "store", tmp_path / "runs"
    options = ExecutorOptions(executor="slurm", time="10")
    assert run_train_grid(grid, options, store, runs_dir, wait=False, stream=io.StringIO()) == 0
    config = TrainConfig(**TINY, seed=1)
    logs = runs_dir / config.run_id() / "logs"
    env = {**os.environ, "SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "1",
           "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_NUM_NODES": "1",
           "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-u", "-m", "submitit.core._submit", str(logs)], env=env, check=True,
                   timeout=300, capture_output=True)
    record = read_json(store / f"{config.run_id()}.json")
    assert record["job"] == {"executor": "slurm", "job_id": "4242", "host": platform.node()}
    assert record["summary"]["run_id"] == config.run_id()
    assert read_json(runs_dir / config.run_id() / "job.json")["status"] == "finished"
    out = io.StringIO()  # the same command again: the point is found in the store, nothing is submitted
    assert run_train_grid(grid, options, store, runs_dir, wait=False, stream=out) == 0
    assert out.getvalue().splitlines() == [f"{'finished':11s}  {config.run_id()}", "nothing to run"]
    assert len(fake_slurm.read_text().splitlines()) == 1


def test_commands_take_the_executor_options(tmp_path, capsys):
    from sparsam.cli import main

    grid = _grid(tmp_path, seed=[0, 1])
    slurm = ["--executor", "slurm", "--partition", "gpu", "--time", "1:30:00", "--slurm-arg", "qos=high",
             "--store", str(tmp_path / "store"), "--runs-dir", str(tmp_path / "runs")]
    assert main(["train-grid", str(grid), *slurm, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("to run") == 2 and "2 Slurm job(s)" in out
    assert {"#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --qos=high"} <= _sbatch_lines(out)
    assert not (tmp_path / "runs").exists()
    for bad, message in [(["--executor", "slurm"], "error: time is required with executor 'slurm'"),
                         (["--executor", "slurm", "--time", "60", "--mem", "lots"], "error: mem must be"),
                         (["--executor", "slurm", "--time", "60", "--slurm-arg", "qos"], "error: slurm-arg must be"),
                         (["--executor", "local", "--jobs", "0"], "error: jobs must be an integer >= 1"),
                         (["--executor", "local", "--partition", "gpu"], "error: partition: for executor 'slurm' only"),
                         (["--no-wait"], "error: no-wait applies to executors 'local' and 'slurm'")]:
        assert main(["train-grid", str(grid), *bad]) == 2
        assert capsys.readouterr().err.startswith(message)
    with pytest.raises(SystemExit):
        main(["train-grid", str(grid), "--executor", "pbs"])
    assert "invalid choice: 'pbs'" in capsys.readouterr().err


def test_sweep_dry_run_shows_the_sbatch_script(tmp_path, notebook, capsys):
    from sparsam.cli import main

    grid = grid_file(tmp_path, notebook, {"seed": [0, 1]})
    assert main(["sweep", str(grid), "--results-dir", str(tmp_path / "out"), "--dry-run", "--executor", "slurm",
                 "--time", "2:00:00", "--gpus-per-job", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("to run") == 2
    assert {"#SBATCH --time=120", "#SBATCH --gpus-per-node=1"} <= _sbatch_lines(out)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_sweep_points_run_as_parallel_local_jobs(tmp_path, notebook, capsys):
    from sparsam.experiment import sweep
    from sparsam.cli import main

    grid = grid_file(tmp_path, notebook, {"pause": [0, "x"]})  # time.sleep("x") fails
    assert main(["sweep", str(grid), "--results-dir", str(tmp_path / "out"), "--executor", "local",
                 "--jobs", "2"]) == 1
    folder = tmp_path / "out" / "tiny"
    good, bad = (read_json(folder / f"{sweep.point_name({'pause': p})}.json") for p in (0, "x"))
    assert (good["status"], bad["status"], bad["error"]["type"]) == ("finished", "failed", "TypeError")
    assert int(good["values"]["n_params"]) > 0
    for record in (good, bad):
        assert (record["job"]["executor"], record["job"]["host"]) == ("local", platform.node())
        assert Path(record["log"]).parent == folder / f"{sweep.point_name(record['parameters'])}.logs"
    assert good["job"]["job_id"] != bad["job"]["job_id"]
    assert max(good["started"], bad["started"]) <= min(good["finished"], bad["finished"])  # both ran at once
    out = capsys.readouterr().out
    assert f"failed     {sweep.point_name({'pause': 'x'})}  job {bad['job']['job_id']}  TypeError" in out
