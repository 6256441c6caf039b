"""Training grids: a YAML file of :class:`TrainConfig` values, expanded as a product and trained
directly (no notebook), so that a cluster fills the results store and the notebooks only read it.

Grid file::

    parameters: {model: resnet-small, width: 8, epochs: 2}   # TrainConfig fields fixed for every point
    grid: {seed: [0, 1], optimizer: [sgd, sam]}              # lists combined as a product
    # or a list of such mappings, whose products are joined:
    # grid: [{optimizer: [sgd, sam]}, {optimizer: [ssam-f], sparsity: [0.5, 0.9]}]

Each configuration is one point: it trains (or resumes) ``<runs_dir>/<run_id>/`` and writes its
record, with the job that made it, to the store (:func:`sparsam.experiment.results.record_path`). Its status
(``job.json``: running, finished or failed, with the error) and the job's logs (``logs/``) lie in
the run folder. Configurations with a record are skipped, and so are those whose job still runs, so
running the same command again resumes what was interrupted or failed and collects what finished.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterable, Sequence, TextIO

from . import yaml_text
from .config import TrainConfig
from .jobs import ExecutorOptions, Outcome, Point, is_alive, print_summary, run_points, slurm_script, update_status
from .results import load_record, record_path, write_record
from .store import Workspace, holder as lock_holder, now, read_json, read_metrics
from .train import train


def expand(fixed: dict[str, Any], grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the ``grid`` lists (names in sorted order), each merged over ``fixed``."""
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid entry {name!r} must be a non-empty list, got {values!r}")
    names = sorted(grid)
    return [{**fixed, **dict(zip(names, combo))} for combo in itertools.product(*(grid[n] for n in names))]


def is_study_file(spec: Any) -> bool:
    """Whether a parsed YAML file is a study's pre-registration (it has a regime and configurations)."""
    return isinstance(spec, dict) and "regime" in spec and "configurations" in spec


def load_train_grid(path: str | Path) -> list[TrainConfig]:
    """The distinct configurations of a training-grid file, in grid order; any bad value is an error.

    ``grid`` is a mapping of lists, or a list of such mappings whose products are concatenated
    (e.g. SGD once, SSAM at every sparsity). A study's pre-registration (:mod:`sparsam.book.study`, e.g.
    ``results/study/cpu_study.yaml``) is not a grid: the command line reads it with the book's
    :func:`sparsam.book.study.load_study` and hands its configurations to :func:`run_train_grid`.
    """
    spec = yaml_text.read(path) or {}
    if is_study_file(spec):
        raise ValueError(f"{path} is a study's pre-registration, not a training grid: pass its configurations "
                         "(python -m sparsam train-grid reads it)")
    if not isinstance(spec, dict) or set(spec) - {"parameters", "grid"}:
        unknown = sorted(set(spec) - {"parameters", "grid"}) if isinstance(spec, dict) else spec
        raise ValueError(f"a training grid has the keys 'parameters' and 'grid' only; unknown keys: {unknown}")
    grids = spec.get("grid") or {}
    grids = grids if isinstance(grids, list) else [grids]
    if not all(isinstance(g, dict) for g in grids):
        raise ValueError(f"grid must be a mapping of lists or a list of such mappings, got {spec['grid']!r}")
    configs = [TrainConfig.from_dict(values) for g in grids for values in expand(spec.get("parameters") or {}, g)]
    return list({config.run_id(): config for config in configs}.values())


def run_missing(configs: Iterable[TrainConfig], store: str | Path | None = None, runs_dir: str | Path | None = None,
                train_missing: bool = True, progress: bool = False) -> list[dict[str, Any]]:
    """Records of ``configs``: stored ones are read, missing ones trained (unless ``train_missing``
    is False, then they are left out) and stored. ``store`` and ``runs_dir`` default to the
    :class:`~sparsam.experiment.store.Workspace`'s."""
    workspace = Workspace.resolve(runs_dir, store)
    store, runs_dir = workspace.store, workspace.runs
    records = []
    for config in configs:
        record = load_record(config, store)
        if record is None and train_missing:
            summary = train(config, runs_dir=runs_dir, progress=progress, wait=True)  # another notebook may run it
            metrics = read_metrics(Path(runs_dir) / summary["run_id"] / "metrics.jsonl")
            record = {"summary": summary, "metrics": metrics}
            write_record(record_path(config, store), record)
        if record is not None:
            records.append(record)
    return records


