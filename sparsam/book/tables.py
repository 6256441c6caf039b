"""Tables of the book, built with pandas from a records frame: one row per method, 95% intervals as text.

:func:`interval_text` writes "mean [low, high]" (or "mean (one seed)") to the precision of the interval
(:func:`precision`, :mod:`sparsam.book.intervals`); :func:`results_table` groups a
:func:`sparsam.book.records.records_frame` by method and aggregates accuracy, loss, radius, time and the
provenance of the records (their commits and whether any is stale).
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from .intervals import NOT_RECORDED, interval_text, precision  # noqa: F401 (the tables' number rule, re-exported)
from .records import method_label, summarize

COLUMN_NAMES = {"final_test_acc": "test accuracy (%)", "best_test_acc": "best test accuracy (%)",
                "final_train_loss": "final training loss (nats)", "mean_eps_norm": "mean ‖ε‖",
                "seconds_per_step": "seconds per step", "cpu_seconds_per_step": "CPU seconds per step",
                "flops_per_step": "FLOPs per step", "images_per_s": "images per second"}
# Decimals of a column's mean where it has no interval (one seed); with one, the interval sets them.
DIGITS = {"final_test_acc": 2, "best_test_acc": 2}
OTHER_DIGITS = 3


def with_methods(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``method`` column (:func:`sparsam.book.records.method_label` of each row)."""
    return frame.assign(method=[method_label(row) for _, row in frame.iterrows()])


def results_table(frame: pd.DataFrame, columns: Sequence[str] = ("final_test_acc", "final_train_loss",
                                                                 "mean_eps_norm", "seconds_per_step")) -> pd.DataFrame:
    """One row per method of ``frame``: each of ``columns`` as mean and 95% t-interval over seeds (to the
    precision of the interval; one seed: 2 decimals for accuracies, 3 for the rest: :data:`DIGITS`), the
    number of seeds, the commits of the records and a stale flag. Column names say the unit."""
    labelled = with_methods(frame)
    if labelled.empty:
        return pd.DataFrame(columns=["method", *(COLUMN_NAMES.get(c, c) for c in columns), "seeds", "records (commit)",
                                     "stale"])
    table = labelled.groupby("method", sort=False).agg(
        seeds=("seed", "nunique"), commits=("commit", lambda c: ", ".join(sorted(set(c) - {""})) or "–"),
        stale=("stale", "any"))
    for column in columns:
        summary = summarize(labelled, "method", column).set_index("method")
        digits = DIGITS.get(column, OTHER_DIGITS)
        table[COLUMN_NAMES.get(column, column)] = [
            interval_text(*summary.loc[m, ["mean", "low", "high"]], digits=digits) for m in table.index]
    table["stale"] = table["stale"].map({True: "stale", False: ""})
    table = table.rename(columns={"commits": "records (commit)"})
    ordered = [COLUMN_NAMES.get(c, c) for c in columns] + ["seeds", "records (commit)", "stale"]
    return table[ordered].reset_index()
