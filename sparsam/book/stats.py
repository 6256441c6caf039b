"""Claims decided by rules that can fail: paired t-intervals, margins declared in advance, a paired bootstrap.

A claim compares a method with a reference, seed by seed (the same seed gives both runs the same
initialisation, batches and test subset). With ``d_i = a_i - b_i`` for ``n`` seeds, :func:`compare`
takes the t-interval of the mean of ``d`` at ``level`` (``n - 1`` degrees of freedom) and decides:

- superiority: *reproduced* when the whole interval lies on the better side of 0, *not reproduced*
  when it lies wholly on the worse side;
- non-inferiority with margin δ ≥ 0: *reproduced* when the interval excludes "worse by δ or more",
  *not reproduced* when it lies wholly beyond that;
- otherwise *inconclusive*; so is any comparison with fewer than ``min_n`` seeds, whatever its values.

"Better" is higher by default (accuracy); ``better="lower"`` mirrors the rule (curvature, cost). The
margins, the level and ``min_n`` are declared once, before any study run, in ``book/margins.yaml``
with a reason each (:func:`margins`); :func:`decide` applies them to a named claim.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from .._checks import check_choice, check_int, check_range
from .profiles import book_root

MARGINS = Path("book/margins.yaml")  # relative to the book's root (sparsam.book.profiles.book_root)
TESTS = ("superiority", "non-inferiority")
BETTER = ("higher", "lower")
STATUSES = ("reproduced", "not reproduced", "inconclusive")
UNITS = ("pp", "ratio", "slope")


@dataclass(frozen=True)
class Verdict:
    """Outcome of :func:`compare`: the status, the mean paired difference ``a - b`` and its interval.

    ``low`` and ``high`` are NaN when there are fewer than two pairs. ``unit`` is only for
    :meth:`text`: with ``"ratio"`` the differences are of logarithms and are shown as ratios.
    """

    status: str
    diff: float
    low: float
    high: float
    n: int
    test: str
    margin: float
    level: float
    better: str = "higher"
    unit: str = ""

    def text(self) -> str:
        """One line, e.g. ``"+1.23 [0.40, 2.06] pp, n = 5: reproduced"``."""
        if self.n == 0:
            return f"no paired runs: {self.status}"
        if self.unit == "ratio":
            point = f"×{math.exp(self.diff):.3g}"
            interval = f" [{math.exp(self.low):.3g}, {math.exp(self.high):.3g}]" if self.n >= 2 else ""
        else:
            point = f"{self.diff:+.2f}"
            interval = f" [{self.low:.2f}, {self.high:.2f}]" if self.n >= 2 else ""
        unit = f" {self.unit}" if self.unit and self.unit != "ratio" else ""
        shown = f"{point}{interval}{unit}" if self.n >= 2 else f"{point}{unit} (no interval)"
        return f"{shown}, n = {self.n}: {self.status}"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _finite_vector(name: str, values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float).reshape(-1)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite numbers only, got {array.tolist()}")
    return array


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` and its two-sided t-interval at ``level`` (``n - 1`` degrees of freedom).

    With one value the interval is ``(nan, nan)``; with none the mean is NaN too.
    """
    check_range("level", level, 0.0, 1.0, low_open=True)
    x = _finite_vector("values", values)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def compare(a: Sequence[float], b: Sequence[float], *, margin: float = 0.0, test: str = "superiority",
            min_n: int = 3, level: float = 0.95, better: str = "higher") -> Verdict:
    """Decide "method ``a`` against reference ``b``" from per-seed values paired by position (seed).

    ``test="superiority"`` needs ``margin=0``. Unequal lengths or non-finite values raise ``ValueError``.
    An interval that is a single point (every paired difference the same, e.g. counted FLOPs) exactly
    at the threshold is decided, not inconclusive: a tie is not an improvement.
    """
    check_choice("test", test, TESTS)
    check_choice("better", better, BETTER)
    check_int("min_n", min_n, 2)
    check_range("margin", margin, 0.0, math.inf)
    if test == "superiority" and margin != 0:
        raise ValueError(f"margin applies to test='non-inferiority' only; superiority needs margin=0, got {margin!r}")
    a, b = _finite_vector("a", a), _finite_vector("b", b)
    if a.size != b.size:
        raise ValueError(f"a and b must pair one value per seed, got {a.size} and {b.size} values")
    diff, low, high = mean_interval(a - b, level)
    # in "gain" units (positive = a better), the rule reads the same for both directions
    sign = 1.0 if better == "higher" else -1.0
    gain_low, gain_high = sorted((sign * low, sign * high))
    if a.size < min_n:
        status = "inconclusive"
    elif gain_low > -margin:
        status = "reproduced"
    elif gain_high < -margin or gain_high == gain_low == -margin:  # the second: an exact tie, no spread
        status = "not reproduced"
    else:
        status = "inconclusive"
    return Verdict(status, diff, low, high, int(a.size), test, float(margin), float(level), better)


