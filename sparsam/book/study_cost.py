"""The CPU study's cost measured side by side: every configuration's epoch, interleaved in one process.

The study's records measure each run's process-CPU time per step while it trained, in sessions with
different loads beside it; on a 2-core machine that moves one process's CPU time by tens of per cent.
This check removes the load: :func:`measure` builds one :class:`sparsam.experiment.train.Trainer` per configuration
(as registered, one seed) and trains them an epoch at a time, round-robin in one process
(:func:`sparsam.book.efficiency.time_rounds`), so neighbouring epochs share the machine's state;
:func:`ratios` divides every epoch's CPU time by SGD's in the same round, and :func:`beside_records`
sets the result beside the records' cost. :func:`read` loads a record of the benchmark, :func:`describe`
says how it was made and :func:`stale_reason` whether the code has changed since. It is not
pre-registered and decides nothing: it tells how far the records' cost axis moves with the load.

``benchmarks/bench_study_cost.py`` runs it and writes ``results/study/cost_side_by_side.json``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from . import tables
from .efficiency import time_rounds
from .study import Study
from ..experiment.train import Trainer
from .stats import mean_interval
from .records import stale_reason as record_stale_reason

REFERENCE = "sgd"


def measure(study: Study, names: Sequence[str] | None = None, rounds: int = 5, seed: int = 0,
            data_root: str | Path | None = None) -> pd.DataFrame:
    """Process-CPU seconds per training step of each configuration in ``names`` (all if None; SGD must
    be among them), one epoch per configuration per round, interleaved after one warm-up epoch each.
    Long format: ``round``, ``configuration``, ``cpu_seconds_per_step``."""
    names = list(study.configurations) if names is None else list(names)
    for name in names:
        if name not in study.configurations:
            raise ValueError(f"names must be configurations of the study ({', '.join(study.configurations)}), "
                             f"got {name!r}")
    if REFERENCE not in names:
        raise ValueError(f"names must include {REFERENCE!r}, the unit of cost")
    configs = {name: next((c for c in study.configs(name) if c.seed == seed), None) for name in names}
    if any(c is None for c in configs.values()):
        raise ValueError(f"seed must be one every configuration of names has, got {seed!r}")
    trainers = {name: Trainer(config, data_root=data_root) for name, config in configs.items()}
    epochs = {name: 0 for name in names}

    def runner(name: str):
        def run() -> None:
            trainers[name].train_epoch(epochs[name], progress=False)
            epochs[name] += 1
        return run

    seconds = time_rounds({name: runner(name) for name in names}, rounds, torch.device("cpu"),
                          clock=time.process_time)
    per_step = seconds / pd.Series({name: trainers[name].steps_per_epoch for name in names})
    long = per_step.rename_axis("round").reset_index().melt(
        id_vars="round", var_name="configuration", value_name="cpu_seconds_per_step")
    return long.sort_values(["round", "configuration"], kind="stable").reset_index(drop=True)


def ratios(measured: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per configuration: the CPU time per step over SGD's in the same round, as the geometric mean over
    rounds (``cost``) with the t-interval of the mean log ratio (``cost_low``, ``cost_high``), and
    ``rounds``. ``measured`` is :func:`measure`'s long format."""
    wide = measured.pivot(index="round", columns="configuration", values="cpu_seconds_per_step")
    if REFERENCE not in wide.columns:
        raise ValueError(f"measured must hold {REFERENCE!r} rows, the unit of cost")
    if len(wide) < 2:
        raise ValueError(f"measured must hold at least 2 rounds for an interval, got {len(wide)}")
    logs = np.log(wide.div(wide[REFERENCE], axis=0))
    rows = []
    for name in wide.columns:
        mean, low, high = mean_interval(logs[name].dropna().to_numpy(), level)
        rows.append({"configuration": name, "cost": math.exp(mean), "cost_low": math.exp(low),
                     "cost_high": math.exp(high), "rounds": int(logs[name].notna().sum())})
    return pd.DataFrame(rows).sort_values("cost", kind="stable").reset_index(drop=True)


def beside_records(side_by_side: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """:func:`ratios` beside the records' cost (:func:`sparsam.book.study.pareto_points`), one row per
    configuration measured side by side: both costs in SGD steps with their intervals, and how far the
    records' cost is from the side-by-side one (records / side by side)."""
    records = points.set_index("label")
    rows = []
    for _, row in side_by_side.iterrows():
        name = row["configuration"]
        at = records.loc[name] if name in records.index else None
        recorded = at["cost"] if at is not None else math.nan
        rows.append({"configuration": name,
                     "side by side (SGD steps)": tables.interval_text(row["cost"], row["cost_low"],
                                                                      row["cost_high"]),
                     "records (SGD steps)": (tables.interval_text(at["cost"], at["cost_low"], at["cost_high"])
                                             if at is not None else "no record"),
                     "records / side by side": round(recorded / row["cost"], 2)})
    return pd.DataFrame(rows)



def read(path: str | Path) -> dict[str, Any]:
    """A record of ``benchmarks/bench_study_cost.py`` (its JSON), with its ``measured`` rows as a frame."""
    check = json.loads(Path(path).read_text())
    return {**check, "measured": pd.DataFrame(check["measured"])}


def stale_reason(check: Mapping[str, Any]) -> str | None:
    """Why a side-by-side record no longer describes the code at HEAD (the files of any optimizer of the
    study changed since it was made, or its tree was dirty), or None; as
    :func:`sparsam.book.records.stale_reason` for a run record."""
    return record_stale_reason({"provenance": check.get("provenance") or {}, "config": {"optimizer": "ssam-f"}})


def describe(check: Mapping[str, Any]) -> str:
    """How a side-by-side record was made, in a sentence's words: seed, rounds, threads, load, commit."""
    args, machine = check["args"], check["machine"]
    commit = str((check.get("provenance") or {}).get("git_commit") or "unknown")[:7]
    reason = stale_reason(check)
    return (f"seed {args['seed']}, {args['rounds']} rounds after one warm-up epoch each, "
            f"{machine['threads']} thread(s), load average {machine['loadavg_start'][0]:.1f} at the start and "
            f"{machine['loadavg_end'][0]:.1f} at the end, {machine['wall_seconds'] / 60:.0f} minutes, "
            f"commit {commit}" + (f" (stale: {reason})" if reason else ""))
