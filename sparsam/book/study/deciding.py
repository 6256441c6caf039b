"""A registered study decided from its records.

:func:`study_frame` reads the records of the study's configurations; :func:`progress` counts them and
:func:`rerun_estimate` says how long re-running it takes; :func:`decide_comparisons` decides every registered
comparison (and those added after the runs) and reads them as one family (Holm's step-down, the premise rule:
:func:`sparsam.book.stats.family`), cost from a registered interleaved measurement where one is given
(:func:`decide_comparisons_interleaved`, :mod:`sparsam.book.study.cost`), each row with its rule's provenance
(registered, or added after the runs with its date and reason, the registered rule's reading beside a rule that
replaced it; :func:`claim_rules`, :func:`family_text`, :func:`flatness_provenance`) and the scale of the records that
decided it (:func:`record_scale`, :func:`claim_scales`); :func:`audit_frame` shows the family as
numbers a reader can check; :func:`pareto_points` puts accuracy beside measured cost per step, :func:`answer`
answers the CPU study's question from the decisions, :func:`book_statuses` combines them into the statuses of the
reproduction page's claims (:func:`claim_statuses` also for a study that makes only some of their comparisons),
and :func:`paired_sds` gives the spread of the paired differences that a power calculation needs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import claims, deviations, registry, tables
from ...experiment.config import TrainConfig
from ..claims import ADDED, REGISTERED
from ..layout import MARGINS, book_root
from ..records import cost_summary, pareto_front, records_frame, summarize
from ..stats import combine, half_gain
from .model import Comparison, Study, added_on, comparison_label

# What a comparison compares, by the unit of its claim: final test accuracy (pp) or CPU time per step (ratio).
VALUES = {"pp": "final_test_acc", "ratio": "cpu_seconds_per_step"}


# The records' times per step a study's cost may be read from: process-CPU time, or wall time (a GPU run's).
TIMES = ("cpu_seconds_per_step", "seconds_per_step")


ACCURACY_RULE, COST_RULE = "accuracy_ssam_vs_sam", "cost_time_vs_sgd_at_most_1_25"  # the question's two claims


# a reading -> its column of decide_comparisons: the registration's own rules, each comparison on its own (a rule
# replaced after the runs read as registered), or every comparison by the rules in force read as one family
READINGS = {"registered": "registered_status", "family-wise": "family_status"}


def study_frame(study: Study, records: list[dict[str, Any]]) -> pd.DataFrame:
    """:func:`sparsam.book.records.records_frame` of the study's records with a ``configuration`` column
    (its name in the pre-registration); records of other configurations are left out. Row ``i``
    keeps the position of its record in ``records`` as ``position``."""
    frame = records_frame(records).assign(position=np.arange(len(records)))
    frame.insert(0, "configuration", [study.name_of(TrainConfig.from_dict(r["summary"]["config"])) for r in records])
    return frame[frame["configuration"].notna()].reset_index(drop=True)


def progress(study: Study, frame: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: the seeds planned, the seeds with a record, and the CPU-hours those runs took."""
    rows = []
    for name, (_, seeds) in study.configurations.items():
        done = frame[frame["configuration"] == name]
        steps = done["epochs"] * np.ceil(done["n_train"] / done["batch_size"])
        rows.append({"configuration": name, "seeds planned": len(seeds), "seeds done": len(done),
                     "seeds": ", ".join(str(s) for s in sorted(done["seed"])) or "–",
                     "CPU-hours": float((done["cpu_seconds_per_step"] * steps).sum() / 3600)})
    return pd.DataFrame(rows)


def progress_text(done: pd.DataFrame) -> str:
    """Where the study's runs stand, in a sentence's words, from :func:`progress`: "all 53 planned runs are in", or
    "20 of the 53 planned runs so far (the others are still to train)" (:func:`runs_text`)."""
    return runs_text(int(done["seeds done"].sum()), int(done["seeds planned"].sum()))


def runs_text(have: int, planned: int) -> str:
    """``have`` of a study's ``planned`` runs in words: "all 53 planned runs are in", or "20 of the 53 planned runs
    so far (the others are still to train)"; the words of :func:`progress_text` and of a scale's cell in the claims
    table while its runs are incomplete (:meth:`sparsam.book.scale_reports.ScaleState.cell`)."""
    if have >= planned:
        return f"all {planned} planned runs are in"
    return f"{have} of the {planned} planned runs so far (the others are still to train)"


