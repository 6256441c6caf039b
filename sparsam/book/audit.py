"""A pre-registered study decided from its own files, for a reader who audits it without the book
(``python -m sparsam study STUDY.yaml``): every comparison with its mean, intervals, one-sided p-value, status and
family-wise status, the provenance of its rule (registered, or added after the runs, with the registered rule's
reading beside a rule that replaced it) and the scale of the records that decided it.

Everything is read from the study's folder: the study file (a registration), its records (``runs/`` beside it,
unless named), its cost registration (``cost_registration.yaml`` beside it, when it names this study and its record
exists) and the margins the file holds itself (:func:`sparsam.book.study.own_margins`, unless a margins file is
named). It works from any folder, on the book's studies or on a copy of one's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..experiment.results import load_all
from . import claims, study as studies
from .intervals import bounds_text, number_text, precision
from .study import cost as study_cost, model as study_model
from .layout import COST_REGISTRATION, book_root
from .stats import FAMILY_WISE, PER_COMPARISON, reading_header

STORE = "runs"  # a study's records, beside its file (results/study/runs, results/gpu_study/runs)


@dataclass(frozen=True)
class Audit:
    """A study decided from its files (:func:`audit`): the audit table (:func:`sparsam.book.study.audit_frame`),
    how many records it read and where, the cost registration that decided its cost (None: not decided) and
    the study's reading of its family."""

    path: Path
    store: Path
    records: int
    table: pd.DataFrame
    cost_registration: Path | None
    correction: str
    level: float
    added: tuple[tuple[str, int], ...] = ()  # each rule added after the runs (its provenance's text), and its rows
    runs: tuple[str, str] | None = None  # the days the first and the last of the records finished

    def lines(self) -> list[str]:
        """The audit as a reader's text: lines saying what was read and how it is decided (each rule added after
        the runs with its date and reason, the scale of the records behind each comparison), then the table, one
        line per comparison (:func:`audit_table`)."""
        table, m, alpha = self.table, len(self.table), 1 - self.level
        when = ("registered" if self.correction == "holm" else
                f"{studies.ADDED}: the registration named no correction")
        cost = (f"the interleaved measurement of {_shown(self.cost_registration)}"
                if self.cost_registration is not None else
                "not decided: no registered interleaved measurement names this study (the records' own timings are "
                "descriptive)")
        runs = ("the records give no dates" if not self.runs else f"the runs finished on {self.runs[0]}"
                if self.runs[0] == self.runs[1] else f"the runs finished from {self.runs[0]} to {self.runs[1]}")
        head = [f"{self.path}: {m} comparisons from {self.records} records in {self.store}", f"cost: {cost}",
                f"family-wise status: Holm's step-down at family-wise {alpha:.0%} over the {m} comparisons and the "
                f"premise rule ({when}); one-sided p: of the claim against its margin (near 1: the data point the "
                "other way)",
                f"rules added after the runs ({runs}; \"rule\" gives each comparison's, with the registered rule's "
                "reading beside one that replaced it):",
                *(f"  {n} comparison{'' if n == 1 else 's'}: {text}" for text, n in self.added),
                "scale of the records that decided each comparison:",
                *(f"  {n} comparison{'' if n == 1 else 's'}: {scale}"
                  for scale, n in table["scale"].value_counts(sort=False).items())]
        shown = audit_table(table, self.level)
        left = {name: f"{{:<{shown[name].str.len().max()}}}".format for name in ("comparison", "registration", "rule")}
        body = shown.to_string(index=False, formatters=left, justify="left")
        return [*head, *body.splitlines()]


def _shown(path: Path) -> str:
    """A path relative to the book holding it, else as it is."""
    path = path.resolve()
    try:
        root = book_root(path.parent).resolve()
    except FileNotFoundError:
        return path.as_posix()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()


