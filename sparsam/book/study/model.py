"""The study files, each format parsed once (:func:`parse`) into its dataclass.

- A **candidates file** (``results/gpu_study/gpu_study.yaml``, ``results/imagenet_study/imagenet_study.yaml``,
  ``results/noise_study/noise_study.yaml``) declares, before any run, the common settings, the candidate regimes,
  the pilot and what the study plans; :func:`load_candidates` reads it (:class:`Candidates`).
- A **registration** (``results/study/cpu_study.yaml``; a candidates file once its registration is appended) names
  the regime, the configurations with their seeds and the comparisons with the margins it pins;
  :func:`load_study` reads and checks it (:class:`Study`): every configuration is a valid :class:`TrainConfig`
  (the ``regime`` plus the configuration's own fields, once per seed of its seed list), every comparison names
  configurations of the study and a claim whose pinned margin agrees with the margins it is decided by.
- A **cost registration** (``results/study/cost_registration.yaml``) pre-registers a study's interleaved cost
  measurement; :func:`load_cost_registration` reads and checks it against its study (:class:`CostRegistration`).
- A **flatness registration** (``results/noise_study/flatness_registration.yaml``) pre-registers a second family of a
  study, the curvature of some of its networks; :func:`load_flatness_registration` reads and checks it against its
  study and the book's margins (:class:`FlatnessRegistration`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from ..._checks import check_int
from ...experiment.config import TrainConfig
from ...experiment import yaml_text
from ...experiment.grid import is_study_file
from ...experiment.provenance import git
from ..claims import ADDED, Provenance
from ..layout import COST_REGISTRATION, MARGINS, STUDY_FILE, book_root
from ..stats import Margins, declared_claims, margins as declared_margins

MARGIN_FIELDS = ("test", "unit", "better", "margin")  # what a study pins of each claim of book/margins.yaml
CORRECTIONS = ("none", "holm")  # what a registration names for its family: no correction, or Holm's step-down
# what a registration adds below a candidates file
ADDED_KEYS = ("regime", "seeds", "configurations", "comparisons", "margins", "correction", "pilot_result")
REFERENCE = "sgd"  # the configuration a cost is measured in units of
AFTER_THE_RUNS = "added_after_the_runs"  # the section of a study file that holds what was added after its runs
AFTER_THE_RUNS_FIELDS = ("date", "note", "comparisons", "margins", "replaced")  # what that section may hold
REPLACEABLE = {"cost": "ratio"}  # a registered rule a study may replace after its runs -> the unit of its claims
# the unit a cost registration names for a study on each kind of device (sparsam.book.study.cost.CLOCKS)
DEVICE_UNITS = {"cpu": "process-CPU seconds per training step, one thread",
                "cuda": "GPU wall seconds per training step, the device synchronised around each epoch"}


def parse(path: str | Path) -> tuple[str, Any]:
    """A study file's text and its YAML: the one place a study file is parsed."""
    text = Path(path).read_text()
    return text, yaml_text.load(text)


def is_registration(path: str | Path) -> bool:
    """Whether the study file at ``path`` is a registration (it has a regime and configurations)."""
    return is_study_file(parse(path)[1])

def pinned_rule(rule: Mapping[str, Any], claims: Sequence[str]) -> dict[str, Any]:
    """What a registration pins of a claim's ``rule`` (one of :func:`sparsam.book.stats.margins`): its margin fields,
    its premise where the study makes that claim too (one of ``claims``), and a contrast other than the difference."""
    pinned = {k: rule[k] for k in MARGIN_FIELDS}
    if rule.get("premise") in claims:
        pinned["premise"] = rule["premise"]
    if rule.get("contrast", "difference") != "difference":
        pinned["contrast"] = rule["contrast"]
    return pinned


