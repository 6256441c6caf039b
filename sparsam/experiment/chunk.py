"""Time-boxed chunks of a training grid (``python -m sparsam train-grid GRID.yaml --budget-minutes M``), for a
machine lent for a short while, where one command may run a few minutes and only a few files come back.

A chunk trains the configurations of a grid (or of a study's pre-registration) that have no record in the
store, in the grid's order, as plain processes (``python -m sparsam train ...``; no submitit), ``jobs`` at a
time, all of them seeing the same ``CUDA_VISIBLE_DEVICES``. It never starts a run that cannot finish
within the budget, counted from the chunk's start: when a slot is free, the next run's wall time is
estimated (:func:`estimate`) and the run is started only if the estimate fits into the time left; else it
is skipped, saying why, and the next one is considered. A run with no estimate is not started. A run still
going when the budget is spent (its estimate was wrong) is stopped, so that the chunk ends in time; its
checkpoint lets a later chunk resume it.

Each finished run writes its record to the store as the other executors do (with its job: executor
``subprocess``, its process id and host). :func:`pack` then writes the records this chunk finished into one
gzip'd tar, named relative to the store (``tar xzf PATH.tar.gz -C <store>`` restores them), and a
``<name>.chunk.json`` beside it: the budget, start and end, each run with its status, wall seconds and
estimate, the device, torch and the commit (:func:`sparsam.experiment.provenance.code_commit`, which reads
``$SPARSAM_GIT_COMMIT`` where the copy of the code has no git).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Sequence, TextIO

import torch

from .._checks import check_int, check_range
from .config import TrainConfig
from .grid import config_arguments, load_train_grid, run_missing, status_file
from .jobs import is_alive, update_status
from .results import load_all, load_record, record_path, write_record
from .provenance import code_commit
from .store import Workspace, atomic_write_json, holder, now, read_json

# Seconds added to every estimate for what a run's own wall time leaves out: starting Python, importing
# torch, and writing the record after the run (wall_seconds_this_process starts after the imports)
STARTUP_SECONDS = 20.0
_STOP_SECONDS = 10.0  # how long a stopped run has between SIGTERM and SIGKILL
_POLL_SECONDS = 0.2
PACK_SUFFIX = ".tar.gz"


@dataclass(frozen=True)
class Estimate:
    """A run's expected wall time in seconds (start-up included), and where it comes from; ``seconds`` None:
    there is none, and ``source`` says why."""

    seconds: float | None
    source: str


def _sans_seed(config: TrainConfig) -> TrainConfig:
    return config.replace(seed=0)


def estimate(config: TrainConfig, records: Sequence[dict[str, Any]], run_minutes: float | None = None,
             startup_seconds: float = STARTUP_SECONDS) -> Estimate:
    """The wall time ``config`` needs: the largest ``wall_seconds_this_process`` among ``records`` of the
    same configuration with another seed (those that ran from epoch 0: a resumed run's covers its last part
    only), else ``run_minutes``, plus ``startup_seconds``; else no estimate. A record's time is what the run
    took beside whatever ran with it (other runs of its chunk, under its concurrency)."""
    key = _sans_seed(config)
    walls = [(r["summary"]["wall_seconds_this_process"], r["summary"]["run_id"]) for r in records
             if r["summary"]["resumed_from_epoch"] == 0
             and _sans_seed(TrainConfig.from_dict(r["summary"]["config"])) == key]
    if walls:
        wall, run_id = max(walls)
        others = f" (the longest of {len(walls)})" if len(walls) > 1 else ""
        return Estimate(wall + startup_seconds, f"the record of {run_id}{others}")
    if run_minutes is not None:
        return Estimate(run_minutes * 60 + startup_seconds, "--run-minutes")
    return Estimate(None, "no record of this configuration with another seed in the store, and no --run-minutes")


@dataclass
class Run:
    """One configuration of the chunk: ``status`` to run, running, finished, skipped or failed; ``detail``
    says why it was skipped or how it failed, or its test accuracy."""

    config: TrainConfig
    status: str = "to run"
    estimate: Estimate | None = None
    detail: str = ""
    wall_seconds: float | None = None

    @property
    def run_id(self) -> str:
        return self.config.run_id()


@dataclass(eq=False)
class Child:
    """The process training a :class:`Run`: started at ``started`` (:func:`time.monotonic`), writing ``logs``."""

    run: Run
    process: subprocess.Popen
    started: float
    logs: tuple[IO[bytes], ...] = field(repr=False)


def _minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f}"


def _child_environment(jobs: int) -> dict[str, str]:
    """This process's environment (CUDA_VISIBLE_DEVICES, SPARSAM_DATA, SPARSAM_GIT_COMMIT unchanged), the
    code's folder first on PYTHONPATH (each run imports this same code) and, unless OMP_NUM_THREADS is set,
    the CPU cores shared among the ``jobs`` processes."""
    env = dict(os.environ)
    code = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([code, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    return env


def _start(run: Run, runs_dir: Path, env: dict[str, str]) -> Child:
    """Start ``python -m sparsam train`` of ``run`` (its output in ``<run folder>/logs/chunk.out`` and
    ``chunk.err``); its status file says running, with the process as its job."""
    logs = runs_dir / run.run_id / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out, err = open(logs / "chunk.out", "ab"), open(logs / "chunk.err", "ab")
    command = [sys.executable, "-m", "sparsam", "train", *config_arguments(run.config), "--runs-dir", str(runs_dir),
               "--no-progress"]
    child = Child(run, subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env),
                  time.monotonic(), (out, err))
    run.status, pid = "running", child.process.pid
    job = {"executor": "subprocess", "job_id": str(pid), "host": platform.node(), "pid": pid,
           "visible_gpus": env.get("CUDA_VISIBLE_DEVICES")}
    update_status(status_file(run.config, runs_dir), status="running", started=now(), job=job,
                  log=str(logs / "chunk.out"), errors=str(logs / "chunk.err"))
    return child


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def _collect(child: Child, store: Path, runs_dir: Path, stopped: bool = False) -> dict[str, Any] | None:
    """Record the outcome of ``child``'s ended process (``stopped``: by :func:`_stop`) in its status file and
    its :class:`Run`; returns the run's record if it finished."""
    run = child.run
    for log in child.logs:
        log.close()
    run.wall_seconds = time.monotonic() - child.started
    status = status_file(run.config, runs_dir)
    code = child.process.returncode
    if code == 0:
        try:  # the run folder holds the finished summary: this reads it and writes the record
            [record] = run_missing([run.config], store=store, runs_dir=runs_dir)
            record["job"] = {"executor": "subprocess", "job_id": str(child.process.pid), "host": platform.node()}
            write_record(record_path(run.config, store), record)
        except Exception as error:
            error_of = {"type": type(error).__name__, "message": " ".join(str(error).split())}
        else:
            update_status(status, status="finished", finished=now(), record=str(record_path(run.config, store)))
            run.status, run.detail = "finished", f"test acc {record['summary']['final_test_acc']:.4f}"
            return record
    elif stopped:
        guess = run.estimate.seconds if run.estimate else None
        error_of = {"type": "BudgetSpent", "message": f"stopped at the end of the budget after "
                                                      f"{_minutes(run.wall_seconds)} min (estimate ~{_minutes(guess)} "
                                                      "min)"}
    else:
        error_of = {"type": f"exit status {code}",
                    "message": _last_line(runs_dir / run.run_id / "logs" / "chunk.err")}
    update_status(status, status="failed", failed=now(), error=error_of)
    run.status, run.detail = "failed", f"{error_of['type']}: {error_of['message']}"
    return None


