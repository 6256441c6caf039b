"""Flatness claims from curvature measured per seed: interval summaries and the two declared verdicts.

The input is a long frame with one row per trained network: ``method`` (e.g. "SGD", "SAM",
"SSAM-F"), ``seed`` and one column per curvature measure (e.g. ``eigenvalue``, ``trace``), with
optional ``<measure>_stderr`` (the Hutchinson standard error of a trace estimate).

- :func:`curvature_summary`: per method, the mean and its 95% interval: the t-interval over seeds
  when there are several (it contains the estimator's noise, which varies from seed to seed like
  the rest), else mean ± z·s.e. of the estimator alone (which says nothing about seed-to-seed
  spread, and the ``interval`` column says so), else none.
- :func:`flatness_verdicts`: "as flat as SAM" (``flatness_ssam_vs_sam``, non-inferiority on the
  ratio) and "flatter than SGD" (``flatness_ssam_vs_sgd``, superiority) for each measure, seeds paired.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .._checks import check_range
from ..experiment.config import OPTIMIZER_NAMES
from .stats import Verdict, decide, mean_interval

CLAIMS = {"SAM": "flatness_ssam_vs_sam", "SGD": "flatness_ssam_vs_sgd"}
MEASURE_NAMES = {"eigenvalue": "top Hessian eigenvalue", "trace": "Hessian trace"}
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


def flatness_verdicts(frame: pd.DataFrame, method: str = "SSAM-F", measures: Sequence[str] = ("eigenvalue", "trace"),
                      claims: Mapping[str, str] = CLAIMS) -> dict[str, Verdict]:
    """``{"<method> vs <reference>: <measure>": verdict}`` for each reference of ``claims`` (reference
    method -> declared claim) and each measure, with the seeds both methods have, paired."""
    verdicts = {}
    for reference, claim in claims.items():
        for measure in measures:
            mine, theirs = _per_seed(frame, method, measure), _per_seed(frame, reference, measure)
            seeds = sorted(set(mine.index) & set(theirs.index))
            a, b = mine.loc[seeds].to_numpy(dtype=float), theirs.loc[seeds].to_numpy(dtype=float)
            name = f"{method} vs {reference}: {MEASURE_NAMES.get(measure, measure)}"
            verdicts[name] = decide(claim, np.asarray(a), np.asarray(b))
    return verdicts
