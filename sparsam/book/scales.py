"""The book's scales, largest first, and the one that leads: the GPU study, then the CPU study.

A scale is a study: a file in the format of :func:`sparsam.book.study.load_study` and a store of its records, both
named relative to the book's root (:func:`sparsam.book.profiles.book_root`), as in :data:`SCALES`, largest first.
:func:`survey` reads where each one stands: whether its file is a registration yet
(:func:`sparsam.experiment.grid.is_study_file`: it has configurations) and how many of its planned runs have a
record in its store. :func:`leading` is the first scale that has both, the one chapter 3 leads with.
:func:`load` reads a scale's records, :func:`decide` decides its comparisons as its report does (a registered
cost measurement decides its cost where it has one, the CPU study's interleaved measurement; otherwise the
records' own time per step, a GPU run's wall time), :func:`pareto_points` sets its accuracy beside that cost
(:func:`cost_note` says which) and :func:`sparsity_configurations` names the configurations of its
accuracy-against-sparsity figure.

The claims table (:func:`claims_table`): one row per claim of :data:`CLAIMS`, one status column per scale in the
order of :data:`SCALES` (:func:`scale_statuses`: family-wise, or where the scale stands while it has no records),
then the profile the book was built with (:func:`profile_statuses`, from the verdicts the chapters saved);
:func:`decided_sentence` says in words which claims a column decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import pandas as pd
import yaml

from . import study as studies, study_cost, tables
from .._checks import check_choice
from ..experiment.grid import is_study_file
from ..experiment.results import load_all
from .claims import CHAPTERS
from .profiles import GPU_STUDY_FILE, GPU_STUDY_STORE, PROFILES, STUDY_FILE, STUDY_STORE, book_root
from .records import pareto_front, summarize
from .stats import STATUSES, combine, margins as declared_margins

Time = Literal["cpu_seconds_per_step", "seconds_per_step"]


@dataclass(frozen=True)
class Scale:
    """One scale of the book: its study's file and store (relative to the book's root), the records' time per
    step that is its cost, the axis label of that cost, the registered measurement that decides its cost
    instead of the records (None: the records decide it), and the chapter that reports it in full."""

    name: str
    slug: str  # a short name for glue keys: "gpu", "cpu"
    study_file: Path
    store: Path
    time: Time
    time_label: str
    cost_registration: Path | None = None
    report: str | None = None


SCALES: tuple[Scale, ...] = (
    Scale("GPU study", "gpu", GPU_STUDY_FILE, GPU_STUDY_STORE, "seconds_per_step",
          "GPU time per training step (wall time, synchronised once per epoch), in SGD steps"),
    Scale("CPU study", "cpu", STUDY_FILE, STUDY_STORE, "cpu_seconds_per_step",
          "process-CPU time per training step (one thread, the registered interleaved measurement), in SGD steps",
          cost_registration=study_cost.REGISTRATION, report="08_cpu_study"),
)


@dataclass(frozen=True)
class ScaleState:
    """Where a scale stands: whether its file exists and is a registration, how many runs it plans and how
    many of them have a record in its store."""

    scale: Scale
    exists: bool
    registered: bool
    planned: int
    records: int

    @property
    def has_records(self) -> bool:
        """Whether it is a registration with at least one record of its runs."""
        return self.registered and self.records > 0

    def cell(self) -> str:
        """Where it stands in a few words, for a cell of the claims table."""
        if not self.registered:
            return "not yet registered"
        if not self.records:
            return "registered, no records yet"
        return f"{self.records} of {self.planned} runs recorded"

    def text(self) -> str:
        """Where it stands in a sentence's words, naming its file and store."""
        file, store = self.scale.study_file.as_posix(), self.scale.store.as_posix()
        if not self.exists:
            return f"not yet registered: there is no study file {file}"
        if not self.registered:
            return f"not yet registered: {file} has no configurations yet, so it is not a registration"
        if not self.records:
            return f"registered in {file}, no records yet in {store}/"
        return f"registered in {file}; {self.records} of its {self.planned} planned runs have a record in {store}/"


def _root(root: str | Path | None) -> Path:
    return book_root() if root is None else Path(root)


def survey(root: str | Path | None = None, scales: Sequence[Scale] = SCALES) -> tuple[ScaleState, ...]:
    """Where each of ``scales`` stands in the book at ``root`` (default: the book around the current directory),
    in their order. A file that is a registration is read and checked (:func:`sparsam.book.study.load_study`);
    its records are the files of its store named after one of its planned runs."""
    folder = _root(root)
    states = []
    for scale in scales:
        path = folder / scale.study_file
        exists = path.is_file()
        registered = exists and is_study_file(yaml.safe_load(path.read_text()))
        planned = records = 0
        if registered:
            run_ids = {config.run_id() for config in studies.load_study(path).configs()}
            store = folder / scale.store
            planned = len(run_ids)
            records = sum(1 for p in store.glob("*.json") if p.stem in run_ids) if store.is_dir() else 0
        states.append(ScaleState(scale, exists, registered, planned, records))
    return tuple(states)