def does_sams_work(study: Study, name: str) -> bool:
    """Whether every run of configuration ``name`` computes at least SAM's two dense passes per step: SSAM
    (SSAM-F or SSAM-D) in the explicit form with the dense ascent pass, SAM on every step, masks only ε."""
    return all(c.optimizer in ("ssam-f", "ssam-d") and c.form == "explicit" and c.ascent == "dense"
               and c.sam_every == 1 for c in study.configs(name))


def recorded_below(study: Study, points: pd.DataFrame, reference: str = "sam") -> pd.DataFrame:
    """The configurations that do SAM's work (:func:`does_sams_work`) whose records' mean cost
    (:func:`pareto_points`) is below ``reference``'s: a cost no step of theirs can have, which only the load
    beside each run gives; ``label`` and ``cost``, cheapest first."""
    at = points.set_index("label")
    if reference not in at.index:
        raise ValueError(f"reference must be a configuration of points ({', '.join(at.index)}), got {reference!r}")
    below = [name for name in at.index if name in study.configurations and does_sams_work(study, name)
             and at.loc[name, "cost"] < at.loc[reference, "cost"]]
    return at.loc[below, ["cost"]].sort_values("cost").reset_index()


def rerun_estimate(study: Study, frame: pd.DataFrame, parallel: int = 2) -> dict[str, float]:
    """How long re-running the whole study takes at the pace of its records: ``runs`` planned,
    ``hours_per_run`` (mean wall-clock hours of the records trained in one process, resumed ones left
    out) and ``hours`` for every run, ``parallel`` at a time (NaN without such a record)."""
    whole = frame.loc[frame["resumed_from_epoch"].fillna(0) == 0, "wall_seconds_this_process"].dropna()
    runs = sum(len(seeds) for _, seeds in study.configurations.values())
    per_run = float(whole.mean() / 3600) if len(whole) else float("nan")
    return {"runs": runs, "hours_per_run": per_run, "hours": per_run * math.ceil(runs / parallel)}


def _sides(frame: pd.DataFrame, comparison: Comparison) -> list[pd.DataFrame]:
    """The records of each configuration of ``comparison``, indexed by seed, over the seeds all have."""
    sides = [frame[frame["configuration"] == name].set_index("seed") for name in comparison.names]
    seeds = sorted(set.intersection(*(set(side.index) for side in sides)))
    return [side.loc[seeds] for side in sides]


def premises(study: Study, frame: pd.DataFrame) -> dict[str, str | None]:
    """For each comparison whose claim declares a premise (:attr:`Study.declared`): the label of the
    comparison of the study that shows it (the premise claim, its reference as method, on every seed the
    comparison pairs), or None when the study makes none."""
    declared = study.declared
    out: dict[str, str | None] = {}
    for c in study.family:
        premise = declared[c.claim].get("premise")
        if premise is None:
            continue
        seeds = set(_sides(frame, c)[0].index)
        shown = [p for p in study.family if p.claim == premise and p.a == c.b and p.over is None
                 and seeds <= set(_sides(frame, p)[0].index)]
        out[comparison_label(c)] = comparison_label(shown[0]) if shown else None
    return out


