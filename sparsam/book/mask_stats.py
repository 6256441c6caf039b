"""Mask statistics: how dense a mask is per tensor, how much Fisher score it keeps, how much of one mask
another keeps, how the masks of an SSAM optimizer move over training, and the official N:M defect.

Masks are lists of ``torch.bool`` tensors, ``True`` where a parameter is perturbed (see :mod:`.masks`);
scores are the matching lists of non-negative tensors (larger = more worth perturbing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..masks import patterns
from .._checks import check_int
from ..optim.ssam import SSAM

__all__ = ["tensor_densities", "fisher_mass", "overlap", "pattern_table", "MaskTrace", "train_steps", "trace_masks",
           "nm_defect", "nm_summary"]


def _check_pairs(name: str, first: Sequence[Tensor], second: Sequence[Tensor]) -> None:
    if len(first) != len(second) or any(a.shape != b.shape for a, b in zip(first, second)):
        raise ValueError(f"{name} must hold one tensor of the same shape per tensor "
                         f"({len(second)} given for {len(first)})")


def tensor_densities(masks: Sequence[Tensor]) -> np.ndarray:
    """The density (fraction of ``True`` entries) of each mask tensor."""
    return np.array([float(m.float().mean()) for m in masks])


def fisher_mass(scores: Sequence[Tensor], masks: Sequence[Tensor]) -> float:
    """Share of the total score that falls inside ``masks``."""
    _check_pairs("masks", scores, masks)
    total = sum(float(s.sum()) for s in scores)
    if total <= 0:
        raise ValueError("scores must have a positive sum")
    return sum(float(s[m].sum()) for s, m in zip(scores, masks)) / total


def overlap(first: Sequence[Tensor], second: Sequence[Tensor]) -> float:
    """Share of the entries ``first`` perturbs that ``second`` perturbs too."""
    _check_pairs("second", first, second)
    perturbed = sum(int(a.sum()) for a in first)
    if perturbed == 0:
        raise ValueError("first must perturb at least one entry")
    return sum(int((a & b).sum()) for a, b in zip(first, second)) / perturbed


def pattern_table(scores: Sequence[Tensor], masks_by_pattern: Mapping[str, Sequence[Tensor]]) -> pd.DataFrame:
    """One row per pattern: overall density, density of the weights (tensors of 2 or more dimensions) and
    of the 1-D tensors, and the share of the total score kept (:func:`fisher_mass`)."""
    rows = {}
    for name, masks in masks_by_pattern.items():
        _check_pairs(f"masks_by_pattern[{name!r}]", scores, masks)
        rows[name] = {"overall density": patterns.density(masks),
                      "conv/linear weights": patterns.density([m for m in masks if m.dim() >= 2]),
                      "1-D tensors": patterns.density([m for m in masks if m.dim() < 2]),
                      "Fisher mass kept": fisher_mass(scores, masks)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("pattern")


@dataclass
class MaskTrace:
    """The masks of an SSAM run, as :func:`trace_masks` records them.

    ``density[t]`` and ``layers[t]`` (one column per parameter tensor): the masks in force after ``t``
    optimizer steps (``t = 0``: before the first). ``updates``: one row per rebuild, with the step it
    was made at (the strategy's ``last_update``), the share of the previous mask's entries it kept
    (NaN when the previous mask perturbed nothing, e.g. SSAM-F's all-zero mask before its first
    update), the share of the entries it dropped (``1 - kept_previous``), the share of the first
    rebuilt mask's entries it kept; ``update_layers[k]``: the per-tensor densities of rebuild ``k``.
    """

    density: np.ndarray
    layers: np.ndarray
    updates: pd.DataFrame
    update_layers: np.ndarray


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator[tuple[Tensor, Tensor]],
                steps: int, loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy) -> np.ndarray:
    """Train ``model`` for ``steps`` plain steps of ``optimizer`` (e.g. SGD; one pass per step, no
    perturbation) on ``batches``; returns the loss of each step's batch, measured before its update."""
    check_int("steps", steps, 0)
    model.train()
    losses = []
    for _ in range(steps):
        x, y = next(batches)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return np.array(losses, dtype=float)


def trace_masks(model: nn.Module, optimizer: SSAM, batches: Iterator[tuple[Tensor, Tensor]], steps: int,
                loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy) -> MaskTrace:
    """Train ``model`` for ``steps`` SSAM steps on ``batches`` (``(x, y)`` pairs on the model's device) and
    record the optimizer's masks after every step and at every rebuild (see :class:`MaskTrace`)."""
    if not isinstance(optimizer, SSAM):
        raise ValueError(f"optimizer must be a sparsam.SSAM, got {type(optimizer).__name__}")
    check_int("steps", steps, 1)
    strategy = optimizer.mask
    model.train()
    density, layers = [strategy.density()], [tensor_densities(strategy.masks)]
    rows, update_layers, first = [], [], None
    for _ in range(steps):
        previous, updates_before = strategy.masks, strategy.updates  # a rebuild replaces the list, never edits it
        x, y = next(batches)
        with optimizer.ascent_pass():
            loss_fn(model(x), y).backward()
        optimizer.first_step(zero_grad=True)
        loss_fn(model(x), y).backward()
        optimizer.second_step(zero_grad=True)
        current = strategy.masks
        if strategy.updates > updates_before:
            first = current if first is None else first
            kept = overlap(previous, current) if any(bool(m.any()) for m in previous) else float("nan")
            rows.append({"step": strategy.last_update, "kept_previous": kept, "dropped": 1.0 - kept,
                         "kept_first": overlap(first, current)})
            update_layers.append(tensor_densities(current))
        density.append(strategy.density())
        layers.append(tensor_densities(current))
    updates = pd.DataFrame(rows, columns=["step", "kept_previous", "dropped", "kept_first"])
    return MaskTrace(np.array(density), np.array(layers), updates,
                     np.array(update_layers).reshape(len(rows), len(strategy.masks)))


def nm_defect(scores: Sequence[Tensor], chosen: Sequence[Tensor], intended: Sequence[Tensor], n: int, m: int,
              names: Sequence[str] | None = None) -> pd.DataFrame:
    """Per weight, how far the mask ``chosen`` is from the best N:M mask along the output dimension.

    A group is ``m`` consecutive output channels at one input position (the grouping of
    ``masks.n_m(..., dim="out")``); only full groups count. Columns: ``groups``; ``wrong_groups``, the
    full groups whose score inside ``chosen`` is below the sum of their ``n`` best scores (relative
    tolerance 1e-6); ``chosen_mass``, ``intended_mass`` and ``total_mass``, the score inside ``chosen``,
    inside ``intended`` and in all of the weight.
    """
    patterns._check_n_m(n, m)
    _check_pairs("chosen", scores, chosen)
    _check_pairs("intended", scores, intended)
    if any(s.dim() < 2 for s in scores):
        raise ValueError("scores must be weights of 2 or more dimensions (conv or linear), got a 1-D tensor")
    if names is not None and len(names) != len(scores):
        raise ValueError(f"names must have one name per tensor ({len(names)} given for {len(scores)})")
    rows = []
    for s, c, i in zip(scores, chosen, intended):
        columns = s.reshape(s.shape[0], -1).t()  # [input position, output channel]: groups run along a row
        full = (columns.shape[1] // m) * m
        groups = columns[:, :full].reshape(-1, m)
        kept = (groups * c.reshape(s.shape[0], -1).t()[:, :full].reshape(-1, m)).sum(1)
        best = torch.topk(groups, n, dim=1).values.sum(1)
        rows.append({"groups": groups.shape[0], "wrong_groups": int((kept < best * (1 - 1e-6)).sum()),
                     "chosen_mass": float(s[c].sum()), "intended_mass": float(s[i].sum()),
                     "total_mass": float(s.sum())})
    return pd.DataFrame(rows, index=None if names is None else list(names),
                        columns=["groups", "wrong_groups", "chosen_mass", "intended_mass", "total_mass"])


def nm_shares(defect: pd.DataFrame, n: int, m: int) -> pd.DataFrame:
    """Per row of an :func:`nm_defect` table: the share of wrong groups (``wrong_groups``), the score kept by the
    chosen mask as a fraction of the intended mask's (``chosen_mass``), and the expected fraction of a random N:M
    mask (``random_mass``, ``n/m`` of the total score); NaN (or inf) where a denominator is zero."""
    patterns._check_n_m(n, m)
    values = defect[["groups", "wrong_groups", "chosen_mass", "intended_mass", "total_mass"]].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame({"wrong_groups": values["wrong_groups"] / values["groups"],
                             "chosen_mass": values["chosen_mass"] / values["intended_mass"],
                             "random_mass": n / m * values["total_mass"] / values["intended_mass"]})


def nm_summary(defect: pd.DataFrame, n: int, m: int) -> pd.Series:
    """Totals of an :func:`nm_defect` table, as :func:`nm_shares` reads a row: the share of wrong groups, the score
    kept by the chosen mask as a fraction of the intended mask's, and the expected fraction of a random N:M mask
    (``n/m`` of the total score); NaN where a denominator is zero (e.g. no rows)."""
    return nm_shares(defect.sum().to_frame().T, n, m).iloc[0].rename(None)
