"""The CPU study's pre-registration (``results/study/cpu_study.yaml``): its configurations and comparisons.

:func:`load_study` reads and checks the file: every configuration is a valid :class:`TrainConfig`
(the ``regime`` plus the configuration's own fields, once per seed of its seed list), every comparison
names two configurations and a claim whose pinned margin equals ``book/margins.yaml``'s.
:meth:`Study.configs` gives what ``python -m sparsam train-grid`` trains; :func:`pilot_verdicts`
recomputes the pilot's decisions from its records.

The study's records (``results/study/runs/``) are read by :func:`study_frame`; :func:`progress` counts
them, :func:`decide_comparisons` decides every pre-registered comparison (and
:func:`decide_comparisons_interleaved` takes the cost comparisons from the registered interleaved
measurement of :mod:`sparsam.book.study_cost` instead of the records' timings), :func:`pareto_points` puts
accuracy beside measured cost per step, :func:`answer` answers the study's question from the decisions,
and :func:`book_statuses` combines them into the statuses of the reproduction page's claims.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import numpy as np
import pandas as pd

from . import claims, tables
from ..experiment.config import TrainConfig
from ..experiment.results import RESULTS, load_all
from ..experiment.store import REPO, _git
from .stats import Verdict, combine, compare, margins as declared_margins
from .records import cost_summary, pareto_front, records_frame, summarize

STUDY = RESULTS / "study" / "cpu_study.yaml"
STORE = RESULTS / "study" / "runs"
PILOT_STORE = RESULTS / "study" / "pilot"

_MARGIN_FIELDS = ("test", "unit", "better", "margin")
# What a comparison compares, by the unit of its claim: final test accuracy (pp) or CPU time per step (ratio).
VALUES = {"pp": "final_test_acc", "ratio": "cpu_seconds_per_step"}
# The claims of the reproduction page that the study decides, each by the comparisons it needs
# (combined by sparsam.book.stats.combine: reproduced when all are, not reproduced when one is not).
BOOK_CLAIMS = {
    "acc": (("accuracy_ssam_vs_sam", "ssam-f-0.5", "sam"), ("accuracy_ssam_vs_sam", "ssam-d-0.5", "sam")),
    "sam_sgd": (("accuracy_sam_vs_sgd", "sam", "sgd"),),
    "radius": (("accuracy_ssam_vs_sam", "ssam-f-0.5-masked", "sam"),),
    "patterns": tuple(("accuracy_pattern_vs_sam", p, "sam") for p in ("layer-0.5", "filter-0.5", "2:4-explicit")),
    "forms": (("accuracy_implicit_vs_explicit", "2:4-implicit", "2:4-explicit"),),
    "cost": (("cost_time_ssam_vs_sam", "ssam-f-0.5", "sam"),),
    "cost_aware": (("cost_time_cost_aware_vs_sam", "cost-aware-0.9", "sam"),),
    "fisher_random": (("accuracy_fisher_vs_random", "ssam-f-0.5", "random-0.5"),),
}
ACCURACY_RULE, COST_RULE = "accuracy_ssam_vs_sam", "cost_time_vs_sgd_at_most_1_25"  # the question's two claims


@dataclass(frozen=True)
class Comparison:
    """One pre-registered decision: configuration ``a`` against ``b`` by the rule of ``claim``."""

    claim: str
    a: str
    b: str


@dataclass(frozen=True)
class Study:
    """The parsed pre-registration."""

    regime: dict[str, Any]
    configurations: dict[str, tuple[dict[str, Any], tuple[int, ...]]]  # name -> (fields, seeds)
    comparisons: tuple[Comparison, ...]
    margins: dict[str, Any]
    pilot: dict[str, Any]

    def configs(self, name: str | None = None) -> list[TrainConfig]:
        """The training configurations of ``name`` (every configuration if None), one per seed."""
        names = list(self.configurations) if name is None else [name]
        for n in names:
            if n not in self.configurations:
                raise ValueError(f"configuration must be one of {', '.join(self.configurations)}, got {n!r}")
        return [self._config(n, seed) for n in names for seed in self.configurations[n][1]]

    def paired_seeds(self, a: str, b: str) -> int:
        """How many seeds a comparison of ``a`` with ``b`` pairs once every planned run is in."""
        return len(set(self.configurations[a][1]) & set(self.configurations[b][1]))

    def name_of(self, config: TrainConfig) -> str | None:
        """The configuration a training config belongs to (None if it is not part of the study)."""
        return next((n for n in self.configurations if self._config(n, config.seed) == config), None)

    def _config(self, name: str, seed: int) -> TrainConfig:
        return TrainConfig.from_dict({**self.regime, **self.configurations[name][0], "seed": seed})


def load_study(path: str | Path = STUDY, margins_path: str | Path | None = None) -> Study:
    """Read and check the pre-registration; any inconsistency is a ``ValueError`` naming it."""
    spec = yaml.safe_load(Path(path).read_text())
    seed_lists = {k: tuple(int(s) for s in v) for k, v in spec["seeds"].items()}
    configurations = {}
    for name, values in spec["configurations"].items():
        values = dict(values)
        seeds = values.pop("seeds")
        if seeds not in seed_lists:
            raise ValueError(f"configuration {name!r}: seeds must be one of {sorted(seed_lists)}, got {seeds!r}")
        configurations[str(name)] = (values, seed_lists[seeds])
    comparisons = tuple(Comparison(str(c["claim"]), str(c["a"]), str(c["b"])) for c in spec["comparisons"])
    study = Study(dict(spec["regime"]), configurations, comparisons, dict(spec["margins"]), dict(spec["pilot"]))
    study.configs()  # every configuration must be valid
    declared = declared_margins(margins_path)
    for c in comparisons:
        for name in (c.a, c.b):
            if name not in configurations:
                raise ValueError(f"comparison {c}: {name!r} is not a configuration of the study")
        pinned = study.margins.get(c.claim)
        if pinned is None or c.claim not in declared:
            raise ValueError(f"comparison {c}: claim {c.claim!r} needs a margin in the study and in book/margins.yaml")
        if {k: pinned[k] for k in _MARGIN_FIELDS} != {k: declared[c.claim][k] for k in _MARGIN_FIELDS}:
            raise ValueError(f"claim {c.claim!r}: the study's pinned margin {pinned} differs from book/margins.yaml")
    return study


def pilot_verdicts(study: Study, store: str | Path = PILOT_STORE) -> dict[str, Verdict]:
    """SAM against SGD in each pilot regime, recomputed from the pilot's records (superiority, paired by seed)."""
    records = [r["summary"] for r in load_all(Path(store))]
    out = {}
    for regime, changes in study.pilot["regimes"].items():
        wanted = {**study.regime, **changes, "device": "cuda"}
        accuracy: dict[str, dict[int, float]] = {"sgd": {}, "sam": {}}
        for s in records:
            config = TrainConfig.from_dict(s["config"])
            if config.optimizer in accuracy and config == TrainConfig.from_dict(
                    {**wanted, "optimizer": config.optimizer, "seed": config.seed}):
                accuracy[config.optimizer][config.seed] = 100 * s["final_test_acc"]
        seeds = sorted(set(accuracy["sgd"]) & set(accuracy["sam"]))
        out[regime] = compare([accuracy["sam"][k] for k in seeds], [accuracy["sgd"][k] for k in seeds],
                              test="superiority", level=study.margins["level"], min_n=study.margins["min_n"])
    return out