def decide_comparisons(study: Study, frame: pd.DataFrame, records: list[dict[str, Any]], *,
                       resamples: int = 2000, cost: pd.DataFrame | None = None,
                       time: Literal["cpu_seconds_per_step", "seconds_per_step"] = "cpu_seconds_per_step",
                       evidence: str = "CPU study (notebook 8)") -> pd.DataFrame:
    """Every comparison of the study decided from the records (a :func:`sparsam.book.claims.claims_frame`,
    one row per comparison: the registered ones in the file's order, then those added after the runs),
    paired by seed over the seeds all sides have, and read as one family
    (:func:`sparsam.book.claims.family_wise` with :func:`premises`): ``status`` is the per-comparison
    decision by the rule in force, ``family_status`` the family-wise one. ``resamples=0``: no paired bootstrap
    (its columns NaN). ``cost``: rows (``claim`` = the comparison's label) that decide every comparison of
    cost (unit "ratio") instead of the records' own timings, e.g. the registered interleaved measurement
    (:func:`sparsam.book.study.cost.cost_rows`, with its ``scale``); they join the family like any other row.
    Without ``cost``, a comparison of cost compares the records' ``time`` per step (process-CPU time, or the
    wall time of a GPU run, synchronised once per epoch). ``evidence`` names the study in each row.

    Every row carries its rule's provenance (:func:`sparsam.book.claims.with_provenance`, from
    :meth:`Study.provenance`): registered, or added after the runs with its date and reason; where ``cost``
    decides a comparison whose registered rule the study replaced (``added_after_the_runs.replaced``), the
    registered rule's reading (the records' ``time`` per step, paired by seed) beside it, in
    ``registered_status`` and ``registered_text`` (``registered_status`` is the registered reading of every
    registered comparison, "" for one added after the runs); and ``scale``, that of the records that decided it
    (:func:`record_scale`). A rule said to be added after the runs whose date precedes the first of the runs is an
    error."""
    if time not in TIMES:
        raise ValueError(f"time must be one of {', '.join(TIMES)}, got {time!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 0:
        raise ValueError(f"resamples must be an integer >= 0 (0: no bootstrap), got {resamples!r}")
    units = study.declared
    by_label = None if cost is None else cost.set_index("claim")
    if by_label is not None:
        missing = [comparison_label(c) for c in study.family
                   if units[c.claim]["unit"] == "ratio" and comparison_label(c) not in by_label.index]
        if missing:
            raise ValueError(f"cost must decide every cost comparison of the study, missing {missing}")
    def by_records(c: Comparison, resamples: int) -> tuple[dict[str, Any], str]:
        value = time if units[c.claim]["unit"] == "ratio" else VALUES["pp"]
        sides = _sides(frame, c)
        used = pd.concat(sides)
        values = [side[value].to_numpy(float) for side in sides]
        correct = (claims.correctness(*([records[i] for i in side["position"]] for side in sides[:2]))
                   if value == "final_test_acc" and resamples else None)
        if c.over is not None:
            values = list(half_gain(*values))
            if correct is not None:
                over = claims.correctness([records[i] for i in sides[2]["position"]], [])
                correct = (correct[0], [(r.astype(float) + z.astype(float)) / 2
                                        for r, z in zip(correct[1], over[0])]) if over is not None else None
        row = claims.paired_claim(comparison_label(c), c.claim, values[0], values[1], used, correct=correct,
                                  resamples=max(resamples, 1),
                                  evidence=evidence + ("" if study.registered(c) else f", {ADDED}"),
                                  declared=study.declared)
        return row, record_scale(used.reset_index())

    rows, provenances, registered, scales = [], [], [], []
    for c in study.family:
        given = by_label is not None and units[c.claim]["unit"] == "ratio"
        provenance = study.provenance(c, replaced=given)
        if given:
            found = by_label.loc[comparison_label(c)].to_dict()
            rows.append({"claim": comparison_label(c), **found})
            scales.append(str(found.get("scale") or "not stated by the rows given"))
            registered.append(None if provenance.registered or not provenance.replaces else by_records(c, 0)[0])
        else:
            row, scale = by_records(c, resamples)
            rows.append(row)
            scales.append(scale)
            registered.append(None)
        provenances.append(provenance)
    _check_after_the_runs(provenances, frame)
    decided = claims.family_wise(claims.claims_frame(rows), premises(study, frame))
    return claims.with_provenance(decided, provenances, registered, scales)


def family_text(study: Study, decided: pd.DataFrame) -> str:
    """What of the study's family the registration holds, in a sentence's words, from the rows of
    :func:`decide_comparisons`: how many of its comparisons were registered and how many added after the runs
    (with their claims), and how many registered ones a rule added after the runs decides (what it replaced,
    its date), with the registered rule's reading beside them."""
    if len(decided) != len(study.family):
        raise ValueError(f"decided must hold one row per comparison of the study ({len(study.family)}), "
                         f"got {len(decided)}")
    added = [c for c in study.family if not study.registered(c)]
    text = (f"of its {len(study.family)} comparisons, {len(study.comparisons)} were registered"
            + (f" and {len(added)} added after the runs ({', '.join(dict.fromkeys(c.claim for c in added))})"
               if added else "; none was added after the runs"))
    replaced = decided.iloc[:len(study.comparisons)]
    replaced = replaced[replaced["registered_text"].astype(str) != ""]
    for (what, date), rows in replaced.groupby(["replaces", "provenance_date"], sort=False):
        text += (f"; {len(rows)} registered comparison{'s are' if len(rows) != 1 else ' is'} decided by a rule "
                 f"{ADDED} ({date}), which replaced the registered one ({what}), read beside it")
    return text


# Where git dates the two flatness rules added after the CPU study's runs: the file and the text whose first commit
# added the measure in normalised weights, and the premise rule (book/margins.yaml)
FLATNESS_MEASURE_ADDED = (Path("sparsam/book/landscape.py"), "normalizing_scales")
FLATNESS_PREMISE_ADDED = (MARGINS, "flatness_sam_vs_sgd:")
# what the flatness rules on the raw measure were: declared in book/margins.yaml before the runs, registered by no study
FLATNESS_EARLIER_RULE = "rule declared before the runs (book/margins.yaml, raw measure; no study registered it)"


def flatness_provenance(premise: bool = False, root: str | Path | None = None) -> claims.Provenance:
    """The provenance of the flatness rules of the book at ``root`` (default: the book around the current
    directory), dated by git: the claim's rows are decided on the measure in normalised weights, added after the
    runs (:data:`FLATNESS_MEASURE_ADDED`), where the rules of ``book/margins.yaml`` were first applied to the raw
    measure, whose reading stands beside them; with ``premise``, the premise rule ``flatness_sam_vs_sgd``, added
    after the runs (:data:`FLATNESS_PREMISE_ADDED`), which replaced no rule."""
    folder = book_root() if root is None else Path(root)
    where, marker = FLATNESS_PREMISE_ADDED if premise else FLATNESS_MEASURE_ADDED
    date = added_on(folder / where, marker)
    if premise:
        return claims.Provenance(ADDED, date, "SAM shown flatter than SGD on the same measure is the premise of "
                                              "'as flat as SAM's', which says little where SAM is not flatter")
    return claims.Provenance(ADDED, date, "the raw top eigenvalue and trace compare the weights' scale as much as "
                                          "sharpness (BatchNorm makes the loss invariant to the scale of the weights "
                                          "before it); in normalised weights they do not",
                             "the same rules on the raw top eigenvalue and trace", FLATNESS_EARLIER_RULE)


def record_scale(used: pd.DataFrame) -> str:
    """The scale of the run records ``used`` (a records frame) that decide a comparison paired by seed: data,
    network, epochs, seeds, device (:func:`sparsam.book.deviations.scale_text`), "paired by seed"."""
    return f"{deviations.scale_text(used)}, paired by seed" if len(used) else "no paired runs"


def _check_after_the_runs(provenances: Sequence[claims.Provenance], frame: pd.DataFrame) -> None:
    """A rule added after the runs must be dated on or after the day the first of them finished."""
    finished = sorted(str(f)[:10] for f in frame.get("finished", pd.Series(dtype=object)).dropna())
    if not finished:
        return
    for p in provenances:
        if not p.registered and p.date != "unknown" and p.date < finished[0]:
            raise ValueError(f"a rule {ADDED} is dated {p.date}, before the first of the runs finished "
                             f"({finished[0]}): it must be part of the registration ({p.reason})")


def runs_dates(frame: pd.DataFrame) -> tuple[str, str] | None:
    """The days (YYYY-MM-DD) the first and the last of the records of ``frame`` finished; None without dates."""
    finished = sorted(str(f)[:10] for f in frame.get("finished", pd.Series(dtype=object)).dropna())
    return (finished[0], finished[-1]) if finished else None


AUDIT_COLUMNS = ("comparison", "registration", "unit", "n", "mean", "low", "high", "sim_low", "sim_high", "p_value",
                 "status", "family_status", "rule", "registered_status", "scale")


def audit_frame(study: Study, decided: pd.DataFrame) -> pd.DataFrame:
    """The family reading of :func:`decide_comparisons` as numbers a reader can check, one row per
    comparison: ``registration`` (whether the registration made the comparison: "registered" or "added after the
    runs"), ``unit``, seeds (or rounds) ``n``, the mean
    paired difference with its 95% t-interval (``low``, ``high``) and its simultaneous interval
    (``sim_low``, ``sim_high``), in the claim's unit (pp, or for "ratio" claims the ratio a / b: the
    exponential of the mean log ratio and of its bounds), the one-sided ``p_value`` against the margin,
    the per-comparison ``status`` and the ``family_status`` by the rules in force, the provenance of the rule that
    decided it (``rule``, :func:`sparsam.book.claims.rule_text`: with the registered rule's reading beside a rule
    that replaced it after the runs), the ``registered_status`` (the registration's own rule; "" for a comparison
    added after the runs) and the ``scale`` of the records that decided it."""
    if len(decided) != len(study.family):
        raise ValueError(f"decided must hold one row per comparison of the study ({len(study.family)}), "
                         f"got {len(decided)}")
    out = pd.DataFrame({"comparison": decided["claim"].to_numpy(),
                        "registration": [REGISTERED if study.registered(c) else ADDED for c in study.family],
                        "unit": decided["unit"].to_numpy(), "n": decided["n"].to_numpy(int)})
    ratio = (decided["unit"] == "ratio").to_numpy()
    for name, column in (("mean", "diff"), ("low", "low"), ("high", "high"), ("sim_low", "sim_low"),
                         ("sim_high", "sim_high")):
        values = decided[column].to_numpy(float)
        out[name] = np.where(ratio, np.exp(values), values)
    out["p_value"] = decided["p_value"].to_numpy(float)
    out["status"], out["family_status"] = decided["status"].to_numpy(), decided["family_status"].to_numpy()
    out["rule"] = [claims.rule_text(row) for _, row in decided.iterrows()]
    out["registered_status"] = decided["registered_status"].to_numpy()
    out["scale"] = decided["scale"].to_numpy()
    return out[list(AUDIT_COLUMNS)]


def paired_sds(study: Study, frame: pd.DataFrame, unit: Literal["pp", "ratio"] = "pp") -> pd.DataFrame:
    """Per registered comparison in ``unit`` (accuracy in pp; cost as log-ratios): the seeds it pairs and
    the standard deviation of its paired differences (NaN below two seeds; for a half-gain contrast, of its
    per-seed contrast :func:`sparsam.book.stats.half_gain`), with a last row ``pooled``: the root of the mean
    variance of the plain differences (no contrast) weighted by degrees of freedom, the SD a power calculation
    assumes."""
    if unit not in VALUES:
        raise ValueError(f"unit must be one of {', '.join(VALUES)}, got {unit!r}")
    declared = study.declared
    rows = []
    for c in study.comparisons:
        if declared[c.claim]["unit"] != unit:
            continue
        values = [side[VALUES[unit]].to_numpy(float) for side in _sides(frame, c)]
        if unit == "ratio":
            values = [np.log(v) for v in values]
        a, b = values if c.over is None else half_gain(*values)  # records_frame gives accuracy in percent
        d = a - b
        rows.append({"comparison": comparison_label(c), "n": len(d),
                     "sd": float(np.std(d, ddof=1)) if len(d) >= 2 else math.nan, "contrast": c.over is not None})
    table = pd.DataFrame(rows, columns=["comparison", "n", "sd", "contrast"])
    usable = table[(table["n"] >= 2) & ~table["contrast"].astype(bool)]
    table = table.drop(columns="contrast")
    df = (usable["n"] - 1).sum()
    pooled = float(np.sqrt(((usable["n"] - 1) * usable["sd"] ** 2).sum() / df)) if df else math.nan
    return pd.concat([table, pd.DataFrame([{"comparison": "pooled", "n": int(usable["n"].sum()), "sd": pooled}])],
                     ignore_index=True)


def decide_comparisons_interleaved(study: Study, frame: pd.DataFrame, records: list[dict[str, Any]],
                                   cost: pd.DataFrame, *, resamples: int = 2000) -> pd.DataFrame:
    """:func:`decide_comparisons` with every comparison of cost (unit "ratio") taken from ``cost``, the rows
    of the registered interleaved measurement (:func:`sparsam.book.study.cost.cost_rows`), not from the
    records' own timings (which stay descriptive), and the whole family read with them; a cost comparison
    missing from ``cost`` is an error."""
    return decide_comparisons(study, frame, records, resamples=resamples, cost=cost)


def pareto_points(frame: pd.DataFrame,
                  time: Literal["cpu_seconds_per_step", "seconds_per_step"] = "cpu_seconds_per_step") -> pd.DataFrame:
    """Per configuration: test accuracy (mean, 95% interval over seeds) and the records' ``time`` per step
    (process-CPU time, or wall time) in SGD steps (over the mean of the SGD runs), with ``on_front`` marking
    the Pareto front of the means."""
    if time not in TIMES:
        raise ValueError(f"time must be one of {', '.join(TIMES)}, got {time!r}")
    points = cost_summary(frame, time=time, by="configuration")
    return points.assign(on_front=pareto_front(points))


def _reading(reading: str) -> str:
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {', '.join(READINGS)}, got {reading!r}")
    return READINGS[reading]


def answer(study: Study, decided: pd.DataFrame, reading: Literal["registered", "family-wise"] = "registered"
           ) -> str:
    """The study's question answered from the decided comparisons: a configuration answers "yes" when
    both its accuracy against SAM (non-inferiority) and its cost against 1.25 SGD steps are reproduced;
    the answer is "no" when every configuration with both comparisons fails one of them, and "not
    decided" otherwise: "yet" while runs are missing, "at this scale" once every planned seed is in.
    ``reading`` chooses the statuses: the registered per-comparison ones or the family-wise ones."""
    status = {(c.claim, c.a): s for c, s in zip(study.comparisons, decided[_reading(reading)])}
    candidates = [c.a for c in study.comparisons if c.claim == COST_RULE and (ACCURACY_RULE, c.a) in status]
    if not candidates:
        raise ValueError(f"the study must compare some configuration by both {ACCURACY_RULE} and {COST_RULE}")
    both = {name: (status[ACCURACY_RULE, name], status[COST_RULE, name]) for name in candidates}
    margins = study.declared
    within = (f"within {margins[ACCURACY_RULE]['margin']:g} pp of SAM's accuracy at a CPU cost of at most "
              f"{margins[COST_RULE]['margin']:g} SGD steps per step")
    yes = [name for name, pair in both.items() if pair == ("reproduced", "reproduced")]
    listed = ", ".join(candidates)
    if yes:
        return f"Yes: {', '.join(yes)} stayed {within}, both decided at this scale."
    if all("not reproduced" in pair for pair in both.values()):
        return (f"No: each configuration that could answer it ({listed}) is decided to fail one of the two "
                f"conditions (accuracy {within}) at this scale.")
    undecided = [name for name, pair in both.items() if "not reproduced" not in pair]
    paired = {(c.claim, c.a): n for c, n in zip(study.comparisons, decided["n"])}
    # only accuracy's seeds can still land: a cost comparison pairs the same seeds (SAM and SGD share
    # theirs) or is decided by the registered interleaved measurement (decide_comparisons_interleaved)
    if all(paired[ACCURACY_RULE, name] == study.paired_seeds(name, "sam") for name in undecided):
        return (f"Not decided at this scale: every planned seed is in, and the comparisons of "
                f"{', '.join(undecided)} stay inconclusive; none is decided {within} (candidates: {listed}).")
    return (f"Not decided yet: {', '.join(undecided)} could still answer yes, but their comparisons are "
            f"inconclusive with the records so far (candidates: {listed}).")


def book_statuses(study: Study, decided: pd.DataFrame, reading: Literal["registered", "family-wise"] = "registered"
                  ) -> dict[str, str]:
    """The status of each claim the book declares for a CIFAR study (:func:`sparsam.book.registry.study_claims`),
    combined from the decided comparisons it needs,
    in the ``reading`` chosen (registered per-comparison statuses, or family-wise ones)."""
    status = {(c.claim, c.a, c.b): s for c, s in zip(study.comparisons, decided[_reading(reading)])}
    out = {}
    for key, needed in registry.study_claims("cifar").items():
        missing = [n for n in needed if n not in status]
        if missing:
            raise ValueError(f"claim {key!r} needs the comparisons {missing}, which the study does not make")
        out[key] = combine([status[n] for n in needed])
    return out


NOT_IN_STUDY = "not in the study"


def claim_statuses(study: Study, decided: pd.DataFrame,
                   reading: Literal["registered", "family-wise"] = "family-wise",
                   claims: Mapping[str, Sequence[tuple[str, str, str]]] | None = None) -> dict[str, str]:
    """Like :func:`book_statuses`, for a study that need not make every comparison of ``claims`` (claim ->
    the (rule, a, b) comparisons it needs; default: the CIFAR studies' claims of the registry): the
    combined status of each claim whose comparisons the study makes, :data:`NOT_IN_STUDY` for a claim it
    makes none of, and for one it makes only some of, their combined status followed by how many of the
    claim's comparisons it makes ("inconclusive (1 of 2 comparisons in the study)")."""
    status = {(c.claim, c.a, c.b): s for c, s in zip(study.comparisons, decided[_reading(reading)])}
    out = {}
    for key, needed in (registry.study_claims("cifar") if claims is None else claims).items():
        made = [status[n] for n in needed if n in status]
        if not made:
            out[key] = NOT_IN_STUDY
        else:
            out[key] = combine(made) + ("" if len(made) == len(needed) else
                                        f" ({len(made)} of {len(needed)} comparisons in the study)")
    return out


def _needed(study: Study, decided: pd.DataFrame,
            claims: Mapping[str, Sequence[tuple[str, str, str]]] | None) -> dict[str, list[pd.Series]]:
    """Per claim (``claims``, default the CIFAR studies'), the decided rows of the comparisons it needs that the
    study makes."""
    rows = {(c.claim, c.a, c.b): row for c, (_, row) in zip(study.comparisons, decided.iterrows())}
    return {key: [rows[n] for n in needed if n in rows]
            for key, needed in (registry.study_claims("cifar") if claims is None else claims).items()}


def claim_rules(study: Study, decided: pd.DataFrame,
                claims: Mapping[str, Sequence[tuple[str, str, str]]] | None = None) -> dict[str, str]:
    """Per claim whose comparisons the study makes (``claims`` as :func:`claim_statuses` takes them), where a rule
    added after the runs replaced a registered one for any of them (:func:`decide_comparisons`), the words to set
    beside its status: "rule added after the runs on 2026-12-03; by the registered rule (the records' own
    process-CPU time per step, paired by seed): inconclusive" (the claim's status combined from the registered
    readings); "" where every rule it is decided by is registered."""
    registered = claim_statuses(study, decided, reading="registered", claims=claims)
    out = {}
    for key, rows in _needed(study, decided, claims).items():
        replaced = [row for row in rows if isinstance(row.get("registered_text"), str) and row["registered_text"]]
        dates = " and ".join(sorted({str(row["provenance_date"]) for row in replaced}))
        rules = "; ".join(dict.fromkeys(str(row["replaces"]) for row in replaced))
        out[key] = f"rule {ADDED} on {dates}; by the registered rule ({rules}): {registered[key]}" if replaced else ""
    return out


def claim_scales(study: Study, decided: pd.DataFrame,
                 claims: Mapping[str, Sequence[tuple[str, str, str]]] | None = None) -> dict[str, str]:
    """Per claim whose comparisons the study makes, the scale of the records that decided them (each distinct
    ``scale`` of their rows, :func:`decide_comparisons`, joined by "; "); "" for a claim it makes none of."""
    return {key: "; ".join(dict.fromkeys(str(row["scale"]) for row in rows))
            for key, rows in _needed(study, decided, claims).items()}


def configuration_table(frame: pd.DataFrame,
                        time: Literal["cpu_seconds_per_step", "seconds_per_step"] = "cpu_seconds_per_step"
                        ) -> pd.DataFrame:
    """One row per configuration with records, cheapest first: seeds, test accuracy, the records' ``time``
    per step (process-CPU or wall time, its column named after it) and its cost in SGD steps, mean ‖ε‖ and
    final training loss, each as mean [95% t-interval]."""
    points = pareto_points(frame, time).set_index("label")
    rows = []
    for name in points.index:
        runs = frame[frame["configuration"] == name]
        cell = {column: tables.interval_text(*summarize(runs, "configuration", column).iloc[0][
            ["mean", "low", "high"]], digits=digits)
            for column, digits in ((time, 4), ("mean_eps_norm", 4), ("final_train_loss", 3))}
        if runs["optimizer"].eq("sgd").all():
            cell["mean_eps_norm"] = "– (no ε)"
        at = points.loc[name]
        rows.append({"configuration": name, "seeds": int(at["n"]),
                     "test accuracy (%)": tables.interval_text(at["mean"], at["low"], at["high"]),
                     tables.COLUMN_NAMES[time]: cell[time],
                     "cost (SGD steps)": tables.interval_text(at["cost"], at["cost_low"], at["cost_high"]),
                     "mean ‖ε‖": cell["mean_eps_norm"], "final training loss (nats)": cell["final_train_loss"],
                     "on the Pareto front": "yes" if at["on_front"] else ""})
    return pd.DataFrame(rows)

