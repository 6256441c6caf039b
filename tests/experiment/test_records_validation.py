"""Records validated on load (sparsam.experiment.record_schema): a truncated, incomplete or inconsistent
record stops whoever reads it (the notebooks' results.load_all, results.load_record, the flatness reader,
the command line) with one line naming the file and what is wrong; every committed record passes."""

from __future__ import annotations

import base64
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import data_file
from sparsam import cli
from sparsam.book import curvature
from sparsam.experiment import grid, results
from sparsam.experiment.config import TrainConfig
from sparsam.experiment.record_schema import (RecordError, check_run_record, metric_columns, read_record,
                                              run_record_text)
from conftest import REPO

RUN_STORES = [REPO / "results" / "runs", REPO / "results" / "study" / "runs", REPO / "results" / "study" / "pilot"]
FLATNESS_STORE = REPO / "results" / "study" / "flatness"


def _committed(kind: str = "run") -> list[Path]:
    stores = RUN_STORES if kind == "run" else [FLATNESS_STORE]
    return sorted(p for store in stores for p in store.glob("*.json"))


def _template() -> Path:
    """A committed run record that keeps its per-example correctness and whose final epoch is its best."""
    for path in _committed():
        summary = json.loads(path.read_text())["summary"]
        if "test_correct" in summary and summary["best_test_acc"] == summary["final_test_acc"]:
            return path
    raise AssertionError("no committed record with test_correct")


def _store(tmp_path: Path, record: dict, name: str | None = None) -> Path:
    """``record`` written alone into a fresh store as ``<name or its run id>.json``; the file's path."""
    store = tmp_path / "store"
    store.mkdir(parents=True, exist_ok=True)
    path = store / f"{name or record['summary']['run_id']}.json"
    path.write_text(json.dumps(record, indent=2))
    return path


def _rejected(path: Path, match: str) -> RecordError:
    """The error with which the notebooks' loading path refuses the store of ``path``: one line, naming it."""
    with pytest.raises(RecordError, match=match) as caught:
        results.load_all(path.parent)
    error = caught.value
    assert str(error).startswith(f"{path}: ") and "\n" not in str(error) and error.path == path
    assert isinstance(error, ValueError)  # what the command line shows as one "error:" line
    return error


def test_every_committed_record_passes_and_the_stores_are_read_whole():
    runs, flat = _committed("run"), _committed("flatness")
    assert len(runs) >= 80 and len(flat) >= 16  # the stores of the book (89 run and 16 flatness records)
    for store in RUN_STORES:
        loaded = results.load_all(store)
        assert [r["summary"]["run_id"] for r in loaded] == [p.stem for p in sorted(store.glob("*.json"))]
    for path in flat:
        assert read_record(path, "flatness")["run_id"] == path.stem


@pytest.mark.parametrize("keep", [0, 0.5, 0.99])
def test_a_truncated_record_names_its_file(tmp_path, keep):
    source = _template()
    path = tmp_path / "store" / source.name
    path.parent.mkdir()
    text = source.read_text()
    path.write_text(text[:int(keep * len(text))])
    _rejected(path, "is empty" if keep == 0 else r"is not valid JSON \(.* line \d+ column \d+.*truncated")
    with pytest.raises(RecordError, match="restore it from git or delete it"):
        results.load_record(TrainConfig.from_dict(json.loads(text)["summary"]["config"]), path.parent)


def test_a_record_that_is_not_utf8_names_its_file(tmp_path):
    path = tmp_path / "store" / _template().name
    path.parent.mkdir()
    path.write_bytes(_template().read_bytes()[:100] + b"\xff\xfe" + _template().read_bytes()[100:])
    _rejected(path, "is not UTF-8")


def test_a_hand_edited_final_accuracy_disagrees_with_the_stored_correctness(tmp_path):
    record = read_record(_template(), "run")
    n = record["summary"]["test_correct"]["n"]
    flags = results.correctness(record)
    assert flags.mean() == record["summary"]["final_test_acc"]  # what the check relies on, independently
    edited = (int(flags.sum()) + 1) / n  # one more example correct than the bits say
    for field in ("final_test_acc", "best_test_acc"):
        record["summary"][field] = edited
    record["metrics"][-1]["test_acc"] = edited  # edited consistently everywhere but in test_correct
    path = _store(tmp_path, record)
    _rejected(path, f"summary.final_test_acc is {edited!r}, but test_correct holds {int(flags.sum())} of {n}")

    flipped = flags.copy()
    flipped[np.flatnonzero(~flags)[0]] = True  # the bits changed to match: a consistent record again
    record["summary"]["test_correct"] = results.pack_bits(flipped)
    path.write_text(json.dumps(record))
    assert results.load_all(path.parent)[0]["summary"]["final_test_acc"] == edited


