"""A pre-registered study decided from its own files, for a reader who audits it without the book
(``python -m sparsam study STUDY.yaml``): every comparison with its mean, intervals, one-sided p-value, registered
status and family-wise status.

Everything is read from the study's folder: the study file (a registration), its records (``runs/`` beside it,
unless named), its cost registration (``cost_registration.yaml`` beside it, when it names this study and its record
exists) and the margins the file holds itself (:func:`sparsam.book.study.own_margins`, unless a margins file is
named). It works from any folder, on the book's studies or on a copy of one's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..experiment.results import load_all
from . import study as studies
from .study import cost as study_cost, model as study_model
from .layout import COST_REGISTRATION, book_root

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

    def lines(self) -> list[str]:
        """The audit as a reader's text: three lines saying what was read and how it is decided, then the
        table, one line per comparison (ratios as ×, differences in pp, intervals, p-values to 4 digits)."""
        table, m, alpha = self.table, len(self.table), 1 - self.level
        when = ("registered" if self.correction == "holm" else
                f"{studies.ADDED}: the registration named no correction")
        cost = (f"the registered interleaved measurement ({_shown(self.cost_registration)})"
                if self.cost_registration is not None else
                "not decided: no registered interleaved measurement names this study (the records' own timings are "
                "descriptive)")
        head = [f"{self.path}: {m} comparisons from {self.records} records in {self.store}", f"cost: {cost}",
                f"family-wise status: Holm's step-down at family-wise {alpha:.0%} over the {m} comparisons and the "
                f"premise rule ({when}); one-sided p: of the claim against its margin (near 1: the data point the "
                "other way)"]
        shown = table.assign(
            mean=[_number(v, u) for v, u in zip(table["mean"], table["unit"])],
            interval=[_interval(lo, hi, u) for lo, hi, u in zip(table["low"], table["high"], table["unit"])],
            simultaneous=[_interval(lo, hi, u) for lo, hi, u in zip(table["sim_low"], table["sim_high"],
                                                                    table["unit"])],
            p_value=[f"{p:.4f}" if p == p else "–" for p in table["p_value"]])
        columns = {"comparison": "comparison", "registration": "registration", "n": "n", "mean": "mean",
                   "interval": f"{1 - alpha:.0%} interval", "simultaneous": f"simultaneous ({1 - alpha / m:.4f})",
                   "p_value": "one-sided p", "status": "registered status", "family_status": "family-wise status"}
        left = {name: f"{{:<{shown[name].str.len().max()}}}".format for name in ("comparison", "registration")}
        body = shown[list(columns)].to_string(index=False, header=list(columns.values()), formatters=left,
                                              justify="left")
        return [*head, *body.splitlines()]


def _shown(path: Path) -> str:
    """A path relative to the book holding it, else as it is."""
    path = path.resolve()
    try:
        root = book_root(path.parent).resolve()
    except FileNotFoundError:
        return path.as_posix()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()


def _number(value: float, unit: str) -> str:
    if value != value:
        return "–"
    return f"×{value:.3f}" if unit == "ratio" else f"{value:+.2f}"


def _interval(low: float, high: float, unit: str) -> str:
    return "–" if low != low else f"[{_number(low, unit)}, {_number(high, unit)}]"


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
    return Audit(path, folder, len(records), studies.audit_frame(registered, decided),
                 cost_registration_file(path) if cost is not None else None, registered.correction,
                 float(registered.declared[registered.comparisons[0].claim]["level"]))