def paired_bootstrap(correct_a: Sequence[np.ndarray], correct_b: Sequence[np.ndarray], *, resamples: int = 2000,
                     level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Accuracy difference of a over b in percentage points, with a percentile bootstrap interval.

    ``correct_a[i]`` and ``correct_b[i]`` are the per-example correctness (booleans, test-set order)
    of the two runs with seed ``i``. Each resample draws seeds and test examples with replacement,
    independently (seeds and examples are crossed factors), and keeps each example's pairing.
    """
    check_int("resamples", resamples, 1)
    check_range("level", level, 0.0, 1.0, low_open=True)
    if len(correct_a) != len(correct_b) or not correct_a:
        raise ValueError(f"correct_a and correct_b must pair one array per seed, got {len(correct_a)} "
                         f"and {len(correct_b)} arrays")
    sizes = {np.asarray(x).size for x in (*correct_a, *correct_b)}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"every correctness array must have the same, non-zero length (one test set), got {sizes}")
    diffs = np.stack([np.asarray(x, dtype=np.float64).reshape(-1) - np.asarray(y, dtype=np.float64).reshape(-1)
                      for x, y in zip(correct_a, correct_b)])        # seeds × examples, values in {-1, 0, 1}
    k, m = diffs.shape
    rng = np.random.default_rng(seed)
    seed_counts = rng.multinomial(k, np.full(k, 1 / k), size=resamples)
    estimates = np.empty(resamples)
    for start in range(0, resamples, 256):  # example counts in chunks: 256 × m floats at a time
        stop = min(start + 256, resamples)
        example_counts = rng.multinomial(m, np.full(m, 1 / m), size=stop - start).astype(np.float64)
        per_seed = example_counts @ diffs.T                           # resamples × seeds: summed differences
        estimates[start:stop] = (per_seed * seed_counts[start:stop]).sum(axis=1) / (k * m)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return 100 * float(diffs.mean()), 100 * float(low), 100 * float(high)


def combine(statuses: Sequence[str]) -> str:
    """The status of a claim that needs several comparisons: "not reproduced" if any is, "reproduced"
    if all are (and there is at least one), "inconclusive" otherwise."""
    for status in statuses:
        check_choice("status", status, STATUSES)
    if "not reproduced" in statuses:
        return "not reproduced"
    return "reproduced" if statuses and set(statuses) == {"reproduced"} else "inconclusive"


def margins(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The declared claims of ``path`` (default: the book's ``book/margins.yaml``): name -> ``margin, unit, test,
    better, level, min_n, reason``.

    Every claim takes ``level`` and ``min_n`` from the file's ``defaults`` unless it sets its own.
    """
    path = book_root() / MARGINS if path is None else Path(path)
    content = yaml.safe_load(Path(path).read_text())
    defaults = content.get("defaults", {})
    claims = {}
    for name, entry in content["claims"].items():
        claim = {"better": "higher", **defaults, **entry}
        missing = sorted({"margin", "unit", "test", "reason", "level", "min_n"} - set(claim))
        if missing:
            raise ValueError(f"claim {name!r} in {path} lacks {missing}")
        check_choice(f"{name}.test", claim["test"], TESTS)
        check_choice(f"{name}.unit", claim["unit"], UNITS)
        check_choice(f"{name}.better", claim["better"], BETTER)
        low = 1.0 if claim["unit"] == "ratio" else 0.0
        check_range(f"{name}.margin", float(claim["margin"]), low)
        if claim["test"] == "superiority" and float(claim["margin"]) != low:
            raise ValueError(f"claim {name!r}: a superiority test has no margin (margin {low:g} in {claim['unit']})")
        claims[name] = claim
    return claims


def verdicts_frame(verdicts: Mapping[str, Verdict]) -> pd.DataFrame:
    """One row per claim (``claim``, the fields of :class:`Verdict` and its ``text``), in the given order:
    the input of :func:`sparsam.book.plots.claims_figure` and of the claims table."""
    rows = [{"claim": name, **verdict.as_dict(), "text": verdict.text()} for name, verdict in verdicts.items()]
    columns = ["claim", *(f.name for f in dataclasses.fields(Verdict)), "text"]
    return pd.DataFrame(rows, columns=columns)


def decide(claim: str, a: Sequence[float], b: Sequence[float], *, path: str | Path | None = None) -> Verdict:
    """:func:`compare` with the margin, test, direction, level and ``min_n`` declared for ``claim``.

    For a claim in unit ``"ratio"`` the values must be positive; their logarithms are compared, with
    the margin ``log(ratio)``, and :meth:`Verdict.text` shows ratios.
    """
    declared = margins(path)
    check_choice("claim", claim, tuple(declared))
    spec = declared[claim]
    margin = float(spec["margin"])
    if spec["unit"] == "ratio":
        a, b = _finite_vector("a", a), _finite_vector("b", b)
        if np.any(a <= 0) or np.any(b <= 0):
            raise ValueError(f"claim {claim!r} compares ratios: a and b must be positive")
        a, b, margin = np.log(a), np.log(b), math.log(margin)
    verdict = compare(a, b, margin=margin, test=spec["test"], min_n=int(spec["min_n"]), level=float(spec["level"]),
                      better=spec["better"])
    return dataclasses.replace(verdict, unit=spec["unit"])
