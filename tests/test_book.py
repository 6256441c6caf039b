"""The book: papermill parameters, notebook sweeps and the jupyter-book build with its HTML.

The notebooks themselves run under nbval (``--nbval-lax``, see pyproject's pytest options).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from sparsam.sweep import point_name, run_sweep

pytestmark = pytest.mark.book
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TINY = {"steps": 60, "seeds": 1, "sparsities": [0.5]}


def test_six_notebooks_each_with_a_parameters_cell_and_no_outputs():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, path.name
        assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code"), f"{path.name} has outputs"


def test_papermill_sees_every_parameter():
    import papermill

    for path in NOTEBOOKS:
        cell = next(c for c in json.loads(path.read_text())["cells"]
                    if "parameters" in c.get("metadata", {}).get("tags", []))
        assigned = {m for m in re.findall(r"^(\w+)\s*=", "".join(cell["source"]), flags=re.M)}
        assert set(papermill.inspect_notebook(str(path))) == assigned, path.name


def test_papermill_run_with_overridden_parameters(tmp_path):
    import papermill

    out = tmp_path / "conv.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS[0]), str(out), parameters=TINY, cwd=str(NOTEBOOKS[0].parent),
                               progress_bar=False, kernel_name="python3")
    nb = json.loads(out.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "steps = 60" in "".join(injected[0]["source"])
    assert nb["metadata"]["papermill"]["parameters"] == TINY


def test_sweep_runs_two_points_skips_finished_and_rejects_unknown_names(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    notebook = NOTEBOOKS[0].relative_to(REPO).as_posix()
    grid.write_text(yaml.safe_dump({"notebook": notebook, "parameters": {"steps": 60, "sparsities": [0.5]},
                                    "grid": {"seeds": [1, 2]}}))
    results = tmp_path / "results"
    assert run_sweep(grid, results_dir=results, dry_run=True) == 0
    assert not (results / NOTEBOOKS[0].stem).exists()
    assert run_sweep(grid, results_dir=results) == 0
    for seeds in (1, 2):
        name = point_name({"steps": 60, "sparsities": [0.5], "seeds": seeds})
        record = json.loads((results / NOTEBOOKS[0].stem / f"{name}.json").read_text())
        assert record["status"] == "finished" and record["parameters"]["seeds"] == seeds
        assert any(key.startswith("conv_") for key in record["values"])
        executed = (results / NOTEBOOKS[0].stem / f"{name}.ipynb").read_text()
        assert str(REPO.parent) not in executed
    capsys.readouterr()
    run_sweep(grid, results_dir=results)
    assert capsys.readouterr().out.count("finished") == 2
    grid.write_text(yaml.safe_dump({"notebook": notebook, "grid": {"stepz": [1]}}))
    with pytest.raises(ValueError, match="stepz"):
        run_sweep(grid, results_dir=results)


def test_cli_sweep_dry_run(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"notebook": NOTEBOOKS[0].relative_to(REPO).as_posix(), "grid": {"seeds": [1, 2]}}))
    out = subprocess.run([sys.executable, "-m", "sparsam", "sweep", str(grid), "--dry-run",
                          "--results-dir", str(tmp_path / "r")], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0 and out.stdout.count("to run") == 2


@pytest.mark.skipif(os.environ.get("SPARSAM_SKIP_BOOK") == "1", reason="SPARSAM_SKIP_BOOK=1")
def test_book_builds_without_warnings_and_shows_every_notebook():
    build = subprocess.run(["jupyter-book", "build", ".", "-W", "--keep-going"], cwd=REPO, capture_output=True,
                           text=True, timeout=1800)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    html = REPO / "_build" / "html"
    for path in NOTEBOOKS:
        page = (html / "notebooks" / f"{path.stem}.html").read_text()
        assert re.search(r'<img[^>]+src="[^"]*\.png"', page), f"{path.name} has no figure"
        for marker in ("Traceback", 'class="output stderr"', "Error:"):
            assert marker not in page, f"{path.name} shows {marker!r}"
    claims = (html / "book" / "reproduction.html").read_text()
    assert "<table" in claims and "Our status" in claims
