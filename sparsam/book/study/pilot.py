"""The pilots of the studies, and what their declared rules decide from the pilot's records.

A candidates file (:class:`sparsam.book.study.model.Candidates`: ``results/gpu_study/gpu_study.yaml``,
``results/imagenet_study/imagenet_study.yaml``) declares its pilot and its selection rules before the pilot runs.
:func:`candidate_pilots` reads, per candidate, the pilot's SGD and SAM runs paired by seed;
:func:`choose_by_sam_gain` and :func:`choose_stem` are the two selection rules those files declare, and
:func:`seeds_needed` the seed count of their power rule. The fast-path rule of the GPU study may have turned
parts of the fast path off for the pilot (:data:`FAST_PATH_FIELDS`), so records are matched to a candidate
on every other field (:func:`run_key`). The CPU study's pilot (its registration's ``pilot``: SAM against SGD in
each pilot regime) is recomputed from its records by :func:`pilot_verdicts` and :func:`pilot_paired_sd`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ...experiment.config import TrainConfig
from ...experiment.results import load_all
from ..layout import PILOT_STORE, book_root
from ..stats import Verdict, compare, mean_interval, power, seeds_for_power
from .model import Candidates, Study, load_candidates

# the settings the declared fast-path rule may change for a pilot (results/gpu_study/gpu_study.yaml, fast_path)
FAST_PATH_FIELDS = ("amp", "capture", "channels_last", "cudnn_benchmark")


@dataclass(frozen=True)
class CandidatePilot:
    """One candidate's pilot: the seeds both SGD and SAM have, their final test accuracy (%) and final training
    loss per seed, their wall seconds, and SAM against SGD (superiority, paired by seed)."""

    name: str
    seeds: tuple[int, ...]
    sgd: tuple[float, ...]
    sam: tuple[float, ...]
    sgd_loss: tuple[float, ...]
    sam_loss: tuple[float, ...]
    sam_wall_seconds: tuple[float, ...]
    verdict: Verdict

    @property
    def paired_sd(self) -> float:
        """SD (pp) of the paired SAM − SGD differences; NaN below two seeds."""
        return float(np.std(np.subtract(self.sam, self.sgd), ddof=1)) if len(self.seeds) >= 2 else math.nan


def run_key(config: TrainConfig) -> tuple[tuple[str, Any], ...]:
    """What makes a pilot run the run it is, leaving out what the fast-path rule may turn off
    (:data:`FAST_PATH_FIELDS`): two configurations with the same key are the same declared run."""
    return tuple((k, v) for k, v in config.to_dict().items() if k not in FAST_PATH_FIELDS)


def candidate_pilots(declared: Candidates, summaries: Sequence[Mapping[str, Any]], *, level: float = 0.95,
                     min_n: int = 3) -> dict[str, CandidatePilot]:
    """Per candidate of the ``declared`` candidates file, its pilot read from run ``summaries`` (the records'
    ``summary`` parts): the SGD and SAM runs of the pilot's seeds whose configuration is the candidate's."""
    keyed = {run_key(TrainConfig.from_dict(s["config"])): s for s in summaries}
    out = {}
    for name in declared.candidates:
        candidate = TrainConfig(**declared.settings(name))
        runs: dict[str, dict[int, Mapping[str, Any]]] = {"sgd": {}, "sam": {}}
        for optimizer in runs:
            for seed in declared.pilot_seeds:
                found = keyed.get(run_key(candidate.replace(optimizer=optimizer, seed=seed)))
                if found is not None:
                    runs[optimizer][seed] = found
        seeds = tuple(sorted(set(runs["sgd"]) & set(runs["sam"])))
        value = lambda opt, field, scale=1.0: tuple(scale * float(runs[opt][k][field]) for k in seeds)  # noqa: E731
        sgd, sam = value("sgd", "final_test_acc", 100.0), value("sam", "final_test_acc", 100.0)
        verdict = (compare(sam, sgd, test="superiority", level=level, min_n=min_n) if seeds
                   else Verdict("inconclusive", math.nan, math.nan, math.nan, 0, "superiority", 0.0, level, "higher"))
        out[name] = CandidatePilot(name, seeds, sgd, sam, value("sgd", "final_train_loss"),
                                   value("sam", "final_train_loss"), value("sam", "wall_seconds_this_process"),
                                   verdict)
    return out


def load_candidate_pilots(spec_file: str | Path, store: str | Path) -> dict[str, CandidatePilot]:
    """:func:`candidate_pilots` of a candidates file and the records in ``store`` (validated on load)."""
    return candidate_pilots(load_candidates(spec_file), [r["summary"] for r in load_all(store)])


def choose_by_sam_gain(pilots: Mapping[str, CandidatePilot], order: Sequence[str] = ("A", "B")) -> tuple[str, str]:
    """The GPU study's rule: the first candidate in ``order`` where SAM beats SGD (the verdict is reproduced);
    else the first one, the papers' network. Returns the candidate and the reason in words."""
    for name in order:
        if pilots[name].verdict.status == "reproduced":
            return name, f"SAM beats SGD in candidate {name} ({pilots[name].verdict.status})"
    statuses = ", ".join(f"{n}: {pilots[n].verdict.status}" for n in order)
    return order[0], (f"SAM beats SGD in no candidate ({statuses}): "
                      f"{order[0]}, the papers' network; the study's own comparison decides the premise")


