"""Measurements of notebook 6: the trained networks of run records and the curvature of their loss
(the rows that :mod:`sparsam.book.flatness` summarises and decides).

- :func:`networks`: the configurations notebook 6 trains and measures, from its parameters;
- :func:`load_trained`: the network of a config from its checkpoint in ``runs/``, or retrained;
- :func:`evaluation_batches`: a fixed, class-balanced set of training images without augmentation;
- :func:`curvature`: loss, top Hessian eigenvalue (power iteration) and Hessian trace (Hutchinson,
  with its standard error) of one network on those images, raw and in normalised weights (the scale-free
  measure, :func:`sparsam.book.landscape.normalizing_scales`), as one row of a table.

Flatness records keep these rows for networks whose weights are not committed (the CPU study's
200-epoch runs): :func:`measure_run` measures one finished run from its checkpoint and writes
``<store>/<run id>.json`` (the row, the :class:`Settings`, the config, provenance and what identifies the
network: its run's final training loss and per-example test outcomes, which :func:`same_network` checks
against the run's record);
:func:`measure_missing` does so for every network without an up-to-date record (``python -m sparsam
flatness``); :func:`flatness_frame` reads the records back into the frame :mod:`sparsam.book.flatness` takes.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, Mapping, Sequence, TextIO

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from ..experiment import data
from . import landscape
from ..experiment import models
from . import profiles
from ..experiment.config import TrainConfig
from ..experiment.record_schema import FLATNESS_RESULTS, FLATNESS_RESULTS_LATER, RecordError, read_record
from ..experiment.provenance import provenance
from ..experiment.store import Workspace, atomic_write_json, now, read_json
from ..experiment.train import train

Batches = list[tuple[Tensor, Tensor]]
# The columns of one network's row: its label, its seed and what :func:`curvature` measures.
# loss, eigenvalue, eigenvalue_history, trace, trace_stderr, weight_norm, then the scale-free measures
# (eigenvalue_normalized, ..., trace_normalized_stderr), which records made before them lack (NaN in the frame).
ROW = ("method", "seed", *FLATNESS_RESULTS, *FLATNESS_RESULTS_LATER)


def networks(p: SimpleNamespace) -> dict[tuple[str, int], TrainConfig]:
    """Notebook 6's networks under its parameters ``p`` (:func:`sparsam.book.profiles.parameters`):
    ``{(kind, seed): config}`` for kinds "sgd", "sam", "ssam" (SSAM-F) and, with ``include_ssam_d``,
    "ssamd", each seed of ``p.seeds``. Built as in notebook 3 (fields an optimizer does not use keep
    their defaults), so equal values share runs."""
    base = TrainConfig(model=p.model, width=p.width, dataset=p.dataset, n_train=p.n_train, n_test=p.n_test,
                       epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, weight_decay=p.weight_decay,
                       device=p.device, amp=p.amp, channels_last=p.channels_last, eval_every=p.eval_every)
    ssam = dict(rho=p.rho, sparsity=p.sparsity, update_every=p.update_every, update_unit="epochs")
    kinds: dict[str, dict[str, Any]] = {"sgd": dict(optimizer="sgd"), "sam": dict(optimizer="sam", rho=p.rho),
                                        "ssam": dict(optimizer="ssam-f", num_samples=p.num_samples, **ssam)}
    if p.include_ssam_d:
        kinds["ssamd"] = dict(optimizer="ssam-d", **ssam)
    return {(key, seed): base.replace(seed=seed, **kind) for seed in p.seeds for key, kind in kinds.items()}


def load_trained(config: TrainConfig, num_classes: int, scratch: str | Path, device: torch.device,
                 runs_dir: str | Path | None = None, retrain: bool = True) -> tuple[nn.Module | None, bool]:
    """The trained network of ``config`` in eval mode and whether it had to be retrained: from its
    checkpoint under ``runs_dir`` (default: the :class:`~sparsam.experiment.store.Workspace`'s) or, when
    that is missing (a record made elsewhere), trained again into ``scratch`` (the same network only on the
    same kind of processor, software and thread count: :func:`same_network` checks it); with
    ``retrain=False`` a missing checkpoint gives ``(None, False)``."""
    run = Workspace.resolve(runs=runs_dir).runs / config.run_id()
    retrained = not (run / "summary.json").exists()
    if retrained and not retrain:
        return None, False
    if retrained:
        train(config, runs_dir=scratch, progress=False)
        run = Path(scratch) / config.run_id()
    state = torch.load(run / "checkpoint.pt", map_location=device, weights_only=True)
    net = models.build_model(config.model, num_classes, **({} if config.width is None else {"width": config.width}))
    net.load_state_dict(state["model"])
    return net.to(device).eval(), retrained


def evaluation_batches(dataset: str, n_train: int | None, n_eval: int, seed: int, batch_size: int,
                       device: torch.device, label_noise: float = 0.0) -> Batches:
    """``n_eval`` training images drawn class-balanced (with ``seed``) from the ``n_train`` a run of that
    seed trained on, normalised but not augmented, in batches of ``batch_size``; with ``label_noise``, each
    with the label that run trained on (:func:`sparsam.experiment.data.with_label_noise` of its subset, the
    same wrong labels), else its true one."""
    train_set, source = data.load_dataset(dataset, "train")
    test_set, _ = data.load_dataset(dataset, "test")
    labels = torch.as_tensor(train_set.labels if hasattr(train_set, "labels") else train_set.targets)
    seen = data.balanced_subset(labels, n_train, seed) if n_train is not None else np.arange(len(labels))
    local = data.balanced_subset(labels[seen], n_eval, seed)
    chosen = seen[local]
    trained_on = labels[seen]
    if label_noise > 0:  # the labels of the run's own subset after its seeded noise, in the subset's order
        subset = train_set.subset(seen) if n_train is not None else train_set
        trained_on = data.with_label_noise(subset, label_noise, source.num_classes, seed).labels
    train_set.transform = test_set.transform  # the evaluation transform: normalisation only
    images = torch.stack([train_set[int(i)][0] for i in chosen]).to(device)
    targets = torch.as_tensor(trained_on)[local].to(device)
    return [(images[i:i + batch_size], targets[i:i + batch_size]) for i in range(0, n_eval, batch_size)]


def curvature(net: nn.Module, batches: Batches, *, power_iterations: int, hutchinson_samples: int,
              seed: int) -> dict[str, Any]:
    """One row of the frame :mod:`sparsam.book.flatness` reads: ``loss`` at the weights, ``eigenvalue`` (top
    Hessian eigenvalue after ``power_iterations`` products, with its ``eigenvalue_history``), ``trace``
    and ``trace_stderr`` (Hutchinson over ``hutchinson_samples`` Rademacher vectors; NaN error for one
    sample) and ``weight_norm`` (norm of the convolution and linear weights); then the same of the Hessian in
    normalised weights ``D H D`` (:func:`sparsam.book.landscape.normalizing_scales`, unchanged when the
    weights before a BatchNorm are rescaled): ``eigenvalue_normalized`` (with its history), ``trace_normalized``
    and ``trace_normalized_stderr``, from the same seeds (twice the Hessian-vector products in all)."""
    loss = landscape.FunctionalLoss(net, batches)
    weights = landscape.parameters_of(net)
    row: dict[str, Any] = {"loss": float(loss(weights))}
    for suffix, scales in (("", None), ("_normalized", landscape.normalizing_scales(weights))):
        def hvp(v: landscape.Params, scales: landscape.Params | None = scales) -> landscape.Params:
            return loss.hvp(weights, v, scales=scales)

        eigen = landscape.top_eigenvalue(hvp, weights, power_iterations, torch.Generator().manual_seed(seed))
        trace = landscape.hutchinson_trace(hvp, weights, hutchinson_samples, torch.Generator().manual_seed(seed + 1))
        row |= {f"eigenvalue{suffix}": eigen.value, f"eigenvalue{suffix}_history": eigen.history,
                f"trace{suffix}": trace.value,
                f"trace{suffix}_stderr": trace.stderr if math.isfinite(trace.stderr) else math.nan}
        if not suffix:
            conv_linear = {name: w for name, w in weights.items() if w.dim() > 1}
            row["weight_norm"] = float(landscape.norm(conv_linear))
    return row


@dataclasses.dataclass(frozen=True)
class Settings:
    """How a network's curvature is measured: on ``n_eval`` training images (in batches of
    ``eval_batch_size``), with ``power_iterations`` Hessian-vector products for the top eigenvalue and
    ``hutchinson_samples`` for the trace. The images and random vectors are seeded by the run's seed."""

    n_eval: int
    eval_batch_size: int
    power_iterations: int
    hutchinson_samples: int

    @classmethod
    def of(cls, p: SimpleNamespace) -> "Settings":
        """The settings among notebook 6's parameters ``p``."""
        return cls(**{f.name: getattr(p, f.name) for f in dataclasses.fields(cls)})

    def for_run(self, config: TrainConfig) -> dict[str, int]:
        """The settings of ``config``'s measurement as stored in its record, with its ``eval_seed``."""
        return {**dataclasses.asdict(self), "eval_seed": config.seed}


