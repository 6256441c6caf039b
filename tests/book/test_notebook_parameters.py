"""Notebook parameters are checked before any work: papermill with a bad value fails within seconds, on
the cell after the parameters, with the one-line message of sparsam.book.profiles naming the parameter."""

from __future__ import annotations

import json
import time

import pytest

from conftest import REPO
from sparsam.book import profiles

NOTEBOOK = REPO / "notebooks" / "01_convergence.ipynb"  # three minutes with its quick defaults
BAD = [({"steps": -5}, "steps: must be an int >= 1, got -5"),
       ({"seeds": "[]"}, "seeds: must be a non-empty list of distinct ints >= 0, got []"),
       ({"stepz": 100}, "stepz: not a parameter of 01_convergence (did you mean 'steps'?); its parameters are ")]


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def test_every_notebook_checks_its_parameters_in_the_cell_after_the_parameters_cell():
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        at = next(i for i, c in enumerate(cells) if "parameters" in _tags(c))
        check = "".join(cells[at + 1]["source"])
        assert f'p = profiles.parameters("{path.stem}", profile, globals())' in check, path.name
        assert sum("profiles.parameters(" in "".join(c["source"]) for c in cells[:at + 1]) == 0, path.name


@pytest.mark.book
@pytest.mark.parametrize("given, expected", BAD, ids=["negative steps", "empty seeds", "misspelt name"])
def test_papermill_stops_on_the_check_within_seconds(tmp_path, given, expected):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out = tmp_path / "out.ipynb"
    start = time.monotonic()
    with pytest.raises(PapermillExecutionError) as error:
        papermill.execute_notebook(str(NOTEBOOK), str(out), parameters=given, cwd=str(NOTEBOOK.parent),
                                   progress_bar=False, kernel_name="python3")
    seconds = time.monotonic() - start
    assert error.value.ename == "ValueError" and error.value.evalue.startswith(expected)
    assert "\n" not in error.value.evalue
    with pytest.raises(ValueError) as direct:  # the same message as the library's check
        profiles.parameters(NOTEBOOK.stem, "quick", given)
    assert str(direct.value) == error.value.evalue
    cells = [c for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code"]
    injected = next(i for i, c in enumerate(cells) if "injected-parameters" in _tags(c))
    ran = [i for i, c in enumerate(cells) if c.get("execution_count")]
    # the install cell (it does nothing in a checkout), the parameters, papermill's, the check
    assert ran == [0, 1, injected, injected + 1] and injected == 2
    assert "profiles.parameters(" in "".join(cells[ran[-1]]["source"])
    assert seconds < 60, f"took {seconds:.0f} s"  # the kernel's start; the defaults run for minutes