def leading(states: Sequence[ScaleState]) -> ScaleState | None:
    """The first (largest) scale of ``states`` that is registered and has records; None if none has."""
    return next((state for state in states if state.has_records), None)


def survey_frame(states: Sequence[ScaleState]) -> pd.DataFrame:
    """One row per scale, largest first: its study file, its store, where it stands and whether it leads."""
    lead = leading(states)
    return pd.DataFrame([{"scale": s.scale.name, "study file": s.scale.study_file.as_posix(),
                          "records in": f"{s.scale.store.as_posix()}/", "where it stands": s.text(),
                          "leads": "yes" if s is lead else ""} for s in states])


def load(scale: Scale, root: str | Path | None = None) -> tuple[studies.Study, list[dict[str, Any]], pd.DataFrame]:
    """A scale's registration, the records of its store and their :func:`sparsam.book.study.study_frame`."""
    folder = _root(root)
    registered = studies.load_study(folder / scale.study_file)
    records = load_all(folder / scale.store)
    return registered, records, studies.study_frame(registered, records)


def _cost_record(scale: Scale, registered: studies.Study, root: Path) -> tuple[study_cost.Registration,
                                                                                 dict[str, Any]]:
    assert scale.cost_registration is not None
    registration = study_cost.load_registration(root / scale.cost_registration, study=registered)
    return registration, study_cost.read(registration.record)


def decide(scale: Scale, registered: studies.Study, frame: pd.DataFrame, records: list[dict[str, Any]], *,
           resamples: int = 2000, root: str | Path | None = None) -> pd.DataFrame:
    """Every comparison of the scale's study decided and read as one family, as its report decides them
    (:func:`sparsam.book.study.decide_comparisons`): cost from its registered cost measurement where it has one
    (the CPU study's interleaved measurement, :func:`sparsam.book.study_cost.cost_rows`), otherwise from the
    records' time per step of the scale."""
    evidence = scale.name + (f" (notebook {int(scale.report[:2])})" if scale.report else "")
    cost = None
    if scale.cost_registration is not None:
        cost = study_cost.cost_rows(*_cost_record(scale, registered, _root(root)))
    return studies.decide_comparisons(registered, frame, records, resamples=resamples, cost=cost, time=scale.time,
                                      evidence=evidence)


def pareto_points(scale: Scale, registered: studies.Study, frame: pd.DataFrame,
                  root: str | Path | None = None) -> pd.DataFrame:
    """Per configuration: test accuracy (mean, 95% interval over the seeds of the records) and the scale's cost of
    a step in SGD steps, with ``on_front`` marking the Pareto front of the means (the input of
    :func:`sparsam.book.plots.pareto`). The cost is the registered measurement's where the scale has one (its
    ratios to SGD in the same round, geometric mean and 95% interval over rounds, for the configurations it
    measured, cheapest first; a record that is not the registered measurement is an error), otherwise the
    records' time per step (:func:`sparsam.book.study.pareto_points`)."""
    if scale.cost_registration is None:
        return studies.pareto_points(frame, scale.time)
    registration, check = _cost_record(scale, registered, _root(root))
    problem = study_cost.registration_problem(check, registration)
    if problem:
        raise ValueError(f"{registration.record.name} must be the registered measurement of "
                         f"{registration.path.name}: {problem}")
    cost = study_cost.ratios(check["measured"]).rename(columns={"configuration": "label"})
    accuracy = summarize(frame, "configuration", "final_test_acc").rename(columns={"configuration": "label"})
    points = accuracy.merge(cost[["label", "cost", "cost_low", "cost_high", "rounds"]], on="label")
    points = points.sort_values("cost", kind="stable").reset_index(drop=True)
    return points.assign(on_front=pareto_front(points))


def cost_note(scale: Scale, points: pd.DataFrame, frame: pd.DataFrame) -> str:
    """Where the cost of :func:`pareto_points` comes from, in a sentence's words: the registered measurement,
    its rounds and the configurations of ``frame`` (the scale's records) it did not time; or the records."""
    if scale.cost_registration is None:
        return f"the records' own {tables.COLUMN_NAMES[scale.time]} (a GPU run's wall time, synchronised per epoch)"
    left_out = sorted(set(frame["configuration"]) - set(points["label"]))
    return (f"the registered measurement of {scale.cost_registration.as_posix()} ({int(points['rounds'].min())} "
            f"rounds, interleaved in one process), which timed {len(points)} of the {frame['configuration'].nunique()} "
            "configurations" + (f"; not timed there: {', '.join(left_out)}" if left_out else ""))


