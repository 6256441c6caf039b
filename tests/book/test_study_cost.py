"""The study's cost side by side (sparsam.book.study_cost): real trainers at a tiny scale, exact ratios on
constructed times."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess

import numpy as np
import pandas as pd
import pytest

from sparsam.book import study_cost
from sparsam.book.study import load_study
from sparsam.experiment.train import Trainer

from conftest import data_file


@pytest.fixture(scope="module")
def tiny():
    """The registered study with its regime shrunk to a few steps (every configuration kept)."""
    data_file("cifar10-jpeg.npz")
    study = load_study()
    return dataclasses.replace(study, regime={**study.regime, "n_train": 160, "n_test": 64, "width": 4,
                                              "epochs": 3, "num_samples": 16})


def test_measure_interleaves_the_registered_configurations_one_epoch_at_a_time(tiny, monkeypatch):
    names = ["sgd", "sam-every-2", "cost-aware-0.9"]
    config_of = {name: next(c for c in tiny.configs(name) if c.seed == 0) for name in names}
    assert len(set(config_of.values())) == len(names)
    trained = []   # (configuration, epoch) of every epoch trained, in the order they ran
    train_epoch = Trainer.train_epoch

    def recording(self, epoch, progress):
        trained.append((next(n for n, c in config_of.items() if c == self.config), epoch))
        return train_epoch(self, epoch, progress)

    monkeypatch.setattr(Trainer, "train_epoch", recording)
    measured = study_cost.measure(tiny, names, rounds=2)
    # one warm-up epoch each, then rounds in which every configuration trains its next epoch once, the
    # order rotated by one each round
    assert trained == ([(n, 0) for n in names] + [(n, 1) for n in names]
                       + [(n, 2) for n in names[1:] + names[:1]])
    assert list(measured.columns) == ["round", "configuration", "cpu_seconds_per_step"]
    assert sorted(measured["configuration"].unique()) == sorted(names)
    assert measured.groupby("configuration").size().tolist() == [2, 2, 2]
    assert (measured["cpu_seconds_per_step"] > 0).all()
    table = study_cost.ratios(measured)
    assert table.set_index("configuration").loc["sgd", "cost"] == pytest.approx(1.0)


def test_measure_rejects_unknown_names_a_missing_sgd_and_a_seed_not_registered(tiny):
    with pytest.raises(ValueError, match="names must be configurations of the study"):
        study_cost.measure(tiny, ["sgd", "adam"], rounds=2)
    with pytest.raises(ValueError, match="names must include 'sgd'"):
        study_cost.measure(tiny, ["sam"], rounds=2)
    with pytest.raises(ValueError, match="seed must be"):
        study_cost.measure(tiny, ["sgd", "sam-every-2"], rounds=2, seed=4)  # sam-every-2 has seeds 0-2


def _long(times: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"round": r, "configuration": name, "cpu_seconds_per_step": t}
                         for name, values in times.items() for r, t in enumerate(values)])


def test_ratios_divide_by_sgd_of_the_same_round_and_average_on_the_log_scale():
    # SGD slows down by 2x in the second round (load); SAM takes exactly twice SGD's time in each round
    # and "x" takes 1x then 4x SGD's: its geometric mean is 2, its t-interval that of log(1), log(4)
    table = study_cost.ratios(_long({"sgd": [1.0, 2.0], "sam": [2.0, 4.0], "x": [1.0, 8.0]})).set_index(
        "configuration")
    assert table.loc["sam", "cost"] == pytest.approx(2.0)
    assert table.loc["sam", "cost_low"] == pytest.approx(2.0) and table.loc["sam", "cost_high"] == pytest.approx(2.0)
    half = 12.7062047362 * math.log(4) / 2   # t(0.975, 1) * sd / sqrt(2), sd = log(4) / sqrt(2)
    assert table.loc["x", "cost"] == pytest.approx(2.0)
    assert table.loc["x", "cost_low"] == pytest.approx(2.0 * math.exp(-half))
    assert table.loc["x", "cost_high"] == pytest.approx(2.0 * math.exp(half))
    assert list(table["rounds"]) == [2, 2, 2]
    # the records' way (each configuration's mean over SGD's mean) would call SAM 3/1.5 = 2 too, but "x"
    # 4.5/1.5 = 3: the per-round pairing is what removes the load
    with pytest.raises(ValueError, match="'sgd'"):
        study_cost.ratios(_long({"sam": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="at least 2 rounds"):
        study_cost.ratios(_long({"sgd": [1.0], "sam": [2.0]}))


def test_beside_records_sets_both_costs_side_by_side():
    side = study_cost.ratios(_long({"sgd": [1.0, 1.0], "sam": [2.0, 2.0], "x": [1.5, 1.5]}))
    points = pd.DataFrame({"label": ["sgd", "sam"], "cost": [1.0, 2.2], "cost_low": [0.9, 2.0],
                           "cost_high": [1.1, 2.4]})
    table = study_cost.beside_records(side, points).set_index("configuration")
    assert table.loc["sam", "records / side by side"] == 1.1
    assert table.loc["sam", "records (SGD steps)"] == "2.20 [2.00, 2.40]"
    assert table.loc["sam", "side by side (SGD steps)"] == "2.00 [2.00, 2.00]"
    assert table.loc["x", "records (SGD steps)"] == "no record"
    assert np.isnan(table.loc["x", "records / side by side"])


def test_read_describe_and_staleness_of_a_record(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    record = {"machine": {"threads": 1, "loadavg_start": [2.94, 2.5, 2.2], "loadavg_end": [3.06, 3.0, 2.9],
                          "wall_seconds": 600.0},
              "provenance": {"git_commit": head, "git_dirty": False},
              "args": {"seed": 0, "rounds": 5},
              "measured": _long({"sgd": [1.0, 2.0], "sam": [2.0, 4.0]}).to_dict(orient="records")}
    path = tmp_path / "check.json"
    path.write_text(json.dumps(record))
    check = study_cost.read(path)
    assert study_cost.ratios(check["measured"]).set_index("configuration").loc["sam", "cost"] == pytest.approx(2.0)
    assert study_cost.stale_reason(check) is None
    assert study_cost.describe(check) == (f"seed 0, 5 rounds after one warm-up epoch each, 1 thread(s), load average "
                                          f"2.9 at the start and 3.1 at the end, 10 minutes, commit {head[:7]}")
    dirty = {**check, "provenance": {"git_commit": head, "git_dirty": True}}
    assert "dirty" in study_cost.stale_reason(dirty) and "(stale: made in a dirty tree" in study_cost.describe(dirty)
    assert study_cost.stale_reason({**check, "provenance": {}}) == "unknown commit (not recorded)"
