"""Tables (sparsam.book.tables): intervals as text, one row per method with provenance."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from sparsam.book.records import metrics_frame, records_frame, summarize

from sparsam.book import tables
from sparsam.experiment.config import TrainConfig


def test_interval_text():
    assert tables.interval_text(36.054, 34.1, 38.0) == "36.05 [34.10, 38.00]"
    assert tables.interval_text(36.0, math.nan, math.nan) == "36.00 (one seed)"
    assert tables.interval_text(math.nan, math.nan, math.nan) == "not recorded"


def test_results_table_groups_by_method_with_t_intervals_and_provenance():
    base = TrainConfig(model="resnet-small", n_train=100, n_test=100, epochs=1)
    records = []
    for optimizer, accs in (("sam", [0.50, 0.52, 0.54]), ("sgd", [0.40])):
        for seed, acc in enumerate(accs):
            c = base.replace(optimizer=optimizer, seed=seed)
            records.append({"summary": {"config": c.to_dict(), "run_id": c.run_id(), "final_test_acc": acc,
                                        "provenance": {"git_commit": "a" * 40, "git_dirty": False}}})
    table = tables.results_table(records_frame(records), columns=("final_test_acc", "mean_eps_norm"))
    sam = table.set_index("method").loc["SAM"]
    half = stats.t.ppf(0.975, 2) * 2.0 / math.sqrt(3)              # std of 50, 52, 54 is 2 pp
    assert sam["test accuracy (%)"] == f"52.00 [{52 - half:.2f}, {52 + half:.2f}]"
    assert sam["mean ‖ε‖"] == "not recorded" and sam["seeds"] == 3
    assert sam["records (commit)"] == "aaaaaaa" and sam["stale"] == "stale"   # not a commit of this repo
    assert table.set_index("method").loc["SGD", "test accuracy (%)"] == "40.00 (one seed)"
    assert list(tables.results_table(records_frame([])).columns)[-3:] == ["seeds", "records (commit)",
                                                                                   "stale"]


def test_no_runs_give_empty_tables_with_their_columns():
    """Profiles whose records do not exist yet (cpu-study before the study) still build their pages."""
    empty = records_frame([])
    summary = summarize(empty, ["optimizer", "sparsity"], "final_test_acc")
    assert summary.empty and list(summary.columns) == ["optimizer", "sparsity", "mean", "low", "high", "n"]
    assert {"run_id", "epoch"} <= set(metrics_frame([]).columns)