def test_a_final_accuracy_edited_alone_disagrees_with_the_metric_lines(tmp_path):
    record = read_record(_template(), "run")
    record["summary"]["final_test_acc"] += 0.001
    _rejected(_store(tmp_path, record), "summary.final_test_acc is .* but the last metric line's test_acc is")


@pytest.mark.parametrize("line", [0, -1])
def test_a_removed_metric_line_is_rejected(tmp_path, line):
    record = read_record(_template(), "run")
    epochs = record["summary"]["epochs_run"]
    del record["metrics"][line]
    _rejected(_store(tmp_path, record), f"summary.epochs_run is {epochs}, the configuration has {epochs} epochs "
                                        f"and there are {epochs - 1} metric lines")
    record["summary"]["epochs_run"] -= 1  # made to agree with the lines: still not the configuration's epochs
    _rejected(_store(tmp_path, record), f"there are {epochs - 1} metric lines")


def test_metric_lines_out_of_order_or_evaluated_on_other_epochs_are_rejected(tmp_path):
    record = read_record(_template(), "run")
    first, second = record["metrics"][0], record["metrics"][1]
    record["metrics"][0], record["metrics"][1] = second, first
    _rejected(_store(tmp_path, record), r"the metric lines are of epochs \[2, 1[,\]]")
    record = read_record(_template(), "run")
    config = TrainConfig.from_dict(record["summary"]["config"])
    skipped = next(i for i, m in enumerate(record["metrics"][:-1]) if m["test_acc"] is not None)
    record["metrics"][skipped].update(test_acc=None, test_loss=None)
    _rejected(_store(tmp_path, record), f"eval_every={config.eval_every} of {config.epochs} epochs evaluates")


def test_a_run_id_that_does_not_match_the_configuration_or_the_file_name_is_rejected(tmp_path):
    record = read_record(_template(), "run")
    run_id = record["summary"]["run_id"]
    record["summary"]["config"]["lr"] *= 2  # another configuration under the old run id and file name
    other = TrainConfig.from_dict(record["summary"]["config"]).run_id()
    assert other != run_id
    _rejected(_store(tmp_path, record), f"summary.run_id is '{run_id}', but its configuration's run id is '{other}'")

    record = read_record(_template(), "run")
    path = _store(tmp_path / "renamed", record, name=other)  # a consistent record under another run's name
    _rejected(path, f"does not hold the config it is named after .*'{other}.json'.*'{run_id}'")


@pytest.mark.parametrize("edit, match", [
    (lambda r: r["summary"]["provenance"].pop("git_commit"), "summary.provenance lacks git_commit"),
    (lambda r: r["summary"]["provenance"].update(git_dirty="no"), "summary.provenance.git_dirty must be boolean "
                                                                  "or null, got string 'no'"),
    (lambda r: r["summary"].pop("config"), "summary lacks config"),
    (lambda r: r.pop("metrics"), "the record lacks metrics"),
    (lambda r: r["summary"].update(epochs_run=True), "summary.epochs_run must be integer, got boolean"),
    (lambda r: r["metrics"][1].update(train_loss="0.5"), r"metrics\[1\].train_loss must be number, got string"),
    (lambda r: r["summary"]["config"].update(optimiser="sam"), r"summary.config is not a valid configuration "
                                                               r"\(unknown config keys \['optimiser'\]"),
    (lambda r: r["summary"]["config"].update(rho=-1), r"summary.config is not a valid configuration \(rho must"),
    (lambda r: r["summary"]["test_correct"].update(bits="not base64!"), "test_correct.bits is not base64"),
    (lambda r: r["summary"]["test_correct"].update(n=r["summary"]["test_correct"]["n"] + 8), "test_correct holds"),
    (lambda r: r["summary"].update(weight_decay_used=0.1), "summary.weight_decay_used is 0.1, but the config"),
    (lambda r: r["summary"].update(seeds={"seed": 99}), "summary.seeds is .* but the configuration's seed is"),
    (lambda r: r["summary"].update(cpu_seconds_per_step=r["summary"]["cpu_seconds_per_step"] * 0.9),
     "summary.cpu_seconds_per_step is .* but the metric lines' cpu_seconds_per_step averaged over their steps"),
    (lambda r: r["summary"].update(train_seconds=r["summary"]["train_seconds"] + 1), "summary.train_seconds is"),
    (lambda r: r["metrics"][0].update(train_acc=1.5), r"metrics\[0\].train_acc must be a fraction in \[0, 1\]"),
    (lambda r: r["metrics"][-1].update(test_loss=None), r"metrics\[\d+\] has a test accuracy without a test loss"),
    (lambda r: r["summary"].update(final_train_loss=r["summary"]["final_train_loss"] / 2),
     "summary.final_train_loss is .* but the last metric line's train_loss is"),
    (lambda r: r["summary"].update(mask_density=0.5), "summary.mask_density is 0.5, but the last metric line's"),
    (lambda r: r["summary"].update(images_per_s=r["summary"]["images_per_s"] * 2), "summary.images_per_s is"),
    (lambda r: r["summary"].update(resumed_from_epoch=99), r"summary.resumed_from_epoch must be in \[0, "),
])
def test_a_record_missing_a_field_or_with_a_wrong_type_or_value_is_rejected(tmp_path, edit, match):
    record = read_record(_template(), "run")
    edit(record)
    path = _store(tmp_path, record, name=_template().stem)
    _rejected(path, match)


