"""A study's second, registered family: the curvature of some of its networks (the label-noise study's core four).

:func:`sparsam.book.study.model.load_flatness_registration` reads the registration; here it is measured and decided:

- :func:`measure`: every registered network whose flatness record is missing, measured from its finished run's
  checkpoint with the registered settings (:func:`sparsam.book.curvature.measure_missing`; ``python -m sparsam
  flatness --registration FILE``);
- :func:`flatness_rows`: the measured rows (:func:`sparsam.book.curvature.flatness_frame`), one per network;
- :func:`decide`: each registered comparison for each registered measure, paired by seed on the scale-free measure
  (:func:`sparsam.book.flatness.flatness_verdicts`), read as one family with the registered correction and each
  "as flat as SAM" behind its premise of the same measure (:func:`sparsam.book.stats.family`);
- :func:`identities`: whether each measured network is its run's, bit for bit
  (:func:`sparsam.book.curvature.same_network`);
- :func:`claim_statuses`: the claims of the claims table it decides, their statuses combined;
- :func:`answer`: the family-wise reading in one sentence;
- :func:`records`: its flatness records (for a figure's source line, :func:`sparsam.book.captions.flatness_source`).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import torch

from .. import curvature, flatness
from ..layout import book_root
from ..intervals import interval_text
from ..stats import Verdict, combine, family, verdicts_frame
from .model import Comparison, FlatnessRegistration


def settings(registration: FlatnessRegistration) -> curvature.Settings:
    """The registered measurement as :class:`sparsam.book.curvature.Settings`."""
    return curvature.Settings(**registration.measurement)


def store(registration: FlatnessRegistration, folder: str | Path | None = None) -> Path:
    """Where its flatness records are: ``folder`` if given, else the registered ``store`` under the book holding the
    registration."""
    return Path(folder) if folder is not None else book_root(registration.path.parent) / registration.store


def measure(registration: FlatnessRegistration, runs_dir: str | Path, *, records: str | Path | None = None,
            shard: tuple[int, int] = (0, 1)) -> dict[str, str]:
    """Measure every registered network of ``shard`` ``(k, n)`` (the networks k, k + n, ... in the registration's
    order) whose record in ``records`` (default: :func:`store`) is missing or made with other settings, from its
    finished run in ``runs_dir``; never retrains. ``{run id: what was done}``, one line each on standard output."""
    k, n = shard
    if not 0 <= k < n:
        raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard!r}")
    folder = store(registration, records)
    folder.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # as the study's runs: one thread
    configs = list(registration.configs().values())[k::n]
    return curvature.measure_missing(configs, Path(runs_dir), settings(registration), folder)


def flatness_rows(registration: FlatnessRegistration, records: str | Path | None = None) -> pd.DataFrame:
    """One row per registered network measured with the registered settings (columns
    :data:`sparsam.book.curvature.ROW`), ``method`` its registered label."""
    return curvature.flatness_frame(registration.configs(), settings(registration), store(registration, records))


def _label(comparison: Comparison, measure: str) -> str:
    return f"{comparison.a} vs {comparison.b}: {flatness.MEASURE_NAMES[measure]} ({comparison.claim})"


def decide(registration: FlatnessRegistration, rows: pd.DataFrame) -> dict[str, Verdict]:
    """``{"<a> vs <b>: <measure> (<claim>)": verdict}`` for every registered comparison and measure, in that order:
    the ratio ``a / b`` paired by seed on the measure in normalised weights by the claim's rule (inconclusive below
    the rule's three pairs, or where a network lacks the scale-free measure,
    :data:`sparsam.book.flatness.NOT_MEASURED`),
    read as one family with the registered correction: with ``holm``, Holm's step-down, each comparison whose claim
    has a premise standing behind the premise's comparison of the same measure (:func:`sparsam.book.stats.family`);
    with ``none``, each family status is the comparison's own."""
    verdicts: dict[str, Verdict] = {}
    for comparison in registration.comparisons:
        for measure in registration.measures:
            (verdict,) = flatness.flatness_verdicts(rows, method=comparison.a, measures=[measure],
                                                    claims={comparison.b: comparison.claim}).values()
            verdicts[_label(comparison, measure)] = verdict
    if registration.correction == "none":
        return {name: dataclasses.replace(v, family_status=v.status, family_size=1) for name, v in verdicts.items()}
    premises = {_label(c, m): _label(p, m) for c, p in registration.premises().items() for m in registration.measures}
    return family(verdicts, premises)


