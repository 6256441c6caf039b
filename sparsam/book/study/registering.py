"""A study's pre-registration written from its pilot by the rules its file declared before the pilot ran.

A candidates file (``results/gpu_study/gpu_study.yaml``, ``results/imagenet_study/imagenet_study.yaml``)
declares, before any run: the common settings and the candidate regimes, the pilot, the planned
configurations (``configurations_planned``, each naming a list of ``seeds_planned``), the planned comparisons
(``comparisons_planned``) and, under ``selection.rules``, the rule that picks the regime (``sam-gain``:
:func:`sparsam.book.study.pilot.choose_by_sam_gain`; ``stem``: :func:`sparsam.book.study.pilot.choose_stem`) and the
parameters of the seed rule (:func:`sparsam.book.study.pilot.seeds_needed`). :func:`registration` applies those
rules to the pilot's records and returns what the registration adds: the regime (with the settings the
fast-path rule turned off), the seeds (``power``: as many as the seed rule gives, from 0), the configurations,
the comparisons, the margins of ``book/margins.yaml`` they use, ``correction: holm`` and the pilot's result.
:func:`write_registration` appends it to the file, once, and only if the result reads as a valid study
(:func:`sparsam.book.study.model.load_study`); nothing planned is changed on the way. A candidates file whose
``selection`` declares its rules in words, with no ``rules`` mapping (the label-noise study,
``results/noise_study/noise_study.yaml``), is registered by the fixed-margin rules of
:mod:`sparsam.book.study.fixed_margin` (:func:`write_fixed_margin_registration`).
"""

from __future__ import annotations

import datetime
import json
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ...experiment.results import load_all
from . import fixed_margin
from ..stats import Margins, margins as declared_margins
from .model import Candidates, load_candidates, load_study, pinned_rule
from .pilot import CandidatePilot, candidate_pilots, choose_by_sam_gain, choose_stem, seeds_needed

REGIME_RULES = ("sam-gain", "stem")
_TIMES_REGIME = re.compile(r"(\d+) x regime")  # "2 x regime": a multiple of the regime's value (e.g. epochs)


def _choose(declared: Candidates, pilots: Mapping[str, CandidatePilot]) -> tuple[str, str]:
    rules = declared.rules or {}
    rule = rules.get("regime")
    if rule == "sam-gain":
        return choose_by_sam_gain(pilots, order=tuple(declared.candidates))
    if rule == "stem":
        return choose_stem(pilots, **dict(rules.get("stem") or {}))
    raise ValueError(f"selection.rules.regime must be one of {', '.join(REGIME_RULES)}, got {rule!r}")


def _resolve(values: Mapping[str, Any], regime: Mapping[str, Any]) -> dict[str, Any]:
    """A planned configuration with each "<k> x regime" replaced by k times the regime's value of that field."""
    out = {}
    for field, value in values.items():
        match = _TIMES_REGIME.fullmatch(value) if isinstance(value, str) else None
        if match:
            if not isinstance(regime.get(field), int):
                raise ValueError(f"configurations_planned: {field}: {value!r} needs an integer {field} in the regime")
            value = int(match.group(1)) * regime[field]
        out[field] = value
    return out


def _pilot_result(name: str, reason: str, pilots: Mapping[str, CandidatePilot], n: int, power: float,
                  store: str) -> dict[str, Any]:
    def summary(p: CandidatePilot) -> dict[str, Any]:
        v = p.verdict
        return {"seeds": list(p.seeds), "sam_minus_sgd_pp": round(v.diff, 3),
                "interval_pp": [round(v.low, 3), round(v.high, 3)], "status": v.status,
                "paired_sd_pp": round(p.paired_sd, 3), "final_train_loss": {
                    "sgd": [round(x, 5) for x in p.sgd_loss], "sam": [round(x, 5) for x in p.sam_loss]}}
    return {"records": store, "candidates": {k: summary(p) for k, p in pilots.items()}, "chosen": name,
            "reason": reason, "core_seeds": n, "power_at_margin": round(power, 3),
            "written": datetime.date.today().isoformat()}


def registration(spec: Candidates, pilots: Mapping[str, CandidatePilot], *,
                 changes: Mapping[str, Any] | None = None, store: str = "",
                 declared: Margins | None = None) -> dict[str, Any]:
    """What the registration of the candidates file ``spec`` (:class:`sparsam.book.study.model.Candidates`) adds,
    from the candidates' ``pilots`` by its declared
    rules; ``changes``: the settings the fast-path rule turned off (its outcome's ``changes``); ``declared``: the
    claims whose margins it pins (default: the book's). It pins each claim's :data:`sparsam.book.study.MARGIN_FIELDS`
    and, where declared, its premise (when the study makes that claim too) and its contrast, so that the file
    decides its comparisons on its own (:func:`sparsam.book.study.own_margins`)."""
    for key in ("configurations_planned", "comparisons_planned", "seeds_planned", "selection"):
        if not getattr(spec, key):
            raise ValueError(f"the candidates file must declare {key} before the pilot "
                             "(see sparsam.book.study.registering)")
    declared = declared_margins() if declared is None else declared
    name, reason = _choose(spec, pilots)
    chosen = pilots[name]
    least_n = int(declared["accuracy_sam_vs_sgd"]["min_n"])  # the fewest paired seeds a comparison decides on
    if len(chosen.seeds) < least_n or not math.isfinite(chosen.paired_sd):
        raise ValueError(f"pilot: candidate {name} has {len(chosen.seeds)} seeds with both SGD and SAM; the seed "
                         f"rule needs at least {least_n}")
    seed_rule = dict((spec.rules or {}).get("seeds") or {})
    n, power = seeds_needed(chosen.paired_sd, **seed_rule)
    regime = {**spec.settings(name), **dict(changes or {})}
    seeds = {k: list(range(n)) if v == "power" else [int(s) for s in v] for k, v in spec.seeds_planned.items()}
    configurations = {k: _resolve(v, regime) for k, v in spec.configurations_planned.items()}
    comparisons = [dict(c) for c in spec.comparisons_planned]
    claims = list(dict.fromkeys(c["claim"] for c in comparisons))
    unknown = [c for c in claims if c not in declared]
    if unknown:
        raise ValueError(f"comparisons_planned: claims {unknown} are not declared in book/margins.yaml")
    first = declared[claims[0]]
    margins = {"level": first["level"], "min_n": first["min_n"],
               **{c: pinned_rule(declared[c], claims) for c in claims}}
    return {"regime": regime, "seeds": seeds, "configurations": configurations, "comparisons": comparisons,
            "margins": margins, "correction": "holm",
            "pilot_result": _pilot_result(name, reason, pilots, n, power, store)}


