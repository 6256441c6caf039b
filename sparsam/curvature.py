"""Measurements of notebook 6: the trained networks of run records and the curvature of their loss
(the rows that :mod:`sparsam.flatness` summarises and decides).

- :func:`load_trained`: the network of a config from its checkpoint in ``runs/``, or retrained;
- :func:`evaluation_batches`: a fixed, class-balanced set of training images without augmentation;
- :func:`curvature`: loss, top Hessian eigenvalue (power iteration) and Hessian trace (Hutchinson,
  with its standard error) of one network on those images, as one row of a table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import data, landscape, models
from .config import TrainConfig
from .results import RUNS
from .train import train

Batches = list[tuple[Tensor, Tensor]]


def load_trained(config: TrainConfig, num_classes: int, scratch: str | Path, device: torch.device,
                 runs_dir: Path = RUNS, retrain: bool = True) -> tuple[nn.Module | None, bool]:
    """The trained network of ``config`` in eval mode and whether it had to be retrained: from its
    checkpoint under ``runs_dir`` or, when that is missing (a record made elsewhere), trained again
    into ``scratch`` (bit-identical on a CPU with the same software and thread count); with
    ``retrain=False`` a missing checkpoint gives ``(None, False)``."""
    run = Path(runs_dir) / config.run_id()
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
                       device: torch.device) -> Batches:
    """``n_eval`` training images drawn class-balanced (with ``seed``) from the ``n_train`` a run of that
    seed trained on, normalised but not augmented, in batches of ``batch_size``."""
    train_set, _ = data.load_dataset(dataset, "train")
    test_set, _ = data.load_dataset(dataset, "test")
    labels = torch.as_tensor(train_set.labels if hasattr(train_set, "labels") else train_set.targets)
    seen = data.balanced_subset(labels, n_train, seed) if n_train is not None else np.arange(len(labels))
    chosen = seen[data.balanced_subset(labels[seen], n_eval, seed)]
    train_set.transform = test_set.transform  # the evaluation transform: normalisation only
    images = torch.stack([train_set[int(i)][0] for i in chosen]).to(device)
    targets = labels[chosen].to(device)
    return [(images[i:i + batch_size], targets[i:i + batch_size]) for i in range(0, n_eval, batch_size)]


def curvature(net: nn.Module, batches: Batches, *, power_iterations: int, hutchinson_samples: int,
              seed: int) -> dict[str, Any]:
    """One row of the frame :mod:`sparsam.flatness` reads: ``loss`` at the weights, ``eigenvalue`` (top
    Hessian eigenvalue after ``power_iterations`` products, with its ``eigenvalue_history``), ``trace``
    and ``trace_stderr`` (Hutchinson over ``hutchinson_samples`` Rademacher vectors; NaN error for one
    sample) and ``weight_norm`` (norm of the convolution and linear weights)."""
    loss = landscape.FunctionalLoss(net, batches)
    weights = landscape.parameters_of(net)
    eigen = landscape.top_eigenvalue(lambda v: loss.hvp(weights, v), weights, power_iterations,
                                     torch.Generator().manual_seed(seed))
    trace = landscape.hutchinson_trace(lambda v: loss.hvp(weights, v), weights, hutchinson_samples,
                                       torch.Generator().manual_seed(seed + 1))
    conv_linear = {name: w for name, w in weights.items() if w.dim() > 1}
    return {"loss": float(loss(weights)), "eigenvalue": eigen.value, "eigenvalue_history": eigen.history,
            "trace": trace.value, "trace_stderr": trace.stderr if math.isfinite(trace.stderr) else math.nan,
            "weight_norm": float(landscape.norm(conv_linear))}
