"""Run records as pandas frames: provenance and staleness, per-seed pairing, interval summaries.

- :func:`records_frame`: one row per record (config fields, summary metrics, short commit, staleness);
  :func:`metrics_frame`: one row per record and epoch.
- :func:`stale_reason` / :func:`is_stale` / :func:`stale_records`: a record is stale when the code of
  its optimizer changed between the commit it was made at and ``HEAD`` (the files' syntax trees
  without docstrings and type annotations differ, so a documentation or typing fix keeps the records
  current), when that commit is not in ``HEAD``'s history ("unknown commit"), or when it was made in a
  dirty tree.
- :func:`paired`: the per-seed values of two configurations that differ only as given.
- :func:`summarize`: mean and 95% t-interval over seeds per group, for tables and plots;
  :func:`method_label` names a run's method; :func:`cost_summary` puts accuracy beside cost in SGD steps,
  and :func:`pareto_front` marks the points no other point beats in both.
"""

from __future__ import annotations

import ast
import functools
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..experiment.config import OPTIMIZER_NAMES, TrainConfig, acts_on
from ..experiment.results import load_all
from ..experiment.provenance import git
from .equivalences import EQUIVALENCES
from .stats import mean_interval

# The optimizer modules a configuration runs; a change to the code of any of them after a record was
# made makes the record stale. Compared by definition, not by file: moving a definition to another
# module, or changing only imports and docstrings, leaves the records current.
_SAM_MODULES = ("sparsam.optim.sam", "sparsam.optim.bn_guard")
_SSAM_MODULES = _SAM_MODULES + ("sparsam.optim.ssam", "sparsam.masks.patterns", "sparsam.masks.strategies",
                                "sparsam.masks.fisher")


