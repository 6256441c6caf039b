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

Each verdict also carries the one-sided p-value of its claim against the margin (``p_value``: the
t-test of "gain ≤ −δ" against "gain > −δ"; the rule above reads "reproduced" exactly when it is below
(1 − level)/2 and "not reproduced" when 1 − p is). :func:`family` reads a pre-registered family of
comparisons together: Holm's step-down at family-wise error 1 − level (5%), the simultaneous
(Bonferroni) interval at level 1 − (1 − level)/m, and the premise rule (a non-inferiority verdict
against a reference stands only when the reference is shown better than the baseline in the same
family). :func:`power`, :func:`seeds_for_power` and :func:`detectable_difference` plan the seeds
(:func:`detectable_differences`: the detectable difference of several paired SDs against the number of seeds).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .._checks import check_choice, check_int, check_range
from ..experiment import yaml_text
from .intervals import interval_text, number_text
from .layout import MARGINS, book_root

TESTS = ("superiority", "non-inferiority")
BETTER = ("higher", "lower")
STATUSES = ("reproduced", "not reproduced", "inconclusive")
PREMISE_NOT_SHOWN = "inconclusive (premise not shown)"
# A family-wise status is one of STATUSES, the premise rule's, or "" for a verdict read in no family.
FAMILY_STATUSES = (*STATUSES, PREMISE_NOT_SHOWN)
UNITS = ("pp", "ratio", "slope")
# The two readings of a status, and the words that name each in a header (a column, a legend), defined once here:
# each comparison by its own rule alone ("status": unadjusted), or as one family (:func:`family`: "family_status",
# Holm's step-down with the premise rule). A column, a legend or a glued status shows one reading and names it.
PER_COMPARISON, FAMILY_WISE = "per comparison", "family-wise"
READINGS = (PER_COMPARISON, FAMILY_WISE)
READING_WORDS = {PER_COMPARISON: "per comparison, unadjusted", FAMILY_WISE: "family-wise, Holm"}
READING_COLUMNS = {PER_COMPARISON: "status", FAMILY_WISE: "family_status"}  # a verdicts frame's column of each
# What a claim compares per seed: the difference a - b, or a's share of b's gain over a baseline (half_gain).
CONTRASTS = ("difference", "half-gain")


