r"""The rule that decides whether a run converges at the rate of the SSAM theorem.

The theorem bounds the running mean :math:`R_T = \frac{1}{T}\sum_{t\le T}\mathbb{E}\|\nabla f(w_t)\|^2`
by :math:`C\log T/\sqrt{T}` when :math:`\eta_t` and :math:`\rho_t` decay as :math:`1/\sqrt{t}`. A slope
threshold alone cannot decide that: :math:`\log T/\sqrt{T}` itself has a local log-log slope of about
:math:`-0.35` on :math:`[200, 2000]`, not :math:`-1/2`; and a running mean can fall steeply while the
iterates sit on a constant floor, because the early, large gradients leave it as :math:`1/T`. So the
rule asks two things of every run, each measured per seed on the tail window
:math:`t \in [T/10, T]` (log-log least squares on the means of 12 logarithmic bins, :func:`tail_slope`):

1. **rate**: the slope of the running mean :math:`R_T` is at most the bound's local slope over the
   same window (:func:`bound_local_slope`, the same fit applied to :math:`\log t/\sqrt{t}`) plus a
   tolerance of 0.1 (over one decade, 0.1 in slope is a factor of 1.26);
2. **the iterates keep decreasing**: the slope of the per-iterate :math:`\|\nabla f(w_t)\|^2` is
   below :math:`-0.25`. With :math:`\eta_t \propto 1/\sqrt{t}` the gradient noise sets a level that
   falls as :math:`t^{-1/2}`; a floor that does not move has slope 0; :math:`-0.25` lies halfway.

With at least ``min_n`` = 3 seeds, each condition is judged by the 95% t-interval over seeds of the
per-seed slopes: **converging** when both intervals lie wholly on the passing side of their
thresholds, **not converging** when either lies wholly on the failing side, otherwise
**inconclusive**; fewer seeds are always inconclusive. The negative control (constant :math:`\rho`
and constant step size, for which the bound does not go to zero) and a sequence with a constant
floor must read "not converging"; ``tests/test_analysis.py`` checks both. :func:`running_mean_interval` gives
the running mean over seeds that chapter 1's figure draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .._checks import check_int, check_range
from ..experiment.robust_regression import running_mean
from .stats import mean_interval

START = 0.1            # the tail window is t in [START * T, T]
BINS = 12              # logarithmic bins of the window for the fits
TOLERANCE = 0.1        # the running mean may decay slower than the bound by this much in slope
ITERATE_SLOPE = -0.25  # the per-iterate slope must lie below this
STATUSES = ("converging", "not converging", "inconclusive")


def tail_window(steps: int, start: float = START) -> tuple[int, int]:
    """First and last iteration ``t`` of the tail window ``[start·T, T]`` (at least ``t = 2``)."""
    first = max(2, int(np.ceil(start * steps)))
    if steps - first + 1 < 2 * BINS:
        raise ValueError(f"the tail window [{first}, {steps}] is too short for a slope: needs at least {2 * BINS} "
                         "iterations (raise steps or lower start)")
    return first, steps


def tail_slope(values: np.ndarray, start: float = START) -> float:
    """Log-log slope of ``values[t - 1]`` (t = 1..T) over the tail window ``[start·T, T]``.

    The window is cut into :data:`BINS` logarithmic bins; the least-squares line is fitted to the log
    of each bin's mean against the log of its geometric centre.
    """
    check_range("start", start, 0.0, 1.0, low_open=True)
    y = np.asarray(values, dtype=float).reshape(-1)
    if not np.all(np.isfinite(y)) or np.any(y < 0):
        raise ValueError("values must be finite and non-negative")
    first, last = tail_window(y.size, start)
    edges = np.unique(np.round(np.geomspace(first, last + 1, BINS + 1)).astype(int))
    centres = np.sqrt(edges[:-1] * (edges[1:] - 1))
    means = np.array([y[lo - 1:hi - 1].mean() for lo, hi in zip(edges[:-1], edges[1:])])
    logs = np.log(np.maximum(means, np.finfo(float).tiny))
    return float(np.polyfit(np.log(centres), logs, 1)[0])


def bound_local_slope(steps: int, start: float = START) -> float:
    """The slope :func:`tail_slope` measures on the bound's shape ``log t / √t`` (t = 1..steps)."""
    check_int("steps", steps, 3)
    t = np.arange(1, steps + 1, dtype=float)
    return tail_slope(np.log(t) / np.sqrt(t), start)


