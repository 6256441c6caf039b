"""What a chapter shows of a scale (:mod:`sparsam.book.scales`), in the state its study file and store are in.

:func:`survey` reads where each scale stands: whether its file is a registration yet
(:func:`sparsam.book.study.is_registration`: it has configurations) and how many of its planned runs have a
record in its store. :func:`leading` is the first scale that has both, the one chapter 3 leads with; the claims
table reads a scale's verdicts only once every planned run has a record (:attr:`ScaleState.complete`), and until
then says how many are in (:func:`scale_statuses`).
:func:`load` reads a scale's records, :func:`decide` decides its comparisons as its report does (a registered
cost measurement decides its cost where it has one, the CPU study's interleaved measurement; otherwise they are
inconclusive, the records' own time per step, a GPU run's wall time, descriptive), :func:`pareto_points` sets its
accuracy beside that cost (:func:`cost_note` says which) and :func:`sparsity_configurations` names the
configurations of its accuracy-against-sparsity figure.

A chapter's report of a scale (:func:`report`) gathers what it shows, in each state: while the file is not a
registration, what it declares (:func:`declaration`: the candidate regimes and the pilot, :meth:`Declaration.text`)
and the deviation table of the declared regimes against the papers' setup
(:func:`sparsam.book.deviations.regime_deviation_table`); once it has records, accuracy per configuration with
95% intervals over seeds, the training curves, the comparisons decided family-wise (:func:`decide`) and the
deviation table from the records.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from . import deviations, registry, study as studies, tables
from ..experiment.config import TrainConfig
from ..experiment.results import load_all
from .claims_table import DECIDED, status_of, with_rule
from .layout import MARGINS, RUNS_STORE, book_root
from .records import metrics_frame, pareto_front, records_frame, summarize
from .scales import SCALES, Scale
from .stats import Verdict, power, seeds_for_power
from .study import cost as study_cost, flatness_family, model as study_model
from .study.pilot import run_key

@dataclass(frozen=True)
class ScaleState:
    """Where a scale stands: whether its file exists and is a registration, how many runs it plans and how
    many of them have a record in its store."""

    scale: Scale
    exists: bool
    registered: bool
    planned: int
    records: int
    root: Path | None = None  # the book it was surveyed in (None: built by hand; no second family is read)

    @property
    def has_records(self) -> bool:
        """Whether it is a registration with at least one record of its runs."""
        return self.registered and self.records > 0

    @property
    def complete(self) -> bool:
        """Whether it is a registration every planned run of which has a record: only then does the claims table
        read its verdicts (:func:`scale_statuses`)."""
        return self.registered and self.planned > 0 and self.records >= self.planned

    @property
    def in_progress(self) -> bool:
        """Whether it is a registration with some, but not all, of its planned runs recorded."""
        return self.has_records and not self.complete

    def cell(self) -> str:
        """Where it stands in a few words, for a cell of the claims table: while its runs are incomplete, how many
        are in (:func:`sparsam.book.study.runs_text`) and that it gives no verdict before all are."""
        if not self.registered:
            return "not yet registered"
        if not self.records:
            return "registered, no records yet"
        if not self.complete:
            return f"in progress: {studies.runs_text(self.records, self.planned)}; no verdict before all are in"
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
        registered = exists and studies.is_registration(path)
        planned = records = 0
        if registered:
            run_ids = {config.run_id() for config in studies.load_study(path, margins=folder / MARGINS).configs()}
            store = folder / scale.store
            planned = len(run_ids)
            records = sum(1 for p in store.glob("*.json") if p.stem in run_ids) if store.is_dir() else 0
        states.append(ScaleState(scale, exists, registered, planned, records, folder))
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
    registered = studies.load_study(folder / scale.study_file, margins=folder / MARGINS)
    records = load_all(folder / scale.store)
    return registered, records, studies.study_frame(registered, records)


def has_cost_measurement(scale: Scale, root: str | Path | None = None) -> bool:
    """Whether the scale's cost is decided by a registered side-by-side measurement: it names a registration
    (``cost_registration``) and both that file and the record it names exist in the book at ``root``."""
    if scale.cost_registration is None or not (_root(root) / scale.cost_registration).is_file():
        return False
    return (_root(root) / study_model.cost_record_named(_root(root) / scale.cost_registration)).is_file()


def _cost_record(scale: Scale, registered: studies.Study, root: Path) -> tuple[study_model.CostRegistration,
                                                                                 dict[str, Any]]:
    assert scale.cost_registration is not None
    registration = study_model.load_cost_registration(root / scale.cost_registration, study=registered)
    return registration, study_cost.read(registration.record)


def decide(scale: Scale, registered: studies.Study, frame: pd.DataFrame, records: list[dict[str, Any]], *,
           resamples: int = 2000, root: str | Path | None = None) -> pd.DataFrame:
    """Every comparison of the scale's study decided and read as one family, as its report decides them
    (:func:`sparsam.book.study.decide_comparisons`): cost from its registered cost measurement where it has one
    (the CPU study's interleaved measurement, :func:`sparsam.book.study.cost.cost_rows`); without one, its cost
    comparisons are inconclusive (:func:`sparsam.book.study.cost.unmeasured_rows`): the records' time per step
    stays descriptive."""
    evidence = scale.name + (f" (notebook {int(scale.report[:2])})" if scale.report else "")
    if has_cost_measurement(scale, root):
        cost = study_cost.cost_rows(*_cost_record(scale, registered, _root(root)))
    else:
        cost = study_cost.unmeasured_rows(registered, f"{evidence}: {study_cost.NOT_SIDE_BY_SIDE}")
    return studies.decide_comparisons(registered, frame, records, resamples=resamples, cost=cost, time=scale.time,
                                      evidence=evidence)


def pareto_points(scale: Scale, registered: studies.Study, frame: pd.DataFrame,
                  root: str | Path | None = None) -> pd.DataFrame:
    """Per configuration: test accuracy (mean, 95% interval over the seeds of the records) and the scale's cost of
    a step in SGD steps, with ``on_front`` marking the Pareto front of the means (the input of
    :func:`sparsam.book.figures.cost.pareto`). The cost is the registered measurement's where the scale has one (its
    ratios to SGD in the same round, geometric mean and 95% interval over rounds, for the configurations it
    measured, cheapest first; a record that is not the registered measurement is an error), otherwise the
    records' time per step (:func:`sparsam.book.study.pareto_points`)."""
    if not has_cost_measurement(scale, root):
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
    if "rounds" not in points.columns:  # not from a registered measurement (pareto_points)
        return (f"the records' own {tables.COLUMN_NAMES[scale.time]} (a GPU run's wall time, synchronised per epoch), "
                "descriptive only: no side-by-side measurement is registered, so the study's cost comparisons are "
                "not decided")
    left_out = sorted(set(frame["configuration"]) - set(points["label"]))
    return (f"the registered measurement of {scale.cost_registration.as_posix()} ({int(points['rounds'].min())} "
            f"rounds, interleaved in one process), which timed {len(points)} of the {frame['configuration'].nunique()} "
            "configurations" + (f"; not timed there: {', '.join(left_out)}" if left_out else ""))