_HEADER = "\n# " + "-" * 99 + "\n# REGISTRATION, written by `python -m sparsam register`"


def registration_text(added: Mapping[str, Any]) -> str:
    """The registration as YAML to append below the candidates file, opened by a comment that says what it is."""
    header = (_HEADER + f" from the pilot's records ({added['pilot_result']['records']}) by the\n# rules declared "
              "above, and committed before any SSAM run of the study. Nothing above is changed.\n")
    return header + yaml.safe_dump(dict(added), sort_keys=False, width=110, default_flow_style=None)


def declaration_text(text: str) -> str:
    """A candidates file's text as it was declared before the pilot: all of it above the registration that
    :func:`registration_text` appended (the whole text where there is none)."""
    head, _, _ = text.partition(_HEADER)
    return head.rstrip("\n") + "\n"


def write_registration(path: str | Path, summaries: Sequence[Mapping[str, Any]], *, store: str,
                       changes: Mapping[str, Any] | None = None, dry_run: bool = False) -> str:
    """Append to the candidates file ``path`` its registration from the pilot's run ``summaries`` (the records'
    ``summary`` parts, from the folder ``store``), the regime taking the fast-path rule's ``changes``; the text
    appended. An error, and nothing written, if the file is already a registration or the result does not read
    as a valid study (:func:`sparsam.book.study.load_study`); ``dry_run``: the text only."""
    spec = _unregistered(path)
    return _append(spec, registration(spec, candidate_pilots(spec, summaries), changes=changes, store=store),
                   dry_run, None)


def write_fixed_margin_registration(path: str | Path, records: Sequence[Mapping[str, Any]], *, store: str,
                                    margins_path: str | Path | None = None, dry_run: bool = False) -> str:
    """As :func:`write_registration`, by the fixed-margin rules of :mod:`sparsam.book.study.fixed_margin` (a candidates
    file whose ``selection`` declares its rules in words: the label-noise study), from the pilot's whole
    ``records``."""
    spec = _unregistered(path)
    return _append(spec, fixed_margin.registration(spec, records, declared_margins(margins_path), store=store),
                   dry_run, margins_path)


def _unregistered(path: str | Path) -> Candidates:
    spec = load_candidates(path)
    if spec.registered:
        raise ValueError(f"{path} already holds {list(spec.registered)}: it is registered, or declares what a "
                         "registration adds")
    return spec


def _append(spec: Candidates, added: Mapping[str, Any], dry_run: bool, margins_path: str | Path | None) -> str:
    """Append ``added`` to the candidates file ``spec`` if the result reads as a valid study (its claims those of
    ``margins_path``, default the book's); the text appended."""
    assert spec.path is not None
    path = spec.path
    appended = registration_text(added)
    text = spec.text.rstrip("\n") + "\n" + appended
    trial = path.with_name(f".{path.name}.trial")
    trial.write_text(text)
    try:
        load_study(trial, margins=declared_margins(margins_path))  # one that does not read as a study is not written
    finally:
        trial.unlink()
    if not dry_run:
        path.write_text(text)
    return appended


def fast_path_changes(path: str | Path | None) -> dict[str, Any]:
    """The settings the fast-path rule's outcome (``fast_path.json``) turned off; none without a file."""
    return {} if path is None else dict(json.loads(Path(path).read_text()).get("changes") or {})


def register_command(path: str | Path, store: str | Path, fast_path: str | Path | None = None,
                     dry_run: bool = False) -> str:
    """Register the candidates file ``path`` from the records in ``store`` (validated on load): by the rules its
    ``selection.rules`` names (:func:`write_registration`, with ``fast_path``'s changes), or, where its selection
    declares its rules in words only, by the fixed-margin rules (:func:`write_fixed_margin_registration`)."""
    if not Path(store).is_dir():
        raise ValueError(f"--store {store} is not a folder of pilot records")
    records = load_all(store)
    if load_candidates(path).rules is None:
        if fast_path is not None:
            raise ValueError("--fast-path: a fixed-margin study states its fast path in its file; give none")
        return write_fixed_margin_registration(path, records, store=Path(store).as_posix(), dry_run=dry_run)
    return write_registration(path, [r["summary"] for r in records], store=Path(store).as_posix(),
                              changes=fast_path_changes(fast_path), dry_run=dry_run)