def flatness_path(config: TrainConfig, store: Path) -> Path:
    return Path(store) / f"{config.run_id()}.json"


def load_flatness(config: TrainConfig, settings: Settings, store: Path) -> dict[str, Any] | None:
    """The flatness record of ``config`` in ``store`` if it was measured with ``settings``, else None;
    an unreadable or inconsistent record (:func:`sparsam.experiment.record_schema.check_flatness_record`)
    or one holding another config raises :class:`~sparsam.experiment.record_schema.RecordError` naming
    the file."""
    path = flatness_path(config, store)
    if not path.exists():
        return None
    record = read_record(path, "flatness")
    if TrainConfig.from_dict(record["config"]) != config:
        raise RecordError(path, "does not hold the config it is named after")
    return record if record["settings"] == settings.for_run(config) else None


def measure_run(config: TrainConfig, runs_dir: Path, settings: Settings, store: Path,
                device: torch.device = torch.device("cpu")) -> dict[str, Any]:
    """Measure the finished run of ``config`` under ``runs_dir`` (its checkpoint; never retrained) with
    ``settings``, write its flatness record to ``store`` atomically and return it."""
    run = Path(runs_dir) / config.run_id()
    if not (run / "summary.json").exists() or not (run / "checkpoint.pt").exists():
        raise FileNotFoundError(f"runs_dir {runs_dir} holds no finished run {config.run_id()} "
                                "(summary.json and checkpoint.pt): train it first")
    summary = read_json(run / "summary.json")
    with tempfile.TemporaryDirectory() as scratch:
        net, _ = load_trained(config, summary["data"]["num_classes"], scratch, device, runs_dir, retrain=False)
    assert net is not None  # the run is finished, so its checkpoint is read, never retrained
    batches = evaluation_batches(config.dataset, config.n_train, settings.n_eval, config.seed,
                                 settings.eval_batch_size, device, label_noise=config.label_noise)
    row = curvature(net, batches, power_iterations=settings.power_iterations,
                    hutchinson_samples=settings.hutchinson_samples, seed=config.seed)
    record = {"run_id": config.run_id(), "config": config.to_dict(), "settings": settings.for_run(config),
              "results": row, "provenance": provenance(device), "measured": now(),
              "trained_at": summary.get("provenance", {}).get("git_commit")}
    if "test_correct" in summary:  # what identifies the network (runs made before it was kept lack it)
        record["network"] = {"final_train_loss": summary["final_train_loss"], "test_correct": summary["test_correct"]}
    atomic_write_json(flatness_path(config, store), record)
    return record


