"""The label-noise study's pilot: its declared rules (``results/noise_study/noise_study.yaml``, ``selection``), as pure
functions of its pilot: eligibility and the fixed-margin method's M1 and M2, the seeds that give the premise and
the half-gain contrast their power, the cheapest candidate, SAM-ON's radius and the matched density; and
:func:`registration`, which reads the pilot's records and applies them, to the letter, to write what the
registration adds (a candidates file whose ``selection`` declares its rules in words, with no ``rules`` mapping,
is registered by these rules: :func:`sparsam.book.study.registering.register_command`); and what a reader of
the pilot sees: :func:`plans_frame` (the rules' reading per candidate, beside the cost read from the interleaved
benchmark, :func:`side_by_side_cpu_seconds`) and :func:`pilot_curves` (its runs' per-epoch metrics).

The fixed-margin method of non-inferiority trials: M1 is the effect of the reference (SAM) over the baseline
(SGD) that the pilot guarantees, the lower end of its 95% interval; M2 = M1 / 2 is the most a method may lose
against the reference and still keep half of that effect. Each function is the rule as the file states it, so
that the registration applies exactly what was declared before the pilot ran.
"""

from __future__ import annotations

import datetime
import math
import statistics
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Mapping, Sequence

import pandas as pd

from ..._layers import norm_parameters
from ...experiment.config import TrainConfig
from ...experiment.models import build_model
from .model import Candidates, pinned_rule
from .pilot import run_key
from ..records import metrics_frame
from ..stats import Verdict, compare, power
from ..tables import interval_text

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


# ---------------------------------------------------------------------------------------------------------------
# The rules applied to the pilot's records


def run_cpu_seconds(record: Mapping[str, Any]) -> float:
    """The process-CPU seconds of a run's training steps: per epoch, its CPU time per step times its steps."""
    return float(sum(m["cpu_seconds_per_step"] * m["steps"] for m in record["metrics"]))


def _runs(spec: Candidates, records: Sequence[Mapping[str, Any]], candidate: str,
          **fields: Any) -> dict[int, Mapping[str, Any]]:
    """The pilot's records of ``candidate`` with ``fields`` changed, by pilot seed (the seeds that have one)."""
    keyed = {run_key(TrainConfig.from_dict(r["summary"]["config"])): r for r in records}
    declared = TrainConfig(**spec.settings(candidate))
    found = {seed: keyed.get(run_key(declared.replace(**fields, seed=seed))) for seed in spec.pilot_seeds}
    return {seed: r for seed, r in found.items() if r is not None}


def _accuracy(runs: Mapping[int, Mapping[str, Any]], seeds: Sequence[int]) -> list[float]:
    return [100.0 * float(runs[s]["summary"]["final_test_acc"]) for s in seeds]


def candidate_plans(spec: Candidates, records: Sequence[Mapping[str, Any]]) -> dict[str, CandidatePlan]:
    """Per candidate with its whole SGD and SAM pilot (every pilot seed), its :func:`plan`: the planned
    configurations' optimizers and the number of planned comparisons from ``spec``, the mean CPU time of a run
    from the records. A candidate whose pilot is incomplete is left out."""
    optimizers = [c["optimizer"] for c in spec.configurations_planned.values()]
    seeds = list(spec.pilot_seeds)
    plans = {}
    for name in spec.candidates:
        sgd, sam = (_runs(spec, records, name, optimizer=o) for o in ("sgd", "sam"))
        if len(sgd) < len(seeds) or len(sam) < len(seeds):
            continue
        plans[name] = plan(name, _accuracy(sgd, seeds), _accuracy(sam, seeds),
                           statistics.mean(run_cpu_seconds(r) for r in sgd.values()),
                           statistics.mean(run_cpu_seconds(r) for r in sam.values()), optimizers,
                           len(spec.comparisons_planned))
    return plans


def sam_on_verdicts(spec: Candidates, records: Sequence[Mapping[str, Any]], candidate: str) -> dict[float, Verdict]:
    """SAM-ON against SGD at each declared radius on ``candidate`` (superiority of the paired final test accuracy,
    pp, the pilot's seeds: :func:`sparsam.book.stats.compare`); ``ValueError`` naming the grid to run where a
    radius lacks a pilot seed."""
    seeds = list(spec.pilot_seeds)
    sgd = _runs(spec, records, candidate, optimizer="sgd")
    verdicts = {}
    for rho in spec.pilot["sam_on"]["rhos"]:
        runs = _runs(spec, records, candidate, optimizer="sam-on", rho=float(rho))
        missing = sorted(set(seeds) - set(runs) | set(seeds) - set(sgd))
        if missing:
            grid = PurePosixPath(spec.pilot["grids"][candidate]).with_name(f"pilot_sam_on_{candidate}.yaml")
            raise ValueError(f"pilot: SAM-ON at rho {rho} on candidate {candidate} lacks seeds {missing}: train "
                             f"its radius pilot first ({grid})")
        verdicts[float(rho)] = compare(_accuracy(runs, seeds), _accuracy(sgd, seeds), test="superiority")
    return verdicts


