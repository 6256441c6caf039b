"""The CPU study's cost measured side by side: configurations interleaved epoch by epoch in one process.

The study's records measure each run's process-CPU time per step while it trained, in sessions with
different loads beside it; on a 2-core machine that moves one process's CPU time by tens of per cent.
:func:`measure` puts every configuration under the same load within a round: it trains one run per
configuration (:func:`sparsam.experiment.train.epoch_runner`; as registered, one seed) an epoch at a time, round-robin in one process (:func:`sparsam.book.efficiency.time_rounds`), so neighbouring
epochs share the machine's state; each row keeps the position of its epoch in the sequence of calls
(``order``), so the alternation is observed, not assumed (:func:`alternation_problem`), and the machine's
1-minute load average when the epoch began (``load``). What it does not control is the machine's other load
itself, which moves between rounds and between measurements: the ratios of two measurements may differ by more
than their intervals (:func:`between_measurements`). :func:`measurement_record` keeps the load average at the
start and the end and the processor (:func:`sparsam.experiment.provenance.processor`) with the measurement.
:func:`ratios` divides every epoch's CPU time by SGD's in the same round, and :func:`beside_records` sets the
result beside the records' cost.

The study's cost comparisons are decided only from such a measurement, pre-registered with its number
of rounds in ``results/study/cost_registration.yaml`` (:func:`sparsam.book.study.model.load_cost_registration`):
:func:`power` and
:func:`rounds_needed` size it from a pilot's round-to-round spread (:func:`plan`), :func:`decide_costs`
decides every registered comparison paired by round on the log scale (rounds are the replicates) with
its claim's margin of ``book/margins.yaml``, and :func:`cost_rows` gives those verdicts as rows of the
claims table. :func:`read` loads a record of the benchmark, :func:`describe` says how it was made and
:func:`stale_reason` whether the code has changed since.

``benchmarks/bench_study_cost.py`` runs it: ``--registration`` for the registered measurement
(``results/study/cost_interleaved.json``); without, the unregistered look of
``results/study/cost_side_by_side.json``, which decides nothing and is the pilot of the registration.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ..._checks import check_int, check_range
from ...experiment.optimizers import numerics
from ...experiment.provenance import git, provenance
from ...experiment.train import epoch_runner
from .. import claims, deviations, tables
from ..efficiency import time_rounds
from ..layout import book_root
from ..processors import processor_label
from ..records import stale_reason as record_stale_reason
from ..stats import Margins, Verdict, decide, margins as declared_margins, mean_interval
from .model import (DEVICE_UNITS, REFERENCE, Comparison, CostRegistration, Study, comparison_label,
                    cost_comparisons, load_study, study_device)

@dataclass(frozen=True)
class Clock:
    """What a measurement on one kind of device times: the column of :func:`measure`'s long format, the unit a
    registration must name, and the clock read around each epoch (between device synchronisations)."""

    column: str
    unit: str
    read: Callable[[], float]


CLOCKS = {"cpu": Clock("cpu_seconds_per_step", DEVICE_UNITS["cpu"], time.process_time),
          "cuda": Clock("gpu_seconds_per_step", DEVICE_UNITS["cuda"], time.perf_counter)}


UNIT = CLOCKS["cpu"].unit  # the CPU study's


def value_column(measured: pd.DataFrame) -> str:
    """The time column of a long-format measurement: CPU time (a CPU study's) or GPU wall time, exactly one."""
    present = [clock.column for clock in CLOCKS.values() if clock.column in measured.columns]
    if len(present) != 1:
        raise ValueError(f"measured must hold exactly one of the columns {[c.column for c in CLOCKS.values()]}, "
                         f"got {present}")
    return present[0]


def measure(study: Study, names: Sequence[str] | None = None, rounds: int = 5, seed: int = 0,
            data_root: str | Path | None = None,
            loadavg: Callable[[], tuple[float, float, float]] = os.getloadavg) -> pd.DataFrame:
    """Seconds per training step of each configuration in ``names`` (all if None; SGD must be among them), one
    epoch per configuration per round, interleaved after one warm-up epoch each: process-CPU time for a study on
    the CPU, wall time between device synchronisations on a GPU (:data:`CLOCKS`, by :func:`study_device`).
    Long format: ``round``, ``configuration``, the clock's column (``cpu_seconds_per_step`` or
    ``gpu_seconds_per_step``), the ``epoch`` trained (0 is the warm-up), ``order``, the position of that
    epoch among all the epochs the process trained, and ``load``, the machine's 1-minute load average
    (``loadavg``) when the epoch began."""
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
    device = study_device(study, names)  # one kind of device, checked before any trainer is built
    clock = CLOCKS[device]
    runners = {name: epoch_runner(config, data_root=data_root) for name, config in configs.items()}
    epochs = {name: 0 for name in names}
    calls: dict[tuple[str, int], int] = {}  # (configuration, epoch) -> position among all calls
    loads: dict[tuple[str, int], float] = {}  # (configuration, epoch) -> 1-minute load average at its start

    def runner(name: str):
        def run() -> None:
            calls[name, epochs[name]] = len(calls)
            loads[name, epochs[name]] = float(loadavg()[0])
            runners[name][0](epochs[name])
            epochs[name] += 1
        return run

    seconds = time_rounds({name: runner(name) for name in names}, rounds, torch.device(device), clock=clock.read)
    per_step = seconds / pd.Series({name: runners[name][1] for name in names})
    long = per_step.rename_axis("round").reset_index().melt(
        id_vars="round", var_name="configuration", value_name=clock.column)
    long["epoch"] = long["round"] + 1  # the j-th timed call of a runner trains its epoch j (epoch 0: warm-up)
    long["order"] = [calls[name, epoch] for name, epoch in zip(long["configuration"], long["epoch"])]
    long["load"] = [loads[name, epoch] for name, epoch in zip(long["configuration"], long["epoch"])]
    return long.sort_values(["round", "order"], kind="stable").reset_index(drop=True)


def alternation_problem(measured: pd.DataFrame) -> str | None:
    """Why ``measured`` (:func:`measure`'s long format) is not an interleaved measurement, or None: every
    round must time every configuration once, and every epoch of a round must have run (``order``) after
    every epoch of the round before and before every epoch of the round after."""
    missing = sorted({"round", "configuration", "order"} - set(measured.columns))
    if missing:
        return f"no record of the order of the epochs (columns {missing} missing)"
    names = set(measured["configuration"])
    for r, rows in measured.groupby("round"):
        if sorted(rows["configuration"]) != sorted(names):
            return f"round {r} times {sorted(rows['configuration'])}, not each of {sorted(names)} once"
    spans = measured.groupby("round")["order"].agg(["min", "max"]).sort_index()
    for (r, before), (s, after) in zip(spans.iloc[:-1].iterrows(), spans.iloc[1:].iterrows()):
        if before["max"] >= after["min"]:
            return f"rounds {r} and {s} overlap: an epoch of round {s} ran before one of round {r} (not alternated)"
    return None


def ratios(measured: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per configuration: the time per step over SGD's in the same round, as the geometric mean over
    rounds (``cost``) with the t-interval of the mean log ratio (``cost_low``, ``cost_high``), and
    ``rounds``. ``measured`` is :func:`measure`'s long format."""
    wide = measured.pivot(index="round", columns="configuration", values=value_column(measured))
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


def measurement_record(study: Study, names: Sequence[str] | None, *, rounds: int, seed: int, args: Mapping[str, Any],
                       data_root: str | Path | None = None,
                       loadavg: Callable[[], tuple[float, float, float]] = os.getloadavg,
                       clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """One measurement (:func:`measure`) as ``benchmarks/bench_study_cost.py`` records it: ``machine`` (the torch
    threads, the GPU's name, the load average at the start and at the end, the wall seconds), ``provenance``
    (:func:`sparsam.experiment.provenance.provenance`, the processor included), ``numerics`` (each configuration's
    versions of its algorithms, :func:`sparsam.experiment.optimizers.numerics`, which :func:`stale_reason` reads),
    the ``args`` given, ``measured`` (rows) and ``ratios`` (:func:`ratios`)."""
    device = torch.device(study_device(study, names))
    made_with = provenance(device)
    versions = {name: numerics(next(c for c in study.configs(name) if c.seed == seed).to_dict())
                for name in (list(study.configurations) if names is None else names)
                if any(c.seed == seed for c in study.configs(name))}
    load_start, start = loadavg(), clock()
    measured = measure(study, names, rounds=rounds, seed=seed, data_root=data_root, loadavg=loadavg)
    table = ratios(measured)
    load_end, wall = loadavg(), clock() - start
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"machine": {"threads": torch.get_num_threads(), "gpu": gpu, "loadavg_start": list(load_start),
                        "loadavg_end": list(load_end), "wall_seconds": wall},
            "provenance": made_with, "numerics": versions, "args": dict(args),
            "measured": measured.to_dict(orient="records"), "ratios": table.to_dict(orient="records")}


def between_measurements(first: pd.DataFrame, second: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Two measurements of the same procedure (:func:`measure`'s long format) set side by side, one row per
    configuration both timed, cheapest first in ``first`` (SGD, the unit, left out): each one's ratio to SGD with its interval (:func:`ratios`),
    and ``within``, whether each ratio lies inside the other's interval. Where one does not, the two differ by more
    than that measurement's round-to-round spread allows: by what changed between them (the machine's other load,
    its state), which neither controls."""
    a, b = (ratios(m, level).set_index("configuration") for m in (first, second))
    rows = []
    for name in [n for n in a.index if n in b.index and n != REFERENCE]:
        x, y = a.loc[name], b.loc[name]
        rows.append({"configuration": name,
                     "first": tables.interval_text(x["cost"], x["cost_low"], x["cost_high"]),
                     "second": tables.interval_text(y["cost"], y["cost_low"], y["cost_high"]),
                     "within": bool(x["cost_low"] <= y["cost"] <= x["cost_high"]
                                    and y["cost_low"] <= x["cost"] <= y["cost_high"])})
    return pd.DataFrame(rows, columns=["configuration", "first", "second", "within"])


def decide_pair(measured: pd.DataFrame, claim: str, a: str, b: str = REFERENCE,
                declared: Margins | None = None) -> Verdict:
    """``a`` against ``b`` in one measurement (:func:`measure`'s long format) by ``claim``'s rule
    (:func:`sparsam.book.stats.decide`), paired by round on the log scale, as :func:`decide_costs` decides a
    registered comparison; for reading any measurement, registered or not, by the same rule."""
    wide = measured.pivot(index="round", columns="configuration", values=value_column(measured))
    for name in (a, b):
        if name not in wide.columns:
            raise ValueError(f"measured must time {name!r}, got {sorted(wide.columns)}")
    return decide(claim, wide[a].to_numpy(float), wide[b].to_numpy(float), declared=declared)


def power(rounds: int, sd: float, distance: float, level: float = 0.95) -> float:
    """The chance that the two-sided ``level`` t-interval of the mean of ``rounds`` normal paired
    differences (standard deviation ``sd``, mean ``distance`` away from the decision's threshold) lies
    wholly on the true side of the threshold, i.e. decides: ``1 - F(t_c)`` with ``F`` the non-central t
    distribution of ``rounds - 1`` degrees of freedom and non-centrality ``distance * sqrt(rounds) / sd``."""
    check_int("rounds", rounds, 2)
    check_range("sd", sd, 0.0, math.inf, low_open=True)
    check_range("distance", distance, 0.0, math.inf)
    check_range("level", level, 0.0, 1.0, low_open=True)
    critical = stats.t.ppf((1 + level) / 2, rounds - 1)
    return float(stats.nct.sf(critical, rounds - 1, distance * math.sqrt(rounds) / sd))


def rounds_needed(sd: float, distance: float, *, level: float = 0.95, target: float = 0.8, min_rounds: int = 3,
                  max_rounds: int = 1000) -> int | None:
    """The fewest rounds (at least ``min_rounds``) whose :func:`power` reaches ``target``, or None when
    even ``max_rounds`` do not (e.g. a ratio at its margin: ``distance`` 0)."""
    check_range("target", target, 0.0, 1.0, low_open=True)
    check_int("min_rounds", min_rounds, 2)
    check_int("max_rounds", max_rounds, min_rounds)
    return next((n for n in range(min_rounds, max_rounds + 1) if power(n, sd, distance, level) >= target), None)


def plan(pilot: pd.DataFrame, comparisons: Sequence[Comparison], *, level: float = 0.95, target: float = 0.8,
         min_rounds: int = 3, max_rounds: int = 1000, declared: Margins | None = None) -> pd.DataFrame:
    """Per comparison, from a pilot measurement (:func:`measure`'s long format): the pilot's rounds, its
    ratio ``a / b`` (geometric mean over rounds), the standard deviation of the per-round log ratio,
    the claim's threshold (its margin as a ratio), the distance of the pilot's log ratio from the log
    threshold, and the :func:`rounds_needed` to decide it with that spread and distance (None: more than
    ``max_rounds``). ``declared``: the claims' rules (default: the book's)."""
    declared = declared_margins() if declared is None else declared
    wide = pilot.pivot(index="round", columns="configuration", values=value_column(pilot))
    rows = []
    for c in comparisons:
        for name in (c.a, c.b):
            if name not in wide.columns:
                raise ValueError(f"pilot must measure every configuration of the comparisons, {name!r} is missing")
        if declared[c.claim]["unit"] != "ratio":
            raise ValueError(f"comparisons must be of cost (unit 'ratio'), {c.claim!r} is in "
                             f"{declared[c.claim]['unit']!r}")
        logs = np.log(wide[c.a] / wide[c.b]).dropna().to_numpy()
        if logs.size < 2:
            raise ValueError(f"pilot must hold at least 2 rounds of {c.a} and {c.b}, got {logs.size}")
        threshold = float(declared[c.claim]["margin"])
        sd, distance = float(logs.std(ddof=1)), abs(float(logs.mean()) - math.log(threshold))
        rows.append({"claim": c.claim, "a": c.a, "b": c.b, "pilot_rounds": int(logs.size),
                     "pilot_ratio": math.exp(logs.mean()), "sd_log": sd, "threshold": threshold,
                     "distance_log": distance,
                     "rounds_needed": rounds_needed(sd, distance, level=level, target=target, min_rounds=min_rounds,
                                                    max_rounds=max_rounds)})
    table = pd.DataFrame(rows, columns=["claim", "a", "b", "pilot_rounds", "pilot_ratio", "sd_log", "threshold",
                                        "distance_log", "rounds_needed"])
    table["rounds_needed"] = pd.Series([r["rounds_needed"] for r in rows], index=table.index, dtype=object)
    return table


def choose_rounds(needed: Sequence[int | None], cycle: int) -> int:
    """The rounds of a measurement that decides every comparison whose ``needed`` rounds are known (None:
    out of reach, left out): their largest, rounded up to a multiple of ``cycle`` (the number of
    configurations, so that the rotated order puts each configuration at each position equally often)."""
    check_int("cycle", cycle, 1)
    known = [n for n in needed if n is not None]
    if not known:
        raise ValueError("needed must hold at least one number of rounds (not None)")
    return int(math.ceil(max(known) / cycle) * cycle)


def registration_from_pilot(study_file: str | Path, pilot_record: str | Path, record: str | Path, *, seed: int = 0,
                            threads: int = 1, level: float = 0.95, target: float = 0.8, min_rounds: int = 3,
                            max_rounds: int = 40) -> dict[str, Any]:
    """The pre-registration of a study's interleaved cost measurement, planned from an unregistered look at it
    (``pilot_record``, a record of ``benchmarks/bench_study_cost.py``) as the CPU study's was: every cost
    comparison of the study, the configurations they name and SGD, the rounds of :func:`choose_rounds` over
    :func:`plan` (``max_rounds``: the budget), the unit of the study's device and the plan itself. Paths as given
    (relative to the book's root); :func:`sparsam.book.study.model.load_cost_registration` reads the result."""
    study = load_study(study_file)
    comparisons = cost_comparisons(study)
    if not comparisons:
        raise ValueError(f"{study_file} makes no comparison of cost: there is nothing to register")
    names = list(dict.fromkeys([REFERENCE, *(n for c in comparisons for n in (c.a, c.b))]))
    table = plan(read(pilot_record)["measured"], comparisons, level=level, target=target, min_rounds=min_rounds,
                 max_rounds=max_rounds, declared=study.declared)
    needed = [None if n is None or n != n else int(n) for n in table["rounds_needed"]]
    if all(n is None for n in needed):
        raise ValueError(f"no cost comparison can be decided within max_rounds={max_rounds} rounds at the "
                         "pilot's spread: raise the budget or leave cost undecided")
    device = study_device(study, names)
    rows = [{"a": r["a"], "b": r["b"], "pilot_ratio": round(r["pilot_ratio"], 3), "sd_log": round(r["sd_log"], 3),
             "distance_log": round(r["distance_log"], 4), "rounds_needed": n}
            for (_, r), n in zip(table.iterrows(), needed)]
    return {"study": Path(study_file).as_posix(),
            "comparisons": [{"claim": c.claim, "a": c.a, "b": c.b} for c in comparisons],
            "measurement": {"record": Path(record).as_posix(), "configurations": names, "seed": seed,
                            "threads": threads, "unit": CLOCKS[device].unit, "warmup_epochs": 1,
                            "rounds": choose_rounds(needed, len(names))},
            "decision": {"rule": "Each comparison by its claim in book/margins.yaml (sparsam.book.stats.decide): the "
                                 "log of a's over b's time per step in the same round, paired by round (rounds are "
                                 "the replicates), two-sided 95% t-interval against the log of the margin.",
                         "correction": "The study's family-wise reading (Holm) applies to these comparisons."},
            "pilot": {"record": Path(pilot_record).as_posix(), "level": level, "target": target,
                      "min_rounds": min_rounds, "max_rounds": max_rounds, "plan": rows}}


def decide_costs(registration: CostRegistration, measured: pd.DataFrame) -> dict[Comparison, Verdict]:
    """Every registered comparison decided from an interleaved measurement (:func:`measure`'s long format)
    by its claim's rule (:func:`sparsam.book.stats.decide`): a's CPU time per step against b's in the same
    round, paired by round on the log scale; the rounds are the replicates. The measurement must be
    alternated (:func:`alternation_problem`) and hold the registered configurations and rounds."""
    problem = alternation_problem(measured)
    if problem:
        raise ValueError(f"measured must be interleaved: {problem}")
    if sorted(set(measured["configuration"])) != sorted(registration.configurations):
        raise ValueError(f"measured must time the registered configurations {sorted(registration.configurations)}, "
                         f"got {sorted(set(measured['configuration']))}")
    wide = measured.pivot(index="round", columns="configuration", values=value_column(measured))
    if len(wide) != registration.rounds:
        raise ValueError(f"measured must hold the {registration.rounds} registered rounds, got {len(wide)}")
    return {c: decide(c.claim, wide[c.a].to_numpy(float), wide[c.b].to_numpy(float),
                      declared=registration.study.declared)
            for c in registration.comparisons}


def registration_problem(check: Mapping[str, Any], registration: CostRegistration) -> str | None:
    """Why a record of the benchmark is not the registered measurement, or None: it must name the registration
    (the path relative to the book's root, or outside any book a file of its name), be made in a clean tree at a
    commit that holds the registration as it is now (so the registration was committed before the measurement
    ran), as the code's git history says. A tree sent to a GPU machine without ``.git`` names its commit
    (``SPARSAM_GIT_COMMIT``) and cannot tell whether it is clean (``git_dirty`` None): it is taken as sent, from a
    clean checkout of that commit."""
    named = (check.get("args") or {}).get("registration")
    path = registration.path.resolve()
    try:
        root = book_root(path.parent).resolve()
        wanted = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        fits = named == wanted
    except FileNotFoundError:  # a copy of the study's folder: the file of the name the record gives
        wanted = path.name
        fits = isinstance(named, str) and Path(named).name == wanted
    if not fits:
        return f"it names registration {named!r}, not {wanted!r}"
    made = check.get("provenance") or {}
    commit = made.get("git_commit")
    if not commit or made.get("git_dirty") is True:  # None: a tree sent without .git, its commit named
        return "it was not made in a clean tree at a known commit"
    committed = git("show", f"{commit}:{named}")
    if committed is None:
        return f"{named} is not in the record's commit {commit[:7]} (or there is no git history to read)"
    if committed != path.read_text().strip():
        return f"{named} differs from the registration in the record's commit {commit[:7]}"
    return None


def cost_rows(registration: CostRegistration, check: Mapping[str, Any]) -> pd.DataFrame:
    """:func:`decide_costs` of a registered record as rows of the claims table
    (:func:`sparsam.book.claims.claims_frame`, labelled as :func:`sparsam.book.study.decide_comparisons`
    labels them), with the record's commit and staleness; a record that is not the registered
    measurement (:func:`registration_problem`) is an error."""
    problem = registration_problem(check, registration)
    if problem:
        raise ValueError(f"check must be the registered measurement of {registration.path.name}: {problem}")
    measured = check["measured"] if isinstance(check["measured"], pd.DataFrame) else pd.DataFrame(check["measured"])
    used = pd.DataFrame({"commit": [str(check["provenance"]["git_commit"])[:7]],
                         "stale": [stale_reason(check, registration.study) is not None]})
    evidence = f"interleaved measurement ({registration.record.name}, {registration.rounds} rounds)"
    rows = claims.claims_frame([claims.row(comparison_label(c), c.claim, verdict, used=used, evidence=evidence,
                                           declared=registration.study.declared)
                                for c, verdict in decide_costs(registration, measured).items()])
    return rows.assign(scale=measurement_scale(check, registration.study))


def measurement_scale(check: Mapping[str, Any], study: Study) -> str:
    """The scale of an interleaved measurement (a record of ``benchmarks/bench_study_cost.py``) of ``study``'s
    configurations, from the record: the data and network its configurations train (at the record's seed), the
    seed, the epochs timed per configuration (one per round) after the untimed warm-up epochs (the first timed
    epoch's number: epoch 0 is the warm-up), "paired by round", the device and its threads."""
    measured = check["measured"] if isinstance(check["measured"], pd.DataFrame) else pd.DataFrame(check["measured"])
    seed = (check.get("args") or {}).get("seed", 0)
    names = list(dict.fromkeys(measured["configuration"]))
    configs = [next(c for c in study.configs(name) if c.seed == seed) for name in names]
    made = check.get("provenance") or {}
    setup = deviations.setup_text(pd.DataFrame([c.to_dict() for c in configs]))
    rounds, warmup = int(measured["round"].nunique()), int(measured["epoch"].min())
    threads = (check.get("machine") or {}).get("threads", made.get("cpu_threads"))
    device = str(made.get("device") or configs[0].device).split(":")[0]
    where = ("CPU" if device == "cpu" else "GPU") + (f" ({made['device_name']})" if made.get("device_name") else "")
    return (f"{setup}, seed {seed} only, {rounds} epochs timed per configuration (one per round, {len(names)} "
            f"configurations) after {warmup} untimed warm-up epoch{'' if warmup == 1 else 's'}, paired by round, "
            f"{where}" + (f", {threads} thread{'' if threads == 1 else 's'}" if threads else ""))


NOT_SIDE_BY_SIDE = ("no registered side-by-side measurement: cost is decided only from configurations "
                    "interleaved in one process; the runs' own timings are descriptive")


def unmeasured_rows(study: Study, evidence: str = NOT_SIDE_BY_SIDE) -> pd.DataFrame | None:
    """Rows that leave every cost comparison (unit "ratio") of ``study`` inconclusive, with no seeds, for a study
    whose cost no registered interleaved measurement decides (the runs' timings, made at different times, do not);
    None when the study makes no cost comparison. Labelled as :func:`cost_rows` labels its rows."""
    units = study.declared
    rows = [claims.row(comparison_label(c), c.claim, decide(c.claim, [], [], declared=units), evidence=evidence,
                       declared=units)
            for c in study.family if units[c.claim]["unit"] == "ratio"]
    return claims.claims_frame(rows) if rows else None


def read(path: str | Path) -> dict[str, Any]:
    """A record of ``benchmarks/bench_study_cost.py`` (its JSON), with its ``measured`` rows as a frame."""
    check = json.loads(Path(path).read_text())
    return {**check, "measured": pd.DataFrame(check["measured"])}


def stale_reason(check: Mapping[str, Any], study: Study | None = None) -> str | None:
    """Why a side-by-side record no longer describes the code at HEAD, or None; as
    :func:`sparsam.book.records.stale_reason` for a run record, for every configuration it measured: with
    ``study``, each configuration's own algorithms (its version of each as the record stores them under
    ``numerics``, or the first for a record made before records stored them); without, SSAM-F's. A dirty tree or an
    unknown commit make the whole record stale."""
    made = check.get("provenance") or {}
    if study is None:
        return record_stale_reason({"provenance": made, "config": {"optimizer": "ssam-f"}})
    measured = check["measured"] if isinstance(check["measured"], pd.DataFrame) else pd.DataFrame(check["measured"])
    seed = (check.get("args") or {}).get("seed", 0)
    for name in dict.fromkeys(measured["configuration"]):
        config = next((c for c in study.configs(name) if c.seed == seed), None) if name in study.configurations \
            else None
        if config is None:
            return f"{name} is not a configuration of the study with seed {seed}"
        reason = record_stale_reason({"provenance": made, "config": config.to_dict(),
                                      "numerics": (check.get("numerics") or {}).get(name)})
        if reason:
            return reason if reason.startswith(("made in", "unknown", "dirty", "no git")) else f"{name}: {reason}"
    return None


def describe(check: Mapping[str, Any], study: Study | None = None) -> str:
    """How a side-by-side record was made, in a sentence's words: seed, rounds, threads, load, processor, commit,
    and whether it is stale (:func:`stale_reason`, with ``study`` for every configuration it measured)."""
    args, machine = check["args"], check["machine"]
    commit = str((check.get("provenance") or {}).get("git_commit") or "unknown")[:7]
    reason = stale_reason(check, study)
    where = f"{machine['gpu']}, " if machine.get("gpu") else ""
    return (f"seed {args['seed']}, {args['rounds']} rounds after one warm-up epoch each, "
            f"{where}{machine['threads']} thread(s), load average {machine['loadavg_start'][0]:.1f} at the start and "
            f"{machine['loadavg_end'][0]:.1f} at the end, {machine['wall_seconds'] / 60:.0f} minutes, "
            f"{processor_label(check.get('provenance') or {})}, "
            f"commit {commit}" + (f" (stale: {reason})" if reason else ""))

