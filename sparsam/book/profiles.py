"""Profiles of the notebooks: one named set of consistent defaults per notebook (``notebooks/profiles.yaml``).

A notebook's parameters cell sets ``profile`` ("quick", "cpu-study" or "paper") and leaves every other
parameter at ``None``; :func:`parameters` fills each ``None`` with the profile's value and keeps the
values a reader passed (papermill hands lists over as text: they are read back as Python literals).

The book names its own files relative to its root folder (:func:`book_root`, found from the current
directory when a notebook runs): ``notebooks/profiles.yaml``, the CPU study's ``results/study/...``; the
paths in ``profiles.yaml`` (``store``, ``runs_dir``, ...) are relative to that root too.
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

import yaml

PROFILES = ("quick", "cpu-study", "paper")
# The book's files, relative to its root (book_root()):
PROFILES_FILE = Path("notebooks/profiles.yaml")
STUDY_FILE = Path("results/study/cpu_study.yaml")  # the CPU study's pre-registration
STUDY_STORE = Path("results/study/runs")  # its records
PILOT_STORE = Path("results/study/pilot")  # its pilot's records
_MARKERS = ("_toc.yml", PROFILES_FILE)


def book_root(start: str | Path | None = None) -> Path:
    """The book's root: the nearest of ``start`` (default: the current directory) and its parents that holds
    ``_toc.yml`` and ``notebooks/profiles.yaml`` (a notebook runs in ``notebooks/``, a script at the root)."""
    here = (Path.cwd() if start is None else Path(start)).absolute()
    for folder in (here, *here.parents):
        if all((folder / marker).is_file() for marker in _MARKERS):
            return folder
    raise FileNotFoundError(f"no book root (a folder with _toc.yml and {PROFILES_FILE}) at or above {here}; "
                            "run from inside the book's checkout or pass the paths")


def table(path: str | Path | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Every notebook's profiles: ``{notebook: {profile: {parameter: value}}}`` (default: the book's
    ``notebooks/profiles.yaml``)."""
    return yaml.safe_load(Path(book_root() / PROFILES_FILE if path is None else path).read_text())


def _literal(name: str, value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[({":
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError) as error:
            raise ValueError(f"{name}={value!r} is not a Python literal") from error
    return value


def parameters(notebook: str, profile: str, given: Mapping[str, Any],
               path: str | Path | None = None) -> SimpleNamespace:
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
        where = STUDY_STORE.as_posix()
        why = (f"the CPU study ({STUDY_FILE.as_posix()}) has not trained them yet or does not pre-register "
               "them, and this page does not train them (the study is trained by `python -m sparsam train-grid`, "
               "see the rerun page)")
        if found == 0:
            return f"No study records yet: {where}/ holds none of these {wanted} configurations; {why}."
        return f"{found} of {wanted} configurations have a record in {where}/; the others are not shown: {why}."
    return f"{found} of {wanted} configurations have a record; the others are not shown."