def audit_table(table: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """An audit frame (:func:`sparsam.book.study.audit_frame`) as a reader's table: ratios as ×, differences signed
    in pp, each interval to its own precision and the mean to its t-interval's
    (:func:`sparsam.book.intervals.precision`; without one, 2 decimals and ratios 3), p-values to 4 digits, the
    per-comparison and family-wise statuses by the rules in force and each comparison's ``rule``: registered, or
    added after the runs with its date and, where it replaced the registered rule, that rule's reading."""
    m, alpha = len(table), 1 - level

    def options(unit: str) -> dict[str, Any]:
        return {"digits": 3, "prefix": "×"} if unit == "ratio" else {"digits": 2, "sign": True}

    def mean(value: float, low: float, high: float, unit: str) -> str:
        if value != value:
            return "–"
        given = options(unit)
        return number_text(value, precision(low, high, given.pop("digits")), **given)

    rows = zip(table["mean"], table["low"], table["high"], table["sim_low"], table["sim_high"], table["unit"])
    shown = [(mean(v, lo, hi, u), bounds_text(lo, hi, **options(u)), bounds_text(slo, shi, **options(u)))
             for v, lo, hi, slo, shi, u in rows]
    return pd.DataFrame({
        "comparison": table["comparison"], "registration": table["registration"], "n": table["n"],
        "mean": [s[0] for s in shown], f"{1 - alpha:.0%} interval": [s[1] for s in shown],
        f"simultaneous ({1 - alpha / max(m, 1):.4f})": [s[2] for s in shown],
        "one-sided p": [f"{p:.4f}" if p == p else "–" for p in table["p_value"]],
        reading_header("status", PER_COMPARISON): table["status"],
        reading_header("status", FAMILY_WISE): table["family_status"], "rule": table["rule"]})


def cost_registration_file(path: Path) -> Path:
    """Where the registration of the interleaved cost measurement of the study at ``path`` lives: beside it."""
    return Path(path).parent / COST_REGISTRATION.name


def registered_cost(path: Path, registered: studies.Study) -> pd.DataFrame | None:
    """The claims rows of the registered interleaved cost measurement of the study at ``path``
    (:func:`sparsam.book.study.cost.cost_rows`): the :func:`cost_registration_file` beside it when it names this
    study and its record exists; else None, and the cost comparisons are inconclusive
    (:func:`sparsam.book.study.cost.unmeasured_rows`)."""
    file = cost_registration_file(path)
    if not file.is_file():
        return None
    registration = study_model.load_cost_registration(file, study=registered)
    if registration.study_path.resolve() != Path(path).resolve() or not registration.record.is_file():
        return None
    return study_cost.cost_rows(registration, study_cost.read(registration.record))


def audit(study_file: str | Path, store: str | Path | None = None, margins: str | Path | None = None) -> Audit:
    """Every comparison of the study at ``study_file`` decided from its records in ``store`` (default: ``runs/``
    beside the file) by ``margins`` (default: the margins the file holds, :func:`sparsam.book.study.own_margins`),
    cost from its registered interleaved measurement where it has one, read as one family; nothing is
    bootstrapped (the audit's numbers are the t-intervals')."""
    path = Path(study_file)
    if not path.is_file():
        raise ValueError(f"study file {path} not found (a pre-registration such as results/study/cpu_study.yaml)")
    if margins is not None and not Path(margins).is_file():
        raise ValueError(f"margins: no file {margins} (a margins file such as book/margins.yaml)")
    registered = studies.load_study(path, margins=margins)
    folder = path.parent / STORE if store is None else Path(store)
    if not folder.is_dir():
        raise ValueError(f"--store {folder} is not a folder of records")
    records = load_all(folder)
    frame = studies.study_frame(registered, records)
    cost = registered_cost(path, registered)
    decided = studies.decide_comparisons(registered, frame, records, resamples=0,
                                         cost=cost if cost is not None else study_cost.unmeasured_rows(registered))
    provenances = [claims.provenance_of(row) for _, row in decided.iterrows()]
    added = {p.text(): sum(q == p for q in provenances) for p in provenances if not p.registered}
    return Audit(path, folder, len(records), studies.audit_frame(registered, decided),
                 cost_registration_file(path) if cost is not None else None, registered.correction,
                 float(registered.declared[registered.comparisons[0].claim]["level"]), tuple(added.items()),
                 studies.runs_dates(frame))