def choose_stem(pilots: Mapping[str, CandidatePilot], *, plain: str = "A", other: str = "B", gain: float = 2.0,
                sam_minutes: float = 2.5, level: float = 0.95) -> tuple[str, str]:
    """The ImageNet study's rule, from SGD and cost alone: ``other`` if its SGD accuracy is above ``plain``'s by
    at least ``gain`` pp on average over the seeds both have, the lower end of the paired interval above 0,
    and its slowest SAM run took at most ``sam_minutes``; else ``plain``."""
    a, b = pilots[plain], pilots[other]
    common = sorted(set(a.seeds) & set(b.seeds))
    if len(common) < 2 or not b.sam_wall_seconds:
        return plain, f"{other} cannot be judged: {len(common)} common SGD seed(s)"
    diff = [b.sgd[b.seeds.index(k)] - a.sgd[a.seeds.index(k)] for k in common]
    mean, low, _ = mean_interval(diff, level)
    slowest = max(b.sam_wall_seconds) / 60
    if mean >= gain and low > 0 and slowest <= sam_minutes:
        return other, (f"{other}'s SGD is {mean:+.2f} pp (lower end {low:+.2f}) above {plain}'s; its SAM run "
                       f"{slowest:.1f} min")
    return plain, (f"{other}'s SGD {mean:+.2f} pp (lower end {low:+.2f}) against {plain}'s, its SAM run "
                   f"{slowest:.1f} min: not {gain:g} pp above with the interval above 0 within {sam_minutes:g} min")


def seeds_needed(sd: float, *, margin: float = 0.5, target: float = 0.8, least: int = 5, most: int = 10,
                 ) -> tuple[int, float]:
    """The declared seed rule: ``max(least, seeds_for_power(margin, sd, target=target))`` capped at ``most``,
    and the power those seeds have at the margin (below ``target`` only where the cap binds)."""
    try:
        n = max(least, seeds_for_power(margin, sd, target=target))
    except ValueError:  # not even max_n seeds: the cap binds
        n = most
    n = min(n, most)
    return n, power(n, margin, sd)



def _pilot_pairs(study: Study, store: str | Path | None) -> dict[str, tuple[list[float], list[float]]]:
    """Per pilot regime: SAM's and SGD's final test accuracy (%) over the seeds both have, in seed order."""
    records = [r["summary"] for r in load_all(book_root() / PILOT_STORE if store is None else Path(store))]
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
        out[regime] = ([accuracy["sam"][k] for k in seeds], [accuracy["sgd"][k] for k in seeds])
    return out


def pilot_verdicts(study: Study, store: str | Path | None = None) -> dict[str, Verdict]:
    """SAM against SGD in each pilot regime, recomputed from the pilot's records in ``store`` (default: the
    book's ``results/study/pilot/``; superiority, paired by seed)."""
    return {regime: compare(sam, sgd, test="superiority", level=study.margins["level"], min_n=study.margins["min_n"])
            for regime, (sam, sgd) in _pilot_pairs(study, store).items()}


def pilot_paired_sd(study: Study, store: str | Path | None = None) -> tuple[int, float]:
    """The seeds and the standard deviation (pp) of the paired SAM − SGD differences of final test accuracy
    in the pilot regime that is the study's own (no changes to ``regime``): the spread a power calculation
    could have assumed before the study ran."""
    own = [regime for regime, changes in study.pilot["regimes"].items() if not changes]
    if len(own) != 1:
        raise ValueError(f"the pilot must hold exactly one regime without changes (the study's), got {own}")
    sam, sgd = _pilot_pairs(study, store)[own[0]]
    if len(sam) < 2:
        raise ValueError(f"the pilot's regime {own[0]} pairs {len(sam)} seeds: an SD needs two")
    return len(sam), float(np.std(np.subtract(sam, sgd), ddof=1))

