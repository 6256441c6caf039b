"""Run records as pandas frames: provenance and staleness, per-seed pairing, interval summaries.

- :func:`records_frame`: one row per record (config fields, summary metrics, short commit, staleness);
  :func:`metrics_frame`: one row per record and epoch.
- :func:`stale_reason` / :func:`is_stale` / :func:`stale_records`: a record is stale when the numerics
  version of an algorithm it ran (:func:`sparsam.experiment.optimizers.numerics`, declared by each
  algorithm and fingerprinted by tests/optim/test_numerics.py) differs from the one it stores, when the
  commit it was made at is not in ``HEAD``'s history ("unknown commit"), or when it was made in a dirty tree.
- :func:`paired`: the per-seed values of two configurations that differ only as given.
- :func:`summarize`: mean and 95% t-interval over seeds per group, for tables and plots;
  :func:`method_label` names a run's method; :func:`cost_summary` puts accuracy beside cost in SGD steps,
  and :func:`pareto_front` marks the points no other point beats in both.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..experiment.config import OPTIMIZER_NAMES, TrainConfig, acts_on
from ..experiment.optimizers import numerics
from ..experiment.results import load_all
from ..experiment.provenance import git
from .stats import mean_interval

# The version of every algorithm in a record made before records kept them (all were at 1 when versions began).
FIRST_NUMERICS = 1


# Summary fields copied into the frame (NaN where a record predates the field).
SUMMARY_FIELDS = ("final_test_acc", "best_test_acc", "final_train_loss", "seconds_per_step", "cpu_seconds_per_step",
                  "mean_eps_norm", "mask_density", "flops_per_step", "flops_forward", "sparse_step_flops_vs_sgd",
                  "images_per_s", "train_seconds", "wall_seconds_this_process", "resumed_from_epoch", "epochs_run",
                  "world_size")
PERCENT_FIELDS = ("final_test_acc", "best_test_acc")  # fractions in the records, percent in the frame
CONFIG_FIELDS = tuple(TrainConfig.__dataclass_fields__)


def _summary(record: Mapping[str, Any]) -> Mapping[str, Any]:
    return record.get("summary", record)


def stale_reason(record: Mapping[str, Any]) -> str | None:
    """Why ``record`` no longer describes what the code at HEAD computes, or None if it still does: a version of
    an algorithm its configuration runs (:func:`sparsam.experiment.optimizers.numerics`) differs from the one it
    stores (a record made before records stored them ran version :data:`FIRST_NUMERICS` of each); or its provenance
    cannot vouch for it: no commit, a dirty tree, a commit that is not in HEAD's history. Where the code sits does
    not matter: moving or rewriting it without changing its numbers leaves every record current."""
    summary = _summary(record)
    provenance = summary.get("provenance") or {}
    commit = provenance.get("git_commit")
    if not commit:
        return "unknown commit (not recorded)"
    if provenance.get("git_dirty") is not False:
        return f"made in a dirty tree at {commit[:7]}" if provenance.get("git_dirty") else "dirty flag not recorded"
    head = git("rev-parse", "HEAD")
    if head is None:
        return "no git history to check against"
    if git("merge-base", "--is-ancestor", commit, head) is None:
        return f"unknown commit {commit[:7]} (not an ancestor of HEAD)"
    current = numerics(summary.get("config", {}))
    recorded = summary.get("numerics") or {name: FIRST_NUMERICS for name in current}
    changed = [f"{name} {recorded.get(name, 'none')} -> {version}" for name, version in current.items()
               if recorded.get(name) != version]
    return f"numerics changed since {commit[:7]}: {', '.join(changed)}" if changed else None


def is_stale(record: Mapping[str, Any]) -> bool:
    """True when :func:`stale_reason` gives a reason."""
    return stale_reason(record) is not None


def stale_records(store: str | Path | None = None) -> list[str]:
    """Run ids of the stale records in ``store`` (default: the :class:`~sparsam.experiment.store.Workspace`'s),
    sorted."""
    records = load_all(store)
    return sorted(_summary(r)["run_id"] for r in records if is_stale(r))


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def records_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per run record: every config field (defaults filled in for older records), the summary
    metrics of :data:`SUMMARY_FIELDS` (accuracies in %; NaN where not recorded), ``has_correct`` (the
    record keeps per-example correctness), ``commit`` (7 characters), ``dirty``, ``stale``,
    ``stale_reason``, ``device_name``, ``finished`` and ``run_id``."""
    rows = []
    for record in records:
        summary = _summary(record)
        provenance = summary.get("provenance") or {}
        row: dict[str, Any] = TrainConfig.from_dict(summary["config"]).to_dict()
        for field in SUMMARY_FIELDS:
            row[field] = _number(summary.get(field))
        for field in PERCENT_FIELDS:
            row[field] *= 100
        reason = stale_reason(record)
        row.update(has_correct="test_correct" in summary, commit=(provenance.get("git_commit") or "")[:7],
                   dirty=provenance.get("git_dirty"), stale=reason is not None, stale_reason=reason,
                   device_name=provenance.get("device_name"), finished=summary.get("finished"),
                   run_id=summary["run_id"])
        rows.append(row)
    columns = [*CONFIG_FIELDS, *SUMMARY_FIELDS, "has_correct", "commit", "dirty", "stale", "stale_reason",
               "device_name", "finished", "run_id"]
    return pd.DataFrame(rows, columns=columns)


def metrics_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per record and epoch: ``run_id``, ``optimizer``, ``seed`` and the per-epoch metrics
    (``test_acc`` in %, ``eps_norm`` and the timings where recorded)."""
    rows = []
    for record in records:
        summary = _summary(record)
        for epoch in record.get("metrics", []):
            rows.append({"run_id": summary["run_id"], "optimizer": summary["config"]["optimizer"],
                         "seed": summary["config"].get("seed", 0), **epoch})
    frame = pd.DataFrame(rows, columns=None if rows else ["run_id", "optimizer", "seed", "epoch"])
    for field in ("test_acc", "train_acc"):
        if field in frame:
            frame[field] = 100 * frame[field].astype(float)
    return frame


def _matching(frame: pd.DataFrame, selection: Mapping[str, Any]) -> pd.DataFrame:
    unknown = sorted(set(selection) - set(frame.columns))
    if unknown:
        raise ValueError(f"selection keys {unknown} are not columns of the frame")
    keep = np.ones(len(frame), dtype=bool)
    for key, value in selection.items():
        column = frame[key]
        keep &= column.isna().to_numpy() if value is None else (column == value).to_numpy()
    return frame[keep]


def _applies(field: str, optimizers: set[str]) -> bool:
    """Whether ``field`` of the config acts on every optimizer in ``optimizers``
    (:data:`sparsam.experiment.config.ACTS_ON`)."""
    return all(acts_on(field, o) for o in optimizers)


def _keys(rows: pd.DataFrame, fields: Sequence[str]) -> list[tuple[str, ...]]:
    return [tuple(k) for k in rows[list(fields)].astype(str).itertuples(index=False)]


def _one_configuration(rows: pd.DataFrame, fields: Sequence[str], name: str) -> None:
    keys = set(_keys(rows, fields))
    if len(keys) > 1:
        varying = [f for i, f in enumerate(fields) if len({k[i] for k in keys}) > 1]
        raise ValueError(f"{name} matches several configurations; select on {varying}")


def paired(frame: pd.DataFrame, method: Mapping[str, Any], reference: Mapping[str, Any],
           value: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Per-seed ``value`` of the runs selected by ``method`` and by ``reference``, paired by seed.

    Apart from the keys of ``method`` and ``reference`` (and ``seed``), the two sets of runs must
    share one configuration (fields that do not act on an optimizer, e.g. ``sparsity`` for SAM, are
    ignored); several configurations, or two runs of one configuration and seed, raise
    ``ValueError`` naming the columns to select on. Seeds present on one side only are left out.
    """
    if value not in frame.columns:
        raise ValueError(f"value must be a column of the frame, got {value!r}")
    given = set(method) | set(reference) | {"seed"}
    sides = []
    for selection in (method, reference):
        rows = _matching(frame, selection)
        optimizers = set(rows["optimizer"])
        sides.append((rows, [c for c in CONFIG_FIELDS if c in frame.columns and c not in given
                             and _applies(c, optimizers)]))
    shared = [f for f in sides[0][1] if f in sides[1][1]]
    common = set(_keys(sides[0][0], shared)) & set(_keys(sides[1][0], shared))
    if len(common) > 1:
        varying = [f for i, f in enumerate(shared) if len({k[i] for k in common}) > 1]
        raise ValueError(f"method and reference match several configurations; select on {varying}")
    if not common:
        return np.array([]), np.array([]), []
    key = common.pop()
    by_seed = []
    for name, (rows, fields) in zip(("method", "reference"), sides):
        chosen = rows[[k == key for k in _keys(rows, shared)]]
        _one_configuration(chosen, fields, name)
        if chosen["seed"].duplicated().any():
            raise ValueError(f"{name} has several runs of one configuration and seed "
                             f"(run ids {sorted(chosen['run_id'])}); drop the extra records")
        by_seed.append(chosen.set_index("seed")[value])
    seeds = sorted(set(by_seed[0].index) & set(by_seed[1].index))
    return (by_seed[0].loc[seeds].to_numpy(dtype=float), by_seed[1].loc[seeds].to_numpy(dtype=float),
            [int(s) for s in seeds])


def summarize(frame: pd.DataFrame, by: str | Sequence[str], value: str, level: float = 0.95) -> pd.DataFrame:
    """Per group of ``by``: ``mean``, ``low``, ``high`` (t-interval over the group's runs, NaN for one
    run) and ``n`` of ``value``; NaN values are left out."""
    by = [by] if isinstance(by, str) else list(by)

    def interval(values: pd.Series) -> pd.Series:
        mean, low, high = mean_interval(values.dropna().to_numpy(), level)
        return pd.Series({"mean": mean, "low": low, "high": high, "n": int(values.notna().sum())})

    if frame.empty:  # no runs (e.g. no study records yet): an empty table with the usual columns
        return pd.DataFrame(columns=[*by, "mean", "low", "high", "n"])
    summary = frame.groupby(by, dropna=False)[value].apply(interval).unstack()
    summary["n"] = summary["n"].astype(int)
    return summary.reset_index()


def method_label(row: Mapping[str, Any]) -> str:
    """A short name of a run's method from its config fields, e.g. ``"SSAM-F s=0.9 layer, cost-aware"``."""
    optimizer = row["optimizer"]
    label = OPTIMIZER_NAMES.get(optimizer, str(optimizer))
    if not acts_on("sparsity", optimizer):
        return label
    label += f" s={row['sparsity']:g}"
    extras = [str(row["pattern"])] if row.get("pattern", "unstructured") != "unstructured" else []
    extras += [f"{row[field]}" for field, default in (("mask_rule", "fisher"), ("form", "explicit"),
                                                      ("normalize", "full"))
               if row.get(field, default) != default]
    return label + (" " + ", ".join(extras) if extras else "")


def cost_summary(frame: pd.DataFrame, value: str = "final_test_acc", time: str = "seconds_per_step",
                 level: float = 0.95, by: str | None = None) -> pd.DataFrame:
    """Per method (:func:`method_label`, or the column ``by`` when given): ``cost`` = mean ``time`` per
    step over the SGD runs' mean (``cost_low``/``cost_high``: its interval over seeds) and
    ``mean``/``low``/``high``/``n`` of ``value``.

    ``frame`` must hold SGD runs of the same setting; the input of :func:`sparsam.book.figures.cost.pareto`.
    """
    sgd = frame.loc[frame["optimizer"] == "sgd", time].dropna()
    if sgd.empty:
        raise ValueError(f"frame must hold SGD runs with a recorded {time!r}: the unit of cost")
    if by is not None and by not in frame.columns:
        raise ValueError(f"by must be a column of the frame, got {by!r}")
    labels = frame[by] if by is not None else [method_label(row) for _, row in frame.iterrows()]
    labelled = frame.assign(label=labels, cost=frame[time] / sgd.mean())
    accuracy = summarize(labelled, "label", value, level)
    cost = summarize(labelled, "label", "cost", level).rename(
        columns={"mean": "cost", "low": "cost_low", "high": "cost_high", "n": "cost_n"})
    return accuracy.merge(cost, on="label").sort_values("cost").reset_index(drop=True)


def pareto_front(points: pd.DataFrame, value: str = "mean", cost: str = "cost") -> pd.Series:
    """Whether each point is on the Pareto front of (higher ``value``, lower ``cost``): no other point
    is at least as good in both and better in one. Points with a NaN in either are not on it."""
    values, costs = points[value].to_numpy(dtype=float), points[cost].to_numpy(dtype=float)
    valid = np.isfinite(values) & np.isfinite(costs)
    on = [bool(valid[i]) and not np.any(valid & (values >= values[i]) & (costs <= costs[i])
                                        & ((values > values[i]) | (costs < costs[i])))
          for i in range(len(points))]
    return pd.Series(on, index=points.index, name="on_front")
