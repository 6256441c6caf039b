"""Notebook sweeps: run a notebook through papermill over the parameter sets of a YAML grid.

Grid file::

    notebook: notebooks/03_cifar_accuracy.ipynb   # relative to the current directory (or absolute)
    parameters: {epochs: 2}                       # fixed for every point
    grid: {seed: [0, 1], sparsities: [[0.5], [0.9]]}   # lists combined as a product

Each point is kept in ``<results_dir>/<notebook stem>/<point name>.ipynb`` (the executed notebook,
git-ignored) and ``<point name>.json``, its record: parameters, ``status`` and, when finished, the
values the notebook glued; a failed point's record holds ``error`` (type and message) and the
executed notebook, which shows the failing cell. Statuses: "finished", "failed", "running" (a live
process holds the point's lock), "interrupted" (a record left "running" by a process that died)
and "to run".

Public seam for executors (e.g. submitit jobs): :func:`run_point` runs one point, holding the
point's lock (:func:`sparsam.experiment.store.lock`, file ``.<point name>.lock`` in the folder), so two
processes never run one point at once; :func:`run_sweep` loops over the points calling it.
:func:`load_grid`, :func:`check_point` and :func:`point_status` are the steps it takes before.

Parameter names the notebook does not declare are rejected before anything runs; parameters that
are :class:`~sparsam.experiment.config.TrainConfig` fields are checked by building a training config
(:func:`check_point`), so a typo in a grid value shows in ``--dry-run``. Executing notebooks needs
papermill and the notebooks' own imports (the ``book`` extra: ``pip install -e ".[book]"``).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

import yaml

from . import yaml_text
from .config import OPTIMIZERS, TrainConfig
from .jobs import ExecutorOptions, Point, is_alive, print_summary, run_points, slurm_script
from .grid import expand
from .store import Locked, atomic_write_json, holder as lock_holder, lock, now, read_json

_BOOK_EXTRA = 'the sweep needs papermill and the notebooks\' libraries: pip install -e ".[book]"'


def _papermill() -> Any:
    try:
        import matplotlib  # noqa: F401  (every notebook of the book plots)
        import papermill
    except ImportError as error:
        raise ImportError(f"{_BOOK_EXTRA} ({error})") from error
    return papermill


def load_grid(path: str | Path) -> tuple[Path, list[dict[str, Any]]]:
    """The notebook (as written: relative to the current directory, or absolute) and the parameter sets of a grid
    file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid file {path} not found")
    try:
        spec = yaml_text.read(path) or {}
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ValueError(f"grid file {path} is not valid YAML{line}: {getattr(error, 'problem', error)}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"grid file {path} must be a mapping with 'notebook', 'parameters' and 'grid'")
    if "regime" in spec and "configurations" in spec:
        raise ValueError(f"grid file {path} is a study's pre-registration (training runs, not notebook points): "
                         f"train it with `python -m sparsam train-grid {path} --store results/study/runs`")
    unknown = sorted(set(spec) - {"notebook", "parameters", "grid"})
    if unknown or "notebook" not in spec:
        raise ValueError(f"grid file needs 'notebook' and may have 'parameters' and 'grid'; unknown keys: {unknown}")
    notebook = Path(str(spec["notebook"]))
    if not _source(notebook).is_file():
        raise ValueError(f"notebook {spec['notebook']!r} not found (a path relative to the current directory "
                         f"{Path.cwd()}, or an absolute path)")
    fixed, grid = spec.get("parameters") or {}, spec.get("grid") or {}
    if not isinstance(fixed, dict) or not isinstance(grid, dict):
        raise ValueError("'parameters' and 'grid' must be mappings of parameter names")
    return notebook, expand(fixed, grid)


def _source(notebook: Path) -> Path:
    return notebook.absolute()


def notebook_defaults(notebook: Path) -> dict[str, Any]:
    """The parameters a notebook declares, with their defaults where these are Python literals."""
    declared = _papermill().inspect_notebook(str(_source(notebook)))
    defaults = {}
    for name, info in declared.items():
        try:
            defaults[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            defaults[name] = None  # an expression: declared, value unknown here
    return defaults


def check_parameters(notebook: Path, points: list[dict[str, Any]], declared: Iterable[str] | None = None) -> None:
    """Reject parameter names the notebook's ``parameters`` cell does not declare (``declared``: its
    parameter names, if already known)."""
    declared = set(notebook_defaults(notebook) if declared is None else declared)
    unknown = sorted({name for point in points for name in point} - declared)
    if unknown:
        raise ValueError(f"{notebook} does not declare parameters {unknown}; it declares {sorted(declared)}")


def check_point(parameters: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Raise ``ValueError`` if the point's :class:`TrainConfig` fields, over the notebook's defaults,
    make no valid training config.

    A notebook without an ``optimizer`` parameter trains several optimizers: the values pass if they
    make a valid config with any of them.
    """
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in {**defaults, **parameters}.items() if k in names and v is not None}
    tries = [values] if "optimizer" in values else [{**values, "optimizer": o} for o in OPTIMIZERS]
    errors = []
    for attempt in tries:
        try:
            TrainConfig.from_dict(attempt)
            return
        except (TypeError, ValueError) as error:
            errors.append(error)
    raise ValueError(str(errors[0])) from None


def point_name(parameters: dict[str, Any]) -> str:
    text = json.dumps(parameters, sort_keys=True)
    readable = "_".join(f"{k}-{v}" for k, v in sorted(parameters.items()) if not isinstance(v, (list, dict)))
    return (readable[:80] + "_" if readable else "") + hashlib.sha1(text.encode()).hexdigest()[:8]


def _lock_name(name: str) -> str:
    return f".{name}.lock"


def point_status(folder: Path, parameters: dict[str, Any]) -> str:
    """"finished", "failed", "running" (with the holder: "running (pid P on H)"), "interrupted" or "to run"."""
    name = point_name(parameters)
    holder = lock_holder(folder, _lock_name(name))
    if holder is not None:
        return f"running (pid {holder.get('pid', '?')} on {holder.get('host', '?')})"
    record_file = Path(folder) / f"{name}.json"
    if not record_file.exists():
        return "to run"
    status = read_json(record_file).get("status", "to run")
    return "interrupted" if status == "running" else status


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


def _error(error: BaseException) -> dict[str, str]:
    """Type and message of an error; a notebook's own exception rather than papermill's wrapper."""
    kind, message = getattr(error, "ename", None), getattr(error, "evalue", None)
    return {"type": kind or type(error).__name__, "message": str(message if kind else error)}


def run_point(notebook: Path, parameters: dict[str, Any], folder: Path,
              job: dict[str, Any] | None = None) -> dict[str, Any]:
    """Execute ``notebook`` (relative to the current directory, or absolute) with ``parameters`` into ``folder``;
    return the record.

    Holds the point's lock throughout (another process running it raises :class:`sparsam.experiment.store.Locked`).
    A finished point is returned as it is. The record goes from "running" to "finished" (with the glued
    values) or "failed" (with ``error``: type and message, and ``executed_notebook``); a
    ``KeyboardInterrupt`` writes "interrupted" and is re-raised. ``job`` (executor, job id, host:
    :func:`sparsam.experiment.jobs.job_info`) goes into the record.
    """
    papermill = _papermill()
    folder, name = Path(folder), point_name(parameters)
    record_file, executed = folder / f"{name}.json", folder / f"{name}.ipynb"
    with lock(folder, name=_lock_name(name)):
        if record_file.exists() and read_json(record_file).get("status") == "finished":
            return read_json(record_file)
        record = {"notebook": notebook.as_posix(), "parameters": parameters, "status": "running", "started": now()}
        if job is not None:
            record["job"] = job
        atomic_write_json(record_file, record)
        try:
            papermill.execute_notebook(str(_source(notebook)), str(executed), parameters=parameters,
                                       cwd=str(_source(notebook).parent), progress_bar=False)
        except KeyboardInterrupt:
            record.update(status="interrupted", finished=now())
            atomic_write_json(record_file, record)
            raise
        except Exception as error:  # the notebook's failure is the point's result, not the sweep's
            record.update(status="failed", finished=now(), error=_error(error),
                          executed_notebook=executed.name if executed.exists() else None)
        else:
            record.update(status="finished", finished=now(), values=glued_values(executed),
                          executed_notebook=executed.name)
        if executed.exists():
            _relative_paths(executed, notebook)
        atomic_write_json(record_file, record)
        return record


def run_sweep(grid_file: str | Path, results_dir: str | Path = "results/sweeps", dry_run: bool = False,
              options: ExecutorOptions = ExecutorOptions(), wait: bool = True) -> int:
    """Run every point of the grid that is not finished; returns a process exit code.

    ``options`` choose where points run (:mod:`sparsam.experiment.jobs`): inline, one after the other, or
    one job per point, whose logs go to ``<point name>.logs/`` beside the point's record.

    Every point is checked first (:func:`check_parameters`, :func:`check_point`); an invalid point is
    reported and recorded as failed without running. A point another process is running is skipped.
    Returns 0 when every point finished, 1 when some failed, 2 for invalid points in a dry run.
    """
    notebook, points = load_grid(grid_file)
    defaults = notebook_defaults(notebook)
    check_parameters(notebook, points, defaults)
    folder = Path(results_dir) / notebook.stem
    failed = invalid = 0
    jobs: list[Point] = []
    for parameters in points:
        name, shown = point_name(parameters), json.dumps(parameters, sort_keys=True)
        try:
            check_point(parameters, defaults)
        except ValueError as error:
            invalid += 1
            print(f"invalid      {name}  {shown}: {error}", flush=True)
            if not dry_run:
                atomic_write_json(folder / f"{name}.json", {
                    "notebook": notebook.as_posix(), "parameters": parameters, "status": "failed", "finished": now(),
                    "error": {"type": "ValueError", "message": str(error)}, "executed_notebook": None})
            continue
        status = point_status(folder, parameters)
        if status == "submitted" and is_alive(read_json(folder / f"{name}.json"), folder / f"{name}.logs"):
            status = "running (a submitted job)"
        if dry_run or status == "finished":
            print(f"{status:12s} {name}  {shown}", flush=True)
            continue
        if status.startswith("running"):
            print(f"{'skipped':12s} {name}: {status} in another process", flush=True)
            continue
        print(f"{'run':12s} {name}  {shown}", flush=True)
        if options.executor != "inline":
            where = folder.resolve()  # a job may start in another working directory
            jobs.append(Point(name, run_point, dict(notebook=notebook, parameters=parameters, folder=where),
                              where / f"{name}.json", where / f"{name}.logs"))
            continue
        try:
            record = run_point(notebook, parameters, folder)
        except Locked as error:
            print(f"{'skipped':12s} {name}: {error}", flush=True)
            continue
        if record["status"] == "failed":
            failed += 1
            see = f" (see {folder / record['executed_notebook']})" if record["executed_notebook"] else ""
            print(f"{'failed':12s} {name}: {record['error']['type']}: {record['error']['message']}{see}", flush=True)
    if dry_run:
        if options.executor == "slurm":
            print(f"\nthe sbatch script of a point:\n\n{slurm_script(options, folder / '<point name>.logs')}")
        return 2 if invalid else 0
    if jobs:
        outcomes = run_points(jobs, options, wait=wait)
        print_summary(outcomes)
        failed += sum(outcome.status == "failed" for outcome in outcomes)
    if failed or invalid:
        print(f"{failed + invalid} of {len(points)} points failed", flush=True)
        return 1
    return 0


def _relative_paths(executed: Path, notebook: Path) -> None:
    """Replace the machine paths papermill stores in the notebook metadata by repo-relative ones."""
    nb = json.loads(executed.read_text())
    meta = nb.get("metadata", {}).get("papermill", {})
    meta["input_path"] = notebook.as_posix()
    meta["output_path"] = executed.name
    meta.pop("cwd", None)
    executed.write_text(json.dumps(nb, indent=1) + "\n")
