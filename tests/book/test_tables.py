"""Tables (sparsam.book.tables): intervals as text, one row per method with provenance."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from sparsam.book.records import metrics_frame, records_frame, summarize

from sparsam.book import claims, tables
from sparsam.experiment.config import TrainConfig


def test_interval_text_prints_the_precision_of_the_interval():
    """Hand-computed: the decimals at which the half-width has two significant figures."""
    assert tables.interval_text(36.0512, 34.1, 38.0) == "36.1 [34.1, 38.0]"         # half-width 1.95: 1 decimal
    assert tables.interval_text(0.3220, -0.8921, 1.5362) == "0.3 [-0.9, 1.5]"       # 1.21: 1 decimal
    assert tables.interval_text(0.3220, -0.8921, 1.5362, sign=True) == "+0.3 [-0.9, +1.5]"
    assert tables.interval_text(0.0123456, 0.0120, 0.0127) == "0.01235 [0.01200, 0.01270]"  # 0.00035: 5 decimals
    assert tables.interval_text(1234.5, 1100.0, 1369.0) == "1234 [1100, 1369]"      # 134.5: never below 0 decimals
    assert tables.interval_text(1.06, 1.0, 1.1992) == "1.06 [1.00, 1.20]"           # 0.0996 rounds to 0.10: 2 decimals
    assert tables.interval_text(-0.02, -0.5, 0.4) == "-0.02 [-0.50, 0.40]"           # 0.45: 2 decimals
    assert tables.interval_text(-0.04, -1.5, 1.5, sign=True) == "+0.0 [-1.5, +1.5]"  # no "-0.0"
    assert tables.interval_text(1.05, 1.02, 1.08, prefix="×") == "×1.050 [×1.020, ×1.080]"


def test_numbers_without_an_interval_keep_the_stated_digits():
    assert tables.interval_text(36.0, math.nan, math.nan) == "36.00 (one seed)"
    assert tables.interval_text(36.0, math.nan, math.nan, digits=4) == "36.0000 (one seed)"
    assert tables.interval_text(math.nan, math.nan, math.nan) == "not recorded"
    assert tables.interval_text(2.0, 2.0, 2.0, digits=3) == "2.000 [2.000, 2.000]"    # one point: stated digits
    assert tables.interval_text(2.0, 2.0 - 1e-15, 2.0 + 1e-15) == "2.00 [2.00, 2.00]"  # rounding of equal values
    # the CPU study's ‖ε‖ = ρ = 0.1 of a masked normalisation, at float32 rounding: one point, not 11 decimals
    assert tables.interval_text(0.10000000227, 0.10000000208, 0.10000000246, 4) == "0.1000 [0.1000, 0.1000]"
    assert tables.interval_text(0.1, 0.0999, 0.1001, 4) == "0.10000 [0.09990, 0.10010]"  # 1e-3 of it: an interval
    assert [tables.precision(low, high) for low, high in ((0, 3.9), (0, 0.39), (0, 0.039), (0, 39.0))] == [1, 2, 3, 0]
    assert tables.precision(math.nan, 1.0, default=5) == 5 and tables.precision(1.0, math.inf) == 2


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
    half = stats.t.ppf(0.975, 2) * 2.0 / math.sqrt(3)              # std of 50, 52, 54 is 2 pp: half-width 4.97
    assert sam["test accuracy (%)"] == f"52.0 [{52 - half:.1f}, {52 + half:.1f}]" == "52.0 [47.0, 57.0]"
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


INTERVAL = re.compile(r"^(?:(?P<mean>[+×-]?[\d.-]+) )?\[(?P<low>[+×-]?[\d.-]+), (?P<high>[+×-]?[\d.-]+)\]")


def decimals(number: str) -> int:
    return len(number.split(".")[1]) if "." in number else 0


def too_precise(table: pd.DataFrame) -> list[str]:
    """The cells "mean [low, high]" or "[low, high]" of ``table`` not printed where their half-width shows two
    significant figures: at d decimals, the half-width read back from the printed bounds is 10 to 99 units of the
    last place (give or take the rounding of the bounds), and the mean and both bounds have d decimals. Cells of one
    point are skipped."""
    found = []
    for column in table.columns:
        for cell in table[column]:
            match = INTERVAL.match(cell) if isinstance(cell, str) else None
            if match is None:
                continue
            shown = [match[name] for name in ("mean", "low", "high") if match[name] is not None]
            d = decimals(shown[-1])
            low, high = (float(x.lstrip("×")) for x in shown[-2:])
            units = (high - low) / 2 * 10 ** d
            if units == 0:
                continue
            if {decimals(x) for x in shown} != {d} or not (9 <= units and (d == 0 or units <= 101)):
                found.append(f"{column}: {cell}")
    return found


@pytest.fixture(scope="module")
def cpu_study():
    """The CPU study's tables from its committed records (results/study): the configurations and the audit."""
    from sparsam.book import audit, layout, study
    from sparsam.book.study import cost as study_cost, model as study_model
    from sparsam.experiment.results import load_all

    root = layout.book_root(Path(__file__).parent)
    registered = study.load_study(root / "results" / "study" / "cpu_study.yaml")
    records = load_all(root / "results" / "study" / "runs")
    frame = study.study_frame(registered, records)
    registration = study_model.load_cost_registration(root / layout.COST_REGISTRATION, study=registered)
    decided = study.decide_comparisons_interleaved(
        registered, frame, records, study_cost.cost_rows(registration, study_cost.read(registration.record)),
        resamples=0)
    return {"configurations": study.configuration_table(frame), "results": tables.results_table(frame),
            "audit": audit.audit_table(study.audit_frame(registered, decided)),
            "claims": claims.display_table(decided).assign(  # the mean beside its t-interval, as one cell
                t=lambda t: t["mean difference"] + " " + t["95% t-interval"])}