@dataclass(frozen=True)
class Comparison:
    """One pre-registered decision: configuration ``a`` against ``b`` by the rule of ``claim``; with
    ``over``, the half-gain contrast "``a`` keeps at least half of ``b``'s gain over ``over``"."""

    claim: str
    a: str
    b: str
    over: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The configurations it compares."""
        return (self.a, self.b) if self.over is None else (self.a, self.b, self.over)


@dataclass(frozen=True)
class Replacement:
    """A rule of the registration replaced after the runs (``added_after_the_runs.replaced`` of a study file):
    ``what`` it decides (one of :data:`REPLACEABLE`: "cost", the comparisons whose claims are in unit "ratio"), the
    ``registered`` rule in words, the file that holds the rule replacing it (``by``, relative to the book's root),
    the ``date`` it was replaced (YYYY-MM-DD, declared; :func:`dates_against_git` checks it against the day git
    first committed ``by``) and the ``reason``."""

    what: str
    registered: str
    by: Path
    reason: str
    date: str


@dataclass(frozen=True)
class Study:
    """The parsed pre-registration."""

    regime: dict[str, Any]
    configurations: dict[str, tuple[dict[str, Any], tuple[int, ...]]]  # name -> (fields, seeds)
    comparisons: tuple[Comparison, ...]
    margins: dict[str, Any]
    pilot: dict[str, Any]
    correction: str = "none"             # what the registration named for its family (CORRECTIONS)
    added: tuple[Comparison, ...] = ()   # comparisons added after the runs, read in the same family
    reading_note: str = ""               # why the family-wise reading was added
    reading_date: str = ""               # the day it was added (YYYY-MM-DD, declared in the study file)
    # the rule of each claim it decides by (sparsam.book.stats.declared_claims): its own margins, or a margins file's
    declared: dict[str, dict[str, Any]] = field(default_factory=dict)
    replaced: dict[str, Replacement] = field(default_factory=dict)  # registered rules replaced after the runs
    path: Path | None = None  # the study file (None: built in memory), whose git history dates what was added

    def replacement(self, comparison: Comparison) -> Replacement | None:
        """The rule that replaced the registered rule of ``comparison`` after the runs (None: its rule is the
        registered one, or it is not a registered comparison)."""
        if not self.registered(comparison):
            return None
        unit = self.declared[comparison.claim]["unit"]
        return next((r for r in self.replaced.values() if REPLACEABLE[r.what] == unit), None)

    def provenance(self, comparison: Comparison, replaced: bool = True) -> Provenance:
        """Where the rule that decides ``comparison`` comes from: added after the runs for a comparison the
        registration did not make (on the date and for the reason of the file's ``added_after_the_runs``) and,
        where ``replaced`` (its registered rule is not the one applied), for one whose registered rule was
        replaced (on the replacement's date, for its reason); registered otherwise. The dates are the study
        file's own, so a copy of it outside git reads as the book does (:func:`dates_against_git` checks them)."""
        if not self.registered(comparison):
            return Provenance(ADDED, self.reading_date, self.reading_note)
        found = self.replacement(comparison) if replaced else None
        if found is None:
            return Provenance()
        return Provenance(ADDED, found.date, found.reason, found.registered)

    @property
    def family(self) -> tuple[Comparison, ...]:
        """Every comparison the study decides: the registered ones, then those added after the runs."""
        return (*self.comparisons, *self.added)

    def configs(self, name: str | None = None, order: Literal["configuration", "seed"] = "configuration"
                ) -> list[TrainConfig]:
        """The training configurations of ``name`` (every configuration if None), one per seed: each
        configuration's seeds in turn, or (``order="seed"``) every configuration at the first seed, then at the
        next, so that a study stopped part-way holds whole seeds."""
        names = list(self.configurations) if name is None else [name]
        for n in names:
            if n not in self.configurations:
                raise ValueError(f"configuration must be one of {', '.join(self.configurations)}, got {n!r}")
        if order not in ("configuration", "seed"):
            raise ValueError(f"order must be 'configuration' or 'seed', got {order!r}")
        pairs = [(n, seed) for n in names for seed in self.configurations[n][1]]
        if order == "seed":
            seeds = list(dict.fromkeys(seed for _, seed in pairs))
            pairs = sorted(pairs, key=lambda pair: seeds.index(pair[1]))  # stable: configurations in file order
        return [self._config(n, seed) for n, seed in pairs]

    def paired_seeds(self, a: str, b: str) -> int:
        """How many seeds a comparison of ``a`` with ``b`` pairs once every planned run is in."""
        return len(set(self.configurations[a][1]) & set(self.configurations[b][1]))

    def registered(self, comparison: Comparison) -> bool:
        """Whether ``comparison`` is one of the pre-registration's (not added after the runs)."""
        return comparison in self.comparisons

    def name_of(self, config: TrainConfig) -> str | None:
        """The configuration a training config belongs to (None if it is not part of the study)."""
        return next((n for n in self.configurations if self._config(n, config.seed) == config), None)

    def _config(self, name: str, seed: int) -> TrainConfig:
        return TrainConfig.from_dict({**self.regime, **self.configurations[name][0], "seed": seed})


def load_study(path: str | Path | None = None, margins: str | Path | Margins | None = None) -> Study:
    """Read and check the pre-registration (default: the book's ``results/study/cpu_study.yaml``); any
    inconsistency is a ``ValueError`` naming it. Its comparisons are decided by ``margins`` (:attr:`Study.declared`):
    a margins file (e.g. the book's ``book/margins.yaml``) or its claims (:func:`sparsam.book.stats.margins`), against
    which every margin the study pins must agree; None: the study's own, :func:`own_margins` (what its registration
    pinned and what its ``added_after_the_runs`` adds), so that a study file decides its comparisons anywhere."""
    path = book_root() / STUDY_FILE if path is None else Path(path)
    _, spec = parse(path)
    seed_lists = {k: tuple(int(s) for s in v) for k, v in spec["seeds"].items()}
    configurations = {}
    for name, values in spec["configurations"].items():
        values = dict(values)
        seeds = values.pop("seeds")
        if seeds not in seed_lists:
            raise ValueError(f"configuration {name!r}: seeds must be one of {sorted(seed_lists)}, got {seeds!r}")
        configurations[str(name)] = (values, seed_lists[seeds])
    comparisons = tuple(_comparison(c) for c in spec["comparisons"])
    correction = str(spec.get("correction", "none"))
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    reading = dict(spec.get(AFTER_THE_RUNS) or {})
    unknown = sorted(set(reading) - set(AFTER_THE_RUNS_FIELDS))
    if unknown:
        raise ValueError(f"{AFTER_THE_RUNS} may hold {', '.join(AFTER_THE_RUNS_FIELDS)} only, got {unknown}")
    added = tuple(_comparison(c) for c in reading.get("comparisons", []))
    replaced = {str(what): _replacement(str(what), entry)
                for what, entry in dict(reading.get("replaced") or {}).items()}
    if margins is None:
        declared, source = own_margins(spec, path.name), f"{path.name} (its own margins)"
    else:
        declared = dict(margins) if isinstance(margins, Mapping) else declared_margins(margins)
        source = "the margins given" if isinstance(margins, Mapping) else str(margins)
        for claim, rule in _pinned_rules(spec).items():  # what the file sets itself, not the defaults
            given = declared.get(claim)
            differs = [k for k in rule if given is None or given.get(k) != rule[k]]
            if differs:
                raise ValueError(f"claim {claim!r}: the study's pinned margin ({', '.join(differs)}) differs from "
                                 f"{source}")
    if reading and "date" not in reading:
        raise ValueError(f"{AFTER_THE_RUNS}.date: give the day the section was added (YYYY-MM-DD)")
    reading_date = _date(f"{AFTER_THE_RUNS}.date", reading["date"]) if reading else ""
    study = Study(dict(spec["regime"]), configurations, comparisons, dict(spec["margins"]), dict(spec["pilot"]),
                  correction, added, " ".join(str(reading.get("note", "")).split()), reading_date, declared,
                  replaced, path)
    study.configs()  # every configuration must be valid
    for c in study.family:
        for name in c.names:
            if name not in configurations:
                raise ValueError(f"comparison {c}: {name!r} is not a configuration of the study")
        if c.claim not in declared:
            raise ValueError(f"comparison {c}: claim {c.claim!r} is not declared in {source}")
        if (c.over is not None) != (declared[c.claim]["contrast"] == "half-gain"):
            raise ValueError(f"comparison {c}: 'over' goes with a half-gain claim and only with one")
        if c in comparisons and c.claim not in study.margins:
            raise ValueError(f"comparison {c}: claim {c.claim!r} needs a margin in the study and in {source}")
    twice = sorted({comparison_label(c) for c in study.family if study.family.count(c) > 1})
    if twice:
        raise ValueError(f"each comparison is made once, got twice: {', '.join(twice)}")
    return study


def _pinned_rules(spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What a study file sets of each claim's rule itself: the registration's ``margins`` (with its ``level`` and
    ``min_n`` in each), then what ``added_after_the_runs.margins`` adds, which may be a claim, or a premise of a
    pinned one, but never a change to what the registration pinned."""
    pinned = dict(spec.get("margins") or {})
    defaults = {k: pinned.pop(k) for k in ("level", "min_n") if k in pinned}
    rules = {claim: {**defaults, **dict(rule)} for claim, rule in pinned.items()}
    added = dict((spec.get("added_after_the_runs") or {}).get("margins") or {})
    for claim, rule in added.items():
        changed = [k for k in dict(rule) if k in MARGIN_FIELDS and claim in pinned]
        if changed:
            raise ValueError(f"added_after_the_runs.margins: {claim} may not change the registered "
                             f"{', '.join(changed)}")
        rules[claim] = {**rules.get(claim, defaults), **dict(rule)}
    return rules


def own_margins(spec: Mapping[str, Any], name: str = "the study") -> dict[str, dict[str, Any]]:
    """The claims a study file (parsed, ``spec``; ``name`` names it in errors) declares for itself
    (:func:`_pinned_rules`: the registration's margins, the :data:`MARGIN_FIELDS`, ``level`` and ``min_n`` with
    the premise and contrast a registration copies, and what ``added_after_the_runs.margins`` adds), checked as a
    margins file is (:func:`sparsam.book.stats.declared_claims`)."""
    pinned = set(dict(spec.get("margins") or {}))
    claims = {claim: {**rule, "reason": f"{'pinned' if claim in pinned else 'added after the runs'} in {name}"}
              for claim, rule in _pinned_rules(spec).items()}
    return declared_claims({"claims": claims}, name)


def _replacement(what: str, entry: Any) -> Replacement:
    """One entry of ``added_after_the_runs.replaced``: ``registered`` (the registered rule, in words), ``by`` (the
    file of the rule replacing it), ``date`` (YYYY-MM-DD) and ``reason``, each given."""
    if what not in REPLACEABLE:
        raise ValueError(f"{AFTER_THE_RUNS}.replaced: what is replaced must be one of {', '.join(REPLACEABLE)}, "
                         f"got {what!r}")
    fields = ("registered", "by", "date", "reason")
    if not isinstance(entry, Mapping) or sorted(entry) != sorted(fields) or not all(entry[k] for k in fields):
        raise ValueError(f"{AFTER_THE_RUNS}.replaced.{what} must give {', '.join(fields)} (each not empty), "
                         f"got {entry!r}")
    return Replacement(what, " ".join(str(entry["registered"]).split()), Path(str(entry["by"])),
                       " ".join(str(entry["reason"]).split()),
                       _date(f"{AFTER_THE_RUNS}.replaced.{what}.date", entry["date"]))


def _date(name: str, value: Any) -> str:
    """A declared day as ``YYYY-MM-DD`` (YAML reads an unquoted one as a date), or a one-line error naming it."""
    import datetime

    text = value.isoformat() if isinstance(value, datetime.date) else str(value)
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} must be a day YYYY-MM-DD, got {value!r}") from None
    if len(text) != 10:
        raise ValueError(f"{name} must be a day YYYY-MM-DD, got {value!r}")
    return text


def dates_against_git(study: Study) -> dict[str, tuple[str, str]]:
    """Each date the study file declares for what was added after its runs, beside the day git says it was added:
    ``{"added_after_the_runs": (declared, git), "replaced.cost": (declared, git), ...}``; git's day is the first
    commit that added the section to the study file, or the replacement's ``by`` file, and "unknown" outside git."""
    if study.path is None:
        raise ValueError("dates_against_git needs a study read from a file (study.path is None)")
    out = {}
    if study.reading_date:
        out[AFTER_THE_RUNS] = (study.reading_date, added_on(study.path, f"{AFTER_THE_RUNS}:"))
    for what, found in study.replaced.items():
        out[f"replaced.{what}"] = (found.date, added_on(in_book(study.path, found.by)))
    return out


def _comparison(entry: dict[str, Any]) -> Comparison:
    unknown = sorted(set(entry) - {"claim", "a", "b", "over"})
    if unknown:
        raise ValueError(f"a comparison holds claim, a, b and (for a half-gain claim) over, got {unknown} in {entry}")
    over = entry.get("over")
    return Comparison(str(entry["claim"]), str(entry["a"]), str(entry["b"]), None if over is None else str(over))


def comparison_label(comparison: Comparison) -> str:
    """How a comparison is named in the tables, e.g. ``"ssam-f-0.5 vs sam (accuracy_ssam_vs_sam)"`` or
    ``"ssam-f-0.5 keeps half of sam's gain over sgd (accuracy_ssam_keeps_half_gain)"``."""
    if comparison.over is not None:
        return f"{comparison.a} keeps half of {comparison.b}'s gain over {comparison.over} ({comparison.claim})"
    return f"{comparison.a} vs {comparison.b} ({comparison.claim})"


def registered_at(path: str | Path | None = None) -> str:
    """The commit that added the pre-registration (default: the book's), as ``"<short hash> (<date>)"``, from the
    history of the repository holding the file; "unknown" outside git."""
    path = (book_root() / STUDY_FILE if path is None else Path(path)).resolve()
    added = git("log", "--diff-filter=A", "--format=%h (%cs)", "--", path.name, cwd=path.parent)
    return added.splitlines()[-1] if added else "unknown"


def added_on(path: str | Path, marker: str | None = None) -> str:
    """The day (YYYY-MM-DD, the committer's date) of the first commit that added the file at ``path`` or, with
    ``marker``, that added ``marker`` to it, from the history of the repository holding it; "unknown" outside git
    or where no commit did."""
    path = Path(path).resolve()
    args = ("--diff-filter=A",) if marker is None else ("-S", marker)
    found = git("log", "--reverse", "--format=%cs", *args, "--", path.name, cwd=path.parent)
    return found.splitlines()[0] if found else "unknown"


REGISTRATION_MARKER = "pilot_result:"  # the key a registration appended to its candidates file begins its record with


def registration_commit(path: str | Path, marker: str = REGISTRATION_MARKER) -> str | None:
    """The full hash of the commit that appended the registration to the candidates file ``path`` (the first commit
    whose change adds ``marker``), or None where no commit has yet (or outside git)."""
    path = Path(path).resolve()
    found = git("log", "--reverse", "--format=%H", "-S", marker, "--", path.name, cwd=path.parent)
    return found.splitlines()[0] if found else None


def runs_before_registration(path: str | Path, records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The run ids of ``records`` whose code (their provenance's commit) does not descend from the commit that
    registered ``path``: runs that could have been made before the registration. Every record of a study that
    was registered before its runs gives none; all of them where no commit registered it."""
    path = Path(path).resolve()
    registered = registration_commit(path)
    out = []
    for record in records:
        summary = record.get("summary", record)
        commit = (summary.get("provenance") or {}).get("git_commit")
        after = (registered is not None and commit is not None
                 and git("merge-base", "--is-ancestor", registered, commit, cwd=path.parent) is not None)
        if not after:
            out.append(summary["run_id"])
    return out


@dataclass(frozen=True)
class Candidates:
    """A candidates file as declared before its pilot: the ``question``, the ``common`` settings, the
    ``candidates`` (what each regime changes), the ``pilot`` (as declared: its ``configurations``, ``seeds``,
    ``store`` and whatever else it names), the ``selection`` (its rules: ``rules`` where the file names them,
    else in words), what it plans (``configurations_planned``, ``seeds_planned``, ``comparisons_planned``), the
    keys of a registration it already holds (``registered``, of :data:`ADDED_KEYS`) and its ``text``."""

    path: Path | None
    question: str
    common: dict[str, Any]
    candidates: dict[str, dict[str, Any]]
    pilot: dict[str, Any]
    selection: dict[str, Any]
    configurations_planned: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> fields (none yet: {})
    seeds_planned: dict[str, Any] = field(default_factory=dict)
    comparisons_planned: tuple[dict[str, Any], ...] = ()
    registered: tuple[str, ...] = ()
    text: str = ""
    deviation: str = ""  # how the study departs from the papers, and why (one paragraph)
    pilot_result: dict[str, Any] = field(default_factory=dict)  # what its registration read from the pilot (none yet: {})

    @classmethod
    def of(cls, spec: Mapping[str, Any], path: str | Path | None = None, text: str = "") -> "Candidates":
        """The candidates file parsed as ``spec``; an error naming ``path`` where it declares no candidates."""
        where = "the candidates file" if path is None else Path(path).as_posix()
        if not isinstance(spec, Mapping) or not isinstance(spec.get("candidates"), Mapping) or not spec["candidates"]:
            raise ValueError(f"study_file: {where} must declare candidates (name -> settings)")
        return cls(None if path is None else Path(path), " ".join(str(spec.get("question", "not stated")).split()),
                   dict(spec.get("common") or {}), {str(k): dict(v or {}) for k, v in spec["candidates"].items()},
                   dict(spec.get("pilot") or {}), dict(spec.get("selection") or {}),
                   _planned(spec.get("configurations_planned")),
                   dict(spec.get("seeds_planned") or {}), tuple(dict(c) for c in spec.get("comparisons_planned") or ()),
                   tuple(k for k in ADDED_KEYS if k in spec), text,
                   deviation=" ".join(str(spec.get("deviation", "")).split()),
                   pilot_result=dict(spec.get("pilot_result") or {}))

    @property
    def pilot_seeds(self) -> tuple[int, ...]:
        """The pilot's seeds."""
        return tuple(int(s) for s in self.pilot.get("seeds", ()))

    @property
    def pilot_configurations(self) -> tuple[str, ...]:
        """The pilot's configurations (the optimizers it trains in each candidate)."""
        return tuple(str(c) for c in self.pilot.get("configurations", ()))

    @property
    def pilot_store(self) -> Path | None:
        """Where the pilot's records are (relative to the book's root); None where the file names no store."""
        return Path(self.pilot["store"]) if self.pilot.get("store") else None

    @property
    def rules(self) -> dict[str, Any] | None:
        """The selection's rules where the file names them (``selection.rules``); None: declared in words only."""
        return dict(self.selection["rules"]) if "rules" in self.selection else None

    def settings(self, name: str) -> dict[str, Any]:
        """The settings of candidate ``name``: the common ones, then its own."""
        if name not in self.candidates:
            raise ValueError(f"candidate must be one of {', '.join(self.candidates)}, got {name!r}")
        return {**self.common, **self.candidates[name]}

    def regimes(self) -> dict[str, TrainConfig]:
        """Each candidate regime as a training configuration."""
        return {name: TrainConfig.from_dict(self.settings(name)) for name in self.candidates}


def _planned(value: Any) -> dict[str, dict[str, Any]]:
    """The planned configurations: a mapping of name -> fields, or a list of names only (fields not yet chosen)."""
    if isinstance(value, Mapping):
        return {str(k): dict(v or {}) for k, v in value.items()}
    return {str(name): {} for name in value or ()}


def load_candidates(path: str | Path) -> Candidates:
    """The candidates file at ``path`` (a registration's too: it keeps what it declared before its pilot)."""
    text, spec = parse(path)
    return Candidates.of(spec, path, text)


def cost_record_named(path: str | Path) -> Path:
    """The record the cost registration at ``path`` names (relative to the book's root), unchecked: whether a
    measurement exists to be checked (:func:`load_cost_registration` checks it)."""
    return Path(parse(path)[1]["measurement"]["record"])


def study_device(study: Study, names: Sequence[str] | None = None) -> str:
    """The one kind of device ("cpu" or "cuda") the configurations ``names`` (all if None) of ``study`` train on."""
    kinds = {str(c.device).split(":")[0] for name in (names or study.configurations) for c in study.configs(name)}
    if len(kinds) != 1 or not kinds <= set(DEVICE_UNITS):
        raise ValueError(f"the configurations must all train on one of {', '.join(DEVICE_UNITS)}, got {sorted(kinds)}")
    return kinds.pop()


@dataclass(frozen=True)
class CostRegistration:
    """The parsed pre-registration of a study's interleaved cost measurement
    (``results/study/cost_registration.yaml``)."""

    path: Path
    study_path: Path
    study: Study
    comparisons: tuple[Comparison, ...]
    configurations: tuple[str, ...]
    rounds: int
    seed: int
    threads: int
    record: Path
    pilot: dict[str, Any]


def cost_comparisons(study: Study) -> tuple[Comparison, ...]:
    """The study's comparisons of cost: those whose claim is in unit "ratio" (:attr:`Study.declared`)."""
    return tuple(c for c in study.comparisons if study.declared[c.claim]["unit"] == "ratio")


def in_book(path: Path, named: str | Path) -> Path:
    """Where a file that the file at ``path`` names (``named``, relative to the book's root) lies: in the book
    holding ``path``; outside any book, beside ``path`` where it is there by its name (a copy of a study's
    folder), else in the book around the current directory (a changed copy of one of the book's files)."""
    try:
        return book_root(path.parent) / named
    except FileNotFoundError:
        pass
    beside = path.parent / Path(named).name
    if beside.exists():
        return beside
    try:
        return book_root() / named
    except FileNotFoundError:
        return beside


def load_cost_registration(path: str | Path | None = None, study: Study | None = None) -> CostRegistration:
    """Read and check the registration (default: the book's :data:`sparsam.book.layout.COST_REGISTRATION`; the
    paths inside it are relative to the book holding it, :func:`in_book`): its comparisons are every cost
    comparison of its study (``study``, else the file it names, read with its own margins) in the study's order,
    its configurations exactly those they name and SGD, all registered at its seed; ``rounds`` at least the
    margins' ``min_n``; one thread; the unit is process-CPU time per step."""
    path = book_root() / COST_REGISTRATION if path is None else Path(path)
    _, spec = parse(path)
    study_path = in_book(path, spec["study"])
    study = load_study(study_path) if study is None else study
    comparisons = tuple(Comparison(str(c["claim"]), str(c["a"]), str(c["b"])) for c in spec["comparisons"])
    expected = cost_comparisons(study)
    if comparisons != expected:
        raise ValueError(f"{path.name}: comparisons must be the study's cost comparisons "
                         f"{[comparison_label(c) for c in expected]}, got {[comparison_label(c) for c in comparisons]}")
    measurement = spec["measurement"]
    configurations = tuple(str(n) for n in measurement["configurations"])
    needed = {REFERENCE, *(name for c in comparisons for name in (c.a, c.b))}
    if sorted(configurations) != sorted(needed) or len(set(configurations)) != len(configurations):
        raise ValueError(f"{path.name}: configurations must be {sorted(needed)} (the comparisons' and "
                         f"{REFERENCE!r}), each once, got {list(configurations)}")
    seed = measurement["seed"]
    for name in configurations:
        if seed not in study.configurations[name][1]:
            raise ValueError(f"{path.name}: seed must be registered for every configuration, {name!r} lacks {seed!r}")
    min_n = int(next(iter(study.declared.values()))["min_n"])
    rounds = check_int("rounds", measurement["rounds"], min_n)
    device = study_device(study, configurations)
    if device == "cpu" and measurement["threads"] != 1:
        raise ValueError(f"{path.name}: threads must be 1 (the study's runs use one thread), "
                         f"got {measurement['threads']!r}")
    threads = check_int("threads", measurement["threads"], 1)
    if measurement["unit"] != DEVICE_UNITS[device]:
        raise ValueError(f"{path.name}: unit must be {DEVICE_UNITS[device]!r} (the study trains on {device}), "
                         f"got {measurement['unit']!r}")
    return CostRegistration(path, study_path, study, comparisons, configurations, rounds, int(seed), threads,
                        in_book(path, measurement["record"]), dict(spec["pilot"]))



FLATNESS_MEASURES = ("eigenvalue", "trace")  # what a flatness family may decide (sparsam.book.curvature's measures)
FLATNESS_SETTINGS = ("n_eval", "eval_batch_size", "power_iterations", "hutchinson_samples")  # curvature.Settings
FLATNESS_KEYS = ("study", "date", "question", "networks", "seeds", "seeds_why", "measurement", "measures", "store",
                 "margins", "comparisons", "correction")


@dataclass(frozen=True)
class FlatnessRegistration:
    """The parsed pre-registration of a study's curvature family (``results/noise_study/flatness_registration.yaml``):
    the networks it measures (``networks``: method label -> configuration of ``study``) at ``seeds``, the curvature
    ``measurement`` (the fields of :class:`sparsam.book.curvature.Settings`), the ``measures`` it decides (in
    normalised weights), the ``comparisons`` of method labels with their pinned ``margins``, the ``correction`` its
    family is read with, the ``date`` it was registered (YYYY-MM-DD, declared) and where its records go
    (``store``, relative to the book's root)."""

    path: Path
    study_path: Path
    study: Study
    date: str
    question: str
    networks: dict[str, str]
    seeds: tuple[int, ...]
    seeds_why: str
    measurement: dict[str, int]
    measures: tuple[str, ...]
    store: Path
    margins: dict[str, dict[str, Any]]
    comparisons: tuple[Comparison, ...]
    correction: str

    def configs(self) -> dict[tuple[str, int], TrainConfig]:
        """``{(method, seed): config}`` of every registered network, method by method: the study's configurations."""
        return {(method, seed): self.study._config(name, seed) for method, name in self.networks.items()
                for seed in self.seeds}

    def premises(self) -> dict[Comparison, Comparison]:
        """Each comparison whose claim has a premise in the margins (e.g. ``flatness_ssam_vs_sam``'s
        ``flatness_sam_vs_sgd``), mapped to the family's comparison of that premise."""
        out = {}
        for c in self.comparisons:
            premise = self.study.declared[c.claim].get("premise")  # every claim is declared (the loader checks)
            if premise is not None:
                out[c] = next(p for p in self.comparisons if p.claim == premise)
        return out


def load_flatness_registration(path: str | Path, margins: str | Path | Margins | None = None
                               ) -> FlatnessRegistration:
    """Read and check a curvature family's registration: its study (the file ``study`` names, relative to the book
    holding ``path``, :func:`in_book`), networks that are configurations of it at seeds every one of them has,
    the measurement's four settings as integers of at least 1, measures among :data:`FLATNESS_MEASURES`,
    comparisons of its networks by claims in unit "ratio" whose pinned margin agrees with ``margins`` (default:
    the book's ``book/margins.yaml`` beside the study) and whose premise, if the claim has one, is in the family.
    Any inconsistency is a ``ValueError`` naming the file and the field."""
    path = Path(path)
    _, spec = parse(path)
    name = path.name
    if not isinstance(spec, Mapping):
        raise ValueError(f"{name}: must be a mapping with {', '.join(FLATNESS_KEYS)}")
    wrong = sorted(set(spec) ^ set(FLATNESS_KEYS))
    if wrong:
        raise ValueError(f"{name}: must hold exactly {', '.join(FLATNESS_KEYS)}; missing or unknown: {wrong}")
    study_path = in_book(path, spec["study"])
    declared = dict(margins) if isinstance(margins, Mapping) else declared_margins(
        in_book(path, MARGINS) if margins is None else margins)
    study = load_study(study_path, margins=declared)
    networks = {str(k): str(v) for k, v in dict(spec["networks"]).items()}
    for method, configuration in networks.items():
        if configuration not in study.configurations:
            raise ValueError(f"{name}: networks.{method} must be a configuration of {study_path.name} "
                             f"({', '.join(study.configurations)}), got {configuration!r}")
    seeds = tuple(int(s) for s in spec["seeds"])
    if len(seeds) != len(set(seeds)) or not seeds:
        raise ValueError(f"{name}: seeds must be distinct and at least one, got {list(spec['seeds'])}")
    for method, configuration in networks.items():
        missing = sorted(set(seeds) - set(study.configurations[configuration][1]))
        if missing:
            raise ValueError(f"{name}: seeds must be registered for every network; {configuration!r} lacks {missing}")
    measurement = dict(spec["measurement"])
    if sorted(measurement) != sorted(FLATNESS_SETTINGS):
        raise ValueError(f"{name}: measurement must hold exactly {', '.join(FLATNESS_SETTINGS)}, "
                         f"got {sorted(measurement)}")
    measurement = {k: check_int(f"{name}: measurement.{k}", measurement[k], 1) for k in FLATNESS_SETTINGS}
    measures = tuple(str(m) for m in spec["measures"])
    if not measures or not set(measures) <= set(FLATNESS_MEASURES) or len(set(measures)) != len(measures):
        raise ValueError(f"{name}: measures must be distinct ones of {', '.join(FLATNESS_MEASURES)}, "
                         f"got {list(measures)}")
    comparisons = tuple(_comparison(c) for c in spec["comparisons"])
    pinned = {str(k): dict(v) for k, v in dict(spec["margins"]).items()}
    for c in comparisons:
        if c.over is not None:
            raise ValueError(f"{name}: comparison {comparison_label(c)}: a curvature family has no half-gain contrast")
        for side in (c.a, c.b):
            if side not in networks:
                raise ValueError(f"{name}: comparison {comparison_label(c)}: {side!r} must be one of its networks "
                                 f"({', '.join(networks)})")
        rule = declared.get(c.claim)
        if rule is None or rule["unit"] != "ratio":
            raise ValueError(f"{name}: comparison {comparison_label(c)}: claim must be one in unit 'ratio' of the "
                             "margins")
        if c.claim not in pinned:
            raise ValueError(f"{name}: margins.{c.claim}: pin the claim's {', '.join(MARGIN_FIELDS)}")
    for claim, rule in pinned.items():
        differs = [k for k in MARGIN_FIELDS if rule.get(k) != declared.get(claim, {}).get(k)]
        if differs or sorted(rule) != sorted(MARGIN_FIELDS):
            raise ValueError(f"{name}: margins.{claim}: must pin exactly {', '.join(MARGIN_FIELDS)} as the book's "
                             f"margins do; differs in {differs or sorted(set(rule) ^ set(MARGIN_FIELDS))}")
    twice = sorted({comparison_label(c) for c in comparisons if comparisons.count(c) > 1})
    if twice:
        raise ValueError(f"{name}: each comparison is made once, got twice: {', '.join(twice)}")
    correction = str(spec["correction"])
    if correction not in CORRECTIONS:
        raise ValueError(f"{name}: correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    registration = FlatnessRegistration(path, study_path, study,
                                        _date(f"{name}: date", spec["date"]), " ".join(str(spec["question"]).split()),
                                        networks, seeds, " ".join(str(spec["seeds_why"]).split()), measurement,
                                        measures, Path(spec["store"]), pinned, comparisons, correction)
    for c in comparisons:
        premise = declared[c.claim].get("premise")
        if premise is not None and sum(p.claim == premise for p in comparisons) != 1:
            raise ValueError(f"{name}: comparison {comparison_label(c)}: its premise {premise!r} must be in the "
                             "family once")
    return registration