@dataclass(frozen=True)
class Verdict:
    """Outcome of :func:`compare`: the status, the mean paired difference ``a - b`` and its interval.

    ``low`` and ``high`` are NaN when there are fewer than two pairs. ``unit`` is only for
    :meth:`text`: with ``"ratio"`` the differences are of logarithms and are shown as ratios.
    ``p_value`` is the one-sided p-value of the claim against its margin (NaN with fewer than two
    pairs). The ``family_*`` and ``sim_*`` fields are set by :func:`family` (empty / NaN / 0 until a
    family is read): the family-wise status, the family's number of comparisons ``m`` and the
    simultaneous interval at level ``1 - (1 - level) / m``.
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
    p_value: float = math.nan
    family_status: str = ""
    family_size: int = 0
    sim_low: float = math.nan
    sim_high: float = math.nan

    def text(self) -> str:
        """One line, e.g. ``"+1.2 [+0.4, +2.1] pp, n = 5: reproduced"``: the difference and its interval to the
        interval's precision (:func:`sparsam.book.intervals.precision`; ratios as ``×``, shown in ratio space);
        without an interval the difference at 2 decimals, a ratio at 3."""
        if self.n == 0:
            return f"no paired runs: {self.status}"
        ratio = self.unit == "ratio"
        point, low, high = ((math.exp(self.diff), math.exp(self.low), math.exp(self.high)) if ratio
                            else (self.diff, self.low, self.high))
        options = {"prefix": "×"} if ratio else {"sign": True}
        unit = f" {self.unit}" if self.unit and not ratio else ""
        if self.n < 2:
            shown = number_text(point, 3 if ratio else 2, **options)
            return f"{shown}{unit} (no interval), n = {self.n}: {self.status}"
        shown = interval_text(point, low, high, 3 if ratio else 2, **options)
        return f"{shown}{unit}, n = {self.n}: {self.status}"

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
    p_value = _one_sided_p(sign * (a - b), margin)
    gain_low, gain_high = sorted((sign * low, sign * high))
    if a.size < min_n:
        status = "inconclusive"
    elif gain_low > -margin:
        status = "reproduced"
    elif gain_high < -margin or gain_high == gain_low == -margin:  # the second: an exact tie, no spread
        status = "not reproduced"
    else:
        status = "inconclusive"
    return Verdict(status, diff, low, high, int(a.size), test, float(margin), float(level), better,
                   p_value=p_value)


def _one_sided_p(gain: np.ndarray, margin: float) -> float:
    """p-value of the t-test of "mean gain ≤ −margin" against "mean gain > −margin" (NaN below two pairs).

    Without spread (every gain the same) the data decide exactly: 0 above the threshold, 1 at or below it.
    """
    if gain.size < 2:
        return math.nan
    distance = float(gain.mean()) + margin
    se = float(gain.std(ddof=1)) / math.sqrt(gain.size)
    if se == 0:
        return 0.0 if distance > 0 else 1.0
    return float(stats.t.sf(distance / se, gain.size - 1))


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
    # The examples' counts enter only through each seed's summed difference, so examples that differ alike on every
    # seed (one column pattern) are drawn as one category: the counts of a pattern's examples in a multinomial
    # resample of the m examples sum to a multinomial count with that pattern's share, the same distribution as
    # drawing the m examples one by one, at the cost of a few distinct patterns (at most 3^seeds) instead of m.
    patterns, sizes = np.unique(diffs, axis=1, return_counts=True)   # seeds × patterns, examples per pattern
    rng = np.random.default_rng(seed)
    seed_counts = rng.multinomial(k, np.full(k, 1 / k), size=resamples)
    pattern_counts = rng.multinomial(m, sizes / m, size=resamples).astype(np.float64)  # resamples × patterns
    estimates = ((pattern_counts @ patterns.T) * seed_counts).sum(axis=1) / (k * m)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return 100 * float(diffs.mean()), 100 * float(low), 100 * float(high)


def combine(statuses: Sequence[str]) -> str:
    """The status of a claim that needs several comparisons: "not reproduced" if any is, "reproduced"
    if all are (and there is at least one), "inconclusive" otherwise (also when the premise of one is
    not shown)."""
    for status in statuses:
        check_choice("status", status, FAMILY_STATUSES)
    if "not reproduced" in statuses:
        return "not reproduced"
    return "reproduced" if statuses and set(statuses) == {"reproduced"} else "inconclusive"


Margins = Mapping[str, Mapping[str, Any]]  # claim -> its declared rule, as margins() gives them


def reading_header(name: str, reading: str) -> str:
    """A header that names the reading of what it heads: "quick profile (family-wise, Holm)", "status (per
    comparison, unadjusted)" (:data:`READING_WORDS`)."""
    check_choice("reading", reading, READINGS)
    return f"{name} ({READING_WORDS[reading]})"