Identity = Literal["identical", "different", "not recorded"]


def same_network(flatness_record: Mapping[str, Any], run_record: Mapping[str, Any]) -> Identity:
    """Whether the network a flatness record measured is the one its run record trained: "identical" when its
    final training loss and every per-example test outcome equal the run's, bit for bit; "different" otherwise;
    "not recorded" for a record measured before it kept them (or a run record without its test outcomes)."""
    network, summary = flatness_record.get("network"), run_record["summary"]
    if network is None or "test_correct" not in summary:
        return "not recorded"
    if flatness_record["run_id"] != summary["run_id"]:
        raise ValueError(f"flatness_record: it measured {flatness_record['run_id']}, not {summary['run_id']}")
    same = (network["final_train_loss"] == summary["final_train_loss"]
            and network["test_correct"] == summary["test_correct"])
    return "identical" if same else "different"


def identity_text(checks: Sequence[Identity]) -> str:
    """What the checks of :func:`same_network` say, in words: how many measured networks were checked against
    their runs, how many of those are their runs' bit for bit, and how many were measured before the check."""
    if not checks:
        return "no network measured"
    counts = {kind: sum(c == kind for c in checks) for kind in ("identical", "different", "not recorded")}
    checked = counts["identical"] + counts["different"]
    text = (f"{checked} of {len(checks)} checked against their runs (final training loss and every test "
            f"prediction): {counts['identical']} identical, {counts['different']} different" if checked
            else f"none of {len(checks)} checked against their runs")
    if counts["not recorded"]:
        text += (f"; {counts['not recorded']} measured before the records kept what identifies the network, so "
                 "not checked")
    return text


