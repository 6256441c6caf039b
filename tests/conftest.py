"""Shared test setup: real data from ../shared/data when SPARSAM_DATA is unset.

The tests mirror the package's layers: ``optim/`` and ``masks/`` (the optimizer, torch only),
``experiment/`` (the harness), ``book/`` (the analysis); the command line's tests stay here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # the layer folders import conftest and nets from here
_shared = REPO.parent / "shared" / "data"
if "SPARSAM_DATA" not in os.environ and _shared.is_dir():
    os.environ["SPARSAM_DATA"] = str(_shared)


def data_file(name: str) -> Path:
    """Path of a file in SPARSAM_DATA, or skip the test saying which file is missing."""
    root = os.environ.get("SPARSAM_DATA")
    path = Path(root) / name if root else None
    if path is None or not path.is_file():
        pytest.skip(f"SPARSAM_DATA lacks {name}")
    return path


def changed_yaml(source: Path, folder: Path, name: str, **changes) -> Path:
    """A copy of the YAML file ``source`` written to ``folder / name`` with ``changes``: ``key=value`` replaces a
    top-level entry, ``section__field=value`` one field of a section (the way the tests break a registration)."""
    import yaml

    spec = yaml.safe_load(source.read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            spec[section][field] = value
        else:
            spec[section] = value
    path = folder / name
    path.write_text(yaml.safe_dump(spec))
    return path
