"""The claims table and the chapters' verdicts computed from the committed records, as plain JSON: the guard of
the book layer's redesign (issue 29). ``tests/book/test_claims_snapshot.py`` recomputes :func:`compute` and
compares it with ``tests/book/claims_snapshot.json``, written by this script before the redesign began; a change
of the code that changes a status, a number or a staleness flag the book shows fails that test.

What it holds, read only (nothing is trained or measured):

- ``scales``: every scale of the book (the GPU, CPU, label-noise and ImageNet studies) as its chapter decides it:
  where it stands, and for one with records every comparison (registered and family-wise status, the numbers of
  ``python -m sparsam study``) and its claims' statuses; a scale whose runs are in progress (some but not all of
  its registered runs recorded, :attr:`sparsam.book.scale_reports.ScaleState.in_progress`) holds only that it is
  in progress and how many runs it plans, and is left out of ``claims_table``: a record landing changes nothing
  here, and the study's completion, which puts its verdicts in the book, changes the snapshot;
- ``chapters``: the quick profile's verdict rows of chapters 3, 5 and 6 from the committed records
  (``results/runs``, ``results/flatness``); chapter 4 measures its own timings and is left out;
- ``cpu_study``: chapter 8's readings (the claims' statuses in both readings, the answer to its question, the
  flatness family added after the runs);
- ``claims_table``: the claims table of chapter 7 from the above (its quick-profile column as chapter 7 reads
  it when chapter 4 has not run).

    python scripts/snapshot_claims.py          # rewrites tests/book/claims_snapshot.json
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "book" / "claims_snapshot.json"
ROW_FIELDS = ("claim", "rule", "status", "family_status", "n", "diff", "low", "high", "p_value", "sim_low",
              "sim_high", "boot_low", "boot_high", "commits", "stale")


def plain(value: Any) -> Any:
    """``value`` as JSON: floats rounded to 10 significant digits, NaN as None, numpy scalars as Python's."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.10g}")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: plain(row[k]) for k in ROW_FIELDS if k in frame.columns} for _, row in frame.iterrows()]


def chapter_3(root: Path) -> pd.DataFrame:
    """Notebook 3's verdict rows in the quick profile, as its verdict cell computes them (the rows the registry
    declares for it)."""
    from sparsam.book import chapter_runs, claims, profiles
    from sparsam.book.records import records_frame
    from sparsam.experiment.grid import run_missing

    p = profiles.parameters("03_cifar_accuracy", "quick", {})
    runs = chapter_runs.cifar_runs(p)
    configs, tpami = runs.configs, list(runs.tpami)
    records = run_missing(configs, store=root / p.store, runs_dir=root / "runs", train_missing=False)
    records += run_missing(tpami, store=root / p.store, runs_dir=root / "runs", train_missing=False)
    frame = records_frame(records)
    return claims.claims_frame(claims.chapter_rows("03_cifar_accuracy", frame, records, p))


def chapter_5(root: Path) -> pd.DataFrame:
    """Notebook 5's verdict rows in the quick profile, as its verdict cell computes them (the rows the registry
    declares for it)."""
    from sparsam.book import chapter_runs, claims, profiles, tables
    from sparsam.book.records import records_frame
    from sparsam.experiment.grid import run_missing

    p = profiles.parameters("05_imagenet", "quick", {})
    configs = chapter_runs.imagenet_runs(p)
    records = run_missing(configs, store=root / p.store, runs_dir=root / "runs", train_missing=False)
    frame = tables.with_methods(records_frame(records))
    return claims.claims_frame(claims.chapter_rows("05_imagenet", frame, records, p))


def chapter_6(root: Path) -> pd.DataFrame:
    """Notebook 6's verdict rows in the quick profile (curvature from its committed flatness records), as its
    verdict cell computes them."""
    from sparsam.book import claims, curvature, flatness, profiles
    from sparsam.book.records import records_frame
    from sparsam.experiment.grid import run_missing

    p = profiles.parameters("06_landscape", "quick", {})
    names = flatness.NETWORK_NAMES
    configs = curvature.networks(p)
    kinds = list(dict.fromkeys(key for key, _ in configs))
    stored = {r["summary"]["run_id"]: r for r in run_missing(configs.values(), store=root / p.store,
                                                             runs_dir=root / p.runs_dir, train_missing=False)}
    records = {pair: stored[c.run_id()] for pair, c in configs.items() if c.run_id() in stored}
    record_frame = records_frame(records.values())
    curv = curvature.flatness_frame({(names[key], seed): c for (key, seed), c in configs.items()},
                                    curvature.Settings.of(p), root / p.flatness_store)
    evidence = "notebook 6, Hessian figure and table, claims table" + (
        "" if p.flatness_store is None else f", flatness records in {p.flatness_store}/")
    flat_rows = []
    for method in [names[key] for key in kinds if key.startswith("ssam")]:
        for name, verdict in flatness.flatness_verdicts(curv, method=method).items():
            reference = name.split(" vs ")[1].split(":")[0]
            used = record_frame[record_frame["optimizer"].isin(sorted({c.optimizer for (k, _), c in configs.items()
                                                                        if names[k] in (method, reference)}))
                                & record_frame["seed"].isin(curv["seed"])]
            flat_rows.append(claims.row(name, flatness.rules()[reference], verdict, used=used, evidence=evidence))
    if {"SAM", "SGD"} <= set(curv["method"]):
        used = record_frame[record_frame["optimizer"].isin(["sam", "sgd"]) & record_frame["seed"].isin(curv["seed"])]
        flat_rows += [claims.row(name, flatness.rules(premise=True)["SGD"], verdict, used=used, evidence=evidence)
                      for name, verdict in flatness.premise_verdicts(curv).items()]
    return claims.claims_frame(flat_rows)