def sam_on_gains(spec: Candidates, records: Sequence[Mapping[str, Any]], candidate: str) -> dict[float, float]:
    """SAM-ON's mean paired gain over SGD (final test accuracy, pp, the pilot's seeds) at each declared radius
    on ``candidate`` (the declared rule's reading of :func:`sam_on_verdicts`)."""
    return {rho: v.diff for rho, v in sam_on_verdicts(spec, records, candidate).items()}


def run_steps(record: Mapping[str, Any]) -> int:
    """The training steps of a run (the sum over its epochs)."""
    return int(sum(m["steps"] for m in record["metrics"]))


def side_by_side_cpu_seconds(spec: Candidates, plans: Mapping[str, CandidatePlan],
                             records: Sequence[Mapping[str, Any]], bench: Mapping[str, Any]) -> dict[str, float]:
    """The regime rule's cost with the CPU time per step of SGD and SAM measured side by side instead of the pilot
    runs' own: per candidate of ``plans``, its seeds times a run of each planned configuration (SGD's for ``sgd``,
    SAM's for every other, as :func:`study_cpu_seconds`), a run being the steps of its SGD pilot runs at the CPU
    time per step that ``bench`` (the record of ``benchmarks/bench_cpu_train.py``) measured for the candidate's
    width on the rung the pilot trained with (its ``fastest_faithful``), the widths interleaved in one process.
    The pilot's runs were timed in different sessions, each under its own load; this reading is not."""
    rung = bench["fastest_faithful"]
    per_step = {(row["regime"], row["optimizer"]): row["cpu_ms_per_step"] / 1000 for row in bench["throughput"]
                if row["rung"] == rung}
    optimizers = [c["optimizer"] for c in spec.configurations_planned.values()]
    out = {}
    for name, chosen in plans.items():
        regime = f"width {spec.settings(name)['width']}"
        if (regime, "SGD") not in per_step or (regime, "SAM") not in per_step:
            raise ValueError(f"bench: the record times no SGD and SAM at {regime} on rung {rung!r}")
        steps = statistics.mean(run_steps(r) for r in _runs(spec, records, name, optimizer="sgd").values())
        out[name] = study_cpu_seconds(chosen.seeds, steps * per_step[regime, "SGD"], steps * per_step[regime, "SAM"],
                                      optimizers)
    return out


def plans_frame(plans: Mapping[str, CandidatePlan], side_by_side: Mapping[str, float] | None = None) -> pd.DataFrame:
    """One row per candidate: SAM - SGD in its pilot (mean and 95% t-interval, pp), the paired SD, whether it is
    eligible, the seeds the rule gives it and the two powers at them, the study's CPU-hours by the registered rule
    (the pilot runs' CPU time) and, where given, from the interleaved benchmark (:func:`side_by_side_cpu_seconds`)."""
    rows = []
    for name, p in plans.items():
        v = p.verdict
        row = {"candidate": name, "SAM − SGD (pp)": interval_text(v.diff, v.low, v.high),
               "paired SD (pp)": round(p.paired_sd, 2), "eligible": p.eligible, "seeds": p.seeds,
               "power: SAM > SGD": round(p.power_premise, 3), "power: half-gain": round(p.power_half_gain, 3),
               "study CPU-hours (pilot runs: the registered rule)": round(p.cpu_seconds / 3600, 1)}
        if side_by_side is not None:
            row["study CPU-hours (interleaved benchmark)"] = round(side_by_side[name] / 3600, 1)
        rows.append(row)
    return pd.DataFrame(rows).set_index("candidate")


def pilot_curves(spec: Candidates, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The pilot's per-epoch metrics (:func:`sparsam.book.records.metrics_frame`) with a ``candidate`` column and
    a ``method`` column (SGD, SAM, and SAM-ON with its radius), the runs of each candidate's declared regime on
    the pilot seeds only."""
    frames = []
    for name in spec.candidates:
        for optimizer, rhos in (("sgd", [None]), ("sam", [None]), ("sam-on", spec.pilot.get("sam_on", {}).get("rhos", []))):
            for rho in rhos:
                fields = {"optimizer": optimizer, **({} if rho is None else {"rho": float(rho)})}
                runs = _runs(spec, records, name, **fields)
                if not runs:
                    continue
                method = {"sgd": "SGD", "sam": "SAM"}.get(optimizer) or f"SAM-ON ρ = {float(rho):g}"
                frames.append(metrics_frame(runs.values()).assign(candidate=name, method=method))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["candidate", "method", "epoch"])


def norm_share(regime: Mapping[str, Any], num_classes: int) -> tuple[int, int]:
    """The normalisation parameters' entries (SAM-ON's mask) and all entries of the regime's network."""
    net = build_model(regime["model"], num_classes, **({} if regime.get("width") is None else
                                                        {"width": regime["width"]}))
    return (sum(p.numel() for p in norm_parameters(net)), sum(p.numel() for p in net.parameters()))


