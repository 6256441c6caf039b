"""Rows of the claims table: a declared claim decided from paired runs, with the provenance of its records.

A row holds the verdict of :func:`sparsam.verdicts.decide` (status, paired mean difference and its
t-interval), the declared margin, the paired bootstrap interval over seeds and test examples where
every run kept its per-example correctness, and the commits of the records with a stale flag
(:func:`sparsam.analysis.is_stale`). :func:`claims_frame` collects rows into a pandas frame.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from . import analysis, verdicts
from .results import unpack_bits

COLUMNS = ("claim", "rule", "status", "diff", "low", "high", "n", "test", "margin", "unit", "boot_low", "boot_high",
           "commits", "stale", "evidence")


def _provenance(rows: pd.DataFrame) -> tuple[str, bool]:
    commits = sorted({c for c in rows["commit"] if c}) if len(rows) else []
    return (", ".join(commits) if commits else "no runs"), bool(rows["stale"].any()) if len(rows) else False


def row(label: str, rule: str, verdict: verdicts.Verdict, *, used: pd.DataFrame | None = None,
        boot: tuple[float, float] = (math.nan, math.nan), evidence: str = "") -> dict[str, Any]:
    """One row of the claims table from a verdict on the claim declared as ``rule`` in ``book/margins.yaml``;
    ``used`` are the rows of :func:`sparsam.analysis.records_frame` the verdict rests on (None: no records)."""
    spec = verdicts.margins()[rule]
    commits, stale = _provenance(used) if used is not None else ("not a run record", False)
    return {"claim": label, "rule": rule, "status": verdict.status, "diff": verdict.diff, "low": verdict.low,
            "high": verdict.high, "n": verdict.n, "test": spec["test"], "margin": float(spec["margin"]),
            "unit": spec["unit"], "boot_low": boot[0], "boot_high": boot[1], "commits": commits, "stale": stale,
            "evidence": evidence}


def accuracy(frame: pd.DataFrame, records: Sequence[Mapping[str, Any]], label: str, rule: str,
             method: Mapping[str, Any], reference: Mapping[str, Any], *, resamples: int = 2000,
             evidence: str = "") -> dict[str, Any]:
    """The row of an accuracy claim: ``method`` against ``reference`` (selections of ``frame``, the
    records frame of ``records`` in the same order), final test accuracy paired by seed."""
    if len(frame) != len(records):
        raise ValueError(f"frame and records must describe the same runs, got {len(frame)} rows and "
                         f"{len(records)} records")
    indexed = frame.assign(position=np.arange(len(frame), dtype=float))
    a, b, _ = analysis.paired(indexed, method, reference, "final_test_acc")
    pos_a, pos_b, _ = analysis.paired(indexed, method, reference, "position")
    verdict = verdicts.decide(rule, a, b)
    used = frame.iloc[np.concatenate([pos_a, pos_b]).astype(int)]
    summaries = [records[int(i)]["summary"] for i in np.concatenate([pos_a, pos_b])]
    boot = (math.nan, math.nan)
    if len(a) and all("test_correct" in s for s in summaries):
        correct = [unpack_bits(s["test_correct"]) for s in summaries]
        _, low, high = verdicts.paired_bootstrap(correct[:len(a)], correct[len(a):], resamples=resamples)
        boot = (low, high)
    return row(label, rule, verdict, used=used, boot=boot, evidence=evidence)


def claims_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The rows as a frame with the columns of :data:`COLUMNS`."""
    return pd.DataFrame(list(rows), columns=list(COLUMNS))


def _shown(value: float, unit: str) -> str:
    if math.isnan(value):
        return "–"
    return f"×{math.exp(value):.3g}" if unit == "ratio" else f"{value:+.2f}"


def display_table(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims frame as a reader's table: differences in their unit (pp, slope, or ratios for
    "ratio" claims, whose differences are of logarithms), intervals as text, margins with their unit."""
    def interval(low: float, high: float, unit: str) -> str:
        return "–" if math.isnan(low) else f"[{_shown(low, unit)}, {_shown(high, unit)}]"

    units = list(claims["unit"])
    return pd.DataFrame({
        "claim": claims["claim"],
        "test (margin)": [f"{t} ({m:g} {u})" if t == "non-inferiority" else t
                          for t, m, u in zip(claims["test"], claims["margin"], units)],
        "mean difference": [_shown(d, u) for d, u in zip(claims["diff"], units)],
        "95% t-interval": [interval(lo, hi, u) for lo, hi, u in zip(claims["low"], claims["high"], units)],
        "95% paired bootstrap": [interval(lo, hi, u) for lo, hi, u in zip(claims["boot_low"], claims["boot_high"],
                                                                           units)],
        "seeds": claims["n"],
        "status": claims["status"],
        "records (commit)": claims["commits"],
        "stale": ["stale" if s else "" for s in claims["stale"]],
    })
