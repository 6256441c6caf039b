"""The book: papermill parameters, notebook sweeps and the jupyter-book build with its HTML.

The book build below executes every notebook (a failing cell fails it); nbval runs them cell by cell on
request (``bash scripts/test.sh notebooks``, ``--nbval-lax`` from pyproject's pytest options).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from launch_buttons import assert_buttons
from sparsam.experiment.sweep import point_name, run_sweep

pytestmark = pytest.mark.book
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def test_nine_notebooks_each_with_a_parameters_cell_and_no_outputs():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08", "09"]
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


def test_parameters_cells_take_a_profile_and_name_exactly_the_profiles_parameters():
    from sparsam.book import profiles

    table = profiles.table()
    for path in NOTEBOOKS:
        cell = next(c for c in _cells(path) if "parameters" in _tags(c))
        assigned = dict(re.findall(r"^(\w+)\s*=\s*([^#\n]*?)\s*(?:#.*)?$", "".join(cell["source"]), flags=re.M))
        assert assigned.pop("profile") == '"quick"', path.name
        assert set(assigned) == set(table[path.stem]["quick"]), path.name
        assert set(assigned.values()) <= {"None"}, f"{path.name}: every other parameter defaults to the profile"
        assert "seed" not in assigned, f"{path.name}: seeds is a list parameter (seeds[0] where one run is drawn)"


def _helpers(source):
    """Functions, classes and lambdas bound to a name in a cell's code (IPython magics left out)."""
    tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith("%")))
    return [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            or isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Lambda)]


def test_notebooks_define_no_helpers_and_hide_their_plumbing():
    assert _helpers("f = lambda x: x\n%matplotlib inline") and _helpers("for i in []:\n    def g(): pass")
    assert not _helpers("frame.assign(label=lambda f: f)")  # a lambda argument names nothing
    for path in NOTEBOOKS:
        for cell in _cells(path):
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            assert not _helpers(source), f"{path.name} defines a helper:\n{source[:200]}"
            if "parameters" in _tags(cell):
                assert "hide-input" not in _tags(cell), f"{path.name}: the parameters cell stays visible"
            elif "import " in source or "glue(" in source:  # (the install cell is removed from the page)
                assert {"hide-input", "remove-cell"} & set(_tags(cell)), \
                    f"{path.name}: plumbing cell not hidden:\n{source[:200]}"


def _imported(source):
    """The names a cell's imports bind (IPython magics left out)."""
    tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith("%")))
    return {(alias.asname or alias.name).split(".")[0] for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}


def test_no_parameter_is_shadowed_by_an_import():
    assert _imported("import numpy as np\nfrom sparsam import flatness, study") == {"np", "flatness", "study"}
    for path in NOTEBOOKS:
        cells = [c for c in _cells(path) if c["cell_type"] == "code"]
        parameters = set(re.findall(r"^(\w+)\s*=", "".join(next(c for c in cells if "parameters" in _tags(c))["source"]),
                                    flags=re.M))
        imported = set().union(*(_imported("".join(c["source"])) for c in cells))
        assert not parameters & imported, f"{path.name}: parameters {sorted(parameters & imported)} are also imported"


def test_glue_from_another_document_names_a_format():
    """myst-nb reads the text after the last colon of `path::key` as a format spec, so a cross-document
    `{glue:text}` without one looks up a key named after the path (a warning that fails the build)."""
    pattern = re.compile(r"\{glue:text\}`([^`]*::[^`]*)`")
    found = [ref for page in REPO.glob("book/*.md") for ref in pattern.findall(page.read_text())]
    assert found and pattern.findall("{glue:text}`a.ipynb::n`") == ["a.ipynb::n"]
    assert not [ref for ref in found if ":" not in ref.split("::", 1)[1]], "add a format, e.g. ::key:s or ::key:d"


def test_chapters_are_numbered_and_mathjax_is_served_with_the_book():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    experiments = next(part for part in toc["parts"] if part["caption"] == "Experiments")
    assert experiments.get("numbered") is True
    assert [c["file"] for c in experiments["chapters"]] == [f"notebooks/{p.stem}" for p in NOTEBOOKS]
    sphinx = yaml.safe_load((REPO / "_config.yml").read_text())["sphinx"]
    assert "sphinx-mathjax-offline" in sphinx["extra_extensions"]
    assert not sphinx["config"]["mathjax_path"].startswith(("http", "//"))
    import importlib.util
    extension = importlib.util.find_spec("sphinx-mathjax-offline")
    assert extension is not None, "the book extra installs sphinx-mathjax-offline"
    assert (Path(extension.origin).parent / "static" / sphinx["config"]["mathjax_path"]).exists()