def _resolve(values: Mapping[str, Any], rho: float, sparsity: float) -> dict[str, Any]:
    """A planned configuration with SAM-ON's radius (``rho: pilot``) and the matched density resolved."""
    out = dict(values)
    if out.get("rho") == "pilot":
        out["rho"] = rho
    if out.get("sparsity") == "sam-on density":
        out["sparsity"] = sparsity
    return out


def registration(spec: Candidates, records: Sequence[Mapping[str, Any]], declared: Mapping[str, Any], *,
                 store: str = "") -> dict[str, Any]:
    """What the registration adds to the candidates file ``spec``, from the pilot's ``records`` (whole records:
    their per-epoch CPU times count) by the declared rules, with the claims of ``declared`` (book/margins.yaml,
    :func:`sparsam.book.stats.margins`). ``ValueError`` where the pilot is incomplete, no candidate is eligible,
    or book/margins.yaml does not hold the margin M2 the rule derives."""
    for key in ("configurations_planned", "comparisons_planned", "seeds_planned", "selection", "pilot"):
        if not getattr(spec, key):
            raise ValueError(f"the candidates file must declare {key} before the pilot")
    plans = candidate_plans(spec, records)
    if len(plans) < len(spec.candidates):
        absent = [c for c in spec.candidates if c not in plans]
        raise ValueError(f"pilot: candidates {absent} lack SGD or SAM runs on some of the seeds "
                         f"{list(spec.pilot_seeds)}: train their pilot grids first")
    chosen, reason = choose_cheapest(list(plans.values()))
    if chosen is None:
        raise ValueError(reason)
    m1, m2 = fixed_margins(chosen.verdict)
    gains = sam_on_gains(spec, records, chosen.name)
    rho = sam_on_radius(gains)
    regime = spec.settings(chosen.name)
    sgd = _runs(spec, records, chosen.name, optimizer="sgd")
    kept, total = norm_share(regime, int(next(iter(sgd.values()))["summary"]["data"]["num_classes"]))
    sparsity = matched_sparsity(kept, total)
    comparisons = [dict(c) for c in spec.comparisons_planned]
    claims = list(dict.fromkeys(c["claim"] for c in comparisons))
    unknown = [c for c in claims if c not in declared]
    if unknown:
        raise ValueError(f"comparisons_planned: claims {unknown} are not declared in book/margins.yaml")
    for claim in (c for c in claims if declared[c]["test"] == "non-inferiority"):
        if not math.isclose(float(declared[claim]["margin"]), m2):
            raise ValueError(f"book/margins.yaml: {claim}.margin must be M2 = {m2:.2f} pp, the fixed-margin rule's "
                             f"(M1 = {m1:.2f} pp, the pilot's lower 95% bound of SAM - SGD on candidate "
                             f"{chosen.name}), got {declared[claim]['margin']}")
    first = declared[claims[0]]
    margins = {"level": first["level"], "min_n": first["min_n"],
               **{c: pinned_rule(declared[c], claims) for c in claims}}
    seeds = {k: list(range(chosen.seeds)) if v == "power" else [int(s) for s in v]
             for k, v in spec.seeds_planned.items()}
    configurations = {k: _resolve(v, rho, sparsity) for k, v in spec.configurations_planned.items()}

    def summary(p: CandidatePlan) -> dict[str, Any]:
        v = p.verdict
        return {"sam_minus_sgd_pp": round(v.diff, 3), "interval_pp": [round(v.low, 3), round(v.high, 3)],
                "status": v.status, "paired_sd_pp": round(p.paired_sd, 3), "seeds_for_power": p.seeds,
                "power_premise": round(p.power_premise, 3), "power_half_gain": round(p.power_half_gain, 3),
                "study_cpu_hours": round(p.cpu_seconds / 3600, 1), "eligible": p.eligible}

    budget = chosen.cpu_seconds / 3600
    pilot_result = {
        "records": store, "seeds": list(spec.pilot_seeds),
        "candidates": {k: summary(p) for k, p in plans.items()}, "chosen": chosen.name, "reason": reason,
        "fixed_margins_pp": {"M1": round(m1, 2), "M2": round(m2, 2)},
        "sam_on": {"mean_gain_over_sgd_pp": {r: round(g, 3) for r, g in gains.items()}, "rho": rho},
        "matched_density": {"norm_weights": kept, "weights": total, "sparsity": sparsity},
        "core_seeds": chosen.seeds, "comparisons": len(comparisons),
        "budget": f"{budget:.1f} CPU-hours ({chosen.seeds} seeds x {len(configurations)} configurations, "
                  f"{budget / 2:.1f} hours on two single-thread runs at a time)",
        "written": datetime.date.today().isoformat()}
    return {"regime": regime, "seeds": seeds, "configurations": configurations, "comparisons": comparisons,
            "margins": margins, "correction": "holm", "pilot_result": pilot_result}