def cost_budget(registered: studies.Study) -> float | None:
    """The cost budget of the study's question in SGD steps (the margin of
    :data:`sparsam.book.study.COST_RULE`) where one of its comparisons has that claim, else None."""
    if not any(c.claim == studies.COST_RULE for c in registered.comparisons):
        return None
    return float(declared_margins()[studies.COST_RULE]["margin"])


SPARSITY_FIELDS = frozenset({"optimizer", "sparsity"})  # what a configuration of the sparsity figure may set
SPARSITY_OPTIMIZERS = ("sgd", "sam", "ssam-f", "ssam-d")


def sparsity_configurations(registered: studies.Study) -> list[str]:
    """The configurations of the study that set nothing but their optimizer (SGD, SAM, SSAM-F, SSAM-D) and a
    sparsity on top of the regime: the lines of the accuracy-against-sparsity figure, in the file's order
    (a control that changes the normalisation, the mask's pattern or rule, the drop rate, ... is left out)."""
    return [name for name, (fields, _) in registered.configurations.items()
            if set(fields) <= SPARSITY_FIELDS and fields.get("optimizer") in SPARSITY_OPTIMIZERS]


# --- the claims table -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """One row of the claims table: its key (that of :data:`sparsam.book.study.BOOK_CLAIMS` where a study makes
    its comparisons), its name in a sentence, and the chapter that decides it in a profile."""

    key: str
    name: str
    chapter: str


CLAIMS: tuple[Claim, ...] = (
    Claim("acc", "SSAM-F and SSAM-D at s = 0.5 match SAM (CIFAR)", "03_cifar_accuracy"),
    Claim("sam_sgd", "SAM improves on SGD (CIFAR)", "03_cifar_accuracy"),
    Claim("radius", "radius control: SSAM-F with ‖ε‖ = ρ matches SAM", "03_cifar_accuracy"),
    Claim("patterns", "TPAMI: layer, filter and 2:4 masks keep SSAM's accuracy", "03_cifar_accuracy"),
    Claim("forms", "TPAMI: the implicit form keeps the explicit form's accuracy", "03_cifar_accuracy"),
    Claim("imagenet", "SSAM-F matches SAM on the ImageNet proxy", "05_imagenet"),
    Claim("convergence", "SSAM converges at SAM's rate", "01_convergence"),
    Claim("flat", "SSAM reaches minima as flat as SAM's and flatter than SGD's", "06_landscape"),
    Claim("cost", "sparse perturbation saves training computation", "04_efficiency"),
    Claim("cost_aware", "the book's cost-aware rule makes a step cheaper than SAM's", "04_efficiency"),
)
# Which claim a chapter's saved row is part of, by its chapter and rule (sparsam.book.claims.save_verdicts);
# None: a row of the chapter that no claim of the table needs (chapter 5's premise, SAM against SGD).
PROFILE_RULES: dict[tuple[str, str], str | None] = {
    ("03_cifar_accuracy", "accuracy_ssam_vs_sam"): "acc", ("03_cifar_accuracy", "accuracy_sam_vs_sgd"): "sam_sgd",
    ("03_cifar_accuracy", "accuracy_pattern_vs_sam"): "patterns",
    ("03_cifar_accuracy", "accuracy_implicit_vs_explicit"): "forms",
    ("04_efficiency", "cost_flops_ssam_vs_sam"): "cost", ("04_efficiency", "cost_time_ssam_vs_sam"): "cost",
    ("04_efficiency", "cost_time_cost_aware_vs_sam"): "cost_aware",
    ("05_imagenet", "accuracy_ssam_vs_sam"): "imagenet", ("05_imagenet", "accuracy_sam_vs_sgd"): None,
    ("06_landscape", "flatness_ssam_vs_sam"): "flat", ("06_landscape", "flatness_ssam_vs_sgd"): "flat",
}
RADIUS_PREFIX = "radius control"  # chapter 3 names its radius-control row so (rule accuracy_ssam_vs_sam)


def _profile_claim(chapter: str, rule: str, claim: str) -> str | None:
    if (chapter, rule) not in PROFILE_RULES:
        raise ValueError(f"saved: {chapter}'s row {claim!r} has rule {rule!r}, which no claim of the table takes "
                         "(add it to sparsam.book.scales.PROFILE_RULES)")
    key = PROFILE_RULES[chapter, rule]
    return "radius" if key == "acc" and claim.startswith(RADIUS_PREFIX) else key


def profile_statuses(saved: pd.DataFrame) -> dict[str, str]:
    """The status of each claim of :data:`CLAIMS` in one profile, from the rows the chapters saved
    (:func:`sparsam.book.claims.load_verdicts` of that profile): the registered statuses of the claim's rows
    combined (:func:`sparsam.book.stats.combine`), as the chapters combine them; where the chapter saved no
    row, that it was not executed in this profile; chapter 1 decides a rate and saves no row."""
    found: dict[str, list[str]] = {}
    for chapter, rule, claim, status in zip(saved["chapter"], saved["rule"], saved["claim"], saved["status"]):
        key = _profile_claim(chapter, rule, claim)
        if key is not None:
            found.setdefault(key, []).append(status)
    chapters = set(saved["chapter"])
    out = {}
    for c in CLAIMS:
        if c.chapter not in CHAPTERS:
            out[c.key] = f"decided in chapter {int(c.chapter[:2])} (a rate, not a paired difference)"
        elif c.chapter not in chapters:
            out[c.key] = f"chapter {int(c.chapter[:2])} not executed in this profile"
        else:
            out[c.key] = combine(found[c.key]) if c.key in found else f"no row of chapter {int(c.chapter[:2])}"
    return out


def scale_statuses(state: ScaleState, registered: studies.Study | None = None,
                   decided: pd.DataFrame | None = None) -> dict[str, str]:
    """The status of each claim of :data:`CLAIMS` at one scale: while it has no records, where it stands
    (:meth:`ScaleState.cell`, for every claim); then the family-wise statuses of its ``decided`` comparisons
    (:func:`decide`) combined per claim (:func:`sparsam.book.study.claim_statuses`; "not in the study" for a
    claim it makes no comparison of)."""
    if not state.has_records:
        return {c.key: state.cell() for c in CLAIMS}
    if registered is None or decided is None:
        raise ValueError(f"registered and decided: the {state.scale.name} has records, pass its study and its "
                         "decided comparisons")
    statuses = studies.claim_statuses(registered, decided, reading="family-wise")
    return {c.key: statuses.get(c.key, studies.NOT_IN_STUDY) for c in CLAIMS}


def claims_table(by_scale: Sequence[Mapping[str, str]], in_profile: Mapping[str, str], profile: str = "quick",
                 scales: Sequence[Scale] = SCALES) -> pd.DataFrame:
    """The claims table: one row per claim of :data:`CLAIMS`; its status columns are one per scale, largest
    first (``by_scale``: :func:`scale_statuses` in the order of ``scales``), then the ``profile``'s
    (``in_profile``: :func:`profile_statuses`)."""
    check_choice("profile", profile, PROFILES)
    if len(by_scale) != len(scales):
        raise ValueError(f"by_scale must hold one column per scale ({', '.join(s.name for s in scales)}), "
                         f"got {len(by_scale)}")
    for name, column in [*((s.name, col) for s, col in zip(scales, by_scale)), (f"{profile} profile", in_profile)]:
        missing = [c.key for c in CLAIMS if c.key not in column]
        if missing:
            raise ValueError(f"the {name} column lacks the claims {missing}")
    return pd.DataFrame([{"claim": c.name, **{s.name: col[c.key] for s, col in zip(scales, by_scale)},
                          f"{profile} profile": in_profile[c.key]} for c in CLAIMS])


DECIDED = tuple(s for s in STATUSES if s != "inconclusive")  # "reproduced", "not reproduced"


def decided_sentence(table: pd.DataFrame, column: str, scale: str = "") -> str:
    """Which claims a status column of :func:`claims_table` decides, in words: each claim whose status there is
    "reproduced" or "not reproduced", with it, or that it decides none (with the column's statuses); ``scale``
    (e.g. the runs' :func:`sparsam.book.deviations.scale_text`) is named after it."""
    if column not in table.columns or column == "claim":
        raise ValueError(f"column must be a status column of the table ({', '.join(table.columns[1:])}), "
                         f"got {column!r}")
    statuses = table.set_index("claim")[column]
    decided = [f"{claim}: {status}" for claim, status in statuses.items() if status in DECIDED]
    if decided:
        text = (f"The {column} decides {len(decided)} of the {len(statuses)} claims ({'; '.join(decided)}); the "
                "others are inconclusive there or not tested.")
    else:
        text = f"The {column} decides none of the {len(statuses)} claims ({'; '.join(sorted(set(statuses)))})."
    return text + (f" Its scale: {scale}." if scale else "")
