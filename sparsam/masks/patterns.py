"""Mask patterns: pure functions from score tensors to boolean masks of the same shapes.

Every function takes a sequence of score tensors (one per parameter tensor, larger = more worth
perturbing) and returns a list of ``torch.bool`` masks, ``True`` where the parameter is perturbed.
Sparsity ``s`` is the fraction of entries NOT perturbed; :func:`density` reports ``1 - s`` achieved.
Every selection breaks ties by index (the lower index is kept), so a CPU and a GPU build the same
mask from the same scores.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import Tensor

from .._checks import check_choice, check_int, check_range
from .._types import Granularity, NMDim

__all__ = ["unstructured", "structured", "n_m", "n_m_official", "cost_aware", "norm_only", "top_k", "density",
           "parse_pattern", "from_pattern", "PATTERNS"]

PATTERNS = ("unstructured", "layer", "filter", "N:M (e.g. '2:4')")
# The version of what this module computes (stored in every run record that uses it,
# sparsam.experiment.optimizers.numerics): raise it when a change alters any number it produces;
# tests/optim/test_numerics.py fingerprints each version.
NUMERICS = 1


def _check_sparsity(sparsity: float) -> float:
    return check_range("sparsity", sparsity, 0.0, 1.0)


def density(masks: Sequence[Tensor]) -> float:
    """Fraction of entries that are ``True`` over all masks."""
    kept = sum(int(m.sum()) for m in masks)
    total = sum(m.numel() for m in masks)
    return kept / total if total else 0.0


def top_k(values: Tensor, k: int, largest: bool = True) -> Tensor:
    """Indices of the ``k`` largest (``largest=False``: smallest) entries of a 1-D tensor, in no
    particular order; among equal values the lower indices are taken, on every device."""
    if k <= 0:
        return torch.zeros(0, dtype=torch.long, device=values.device)
    if not largest:
        values = -values
    kth = torch.topk(values, k, sorted=False).values.min()  # the k-th largest value
    above = (values > kth).nonzero().squeeze(1)
    tied = (values == kth).nonzero().squeeze(1)[:k - above.numel()]
    return torch.cat([above, tied])


def unstructured(scores: Sequence[Tensor], sparsity: float) -> list[Tensor]:
    """One global top-k over all tensors, keeping exactly ``int((1 - sparsity) * d)`` entries."""
    _check_sparsity(sparsity)
    flat = torch.cat([s.detach().reshape(-1).float() for s in scores])
    keep = int((1.0 - sparsity) * flat.numel())
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[top_k(flat, keep)] = True
    return [m.view_as(s) for m, s in zip(mask.split([s.numel() for s in scores]), scores)]


def _units(scores: Sequence[Tensor], granularity: Granularity) -> list[tuple[int, slice | None, Tensor]]:
    """Split tensors into ranking units: (tensor index, row slice or None for whole, unit scores)."""
    units: list[tuple[int, slice | None, Tensor]] = []
    for i, s in enumerate(scores):
        if granularity == "filter" and s.dim() >= 2:
            units += [(i, slice(r, r + 1), s[r]) for r in range(s.shape[0])]
        else:
            units.append((i, None, s))
    return units


def structured(scores: Sequence[Tensor], sparsity: float, granularity: Granularity = "layer") -> list[Tensor]:
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
    """Boolean mask keeping the ``n`` largest entries of every row of a 2-D tensor (ties: lower index)."""
    keep = torch.zeros_like(groups, dtype=torch.bool)
    order = torch.argsort(groups, dim=1, descending=True, stable=True)
    keep.scatter_(1, order[:, :min(n, groups.shape[1])], True)
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


def n_m(scores: Sequence[Tensor], n: int, m: int, dim: NMDim = "in") -> list[Tensor]:
    """Keep the ``n`` largest of every ``m`` consecutive entries along the reduction dimension.

    ``dim="in"`` groups along the input side: a conv weight ``[C_out, C_in, kh, kw]`` is grouped
    along the flattened ``C_in*kh*kw`` of each output channel, a linear weight along
    ``in_features``. ``dim="out"`` groups along the output dimension instead (for every input
    position, ``m`` consecutive output channels), the layout an accelerated input-gradient
    ``W^T g`` needs. A trailing group shorter than ``m`` keeps its ``min(n, size)`` largest entries.
    1-D tensors are kept whole.
    """
    _check_n_m(n, m)
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


def _check_n_m(n: int, m: int) -> None:
    check_int("n", n, 1)
    check_int("m", m, 1)
    if n > m:
        raise ValueError(f"n must be in [1, m={m}], got n={n}")


def n_m_official(scores: Sequence[Tensor], n: int, m: int) -> list[Tensor]:
    """The official code's N:M mask, reproduced to show its defect: do NOT use it for training.

    Official code: Mi-Peng/Systematic-Investigation-of-Sparse-Perturbed-Sharpness-Aware-
    Minimization-Optimizer, commit 9895bb4, ``solver/sam.py`` ``SSAMF.update_mask`` with
    ``solver/utils.py`` ``get_nm_mask``. A conv weight's scores ``[C_out, C_in, kh, kw]`` become the
    ``(C_in·kh·kw, C_out)`` matrix ``scores.view(C_out, -1).t()``; every ``m`` consecutive entries of
    it in row-major order (along ``C_out`` for each input position) keep their ``n`` largest; the
    contiguous ``(C_in·kh·kw, C_out)`` mask is then ``.view(C_out, C_in, kh, kw)``'d WITHOUT a
    transpose, so the kept entries are the top-n of no group of the weight (1×1 convolutions
    included). A linear weight is grouped in row-major order (along ``in_features``, as
    ``n_m(dim="in")`` when ``in_features`` is a multiple of ``m``); other tensors are kept whole. A
    tensor whose size is not a multiple of ``m`` is an error, as in the official code.
    """
    _check_n_m(n, m)
    masks = []
    for s in scores:
        s = s.detach().float()
        if s.dim() not in (2, 4):
            masks.append(torch.ones(s.shape, dtype=torch.bool, device=s.device))
            continue
        if s.numel() % m:
            raise ValueError(f"n_m_official needs tensors whose size is a multiple of m={m}, got shape "
                             f"{tuple(s.shape)}")
        rows = s.reshape(s.shape[0], -1).t() if s.dim() == 4 else s  # (C_in·kh·kw, C_out) for a conv
        kept = _top_n_per_row(rows.contiguous().view(-1, m), n)  # groups of m in row-major order
        masks.append(kept.view(s.shape))  # the defect: the (C_in·kh·kw, C_out) layout read as [C_out, ...]
    return masks


def cost_aware(scores: Sequence[Tensor], costs: Sequence, sparsity: float, granularity: Granularity = "layer",
               max_cost: float | None = None) -> list[Tensor]:
    """Structured mask chosen by score mass per unit of marginal ascent-pass cost.

    Args:
        scores: one score tensor per parameter tensor (as for :func:`structured`).
        costs: per tensor, ``(chain, own)`` (e.g. from :func:`sparsam.masks.cost.tensor_costs`), or a
            plain number (an additive cost, ``chain = 0``). The ascent cost of a set ``S`` of units
            is ``max_{t∈S} chain_t + Σ_{t∈S} own_t``: ``chain`` is paid once, by the lowest chosen
            tensor (forward and input-gradient work from its layer to the loss), ``own`` is its
            weight-gradient.
        sparsity: fraction NOT perturbed; the budget ``int((1 - sparsity) d)`` is the one of
            :func:`structured`, so the density is at most ``1 - sparsity``.
        granularity: "layer" (whole tensors) or "filter" (rows along dim 0 of tensors with >= 2
            dims, each with ``own / rows`` of the tensor's cost).
        max_cost: optional budget on the ascent cost of the chosen set (same unit as ``costs``).
            ``None``: fill the parameter budget.

    Greedy: while some unit still fits in the remaining budget(s), take the fitting unit with the
    largest ``mass / (max(0, chain - current chain) + own)`` (zero marginal cost first; ties go to
    the larger mass, then the earlier unit). Without ``max_cost`` the parameter budget is filled as
    far as units fit, so small tensors low in the network (BatchNorm parameters) are eventually
    taken and the ascent reaches the bottom: use ``max_cost`` to keep the ascent cheap.
    """
    _check_sparsity(sparsity)
    check_choice("granularity", granularity, ("layer", "filter"))
    if max_cost is not None:
        check_range("max_cost", max_cost, 0.0)
    if len(costs) != len(scores):
        raise ValueError(f"got {len(costs)} costs for {len(scores)} score tensors")
    units = _cost_units(scores, costs, granularity)
    masks = [torch.zeros(s.shape, dtype=torch.bool, device=s.device) for s in scores]
    if not units:
        return masks
    numel, mass, chain, own = (torch.tensor([u[k] for u in units], dtype=torch.float64) for k in range(2, 6))
    budget = float(int((1.0 - sparsity) * sum(s.numel() for s in scores)))
    room = float("inf") if max_cost is None else float(max_cost)
    free = torch.ones(len(units), dtype=torch.bool)
    paid = 0.0  # the chain cost already paid (the lowest chosen unit's)
    while True:
        marginal = (chain - paid).clamp(min=0.0) + own
        free &= (numel <= budget) & (marginal <= room * (1 + 1e-12))
        if not bool(free.any()):
            break
        ratio = torch.where(marginal > 0, mass / marginal.clamp(min=1e-300), torch.full_like(mass, float("inf")))
        best = _argmax_lex(ratio, mass, free)
        i, row, size, _, c, _ = units[best]
        free[best] = False
        budget -= size
        room -= float(marginal[best])
        paid = max(paid, c)
        if row is None:
            masks[i].fill_(True)
        else:
            masks[i][row] = True
    return masks


def _cost_units(scores: Sequence[Tensor], costs: Sequence, granularity: Granularity) -> list[tuple]:
    """Ranking units of :func:`cost_aware`: (tensor index, row or None, numel, mass, chain, own)."""
    units: list[tuple[int, int | None, int, float, float, float]] = []
    for i, (s, c) in enumerate(zip(scores, costs)):
        chain, own = (0.0, float(c)) if isinstance(c, (int, float)) else (float(c[0]), float(c[1]))
        s = s.detach().float()
        if granularity == "filter" and s.dim() >= 2:
            rows = s.reshape(s.shape[0], -1)
            mass = rows.sum(1).tolist()
            units += [(i, r, rows.shape[1], mass[r], chain, own / s.shape[0]) for r in range(s.shape[0])]
        else:
            units.append((i, None, s.numel(), float(s.sum()), chain, own))
    return units


def _argmax_lex(first: Tensor, second: Tensor, allowed: Tensor) -> int:
    """Allowed index maximising ``first``, then ``second``, then the earliest index."""
    first = first.masked_fill(~allowed, -float("inf"))
    tied = allowed & (first == first.max())
    second = second.masked_fill(~tied, -float("inf"))
    return int((tied & (second == second.max())).nonzero()[0, 0])


def norm_only(is_norm: Sequence[bool], like: Sequence[Tensor]) -> list[Tensor]:
    """SAM-ON's pattern (Mueller et al., NeurIPS 2023): every entry of the tensors flagged in ``is_norm``
    (the affine parameters of the normalisation layers), nothing else; no score is read.

    ``like``: one tensor per flag, giving each mask its shape and device. The density is the flagged
    tensors' share of all entries (:func:`sparsam._layers.norm_parameters` finds them in a network).
    """
    if len(is_norm) != len(like):
        raise ValueError(f"is_norm has {len(is_norm)} flags for {len(like)} tensors")
    return [torch.full(t.shape, bool(flag), dtype=torch.bool, device=t.device) for flag, t in zip(is_norm, like)]


_N_M = re.compile(r"^(\d+):(\d+)$")


def parse_pattern(pattern: str) -> tuple[str, int, int]:
    """Parse ``"unstructured"``, ``"layer"``, ``"filter"`` or ``"N:M"`` into ``(kind, n, m)``."""
    match = _N_M.match(pattern) if isinstance(pattern, str) else None
    if match:
        n, m = int(match.group(1)), int(match.group(2))
        if not 1 <= n <= m:
            raise ValueError(f"pattern N:M needs 1 <= N <= M, got {pattern!r}")
        return "n:m", n, m
    if pattern not in ("unstructured", "layer", "filter"):
        raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}, got {pattern!r}")
    return pattern, 0, 0


def from_pattern(scores: Sequence[Tensor], pattern: str, sparsity: float, dim: NMDim = "in") -> list[Tensor]:
    """Build the mask of ``pattern`` from ``scores``; N:M patterns fix the density to n/m themselves."""
    kind, n, m = parse_pattern(pattern)
    if kind == "unstructured":
        return unstructured(scores, sparsity)
    if kind in ("layer", "filter"):
        return structured(scores, sparsity, kind)  # type: ignore[arg-type]  # "layer" or "filter"
    return n_m(scores, n, m, dim=dim)


def n_m_sparsity(pattern: str) -> float | None:
    """Nominal sparsity ``1 - n/m`` of an N:M pattern, ``None`` for the others."""
    kind, n, m = parse_pattern(pattern)
    return None if kind != "n:m" else 1.0 - n / m

