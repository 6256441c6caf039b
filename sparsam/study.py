"""The CPU study's pre-registration (``results/study/cpu_study.yaml``): its configurations and comparisons.

:func:`load_study` reads and checks the file: every configuration is a valid :class:`TrainConfig`
(the ``regime`` plus the configuration's own fields, once per seed of its seed list), every comparison
names two configurations and a claim whose pinned margin equals ``book/margins.yaml``'s.
:meth:`Study.configs` gives what ``python -m sparsam train-grid`` trains; :func:`pilot_verdicts`
recomputes the pilot's decisions from its records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import TrainConfig
from .results import RESULTS, load_all
from .verdicts import Verdict, compare, margins as declared_margins

STUDY = RESULTS / "study" / "cpu_study.yaml"
STORE = RESULTS / "study" / "runs"
PILOT_STORE = RESULTS / "study" / "pilot"

_MARGIN_FIELDS = ("test", "unit", "better", "margin")


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
