"""Notebook sweeps: run a notebook through papermill over the parameter sets of a YAML grid.

Grid file::

    notebook: notebooks/03_cifar_accuracy.ipynb   # repo-relative
    parameters: {epochs: 2}                       # fixed for every point
    grid: {seed: [0, 1], sparsities: [[0.5], [0.9]]}   # lists combined as a product

Each point is kept in ``<results_dir>/<notebook stem>/<point name>.ipynb`` (the executed notebook,
git-ignored) and ``<point name>.json`` (parameters, status and the values the notebook glued).
Finished points are skipped; unfinished ones run again and resume their training runs from
``runs/``. Parameter names the notebook does not declare are rejected before anything runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import yaml

from .runs import REPO, atomic_write_json, now, read_json


def load_grid(path: str | Path) -> tuple[Path, list[dict[str, Any]]]:
    """The notebook (repo-relative) and the list of parameter sets of a grid file."""
    spec = yaml.safe_load(Path(path).read_text()) or {}
    unknown = sorted(set(spec) - {"notebook", "parameters", "grid"})
    if unknown or "notebook" not in spec:
        raise ValueError(f"grid file needs 'notebook' and may have 'parameters' and 'grid'; unknown keys: {unknown}")
    notebook = Path(spec["notebook"])
    if notebook.is_absolute() or not (REPO / notebook).is_file():
        raise ValueError(f"notebook must be a repo-relative path to an existing notebook, got {spec['notebook']!r}")
    fixed, grid = spec.get("parameters") or {}, spec.get("grid") or {}
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid entry {name!r} must be a non-empty list, got {values!r}")
    names = sorted(grid)
    points = [{**fixed, **dict(zip(names, combo))} for combo in itertools.product(*(grid[n] for n in names))]
    return notebook, points


def check_parameters(notebook: Path, points: list[dict[str, Any]]) -> None:
    """Reject parameter names the notebook's ``parameters`` cell does not declare."""
    import papermill

    declared = set(papermill.inspect_notebook(str(REPO / notebook)))
    unknown = sorted({name for point in points for name in point} - declared)
    if unknown:
        raise ValueError(f"{notebook} does not declare parameters {unknown}; it declares {sorted(declared)}")


def point_name(parameters: dict[str, Any]) -> str:
    text = json.dumps(parameters, sort_keys=True)
    readable = "_".join(f"{k}-{v}" for k, v in sorted(parameters.items()) if not isinstance(v, (list, dict)))
    return (readable[:80] + "_" if readable else "") + hashlib.sha1(text.encode()).hexdigest()[:8]


def glued_values(executed: Path) -> dict[str, Any]:
    """Values a notebook glued with myst-nb: the ``text/plain`` of each output tagged with a name."""
    values = {}
    for cell in json.loads(executed.read_text()).get("cells", []):
        for output in cell.get("outputs", []):
            tag = output.get("metadata", {}).get("scrapbook", {})
            key = tag.get("mime_prefix", "") + "text/plain"
            if tag.get("name") and key in output.get("data", {}):
                values[tag["name"]] = output["data"][key]
    return values


def run_sweep(grid_file: str | Path, results_dir: str | Path = "results/sweeps", dry_run: bool = False) -> int:
    """Run every unfinished point of the grid; returns a process exit code."""
    import papermill

    notebook, points = load_grid(grid_file)
    check_parameters(notebook, points)
    folder = Path(results_dir) / notebook.stem
    for parameters in points:
        name = point_name(parameters)
        record_file = folder / f"{name}.json"
        finished = record_file.exists() and read_json(record_file).get("status") == "finished"
        print(f"{'finished' if finished else 'to run':8s}  {name}  {json.dumps(parameters, sort_keys=True)}")
        if finished or dry_run:
            continue
        record = {"notebook": notebook.as_posix(), "parameters": parameters, "status": "running", "started": now()}
        atomic_write_json(record_file, record)
        executed = folder / f"{name}.ipynb"
        papermill.execute_notebook(str(REPO / notebook), str(executed), parameters=parameters,
                                   cwd=str((REPO / notebook).parent), progress_bar=False)
        _relative_paths(executed, notebook)
        record.update(status="finished", finished=now(), values=glued_values(executed),
                      executed_notebook=executed.name)
        atomic_write_json(record_file, record)
    return 0


def _relative_paths(executed: Path, notebook: Path) -> None:
    """Replace the machine paths papermill stores in the notebook metadata by repo-relative ones."""
    nb = json.loads(executed.read_text())
    meta = nb.get("metadata", {}).get("papermill", {})
    meta["input_path"] = notebook.as_posix()
    meta["output_path"] = executed.name
    meta.pop("cwd", None)
    executed.write_text(json.dumps(nb, indent=1) + "\n")