@dataclass(frozen=True)
class RateCheck:
    """Outcome of :func:`assess`: the status and the per-seed slopes with their intervals over seeds.

    ``rate_excess`` is (mean, low, high) of running-mean slope minus ``bound_slope``; ``iterate`` is
    (mean, low, high) of the per-iterate slope; intervals are NaN for one seed.
    """

    status: str
    running_slopes: tuple[float, ...]
    iterate_slopes: tuple[float, ...]
    bound_slope: float
    rate_excess: tuple[float, float, float]
    iterate: tuple[float, float, float]
    n: int


def _as_runs(grad_sq: np.ndarray) -> np.ndarray:
    runs = np.asarray(grad_sq, dtype=float)
    if runs.ndim == 1:
        runs = runs[None, :]
    if runs.ndim != 2 or runs.shape[0] == 0:
        raise ValueError(f"grad_sq must be (seeds, steps) or (steps,), got shape {np.shape(grad_sq)}")
    if not np.all(np.isfinite(runs)) or np.any(runs < 0):
        raise ValueError("grad_sq must hold finite, non-negative squared gradient norms")
    return runs


def running_mean_interval(grad_sq: np.ndarray, at: Sequence[int] | None = None, level: float = 0.95
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The running mean ``R_T`` of each seed's ``grad_sq[seed, t - 1]`` = ‖∇f(w_t)‖² at the steps ``T`` of ``at``
    (default: every step): its mean over seeds and the bounds of its t-interval at ``level`` over seeds
    (:func:`sparsam.book.stats.mean_interval`; NaN for one seed), one value per step of ``at``."""
    runs = _as_runs(grad_sq)
    running = np.cumsum(runs, axis=1) / np.arange(1, runs.shape[1] + 1)
    steps = np.arange(1, runs.shape[1] + 1) if at is None else np.asarray(at, dtype=int)
    if steps.ndim != 1 or np.any(steps < 1) or np.any(steps > runs.shape[1]):
        raise ValueError(f"at must hold steps between 1 and {runs.shape[1]}, got {np.asarray(at).tolist()}")
    summary = np.array([mean_interval(running[:, t - 1], level) for t in steps]).reshape(-1, 3)
    return summary[:, 0], summary[:, 1], summary[:, 2]


def assess(grad_sq: np.ndarray, *, start: float = START, tolerance: float = TOLERANCE,
           iterate_slope: float = ITERATE_SLOPE, min_n: int = 3, level: float = 0.95) -> RateCheck:
    """Apply the rule of this module to ``grad_sq[seed, t - 1]`` = ‖∇f(w_t)‖² of each seed's run."""
    check_int("min_n", min_n, 2)
    check_range("tolerance", tolerance, 0.0, math.inf)
    check_range("iterate_slope", iterate_slope, -math.inf, 0.0, low_open=True)
    runs = _as_runs(grad_sq)
    steps = runs.shape[1]
    bound = bound_local_slope(steps, start)
    running = [tail_slope(running_mean(run), start) for run in runs]
    iterate = [tail_slope(run, start) for run in runs]
    excess = mean_interval(np.array(running) - bound, level)
    level_slope = mean_interval(iterate, level)
    if len(runs) < min_n:
        status = "inconclusive"
    elif excess[1] > tolerance or level_slope[1] > iterate_slope:
        status = "not converging"
    elif excess[2] <= tolerance and level_slope[2] < iterate_slope:
        status = "converging"
    else:
        status = "inconclusive"
    return RateCheck(status, tuple(running), tuple(iterate), bound, excess, level_slope, len(runs))


def classify(grad_sq: np.ndarray, **rule: float) -> str:
    """"converging", "not converging" or "inconclusive": the status of :func:`assess` (same keywords)."""
    return assess(grad_sq, **rule).status