def margins(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The declared claims of ``path`` (default: the book's ``book/margins.yaml``): name -> ``margin, unit, test,
    better, level, min_n, reason``, as :func:`declared_claims` reads them."""
    path = book_root() / MARGINS if path is None else Path(path)
    return declared_claims(yaml_text.read(path), str(path))


def declared_claims(content: Mapping[str, Any], source: str = "the margins") -> dict[str, dict[str, Any]]:
    """The claims of a parsed margins file (``defaults`` and ``claims``), checked; ``source`` names it in errors.

    Every claim takes ``level`` and ``min_n`` from the file's ``defaults`` unless it sets its own. A
    non-inferiority claim may name a ``premise``: the superiority claim that must be reproduced in the
    same family for its "reproduced" to stand (:func:`family`); ``contrast`` says what is compared per
    seed: ``"difference"`` (default) or ``"half-gain"`` (:func:`half_gain`).
    """
    defaults = content.get("defaults", {})
    claims: dict[str, dict[str, Any]] = {}
    for name, entry in content["claims"].items():
        claim = {"better": "higher", "contrast": "difference", **defaults, **entry}
        missing = sorted({"margin", "unit", "test", "reason", "level", "min_n"} - set(claim))
        if missing:
            raise ValueError(f"claim {name!r} in {source} lacks {missing}")
        check_choice(f"{name}.test", claim["test"], TESTS)
        check_choice(f"{name}.unit", claim["unit"], UNITS)
        check_choice(f"{name}.better", claim["better"], BETTER)
        check_choice(f"{name}.contrast", claim["contrast"], CONTRASTS)
        if claim["contrast"] == "half-gain" and (claim["unit"], claim["test"]) != ("pp", "superiority"):
            raise ValueError(f"claim {name!r}: a half-gain contrast is a superiority test in pp, got "
                             f"{claim['test']} in {claim['unit']}")
        low = 1.0 if claim["unit"] == "ratio" else 0.0
        check_range(f"{name}.margin", float(claim["margin"]), low)
        if claim["test"] == "superiority" and float(claim["margin"]) != low:
            raise ValueError(f"claim {name!r}: a superiority test has no margin (margin {low:g} in {claim['unit']})")
        claims[name] = claim
    for name, claim in claims.items():
        premise = claim.get("premise")
        if premise is None:
            continue
        if claim["test"] != "non-inferiority":
            raise ValueError(f"claim {name!r}: only a non-inferiority claim has a premise, got test {claim['test']!r}")
        check_choice(f"{name}.premise", premise, [c for c, spec in claims.items() if spec["test"] == "superiority"])
    return claims


def verdicts_frame(verdicts: Mapping[str, Verdict]) -> pd.DataFrame:
    """One row per claim (``claim``, the fields of :class:`Verdict` and its ``text``), in the given order:
    the input of :func:`sparsam.book.figures.claims.claims_figure` and of the claims table."""
    rows = [{"claim": name, **verdict.as_dict(), "text": verdict.text()} for name, verdict in verdicts.items()]
    columns = ["claim", *(f.name for f in dataclasses.fields(Verdict)), "text"]
    return pd.DataFrame(rows, columns=columns)


def half_gain(method: Sequence[float], reference: Sequence[float], baseline: Sequence[float]
              ) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed values ``(a, b)`` whose difference is the contrast "``method`` keeps at least half of
    ``reference``'s gain over ``baseline``": ``a - b = (method - baseline) - (reference - baseline) / 2``,
    i.e. ``a = method`` and ``b = (reference + baseline) / 2``; :func:`compare` (superiority over 0)
    decides it like any other paired difference. The three are paired by position (seed)."""
    x, r, z = (_finite_vector(name, v) for name, v in (("method", method), ("reference", reference),
                                                        ("baseline", baseline)))
    if not x.size == r.size == z.size:
        raise ValueError(f"method, reference and baseline must pair one value per seed, got {x.size}, {r.size} "
                         f"and {z.size} values")
    return x, (r + z) / 2


def decide(claim: str, a: Sequence[float], b: Sequence[float], *, declared: Margins | None = None) -> Verdict:
    """:func:`compare` with the margin, test, direction, level and ``min_n`` of ``claim`` in the ``declared``
    claims (default: the book's, :func:`margins`).

    For a claim in unit ``"ratio"`` the values must be positive; their logarithms are compared, with
    the margin ``log(ratio)``, and :meth:`Verdict.text` shows ratios.
    """
    declared = margins() if declared is None else declared
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


def holm(p_values: Sequence[float], alpha: float = 0.05) -> np.ndarray:
    """Holm's step-down: which of the hypotheses with ``p_values`` are rejected at family-wise error
    ``alpha`` (``statsmodels.stats.multitest.multipletests``, method "holm"). A NaN p-value (no test)
    is never rejected and still counts in the family's size."""
    from statsmodels.stats.multitest import multipletests

    check_range("alpha", alpha, 0.0, 1.0, low_open=True)
    p = np.asarray(p_values, dtype=float).reshape(-1)
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"p_values must lie in [0, 1] (or be NaN), got {p.tolist()}")
    if p.size == 0:
        return np.zeros(0, dtype=bool)
    missing = np.isnan(p)
    return multipletests(np.where(missing, 1.0, p), alpha=alpha, method="holm")[0] & ~missing


def simultaneous_interval(verdict: Verdict, m: int) -> tuple[float, float]:
    """The interval of ``verdict``'s mean difference at level ``1 - (1 - level) / m`` (Bonferroni over a
    family of ``m`` comparisons), from its t-interval: the same standard error, a wider quantile."""
    check_int("m", m, 1)
    if verdict.n < 2 or not math.isfinite(verdict.low):
        return math.nan, math.nan
    df = verdict.n - 1
    half = (verdict.high - verdict.low) / 2
    wider = half * float(stats.t.ppf(1 - (1 - verdict.level) / (2 * m), df) / stats.t.ppf((1 + verdict.level) / 2, df))
    return verdict.diff - wider, verdict.diff + wider


def family(verdicts: Mapping[Hashable, Verdict], premises: Mapping[Hashable, Hashable | None] | None = None
           ) -> dict[Hashable, Verdict]:
    """Read ``verdicts`` as one pre-registered family of ``m`` comparisons; each keeps its registered
    ``status`` and gains ``family_status``, ``family_size`` and the simultaneous interval.

    Family-wise error ``1 - level`` (all verdicts must share ``level``), by Holm's step-down on the
    two-sided p-values ``2 min(p, 1 - p)`` of the one-sided ``p_value``: each direction of a claim is
    tested at half the error, as the registered two-sided interval does, so a family of one reads
    exactly as the registered rule and a family-wise decision is always a registered one (a verdict
    the registered rule leaves inconclusive, fewer than ``min_n`` pairs included, is never decided).

    ``premises`` maps the name of a non-inferiority verdict to the name of its premise in the family
    (None: the family has none): a family-wise "reproduced" stands only when the premise's family-wise
    status is "reproduced", else it reads :data:`PREMISE_NOT_SHOWN`. A "not reproduced" needs no premise.
    """
    premises = dict(premises or {})
    for name, premise in premises.items():
        check_choice("premises key", name, tuple(verdicts))
        if premise is not None:
            check_choice(f"premise of {name!r}", premise, tuple(verdicts))
    levels = {v.level for v in verdicts.values()}
    if len(levels) > 1:
        raise ValueError(f"a family's verdicts must share one level, got {sorted(levels)}")
    if not verdicts:
        return {}
    level = levels.pop()
    m = len(verdicts)
    tested = [2 * min(v.p_value, 1 - v.p_value) if v.status != "inconclusive" else math.nan
              for v in verdicts.values()]
    rejected = dict(zip(verdicts, holm(tested, 1 - level)))
    read = {name: v.status if rejected[name] else "inconclusive" for name, v in verdicts.items()}
    out = {}
    for name, verdict in verdicts.items():
        status = read[name]
        if name in premises and status == "reproduced":
            premise = premises[name]
            if premise is None or read[premise] != "reproduced":
                status = PREMISE_NOT_SHOWN
        low, high = simultaneous_interval(verdict, m)
        out[name] = dataclasses.replace(verdict, family_status=status, family_size=m, sim_low=low, sim_high=high)
    return out


def power(n: int, distance: float, sd: float, *, alpha: float = 0.025) -> float:
    """Probability that the one-sided paired t-test at level ``alpha`` over ``n`` seeds decides a claim whose
    true mean gain lies ``distance`` beyond its threshold (gain + margin; 0 at the margin), when the
    paired differences have standard deviation ``sd``: noncentral t with ``n - 1`` degrees of freedom.

    ``alpha = 0.025`` is the registered rule's (a two-sided 95% interval); a family of ``m`` planned
    with Bonferroni uses ``0.025 / m``.
    """
    check_int("n", n, 2)
    check_range("sd", sd, 0.0, math.inf, low_open=True)
    check_range("alpha", alpha, 0.0, 0.5, low_open=True)
    if not math.isfinite(distance):
        raise ValueError(f"distance must be a finite number, got {distance!r}")
    df = n - 1
    return float(stats.nct.sf(stats.t.ppf(1 - alpha, df), df, distance * math.sqrt(n) / sd))


def seeds_for_power(distance: float, sd: float, *, target: float = 0.8, alpha: float = 0.025, min_n: int = 2,
                    max_n: int = 10_000) -> int:
    """The fewest seeds (at least ``min_n``) whose :func:`power` reaches ``target`` for a true gain
    ``distance`` beyond the threshold; ``ValueError`` if not even ``max_n`` do."""
    check_range("target", target, alpha, 1.0, low_open=True)
    check_int("min_n", min_n, 2)
    check_range("distance", distance, 0.0, math.inf, low_open=True)
    n = min_n
    while power(n, distance, sd, alpha=alpha) < target:
        n += 1
        if n > max_n:
            raise ValueError(f"more than max_n={max_n} seeds are needed for power {target:g} at distance "
                             f"{distance:g} with sd {sd:g}")
    return n


def detectable_difference(n: int, sd: float, *, target: float = 0.8, alpha: float = 0.025) -> float:
    """The distance beyond the threshold (gain + margin) that ``n`` seeds decide with probability
    ``target``: the inverse of :func:`power` in ``distance``."""
    from scipy.optimize import brentq

    check_range("target", target, alpha, 1.0, low_open=True)
    power(n, 0.0, sd, alpha=alpha)  # checks n, sd and alpha
    high = sd
    while power(n, high, sd, alpha=alpha) < target:
        high *= 2
    return float(brentq(lambda d: power(n, d, sd, alpha=alpha) - target, 0.0, high, xtol=1e-12 * sd))


def detectable_differences(sds: Mapping[str, float], *, margin: float, seeds: int, target: float = 0.8,
                           alpha: float = 0.025, max_seeds: int | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """The :func:`detectable_difference` (pp) against the number of seeds, one column per paired SD of ``sds``
    (label -> SD in pp), indexed by the seeds from 2 to ``max_seeds`` (default: a little beyond the largest number
    needed, and beyond ``seeds``, the study's); and, per label, the seeds that decide a method equal to its reference
    non-inferior at ``margin`` with power ``target`` (:func:`seeds_for_power`; a one-sided paired t-test at ``alpha``).
    The input of :func:`sparsam.book.figures.claims.detectable_difference_figure`."""
    if not sds:
        raise ValueError("sds must name at least one paired SD")
    for name, sd in sds.items():
        if not (isinstance(sd, (int, float)) and np.isfinite(sd) and sd > 0):
            raise ValueError(f"sds[{name!r}] must be a positive finite SD in pp, got {sd!r}")
    if not (isinstance(margin, (int, float)) and np.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be a positive number of pp, got {margin!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise ValueError(f"seeds must be an integer >= 2, got {seeds!r}")
    needed = {name: seeds_for_power(margin, sd, target=target, alpha=alpha) for name, sd in sds.items()}
    top = max_seeds if max_seeds is not None else int(max(max(needed.values()), seeds) * 1.25) + 2
    if isinstance(top, bool) or not isinstance(top, int) or top < max(seeds, 2) + 1:
        raise ValueError(f"max_seeds must be an integer above seeds={seeds}, got {max_seeds!r}")
    n = np.arange(2, top + 1)
    curves = pd.DataFrame({name: [detectable_difference(int(k), float(sd), target=target, alpha=alpha) for k in n]
                           for name, sd in sds.items()}, index=pd.Index(n, name="seeds"))
    return curves, needed