def cpu_study(root: Path) -> dict[str, Any]:
    """Chapter 8's readings of the CPU study, as its cells compute them (the bootstrap left out)."""
    from sparsam.book import claims, curvature, flatness, layout, profiles, study
    from sparsam.book.study import cost as study_cost, model as study_model
    from sparsam.book import stats
    from sparsam.experiment.results import load_all

    p = profiles.parameters("08_cpu_study", "quick", {})
    registered = study.load_study(root / p.study_file)
    records = load_all(root / p.store)
    frame = study.study_frame(registered, records)
    registration = study_model.load_cost_registration(root / layout.COST_REGISTRATION, study=registered)
    decided = study.decide_comparisons_interleaved(
        registered, frame, records, study_cost.cost_rows(registration, study_cost.read(registration.record)),
        resamples=0)
    landscape = profiles.parameters("06_landscape", "cpu-study", {})
    measured = curvature.flatness_frame(
        {(flatness.NETWORK_NAMES[kind], seed): config for (kind, seed), config in curvature.networks(landscape).items()},
        curvature.Settings.of(landscape), root / landscape.flatness_store)
    flat_claim = [claims.row(name, claim, verdict)
                  for method in ("SSAM-F", "SSAM-D") for reference, claim in flatness.rules().items()
                  for name, verdict in flatness.flatness_verdicts(measured, method=method,
                                                                  claims={reference: claim}).items()]
    flat_premise = [claims.row(name, flatness.rules(premise=True)["SGD"], verdict)
                    for name, verdict in flatness.premise_verdicts(measured).items()]
    flat_table = claims.family_wise(claims.claims_frame(flat_claim + flat_premise))
    return {"records": len(records), "runs": len(frame),
            "statuses": study.book_statuses(registered, decided, reading="family-wise"),
            "statuses_registered": study.book_statuses(registered, decided, reading="registered"),
            "answer": study.answer(registered, decided, reading="family-wise"),
            "answer_registered": study.answer(registered, decided, reading="registered"),
            "flatness": rows(flat_table),
            "flatness_status": stats.combine(list(flat_table["family_status"][:len(flat_claim)])),
            "flatness_status_registered": stats.combine(list(flat_table["status"][:len(flat_claim)]))}


def compute(root: Path = ROOT) -> dict[str, Any]:
    """Everything the snapshot holds, computed from the committed records of the book at ``root``."""
    from sparsam.book import claims, claims_table, scale_reports, scales

    states = scale_reports.survey(root, scales.BOOK_SCALES)
    by_scale, out_scales = [], {}
    for state in states:
        if state.in_progress:  # its count changes with every record: only that it is in progress
            out_scales[state.scale.name] = {"in_progress": True, "registered": True, "planned": state.planned}
            continue
        entry: dict[str, Any] = {"cell": state.cell(), "registered": state.registered, "planned": state.planned,
                                 "records": state.records}
        if state.has_records:
            registered, records, frame = scale_reports.load(state.scale, root)
            decided = scale_reports.decide(state.scale, registered, frame, records, resamples=0, root=root)
            statuses = scale_reports.scale_statuses(state, registered, decided)
            entry["comparisons"] = rows(decided)
        else:
            statuses = scale_reports.scale_statuses(state)
        entry["statuses"] = statuses
        by_scale.append(statuses)
        out_scales[state.scale.name] = entry
    chapters = {"03_cifar_accuracy": chapter_3(root), "05_imagenet": chapter_5(root), "06_landscape": chapter_6(root)}
    with tempfile.TemporaryDirectory() as folder:  # saved and read back as chapters 3 to 6 and 7 do
        for name, frame in chapters.items():
            claims.save_verdicts(frame, name, "quick", folder)
        saved = claims.load_verdicts(folder, profile="quick")
    shown = [state.scale for state in states if not state.in_progress]
    table = claims_table.claims_table(by_scale, claims_table.profile_statuses(saved), profile="quick", scales=shown)
    return {"scales": out_scales,
            "chapters": {name: rows(frame) for name, frame in chapters.items()},
            "chapters_family": rows(saved),
            "cpu_study": cpu_study(root),
            "claims_table": [{k: plain(v) for k, v in row.items()} for row in table.to_dict(orient="records")]}


def main() -> None:
    SNAPSHOT.write_text(json.dumps(compute(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {SNAPSHOT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
