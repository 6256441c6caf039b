"""Rows of the claims table: a declared claim decided from paired runs, with the provenance of its records.

A row holds the verdict of :func:`sparsam.book.stats.decide` (status, paired mean difference and its
t-interval), the declared margin, the paired bootstrap interval over seeds and test examples where
every run kept its per-example correctness, and the commits of the records with a stale flag
(:func:`sparsam.book.records.is_stale`). :func:`claims_frame` collects rows into a pandas frame.
:func:`save_verdicts` keeps a chapter's frame under ``results/claims/`` (a build output) and
:func:`load_verdicts` gathers every chapter's, for the summary figure of notebook 7: the claims table,
read as one pre-registered family (:func:`family_wise`, Holm's step-down and the premise rule of
:func:`sparsam.book.stats.family`) beside each row's registered status.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import profiles, registry
from .layout import CLAIMS_DIR, book_root
from .._checks import check_choice
from ..experiment.results import unpack_bits
from ..experiment.store import atomic_write_json
from .records import paired
from .intervals import bounds_text, number_text, precision
from .stats import (FAMILY_WISE, PER_COMPARISON, READING_COLUMNS, Margins, Verdict, combine, decide, family, margins,
                    paired_bootstrap, reading_header, verdicts_frame)

EXTRA_COLUMNS = ("rule", "boot_low", "boot_high", "commits", "stale", "evidence")
_SAVED_KEYS = ("chapter", "profile", "columns", "dtypes", "rows")

REGISTERED, ADDED = "registered", "added after the runs"  # where the rule behind a status comes from
# What a study's decided rows add (sparsam.book.study.decide_comparisons, with_provenance): the provenance of each
# row's rule (its kind, the day it was committed, why), the reading of the earlier rule where a rule added after
# the runs replaced it (its status and verdict text; "" where none was replaced), what that earlier rule was (the
# registration's, or a rule declared but never registered) and the scale of the records that decided the row.
PROVENANCE_COLUMNS = ("provenance", "provenance_date", "provenance_reason", "replaces", "registered_status",
                      "registered_text", "earlier_rule", "scale")
REGISTERED_RULE = "registered rule"  # what a replaced rule is, unless it was declared and never registered


@dataclass(frozen=True)
class Provenance:
    """Where the rule behind a status comes from: the registration (:data:`REGISTERED`), or :data:`ADDED` (added
    after the runs) on ``date`` (YYYY-MM-DD) for ``reason``; ``replaces`` names, in words, the earlier rule it
    replaced ("" where it replaced none: a comparison the registration did not make), and ``earlier`` what that
    rule was: the :data:`REGISTERED_RULE`, or a rule declared before the runs that no registration made (the
    flatness rules on the raw measure, declared in ``book/margins.yaml`` only)."""

    kind: str = REGISTERED
    date: str = ""
    reason: str = ""
    replaces: str = ""
    earlier: str = REGISTERED_RULE

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, (REGISTERED, ADDED))

    @property
    def registered(self) -> bool:
        return self.kind == REGISTERED

    def label(self) -> str:
        """A few words: "registered", or "added after the runs (2026-12-03)"."""
        return REGISTERED if self.registered else f"{ADDED} ({self.date or 'unknown'})"

    def text(self) -> str:
        """The label with the reason and, where it replaced one, the registered rule."""
        if self.registered:
            return REGISTERED
        return (self.label() + (f": {self.reason}" if self.reason else "")
                + (f" (it replaces the {self.earlier}: {self.replaces})" if self.replaces else ""))


def provenance_of(row: Mapping[str, Any]) -> Provenance:
    """The :class:`Provenance` a decided row (:func:`with_provenance`) carries; a row without one (a chapter's,
    decided by the rules of ``book/margins.yaml``) is an error."""
    kind = row.get("provenance")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"row {row.get('claim')!r} carries no provenance (only a study's decided rows do)")
    return Provenance(kind, str(row.get("provenance_date") or ""), str(row.get("provenance_reason") or ""),
                      str(row.get("replaces") or ""), str(row.get("earlier_rule") or REGISTERED_RULE))


def with_provenance(frame: pd.DataFrame, provenances: Sequence[Provenance],
                    registered: Sequence[Mapping[str, Any] | None], scales: Sequence[str]) -> pd.DataFrame:
    """``frame`` (decided rows) with the :data:`PROVENANCE_COLUMNS` filled in, row by row: each row's rule's
    ``provenances``, the earlier rule's row (``registered``) where a rule added after the runs replaced it (its
    status and text beside the new ones, named by the provenance's ``earlier``; None: the row's own rule is the
    registered one, or it replaced none) and the ``scales`` of the records that decided each row."""
    if not len(frame) == len(provenances) == len(registered) == len(scales):
        raise ValueError(f"provenances, registered and scales must give one entry per row of frame ({len(frame)}), "
                         f"got {len(provenances)}, {len(registered)} and {len(scales)}")
    for p, old in zip(provenances, registered):
        if old is not None and p.registered:
            raise ValueError("registered: a registered rule's row has no other registered reading beside it")
    out = frame.copy()
    out["provenance"] = [p.kind for p in provenances]
    out["provenance_date"] = [p.date for p in provenances]
    out["provenance_reason"] = [p.reason for p in provenances]
    out["replaces"] = [p.replaces for p in provenances]
    out["registered_status"] = [old["status"] if old is not None else (s if p.registered else "")
                                for p, old, s in zip(provenances, registered, out["status"])]
    out["registered_text"] = [old["text"] if old is not None else "" for old in registered]
    out["earlier_rule"] = [p.earlier if old is not None else "" for p, old in zip(provenances, registered)]
    out["scale"] = list(scales)
    return out


def rule_text(row: Mapping[str, Any]) -> str:
    """The provenance of a decided row's rule in a few words, with the earlier rule's reading beside it where
    the rule replaced one: "registered", "added after the runs (2026-12-03)", or "added after the runs
    (2026-12-03); registered rule: ×0.72 [×0.51, ×1.03], n = 3: inconclusive" (the earlier rule named by
    :attr:`Provenance.earlier`; :meth:`Provenance.text` says what it was and why it was replaced)."""
    replaced = row.get("registered_text")
    provenance = provenance_of(row)
    return provenance.label() + (f"; {provenance.earlier}: {replaced}" if isinstance(replaced, str) and replaced
                                 else "")


def _provenance(rows: pd.DataFrame) -> tuple[str, bool]:
    commits = sorted({c for c in rows["commit"] if c}) if len(rows) else []
    return (", ".join(commits) if commits else "no runs"), bool(rows["stale"].any()) if len(rows) else False


def row(label: str, rule: str, verdict: Verdict, *, used: pd.DataFrame | None = None,
        boot: tuple[float, float] = (math.nan, math.nan), evidence: str = "",
        declared: Margins | None = None) -> dict[str, Any]:
    """One row of the claims table: the columns of :func:`sparsam.book.stats.verdicts_frame` for
    ``verdict`` (decided by the claim ``rule`` of the ``declared`` claims, default ``book/margins.yaml``'s) and
    :data:`EXTRA_COLUMNS`. ``used`` are the rows of :func:`sparsam.book.records.records_frame` the verdict rests
    on (None: not run records, e.g. a measurement made by the notebook itself)."""
    check_choice("rule", rule, tuple(margins() if declared is None else declared))
    commits, stale = _provenance(used) if used is not None else ("measured by the notebook", False)
    return {**verdicts_frame({label: verdict}).iloc[0].to_dict(), "rule": rule, "boot_low": boot[0],
            "boot_high": boot[1], "commits": commits, "stale": stale, "evidence": evidence}


def paired_claim(label: str, rule: str, a: Sequence[float], b: Sequence[float], used: pd.DataFrame, *,
                 correct: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None, resamples: int = 2000,
                 evidence: str = "", declared: Margins | None = None) -> dict[str, Any]:
    """The row of a claim decided from per-seed values ``a`` and ``b`` (paired by position) of the runs
    ``used`` by the ``declared`` claims (default: the book's); ``correct``: the per-example test correctness of
    the same runs, for the paired bootstrap."""
    verdict = decide(rule, a, b, declared=declared)
    boot = (math.nan, math.nan)
    if correct is not None and len(a):
        _, low, high = paired_bootstrap(correct[0], correct[1], resamples=resamples)
        boot = (low, high)
    return row(label, rule, verdict, used=used, boot=boot, evidence=evidence, declared=declared)


def accuracy(frame: pd.DataFrame, records: Sequence[Mapping[str, Any]], label: str, rule: str,
             method: Mapping[str, Any], reference: Mapping[str, Any], *, resamples: int = 2000,
             evidence: str = "") -> dict[str, Any]:
    """The row of an accuracy claim: ``method`` against ``reference`` (selections of ``frame``, the
    records frame of ``records`` in the same order), final test accuracy paired by seed."""
    if len(frame) != len(records):
        raise ValueError(f"frame and records must describe the same runs, got {len(frame)} rows and "
                         f"{len(records)} records")
    indexed = frame.assign(position=np.arange(len(frame), dtype=float))
    a, b, _ = paired(indexed, method, reference, "final_test_acc")
    pos_a, pos_b, _ = paired(indexed, method, reference, "position")
    positions = np.concatenate([pos_a, pos_b]).astype(int)
    return paired_claim(label, rule, a, b, frame.iloc[positions],
                        correct=correctness([records[i] for i in pos_a.astype(int)],
                                            [records[i] for i in pos_b.astype(int)]),
                        resamples=resamples, evidence=evidence)


def chapter_rows(name: str, frame: pd.DataFrame, records: Sequence[Mapping[str, Any]], p: SimpleNamespace, *,
                 resamples: int = 2000, path: str | Path | None = None) -> list[dict[str, Any]]:
    """The claims rows chapter ``name`` compares (its ``compare`` entries in the book's registry,
    :func:`sparsam.book.registry.chapter`) from its records (``frame``: their
    :func:`sparsam.book.records.records_frame`, in the same order), final test accuracy paired by seed
    (:func:`accuracy`), under the notebook's parameters ``p``."""
    declared = registry.chapter(name, path)
    rows = []
    for entry in declared.compare:
        eaches = [{}]
        for field, values in dict(entry.get("each") or {}).items():
            eaches = [{**e, field: v} for e in eaches for v in registry.resolve(values, p, {})]
        for each in eaches:
            rows.append(accuracy(frame, records, registry.resolve(entry["label"], p, each), entry["rule"],
                                 registry.selection(entry["method"], declared.selectors or {}, p, each),
                                 registry.selection(entry["reference"], declared.selectors or {}, p, each),
                                 resamples=resamples, evidence=declared.evidence))
    return rows


def correctness(records_a: Sequence[Mapping[str, Any]], records_b: Sequence[Mapping[str, Any]]
                ) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """The per-example test correctness of two paired lists of records, or None when a record lacks it."""
    summaries = [r["summary"] for r in [*records_a, *records_b]]
    if not all("test_correct" in s for s in summaries):
        return None
    unpacked = [unpack_bits(s["test_correct"]) for s in summaries]
    return unpacked[:len(records_a)], unpacked[len(records_a):]


def claims_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The rows as a frame: the input of :func:`sparsam.book.figures.claims.claims_figure` and :func:`display_table`."""
    columns = [*verdicts_frame({}).columns, *EXTRA_COLUMNS]
    return pd.DataFrame(list(rows), columns=columns)


def family_wise(frame: pd.DataFrame, premises: Mapping[str, str | None] | None = None) -> pd.DataFrame:
    """``frame`` (a :func:`claims_frame`, one row per claim) read as one family by
    :func:`sparsam.book.stats.family`: a copy with the ``family_status``, ``family_size``, ``sim_low``
    and ``sim_high`` columns filled in, the registered ``status`` unchanged.

    ``premises`` maps a claim to the claim of the same frame that is its premise (None: none there);
    by default a row whose ``rule`` declares a ``premise`` in ``book/margins.yaml`` takes the one row
    of that rule in the same ``chapter`` (the same study; the whole frame without a chapter column),
    and none if there is none; where the chapter has several, the one of the same measure (the label's
    words after its first ": ", up to the next comma or colon, as "SSAM-F vs SAM: Hessian trace, ...").
    """
    rows = frame.reset_index(drop=True)
    fields = [f for f in verdicts_frame({}).columns if f not in ("claim", "text")]
    verdicts = {i: Verdict(**{f: row[f] for f in fields}) for i, row in rows.iterrows()}
    if premises is None:
        declared = margins()
        chapters = rows["chapter"] if "chapter" in rows else pd.Series("", index=rows.index)
        links: dict[int, int | None] = {}
        for i, row in rows.iterrows():
            premise = declared[row["rule"]].get("premise")
            if premise is None:
                continue
            found = rows.index[(rows["rule"] == premise) & (chapters == chapters[i])]
            if len(found) > 1:  # one premise per measure (e.g. flatness): the one of the same measure
                found = found[[_measure(rows.at[j, "claim"]) == _measure(row["claim"]) for j in found]]
            if len(found) > 1:
                raise ValueError(f"claim {row['claim']!r} has {len(found)} premises of rule {premise!r} in its "
                                 f"chapter ({', '.join(rows.loc[found, 'claim'])}): pass premises=")
            links[i] = int(found[0]) if len(found) else None
    else:
        def position(claim: str) -> int:
            found = rows.index[rows["claim"] == claim]
            if len(found) != 1:
                raise ValueError(f"premises must name claims of the frame once each, got {claim!r} "
                                 f"({len(found)} rows)")
            return int(found[0])

        links = {position(name): None if premise is None else position(premise) for name, premise in premises.items()}
    read = family(verdicts, links)
    out = frame.copy()
    for column in ("family_status", "family_size", "sim_low", "sim_high"):
        out[column] = [getattr(read[i], column) for i in rows.index]
    out["family_size"] = out["family_size"].astype(int)
    return out


def _measure(label: str) -> str:
    """What a row's label says is measured: its words after the first ": ", up to the next comma or colon."""
    return re.split(r"[,:]", label.split(": ", 1)[1])[0].strip() if ": " in label else ""


DIFFERENCE_DIGITS, RATIO_DIGITS = 2, 3  # decimals of a difference or a ratio that has no interval


def _shown(value: float, unit: str) -> float:
    """A difference as a reader reads it: a ratio claim's difference of logarithms as the ratio."""
    return math.exp(value) if unit == "ratio" else value


def _options(unit: str) -> dict[str, Any]:
    return ({"digits": RATIO_DIGITS, "prefix": "×"} if unit == "ratio" else {"digits": DIFFERENCE_DIGITS,
                                                                            "sign": True})


def _margin(margin: float, unit: str) -> str:
    return f"ratio {math.exp(margin):.3g}" if unit == "ratio" else f"{margin:g} {unit}"


# The reader's table's two status columns, each headed with its reading (sparsam.book.stats.reading_header).
STATUS_HEADER, FAMILY_HEADER = reading_header("status", PER_COMPARISON), reading_header("status", FAMILY_WISE)
# The one reading of a chapter's own statuses (publish): each row by its rule alone, in every profile, also for the
# rows a chapter takes from a study (chapter 4's CPU-study rows, whose family-wise status stays in its own column).
CHAPTER_READING = PER_COMPARISON


def display_table(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims frame as a reader's table: differences in their unit (pp, slope, or ratios for
    "ratio" claims, whose differences are of logarithms), intervals as text, margins with their unit,
    the one-sided p-value against the margin, the status per comparison (:data:`STATUS_HEADER`) and, where the
    frame was read as a family (:func:`family_wise`), the simultaneous interval and the family-wise status
    (:data:`FAMILY_HEADER`; "–" otherwise), each header naming its reading; where its
    rows carry their rule's provenance (a study's, :func:`with_provenance`), the ``rule`` (:func:`rule_text`: registered
    or added after the runs, with the registered rule's reading beside a rule that replaced it) and the scale of the
    records that decided each row (``decided on``; "–" for rows without). Each
    interval is printed to its own precision (:func:`sparsam.book.intervals.precision`), the mean difference to the
    t-interval's (without one: 2 decimals, ratios 3)."""
    def interval(low: float, high: float, unit: str) -> str:
        return bounds_text(_shown(low, unit), _shown(high, unit), **_options(unit))

    def mean(diff: float, low: float, high: float, unit: str) -> str:
        if math.isnan(diff):
            return "–"
        options = _options(unit)
        digits = precision(_shown(low, unit), _shown(high, unit), options.pop("digits"))
        return number_text(_shown(diff, unit), digits, **options)

    def p_text(p: float) -> str:
        return "–" if math.isnan(p) else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")

    units = list(claims["unit"])
    table = pd.DataFrame({
        "claim": claims["claim"],
        "test (margin)": [f"{t} ({_margin(m, u)})" if t == "non-inferiority" else t
                          for t, m, u in zip(claims["test"], claims["margin"], units)],
        "mean difference": [mean(d, lo, hi, u) for d, lo, hi, u in zip(claims["diff"], claims["low"], claims["high"],
                                                                          units)],
        "95% t-interval": [interval(lo, hi, u) for lo, hi, u in zip(claims["low"], claims["high"], units)],
        "95% paired bootstrap": [interval(lo, hi, u) for lo, hi, u in zip(claims["boot_low"], claims["boot_high"],
                                                                           units)],
        "seeds": claims["n"],
        "one-sided p": [p_text(p) for p in claims["p_value"]],
        STATUS_HEADER: claims["status"],
        "simultaneous interval": [interval(lo, hi, u) + (f" (m = {m})" if m else "") for lo, hi, u, m in
                                  zip(claims["sim_low"], claims["sim_high"], units, claims["family_size"])],
        FAMILY_HEADER: [s or "–" for s in claims["family_status"]],
        "records (commit)": claims["commits"],
        "stale": ["stale" if s else "" for s in claims["stale"]],
    })
    if "provenance" in claims.columns:  # a study's decided rows: each rule's provenance and the records' scale
        carried = [isinstance(kind, str) and bool(kind) for kind in claims["provenance"]]
        table["rule"] = [rule_text(row) if has else "–" for has, (_, row) in zip(carried, claims.iterrows())]
        table["decided on"] = [row["scale"] if has else "–" for has, (_, row) in zip(carried, claims.iterrows())]
    return table


def save_verdicts(frame: pd.DataFrame, chapter: str, profile: str, folder: str | Path | None = None) -> Path:
    """Write a chapter's verdicts frame (the input of :func:`sparsam.book.figures.claims.claims_figure`) to
    ``folder/<chapter>.json`` (default: the book's ``results/claims/``) with the chapter's name and the
    profile it ran under; returns the path."""
    check_choice("chapter", chapter, tuple(profiles.table()))
    check_choice("profile", profile, profiles.PROFILES)
    path = _folder(folder) / f"{chapter}.json"
    atomic_write_json(path, {"chapter": chapter, "profile": profile, "columns": [str(c) for c in frame.columns],
                             "dtypes": [str(t) for t in frame.dtypes],
                             "rows": frame.to_dict(orient="split", index=False)["data"]})
    return path


def _folder(folder: str | Path | None) -> Path:
    return book_root() / CLAIMS_DIR if folder is None else Path(folder)


def _saved(path: Path) -> tuple[str, pd.DataFrame]:
    """The profile of a saved frame and the frame, with ``chapter`` and ``profile`` columns first."""
    try:
        saved = json.loads(path.read_text())
        if not isinstance(saved, dict) or set(saved) != set(_SAVED_KEYS):
            raise ValueError(f"its keys must be {list(_SAVED_KEYS)}")
        columns = saved["columns"]
        missing = [c for c in claims_frame([]).columns if c not in columns]
        if missing:
            raise ValueError(f"it lacks the columns {missing} (saved by an older version: run its chapter again)")
        frame = pd.DataFrame(saved["rows"], columns=columns).astype(dict(zip(columns, saved["dtypes"])))
    except (ValueError, TypeError) as error:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path} is not a saved verdicts frame: {error}") from error
    frame.insert(0, "profile", saved["profile"])
    frame.insert(0, "chapter", saved["chapter"])
    return saved["profile"], frame


def load_verdicts(folder: str | Path | None = None, profile: str | None = None) -> pd.DataFrame:
    """Every chapter's saved verdicts frame in ``folder`` (default: the book's ``results/claims/``) in chapter
    order, with ``chapter`` and ``profile`` columns first; only the chapters saved under ``profile`` unless it
    is None. The rows of each profile are the claims table of that profile, read as one family
    (:func:`family_wise`, claims named ``"<chapter>: <claim>"`` there). No saved frame: an empty frame with
    these two columns and those of :func:`claims_frame`."""
    if profile is not None:
        check_choice("profile", profile, profiles.PROFILES)
    saved = [_saved(path) for path in sorted(_folder(folder).glob("*.json"))]
    frames = [frame for kept, frame in saved if profile is None or kept == profile]
    if not frames:
        return pd.DataFrame(columns=["chapter", "profile", *claims_frame([]).columns])
    table = pd.concat(frames, ignore_index=True)
    read = []
    for _, rows in table.groupby("profile", sort=False):
        named = rows.assign(claim=rows["chapter"] + ": " + rows["claim"])
        read.append(family_wise(named).assign(claim=rows["claim"]))
    return pd.concat(read).loc[table.index]


def missing_chapters(frame: pd.DataFrame, chapters: Sequence[str] | None = None) -> list[str]:
    """The ``chapters`` (default: those that decide claims by paired differences,
    :func:`sparsam.book.registry.chapters`;
    notebook 1's claim is a rate: it saves none) with no row in ``frame`` (a frame of :func:`load_verdicts`), in their
    order."""
    present = set(frame["chapter"])
    return [c for c in (list(registry.chapters()) if chapters is None else chapters) if c not in present]


@dataclass(frozen=True)
class Published:
    """A chapter's verdicts as :func:`publish` left them: the claims ``frame``, its reader's ``table``
    (:func:`display_table`) and the status of each of the chapter's claims (``statuses``, claim key -> status)."""

    frame: pd.DataFrame
    table: pd.DataFrame
    statuses: dict[str, str]


def publish(rows: Sequence[Mapping[str, Any]], chapter: str, profile: str, *, glue: Callable[[str, Any], None],
            scale: str, used: pd.DataFrame | None = None, evidence: str | None = None,
            texts: Mapping[str, str] | None = None, folder: str | Path | None = None,
            source: str | None = None) -> Published:
    """A chapter's closing block: its claims ``rows`` as a frame, saved for notebook 7 (:func:`save_verdicts` under
    ``profile``), its table and figure, and what its pages read, glued with ``glue`` (``myst_nb.glue``, or any
    function of a name and a value): ``claims_<glue>_table`` and ``fig_claims_<glue>`` (the chapter's ``glue`` name
    in the registry, :func:`sparsam.book.registry.chapter`), ``claim_<key>_status`` for each claim of the chapter
    (the statuses of its rows combined, in the chapter's one reading, :data:`CHAPTER_READING`: per comparison,
    also for a row a study read in its family; the figure is coloured by the same reading),
    ``claim_<first>_evidence``
    (``evidence``, default the chapter's, then the commits of the records ``used`` and whether any is stale) and
    ``claim_<first>_scale`` (``scale``), and each verdict text of ``texts`` (glue key -> row label, e.g. the
    chapter's declared ones, :func:`sparsam.book.registry.texts`). The figure's line (``fig_claims_<glue>_source``,
    :func:`sparsam.book.captions.glue_figure`) names its comparisons (:func:`sparsam.book.captions.claims_source`),
    then ``source``, by default the records ``used`` (:func:`sparsam.book.captions.figure_source`)."""
    from . import captions
    from .figures.claims import claims_figure

    declared = registry.chapter(chapter)
    keys = [c.key for c in registry.claims() if c.chapter == chapter and c.rows]
    frame = claims_frame(rows)
    save_verdicts(frame, chapter, profile, folder)
    table = display_table(frame)
    found: dict[str, list[str]] = {}
    for rule, label, status in zip(frame["rule"], frame["claim"], frame[READING_COLUMNS[CHAPTER_READING]]):
        key = registry.claim_of_row(chapter, rule, label)
        if key is not None:
            found.setdefault(key, []).append(status)
    statuses = {key: combine(found.get(key, [])) for key in keys}
    for key, status in statuses.items():
        glue(f"claim_{key}_status", status)
    said = declared.evidence if evidence is None else evidence
    if used is not None:
        commits, stale = _provenance(used)
        said += f"; records {commits}" + (" (stale records among them)" if stale else "")
    glue(f"claim_{keys[0]}_evidence", said)
    glue(f"claim_{keys[0]}_scale", scale)
    by_label = frame.set_index("claim")["text"]
    for key, label in (texts or {}).items():
        glue(key, by_label[label])
    glue(f"claims_{declared.glue}_table", table)
    if source is None and used is not None:
        source = captions.figure_source(used)
    line = captions.claims_source(frame) + ("" if source is None else f" {source}")
    captions.glue_figure(f"fig_claims_{declared.glue}", claims_figure(frame, CHAPTER_READING), line, glue)
    return Published(frame, table, statuses)
