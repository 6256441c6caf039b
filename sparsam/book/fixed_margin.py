"""The label-noise study's declared rules (``results/noise_study/noise_study.yaml``, ``selection``), as pure
functions of its pilot: eligibility and the fixed-margin method's M1 and M2, the seeds that give the premise and
the half-gain contrast their power, the cheapest candidate, SAM-ON's radius and the matched density.

The fixed-margin method of non-inferiority trials: M1 is the effect of the reference (SAM) over the baseline
(SGD) that the pilot guarantees, the lower end of its 95% interval; M2 = M1 / 2 is the most a method may lose
against the reference and still keep half of that effect. Each function is the rule as the file states it, so
that the registration applies exactly what was declared before the pilot ran.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Mapping, Sequence

from .stats import Verdict, compare, power

HALF_GAIN_SD_FACTOR = math.sqrt(0.75)  # SD of SSAM - SAM/2 - SGD/2 over that of a paired difference


@dataclass(frozen=True)
class CandidatePlan:
    """What the rules read from one candidate's pilot and what they make of it."""

    name: str
    verdict: Verdict          # SAM against SGD (superiority, paired final test accuracy in pp)
    paired_sd: float          # SD (pp) of the paired SAM - SGD differences
    seeds: int                # n of :func:`seeds_for_both`
    power_premise: float
    power_half_gain: float
    cpu_seconds: float        # the study's CPU time at ``seeds`` (:func:`study_cpu_seconds`)

    @property
    def eligible(self) -> bool:
        """SAM beats SGD in the pilot, so M1 (the interval's lower end) is above 0."""
        return self.verdict.status == "reproduced" and self.verdict.low > 0

    @property
    def powered(self) -> bool:
        return min(self.power_premise, self.power_half_gain) >= 0.8


def round_down(value: float, step: float = 0.01) -> float:
    """``value`` rounded down to a multiple of ``step`` (the margins are written to 0.01 pp)."""
    return math.floor(value / step + 1e-9) * step


def fixed_margins(verdict: Verdict) -> tuple[float, float]:
    """M1 = the lower 95% bound of SAM - SGD (rounded down to 0.01 pp) and M2 = M1 / 2 (rounded down);
    ``ValueError`` where SAM does not beat SGD (no effect to keep, no margin)."""
    if verdict.status != "reproduced" or not verdict.low > 0:
        raise ValueError(f"the fixed-margin rule needs SAM shown better than SGD in the pilot, got {verdict.status} "
                         f"with lower bound {verdict.low:.3f} pp")
    m1 = round_down(verdict.low)
    return m1, round_down(m1 / 2)


def seeds_for_both(gain: float, sd: float, comparisons: int, *, least: int = 5, most: int = 10,
                   target: float = 0.8) -> tuple[int, float, float]:
    """The fewest seeds in ``[least, most]`` giving power ``target`` at once to the premise (true gain ``gain``,
    SD ``sd``) and to the half-gain contrast (true value ``gain / 2``, SD ``sd * sqrt(0.75)``), each one-sided at
    ``0.025 / comparisons``; ``most`` where none does. Returns n and the two powers at n."""
    alpha = 0.025 / comparisons

    def powers(n: int) -> tuple[float, float]:
        return (power(n, gain, sd, alpha=alpha), power(n, gain / 2, sd * HALF_GAIN_SD_FACTOR, alpha=alpha))

    for n in range(least, most + 1):
        if min(powers(n)) >= target:
            return (n, *powers(n))
    return (most, *powers(most))


def study_cpu_seconds(seeds: int, sgd_run: float, sam_run: float, optimizers: Sequence[str]) -> float:
    """CPU seconds of the study: ``seeds`` times a run of each planned configuration, SGD's for ``sgd`` and SAM's
    (two passes a step) for every other optimizer."""
    return seeds * sum(sgd_run if name == "sgd" else sam_run for name in optimizers)


def plan(name: str, sgd: Sequence[float], sam: Sequence[float], sgd_run: float, sam_run: float,
         optimizers: Sequence[str], comparisons: int, *, least: int = 5, most: int = 10) -> CandidatePlan:
    """One candidate's plan from its pilot: final test accuracies (pp, paired by seed) and mean CPU seconds of a
    run of SGD and of SAM."""
    verdict = compare(sam, sgd, test="superiority")
    diffs = [a - b for a, b in zip(sam, sgd)]
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    n, p_premise, p_half = (seeds_for_both(mean, sd, comparisons, least=least, most=most) if mean > 0
                            else (most, 0.0, 0.0))
    return CandidatePlan(name, verdict, sd, n, p_premise, p_half,
                         study_cpu_seconds(n, sgd_run, sam_run, optimizers))


def choose_cheapest(plans: Sequence[CandidatePlan]) -> tuple[CandidatePlan | None, str]:
    """The declared regime rule: among the eligible candidates, those reaching 0.8 power within the seed cap
    first, the least CPU time among them; among the others the larger power at the cap; a tie goes to the
    earlier candidate. ``None`` when no candidate is eligible (the study ends at its pilot)."""
    eligible = [p for p in plans if p.eligible]
    if not eligible:
        states = ", ".join(f"{p.name}: {p.verdict.status}" for p in plans)
        return None, f"SAM beats SGD in no candidate's pilot ({states}): no margin can be derived, nothing registered"
    powered = [p for p in eligible if p.powered]
    if powered:
        best = min(powered, key=lambda p: p.cpu_seconds)  # min keeps the earliest of equal costs
        return best, (f"{best.name}: eligible, 0.8 power with {best.seeds} seeds, the least CPU time "
                      f"({best.cpu_seconds / 3600:.1f} CPU-hours)")
    best = max(eligible, key=lambda p: min(p.power_premise, p.power_half_gain))
    return best, (f"{best.name}: eligible, the larger power at {best.seeds} seeds "
                  f"({min(best.power_premise, best.power_half_gain):.2f}); no candidate reaches 0.8")


def sam_on_radius(gains: Mapping[float, float]) -> float:
    """SAM-ON's radius: the one with the larger mean paired gain over SGD; a tie goes to the smaller radius."""
    if not gains:
        raise ValueError("sam_on_radius needs the mean gain of at least one radius")
    return min(gains, key=lambda rho: (-gains[rho], rho))


def matched_sparsity(kept: int, total: int) -> float:
    """The sparsity whose unstructured mask keeps exactly ``kept`` of ``total`` entries: ``1 - (kept + 0.5) /
    total`` (the mask keeps ``int((1 - s) * total)``; the half avoids rounding down to ``kept - 1``)."""
    if not 0 < kept < total:
        raise ValueError(f"kept must be in (0, total={total}), got {kept}")
    return 1.0 - (kept + 0.5) / total
