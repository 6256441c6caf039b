"""Profiles of the notebooks: one named set of consistent defaults per notebook (``notebooks/profiles.yaml``).

A notebook's parameters cell sets ``profile`` ("quick", "cpu-study" or "paper") and leaves every other
parameter at ``None``; :func:`parameters` fills each ``None`` with the profile's value and keeps the
values a reader passed (papermill hands lists over as text: they are read back as Python literals).
It checks them first, in the cell after the parameters cell (and papermill's injected one): a name the
notebook does not declare, a value of the wrong type, out of range or an empty list stops the notebook
with one line, ``ValueError("<name>: must be ..., got ...")``. The kind of each parameter comes from its
profiles' values, ranges and choices from the notebook's ``rules`` in the same file (:func:`rules`).

The paths in ``profiles.yaml`` (``store``, ``runs_dir``, ...) are relative to the book's root, as every file of
the book (:mod:`sparsam.book.layout`).
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, Mapping

import pandas as pd

from ..experiment import yaml_text
from .layout import PROFILES_FILE, STUDY_STORE, book_root


PROFILES = ("quick", "cpu-study", "paper")


def _read(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """The profiles file (default: the book's ``notebooks/profiles.yaml``) as parsed YAML."""
    return yaml_text.read(book_root() / PROFILES_FILE if path is None else path)


def table(path: str | Path | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Every notebook's profiles: ``{notebook: {profile: {parameter: value}}}``."""
    return {notebook: {name: entry[name] for name in PROFILES if name in entry}
            for notebook, entry in _read(path).items()}


Kind = Literal["int", "float", "bool", "str"]
KINDS: tuple[Kind, ...] = ("int", "float", "bool", "str")
_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}
_NOUNS = {"int": ("an int", "ints"), "float": ("a float", "floats"), "bool": ("True or False", "True or False"),
          "str": ("a string", "strings")}
_RANGE = re.compile(r"^\s*(?:(>=|>|<=|<)\s*(\S+)|([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])]))\s*$")
# names IPython puts in a notebook's namespace besides its own (the others start with "_")
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})
_PLAIN = (bool, int, float, str, list, tuple, dict, type(None))


@dataclass(frozen=True)
class Rule:
    """What one notebook parameter allows: a kind (or a list of that kind), an optional interval
    ``[low, high]`` (either end open, either missing), optional choices, whether None is allowed
    (the profile leaves the value to the code) and, for lists, whether they may be empty and must
    hold distinct values."""

    name: str
    kind: Kind
    many: bool = False
    nullable: bool = False
    empty: bool = False
    distinct: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | None = None

    def allowed(self) -> str:
        """What the rule allows, in words: "an int >= 1", "a non-empty list of floats in [0, 1)"..."""
        one, several = _NOUNS[self.kind]
        if self.choices is not None:
            one = several = "one of " + ", ".join(map(repr, self.choices))
        where = ""
        if self.low is not None and self.high is not None:
            where = f" in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        elif self.low is not None:
            where = f" {'>' if self.low_open else '>='} {self.low:g}"
        elif self.high is not None:
            where = f" {'<' if self.high_open else '<='} {self.high:g}"
        if not self.many:
            text = f"{one}{where}"
        else:
            text = (f"a {'' if self.empty else 'non-empty '}list{' of distinct' if self.distinct else ' of'} "
                    f"{several if self.choices is None else f'values, each {one}'}{where}")
        return f"{text}, or None" if self.nullable else text

    def _fits(self, value: Any) -> bool:
        if self.kind != "bool" and isinstance(value, bool) or not isinstance(value, _TYPES[self.kind]):
            return False
        if self.kind in ("int", "float"):
            if value != value or (self.low is not None and (value <= self.low if self.low_open else value < self.low)):
                return False  # NaN fails every range
            if self.high is not None and (value >= self.high if self.high_open else value > self.high):
                return False
        return self.choices is None or value in self.choices

    def check(self, value: Any) -> Any:
        """``value`` if the rule allows it (ints of a float parameter as floats, tuples as lists), else
        ``ValueError("<name>: must be <what is allowed>, got <value>")``."""
        fits = value is None and self.nullable
        if not fits and self.many:
            fits = (isinstance(value, (list, tuple)) and (self.empty or len(value) > 0)
                    and all(self._fits(v) for v in value)
                    and not (self.distinct and len(set(value)) < len(value)))
        elif not fits:
            fits = self._fits(value)
        if not fits:
            raise ValueError(f"{self.name}: must be {self.allowed()}, got {value!r}")
        if value is None or self.kind != "float":
            return list(value) if isinstance(value, tuple) else value
        return [float(v) for v in value] if self.many else float(value)


def _range(name: str, text: str) -> dict[str, Any]:
    match = _RANGE.match(str(text))
    try:
        sign, bound, left, low, high, right = match.groups()
        float(bound if sign else low), float(bound if sign else high)
    except (AttributeError, ValueError):
        raise ValueError(f"{name}: the range {text!r} must read like '>= 1', '> 0', '[0, 1)' or '(0, 1]'") from None
    if sign:
        side = "low" if sign.startswith(">") else "high"
        return {side: float(bound), f"{side}_open": len(sign) == 1}
    return {"low": float(low), "high": float(high), "low_open": left == "(", "high_open": right == ")"}