@pytest.mark.parametrize("name", ["configurations", "results", "audit", "claims"])
def test_the_committed_records_tables_print_no_digit_their_intervals_do_not_warrant(cpu_study, name):
    table = cpu_study[name]
    cells = [c for column in table.columns for c in table[column] if isinstance(c, str) and INTERVAL.match(c)]
    assert len(cells) >= 10                                    # the check reads many intervals of each table
    assert too_precise(table) == []


def test_too_precise_finds_a_cell_with_more_digits_than_its_interval():
    right = ["36.1 [34.1, 38.0]", "+0.3 [-0.9, +1.5]", "×1.050 [×1.020, ×1.080]"]
    assert too_precise(pd.DataFrame({"a": right})) == []
    assert too_precise(pd.DataFrame({"a": ["36.05 [34.10, 38.00]"]})) == ["a: 36.05 [34.10, 38.00]"]
    assert too_precise(pd.DataFrame({"a": ["36 [34, 38]"]})) == ["a: 36 [34, 38]"]          # one figure: too few
    assert too_precise(pd.DataFrame({"a": ["36.10 [34.1, 38.0]"]})) == ["a: 36.10 [34.1, 38.0]"]
    bounds = ["[-2.70, +3.30] (m = 21)", "[1.00, 1.00]"]  # an interval alone; one point skipped
    assert too_precise(pd.DataFrame({"a": bounds})) == ["a: [-2.70, +3.30] (m = 21)"]


def test_the_audits_two_status_columns_each_name_their_reading(cpu_study):
    """Issue 32 item 8: one reading per column, named in its header (python -m sparsam study's table)."""
    from sparsam.book.stats import FAMILY_WISE, PER_COMPARISON, reading_header

    columns = list(cpu_study["audit"].columns)
    assert [c for c in columns if c.startswith("status")] == [reading_header("status", PER_COMPARISON),
                                                              reading_header("status", FAMILY_WISE)]
    assert "family-wise status" not in columns