def config_arguments(config: TrainConfig) -> list[str]:
    """The ``python -m sparsam train`` options that give back ``config``."""
    arguments = []
    for f in fields(TrainConfig):
        value = getattr(config, f.name)
        text = "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        arguments += ["--" + f.name.replace("_", "-"), text]
    return arguments


def status_file(config: TrainConfig, runs_dir: Path) -> Path:
    return Path(runs_dir) / config.run_id() / "job.json"


def train_point(config: dict[str, Any], store: str, runs_dir: str, job: dict[str, Any],
                nproc: int = 1) -> dict[str, Any]:
    """Train one configuration and store its record with ``job`` (what a grid job runs).

    ``nproc`` > 1 trains under ``torchrun`` with that many processes (one per GPU of the job).
    The status file says running, then finished or failed with the error's type and message.
    """
    config = TrainConfig.from_dict(config)
    status = status_file(config, Path(runs_dir))
    update_status(status, status="running", started=now(), job=job)
    try:
        if nproc > 1:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                       "-m", "sparsam", "train", *config_arguments(config), "--runs-dir", str(runs_dir),
                       "--no-progress"]
            subprocess.run(command, check=True)
        [record] = run_missing([config], store=Path(store), runs_dir=Path(runs_dir))
        record["job"] = {key: job[key] for key in ("executor", "job_id", "host")}
        write_record(record_path(config, Path(store)), record)
    except Exception as error:
        error_of = {"type": type(error).__name__, "message": str(error)}
        update_status(status, status="failed", failed=now(), error=error_of)
        raise
    update_status(status, status="finished", finished=now(), record=str(record_path(config, Path(store))))
    summary = record["summary"]
    print(f"{now()} {summary['run_id']} finished: test acc {summary['final_test_acc']:.4f}", flush=True)
    return {key: summary[key] for key in ("run_id", "final_test_acc", "best_test_acc", "final_train_loss")}


def _describe(outcome: Outcome) -> str:
    record = read_json(outcome.record["record"]) if outcome.record.get("record") else None
    return f"test acc {record['summary']['final_test_acc']:.4f}" if record else ""


def run_train_grid(grid_file: str | Path, options: ExecutorOptions = ExecutorOptions(),
                   store: str | Path | None = None, runs_dir: str | Path | None = None, dry_run: bool = False,
                   wait: bool = True, stream: TextIO | None = None,
                   configs: Sequence[TrainConfig] | None = None) -> int:
    """Train every configuration of the grid (``configs`` if given, else those of ``grid_file``) that has
    no record yet; returns a process exit code (1 when a point failed). Points whose job still runs are
    left to it. ``store`` and ``runs_dir`` default to the :class:`~sparsam.experiment.store.Workspace`'s
    (environment, else the current directory)."""
    stream = stream or sys.stdout
    workspace = Workspace.resolve(runs_dir, store)
    store, runs_dir = workspace.store.resolve(), workspace.runs.resolve()
    configs = load_train_grid(grid_file) if configs is None else list(configs)
    nproc = max(1, options.gpus_per_job)  # one process per GPU of a job
    points = []
    for config in configs:
        run_dir = runs_dir / config.run_id()
        status, logs = run_dir / "job.json", run_dir / "logs"
        record = read_json(status) if status.exists() else {}
        job, holder = record.get("job") or {}, lock_holder(run_dir)  # train() holds the run folder's lock
        if load_record(config, store) is not None:
            state = "finished"
        elif holder is not None or is_alive(record, logs):
            if job.get("job_id"):
                state = f"running (job {job['job_id']}, {job['executor']})"
            else:
                state = f"running (pid {holder.get('pid', '?')})"
        else:
            state = {"running": "interrupted", "submitted": "interrupted"}.get(record.get("status"),
                                                                            record.get("status", "to run"))
            points.append(Point(config.run_id(), train_point, dict(config=config.to_dict(), store=str(store),
                                                                  runs_dir=str(runs_dir), nproc=nproc),
                                status, logs))
        print(f"{state:11s}  {config.run_id()}", file=stream)
    if dry_run:
        if options.executor == "slurm" and points:
            print(f"\n{len(points)} Slurm job(s); the sbatch script of {points[0].name}:\n", file=stream)
            print(slurm_script(options, points[0].log_folder), file=stream)
        return 0
    outcomes = run_points(points, options, wait=wait)
    print_summary(outcomes, _describe, stream)
    return 1 if any(o.status == "failed" for o in outcomes) else 0