def cost_budget(registered: studies.Study) -> float | None:
    """The cost budget of the study's question in SGD steps (the margin of
    :data:`sparsam.book.study.COST_RULE` it decides by) where one of its comparisons has that claim, else None."""
    if not any(c.claim == studies.COST_RULE for c in registered.comparisons):
        return None
    return float(registered.declared[studies.COST_RULE]["margin"])


SPARSITY_FIELDS = frozenset({"optimizer", "sparsity"})  # what a configuration of the sparsity figure may set


SPARSITY_OPTIMIZERS = ("sgd", "sam", "ssam-f", "ssam-d")


def sparsity_configurations(registered: studies.Study) -> list[str]:
    """The configurations of the study that set nothing but their optimizer (SGD, SAM, SSAM-F, SSAM-D) and a
    sparsity on top of the regime: the lines of the accuracy-against-sparsity figure, in the file's order
    (a control that changes the normalisation, the mask's pattern or rule, the drop rate, ... is left out)."""
    return [name for name, (fields, _) in registered.configurations.items()
            if set(fields) <= SPARSITY_FIELDS and fields.get("optimizer") in SPARSITY_OPTIMIZERS]


def _listed(values: Sequence[Any]) -> str:
    items = [str(v) for v in values]
    return " and ".join(items) if len(items) < 3 else f"{', '.join(items[:-1])} and {items[-1]}"


