"""Profiles of the notebooks: one named set of consistent defaults per notebook (``notebooks/profiles.yaml``).

A notebook's parameters cell sets ``profile`` ("quick", "cpu-study" or "paper") and leaves every other
parameter at ``None``; :func:`parameters` fills each ``None`` with the profile's value and keeps the
values a reader passed (papermill hands lists over as text: they are read back as Python literals).
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

import yaml

from ..experiment.store import REPO

PROFILES = ("quick", "cpu-study", "paper")
PROFILES_FILE = REPO / "notebooks" / "profiles.yaml"
STUDY_FILE = REPO / "results" / "study" / "cpu_study.yaml"
STUDY_STORE = REPO / "results" / "study" / "runs"


def table(path: Path = PROFILES_FILE) -> dict[str, dict[str, dict[str, Any]]]:
    """Every notebook's profiles: ``{notebook: {profile: {parameter: value}}}``."""
    return yaml.safe_load(Path(path).read_text())


def _literal(name: str, value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[({":
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError) as error:
            raise ValueError(f"{name}={value!r} is not a Python literal") from error
    return value


def parameters(notebook: str, profile: str, given: Mapping[str, Any], path: Path = PROFILES_FILE) -> SimpleNamespace:
    """The parameters of ``notebook`` under ``profile``: the profile's value for each name whose value in
    ``given`` (the notebook's namespace) is None, the given value otherwise. ``seeds`` must be a list."""
    profiles = table(path)
    if notebook not in profiles:
        raise ValueError(f"notebook must be one of {sorted(profiles)}, got {notebook!r}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    values = {}
    for name, default in profiles[notebook][profile].items():
        value = _literal(name, given.get(name))
        values[name] = default if value is None else value
    seeds = values.get("seeds")
    if seeds is not None and not (isinstance(seeds, (list, tuple)) and all(isinstance(s, int) for s in seeds)):
        raise ValueError(f"seeds must be a list of ints, e.g. [0, 1, 2], got {seeds!r}")
    return SimpleNamespace(profile=profile, **values)


def study_note(profile: str, found: int, wanted: int) -> str:
    """One sentence on where the records of a profile stand ("" when every record is there)."""
    if found == wanted:
        return ""
    if profile == "cpu-study":
        where = STUDY_STORE.relative_to(REPO)
        why = ("the CPU study (results/study/cpu_study.yaml) has not trained them yet or does not pre-register "
               "them, and this page does not train them (the study is trained by `python -m sparsam train-grid`, "
               "see the rerun page)")
        if found == 0:
            return f"No study records yet: {where}/ holds none of these {wanted} configurations; {why}."
        return f"{found} of {wanted} configurations have a record in {where}/; the others are not shown: {why}."
    return f"{found} of {wanted} configurations have a record; the others are not shown."
