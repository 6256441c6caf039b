"""What a stored record must hold, checked whenever one is read: the schema (required fields and their
JSON types) and the consistency of its numbers.

Two kinds of record are committed under ``results/``:

- a **run record** (``<store>/<run id>.json``, written by :func:`sparsam.experiment.results.run_missing`
  from :func:`sparsam.experiment.train.train`): ``{"summary": {...}, "metrics": [one object per epoch]}``,
  stored with its metrics as columns (:func:`run_record_text`: one line per field, a third of the rows' size,
  so that the records travel beside a data pack) and read back as rows (records written as rows read the same);
- a **flatness record** (``results/study/flatness/<run id>.json``, written by
  :func:`sparsam.book.curvature.measure_run`): the curvature of one trained network.

Besides the types, a run record must agree with itself: its run id with its configuration and its
file name; ``epochs_run`` with the configuration's epochs and the number of metric lines (a resumed
run keeps the lines of the epochs before its checkpoint, so it has them all too); the test set
evaluated on exactly the epochs that ``eval_every`` names and the last; the final and best accuracy,
final training loss and mask density with the metric lines; the final accuracy, exactly, with the
stored per-example correctness ``test_correct`` where the record keeps it (both are a count of
correct examples divided by the test set's size, so they agree to the last bit); and the aggregate
times with the metric lines they are computed from (to 1e-9 relative: another Python may sum in
another order). A flatness record's run id must match its configuration and file name, its
evaluation seed the run's seed, and its eigenvalue the last of its power iterations; the scale-free
measures (the Hessian in normalised weights), which records made before them lack, come all together
or not at all, and obey the same rules.

A record that fails any of this raises :class:`RecordError` (a ``ValueError``) with the one-line message
``"<path>: <what is wrong>"``: the book build and the command line stop on it instead of showing or
dropping it.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import textwrap
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, NoReturn

import numpy as np

from .config import TrainConfig

# The schemas: field -> allowed JSON types ("integer", "number", "string", "boolean", "object",
# "array", "null"; "a|b" allows either). Fields other than these are allowed (later additions, e.g.
# the "job" a grid point adds).
Spec = Mapping[str, str]
PROVENANCE: Spec = {"git_commit": "string|null", "git_dirty": "boolean|null", "torch": "string",
                    "torchvision": "string", "python": "string", "device": "string", "device_name": "string",
                    "cpu_threads": "integer", "host": "string"}
RUN: Spec = {"summary": "object", "metrics": "array"}
SUMMARY: Spec = {
    "run_id": "string", "config": "object", "provenance": "object", "data": "object", "seeds": "object",
    "final_test_acc": "number", "best_test_acc": "number", "final_train_loss": "number", "epochs_run": "integer",
    "resumed_from_epoch": "integer", "world_size": "integer", "weight_decay_used": "number",
    "mask_density": "number|null", "images_per_s": "number", "train_seconds": "number",
    "wall_seconds_this_process": "number", "flops_forward": "integer", "flops_per_step": "integer",
    "flops_batch_size": "integer", "started": "string", "finished": "string"}
# Summary fields that records made before they existed lack.
SUMMARY_LATER: Spec = {"test_correct": "object", "seconds_per_step": "number|null",
                       "cpu_seconds_per_step": "number|null", "mean_eps_norm": "number|null",
                       "sparse_step_flops_vs_sgd": "number|null", "numerics": "object"}
DATA: Spec = {"name": "string", "num_classes": "integer"}
PACKED_BITS: Spec = {"n": "integer", "bits": "string"}
METRIC: Spec = {"epoch": "integer", "lr": "number", "train_loss": "number", "train_acc": "number",
                "test_loss": "number|null", "test_acc": "number|null", "seconds": "number", "images_per_s": "number",
                "mask_density": "number|null"}
METRIC_LATER: Spec = {"steps": "integer", "seconds_per_step": "number", "cpu_seconds_per_step": "number",
                      "eps_norm": "number|null", "sparse_step_flops_vs_sgd": "number|null"}
FLATNESS: Spec = {"run_id": "string", "config": "object", "settings": "object", "results": "object",
                  "provenance": "object", "measured": "string", "trained_at": "string|null"}
# What identifies the measured network (its run's final training loss and per-example test outcomes), which
# records measured before it was kept lack.
FLATNESS_LATER: Spec = {"network": "object"}
NETWORK: Spec = {"final_train_loss": "number", "test_correct": "object"}
FLATNESS_SETTINGS: Spec = {"n_eval": "integer", "eval_batch_size": "integer", "power_iterations": "integer",
                           "hutchinson_samples": "integer", "eval_seed": "integer"}
# One network's curvature (sparsam.book.curvature.curvature), in the order of its row.
FLATNESS_RESULTS: Spec = {"loss": "number", "eigenvalue": "number", "eigenvalue_history": "array", "trace": "number",
                          "trace_stderr": "number", "weight_norm": "number"}
# The scale-free measures (the Hessian in normalised weights), which records measured before them lack.
FLATNESS_RESULTS_LATER: Spec = {"eigenvalue_normalized": "number", "eigenvalue_normalized_history": "array",
                                "trace_normalized": "number", "trace_normalized_stderr": "number"}
Fail = Callable[[str], NoReturn]  # raises RecordError naming the file
RELATIVE_TOLERANCE = 1e-9  # for aggregates of floats that another Python may sum in another order


class RecordError(ValueError):
    """A stored record that cannot be read, lacks a field, or contradicts itself; the message is
    ``"<path>: <what is wrong>"`` on one line."""

    def __init__(self, path: str | Path, what: str):
        self.path, self.what = Path(path), what
        super().__init__(f"{path}: {what}")


def metric_columns(rows: list[Mapping[str, Any]]) -> dict[str, list[Any]] | None:
    """Per-epoch metric ``rows`` as columns (field -> one value per epoch, the fields sorted); None where the rows
    do not all hold the same fields, which only rows can store."""
    fields = sorted(rows[0]) if rows else []
    if any(sorted(row) != fields for row in rows):
        return None
    return {field: [row[field] for row in rows] for field in fields}


def metric_rows(metrics: Any, where: str | Path = "the record") -> Any:
    """A run record's stored ``metrics`` as one mapping per epoch: columns (:func:`metric_columns`) turned back
    into rows, rows as they are; columns of unequal lengths raise :class:`RecordError` naming ``where``."""
    if not isinstance(metrics, Mapping):
        return metrics
    lengths = {field: len(values) if isinstance(values, list) else None for field, values in metrics.items()}
    if len(set(lengths.values())) > 1 or None in lengths.values():
        raise RecordError(where, f"metrics: every column must be a list of one value per epoch, got lengths {lengths}")
    n = next(iter(lengths.values()), 0)
    return [{field: values[i] for field, values in metrics.items()} for i in range(n)]


def run_record_text(record: Mapping[str, Any]) -> str:
    """A run record as a store keeps it: JSON, the keys sorted and indented by two, its ``metrics`` as
    columns (:func:`metric_columns`) of one line each; read back by :func:`read_record` to the same record."""
    columns = metric_columns(list(record["metrics"]))
    if columns is None:
        return json.dumps(record, indent=2, sort_keys=True) + "\n"
    lines = ",\n".join(f"    {json.dumps(field)}: {json.dumps(values, separators=(',', ':'))}"
                       for field, values in columns.items())
    sections = {key: ("{\n" + lines + "\n  }" if key == "metrics"
                      else textwrap.indent(json.dumps(value, indent=2, sort_keys=True), "  ")[2:])
                for key, value in record.items()}
    return "{\n" + ",\n".join(f"  {json.dumps(key)}: {sections[key]}" for key in sorted(sections)) + "\n}\n"


def read_record(path: str | Path, kind: Literal["run", "flatness"] = "run") -> dict[str, Any]:
    """The record in ``path`` after :func:`check_run_record` or :func:`check_flatness_record`
    (``kind``); a file that is not JSON (e.g. truncated) or a bad record raises :class:`RecordError`."""
    checks = {"run": check_run_record, "flatness": check_flatness_record}
    if kind not in checks:
        raise ValueError(f"kind must be one of {', '.join(map(repr, checks))}, got {kind!r}")
    path = Path(path)
    text = path.read_bytes()
    try:
        record = json.loads(text)
    except UnicodeDecodeError as error:
        raise RecordError(path, f"is not UTF-8 text ({error.reason} at byte {error.start}); {_RESTORE}") from None
    except json.JSONDecodeError as error:
        what = "is empty" if not text.strip() else f"is not valid JSON ({error.msg} at line {error.lineno} column " \
                                                   f"{error.colno}, of {len(text)} bytes: truncated?)"
        raise RecordError(path, f"{what}; {_RESTORE}") from None
    if kind == "run" and isinstance(record, dict) and "metrics" in record:
        record["metrics"] = metric_rows(record["metrics"], path)
    checks[kind](record, path)
    return record


_RESTORE = "restore it from git or delete it so that it is made again"


def check_run_record(record: Any, path: str | Path) -> None:
    """Raise :class:`RecordError` naming ``path`` unless ``record`` is a well-formed, self-consistent run
    record stored under its run id (see the module's documentation for what is checked)."""
    fail = _failer(path)
    _check_fields(record, RUN, {}, "the record", fail)
    summary, metrics = record["summary"], record["metrics"]
    _check_fields(summary, SUMMARY, SUMMARY_LATER, "summary", fail)
    _check_fields(summary["provenance"], PROVENANCE, {}, "summary.provenance", fail)
    _check_fields(summary["data"], DATA, {}, "summary.data", fail)
    for i, line in enumerate(metrics):
        _check_fields(line, METRIC, METRIC_LATER, f"metrics[{i}]", fail)
    config = _config(summary["config"], "summary.config", fail)
    _check_run_id(summary["run_id"], config, path, "summary.run_id", fail)

    epochs = [line["epoch"] for line in metrics]
    if not (summary["epochs_run"] == len(metrics) == config.epochs):
        fail(f"summary.epochs_run is {summary['epochs_run']}, the configuration has {config.epochs} epochs and "
             f"there are {len(metrics)} metric lines; a finished run has one line per epoch")
    if epochs != list(range(1, len(metrics) + 1)):
        fail(f"the metric lines are of epochs {_abbreviate(epochs)}, not 1 to {len(metrics)} in order")
    expected = [e for e in epochs if e % config.eval_every == 0 or e == config.epochs]
    evaluated = [line["epoch"] for line in metrics if line["test_acc"] is not None]
    if evaluated != expected:
        fail(f"the test set was evaluated after epochs {_abbreviate(evaluated)}, but eval_every="
             f"{config.eval_every} of {config.epochs} epochs evaluates after {_abbreviate(expected)}")
    for i, line in enumerate(metrics):
        if (line["test_loss"] is None) != (line["test_acc"] is None):
            fail(f"metrics[{i}] has a test accuracy without a test loss or the reverse")
        for field in ("train_acc", "test_acc"):
            _check_fraction(line[field], f"metrics[{i}].{field}", fail)
    for field in ("final_test_acc", "best_test_acc"):
        _check_fraction(summary[field], f"summary.{field}", fail)

    last = metrics[-1]
    _equal(summary["final_test_acc"], last["test_acc"], "summary.final_test_acc", "the last metric line's test_acc",
           fail)
    best = max(line["test_acc"] for line in metrics if line["test_acc"] is not None)
    _equal(summary["best_test_acc"], best, "summary.best_test_acc", "the best test_acc of the metric lines", fail)
    _equal(summary["final_train_loss"], last["train_loss"], "summary.final_train_loss",
           "the last metric line's train_loss", fail)
    _equal(summary["mask_density"], last["mask_density"], "summary.mask_density",
           "the last metric line's mask_density", fail)
    if "sparse_step_flops_vs_sgd" in summary:
        _equal(summary["sparse_step_flops_vs_sgd"], last.get("sparse_step_flops_vs_sgd"),
               "summary.sparse_step_flops_vs_sgd", "the last metric line's", fail)
    if "test_correct" in summary:
        _check_correctness(summary["test_correct"], summary["final_test_acc"], config, fail)

    _equal(summary["weight_decay_used"], config.decay, "summary.weight_decay_used",
           "the configuration's weight decay", fail)
    if summary["seeds"].get("seed") != config.seed:
        fail(f"summary.seeds is {summary['seeds']}, but the configuration's seed is {config.seed}")
    if not 0 <= summary["resumed_from_epoch"] <= summary["epochs_run"]:
        fail(f"summary.resumed_from_epoch must be in [0, {summary['epochs_run']}] (the epochs run), "
             f"got {summary['resumed_from_epoch']}")
    if summary["world_size"] < 1:
        fail(f"summary.world_size must be at least 1, got {summary['world_size']}")

    _close(summary["images_per_s"], sum(line["images_per_s"] for line in metrics) / len(metrics),
           "summary.images_per_s", "the mean over the metric lines", fail)
    _close(summary["train_seconds"], sum(line["seconds"] for line in metrics), "summary.train_seconds",
           "the sum of the metric lines' seconds", fail)
    for field, per_line in (("seconds_per_step", "seconds_per_step"), ("cpu_seconds_per_step", "cpu_seconds_per_step"),
                            ("mean_eps_norm", "eps_norm")):
        if summary.get(field) is not None:
            _close(summary[field], _per_step(metrics, per_line, f"summary.{field}", fail), f"summary.{field}",
                   f"the metric lines' {per_line} averaged over their steps", fail)


def check_flatness_record(record: Any, path: str | Path) -> None:
    """Raise :class:`RecordError` naming ``path`` unless ``record`` is a well-formed, self-consistent
    flatness record stored under its run id."""
    fail = _failer(path)
    _check_fields(record, FLATNESS, FLATNESS_LATER, "the record", fail)
    if "network" in record:
        _check_fields(record["network"], NETWORK, {}, "network", fail)
        _check_fields(record["network"]["test_correct"], PACKED_BITS, {}, "network.test_correct", fail)
    _check_fields(record["settings"], FLATNESS_SETTINGS, {}, "settings", fail)
    _check_fields(record["results"], FLATNESS_RESULTS, FLATNESS_RESULTS_LATER, "results", fail)
    _check_fields(record["provenance"], PROVENANCE, {}, "provenance", fail)
    config = _config(record["config"], "config", fail)
    _check_run_id(record["run_id"], config, path, "run_id", fail)
    settings, results = record["settings"], record["results"]
    if settings["eval_seed"] != config.seed:
        fail(f"settings.eval_seed is {settings['eval_seed']}, but the run's seed is {config.seed}")
    later = [name for name in FLATNESS_RESULTS_LATER if name in results]
    if later and len(later) != len(FLATNESS_RESULTS_LATER):
        fail(f"results holds {', '.join(later)} but lacks "
             f"{', '.join(sorted(set(FLATNESS_RESULTS_LATER) - set(later)))} (the scale-free measures come together)")
    for suffix in ("", "_normalized") if later else ("",):
        history = results[f"eigenvalue{suffix}_history"]
        if not 1 <= len(history) <= settings["power_iterations"] or not all(_is(v, "number") for v in history):
            fail(f"results.eigenvalue{suffix}_history must hold 1 to {settings['power_iterations']} numbers (one per "
                 f"power iteration), got {_abbreviate(history)}")
        _equal(results[f"eigenvalue{suffix}"], history[-1], f"results.eigenvalue{suffix}",
               f"the last of results.eigenvalue{suffix}_history", fail)
        for field in ("loss", f"eigenvalue{suffix}", f"trace{suffix}", "weight_norm"):
            if not math.isfinite(results[field]):
                fail(f"results.{field} must be finite, got {results[field]!r}")
        stderr = results[f"trace{suffix}_stderr"]
        if not (stderr >= 0 or math.isnan(stderr)):  # NaN: one Hutchinson sample
            fail(f"results.trace{suffix}_stderr must be >= 0 (or NaN for one sample), got {stderr!r}")
    if results["loss"] < 0 or results["weight_norm"] <= 0:
        fail(f"results.loss must be >= 0 and results.weight_norm > 0, got {results['loss']!r} and "
             f"{results['weight_norm']!r}")


def _failer(path: str | Path) -> Fail:
    def fail(what: str) -> NoReturn:
        raise RecordError(path, what)
    return fail


_JSON_TYPES: dict[str, tuple[type, ...]] = {"null": (type(None),), "boolean": (bool,), "integer": (int,),
                                            "number": (int, float), "string": (str,), "array": (list,),
                                            "object": (dict,)}


def _is(value: Any, kinds: str) -> bool:
    """Whether ``value`` (as ``json.loads`` returns it) has one of the JSON types ``kinds`` ("a|b")."""
    for kind in kinds.split("|"):
        if isinstance(value, bool) and kind in ("integer", "number"):
            continue  # True is an int in Python, not a number in JSON
        if isinstance(value, _JSON_TYPES[kind]):
            return True
    return False


def _json_type(value: Any) -> str:
    return next(kind for kind in ("null", "boolean", "integer", "number", "string", "array", "object")
                if _is(value, kind))


def _check_fields(obj: Any, required: Spec, later: Spec, where: str, fail: Fail) -> None:
    if not isinstance(obj, dict):
        fail(f"{where} must be a JSON object, got {_json_type(obj)}")
    missing = [name for name in required if name not in obj]
    if missing:
        fail(f"{where} lacks {', '.join(missing)}")
    for name, kinds in {**required, **later}.items():
        if name in obj and not _is(obj[name], kinds):
            fail(f"{where}.{name} must be {kinds.replace('|', ' or ')}, got {_json_type(obj[name])} "
                 f"{_abbreviate(obj[name])}")


def _config(values: dict[str, Any], where: str, fail: Fail) -> TrainConfig:
    try:
        return TrainConfig.from_dict(values)
    except (ValueError, TypeError) as error:
        fail(f"{where} is not a valid configuration ({' '.join(str(error).split())})")


def _check_run_id(run_id: str, config: TrainConfig, path: str | Path, where: str, fail: Fail) -> None:
    if run_id != config.run_id():
        fail(f"{where} is {run_id!r}, but its configuration's run id is {config.run_id()!r}")
    if Path(path).name != f"{run_id}.json":
        fail(f"does not hold the config it is named after (the file is named {Path(path).name!r}, "
             f"the record is run {run_id!r})")


def _check_fraction(value: float | None, where: str, fail: Fail) -> None:
    if value is not None and not 0 <= value <= 1:
        fail(f"{where} must be a fraction in [0, 1], got {value!r}")


def _check_correctness(packed: dict[str, Any], final: float, config: TrainConfig, fail: Fail) -> None:
    """``test_correct`` (:func:`sparsam.experiment.results.pack_bits`) against the final accuracy: the
    number of set bits over ``n`` is that accuracy to the last bit, as both are computed so."""
    _check_fields(packed, PACKED_BITS, {}, "summary.test_correct", fail)
    n = packed["n"]
    try:
        raw = base64.b64decode(packed["bits"], validate=True)
    except (binascii.Error, ValueError):
        fail("summary.test_correct.bits is not base64")
    if n < 1 or len(raw) != (n + 7) // 8:
        fail(f"summary.test_correct holds {len(raw)} bytes for n={n} examples (expected {(n + 7) // 8})")
    if config.n_test is not None and n != config.n_test:
        fail(f"summary.test_correct has {n} examples, but the configuration's n_test is {config.n_test}")
    correct = int(np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=n).sum())
    if correct / n != final:
        fail(f"summary.final_test_acc is {final!r}, but test_correct holds {correct} of {n} examples correct "
             f"({correct / n!r})")


def _equal(value: Any, expected: Any, where: str, what: str, fail: Fail) -> None:
    if value != expected:
        fail(f"{where} is {value!r}, but {what} is {expected!r}")


def _close(value: float, expected: float, where: str, what: str, fail: Fail) -> None:
    if not math.isclose(value, expected, rel_tol=RELATIVE_TOLERANCE):
        fail(f"{where} is {value!r}, but {what} is {expected!r}")


def _per_step(metrics: list[dict[str, Any]], field: str, where: str, fail: Fail) -> float:
    """The mean of a per-step quantity over a run's steps (each epoch weighted by its steps)."""
    if any(line.get(field) is None or "steps" not in line for line in metrics):
        fail(f"{where} is given, but not every metric line has {field} and steps")
    steps = sum(line["steps"] for line in metrics)
    if steps < 1:
        fail(f"{where} is given, but the metric lines count {steps} steps")
    return sum(line[field] * line["steps"] for line in metrics) / steps


def _abbreviate(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