@dataclass(frozen=True)
class Declaration:
    """What a study file declares while it is not a registration (it has no configurations): its question, the
    settings common to its candidate regimes and each candidate's own, its pilot (configurations, each an
    optimizer's name, its seeds and its store), the configurations it plans and its rule for the study's seeds;
    with how many of the pilot's runs have a record in the pilot's store (matched on every setting but those of
    :data:`sparsam.book.study.pilot.FAST_PATH_FIELDS`), and how many records the scale's own store holds (none before
    the registration)."""

    path: Path  # the study file, relative to the book's root
    store: Path  # the scale's store of study runs, relative to the book's root
    question: str
    common: dict[str, Any]
    candidates: dict[str, dict[str, Any]]
    pilot_configurations: tuple[str, ...]
    pilot_seeds: tuple[int, ...]
    pilot_store: Path | None
    planned: tuple[str, ...]
    seed_rule: str
    pilot_recorded: int
    store_records: int

    def regimes(self) -> dict[str, TrainConfig]:
        """Each candidate regime as a training configuration: the common settings, then the candidate's own."""
        return {name: TrainConfig.from_dict({**self.common, **own}) for name, own in self.candidates.items()}

    def pilot_runs(self) -> dict[str, list[TrainConfig]]:
        """Per candidate, the pilot's runs: each pilot configuration (its optimizer) at each pilot seed."""
        return {name: [config.replace(optimizer=o, seed=seed) for o in self.pilot_configurations
                       for seed in self.pilot_seeds] for name, config in self.regimes().items()}

    def frame(self) -> pd.DataFrame:
        """The declared settings: one row per setting (the common ones, then those a candidate sets), one column
        per candidate with its value, and whether the setting is common or the candidate's own."""
        names = list(dict.fromkeys([*self.common, *(k for own in self.candidates.values() for k in own)]))
        varied = {k for settings in self.candidates.values() for k in settings}
        return pd.DataFrame([{"setting": name, "declared": "per candidate" if name in varied else "common",
                              **{f"candidate {c}": {**self.common, **own}.get(name, "–")
                                 for c, own in self.candidates.items()}} for name in names])

    def text(self) -> str:
        """What the file declares ("The file declares ..."), in words read from it: the question, the candidate
        regimes, the pilot with its records so far, the planned configurations, and whether a run of the study
        exists."""
        runs = sum(len(r) for r in self.pilot_runs().values())
        candidates = "; ".join(f"{name}: " + ", ".join(f"{k} {v}" for k, v in own.items())
                               for name, own in self.candidates.items())
        where = (f"{self.pilot_recorded} of its {runs} runs have a record in {self.pilot_store.as_posix()}/"
                 if self.pilot_store is not None else "the file names no store for its records")
        store = self.store.as_posix()
        runs_text = (f"No run of the study exists yet: {store}/ holds no record" if not self.store_records else
                     f"{store}/ holds {self.store_records} records, which the book reads as the study's only once "
                     "the file is a registration")
        return (f"The file declares the study's question (\u201c{self.question}\u201d), "
                f"{len(self.candidates)} candidate regime{'s' if len(self.candidates) != 1 else ''} on common "
                f"settings ({candidates}), a pilot of {_listed(self.pilot_configurations)} over seeds "
                f"{_listed(self.pilot_seeds)} in each candidate ({where}) and the configurations it plans, "
                f"{_listed(self.planned) or 'none named'}; the study's seeds are {self.seed_rule}. {runs_text}.")