def test_sweep_runs_two_points_skips_finished_and_rejects_unknown_names(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # the grid's notebook is relative to the current directory
    grid = tmp_path / "grid.yaml"
    notebook = NOTEBOOKS[0].relative_to(REPO).as_posix()
    grid.write_text(yaml.safe_dump({"notebook": notebook, "parameters": {"steps": 60, "sparsities": [0.5]},
                                    "grid": {"seeds": [[1], [2]]}}))
    results = tmp_path / "results"
    assert run_sweep(grid, results_dir=results, dry_run=True) == 0
    assert not (results / NOTEBOOKS[0].stem).exists()
    assert run_sweep(grid, results_dir=results) == 0
    for seeds in ([1], [2]):
        name = point_name({"steps": 60, "sparsities": [0.5], "seeds": seeds})
        record = json.loads((results / NOTEBOOKS[0].stem / f"{name}.json").read_text())
        assert record["status"] == "finished" and record["parameters"]["seeds"] == seeds
        assert any(key.startswith("conv_") for key in record["values"])
        executed = (results / NOTEBOOKS[0].stem / f"{name}.ipynb").read_text()
        assert str(REPO.parent) not in executed
        nb = json.loads(executed)  # papermill injected the point's parameters after the parameters cell
        injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
        assert injected and "steps = 60" in "".join(injected[0]["source"])
        assert nb["metadata"]["papermill"]["parameters"] == {"steps": 60, "sparsities": [0.5], "seeds": seeds}
    capsys.readouterr()
    run_sweep(grid, results_dir=results)
    assert capsys.readouterr().out.count("finished") == 2
    grid.write_text(yaml.safe_dump({"notebook": notebook, "grid": {"stepz": [1]}}))
    with pytest.raises(ValueError, match="stepz"):
        run_sweep(grid, results_dir=results)


def test_cli_sweep_dry_run(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"notebook": NOTEBOOKS[0].relative_to(REPO).as_posix(),
                                    "grid": {"seeds": [[1], [2]]}}))
    out = subprocess.run([sys.executable, "-m", "sparsam", "sweep", str(grid), "--dry-run",
                          "--results-dir", str(tmp_path / "r")], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0 and out.stdout.count("to run") == 2


@pytest.mark.skipif(os.environ.get("SPARSAM_SKIP_BOOK") == "1", reason="SPARSAM_SKIP_BOOK=1")
def test_book_builds_without_warnings_and_shows_every_notebook():
    # --all: every notebook executed with the code as it is now; without it, an earlier _build/ lets Sphinx skip
    # the notebooks whose files did not change (in a checkout that had built, at f77bee9, this test passed in 1.8 s)
    build = subprocess.run(["jupyter-book", "build", ".", "--all", "-W", "--keep-going"], cwd=REPO,
                           capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    html = REPO / "_build" / "html"
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    for path in NOTEBOOKS:
        assert_buttons(html, f"notebooks/{path.name}", config)  # launch (Binder, Colab), repository, download
        page = (html / "notebooks" / f"{path.stem}.html").read_text()
        assert re.search(r'<img[^>]+src="[^"]*\.png"', page), f"{path.name} has no figure"
        for marker in ("Traceback", 'class="output stderr"', "Error:"):
            assert marker not in page, f"{path.name} shows {marker!r}"
    claims = (html / "book" / "reproduction.html").read_text()
    assert "<table" in claims and "GPU study" in claims and "Quick profile" in claims
    assert re.search(r'<img[^>]+src="[^"]*\.png"', claims), "the reproduction page opens with the claims figures"
    assert "http" not in re.search(r'<script[^>]*src="([^"]*mathjax[^"]*)"', claims).group(1)
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists(), "MathJax is served with the book"
    first = (html / "notebooks" / f"{NOTEBOOKS[0].stem}.html").read_text()
    assert '<span class="section-number">1. </span>' in first, "chapter titles are numbered"


def test_pages_hold_no_control_characters():
    """LaTeX written through Python string escapes turns \\text, \\frac, \\rho into tab, form feed and
    carriage return, which the -W build does not notice (MathJax just shows broken math)."""
    pages = [*REPO.glob("book/*.md"), REPO / "README.md", *REPO.glob("notebooks/*.ipynb"), *REPO.glob("*.yml"),
             *REPO.glob("book/*.yaml"), *REPO.glob("results/study/*.yaml")]
    for page in pages:
        text = page.read_bytes().decode()  # not read_text: it would turn a carriage return into a newline
        if page.suffix == ".ipynb":
            text = "".join("".join(cell["source"]) for cell in json.loads(text)["cells"])
        bad = sorted({hex(ord(c)) for c in text if ord(c) < 32 and c != "\n"})
        assert not bad, f"{page.relative_to(REPO)} holds control characters {bad}"
