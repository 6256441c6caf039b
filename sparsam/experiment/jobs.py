"""Where grid points run: in this process, as local processes, or as Slurm jobs, through submitit.

A :class:`Point` is one unit of work of a grid: a picklable call that records its own outcome in
the point's status file (a JSON record with ``status`` running, finished or failed), and a log
folder next to it. :func:`run_points` runs points with the executor of :class:`ExecutorOptions`:

- ``inline``: one after the other in this process;
- ``local``: separate processes through submitit's local executor, at most ``jobs`` at a time;
- ``slurm``: one Slurm job per point through submitit (sbatch).

Inside a job, the call receives :func:`job_info` (executor, job id, host) to store with its record.
A job that Slurm stops at its time limit or preempts is requeued by submitit and starts the call
again, which resumes from the point's checkpoint (:class:`PointJob`); a killed job is recorded as
failed and the next run of the same command, which skips finished points, resumes it.
"""

from __future__ import annotations

import math
import os
import platform
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .store import atomic_write_json, now, read_json

if TYPE_CHECKING:
    import submitit

EXECUTORS = ("inline", "local", "slurm")
# the local executor's timeout without --time (submitit's own default, 2 minutes, would stop training runs)
LOCAL_DEFAULT_MINUTES = 7 * 24 * 60
_POLL_SECONDS = 0.5


def parse_time(text: str) -> int:
    """Minutes of a Slurm time limit: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM`` or ``D-HH:MM:SS``
    (seconds round up)."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise ValueError(f"time must be a Slurm time limit (MM, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]), got {text!r}")
    days, first, second, third = (int(g) if g is not None else None for g in match.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = ((days * 24 + first) * 60 + (second or 0)) * 60 + (third or 0)
    elif third is not None:  # HH:MM:SS
        seconds = (first * 60 + second) * 60 + third
    else:  # MM or MM:SS
        seconds = first * 60 + (second or 0)
    if seconds <= 0:
        raise ValueError(f"time must be positive, got {text!r}")
    return math.ceil(seconds / 60)


def parse_mem(text: str) -> str:
    """A memory size as sbatch writes it (``64G``, ``500M``): a number of GB, or a number with the unit
    M, G or T (MB, GB, TB too); fractions are converted to whole megabytes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([MGT]?)B?", text.strip().upper())
    if not match or float(match[1]) <= 0:
        raise ValueError(f"mem must be a positive size such as 64G, 500M or 1.5T, got {text!r}")
    number, unit = float(match[1]), match[2] or "G"
    if number == int(number):
        return f"{int(number)}{unit}"
    megabytes = number * {"M": 1, "G": 1024, "T": 1024 * 1024}[unit]
    return f"{math.ceil(megabytes)}M"


def parse_slurm_arg(text: str) -> tuple[str, str]:
    """``key=value`` of ``--slurm-arg`` (an sbatch option without its dashes: ``account=abc``, ``qos=high``)."""
    key, sep, value = text.partition("=")
    key = key.strip().lstrip("-")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", key):
        raise ValueError(f"slurm-arg must be key=value with an sbatch option as key (account=abc), got {text!r}")
    return key.replace("-", "_"), value


@dataclass(frozen=True)
class ExecutorOptions:
    """How points run: the executor and, for ``local`` and ``slurm``, the resources of each job.

    ``jobs``: most local jobs at a time. ``time``: a Slurm time limit (see :func:`parse_time`),
    also the local executor's timeout. ``mem``: see :func:`parse_mem`. ``slurm_args``: further
    sbatch options as (key, value) pairs.
    """

    executor: str = "inline"
    jobs: int = 1
    partition: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int | None = None
    mem: str | None = None
    time: str | None = None
    slurm_args: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        for name, low in (("jobs", 1), ("gpus_per_job", 0), ("cpus_per_job", 1)):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < low):
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.mem is not None:
            parse_mem(self.mem)
        if self.time is not None:
            parse_time(self.time)
        if self.executor == "slurm" and self.time is None:
            raise ValueError("time is required with executor 'slurm' (submitit's default limit is 5 minutes)")
        job_only = [name for name in ("gpus_per_job", "time") if getattr(self, name)]
        if job_only and self.executor == "inline":
            raise ValueError(f"{', '.join(job_only)}: for executors 'local' and 'slurm' only, not 'inline'")
        if self.jobs != 1 and self.executor != "local":
            raise ValueError(f"jobs applies to executor 'local' only, not {self.executor!r}")
        slurm_only = [name for name in ("partition", "cpus_per_job", "mem", "slurm_args") if getattr(self, name)]
        if slurm_only and self.executor != "slurm":
            raise ValueError(f"{', '.join(slurm_only)}: for executor 'slurm' only, not {self.executor!r}")

    def submitit_parameters(self, slot: int = 0) -> dict[str, Any]:
        """The parameters of :meth:`submitit.Executor.update_parameters` for this executor.

        ``slot``: which of the ``jobs`` local jobs running at once; each slot has its own GPUs.
        """
        if self.executor == "local":
            minutes = parse_time(self.time) if self.time else LOCAL_DEFAULT_MINUTES
            gpus = tuple(range(slot * self.gpus_per_job, (slot + 1) * self.gpus_per_job))
            return {"timeout_min": minutes, "gpus_per_node": self.gpus_per_job, "visible_gpus": gpus}
        params: dict[str, Any] = {"job_name": "sparsam", "nodes": 1, "ntasks_per_node": 1, "signal_delay_s": 120,
                                  "time": parse_time(self.time)}
        optional = {"partition": self.partition, "cpus_per_task": self.cpus_per_job,
                    "mem": parse_mem(self.mem) if self.mem else None, "gpus_per_node": self.gpus_per_job or None}
        params.update({k: v for k, v in optional.items() if v is not None})
        if self.slurm_args:
            params["additional_parameters"] = dict(self.slurm_args)
        return params


