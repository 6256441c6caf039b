"""The book's claims, declared once in ``book/margins.yaml``: beside each rule's margin and reason (``claims``, read by
:func:`sparsam.book.stats.margins`) the file holds the claims of the book (``book_claims``: :class:`Claim`, in the
order of the claims table) and the chapters that decide them from their own runs (``book_chapters``:
:class:`Chapter`, with the rows they compare as selections of the records). Everything that names a claim reads it
here: the chapters' rows (:func:`sparsam.book.claims.chapter_rows`) and their closing block
(:func:`sparsam.book.claims.publish`), the
claims table (:mod:`sparsam.book.scales`), the studies' claim statuses (:mod:`sparsam.book.study`) and notebook 7.
Adding a claim is one entry of the file (and a test).

The file is read when a function runs (default: the book's, :data:`sparsam.book.layout.MARGINS` under
:func:`sparsam.book.layout.book_root`), never at import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

from ..experiment import yaml_text
from .layout import MARGINS, book_root

Comparison = tuple[str, str, str]  # (rule, a, b): a study's comparison, by configuration name


@dataclass(frozen=True)
class Claim:
    """One claim of the book: its ``key``, its ``name`` in the claims table, the ``chapter`` that decides it in a
    profile, the ``rows`` of that chapter that are part of it ((rule, label prefix), "" for none), the comparisons
    a study makes for it per kind of study (``studies``: "cifar" or "imagenet", a scale's paper) and whether it is a
    row of the claims table (``table``)."""

    key: str
    name: str
    chapter: str | None
    rows: tuple[tuple[str, str], ...] = ()
    studies: Mapping[str, tuple[Comparison, ...]] = field(default_factory=dict)
    table: bool = True

    def comparisons(self, kind: str) -> tuple[Comparison, ...]:
        """The comparisons a study of ``kind`` makes for this claim (none: it is not a claim of such a study)."""
        return self.studies.get(kind, ())


@dataclass(frozen=True)
class Chapter:
    """A chapter that decides claims from its runs: its ``name`` (the notebook), the ``glue`` name of its claims table
    and figure, its ``evidence`` (where the numbers are shown), the rules of its rows that are no claim's
    (``premises``), its named ``selectors``, the rows it compares (``compare``, as declared) and, for curvature, the
    rule of each reference method (``references``, ``premise_references``)."""

    name: str
    glue: str
    evidence: str
    premises: tuple[str, ...] = ()
    selectors: Mapping[str, Mapping[str, Any]] | None = None
    compare: tuple[Mapping[str, Any], ...] = ()
    references: Mapping[str, str] | None = None
    premise_references: Mapping[str, str] | None = None


def _read(path: str | Path | None) -> dict[str, Any]:
    return yaml_text.read(book_root() / MARGINS if path is None else path)


def claims(path: str | Path | None = None) -> tuple[Claim, ...]:
    """Every claim of the book in ``path`` (default: the book's ``book/margins.yaml``), in the table's order."""
    out = []
    for key, entry in _read(path)["book_claims"].items():
        unknown = sorted(set(entry) - {"name", "chapter", "rows", "studies", "table"})
        if unknown:
            raise ValueError(f"book_claims.{key}: unknown fields {unknown}; a claim has name, chapter, rows, studies "
                             "and table")
        rows = tuple((str(r[0]), str(r[1]) if len(r) > 1 else "") for r in entry.get("rows") or ())
        studies = {kind: tuple((str(c[0]), str(c[1]), str(c[2])) for c in comparisons)
                   for kind, comparisons in (entry.get("studies") or {}).items()}
        out.append(Claim(str(key), str(entry["name"]), entry.get("chapter"), rows, studies,
                         bool(entry.get("table", True))))
    return tuple(out)


def table_claims(path: str | Path | None = None) -> tuple[Claim, ...]:
    """The claims that are rows of the claims table, in its order."""
    return tuple(c for c in claims(path) if c.table)


def study_claims(kind: str, path: str | Path | None = None) -> dict[str, tuple[Comparison, ...]]:
    """The claims a study of ``kind`` ("cifar", "imagenet") decides: claim key -> the comparisons each needs."""
    return {c.key: c.comparisons(kind) for c in claims(path) if c.comparisons(kind)}


def chapters(path: str | Path | None = None) -> dict[str, Chapter]:
    """The chapters that decide claims by paired differences from their runs, by notebook, in the file's order."""
    out = {}
    for name, entry in _read(path)["book_chapters"].items():
        out[str(name)] = Chapter(str(name), str(entry["glue"]), str(entry["evidence"]),
                                 tuple(entry.get("premises") or ()), dict(entry.get("selectors") or {}),
                                 tuple(entry.get("compare") or ()), entry.get("references"),
                                 entry.get("premise_references"))
    return out


def chapter(name: str, path: str | Path | None = None) -> Chapter:
    """The chapter ``name`` (a notebook of :func:`chapters`)."""
    found = chapters(path)
    if name not in found:
        raise ValueError(f"chapter must be one of {', '.join(found)}, got {name!r}")
    return found[name]


def claim_of_row(chapter_name: str, rule: str, label: str, path: str | Path | None = None) -> str | None:
    """The key of the claim a saved row of ``chapter_name`` (its ``rule`` and ``label``) is part of; None for a row of
    no claim (a premise the chapter declares); an error for a row the file does not place."""
    found = claims(path)
    candidates = [(c.key, prefix) for c in found if c.chapter == chapter_name for r, prefix in c.rows if r == rule]
    prefixed = [key for key, prefix in candidates if prefix and label.startswith(prefix)]
    plain = [key for key, prefix in candidates if not prefix]
    if prefixed or plain:
        return (prefixed or plain)[0]
    if rule in chapter(chapter_name, path).premises:
        return None
    raise ValueError(f"saved: {chapter_name}'s row {label!r} has rule {rule!r}, which no claim of the table takes "
                     "(add it to a claim's rows, or to the chapter's premises, in book/margins.yaml)")


def resolve(value: Any, p: SimpleNamespace, each: Mapping[str, Any]) -> Any:
    """A declared value under the notebook's parameters ``p``: ``"$name"`` is the parameter ``name``, a string with
    braces a format string of the parameters and of ``each`` (a row's current values), anything else itself."""
    if isinstance(value, str) and value.startswith("$"):
        return getattr(p, value[1:])
    if isinstance(value, str) and "{" in value:
        return value.format(**vars(p), **each)
    return value


def selection(spec: Any, selectors: Mapping[str, Mapping[str, Any]], p: SimpleNamespace,
              each: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A row's method or reference as a selection of the records: a selector's name, a mapping, or a list of both
    merged in order, each value a constant, ``"$name"`` (the parameter ``name`` of ``p``) or a format string of the
    parameters and of ``each``."""
    parts = spec if isinstance(spec, list) else [spec]
    out: dict[str, Any] = {}
    for part in parts:
        if isinstance(part, str):
            if part not in selectors:
                raise ValueError(f"selector {part!r} is not declared (declared: {', '.join(selectors) or 'none'})")
            part = selectors[part]
        out |= {field: resolve(value, p, each or {}) for field, value in dict(part).items()}
    return out


def texts(name: str, p: SimpleNamespace, path: str | Path | None = None) -> dict[str, str]:
    """Glue key -> label of each row of chapter ``name`` whose verdict text the chapter glues (its ``text``), the
    label formatted with the notebook's parameters ``p``."""
    return {entry["text"]: resolve(entry["label"], p, {}) for entry in chapter(name, path).compare
            if entry.get("text") and not entry.get("each")}
