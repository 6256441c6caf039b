"""The install cell that makes a Colab launch work (scripts/install_cell.py): the first code cell of every chapter,
for the repository that _config.yml names; in a checkout it does nothing; on a Python where sparsam does not import
and the repository is absent (what Colab opens), the rest of the notebook runs in a clone with the package
importable, the data folder set, and started again it reuses the clone. No internet here: the clone is made from
this repository's own history instead of GitHub, and the pip and data commands are recorded, not run (the data
step's script is tests/test_deploy.py's)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import REPO

spec = importlib.util.spec_from_file_location("install_cell", REPO / "scripts" / "install_cell.py")
install_cell = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install_cell)

CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())
CELL = install_cell.source(CONFIG)

# Runs in a fresh Python: the cell (argv[1]) with subprocess.run recorded (git clone made from argv[2] instead of
# the URL; pip and the data step not run), then what the notebook's next cells would see, as one JSON line.
RUNNER = """
import json, os, subprocess, sys
cell, local, hide = sys.argv[1], sys.argv[2], sys.argv[3] == "hide"
if hide:  # a Python where sparsam does not import: without this checkout's editable install
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
import importlib.util
before = {"importable": importlib.util.find_spec("sparsam") is not None, "path": list(sys.path)}
calls, real = [], subprocess.run
def run(command, **options):
    calls.append(command)
    if command[:2] == ["git", "clone"]:
        return real([*command[:-2], local, command[-1]], **options, capture_output=True)
    return subprocess.CompletedProcess(command, 0)
subprocess.run = run
start = os.getcwd()
exec(cell, {})
first = list(calls)
exec(cell, {})  # run again in the same kernel: nothing more
import sparsam
from sparsam.book import layout
print(json.dumps({**before, "start": start, "calls": first, "again": calls[len(first):], "cwd": os.getcwd(),
                  "sys_path": list(sys.path), "data": os.environ.get("SPARSAM_DATA"), "sparsam": sparsam.__file__,
                  "root": str(layout.book_root())}))
"""


def _run(cwd: Path, hide: bool) -> dict:
    done = subprocess.run([sys.executable, "-c", RUNNER, CELL, str(REPO), "hide" if hide else "keep"], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_every_chapter_starts_with_the_install_cell_of_the_configured_repository():
    assert install_cell.main(["--check"]) == 0
    url, branch = CONFIG["repository"]["url"], CONFIG["repository"]["branch"]
    assert f'"git", "clone", "--branch", "{branch}", "{url}"' in CELL
    paths = install_cell.notebooks()
    assert len(paths) == 9
    for path in paths:
        cells = json.loads(path.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert "".join(code[0]["source"]) == CELL and code[0]["metadata"]["tags"] == ["remove-cell"], path.name
        assert not code[0]["outputs"] and "parameters" in code[1]["metadata"].get("tags", []), path.name
        assert len({c.get("id") for c in cells}) == len(cells) and code[0]["id"] == install_cell.CELL_ID, path.name


def test_with_cell_inserts_once_and_replaces_an_old_cell():
    notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# Title"]},
                          {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "outputs": [],
                           "execution_count": None, "source": ["profile = 'quick'"]}], "metadata": {}}
    inserted = install_cell.with_cell(notebook, CELL)
    assert [c["cell_type"] for c in inserted["cells"]] == ["markdown", "code", "code"]
    assert install_cell.with_cell(inserted, CELL) == inserted  # idempotent
    old = install_cell.with_cell(notebook, install_cell.FIRST_LINE + " an older text\nimport os")
    assert install_cell.with_cell(old, CELL) == inserted  # replaced, not doubled
    assert notebook["cells"][1]["source"] == ["profile = 'quick'"]  # the input is left as it was


def test_in_a_checkout_the_cell_does_nothing():
    seen = _run(REPO / "notebooks", hide=False)
    assert seen["calls"] == [] and seen["again"] == []
    assert seen["cwd"] == seen["start"] == str(REPO / "notebooks") and seen["sys_path"] == seen["path"]
    assert seen["root"] == str(REPO)


@pytest.fixture(scope="module")
def colab(tmp_path_factory) -> tuple[Path, dict]:
    """An empty folder, as a Colab runtime's, where the cell ran on a Python without sparsam."""
    folder = tmp_path_factory.mktemp("content")
    return folder, _run(folder, hide=True)


def test_without_the_package_and_the_repository_the_notebook_runs_in_a_clone(colab):
    folder, seen = colab
    clone = folder / "sparsam-repository"
    assert not seen["importable"]  # the runner's Python could not import sparsam before the cell
    url, branch = CONFIG["repository"]["url"], CONFIG["repository"]["branch"]
    pip = [sys.executable, "-m", "pip", "install", "-q", "-e", f"{clone}[experiment,book]"]
    fetch = [sys.executable, str(clone / "scripts" / "fetch_data.py"), str(clone / "data")]
    assert seen["calls"] == [["git", "clone", "--branch", branch, url, str(clone)], pip, fetch]
    assert seen["again"] == []  # run again, in the clone's notebooks/: nothing
    assert seen["cwd"] == str(clone / "notebooks") and seen["root"] == str(clone)
    assert seen["sparsam"] == str(clone / "sparsam" / "__init__.py") and seen["data"] == str(clone / "data")
    declared = tomllib.loads((clone / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"experiment", "book"} <= set(declared)  # the extras the pip command names
    assert (clone / "scripts" / "fetch_data.py").is_file() and (clone / ".git").is_dir()
    assert subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=clone, capture_output=True,
                          text=True).stdout.strip() == "false"  # the whole history, which the pages read


def test_started_again_the_cell_reuses_the_clone(colab):
    """A restarted kernel: the editable install imports now, the clone is there; only the data step runs again
    (it downloads nothing where the folder holds CIFAR-10) and the notebook moves into the clone."""
    folder, _ = colab
    clone = folder / "sparsam-repository"
    seen = _run(folder, hide=False)
    assert seen["calls"] == [[sys.executable, str(clone / "scripts" / "fetch_data.py"), str(clone / "data")]]
    assert seen["cwd"] == str(clone / "notebooks") and seen["root"] == str(clone)