def rules(notebook: str, path: str | Path | None = None) -> dict[str, Rule]:
    """The rule of every parameter of ``notebook``, ``profile`` first: the kind comes from the values
    the three profiles give it (a list if they are lists, None allowed if a profile leaves it at null,
    an empty list allowed if a profile has one), ranges, choices and the rest from the notebook's
    ``rules`` in ``notebooks/profiles.yaml``."""
    entries = _read(path)
    if notebook not in entries:
        raise ValueError(f"notebook: must be one of {', '.join(map(repr, sorted(entries)))}, got {notebook!r}")
    entry = entries[notebook]
    stated = entry.get("rules") or {}
    names = list(dict.fromkeys(name for profile in PROFILES for name in entry[profile]))
    unknown = sorted(set(stated) - set(names))
    if unknown:
        raise ValueError(f"{unknown[0]}: {notebook}'s rules name a parameter no profile has; its parameters are "
                         f"{', '.join(names)}")
    found = {"profile": Rule("profile", "str", choices=PROFILES)}
    for name in names:
        values = [entry[profile].get(name) for profile in PROFILES]
        spec = stated.get(name, {})
        spec = {"range": spec} if isinstance(spec, str) else {"choices": spec} if isinstance(spec, list) else spec
        many = any(isinstance(v, list) for v in values)
        items = [x for v in values if v is not None for x in (v if isinstance(v, list) else [v])]
        kinds = {next((k for k in ("bool", "int", "float", "str") if type(x).__name__ == k), "?") for x in items}
        kind = spec.get("type") or ("float" if kinds == {"int", "float"} else kinds.pop() if len(kinds) == 1 else None)
        if kind not in KINDS:
            raise ValueError(f"{name}: {notebook}'s profiles give it {sorted(kinds) or 'no value'}; state its type "
                             f"(one of {', '.join(KINDS)}) in its rules")
        rule = Rule(name, kind, many=many, nullable=None in values, empty=many and [] in values,
                    distinct=bool(spec.get("distinct", False)),
                    choices=tuple(spec["choices"]) if "choices" in spec else None,
                    **(_range(name, spec["range"]) if "range" in spec else {}))
        for profile, value in zip(PROFILES, values):
            try:
                rule.check(value)
            except ValueError as error:
                raise ValueError(f"{error} (the {profile!r} profile of {notebook})") from None
        found[name] = rule
    return found


def given_values(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The names a reader or papermill set in a notebook's ``namespace`` (its ``globals()``): every
    name that does not start with "_", is not one of IPython's and holds plain data (a number, a
    string, a list...); modules, functions and classes are left out."""
    return {name: value for name, value in namespace.items()
            if not name.startswith("_") and name not in _IPYTHON_NAMES and isinstance(value, _PLAIN)}


def _literal(name: str, value: Any, rule: Rule | None) -> Any:
    if isinstance(value, str) and value[:1] in "[({":
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            allowed = f"; it must be {rule.allowed()}" if rule is not None else ""
            raise ValueError(f"{name}: {value!r} is not a Python literal{allowed}") from None
    return value


def check_parameters(declared: Mapping[str, Rule], given: Mapping[str, Any], where: str = "this notebook"
                     ) -> dict[str, Any]:
    """Check the values ``given`` to a notebook (the parameters cell's and papermill's, see
    :func:`given_values`) against its ``declared`` rules (:func:`rules`) before it does any work.

    Returns the given values, lists given as text read back as Python literals; None means "the
    profile's value" and passes. Raises a one-line ``ValueError`` naming the first parameter that is
    not declared (with the closest declared name) or whose value its rule does not allow.
    """
    unknown = [name for name in given if name not in declared]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, list(declared), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{name}: not a parameter of {where}{hint}; its parameters are {', '.join(declared)}")
    values = {}
    for name, value in given.items():
        value = _literal(name, value, declared[name])
        values[name] = value if value is None else declared[name].check(value)
    return values


def parameters(notebook: str, profile: str, given: Mapping[str, Any],
               path: str | Path | None = None) -> SimpleNamespace:
    """The parameters of ``notebook`` under ``profile``, checked before any work: the profile's value
    for each name whose value in ``given`` (the notebook's namespace) is None, the given value
    otherwise. A name the notebook does not declare, a value of the wrong type, out of its range or
    not among its choices, or an empty list raises ``ValueError("<name>: ...")`` (:func:`check_parameters`)."""
    declared = rules(notebook, path)
    declared["profile"].check(profile)
    values = check_parameters(declared, {**given_values(given), "profile": profile}, where=notebook)
    defaults = table(path)[notebook][profile]
    filled = {name: defaults[name] if values.get(name) is None else values[name] for name in defaults}
    return SimpleNamespace(profile=profile, **{name: declared[name].check(value) for name, value in filled.items()})


def parameter_table(p: SimpleNamespace) -> pd.DataFrame:
    """The parameters a notebook runs with, one row each (name and value as text), for its first output."""
    values = vars(p)
    return pd.DataFrame({"parameter": list(values), "value": [str(v) for v in values.values()]})


def study_note(profile: str, found: int, wanted: int) -> str:
    """One sentence on where the records of a profile stand ("" when every record is there)."""
    if found == wanted:
        return ""
    if profile == "cpu-study":
        where = STUDY_STORE.as_posix()
        why = ("the CPU study (results/study/cpu_study.yaml) has not trained them yet or does not pre-register "
               "them, and this page does not train them (the study is trained by `python -m sparsam train-grid`, "
               "see the rerun page)")
        if found == 0:
            return f"No study records yet: {where}/ holds none of these {wanted} configurations; {why}."
        return f"{found} of {wanted} configurations have a record in {where}/; the others are not shown: {why}."
    return f"{found} of {wanted} configurations have a record; the others are not shown."