def declaration(scale: Scale, root: str | Path | None = None) -> Declaration:
    """What the scale's study file declares before its registration (:class:`Declaration`), read from the file of
    the book at ``root`` (default: the book around the current directory); a file that is a registration, or that
    declares no candidates, is an error."""
    folder = _root(root)
    if studies.is_registration(folder / scale.study_file):
        raise ValueError(f"study_file: {scale.study_file.as_posix()} is a registration; read it with load()")
    try:
        declared = studies.load_candidates(folder / scale.study_file)
    except ValueError:
        raise ValueError(f"study_file: {scale.study_file.as_posix()} must declare candidates (name -> settings)"
                         ) from None
    found = Declaration(
        path=scale.study_file, store=scale.store, question=declared.question, common=declared.common,
        candidates=declared.candidates, pilot_configurations=declared.pilot_configurations,
        pilot_seeds=declared.pilot_seeds, pilot_store=declared.pilot_store,
        planned=tuple(declared.configurations_planned),
        seed_rule=("chosen after the pilot, by the file's rule (selection: seeds)" if declared.selection.get("seeds")
                   else "not yet chosen"),
        pilot_recorded=0, store_records=0)
    wanted = [run_key(c) for runs in found.pilot_runs().values() for c in runs]
    pilot_store = None if found.pilot_store is None else folder / found.pilot_store
    recorded = 0
    if pilot_store is not None and pilot_store.is_dir():
        keys = [run_key(TrainConfig.from_dict(r["summary"]["config"])) for r in load_all(pilot_store)]
        recorded = sum(1 for key in wanted if key in keys)
    store = folder / scale.store
    return dataclasses.replace(found, pilot_recorded=recorded,
                               store_records=len(list(store.glob("*.json"))) if store.is_dir() else 0)


def _seed_counts(registered: studies.Study) -> str:
    counts = sorted({len(seeds) for _, seeds in registered.configurations.values()})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]} per configuration"


@dataclass(frozen=True)
class Report:
    """What a chapter shows of a scale, in the state it is in (:func:`report`). Without records: ``text`` says
    where it stands (and, while its file is no registration, what the file declares, ``declaration``) and
    ``deviations`` sets the declared or registered regimes against the papers' setup; the frames of records are
    empty and ``decided`` is None. With records (``records``: its store's, which ``frame``'s ``position`` indexes;
    ``frame``: :func:`sparsam.book.study.study_frame`): ``accuracy`` per configuration (mean, 95% t-interval over its
    seeds, ``n`` seeds; in the registration's order), ``configurations``
    (:func:`sparsam.book.study.configuration_table`), ``curves`` (per epoch, ``method`` = configuration),
    ``decided`` (:func:`decide`: every comparison, read as one family) with its ``audit``
    (:func:`sparsam.book.study.audit_frame`), and ``deviations`` from the records. ``statuses``: its
    :func:`scale_statuses`; ``sentence``: its :func:`scale_sentence`."""

    state: ScaleState
    text: str
    deviations: pd.DataFrame
    statuses: dict[str, str]
    sentence: str
    scale_text: str = "no runs"
    declaration: Declaration | None = None
    registered: studies.Study | None = None
    records: tuple[dict[str, Any], ...] = ()
    frame: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    accuracy: pd.DataFrame = dataclasses.field(
        default_factory=lambda: pd.DataFrame(columns=["configuration", "mean", "low", "high", "n"]))
    configurations: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    curves: pd.DataFrame = dataclasses.field(
        default_factory=lambda: pd.DataFrame(columns=["run_id", "epoch", "train_loss", "test_acc", "method"]))
    decided: pd.DataFrame | None = None
    audit: pd.DataFrame | None = None
    chance: float | None = None