@dataclass(frozen=True)
class Point:
    """One unit of work: ``function(**kwargs, job=job_info(...))`` writes ``status_file``; its job
    logs go to ``log_folder``."""

    name: str
    function: Callable[..., Any]
    kwargs: dict[str, Any]
    status_file: Path
    log_folder: Path


def _submitit() -> Any:
    """The submitit module, imported at first use (the ``cluster`` extra; the inline executor needs none)."""
    try:
        import submitit
    except ImportError as error:
        raise ImportError(f'executors local and slurm need submitit: pip install "sparsam[cluster]" ({error})') \
            from error
    return submitit


def job_info(executor: str) -> dict[str, Any]:
    """Executor, job id, host, process id and visible GPUs (CUDA_VISIBLE_DEVICES, None if unset) of
    the calling process; the job id is None inline."""
    job_id = None
    if executor != "inline":
        job_id = _submitit().JobEnvironment().job_id
    return {"executor": executor, "job_id": job_id, "host": platform.node(), "pid": os.getpid(),
            "visible_gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}


class PointJob:
    """What a job runs: the point's call with the job's :func:`job_info`.

    Being checkpointable (a ``checkpoint`` method, as :class:`submitit.helpers.Checkpointable` has), it is
    requeued by submitit when Slurm signals the end of the time limit or a preemption, and calls the
    point again: the point resumes from its own checkpoint.
    """

    def __init__(self, point: Point, executor: str, threads: int | None = None) -> None:
        self.point, self.executor, self.threads = point, executor, threads

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """The same call, submitted again (submitit's requeue hook)."""
        return _submitit().helpers.DelayedSubmission(self, *args, **kwargs)

    def __call__(self) -> Any:
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        info = job_info(self.executor)
        print(f"{now()} point {self.point.name} on {info['host']}, job {info['job_id']}", flush=True)
        return self.point.function(**self.point.kwargs, job=info)


def _read(path: Path) -> dict[str, Any]:
    return read_json(path) if Path(path).exists() else {}


def update_status(path: Path, **changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into the JSON record at ``path`` (created if missing); returns the record."""
    record = _read(path)
    record.update(changes)
    atomic_write_json(Path(path), record)
    return record


def make_executor(options: ExecutorOptions, folder: Path, slot: int = 0) -> submitit.Executor:
    """A submitit executor for ``options`` (and a local job's ``slot``) writing its files under ``folder``."""
    if options.executor not in ("local", "slurm"):
        raise ValueError("executor 'inline' runs in this process and has no submitit executor")
    submitit = _submitit()
    kind = {"local": submitit.LocalExecutor, "slurm": submitit.SlurmExecutor}[options.executor]
    executor = kind(folder=folder)
    executor.update_parameters(**options.submitit_parameters(slot))
    return executor


def slurm_script(options: ExecutorOptions, folder: Path) -> str:
    """The sbatch script submitit would write for one point whose logs go to ``folder``."""

    class ScriptOnly(_submitit().SlurmExecutor):  # built without Slurm, to show the sbatch script of a dry run
        @classmethod
        def affinity(cls) -> int:
            return 1

    executor = ScriptOnly(folder=folder)
    executor.update_parameters(**options.submitit_parameters())
    return executor._make_submission_file_text(executor._submitit_command_str, "dry-run")  # submitit's own text


def is_alive(record: dict[str, Any], log_folder: Path) -> bool:
    """Whether the job a status record names (status submitted or running) may still be running (executor
    ``subprocess``: a process of a time-boxed chunk, :mod:`sparsam.experiment.chunk`, checked as a local job)."""
    job = record.get("job") or {}
    if record.get("status") not in ("submitted", "running") or job.get("job_id") is None:
        return False
    if job.get("executor") in ("local", "subprocess"):
        if job.get("host") != platform.node():
            return True  # a process of another machine: it cannot be checked, so it is not started twice
        try:
            os.kill(int(job["job_id"]), 0)  # a local job's controller's process id, or a subprocess's own
        except (ProcessLookupError, ValueError):
            return False
        except PermissionError:
            return True
        return True
    if job.get("executor") == "slurm":
        return not _submitit().SlurmJob(folder=log_folder, job_id=str(job["job_id"])).done(force_check=True)
    return False


@dataclass
class Outcome:
    """How a point ended in this call: finished, failed, submitted (still running) or waiting (not yet started)."""

    point: Point
    status: str
    record: dict[str, Any] = field(default_factory=dict)


def _threads(options: ExecutorOptions) -> int | None:
    """Threads per local job: the cores shared among ``jobs`` processes, unless OMP_NUM_THREADS says."""
    if options.executor != "local" or "OMP_NUM_THREADS" in os.environ:
        return None
    return max(1, (os.cpu_count() or 1) // options.jobs)


def _submit(point: Point, options: ExecutorOptions, slot: int) -> submitit.Job:
    """Submit ``point``; its status file says "submitted" with the job until the job writes its own status."""
    job_of = {"executor": options.executor, "job_id": None, "host": platform.node()}
    update_status(point.status_file, status="submitted", submitted=now(), job=job_of)
    job = make_executor(options, point.log_folder, slot).submit(PointJob(point, options.executor, _threads(options)))
    if _read(point.status_file).get("status") == "submitted":  # else the job has started and written its own
        update_status(point.status_file, job={**job_of, "job_id": job.job_id})
    return job


def _collect(point: Point, job: submitit.Job) -> Outcome:
    """The outcome of a job that is done; a job that died without recording its end is marked failed."""
    try:
        job.result()
    except Exception as error:  # the point's record says why it failed; a killed job could not write it
        if _read(point.status_file).get("status") != "failed":
            message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            update_status(point.status_file, status="failed", failed=now(),
                          error={"type": type(error).__name__, "message": message})
    record = update_status(point.status_file, log=str(job.paths.stdout), errors=str(job.paths.stderr))
    return Outcome(point, record.get("status", "failed"), record)


def run_points(points: list[Point], options: ExecutorOptions, wait: bool = True) -> list[Outcome]:
    """Run ``points`` with ``options``; with ``wait=False`` submit them and return at once
    (the local executor starts at most ``jobs`` points, the others wait for a later call)."""
    if options.executor == "inline":
        outcomes = []
        for point in points:
            try:
                point.function(**point.kwargs, job=job_info("inline"))
            except Exception:  # the point recorded its failure; the next points still run
                traceback.print_exc()
            record = _read(point.status_file)
            outcomes.append(Outcome(point, record.get("status", "failed"), record))
        return outcomes
    slots = list(range(options.jobs if options.executor == "local" else len(points)))  # free ones
    pending, running, outcomes = list(points), [], []
    while pending or running:
        while pending and slots:
            point, slot = pending.pop(0), slots.pop(0)
            running.append((point, _submit(point, options, slot), slot))
        if not wait:
            outcomes += [Outcome(p, "submitted", read_json(p.status_file)) for p, _, _ in running]
            outcomes += [Outcome(p, "waiting") for p in pending]
            return outcomes
        time.sleep(_POLL_SECONDS)
        for entry in [entry for entry in running if entry[1].done()]:
            running.remove(entry)
            slots.append(entry[2])
            outcomes.append(_collect(entry[0], entry[1]))
    order = {id(p): i for i, p in enumerate(points)}
    return sorted(outcomes, key=lambda o: order[id(o.point)])


def print_summary(outcomes: list[Outcome], describe: Callable[[Outcome], str] = lambda o: "",
                  stream: Any = None) -> None:
    """One line per point (status, name, job id, then ``describe`` or the error), then the counts."""
    stream = stream or sys.stdout
    for outcome in outcomes:
        record = outcome.record
        job_id = (record.get("job") or {}).get("job_id")
        job = f"job {job_id}" if job_id else ""
        detail = describe(outcome) if outcome.status == "finished" else ""
        if outcome.status == "failed":
            error = record.get("error") or {}
            detail = f"{error.get('type', 'error')}: {error.get('message', '')}"
            if record.get("errors"):
                detail += f" (log: {record['errors']})"
        print("  ".join(part for part in (f"{outcome.status:9s}", outcome.point.name, job, detail) if part),
              file=stream)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("finished", "failed", "submitted", "waiting")}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to run", file=stream)
