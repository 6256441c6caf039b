"""Layer 0 type-checks: mypy over the optimizers, the masks and their root helpers (``[tool.mypy]`` in
pyproject.toml) reports no error, and the package ships its ``py.typed`` marker."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")

ROOT = Path(__file__).resolve().parents[2]
LAYER_0 = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]


def test_the_checked_files_are_all_of_layer_0():
    root_helpers = sorted(f"sparsam/{p.name}" for p in (ROOT / "sparsam").glob("_*.py") if p.name != "__init__.py"
                          and p.name != "__main__.py")
    assert sorted(LAYER_0) == sorted(["sparsam/optim", "sparsam/masks", *root_helpers])


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy is not installed (it is in the 'test' extra: pip install -e .[test])")
def test_mypy_finds_no_error_in_layer_0():
    run = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--config-file", "pyproject.toml",
                          *LAYER_0], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Success: no issues found" in run.stdout


def test_the_package_is_marked_typed_and_ships_the_marker():
    assert (ROOT / "sparsam" / "py.typed").is_file()
    assert 'sparsam = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()
