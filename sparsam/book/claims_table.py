"""The claims table: one row per claim of the book's registry (:mod:`sparsam.book.registry`), one status column per
scale in the order of :data:`sparsam.book.scales.SCALES` (:func:`sparsam.book.scale_reports.scale_statuses`:
family-wise, or where the scale stands while it has no records), then the profile the book was built with
(:func:`profile_statuses`, from the
verdicts the chapters saved, read as one family by :func:`sparsam.book.claims.load_verdicts`); every status
column holds one reading, the family-wise one (:data:`READING`), which :func:`headed` names in its header; a
scale that fills another's column (the ImageNet study, in the GPU study's column: both are GPU studies) stands
in that column's cells of its own claims, named; a cell whose rule was added after the runs in place of a registered one says so after its status (:func:`with_rule`, read back by :func:`status_of`);
:func:`decided_sentence` says in words which claims a column decides, each with the scale of the records that
decided it
(:func:`sparsam.book.scale_reports.scale_sentence`: a scale).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from . import registry
from .._checks import check_choice
from .profiles import PROFILES
from .scales import SCALES, Scale
from .stats import FAMILY_WISE, READING_COLUMNS, STATUSES, combine, reading_header

# The one reading of every status column of the claims table: a scale's, its study's comparisons read as one family
# (sparsam.book.scale_reports.scale_statuses), and the profile's, the rows its chapters saved read as one family
# (load_verdicts); headed() names it in each column's header.
READING = FAMILY_WISE


def profile_statuses(saved: pd.DataFrame) -> dict[str, str]:
    """The status of each claim of the table (:func:`sparsam.book.registry.table_claims`) in one profile, from the
    rows the chapters saved, read as the profile's one family
    (:func:`sparsam.book.claims.load_verdicts` of that profile): the family-wise statuses (:data:`READING`, the
    ``family_status`` column) of the claim's rows combined (:func:`sparsam.book.stats.combine`), as chapter 7's
    figure colours those rows; where the chapter saved no
    row, that it was not executed in this profile; chapter 1 decides a rate and saves no row."""
    column = READING_COLUMNS[READING]
    unread = (saved["claim"][[not (isinstance(s, str) and s) for s in saved[column]]]
              if column in saved.columns else saved["claim"])
    if len(unread):
        raise ValueError(f"saved must hold the {column!r} of each row, read as the profile's one family "
                         f"(sparsam.book.claims.load_verdicts), got none for {list(unread)[:3]}")
    found: dict[str, list[str]] = {}
    for chapter, rule, claim, status in zip(saved["chapter"], saved["rule"], saved["claim"], saved[column]):
        key = registry.claim_of_row(chapter, rule, claim)
        if key is not None:
            found.setdefault(key, []).append(status)
    chapters = set(saved["chapter"])
    deciding = registry.chapters()
    out = {}
    for c in registry.table_claims():
        if c.chapter not in deciding:
            out[c.key] = f"decided in chapter {int(c.chapter[:2])} (a rate, not a paired difference)"
        elif c.chapter not in chapters:
            out[c.key] = f"chapter {int(c.chapter[:2])} not executed in this profile"
        else:
            out[c.key] = combine(found[c.key]) if c.key in found else f"no row of chapter {int(c.chapter[:2])}"
    return out


def claims_table(by_scale: Sequence[Mapping[str, str]], in_profile: Mapping[str, str], profile: str = "quick",
                 scales: Sequence[Scale] = SCALES) -> pd.DataFrame:
    """The claims table: one row per claim of the table (:func:`sparsam.book.registry.table_claims`); its status
    columns are one per scale of ``scales`` with a column of its own, largest first (``by_scale``:
    :func:`sparsam.book.scale_reports.scale_statuses` in the order of ``scales``),
    then the ``profile``'s (``in_profile``: :func:`profile_statuses`). A scale that fills another's column
    (:attr:`Scale.column`, e.g. the ImageNet study the GPU study's) puts its status, after its name ("ImageNet
    study: not yet registered"), in that column's cell of each claim of its own (:attr:`Scale.claim_map`)."""
    check_choice("profile", profile, PROFILES)
    table = registry.table_claims()
    if len(by_scale) != len(scales):
        raise ValueError(f"by_scale must hold one column per scale ({', '.join(s.name for s in scales)}), "
                         f"got {len(by_scale)}")
    own = [s.name for s in scales if s.column is None]
    for s in scales:
        if s.column is not None and s.column not in own:
            raise ValueError(f"scales: the {s.name} fills the {s.column} column, which no scale of scales has "
                             f"(columns: {', '.join(own)})")
    for name, column in [*((s.name, col) for s, col in zip(scales, by_scale)), (f"{profile} profile", in_profile)]:
        missing = [c.key for c in table if c.key not in column]
        if missing:
            raise ValueError(f"the {name} column lacks the claims {missing}")
    rows = []
    for c in table:
        row = {"claim": c.name, **{s.name: col[c.key] for s, col in zip(scales, by_scale) if s.column is None}}
        for s, col in zip(scales, by_scale):
            if s.column is not None and c.key in s.claim_map:
                row[s.column] = f"{s.name}: {col[c.key]}"
        rows.append({**row, f"{profile} profile": in_profile[c.key]})
    return pd.DataFrame(rows)


def headed(table: pd.DataFrame) -> pd.DataFrame:
    """The claims table (:func:`claims_table`) as a reader sees it: each status column's header names its one
    reading (:data:`READING`; :func:`sparsam.book.stats.reading_header`), "CPU study (family-wise, Holm)", "quick
    profile (family-wise, Holm)"."""
    return table.rename(columns={c: column_header(c) for c in table.columns if c != "claim"})


def column_header(column: str) -> str:
    """The header of the claims table's status column ``column`` (a scale's name, or "<profile> profile"): its name
    with its reading (:data:`READING`)."""
    return reading_header(column, READING)


DECIDED = tuple(s for s in STATUSES if s != "inconclusive")  # "reproduced", "not reproduced"
RULE_OPENS = " ["  # opens the words on the rule that decided a cell's status, after it (with_rule)


def with_rule(status: str, rule: str) -> str:
    """A cell of the claims table: ``status``, then, where ``rule`` says something (a rule added after the runs
    that replaced a registered one, :func:`sparsam.book.study.claim_rules`), those words in square brackets."""
    return f"{status}{RULE_OPENS}{rule}]" if rule else status


def status_of(cell: str) -> str:
    """The status of a cell of the claims table (:func:`with_rule`), without the words on its rule."""
    return cell.split(RULE_OPENS, 1)[0]


def decided_sentence(table: pd.DataFrame, column: str, scale: str = "",
                     scales: Mapping[str, str] | None = None) -> str:
    """Which claims a status column of :func:`claims_table` decides, in words: each claim whose status there is
    "reproduced" or "not reproduced" (:func:`status_of` its cell), with its cell and, from ``scales`` (claim name ->
    the scale of the records that decided it, e.g. :func:`sparsam.book.scale_reports.claim_scales`), what decided
    it; or that it decides none (with the column's statuses). ``scale`` (e.g. the runs'
    :func:`sparsam.book.deviations.scale_text`) names the column's runs after it."""
    if column not in table.columns or column == "claim":
        raise ValueError(f"column must be a status column of the table ({', '.join(table.columns[1:])}), "
                         f"got {column!r}")
    statuses = table.set_index("claim")[column]
    scales = scales or {}
    decided = [f"{claim}: {status_of(cell)}" + (f", decided on {scales[claim]}" if claim in scales else "")
               + cell[len(status_of(cell)):] for claim, cell in statuses.items() if status_of(cell) in DECIDED]
    if decided:
        text = (f"The {column} decides {len(decided)} of the {len(statuses)} claims ({'; '.join(decided)}); the "
                "others are inconclusive there or not tested.")
    else:
        text = f"The {column} decides none of the {len(statuses)} claims ({'; '.join(sorted(set(statuses)))})."
    return text + (f" Its runs: {scale}." if scale else "")


def reading_order(scales: Sequence[Scale]) -> list[int]:
    """The order in which the book reads its scales' sentences: the scales' own order (largest first, as
    :data:`sparsam.book.scales.BOOK_SCALES` lists them), a scale that fills another's column (:attr:`Scale.column`)
    right after the scale whose column it fills."""
    own = [i for i, scale in enumerate(scales) if scale.column is None]
    order: list[int] = []
    for i in own:
        order += [i, *(j for j, other in enumerate(scales) if other.column == scales[i].name)]
    return order + [i for i in range(len(scales)) if i not in order]


def decisive_first(sentences: Sequence[str], statuses: Sequence[Mapping[str, str]],
                   claims: Sequence[Sequence[str] | None] | None = None) -> str:
    """The sentences of :func:`decided_sentence` (or :func:`sparsam.book.scale_reports.scale_sentence`), one per
    column, joined so that the largest decisive scale leads: first those whose ``statuses`` (claim key -> cell, e.g.
    :func:`sparsam.book.scale_reports.scale_statuses`) decide at least one claim, then the others, each group in the
    order given (largest scale first, the profile last). ``claims`` limits, per column, the claims that count (a
    scale's own claims where it fills another's column; None: every claim)."""
    if len(sentences) != len(statuses) or claims is not None and len(claims) != len(sentences):
        raise ValueError(f"sentences, statuses and claims must have one entry per column, got {len(sentences)}, "
                         f"{len(statuses)} and {len(sentences) if claims is None else len(claims)}")
    limits = claims if claims is not None else [None] * len(sentences)
    decides = [any(status_of(cell) in DECIDED for key, cell in column.items() if keys is None or key in keys)
               for column, keys in zip(statuses, limits)]
    return " ".join([s for s, d in zip(sentences, decides) if d] + [s for s, d in zip(sentences, decides) if not d])
