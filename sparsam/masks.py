"""Mask patterns: pure functions from score tensors to boolean masks of the same shapes.

Every function takes a sequence of score tensors (one per parameter tensor, larger = more worth
perturbing) and returns a list of ``torch.bool`` masks, ``True`` where the parameter is perturbed.
Sparsity ``s`` is the fraction of entries NOT perturbed; :func:`density` reports ``1 - s`` achieved.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import Tensor

from ._checks import check_choice, check_int, check_range

__all__ = ["unstructured", "structured", "n_m", "n_m_official", "density", "parse_pattern",
           "from_pattern", "PATTERNS"]

PATTERNS = ("unstructured", "layer", "filter", "N:M (e.g. '2:4')")


def _check_sparsity(sparsity: float) -> float:
    return check_range("sparsity", sparsity, 0.0, 1.0)


def density(masks: Sequence[Tensor]) -> float:
    """Fraction of entries that are ``True`` over all masks."""
    kept = sum(int(m.sum()) for m in masks)
    total = sum(m.numel() for m in masks)
    return kept / total if total else 0.0


def unstructured(scores: Sequence[Tensor], sparsity: float) -> list[Tensor]:
    """One global top-k over all tensors, keeping exactly ``int((1 - sparsity) * d)`` entries."""
    _check_sparsity(sparsity)
    flat = torch.cat([s.detach().reshape(-1).float() for s in scores])
    keep = int((1.0 - sparsity) * flat.numel())
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[torch.topk(flat, keep, sorted=False).indices] = True
    return [m.view_as(s) for m, s in zip(mask.split([s.numel() for s in scores]), scores)]


def _units(scores: Sequence[Tensor], granularity: str) -> list[tuple[int, slice | None, Tensor]]:
    """Split tensors into ranking units: (tensor index, row slice or None for whole, unit scores)."""
    units = []
    for i, s in enumerate(scores):
        if granularity == "filter" and s.dim() >= 2:
            units += [(i, slice(r, r + 1), s[r]) for r in range(s.shape[0])]
        else:
            units.append((i, None, s))
    return units


def structured(scores: Sequence[Tensor], sparsity: float, granularity: str = "layer") -> list[Tensor]:
    """Whole units ranked by mean score and filled greedily into the budget ``int((1-s) d)``.

    ``granularity="layer"``: a unit is a whole tensor (the TPAMI layer-wise rule).
    ``granularity="filter"``: a unit is one output channel of a conv weight or one output row of a
    linear weight (slices along dim 0); 1-D tensors (biases, norms) are whole units.
    Units are visited in decreasing mean score and taken whenever they still fit in the remaining
    budget, so the achieved density (see :func:`density`) is at most ``1 - sparsity``.
    """
    _check_sparsity(sparsity)
    check_choice("granularity", granularity, ("layer", "filter"))
    units = _units(scores, granularity)
    means = torch.tensor([float(u.detach().float().mean()) for _, _, u in units])
    budget = int((1.0 - sparsity) * sum(s.numel() for s in scores))
    masks = [torch.zeros(s.shape, dtype=torch.bool, device=s.device) for s in scores]
    for j in torch.argsort(means, descending=True, stable=True).tolist():
        i, rows, unit = units[j]
        if unit.numel() <= budget:
            budget -= unit.numel()
            if rows is None:
                masks[i].fill_(True)
            else:
                masks[i][rows] = True
    return masks


def _top_n_per_row(groups: Tensor, n: int) -> Tensor:
    """Boolean mask keeping the ``n`` largest entries of every row of a 2-D tensor."""
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, torch.topk(groups, min(n, groups.shape[1]), dim=1).indices, True)
    return keep


def _n_m_matrix(rows: Tensor, n: int, m: int) -> Tensor:
    """N:M along the last dimension of a 2-D tensor; a trailing partial group keeps min(n, size)."""
    length = rows.shape[1]
    full = (length // m) * m
    parts = []
    if full:
        parts.append(_top_n_per_row(rows[:, :full].reshape(-1, m), n).reshape(rows.shape[0], full))
    if full < length:
        parts.append(_top_n_per_row(rows[:, full:], n))
    return torch.cat(parts, dim=1)


def n_m(scores: Sequence[Tensor], n: int, m: int, dim: str = "in") -> list[Tensor]:
    """Keep the ``n`` largest of every ``m`` consecutive entries along the reduction dimension.

    ``dim="in"`` groups along the input side: a conv weight ``[C_out, C_in, kh, kw]`` is grouped
    along the flattened ``C_in*kh*kw`` of each output channel, a linear weight along
    ``in_features``. ``dim="out"`` groups along the output dimension instead (for every input
    position, ``m`` consecutive output channels), the layout an accelerated input-gradient
    ``W^T g`` needs. A trailing group shorter than ``m`` keeps its ``min(n, size)`` largest entries.
    1-D tensors are kept whole.
    """
    check_int("n", n, 1)
    check_int("m", m, 1)
    if n > m:
        raise ValueError(f"n must be in [1, m={m}], got n={n}")
    check_choice("dim", dim, ("in", "out"))
    masks = []
    for s in scores:
        s = s.detach().float()
        if s.dim() < 2:
            masks.append(torch.ones(s.shape, dtype=torch.bool, device=s.device))
        elif dim == "in":
            masks.append(_n_m_matrix(s.reshape(s.shape[0], -1), n, m).view(s.shape))
        else:
            cols = s.reshape(s.shape[0], -1).t()
            masks.append(_n_m_matrix(cols, n, m).t().reshape(s.shape))
    return masks


def n_m_official(scores: Sequence[Tensor], n: int, m: int) -> list[Tensor]:
    """The official code's N:M, reproduced to show its defect: do NOT use it for training.

    For conv weights it groups the scores channels-last (``permute(0, 2, 3, 1)``, groups along
    ``C_in`` at each spatial position) but reshapes the resulting mask straight back to
    ``[C_out, C_in, kh, kw]`` without undoing the permutation, so the kept entries are not the
    top-n of any group of the scores. Linear weights and 1-D tensors are handled correctly.
    """
    masks = []
    for s in scores:
        s = s.detach().float()
        if s.dim() == 4:
            grouped = s.permute(0, 2, 3, 1).reshape(-1, m)
            masks.append(_top_n_per_row(grouped, n).reshape(s.shape))  # the defect: no inverse permute
        else:
            masks += n_m([s], n, m)
    return masks


_N_M = re.compile(r"^(\d+):(\d+)$")


def parse_pattern(pattern: str) -> tuple[str, int, int]:
    """Parse ``"unstructured"``, ``"layer"``, ``"filter"`` or ``"N:M"`` into ``(kind, n, m)``."""
    match = _N_M.match(pattern) if isinstance(pattern, str) else None
    if match:
        n, m = int(match.group(1)), int(match.group(2))
        if not 1 <= n <= m:
            raise ValueError(f"pattern N:M needs 1 <= N <= M, got {pattern!r}")
        return "n:m", n, m
    check_choice("pattern", pattern, ("unstructured", "layer", "filter"))
    return pattern, 0, 0


def from_pattern(scores: Sequence[Tensor], pattern: str, sparsity: float, dim: str = "in") -> list[Tensor]:
    """Build the mask of ``pattern`` from ``scores``; N:M patterns fix the density to n/m themselves."""
    kind, n, m = parse_pattern(pattern)
    if kind == "unstructured":
        return unstructured(scores, sparsity)
    if kind in ("layer", "filter"):
        return structured(scores, sparsity, kind)
    return n_m(scores, n, m, dim=dim)


def n_m_sparsity(pattern: str) -> float | None:
    """Nominal sparsity ``1 - n/m`` of an N:M pattern, ``None`` for the others."""
    kind, n, m = parse_pattern(pattern)
    return None if kind != "n:m" else 1.0 - n / m