def optimizer_modules(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The library modules whose code the optimizer of ``config`` (a config dict) runs."""
    optimizer = config.get("optimizer", "")
    if optimizer == "sgd":
        return ()
    if optimizer in ("sam", "asam"):
        return _SAM_MODULES
    modules = _SSAM_MODULES
    if config.get("form") == "implicit" or config.get("ascent") == "sparse":
        modules += ("sparsam.optim.masked_layer",)
    if config.get("form") == "implicit":
        modules += ("sparsam.optim.implicit",)
    if config.get("ascent") == "sparse":
        modules += ("sparsam.optim.sparse_ascent",)
    if config.get("ascent") == "sparse" or config.get("mask_rule") == "cost-aware":
        modules += ("sparsam.masks.cost",)
    if config.get("form") == "implicit" or config.get("ascent") == "sparse" or config.get("mask_rule") == "cost-aware":
        modules += ("sparsam._layers",)
    return modules


# Summary fields copied into the frame (NaN where a record predates the field).
SUMMARY_FIELDS = ("final_test_acc", "best_test_acc", "final_train_loss", "seconds_per_step", "cpu_seconds_per_step",
                  "mean_eps_norm", "mask_density", "flops_per_step", "flops_forward", "sparse_step_flops_vs_sgd",
                  "images_per_s", "train_seconds", "wall_seconds_this_process", "resumed_from_epoch", "epochs_run",
                  "world_size")
PERCENT_FIELDS = ("final_test_acc", "best_test_acc")  # fractions in the records, percent in the frame
CONFIG_FIELDS = tuple(TrainConfig.__dataclass_fields__)


def _summary(record: Mapping[str, Any]) -> Mapping[str, Any]:
    return record.get("summary", record)


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


class _WithoutAnnotations(ast.NodeTransformer):
    """Drops what type annotations add to a syntax tree: those of arguments and return values (never
    evaluated under ``from __future__ import annotations``, which every library module has) and those of
    local variables (never evaluated at all: ``x: T = v`` in a function is ``x = v``). Annotations at
    module and class level stay: they fill ``__annotations__``, which dataclasses read."""

    def __init__(self) -> None:
        self.depth = 0  # function nesting

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> ast.AST:
        arguments = node.args
        for arg in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg,
                    arguments.kwarg):
            if arg is not None:
                arg.annotation = None
        if not isinstance(node, ast.Lambda):
            node.returns = None
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        depth, self.depth = self.depth, 0  # a class body, even inside a function, keeps its annotations
        self.generic_visit(node)
        self.depth = depth
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | None:
        if self.depth == 0:
            return node
        return None if node.value is None else ast.Assign(targets=[node.target], value=node.value)


def _code_tree(source: str) -> ast.Module:
    """The syntax tree of ``source`` without docstrings and type annotations (see :class:`_WithoutAnnotations`)."""
    tree = _without_docstrings(_WithoutAnnotations().visit(ast.parse(source)))
    for node in ast.walk(tree):  # a body emptied of its local annotations
        if isinstance(getattr(node, "body", None), list) and not node.body:  # type: ignore[attr-defined]
            node.body = [ast.Pass()]  # type: ignore[attr-defined]
    assert isinstance(tree, ast.Module)
    return tree


def code_of(source: str) -> str:
    """The code of a Python file as its syntax tree without docstrings and type annotations (comments are not
    in it)."""
    return ast.dump(_code_tree(source))


def definitions(source: str) -> dict[str, str]:
    """The top-level definitions of a Python file (functions, classes, assigned names), each as its syntax
    tree without docstrings and type annotations; imports (and ``__all__``) are left out: they name code,
    they do not run it."""
    out: dict[str, str] = {}
    for node in _code_tree(source).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) or (isinstance(node, ast.Expr)
                                                              and isinstance(node.value, ast.Constant)):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        else:
            names = [ast.dump(node)]  # e.g. a top-level if: its own code is its name
        for name in names:
            if name != "__all__":
                out[name] = ast.dump(node)
    return out


def _module_path(module: str) -> str:
    return module.replace(".", "/") + ".py"


@functools.lru_cache(maxsize=None)
def _definitions_at(commit: str, paths: tuple[str, ...] | None = None) -> dict[str, frozenset[str]]:
    """Every definition of the package at ``commit`` (or of ``paths`` only), by name; a name defined in
    several modules keeps each of its versions."""
    explicit = paths is not None
    if paths is None:
        listing = git("ls-tree", "-r", "--name-only", commit, "--", "sparsam")
        paths = tuple(p for p in (listing or "").split() if p.endswith(".py"))
    found: dict[str, set[str]] = {}
    for path in paths:
        source = git("show", f"{commit}:{path}")
        if source is None:
            if explicit:
                raise ValueError(f"{path} is not in commit {commit[:7]} (a module named in optimizer_modules)")
            continue
        for name, code in definitions(source).items():
            found.setdefault(name, set()).add(code)
    return {name: frozenset(codes) for name, codes in found.items()}


@functools.lru_cache(maxsize=None)
def changed_definitions(commit: str, head: str, modules: tuple[str, ...]) -> tuple[str, ...] | None:
    """``module.name`` of each definition of ``modules`` at ``head`` that is not at ``commit`` with the same
    code (anywhere in the package), nor with code declared to compute the same
    (:data:`sparsam.book.equivalences.EQUIVALENCES`); None if ``commit`` is not an ancestor of ``head``.

    A name defined nowhere in the package at ``commit`` is new: the record's run cannot have called it, and
    a definition it ran that calls it now has changed itself, so a new name alone leaves records current."""
    if git("merge-base", "--is-ancestor", commit, head) is None:
        return None
    before = _definitions_at(commit)
    changed = []
    for module in modules:
        for name, codes in _definitions_at(head, (_module_path(module),)).items():
            if name not in before:
                continue
            if not codes <= _equivalent(f"{module}.{name}", before.get(name, frozenset())):
                changed.append(f"{module}.{name}")
    return tuple(changed)


def _equivalent(definition: str, codes: frozenset[str]) -> frozenset[str]:
    """``codes`` and every version of ``definition`` declared to compute the same as one of them (transitively)."""
    pairs = []
    for e in EQUIVALENCES:
        if e.definition == definition:
            path = (_module_path(e.module),)
            pairs.append(_definitions_at(e.before, path).get(e.name, frozenset())
                         | _definitions_at(e.after, path).get(e.name, frozenset()))
    found, grew = set(codes), True
    while grew:
        grew = False
        for versions in pairs:
            if found & versions and not versions <= found:
                found |= versions
                grew = True
    return frozenset(found)


def stale_reason(record: Mapping[str, Any]) -> str | None:
    """Why ``record`` no longer describes the optimizer code at HEAD, or None if it still does."""
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
    changed = changed_definitions(commit, head, optimizer_modules(summary.get("config", {})))
    if changed is None:
        return f"unknown commit {commit[:7]} (not an ancestor of HEAD)"
    if changed:
        return f"{', '.join(changed)} changed since {commit[:7]}"
    return None


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

    ``frame`` must hold SGD runs of the same setting; the input of :func:`sparsam.book.plots.pareto`.
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
