"""The run store: ``runs/<run_id>/`` with config, per-epoch metrics, checkpoint and summary.

Files are written atomically (temporary file + ``os.replace``), so a run killed at any moment
leaves either the previous or the new version of each file, never half of one.

One writer per folder: :func:`lock` (a context manager) holds an exclusive ``fcntl.flock`` on a
lock file in the folder (``.lock``, or ``name``) for as long as the writer runs, and writes the
holder's PID, host and start time into it. The kernel releases the lock when the process dies, so
a lock file left by a killed process (``kill -9``, a lost node) is stale and taken over at once;
a live holder makes :func:`lock` raise :class:`Locked` naming the folder and the holding process
(or, with ``wait=True``, wait for it). :func:`holder` tells, without taking it, who holds a lock.
Training runs (:func:`sparsam.experiment.train.train`) and sweep points (:func:`sparsam.experiment.sweep.run_point`)
both use it. flock works across processes of one machine and across NFS clients (Linux emulates it
with byte-range locks there); it does not protect folders on file systems without locking.

Where runs and records go is a :class:`Workspace` (the run folder and the record store), resolved
when a command or a function runs, never at import: from the arguments, else the environment
(``SPARSAM_RUNS``, ``SPARSAM_STORE``), else the current directory (``./runs``, ``./results/runs``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import io
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch


def _folder(given: str | Path | None, variable: str, default: str) -> Path:
    """``given``, else the environment variable ``variable`` (if set and not empty), else ``default``,
    relative to the current directory; as an absolute path (a later ``chdir`` does not move it)."""
    text = given if given is not None and str(given) != "" else os.environ.get(variable) or default
    return Path(text).expanduser().absolute()


@dataclass(frozen=True)
class Workspace:
    """Where runs and their records go: ``runs`` (run folders: config, metrics, checkpoint, job status)
    and ``store`` (the JSON records of finished runs, :mod:`sparsam.experiment.results`), absolute."""

    runs: Path
    store: Path

    @classmethod
    def resolve(cls, runs: str | Path | None = None, store: str | Path | None = None) -> Workspace:
        """Each folder from its argument, else ``$SPARSAM_RUNS`` / ``$SPARSAM_STORE``, else ``./runs`` /
        ``./results/runs`` of the current directory, read now."""
        return cls(_folder(runs, "SPARSAM_RUNS", "runs"), _folder(store, "SPARSAM_STORE", "results/runs"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make records unreadable to others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_torch_save(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Per-epoch metric records of a run (one JSON object per line)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_metrics(path: Path, records: Iterable[dict[str, Any]]) -> None:
    atomic_write_bytes(Path(path), "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode())


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Locked(RuntimeError):
    """Another live process holds the lock of a folder (see :func:`lock`)."""

    def __init__(self, folder: Path, holder: dict[str, Any]):
        self.folder, self.holder = Path(folder), holder
        super().__init__(f"{folder} is in use by process {holder.get('pid', '?')} on {holder.get('host', '?')} "
                         f"(since {holder.get('started', '?')}); wait for it to finish or stop that process")


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True


def _read_holder(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def holder(folder: str | Path, name: str = ".lock") -> dict[str, Any] | None:
    """PID, host and start time of the live process holding ``folder``'s lock, or None if it is free."""
    path = Path(folder) / name
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if _try_flock(fd):
            return None  # free (a stale file of a dead process, or a writer that is just leaving)
        return _read_holder(path)
    finally:
        os.close(fd)  # closing drops a lock taken by the probe


@contextlib.contextmanager
def lock(folder: str | Path, wait: bool = False, name: str = ".lock", poll: float = 1.0) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (file ``folder/name``) for the ``with`` block; yields the lock file.

    A live holder raises :class:`Locked` at once, or with ``wait=True`` is waited for (checked every
    ``poll`` seconds). A stale lock file (its process died) is taken over. The file is removed on exit,
    and the folder too if nothing else is in it (a run that failed before writing anything).
    """
    path = Path(folder) / name
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # the previous holder removed the empty folder in between
            continue
        if _try_flock(fd):
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a file that the previous holder unlinked while we opened it
                break
        else:
            info = _read_holder(path)
            if not wait:
                os.close(fd)
                raise Locked(path.parent, info)
        os.close(fd)
        time.sleep(poll)
    try:
        info = json.dumps({"pid": os.getpid(), "host": platform.node(), "started": now()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, info, 0)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # unlink before unlocking: a waiter then finds the file replaced and retries
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only if empty
        os.close(fd)