def measure_missing(configs: Sequence[TrainConfig], runs_dir: Path, settings: Settings, store: Path,
                    device: torch.device = torch.device("cpu"), out: TextIO | None = None,
                    train_missing: bool = False) -> dict[str, str]:
    """Measure each config whose run under ``runs_dir`` is finished and whose record in ``store`` is
    missing, was made with other settings or lacks the scale-free measures (made before them);
    ``{run id: "measured" | "kept" | "kept without the scale-free measures" | "not finished"}``, one line
    each on ``out`` (default: standard output). With ``train_missing`` a run that such a config needs and
    ``runs_dir`` lacks is trained (or resumed) there first, then measured."""
    done = {}
    for config in configs:
        run_id = config.run_id()
        record = load_flatness(config, settings, store)
        complete = record is not None and set(FLATNESS_RESULTS_LATER) <= set(record["results"])
        if not complete and train_missing:
            train(config, runs_dir=runs_dir, progress=False)
        finished = (Path(runs_dir) / run_id / "summary.json").exists()
        if complete:
            done[run_id] = "kept"
        elif record is not None and not finished:
            done[run_id] = "kept without the scale-free measures"
        elif finished:
            measure_run(config, runs_dir, settings, store, device)
            done[run_id] = "measured"
        else:
            done[run_id] = "not finished"
        print(f"{done[run_id]}: {run_id}", file=out or sys.stdout, flush=True)
    return done


def flatness_frame(networks: Mapping[tuple[str, int], TrainConfig], settings: Settings, store: Path) -> pd.DataFrame:
    """The rows (columns :data:`ROW`) of the ``{(method, seed): config}`` networks that have a flatness
    record made with ``settings`` in ``store``, in the order given; the frame
    :func:`sparsam.book.flatness.flatness_verdicts` takes."""
    rows = []
    for (method, seed), config in networks.items():
        record = load_flatness(config, settings, store)
        if record is not None:
            rows.append({"method": method, "seed": seed, **record["results"]})
    return pd.DataFrame(rows, columns=list(ROW))


def measure_profile(profile: str = "cpu-study", runs_dir: str | Path | None = None, store: str | Path | None = None,
                    shard: tuple[int, int] = (0, 1), train_missing: bool = False) -> dict[str, str]:
    """:func:`measure_missing` of notebook 6's networks under ``profile`` (its configurations and settings,
    :func:`networks`, :meth:`Settings.of`): those of ``shard`` ``(k, n)`` only, the networks k, k + n, ... of the
    profile's list, so that n processes can share the work. ``runs_dir``: the finished runs (default: the
    :class:`~sparsam.experiment.store.Workspace`'s); ``store``: the flatness records (default: the profile's
    ``flatness_store`` under the current directory)."""
    p = profiles.parameters("06_landscape", profile, {})
    if store is None and p.flatness_store is None:
        raise ValueError(f"store is needed: profile {profile!r} keeps no flatness records")
    k, n = shard
    if not 0 <= k < n:
        raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard!r}")
    if p.cpu_threads is not None:
        torch.set_num_threads(p.cpu_threads)
    return measure_missing(list(networks(p).values())[k::n], Workspace.resolve(runs=runs_dir).runs, Settings.of(p),
                           Path(store if store is not None else p.flatness_store).absolute(), torch.device(p.device),
                           train_missing=train_missing)
