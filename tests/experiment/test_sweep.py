"""Sweeps over a tiny notebook (written here, executed by papermill with the python3 kernel of the venv):
grid values checked before anything runs, a failing point recorded while the others run, one
process per point, interrupted points shown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from conftest import REPO
from sparsam.experiment import store as runs
from sparsam.experiment import sweep

pytest.importorskip("papermill")


@pytest.fixture
def notebook(tmp_path) -> Path:
    """Parameters model, seed, pause: sleeps ``pause`` seconds, builds ``model``, glues its parameter count."""
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell('model = "resnet-small"\nseed = 0\npause = 0.0')
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(
        "import time\nfrom myst_nb import glue\nfrom sparsam.experiment import models\n"
        "time.sleep(pause)\nnet = models.build_model(model, 10, width=4)\n"
        "glue('n_params', sum(p.numel() for p in net.parameters()) + seed, display=False)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def grid_file(tmp_path: Path, notebook: Path, grid: dict, parameters: dict | None = None) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(json.dumps({"notebook": str(notebook), "parameters": parameters or {}, "grid": grid}))
    return path


def record(folder: Path, parameters: dict) -> dict:
    return runs.read_json(folder / f"{sweep.point_name(parameters)}.json")


def test_dry_run_checks_each_points_training_values(tmp_path, notebook, capsys):
    grid = grid_file(tmp_path, notebook, {"model": ["resnet-smal", "resnet-small"]})
    assert sweep.run_sweep(grid, tmp_path / "out", dry_run=True) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("invalid") and "model must be one of" in lines[0] and "'resnet-smal'" in lines[0]
    assert lines[1].startswith("to run") and "resnet-small" in lines[1]
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_check_point_accepts_values_valid_for_some_optimizer():
    sweep.check_point({"pattern": "layer", "mask_rule": "cost-aware"}, {"epochs": 2})  # valid with ssam-f
    sweep.check_point({"steps": 10}, {})  # not a training field: not checked here
    with pytest.raises(ValueError, match="mask_rule"):
        sweep.check_point({"optimizer": "sgd", "mask_rule": "cost-aware"}, {})
    with pytest.raises(ValueError, match="sparsity must be in"):
        sweep.check_point({"sparsity": 1.5}, {"model": "resnet18"})


def test_a_failing_point_is_recorded_and_the_others_run(tmp_path, notebook, capsys):
    grid = grid_file(tmp_path, notebook, {"model": ["resnet-smal", "resnet-small"], "pause": [0, "x"]})
    folder = tmp_path / "out" / "tiny"
    assert sweep.run_sweep(grid, tmp_path / "out") == 1
    out = capsys.readouterr().out
    assert "3 of 4 points failed" in out
    good = record(folder, {"model": "resnet-small", "pause": 0})
    assert good["status"] == "finished" and int(good["values"]["n_params"]) > 0
    bad = record(folder, {"model": "resnet-small", "pause": "x"})  # time.sleep("x") fails in the notebook
    assert bad["status"] == "failed" and bad["error"]["type"] == "TypeError" and "str" in bad["error"]["message"]
    executed = folder / bad["executed_notebook"]
    assert executed.is_file() and "TypeError" in executed.read_text()
    assert f"failed       {executed.stem}: TypeError" in out and str(executed) in out
    for pause in (0, "x"):  # invalid values: recorded as failed without running
        invalid = record(folder, {"model": "resnet-smal", "pause": pause})
        assert invalid["status"] == "failed" and invalid["executed_notebook"] is None
        assert invalid["error"]["type"] == "ValueError" and "resnet-smal" in invalid["error"]["message"]
    assert sweep.point_status(folder, {"model": "resnet-small", "pause": 0}) == "finished"
    assert sweep.point_status(folder, {"model": "resnet-small", "pause": "x"}) == "failed"


def test_a_point_held_by_another_process_is_skipped(tmp_path, notebook, capsys):
    folder, parameters = tmp_path / "out" / "tiny", {"seed": 3}
    grid = grid_file(tmp_path, notebook, {"seed": [3]})
    with runs.lock(folder, name=f".{sweep.point_name(parameters)}.lock"):
        with pytest.raises(runs.Locked, match=f"process {os.getpid()}"):
            sweep.run_point(notebook, parameters, folder)
        assert sweep.point_status(folder, parameters) == f"running (pid {os.getpid()} on {os.uname().nodename})"
        assert sweep.run_sweep(grid, tmp_path / "out") == 0
    assert "skipped" in capsys.readouterr().out
    assert not (folder / f"{sweep.point_name(parameters)}.json").exists()  # nobody ran it


def _sweep_process(grid: Path, results: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sparsam", "sweep", str(grid), "--results-dir", str(results)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})


def _wait_for_running(process: subprocess.Popen, folder: Path, parameters: dict, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    record_file = folder / f"{sweep.point_name(parameters)}.json"  # written just after the lock is taken
    while sweep.point_status(folder, parameters).split()[0] != "running" or not record_file.exists():
        assert process.poll() is None, f"the sweep ended early: {process.communicate()[0]}"
        assert time.time() < deadline, "the sweep never started the point"
        time.sleep(0.2)


def test_concurrent_sweeps_run_a_point_once(tmp_path, notebook, capsys):
    parameters = {"pause": 3, "seed": 1}
    grid = grid_file(tmp_path, notebook, {"seed": [1]}, {"pause": 3})
    folder = tmp_path / "out" / "tiny"
    first = _sweep_process(grid, tmp_path / "out")
    _wait_for_running(first, folder, parameters)
    assert sweep.run_sweep(grid, tmp_path / "out") == 0
    assert f"running (pid {first.pid}" in capsys.readouterr().out
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    assert record(folder, parameters)["status"] == "finished"
    assert sweep.run_sweep(grid, tmp_path / "out", dry_run=True) == 0
    assert capsys.readouterr().out.startswith("finished")


def test_a_killed_point_shows_as_interrupted(tmp_path, notebook, capsys):
    parameters = {"pause": 60, "seed": 2}
    grid = grid_file(tmp_path, notebook, {"seed": [2]}, {"pause": 60})
    folder = tmp_path / "out" / "tiny"
    process = _sweep_process(grid, tmp_path / "out")
    _wait_for_running(process, folder, parameters)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert record(folder, parameters)["status"] == "running"  # what the dead process left
    assert sweep.point_status(folder, parameters) == "interrupted"
    assert sweep.run_sweep(grid, tmp_path / "out", dry_run=True) == 0
    assert capsys.readouterr().out.startswith("interrupted")


def test_bad_grid_files_name_the_problem(tmp_path, notebook):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"notebook: {notebook}\ngrid: {{seed: [0, 1]\n")
    with pytest.raises(ValueError, match=r"not valid YAML \(line \d+\)"):
        sweep.load_grid(bad)
    with pytest.raises(FileNotFoundError, match="grid file .*nothere.yaml not found"):
        sweep.load_grid(tmp_path / "nothere.yaml")
    for text, message in [("notebook: nope.ipynb\n", "notebook 'nope.ipynb' not found"),
                          (f"notebook: {notebook}\nsweep: {{}}\n", "unknown keys: \\['sweep'\\]"),
                          (f"notebook: {notebook}\ngrid: {{seed: 3}}\n", "must be a non-empty list"),
                          ("- a\n- b\n", "must be a mapping"),
                          ("regime: {}\nconfigurations: {}\n", "pre-registration .*python -m sparsam train-grid")]:
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            sweep.load_grid(bad)
    bad.write_text(f"notebook: {notebook}\ngrid: {{epochs: [1]}}\n")
    with pytest.raises(ValueError, match=r"does not declare parameters \['epochs'\]"):
        sweep.run_sweep(bad, tmp_path / "out", dry_run=True)


def test_a_missing_book_extra_says_how_to_install_it(tmp_path, notebook, monkeypatch, capsys):
    from sparsam import cli

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an install without the book extra meets
    grid = grid_file(tmp_path, notebook, {"seed": [0]})
    assert cli.main(["sweep", str(grid), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err == "error: 'sparsam sweep' needs the book extra: pip install 'sparsam[book]'\n"