def report(scale: Scale, root: str | Path | None = None, resamples: int = 2000) -> Report:
    """What a chapter shows of ``scale`` in the book at ``root`` (default: the book around the current directory),
    in the state its file and store are in (:class:`Report`): read only, nothing is trained. ``resamples``: of
    the paired bootstrap of its accuracy comparisons (0: none)."""
    folder = _root(root)
    state = survey(folder, (scale,))[0]
    if not state.has_records:
        statuses = scale_statuses(state)
        if not state.exists:
            table = deviations.deviation_table(pd.DataFrame(), scale.paper)
            return Report(state, state.text(), table, statuses, scale_sentence(scale, statuses))
        if not state.registered:
            declared = declaration(scale, folder)
            table = deviations.regime_deviation_table(
                {f"candidate {name}": config for name, config in declared.regimes().items()}, scale.paper,
                declared.seed_rule)
            return Report(state, f"{state.text()}. {declared.text()}", table, statuses,
                          scale_sentence(scale, statuses), declaration=declared)
        registered = studies.load_study(folder / scale.study_file, margins=folder / MARGINS)
        table = deviations.regime_deviation_table({"registered regime": TrainConfig.from_dict(registered.regime)},
                                                  scale.paper, _seed_counts(registered))
        return Report(state, f"{state.text()}.", table, statuses, scale_sentence(scale, statuses),
                      registered=registered)
    registered, records, frame = load(scale, folder)
    used = [records[i] for i in frame["position"]]
    order = [name for name in registered.configurations if name in set(frame["configuration"])]
    accuracy = summarize(frame, "configuration", "final_test_acc").set_index("configuration").loc[order]
    curves = metrics_frame(used)
    curves["method"] = curves["run_id"].map(frame.set_index("run_id")["configuration"])
    decided = decide(scale, registered, frame, records, resamples=resamples, root=folder)
    statuses = scale_statuses(state, registered, decided)
    scale_text = deviations.scale_text(frame)
    table = deviations.deviation_table(frame, scale.paper, [r["summary"]["data"]["note"] for r in used])
    return Report(state, f"{state.text()}.", table, statuses, scale_sentence(scale, statuses, scale_text),
                  scale_text=scale_text, registered=registered, records=tuple(records), frame=frame,
                  accuracy=accuracy.reset_index(), configurations=studies.configuration_table(frame, scale.time),
                  curves=curves, decided=decided, audit=studies.audit_frame(registered, decided),
                  chance=100 / used[0]["summary"]["data"]["num_classes"])


def scale_statuses(state: ScaleState, registered: studies.Study | None = None,
                   decided: pd.DataFrame | None = None) -> dict[str, str]:
    """The status of each claim of the table at one scale: until every planned run has a record
    (:attr:`ScaleState.complete`), where it stands (:meth:`ScaleState.cell`: no verdict from partial records, even
    where ``decided`` is given), for every claim, or, with its ``registered`` study, for every claim it makes a
    comparison of ("not in the study" for the others); once all are in, the family-wise statuses of its
    ``decided`` comparisons (:func:`decide`) combined per claim of the scale (:attr:`Scale.claim_map`,
    :func:`sparsam.book.study.claim_statuses`; "not in the study" for a claim it makes no comparison of), each
    followed, where a rule added after the runs replaced a registered one, by that rule's date and the registered
    rule's reading (:func:`with_rule`, :func:`sparsam.book.study.claim_rules`)."""
    if not state.complete:
        made = None if registered is None else {(c.claim, c.a, c.b) for c in registered.comparisons}
        return {c.key: state.cell() if made is None or made & set(state.scale.claim_map.get(c.key, ()))
                else studies.NOT_IN_STUDY for c in registry.table_claims()}
    if registered is None or decided is None:
        raise ValueError(f"registered and decided: every run of the {state.scale.name} has a record, pass its study "
                         "and its decided comparisons")
    statuses = studies.claim_statuses(registered, decided, reading="family-wise", claims=state.scale.claim_map)
    rules = studies.claim_rules(registered, decided, claims=state.scale.claim_map)
    out = {c.key: with_rule(statuses.get(c.key, studies.NOT_IN_STUDY), rules.get(c.key, ""))
           for c in registry.table_claims()}
    second = second_family(state)
    if second is not None:  # the claims its registered curvature family decides, which the accuracy family cannot
        registration, verdicts = second
        words = second_family_words(registration, verdicts)
        for key, status in flatness_family.claim_statuses(registration, verdicts, _claim_rules()).items():
            if out[key] == studies.NOT_IN_STUDY:
                out[key] = with_rule(status, words)
    return out