def verdict_table(registration: FlatnessRegistration, decided: Mapping[str, Verdict]) -> pd.DataFrame:
    """The decided family as a table, a row per comparison and measure: the ratio with its 95% interval over the
    paired seeds, the registered rule's status, the family-wise one and the family's simultaneous interval."""
    frame = verdicts_frame(decided)
    ratio = lambda column: frame[column].map(lambda x: math.exp(x) if math.isfinite(x) else math.nan)
    return pd.DataFrame({"comparison": frame["claim"], "seeds": frame["n"],
                         "ratio a / b": frame["text"].str.split(", n = ").str[0],
                         "simultaneous interval": [interval_text(math.exp(d), lo, hi, 3, prefix="×")
                                                   if math.isfinite(lo) else "" for d, lo, hi in
                                                   zip(frame["diff"], ratio("sim_low"), ratio("sim_high"))],
                         "status (per comparison, registered rule)": frame["status"],
                         f"status ({'family-wise, Holm' if registration.correction == 'holm' else 'no correction'})":
                             frame["family_status"]})


def claim_statuses(registration: FlatnessRegistration, decided: Mapping[str, Verdict],
                   claims: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Per claim of ``claims`` (claim key -> the rules its rows are decided by, e.g. the claims table's "flat":
    ``flatness_ssam_vs_sam``, ``flatness_ssam_vs_sgd``) that the family decides a comparison of, the family-wise
    statuses of those comparisons in every measure combined (:func:`sparsam.book.stats.combine`); claims it makes
    no comparison of are left out. A premise's comparisons count only where its claim lists their rule."""
    out = {}
    for key, rules in claims.items():
        made = [decided[_label(c, m)].family_status for c in registration.comparisons if c.claim in rules
                for m in registration.measures]
        if made:
            out[key] = combine(made)
    return out


def identities(registration: FlatnessRegistration, run_records: Sequence[Mapping[str, object]],
               records: str | Path | None = None) -> dict[str, curvature.Identity]:
    """``{run id: "identical" | "different" | "not recorded"}`` for each measured network against its run record
    among ``run_records`` (:func:`sparsam.book.curvature.same_network`); a measured network without its run record
    raises ``ValueError`` naming it."""
    folder = store(registration, records)
    by_id = {r["summary"]["run_id"]: r for r in run_records}  # type: ignore[index]
    out = {}
    for config in registration.configs().values():
        record = curvature.load_flatness(config, settings(registration), folder)
        if record is None:
            continue
        if config.run_id() not in by_id:
            raise ValueError(f"run_records: no run record of {config.run_id()}, whose network was measured")
        out[config.run_id()] = curvature.same_network(record, by_id[config.run_id()])
    return out


def answer(registration: FlatnessRegistration, decided: Mapping[str, Verdict]) -> str:
    """The family-wise reading in words, comparison by comparison (its status in each measure), then the count of
    each status and the seeds it rests on, e.g. ``"SAM vs SGD (flatness_sam_vs_sgd): reproduced, in both measures;
    ... (10 comparisons at 4 paired seeds, Holm: 6 reproduced, 1 inconclusive, 3 not reproduced)."``"""
    if not decided:
        return "nothing registered"
    parts = []
    for comparison in registration.comparisons:
        statuses = {m: decided[_label(comparison, m)].family_status for m in registration.measures}
        if len(set(statuses.values())) == 1:
            only = flatness.MEASURE_NAMES[registration.measures[0]]
            where = "in both measures" if len(statuses) == 2 else f"in the {only}"
            reading = f"{next(iter(statuses.values()))}, {where}"
        else:
            reading = ", ".join(f"{status} in the {flatness.MEASURE_NAMES[m]}" for m, status in statuses.items())
        parts.append(f"{comparison.a} vs {comparison.b} ({comparison.claim}): {reading}")
    counts: dict[str, int] = {}
    for verdict in decided.values():
        counts[verdict.family_status] = counts.get(verdict.family_status, 0) + 1
    seeds = max(v.n for v in decided.values())
    correction = "Holm" if registration.correction == "holm" else "no correction"
    return ("; ".join(parts) + f" ({len(decided)} comparisons at {seeds} paired seeds, {correction}: "
            + ", ".join(f"{n} {status}" for status, n in counts.items()) + ").")


def records(registration: FlatnessRegistration, folder: str | Path | None = None) -> list[dict[str, Any]]:
    """The flatness records of its networks made with the registered settings, in the registration's order."""
    found = [curvature.load_flatness(c, settings(registration), store(registration, folder))
             for c in registration.configs().values()]
    return [r for r in found if r is not None]
