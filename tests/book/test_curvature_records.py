"""Flatness records (sparsam.book.curvature.measure_run and friends): notebook 6's curvature of a finished run,
stored as JSON, read back only when it was measured with the settings asked for."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import shutil

import pytest
import torch

from sparsam import cli

from sparsam.book import curvature

from sparsam.experiment import models

from sparsam.book import profiles
from sparsam.experiment.config import TrainConfig
from sparsam.book.study import load_study

SETTINGS = curvature.Settings(n_eval=20, eval_batch_size=8, power_iterations=3, hutchinson_samples=2)
needs_data = pytest.mark.skipif(not os.environ.get("SPARSAM_DATA"), reason="needs the CIFAR-10 pack (SPARSAM_DATA)")


def _finished_run(runs_dir, config):
    """A run folder as sparsam.experiment.train leaves it (summary and checkpoint), with seeded random weights."""
    torch.manual_seed(5)
    net = models.build_model(config.model, 10, width=config.width)
    run = runs_dir / config.run_id()
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"data": {"num_classes": 10},
                                                  "provenance": {"git_commit": "0123abc"}}))
    torch.save({"model": net.state_dict()}, run / "checkpoint.pt")
    return net.eval()


def test_the_cpu_study_profile_measures_four_configurations_of_the_study_per_seed():
    p = profiles.parameters("06_landscape", "cpu-study", {})
    networks = curvature.networks(p)
    study = load_study()
    names = {key: {study.name_of(c) for (k, _), c in networks.items() if k == key} for key, _ in networks}
    assert names == {"sgd": {"sgd"}, "sam": {"sam"}, "ssam": {"ssam-f-0.5"}, "ssamd": {"ssam-d-0.5"}}
    assert sorted({seed for _, seed in networks}) == p.seeds and len(networks) == 4 * len(p.seeds)
    quick = curvature.networks(profiles.parameters("06_landscape", "quick", {"include_ssam_d": False}))
    assert {key for key, _ in quick} == {"sgd", "sam", "ssam"}
    assert curvature.Settings.of(p) == curvature.Settings(n_eval=512, eval_batch_size=128, power_iterations=20,
                                                          hutchinson_samples=20)


@needs_data
def test_a_record_holds_what_a_direct_measurement_gives_and_is_reused_only_with_its_settings(tmp_path):
    config = TrainConfig(model="resnet-small", width=4, optimizer="sgd", epochs=1, n_train=100, n_test=10, seed=1)
    runs_dir, store = tmp_path / "runs", tmp_path / "flatness"
    net = _finished_run(runs_dir, config)
    record = curvature.measure_run(config, runs_dir, SETTINGS, store)

    batches = curvature.evaluation_batches("cifar10", 100, 20, seed=1, batch_size=8, device=torch.device("cpu"))
    direct = curvature.curvature(net, batches, power_iterations=3, hutchinson_samples=2, seed=1)
    assert record["results"] == direct
    assert record["settings"] == {"n_eval": 20, "eval_batch_size": 8, "power_iterations": 3, "hutchinson_samples": 2,
                                  "eval_seed": 1}
    assert record["run_id"] == config.run_id() and record["trained_at"] == "0123abc"
    assert {"git_commit", "git_dirty", "host", "torch"} <= set(record["provenance"])
    assert curvature.load_flatness(config, SETTINGS, store) == record  # the JSON round-trips
    assert [p.name for p in store.iterdir()] == [f"{config.run_id()}.json"]  # no temporary file left

    frame = curvature.flatness_frame({("SGD", 1): config, ("SAM", 1): config.replace(optimizer="sam")},
                                     SETTINGS, store)
    assert list(frame.columns) == list(curvature.ROW) and len(frame) == 1
    assert frame.iloc[0].to_dict() == {"method": "SGD", "seed": 1, **direct}

    other = dataclasses.replace(SETTINGS, power_iterations=4)  # other settings: not reused, measured again
    assert curvature.load_flatness(config, other, store) is None
    assert curvature.flatness_frame({("SGD", 1): config}, other, store).empty
    out = io.StringIO()
    assert curvature.measure_missing([config], runs_dir, other, store, out=out) == {config.run_id(): "measured"}
    again = curvature.load_flatness(config, other, store)
    assert len(again["results"]["eigenvalue_history"]) == 4 and again["results"]["trace"] == direct["trace"]
    assert curvature.measure_missing([config], runs_dir, other, store, out=out) == {config.run_id(): "kept"}
    assert out.getvalue().splitlines() == [f"measured: {config.run_id()}", f"kept: {config.run_id()}"]

    stranger = config.replace(seed=2)  # a file named after one config that holds another is refused
    shutil.copy(curvature.flatness_path(config, store), curvature.flatness_path(stranger, store))
    with pytest.raises(ValueError, match="does not hold the config"):
        curvature.load_flatness(stranger, other, store)


def test_a_record_made_before_the_scale_free_measures_is_measured_again_where_its_run_is_here(tmp_path):
    config = TrainConfig(model="resnet-small", width=4, optimizer="sgd", epochs=1, n_train=100, n_test=10, seed=1)
    runs_dir, store = tmp_path / "runs", tmp_path / "flatness"
    _finished_run(runs_dir, config)
    record = curvature.measure_run(config, runs_dir, SETTINGS, store)
    path = curvature.flatness_path(config, store)
    old = {**record, "results": {k: v for k, v in record["results"].items() if "normalized" not in k}}
    path.write_text(json.dumps(old))
    frame = curvature.flatness_frame({("SGD", 1): config}, SETTINGS, store)  # still read, scale-free as NaN
    assert frame.iloc[0]["trace"] == record["results"]["trace"] and math.isnan(frame.iloc[0]["trace_normalized"])
    out = io.StringIO()
    assert curvature.measure_missing([config], tmp_path / "elsewhere", SETTINGS, store, out=out) == {
        config.run_id(): "kept without the scale-free measures"}  # no checkpoint here: kept as it is
    assert curvature.measure_missing([config], runs_dir, SETTINGS, store, out=out) == {config.run_id(): "measured"}
    assert curvature.load_flatness(config, SETTINGS, store)["results"] == record["results"]


@needs_data
def test_train_missing_trains_the_run_a_record_needs_then_measures_it(tmp_path):
    config = TrainConfig(model="resnet-small", width=4, optimizer="sgd", epochs=1, n_train=40, n_test=10, seed=1,
                         batch_size=20)
    runs_dir, store = tmp_path / "runs", tmp_path / "flatness"
    out = io.StringIO()
    assert curvature.measure_missing([config], runs_dir, SETTINGS, store, out=out) == {config.run_id(): "not finished"}
    assert curvature.measure_missing([config], runs_dir, SETTINGS, store, out=out, train_missing=True) == {
        config.run_id(): "measured"}
    assert (runs_dir / config.run_id() / "checkpoint.pt").exists()
    record = curvature.load_flatness(config, SETTINGS, store)
    net, retrained = curvature.load_trained(config, 10, tmp_path / "scratch", torch.device("cpu"), runs_dir)
    batches = curvature.evaluation_batches("cifar10", 40, 20, seed=1, batch_size=8, device=torch.device("cpu"))
    assert not retrained and record["results"] == curvature.curvature(net, batches, power_iterations=3,
                                                                      hutchinson_samples=2, seed=1)
    assert curvature.measure_missing([config], runs_dir, SETTINGS, store, out=out, train_missing=True) == {
        config.run_id(): "kept"}


def test_a_run_without_checkpoint_is_an_error_and_an_unfinished_one_is_skipped(tmp_path):
    config = TrainConfig(model="resnet-small", width=4, optimizer="sam", epochs=1, n_train=100, n_test=10)
    with pytest.raises(FileNotFoundError, match=f"runs_dir .* no finished run {config.run_id()}"):
        curvature.measure_run(config, tmp_path / "runs", SETTINGS, tmp_path / "flatness")
    (tmp_path / "runs" / config.run_id()).mkdir(parents=True)
    (tmp_path / "runs" / config.run_id() / "summary.json").write_text("{}")  # summary without checkpoint
    with pytest.raises(FileNotFoundError, match="checkpoint.pt"):
        curvature.measure_run(config, tmp_path / "runs", SETTINGS, tmp_path / "flatness")
    unfinished = config.replace(seed=3)
    assert curvature.measure_missing([unfinished], tmp_path / "runs", SETTINGS, tmp_path / "flatness",
                                     out=io.StringIO()) == {unfinished.run_id(): "not finished"}
    assert not (tmp_path / "flatness").exists()


def test_cli_flatness_lists_the_profile_networks_and_needs_a_store_where_the_profile_has_none(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:  # the command sets the profile's thread count
        assert cli.main(["flatness", "--runs-dir", str(tmp_path / "runs"), "--store", str(tmp_path / "out")]) == 0
    finally:
        torch.set_num_threads(threads)
    lines = capsys.readouterr().out.splitlines()
    p = profiles.parameters("06_landscape", "cpu-study", {})
    assert lines == [f"not finished: {c.run_id()}" for c in curvature.networks(p).values()]
    assert not (tmp_path / "out").exists()
    assert cli.main(["flatness", "--runs-dir", str(tmp_path), "--profile", "paper"]) == 2
    assert "error: store is needed: profile 'paper' keeps no flatness records" in capsys.readouterr().err


def test_cli_flatness_shards_split_the_networks_without_overlap(tmp_path, capsys):
    p = profiles.parameters("06_landscape", "cpu-study", {})
    everything = [f"not finished: {c.run_id()}" for c in curvature.networks(p).values()]
    threads = torch.get_num_threads()
    seen = []
    try:
        for k in range(3):
            assert cli.main(["flatness", "--runs-dir", str(tmp_path), "--store", str(tmp_path / "out"),
                             "--shard", f"{k}/3"]) == 0
            seen.append(capsys.readouterr().out.splitlines())
    finally:
        torch.set_num_threads(threads)
    assert [len(lines) for lines in seen] == [len(everything[k::3]) for k in range(3)]
    assert sorted(line for lines in seen for line in lines) == sorted(everything)
    for bad in ("3/3", "1", "a/2", "-1/2"):
        with pytest.raises(SystemExit):
            cli.main(["flatness", "--runs-dir", str(tmp_path), "--store", str(tmp_path), f"--shard={bad}"])
        assert "--shard: must be K/N with integers 0 <= K < N" in capsys.readouterr().err


# --- what identifies the measured network, checked against its run's record (issue 32, item 9) -------------

from sparsam.experiment.record_schema import RecordError, read_record
from sparsam.experiment.results import pack_bits
from conftest import REPO


def _run_record(config, loss=0.75, correct=(True, False, True, True)):
    return {"summary": {"run_id": config.run_id(), "final_train_loss": loss, "test_correct": pack_bits(list(correct))}}


@needs_data
def test_a_flatness_record_keeps_its_networks_identity_and_it_is_checked_against_the_run(tmp_path):
    config = TrainConfig(model="resnet-small", width=4, optimizer="sgd", epochs=1, n_train=100, n_test=10, seed=1)
    runs_dir, store = tmp_path / "runs", tmp_path / "flatness"
    _finished_run(runs_dir, config)
    summary_file = runs_dir / config.run_id() / "summary.json"
    trained = _run_record(config)["summary"]  # what the training that made the checkpoint recorded
    summary_file.write_text(json.dumps({**json.loads(summary_file.read_text()), **trained}))
    record = curvature.measure_run(config, runs_dir, SETTINGS, store)
    assert record["network"] == {"final_train_loss": 0.75, "test_correct": trained["test_correct"]}
    assert read_record(curvature.flatness_path(config, store), "flatness")["network"] == record["network"]
    assert curvature.same_network(record, _run_record(config)) == "identical"
    assert curvature.same_network(record, _run_record(config, loss=0.7500001)) == "different"   # the last bits count
    assert curvature.same_network(record, _run_record(config, correct=(True, True, True, True))) == "different"
    older = {k: v for k, v in record.items() if k != "network"}  # measured before the records kept it
    assert curvature.same_network(older, _run_record(config)) == "not recorded"
    with pytest.raises(ValueError, match="flatness_record: it measured"):
        curvature.same_network(record, _run_record(config.replace(seed=2)))
    broken = {**record, "network": {"final_train_loss": 0.75}}
    curvature.flatness_path(config, store).write_text(json.dumps(broken))
    with pytest.raises(RecordError, match="network lacks test_correct"):
        read_record(curvature.flatness_path(config, store), "flatness")


def test_the_identity_text_counts_each_outcome_and_says_none_passes_where_none_was_checked():
    assert curvature.identity_text(["identical", "identical", "different", "not recorded"]) == (
        "3 of 4 checked against their runs (final training loss and every test prediction): 2 identical, "
        "1 different; 1 measured before the records kept what identifies the network, so not checked")
    committed = [read_record(p, "flatness") for p in sorted((REPO / "results/study/flatness").glob("*.json"))]
    text = curvature.identity_text([curvature.same_network(r, {"summary": {"run_id": r["run_id"]}}) for r in committed])
    assert text == (f"none of {len(committed)} checked against their runs; {len(committed)} measured before the "
                    "records kept what identifies the network, so not checked")
    assert curvature.identity_text([]) == "no network measured"