def _claim_rules() -> dict[str, tuple[str, ...]]:
    """Per claim of the table, the rules of the rows it is decided by (:attr:`sparsam.book.registry.Claim.rows`)."""
    return {c.key: tuple(rule for rule, _ in c.rows) for c in registry.table_claims()}


def second_family(state: ScaleState) -> tuple[study_model.FlatnessRegistration, dict[str, Verdict]] | None:
    """The scale's registered second family (:attr:`Scale.second_family`) and its comparisons decided from its
    flatness records (:func:`sparsam.book.study.flatness_family.decide`), once every planned run of the scale has a
    record and at least one of its networks is measured; None otherwise, or for a state not surveyed in a book."""
    if state.scale.second_family is None or state.root is None or not state.complete:
        return None
    path = state.root / state.scale.second_family
    if not path.is_file():
        return None
    registration = study_model.load_flatness_registration(path, margins=state.root / MARGINS)
    rows = flatness_family.flatness_rows(registration)  # its store, in the book it was read from
    if rows.empty:
        return None
    return registration, flatness_family.decide(registration, rows)


def second_family_words(registration: study_model.FlatnessRegistration, verdicts: Mapping[str, Verdict]) -> str:
    """What decided a claims-table cell of a second family, for the brackets after its status: e.g. "the registered
    second family (curvature, registered 2026-12-07): 10 comparisons at 4 paired seeds, Holm"."""
    seeds = max(v.n for v in verdicts.values())
    correction = "Holm" if registration.correction == "holm" else "no correction"
    return (f"the registered second family (curvature, registered {registration.date}): {len(verdicts)} comparisons "
            f"at {seeds} paired seeds, {correction}")


def claim_scales(state: ScaleState, registered: studies.Study, decided: pd.DataFrame) -> dict[str, str]:
    """Per claim of the table that the scale's study decides a comparison of (by claim name, as the claims table
    names it): the scale of the records that decided them (:func:`sparsam.book.study.claim_scales`); for a claim its
    registered second family decides instead (:func:`second_family`), the scale of the networks it measured and of
    the measurement."""
    scales = studies.claim_scales(registered, decided, claims=state.scale.claim_map)
    out = {c.name: scales[c.key] for c in registry.table_claims() if scales.get(c.key)}
    second = second_family(state)
    if second is not None and state.root is not None:
        registration, verdicts = second
        frame = studies.study_frame(registered, load_all(state.root / state.scale.store))
        measured = frame[frame["run_id"].isin({c.run_id() for c in registration.configs().values()})]
        text = (f"{deviations.scale_text(measured)}; the Hessian on {registration.measurement['n_eval']:,} of each "
                "run's training images, with the labels it trained on")
        for key in flatness_family.claim_statuses(registration, verdicts, _claim_rules()):
            name = next(c.name for c in registry.table_claims() if c.key == key)
            out.setdefault(name, text)
    return out


def scale_sentence(scale: Scale, statuses: Mapping[str, str], scale_text: str = "") -> str:
    """Which of its own claims (:attr:`Scale.claim_map`) a scale decides, in words, from its
    :func:`scale_statuses`: e.g. "The ImageNet study does not decide its claim (...: not yet registered)."; with
    ``scale_text`` (its records' :func:`sparsam.book.deviations.scale_text`) named after it."""
    names = {c.key: c.name for c in registry.table_claims()}
    keys = [key for key in scale.claim_map if key in names]
    missing = [key for key in keys if key not in statuses]
    if missing:
        raise ValueError(f"statuses must hold the {scale.name}'s claims, missing {missing}")
    read = [f"{names[key]}: {statuses[key]}" for key in keys]
    decided = [text for key, text in zip(keys, read) if status_of(statuses[key]) in DECIDED]
    if len(keys) == 1:
        text = f"The {scale.name} {'decides' if decided else 'does not decide'} its claim ({read[0]})."
    elif decided:
        text = f"The {scale.name} decides {len(decided)} of its {len(keys)} claims ({'; '.join(decided)})."
    else:
        text = f"The {scale.name} decides none of its {len(keys)} claims ({'; '.join(read)})."
    return text + (f" Its scale: {scale_text}." if scale_text else "")