def test_times_summed_in_another_order_pass_but_an_edited_time_does_not():
    record = read_record(_template(), "run")
    path = _template()
    record["summary"]["train_seconds"] = float(np.sum(np.array([m["seconds"] for m in record["metrics"]])[::-1]))
    check_run_record(record, path)  # the order of a sum changes the last bit only
    record["summary"]["train_seconds"] *= 1 + 1e-6
    with pytest.raises(RecordError, match="summary.train_seconds"):
        check_run_record(record, path)


def test_load_record_names_the_bad_file_it_was_asked_for(tmp_path):
    record = read_record(_template(), "run")
    config = TrainConfig.from_dict(record["summary"]["config"])
    assert results.load_record(config, _template().parent) == record
    record["summary"]["best_test_acc"] = 0.0
    path = _store(tmp_path, record)
    with pytest.raises(RecordError, match=f"^{path}: summary.best_test_acc is 0.0, but the best test_acc"):
        results.load_record(config, path.parent)
    assert results.load_record(config.replace(seed=config.seed + 1), path.parent) is None  # no file: no record


def test_the_command_line_shows_a_bad_record_as_one_error_line(tmp_path, capsys):
    source = _template()
    config = json.loads(source.read_text())["summary"]["config"]
    store = tmp_path / "store"
    store.mkdir()
    (store / source.name).write_text(source.read_text()[:500])
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"parameters": config, "grid": {}}))
    assert cli.main(["train-grid", str(grid), "--store", str(store), "--runs-dir", str(tmp_path / "runs"),
                     "--dry-run"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {store / source.name}: is not valid JSON")
    assert "Traceback" not in captured.err


def _flatness(tmp_path: Path, edit=None) -> tuple[TrainConfig, curvature.Settings, Path]:
    """A committed flatness record as one made before the scale-free measures (those left out), edited."""
    source = _committed("flatness")[0]
    record = json.loads(source.read_text())
    for key in ("eigenvalue_normalized", "eigenvalue_normalized_history", "trace_normalized",
                "trace_normalized_stderr"):
        record["results"].pop(key, None)
    if edit is not None:
        edit(record)
    store = tmp_path / "flatness"
    store.mkdir(exist_ok=True)
    (store / source.name).write_text(json.dumps(record))
    settings = curvature.Settings(**{k: v for k, v in record["settings"].items() if k != "eval_seed"})
    return TrainConfig.from_dict(record["config"]), settings, store / source.name


def _scale_free(record: dict) -> dict:
    """Scale-free measures for a record made before them (the raw ones halved: any consistent numbers)."""
    results = record["results"]
    return {"eigenvalue_normalized": results["eigenvalue"] / 2,
            "eigenvalue_normalized_history": [v / 2 for v in results["eigenvalue_history"]],
            "trace_normalized": results["trace"] / 2, "trace_normalized_stderr": results["trace_stderr"] / 2}


@pytest.mark.parametrize("edit, match", [
    (None, None),
    (lambda r: r["results"].update(eigenvalue=r["results"]["eigenvalue"] * 2),
     "results.eigenvalue is .* but the last of results.eigenvalue_history is"),
    (lambda r: r["settings"].update(eval_seed=r["settings"]["eval_seed"] + 1), "settings.eval_seed is"),
    (lambda r: r["results"].pop("trace"), "results lacks trace"),
    (lambda r: r["results"].update(eigenvalue_history=[]), "results.eigenvalue_history must hold 1 to"),
    (lambda r: r["results"].update(trace_stderr=-1.0), "results.trace_stderr must be >= 0"),
    (lambda r: r.update(run_id=r["run_id"] + "x"), "run_id is .* but its configuration's run id is"),
    (lambda r: r["provenance"].pop("git_dirty"), "provenance lacks git_dirty"),
    (lambda r: r["results"].update(_scale_free(r)), None),  # a record measured with the scale-free measures
    (lambda r: r["results"].update({**_scale_free(r), "eigenvalue_normalized": 1.0}),
     "results.eigenvalue_normalized is .* but the last of results.eigenvalue_normalized_history is"),
    (lambda r: r["results"].update({k: v for k, v in _scale_free(r).items() if k != "trace_normalized"}),
     "results holds eigenvalue_normalized, .* but lacks trace_normalized"),
    (lambda r: r["results"].update({**_scale_free(r), "trace_normalized_stderr": -1.0}),
     "results.trace_normalized_stderr must be >= 0"),
])
def test_the_flatness_reader_rejects_a_bad_record_and_reads_a_good_one(tmp_path, edit, match):
    config, settings, path = _flatness(tmp_path, edit)
    networks = {("SGD", config.seed): config}
    if match is None:
        frame = curvature.flatness_frame(networks, settings, path.parent)
        assert len(frame) == 1 and list(frame.columns) == list(curvature.ROW)
        results = json.loads(path.read_text())["results"]
        assert frame.iloc[0]["trace"] == results["trace"]
        assert (frame.iloc[0]["trace_normalized"] == results["trace_normalized"] if "trace_normalized" in results
                else math.isnan(frame.iloc[0]["trace_normalized"]))  # older records: NaN, read as not measured
        return
    with pytest.raises(RecordError, match=f"^{path}: {match}"):
        curvature.flatness_frame(networks, settings, path.parent)


def test_a_truncated_flatness_record_names_its_file(tmp_path):
    config, settings, path = _flatness(tmp_path)
    path.write_text(path.read_text()[:-40])
    with pytest.raises(RecordError, match=f"^{path}: is not valid JSON"):
        curvature.flatness_frame({("SGD", config.seed): config}, settings, path.parent)


def test_a_record_written_by_the_training_harness_passes(tmp_path):
    data_file("cifar10-jpeg.npz")
    config = TrainConfig(model="resnet-small", width=4, n_train=64, n_test=32, epochs=2, eval_every=2,
                         batch_size=32, optimizer="sam")
    record, = grid.run_missing([config], store=tmp_path / "store", runs_dir=tmp_path / "runs")
    assert results.load_all(tmp_path / "store") == [json.loads(json.dumps(record))]
    assert [m["test_acc"] is None for m in record["metrics"]] == [True, False]
    stored = json.loads((tmp_path / "store" / f"{config.run_id()}.json").read_text())["metrics"]
    assert stored["epoch"] == [1, 2] and stored["test_acc"][0] is None  # kept as columns
    packed = record["summary"]["test_correct"]
    assert packed["n"] == 32 and len(base64.b64decode(packed["bits"])) == 4


def test_read_record_names_the_kinds_it_knows(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of 'run', 'flatness', got 'sweep'"):
        read_record(_template(), "sweep")
    shutil.copy(_template(), tmp_path / "x.json")
    with pytest.raises(RecordError, match="the record lacks run_id"):  # a run record is not a flatness record
        read_record(tmp_path / "x.json", "flatness")


def test_a_record_is_kept_as_columns_of_one_line_each_and_reads_back_to_the_same_rows(tmp_path):
    record = read_record(_template(), "run")
    text = run_record_text(record)
    fields = sorted(record["metrics"][0])
    column_lines = [line for line in text.splitlines() if line.startswith('    "') and line.rstrip(",").endswith("]")]
    assert [json.loads("{" + line.rstrip(",") + "}").popitem()[0] for line in column_lines] == fields
    assert json.loads(text)["metrics"]["epoch"] == list(range(1, len(record["metrics"]) + 1))
    study_run = read_record(_committed()[-1], "run")  # 200 epochs: a third of its rows' size, so it travels
    assert len(study_run["metrics"]) == 200                # beside a data pack (tests/test_chapter_stretch.py)
    assert len(run_record_text(study_run)) < 0.4 * len(json.dumps(study_run, indent=2, sort_keys=True))
    stored = tmp_path / _template().name
    stored.write_text(text)
    assert read_record(stored, "run") == record  # every float to the last bit, every null, every field
    rows = tmp_path / "rows" / _template().name  # a record written as rows, as before, reads the same
    rows.parent.mkdir()
    rows.write_text(json.dumps(record, indent=2))
    assert read_record(rows, "run") == record


def test_rows_that_differ_in_their_fields_stay_rows_and_unequal_columns_are_rejected(tmp_path):
    record = read_record(_template(), "run")
    assert metric_columns(record["metrics"]) is not None
    record["metrics"][0] = {**record["metrics"][0], "extra": 1.0}  # one row with a field the others lack
    assert metric_columns(record["metrics"]) is None
    assert isinstance(json.loads(run_record_text(record))["metrics"], list)
    stored = json.loads(run_record_text(read_record(_template(), "run")))
    stored["metrics"]["train_loss"].pop()  # one value short
    path = _store(tmp_path, stored)
    _rejected(path, r"metrics: every column must be a list of one value per epoch, got lengths")
