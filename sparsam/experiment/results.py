"""The results store: small JSON records of finished runs, committed under ``results/``.

Notebooks call :func:`sparsam.experiment.grid.run_missing`: configs whose record exists are read, the others
are trained (in the run folder, resumable) and their record written, so the book can be rebuilt on a CPU from runs
made earlier on a GPU. A record holds the run's summary (with provenance) and per-epoch metrics.

A ``store`` or ``runs_dir`` left at None is the :class:`~sparsam.experiment.store.Workspace`'s, resolved at
the call: ``$SPARSAM_STORE`` / ``$SPARSAM_RUNS``, else ``./results/runs`` / ``./runs`` of the current directory.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np

from .config import TrainConfig
from .record_schema import RecordError, read_record, run_record_text
from .store import Workspace, atomic_write_bytes


def pack_bits(flags: np.ndarray) -> dict[str, Any]:
    """A boolean vector as ``{"n": len, "bits": base64 of np.packbits}`` (1,250 bytes for 10,000 flags)."""
    flags = np.asarray(flags, dtype=bool).reshape(-1)
    return {"n": int(flags.size), "bits": base64.b64encode(np.packbits(flags).tobytes()).decode("ascii")}


def unpack_bits(packed: dict[str, Any]) -> np.ndarray:
    """The boolean vector of :func:`pack_bits`."""
    raw = np.frombuffer(base64.b64decode(packed["bits"]), dtype=np.uint8)
    return np.unpackbits(raw, count=packed["n"]).astype(bool)


def correctness(record: dict[str, Any]) -> np.ndarray | None:
    """Per-example correctness of a record's final evaluation (test-set order), or None for records
    made before it was kept."""
    packed = record.get("summary", record).get("test_correct")
    return None if packed is None else unpack_bits(packed)


def record_path(config: TrainConfig, store: str | Path | None = None) -> Path:
    return Workspace.resolve(store=store).store / f"{config.run_id()}.json"


def write_record(path: str | Path, record: dict[str, Any]) -> None:
    """Write the run ``record`` to ``path`` atomically, its metrics as columns
    (:func:`sparsam.experiment.record_schema.run_record_text`)."""
    atomic_write_bytes(Path(path), run_record_text(record).encode())


def load_record(config: TrainConfig, store: str | Path | None = None) -> dict[str, Any] | None:
    """The stored record of ``config`` (store: the :class:`~sparsam.experiment.store.Workspace`'s by default)
    or ``None``; an unreadable or inconsistent record (:func:`sparsam.experiment.record_schema.check_run_record`)
    or one with another config raises :class:`~sparsam.experiment.record_schema.RecordError` naming the file."""
    path = record_path(config, store)
    if not path.exists():
        return None
    record = read_record(path, "run")
    if TrainConfig.from_dict(record["summary"]["config"]) != config:  # older records lack later fields
        raise RecordError(path, "does not hold the config it is named after")
    return record


def load_all(store: str | Path | None = None) -> list[dict[str, Any]]:
    """Every record in the store (the :class:`~sparsam.experiment.store.Workspace`'s by default), sorted by
    run id; the first unreadable or inconsistent one raises
    :class:`~sparsam.experiment.record_schema.RecordError` naming the file (never left out)."""
    return [read_record(p, "run") for p in sorted(Workspace.resolve(store=store).store.glob("*.json"))]