def book_records(root: str | Path | None = None, scales: Sequence[Scale] = SCALES) -> pd.DataFrame:
    """Every run record the book at ``root`` holds (a :func:`sparsam.book.records.records_frame`): the profiles'
    (:data:`sparsam.book.layout.RUNS_STORE`) and each of ``scales``' store, each record once."""
    folder = _root(root)
    stores = dict.fromkeys([RUNS_STORE, *(s.store for s in scales)])
    found = [r for store in stores if (folder / store).is_dir() for r in load_all(folder / store)]
    return records_frame(found).drop_duplicates("run_id") if found else records_frame([])


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def limits_text(scale: Scale, registered: studies.Study, frame: pd.DataFrame, decided: pd.DataFrame, *,
                target: float = 0.8) -> str:
    """What a scale's study cannot decide, and why, from its records ("" where nothing limits it): each
    non-inferiority comparison whose premise (:func:`sparsam.book.study.premises`) the family does not show, and
    the power (:func:`sparsam.book.stats.power`, one-sided 2.5%) at which its seeds show a method equal to its
    reference non-inferior at the margin, with the realised pooled paired SD (:func:`sparsam.book.study.paired_sds`)
    at the most seeds any of them pairs, where it is below ``target``, and the seeds ``target`` needs."""
    rows = decided.set_index("claim")
    declared = registered.declared
    parts = []
    premised = {label: shown for label, shown in studies.premises(registered, frame).items() if label in rows.index}
    unshown = sorted({shown for shown in premised.values() if shown is not None
                      and rows.loc[shown, "family_status"] != "reproduced"})
    for shown in unshown:
        row = rows.loc[shown]
        needing = [label for label, p in premised.items() if p == shown]
        reference = next(c.b for c in registered.family if studies.comparison_label(c) == needing[0])
        parts.append(f"{shown.split(' (')[0].replace(' vs ', ' is not shown better than ')} "
                     f"({row['text'].rsplit(':', 1)[0]}; family-wise {row['family_status']}), so no non-inferiority "
                     f"to {reference} can stand ({_count(len(needing), 'comparison')})")
    without = [label for label, shown in premised.items() if shown is None]
    if without:
        parts.append(f"it makes no comparison that shows the premise of its non-inferiority comparisons, so none "
                     f"can stand ({_count(len(without), 'comparison')})")
    sds = studies.paired_sds(registered, frame, "pp")
    pooled = float(sds.loc[sds["comparison"] == "pooled", "sd"].iloc[0]) if len(sds) > 1 else math.nan
    equal = [c for c in registered.comparisons if declared[c.claim]["test"] == "non-inferiority"
             and declared[c.claim]["unit"] == "pp" and studies.comparison_label(c) in rows.index]
    for claim in dict.fromkeys(c.claim for c in equal) if math.isfinite(pooled) else ():
        of_claim = [c for c in equal if c.claim == claim]
        n = int(max(rows.loc[studies.comparison_label(c), "n"] for c in of_claim))
        margin = float(declared[claim]["margin"])
        reached = power(n, margin, pooled) if n >= 2 else 0.0
        if reached < target:
            parts.append(f"at {n} seeds (the most its comparisons of {claim} pair) a method equal to {of_claim[0].b} "
                         f"is shown non-inferior at the {margin:g} pp margin with power {reached:.2f} (realised "
                         f"pooled paired SD {pooled:.2f} pp; {target:.0%} power needs "
                         f"{seeds_for_power(margin, pooled, target=target)} seeds)")
    return f"What the {scale.name} cannot decide, and why: {'; and '.join(parts)}." if parts else ""
