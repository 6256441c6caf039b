"""``python -m sparsam train --accumulate K``: an option generated from the config field, its one-line error, and a
1-epoch run end to end on the small CIFAR-100 test pack."""

from __future__ import annotations

import json

import pytest

from conftest import data_file
from sparsam import cli
from sparsam.experiment import store

TINY = ["--model", "resnet-small", "--width", "4", "--dataset", "cifar100-subset", "--batch-size", "32",
        "--epochs", "1", "--no-progress", "--optimizer", "ssam-f", "--num-samples", "16"]


def test_accumulate_is_an_option_with_a_one_line_error(capsys, tmp_path):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "--accumulate ACCUMULATE" in capsys.readouterr().out
    assert cli.main(["train", "--runs-dir", str(tmp_path), "--batch-size", "32", "--accumulate", "3"]) == 2
    err = capsys.readouterr().err
    assert err == "error: batch_size=32 must be divisible by accumulate=3 (batch_size is the optimizer step's batch, " \
                  "run in accumulate micro-batches)\n"
    assert not any(tmp_path.iterdir())


def test_a_one_epoch_run_with_accumulate(capsys, tmp_path):
    data_file("cifar100-exact-subset.npz")
    assert cli.main(["train", "--runs-dir", str(tmp_path), "--run-id", "acc", *TINY, "--accumulate", "4"]) == 0
    line = json.loads(capsys.readouterr().out)
    summary = store.read_json(tmp_path / "acc" / "summary.json")
    assert summary["config"]["accumulate"] == 4 and summary["config"]["batch_size"] == 32
    metrics = store.read_metrics(tmp_path / "acc" / "metrics.jsonl")
    assert len(metrics) == 1 and metrics[0]["steps"] == 9  # 281 images in optimizer steps of 32, not micro-batches
    assert 0 < line["final_train_loss"] < 10 and 0 <= line["final_test_acc"] <= 1
    assert summary["flops_batch_size"] == 32  # the whole batch's flops, counted over its micro-batches
