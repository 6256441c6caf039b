"""Flatness claims from curvature measured per seed: interval summaries and the two declared verdicts.

The input is a long frame with one row per trained network: ``method`` (e.g. "SGD", "SAM",
"SSAM-F"), ``seed`` and one column per curvature measure (e.g. ``eigenvalue``, ``trace``), with
optional ``<measure>_stderr`` (the Hutchinson standard error of a trace estimate) and the scale-free
``<measure>_normalized`` (the same of the Hessian in normalised weights, :mod:`sparsam.book.curvature`).

- :func:`curvature_summary`: per method, the mean and its 95% interval: the t-interval over seeds
  when there are several (it contains the estimator's noise, which varies from seed to seed like
  the rest), else mean ± z·s.e. of the estimator alone (which says nothing about seed-to-seed
  spread, and the ``interval`` column says so), else none.
- :func:`flatness_verdicts`: "as flat as SAM" (``flatness_ssam_vs_sam``, non-inferiority on the
  ratio) and "flatter than SGD" (``flatness_ssam_vs_sgd``, superiority) for each measure, seeds paired,
  decided on the scale-free measure: the raw eigenvalue and trace change with the weights' scale
  (BatchNorm), which the methods' weight decays set apart, so they stay descriptive.
"""

from __future__ import annotations

import math
import dataclasses
from typing import Literal, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .._checks import check_choice, check_range
from ..experiment.config import OPTIMIZER_NAMES
from . import registry
from .stats import Verdict, decide, mean_interval

MEASURE_NAMES = {"eigenvalue": "top Hessian eigenvalue", "trace": "Hessian trace"}
NORMALIZED = "_normalized"  # the suffix of a measure's scale-free column
NOT_MEASURED = "inconclusive (scale-free measure not measured)"  # read in a verdict's name where it is missing
# The method label of each kind of network of sparsam.book.curvature.networks, as the rows name them.
NETWORK_NAMES = {kind: OPTIMIZER_NAMES[optimizer] for kind, optimizer in
                 (("sgd", "sgd"), ("sam", "sam"), ("ssam", "ssam-f"), ("ssamd", "ssam-d"))}


def curvature_summary(frame: pd.DataFrame, measure: str, level: float = 0.95) -> pd.DataFrame:
    """Per ``method``: ``mean``, ``low``, ``high``, ``n`` of ``measure`` and ``interval`` ("over
    seeds", "from the estimator's s.e., one seed" or "none")."""
    check_range("level", level, 0.0, 1.0, low_open=True)
    if measure not in frame.columns:
        raise ValueError(f"measure must be a column of the frame, got {measure!r}")
    stderr = f"{measure}_stderr"
    z = float(stats.norm.ppf((1 + level) / 2))
    rows = []
    for method, group in frame.groupby("method", sort=False):
        mean, low, high = mean_interval(group[measure].to_numpy(dtype=float), level)
        source = "over seeds" if len(group) > 1 else "none"
        if len(group) == 1 and stderr in group and math.isfinite(float(group[stderr].iloc[0])):
            half = z * float(group[stderr].iloc[0])
            low, high, source = mean - half, mean + half, "from the estimator's s.e., one seed"
        rows.append({"method": method, "mean": mean, "low": low, "high": high, "n": len(group), "interval": source})
    return pd.DataFrame(rows, columns=["method", "mean", "low", "high", "n", "interval"])


def _per_seed(frame: pd.DataFrame, method: str, measure: str) -> pd.Series:
    rows = frame[frame["method"] == method]
    if rows["seed"].duplicated().any():
        raise ValueError(f"method {method!r} has several rows for one seed")
    return rows.set_index("seed")[measure]


def _paired(frame: pd.DataFrame, method: str, reference: str, column: str) -> tuple[list[float], list[float]]:
    """``column``'s values of ``method`` and ``reference`` over the seeds both have, in seed order."""
    mine, theirs = _per_seed(frame, method, column), _per_seed(frame, reference, column)
    seeds = sorted(set(mine.index) & set(theirs.index))
    return mine.loc[seeds].to_numpy(dtype=float).tolist(), theirs.loc[seeds].to_numpy(dtype=float).tolist()


def rules(premise: bool = False) -> dict[str, str]:
    """The rule that decides a curvature comparison against each reference method, as chapter 6 declares them in
    the book's registry (:func:`sparsam.book.registry.chapter`): "as flat as SAM" and "flatter than SGD"; with
    ``premise``, that of the premise (SAM flatter than SGD)."""
    declared = registry.chapter("06_landscape")
    return dict((declared.premise_references if premise else declared.references) or {})


def premise_verdicts(frame: pd.DataFrame, measures: Sequence[str] = ("eigenvalue", "trace"),
                     scale: Literal["normalized", "raw"] = "normalized") -> dict[str, Verdict]:
    """SAM against SGD for each measure (``flatness_sam_vs_sgd``, superiority on the ratio), decided as
    :func:`flatness_verdicts` decides: the premise of every "as flat as SAM" row, per measure."""
    return flatness_verdicts(frame, method="SAM", measures=measures, claims=rules(premise=True), scale=scale)


def flatness_verdicts(frame: pd.DataFrame, method: str = "SSAM-F", measures: Sequence[str] = ("eigenvalue", "trace"),
                      claims: Mapping[str, str] | None = None,
                      scale: Literal["normalized", "raw"] = "normalized") -> dict[str, Verdict]:
    """``{"<method> vs <reference>: <measure>, <scale>": verdict}`` for each reference of ``claims``
    (reference method -> declared claim) and each measure, with the seeds both methods have, paired.

    ``scale="normalized"`` (the book's): decided on ``<measure>_normalized``, the measure in normalised
    weights, which rescaling the weights before a BatchNorm leaves unchanged; where a paired network
    lacks it (a record measured before it existed) the verdict is "inconclusive", its name says
    :data:`NOT_MEASURED`, and it carries the raw ratio as description only (no p-value, so no family
    decides it). ``scale="raw"``: decided on the raw measure, which compares weight scales as much as
    sharpness (for checks; the book does not decide on it)."""
    check_choice("scale", scale, ("normalized", "raw"))
    verdicts = {}
    for reference, claim in (rules() if claims is None else claims).items():
        for measure in measures:
            label = f"{method} vs {reference}: {MEASURE_NAMES.get(measure, measure)}"
            a, b = _paired(frame, method, reference, measure)
            raw = decide(claim, a, b)
            if scale == "raw":
                verdicts[f"{label}, raw"] = raw
                continue
            column = measure + NORMALIZED
            if column in frame.columns:
                a, b = _paired(frame, method, reference, column)
                if np.isfinite([*a, *b]).all():
                    verdicts[f"{label}, normalised weights"] = decide(claim, a, b)
                    continue
            verdicts[f"{label}: {NOT_MEASURED}; raw ratio descriptive"] = dataclasses.replace(
                raw, status="inconclusive", p_value=math.nan)
    return verdicts