def study_frame(study: Study, records: list[dict[str, Any]]) -> pd.DataFrame:
    """:func:`sparsam.book.records.records_frame` of the study's records with a ``configuration`` column
    (its name in the pre-registration); records of other configurations are left out. Row ``i``
    keeps the position of its record in ``records`` as ``position``."""
    frame = records_frame(records).assign(position=np.arange(len(records)))
    frame.insert(0, "configuration", [study.name_of(TrainConfig.from_dict(r["summary"]["config"])) for r in records])
    return frame[frame["configuration"].notna()].reset_index(drop=True)


def progress(study: Study, frame: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: the seeds planned, the seeds with a record, and the CPU-hours those runs took."""
    rows = []
    for name, (_, seeds) in study.configurations.items():
        done = frame[frame["configuration"] == name]
        steps = done["epochs"] * np.ceil(done["n_train"] / done["batch_size"])
        rows.append({"configuration": name, "seeds planned": len(seeds), "seeds done": len(done),
                     "seeds": ", ".join(str(s) for s in sorted(done["seed"])) or "–",
                     "CPU-hours": float((done["cpu_seconds_per_step"] * steps).sum() / 3600)})
    return pd.DataFrame(rows)


def rerun_estimate(study: Study, frame: pd.DataFrame, parallel: int = 2) -> dict[str, float]:
    """How long re-running the whole study takes at the pace of its records: ``runs`` planned,
    ``hours_per_run`` (mean wall-clock hours of the records trained in one process, resumed ones left
    out) and ``hours`` for every run, ``parallel`` at a time (NaN without such a record)."""
    whole = frame.loc[frame["resumed_from_epoch"].fillna(0) == 0, "wall_seconds_this_process"].dropna()
    runs = sum(len(seeds) for _, seeds in study.configurations.values())
    per_run = float(whole.mean() / 3600) if len(whole) else float("nan")
    return {"runs": runs, "hours_per_run": per_run, "hours": per_run * math.ceil(runs / parallel)}


def comparison_label(comparison: Comparison) -> str:
    """How a comparison is named in the tables, e.g. ``"ssam-f-0.5 vs sam (accuracy_ssam_vs_sam)"``."""
    return f"{comparison.a} vs {comparison.b} ({comparison.claim})"


def decide_comparisons(study: Study, frame: pd.DataFrame, records: list[dict[str, Any]], *,
                       resamples: int = 2000) -> pd.DataFrame:
    """Every pre-registered comparison decided from the records (a :func:`sparsam.book.claims.claims_frame`,
    one row per comparison in the file's order), paired by seed over the seeds both sides have."""
    units = declared_margins()
    rows = []
    for c in study.comparisons:
        value = VALUES[units[c.claim]["unit"]]
        sides = [frame[frame["configuration"] == name].set_index("seed") for name in (c.a, c.b)]
        seeds = sorted(set(sides[0].index) & set(sides[1].index))
        a, b = (side.loc[seeds] for side in sides)
        correct = (claims.correctness([records[i] for i in a["position"]], [records[i] for i in b["position"]])
                   if value == "final_test_acc" else None)
        rows.append(claims.paired_claim(comparison_label(c), c.claim, a[value].to_numpy(float),
                                        b[value].to_numpy(float), pd.concat([a, b]), correct=correct,
                                        resamples=resamples, evidence="CPU study (notebook 8)"))
    return claims.claims_frame(rows)


def decide_comparisons_interleaved(study: Study, frame: pd.DataFrame, records: list[dict[str, Any]],
                                   cost: pd.DataFrame, *, resamples: int = 2000) -> pd.DataFrame:
    """:func:`decide_comparisons` with every comparison of cost (unit "ratio") taken from ``cost``, the rows
    of the registered interleaved measurement (:func:`sparsam.book.study_cost.cost_rows`), not from the
    records' own timings (which stay descriptive); a cost comparison missing from ``cost`` is an error."""
    decided = decide_comparisons(study, frame, records, resamples=resamples)
    units = declared_margins()
    by_label = cost.set_index("claim")
    missing = [comparison_label(c) for c in study.comparisons
               if units[c.claim]["unit"] == "ratio" and comparison_label(c) not in by_label.index]
    if missing:
        raise ValueError(f"cost must decide every cost comparison of the study, missing {missing}")
    rows = [{"claim": comparison_label(c), **by_label.loc[comparison_label(c)].to_dict()}
            if units[c.claim]["unit"] == "ratio" else row.to_dict()
            for c, (_, row) in zip(study.comparisons, decided.iterrows())]
    return pd.DataFrame(rows, columns=decided.columns)


def pareto_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: test accuracy (mean, 95% interval over seeds) and CPU time per step in SGD
    steps (over the mean of the SGD runs), with ``on_front`` marking the Pareto front of the means."""
    points = cost_summary(frame, time="cpu_seconds_per_step", by="configuration")
    return points.assign(on_front=pareto_front(points))


def answer(study: Study, decided: pd.DataFrame) -> str:
    """The study's question answered from the decided comparisons: a configuration answers "yes" when
    both its accuracy against SAM (non-inferiority) and its cost against 1.25 SGD steps are reproduced;
    the answer is "no" when every configuration with both comparisons fails one of them, and "not
    decided" otherwise: "yet" while runs are missing, "at this scale" once every planned seed is in."""
    status = {(c.claim, c.a): s for c, s in zip(study.comparisons, decided["status"])}
    candidates = [c.a for c in study.comparisons if c.claim == COST_RULE and (ACCURACY_RULE, c.a) in status]
    if not candidates:
        raise ValueError(f"the study must compare some configuration by both {ACCURACY_RULE} and {COST_RULE}")
    both = {name: (status[ACCURACY_RULE, name], status[COST_RULE, name]) for name in candidates}
    margins = declared_margins()
    within = (f"within {margins[ACCURACY_RULE]['margin']:g} pp of SAM's accuracy at a CPU cost of at most "
              f"{margins[COST_RULE]['margin']:g} SGD steps per step")
    yes = [name for name, pair in both.items() if pair == ("reproduced", "reproduced")]
    listed = ", ".join(candidates)
    if yes:
        return f"Yes: {', '.join(yes)} stayed {within}, both decided at this scale."
    if all("not reproduced" in pair for pair in both.values()):
        return (f"No: each configuration that could answer it ({listed}) is decided to fail one of the two "
                f"conditions (accuracy {within}) at this scale.")
    undecided = [name for name, pair in both.items() if "not reproduced" not in pair]
    paired = {(c.claim, c.a): n for c, n in zip(study.comparisons, decided["n"])}
    # only accuracy's seeds can still land: a cost comparison pairs the same seeds (SAM and SGD share
    # theirs) or is decided by the registered interleaved measurement (decide_comparisons_interleaved)
    if all(paired[ACCURACY_RULE, name] == study.paired_seeds(name, "sam") for name in undecided):
        return (f"Not decided at this scale: every planned seed is in, and the comparisons of "
                f"{', '.join(undecided)} stay inconclusive; none is decided {within} (candidates: {listed}).")
    return (f"Not decided yet: {', '.join(undecided)} could still answer yes, but their comparisons are "
            f"inconclusive with the records so far (candidates: {listed}).")


def book_statuses(study: Study, decided: pd.DataFrame) -> dict[str, str]:
    """The status of each claim of :data:`BOOK_CLAIMS`, combined from the decided comparisons it needs."""
    status = {(c.claim, c.a, c.b): s for c, s in zip(study.comparisons, decided["status"])}
    out = {}
    for key, needed in BOOK_CLAIMS.items():
        missing = [n for n in needed if n not in status]
        if missing:
            raise ValueError(f"claim {key!r} needs the comparisons {missing}, which the study does not make")
        out[key] = combine([status[n] for n in needed])
    return out


def configuration_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration with records, cheapest first: seeds, test accuracy, CPU time per step
    and its cost in SGD steps, mean ‖ε‖ and final training loss, each as mean [95% t-interval]."""
    points = pareto_points(frame).set_index("label")
    rows = []
    for name in points.index:
        runs = frame[frame["configuration"] == name]
        cell = {column: tables.interval_text(*summarize(runs, "configuration", column).iloc[0][
            ["mean", "low", "high"]], digits=digits)
            for column, digits in (("cpu_seconds_per_step", 4), ("mean_eps_norm", 4), ("final_train_loss", 3))}
        if runs["optimizer"].eq("sgd").all():
            cell["mean_eps_norm"] = "– (no ε)"
        at = points.loc[name]
        rows.append({"configuration": name, "seeds": int(at["n"]),
                     "test accuracy (%)": tables.interval_text(at["mean"], at["low"], at["high"]),
                     "CPU seconds per step": cell["cpu_seconds_per_step"],
                     "cost (SGD steps)": tables.interval_text(at["cost"], at["cost_low"], at["cost_high"]),
                     "mean ‖ε‖": cell["mean_eps_norm"], "final training loss (nats)": cell["final_train_loss"],
                     "on the Pareto front": "yes" if at["on_front"] else ""})
    return pd.DataFrame(rows)


def registered_at(path: str | Path = STUDY) -> str:
    """The commit that added the pre-registration, as ``"<short hash> (<date>)"``; "unknown" outside git."""
    added = _git("log", "--diff-filter=A", "--format=%h (%cs)", "--", str(Path(path).resolve().relative_to(REPO)))
    return added.splitlines()[-1] if added else "unknown"