def _stop(children: list[Child]) -> None:
    """SIGTERM to every process, SIGKILL to those still alive ``_STOP_SECONDS`` later."""
    for child in children:
        child.process.terminate()
    deadline = time.monotonic() + _STOP_SECONDS
    for child in children:
        try:
            child.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()


def _say(stream: TextIO, text: str) -> None:
    print(f"{now()}  {text}", file=stream, flush=True)


def device_name() -> str:
    """The GPU's name if torch sees one, else the processor's."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return platform.processor() or platform.machine()


def chunk_file(archive: str | Path) -> Path:
    """The ``<name>.chunk.json`` written beside the archive ``<name>.tar.gz``."""
    archive = Path(archive)
    return archive.with_name(archive.name.removesuffix(PACK_SUFFIX) + ".chunk.json")


def pack(records: Sequence[Path], store: Path, archive: Path) -> None:
    """Write the record files ``records`` (in ``store``) into the gzip'd tar ``archive``, named relative to
    ``store`` (``tar xzf archive -C store`` restores them), as plain files without owner."""

    def plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mode = 0o644
        return info

    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f".{archive.name}.partial")
    try:
        with tarfile.open(partial, "w:gz") as tar:
            for path in records:
                tar.add(path, arcname=path.relative_to(store).as_posix(), recursive=False, filter=plain)
        os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)


def run_chunk(configs: Sequence[TrainConfig], budget_minutes: float, *, store: str | Path | None = None,
              runs_dir: str | Path | None = None, jobs: int = 1, run_minutes: float | None = None,
              archive: str | Path | None = None, dry_run: bool = False, stream: TextIO | None = None,
              started: float | None = None, startup_seconds: float = STARTUP_SECONDS) -> int:
    """Train, within ``budget_minutes`` from ``started`` (a :func:`time.monotonic` time; default now), the
    ``configs`` without a record in ``store``, in order, ``jobs`` processes at a time; start a run only if its
    :func:`estimate` (``run_minutes``, ``startup_seconds``) fits in the time left. Prints a line per start,
    skip and end, then a table; with ``archive`` (a ``.tar.gz`` path) writes :func:`pack` of the records it
    finished and :func:`chunk_file` beside it. ``dry_run``: list each run's estimate and train nothing.
    Returns 1 if a run failed, else 0 (skipped runs are no failure)."""
    started = time.monotonic() if started is None else started
    started_at = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=time.monotonic() - started)
    stream = stream or sys.stdout
    check_range("budget_minutes", budget_minutes, 0, low_open=True)
    check_int("jobs", jobs, 1)
    if run_minutes is not None:
        check_range("run_minutes", run_minutes, 0, low_open=True)
    if archive is not None and not str(archive).endswith(PACK_SUFFIX):
        raise ValueError(f"pack must name a {PACK_SUFFIX} file, got {str(archive)!r}")
    commit, dirty = code_commit()  # a bad $SPARSAM_GIT_COMMIT stops the chunk before it trains
    workspace = Workspace.resolve(runs_dir, store)
    store, runs_dir = workspace.store, workspace.runs
    records = load_all(store)
    deadline = started + budget_minutes * 60

    configs = list(dict.fromkeys(configs))
    runs, done = [], 0
    for config in configs:
        run_dir = runs_dir / config.run_id()
        if load_record(config, store) is not None:
            done += 1
            continue
        state = read_json(status_file(config, runs_dir)) if status_file(config, runs_dir).exists() else {}
        owner = holder(run_dir)
        if owner is not None or is_alive(state, run_dir / "logs"):
            pid = owner.get("pid", "?") if owner else (state.get("job") or {}).get("job_id", "?")
            runs.append(Run(config, "skipped", detail=f"not started: another process runs it (pid {pid})"))
            continue
        runs.append(Run(config))
    to_run = [run for run in runs if run.status == "to run"]
    print(f"{len(configs)} configurations: {done} with a record in {store}, {len(to_run)} to run in "
          f"{budget_minutes:g} min, {jobs} at a time", file=stream)
    for run in runs:
        if run.status == "skipped":
            _say(stream, f"skipped      {run.run_id}: {run.detail}")
    if dry_run:
        for run in to_run:
            found = estimate(run.config, records, run_minutes, startup_seconds)
            time_of = f"~{_minutes(found.seconds)} min" if found.seconds is not None else "no estimate"
            print(f"to run  {run.run_id}  {time_of}: {found.source}", file=stream)
        return 0

    pending, env = list(to_run), _child_environment(jobs)
    running: list[Child] = []
    finished_files: list[Path] = []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                run = pending.pop(0)
                run.estimate = estimate(run.config, records, run_minutes, startup_seconds)
                left = deadline - time.monotonic()
                if run.estimate.seconds is None:
                    run.status, run.detail = "skipped", f"not started: no estimate ({run.estimate.source})"
                elif run.estimate.seconds > left:
                    run.status = "skipped"
                    run.detail = (f"not started: needs ~{_minutes(run.estimate.seconds)} min, "
                                  f"{_minutes(max(0.0, left))} min left")
                else:
                    running.append(_start(run, runs_dir, env))
                    _say(stream, f"started      {run.run_id}  (pid {running[-1].process.pid}; estimate "
                                 f"~{_minutes(run.estimate.seconds)} min from {run.estimate.source}; "
                                 f"{_minutes(left)} min left)")
                    continue
                _say(stream, f"skipped      {run.run_id}: {run.detail}")
            time.sleep(_POLL_SECONDS)
            stopped: list[Child] = []
            if time.monotonic() >= deadline:  # an estimate was wrong: end in time, the rest can resume later
                stopped = [child for child in running if child.process.poll() is None]
                _stop(stopped)
            for child in [child for child in running if child.process.poll() is not None]:
                running.remove(child)
                record = _collect(child, store, runs_dir, stopped=any(child is c for c in stopped))
                if record is not None:
                    records.append(record)
                    finished_files.append(record_path(child.run.config, store))
                run = child.run
                _say(stream, f"{run.status:12s} {run.run_id}  after {_minutes(run.wall_seconds)} min: {run.detail}")
    finally:  # an error or an interruption of this process: no run goes on without it
        _stop([child for child in running if child.process.poll() is None])
    elapsed = time.monotonic() - started
    print_table(runs, elapsed, budget_minutes, stream)
    if archive is not None:
        archive = Path(archive).absolute()
        pack(sorted(finished_files), store, archive)
        summary = {
            "budget_minutes": budget_minutes, "jobs": jobs, "run_minutes": run_minutes,
            "startup_seconds": startup_seconds, "started": started_at.isoformat(timespec="seconds"), "ended": now(),
            "seconds": elapsed, "archive": archive.name, "store": str(store), "runs_dir": str(runs_dir),
            "git_commit": commit, "git_dirty": dirty, "torch": torch.__version__, "device_name": device_name(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "host": platform.node(),
            "configurations": len(configs), "with_a_record_before": done,
            "runs": [{"run_id": run.run_id, "status": run.status, "wall_seconds": run.wall_seconds,
                      "estimate_seconds": run.estimate.seconds if run.estimate else None,
                      "estimate_from": run.estimate.source if run.estimate else None, "detail": run.detail}
                     for run in runs],
            **{status: [run.run_id for run in runs if run.status == status]
               for status in ("finished", "skipped", "failed")},
        }
        atomic_write_json(chunk_file(archive), summary)
        print(f"packed {len(finished_files)} record(s) into {archive} ({archive.stat().st_size:,} bytes); "
              f"the chunk's summary: {chunk_file(archive)}", file=stream)
    return 1 if any(run.status == "failed" for run in runs) else 0


def print_table(runs: Sequence[Run], elapsed: float, budget_minutes: float, stream: TextIO) -> None:
    """One line per run (status, run id, minutes it ran, its estimate, the detail), then the counts."""
    width = max([len(run.run_id) for run in runs] + [6])
    print(f"\n{'status':9s} {'run':{width}s} {'minutes':>7s} {'estimate':>8s}  detail", file=stream)
    for run in runs:
        guess = run.estimate.seconds if run.estimate else None
        print(f"{run.status:9s} {run.run_id:{width}s} {_minutes(run.wall_seconds):>7s} {_minutes(guess):>8s}  "
              f"{run.detail}", file=stream)
    counts = ", ".join(f"{sum(run.status == s for run in runs)} {s}" for s in ("finished", "skipped", "failed"))
    print(f"{counts}, in {elapsed / 60:.1f} of {budget_minutes:g} min", file=stream)
