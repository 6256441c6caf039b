"""Cost model of a (sparse) SAM step, per layer, and a cost-aware structured mask.

:func:`layer_costs` runs the model once as a chain of stages, records every leaf module call in
execution order and measures, for each, the cost of its forward, of its input-gradient and of its
weight-gradient, separately: in FLOPs (``torch.utils.flop_counter.FlopCounterMode``) or in seconds
(median wall time, each piece run on its own on the recorded input). Elementwise "glue" written
inline in ``forward`` methods (residual additions, functional ReLUs) belongs to no leaf and is not
counted, so ratios of these costs are the meaningful numbers.

Costs of a step with a given mask (:func:`step_cost`), for a chain of layers ``l = 0..L-1``:

* SGD: ``Σ F_l + Σ Bw_l + Σ_{l > first layer with parameters} Bi_l``;
* SAM: twice that;
* sparse ascent (what the mask cannot skip): SGD plus ``Σ_{l >= j} F_l + Σ_{l > j} Bi_l +
  Σ_l f_l Bw_l``, where ``j`` is the first layer holding a perturbed tensor and ``f_l`` the
  fraction of layer ``l``'s weight-gradient needed (1 for whole tensors, kept rows / rows for
  filter masks, 0 when unperturbed).

:func:`cost_aware_mask` chooses whole tensors (or filters) greedily by Fisher mass per unit of
MARGINAL ascent cost, under the parameter budget of :func:`sparsam.masks.structured` and,
optionally, a budget on the ascent cost itself. The ascent
cost of a set ``S`` is ``max_{t∈S} chain_t + Σ_{t∈S} own_t``: ``chain_t`` is the forward and
input-gradient work from ``t``'s layer to the loss (paid once, by the lowest chosen tensor) and
``own_t`` its weight-gradient; :func:`tensor_costs` derives both from :func:`layer_costs`.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from ._checks import check_choice, check_int, check_range

__all__ = ["LayerCost", "layer_costs", "tensor_costs", "step_cost", "mask_fractions",
           "cost_aware_mask", "cost_aware_layer_mask"]


@dataclass
class LayerCost:
    """Cost of one leaf-module call: forward, input-gradient and weight-gradient (FLOPs or seconds)."""

    name: str
    stage: int
    params: list[Tensor]
    forward: float
    input_grad: float
    weight_grad: float


def _leaves(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in module.named_modules() if not list(m.children())]


def _record_calls(stages: Sequence[nn.Module], x: Tensor) -> list[tuple[str, int, nn.Module, Tensor]]:
    """Run the chain once (no grad) and record every leaf call: (name, stage, module, input)."""
    calls: list[tuple[str, int, nn.Module, Tensor]] = []
    handles = []
    for k, stage in enumerate(stages):
        for name, m in _leaves(stage):
            def hook(mod, args, _name=f"{k}.{name}".rstrip("."), _k=k):
                if args and isinstance(args[0], Tensor):
                    calls.append((_name, _k, mod, args[0].detach().clone()))
            handles.append(m.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            h = x
            for stage in stages:
                h = stage(h)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _measure(fn: Callable[[], None], unit: str, repeats: int, device: torch.device,
             timer: Callable[[], float]) -> float:
    if unit == "flops":
        with FlopCounterMode(display=False) as counter:
            fn()
        return float(counter.get_total_flops())
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        start = timer()
        fn()
        _sync(device)
        times.append(timer() - start)
    return statistics.median(times)


def layer_costs(stages: Sequence[nn.Module], x: Tensor, unit: str = "flops", repeats: int = 5,
                timer: Callable[[], float] = time.perf_counter) -> list[LayerCost]:
    """Per-leaf-call costs of the chain ``stages`` on the batch ``x``, in execution order.

    ``unit="flops"`` counts FLOPs (matmuls and convolutions only, as FlopCounterMode does);
    ``unit="seconds"`` times each piece (median of ``repeats``) on a copy of the modules in train
    mode, so the model's BatchNorm statistics are untouched (``timer``: ``time.perf_counter`` or
    ``time.process_time``, for CPU time). ``params`` of each entry are the
    ORIGINAL parameters of the module (to match masks against).
    """
    check_choice("unit", unit, ("flops", "seconds"))
    check_int("repeats", repeats, 1)
    originals = {id(m): [p for p in m.parameters(recurse=False)] for s in stages for _, m in _leaves(s)}
    work = copy.deepcopy(list(stages))
    for stage in work:
        stage.train()
    # map every copied leaf back to its original's parameters through the parallel module order
    origin = {}
    for s, w in zip(stages, work):
        for (_, mo), (_, mw) in zip(_leaves(s), _leaves(w)):
            origin[id(mw)] = originals[id(mo)]
    device = x.device
    costs = []
    for name, k, module, inp in _record_calls(work, x):
        params = [p for p in module.parameters(recurse=False) if p.requires_grad]
        inplace = bool(getattr(module, "inplace", False))

        def run(needs_input: bool, needs_weight: bool) -> tuple[Tensor, Tensor]:
            leaf = inp.detach().requires_grad_(needs_input)
            for p in params:
                p.requires_grad_(needs_weight)
            out = module(leaf.clone() if inplace else leaf)
            return leaf, out

        def forward() -> None:
            with torch.enable_grad():
                run(True, True)

        grad_out: list[Tensor] = []

        def backward(needs_input: bool, needs_weight: bool) -> Callable[[], None]:
            with torch.enable_grad():
                leaf, out = run(needs_input, needs_weight)
            if not grad_out:
                grad_out.append(torch.randn_like(out))
            wrt = ([leaf] if needs_input else []) + (params if needs_weight else [])

            def go() -> None:
                torch.autograd.grad(out, wrt, grad_out[0], retain_graph=True)
            return go

        fwd = _measure(forward, unit, repeats, device, timer)
        bi = _measure(backward(True, False), unit, repeats, device, timer) if inp.is_floating_point() else 0.0
        bw = _measure(backward(False, True), unit, repeats, device, timer) if params else 0.0
        for p in params:
            p.requires_grad_(True)
        costs.append(LayerCost(name, k, origin[id(module)], fwd, bi, bw))
    return costs


def _first_param_layer(layers: Sequence[LayerCost]) -> int:
    return next((i for i, layer in enumerate(layers) if layer.params), len(layers))


def mask_fractions(layers: Sequence[LayerCost], params: Sequence[Tensor],
                   masks: Sequence[Tensor] | None) -> list[float]:
    """Fraction of each layer's weight-gradient a mask needs (see the module docstring)."""
    if masks is None:
        return [0.0] * len(layers)
    frac_of = {}
    for p, m in zip(params, masks):
        kept = int(m.sum())
        if kept == 0:
            frac_of[id(p)] = 0.0
        elif kept == m.numel() or m.dim() < 2:
            frac_of[id(p)] = 1.0
        else:
            flat = m.reshape(m.shape[0], -1)
            rows_ok = bool((flat.all(1) == flat.any(1)).all())
            frac_of[id(p)] = float(flat.all(1).float().mean()) if rows_ok else 1.0
    fractions = []
    for layer in layers:
        sizes = [p.numel() for p in layer.params]
        total = sum(sizes)
        if not total:
            fractions.append(0.0)
            continue
        # weight-gradient work split across the layer's tensors in proportion to their sizes
        fractions.append(sum(frac_of.get(id(p), 0.0) * n for p, n in zip(layer.params, sizes)) / total)
    return fractions


def step_cost(layers: Sequence[LayerCost], method: str = "sgd", params: Sequence[Tensor] | None = None,
              masks: Sequence[Tensor] | None = None) -> float:
    """Ideal cost of one step: ``method`` is "sgd", "sam" or "sparse" (needs ``params`` and ``masks``)."""
    check_choice("method", method, ("sgd", "sam", "sparse"))
    first = _first_param_layer(layers)
    sgd = sum(layer.forward + layer.weight_grad for layer in layers)
    sgd += sum(layer.input_grad for layer in layers[first + 1:])
    if method == "sgd":
        return sgd
    if method == "sam":
        return 2 * sgd
    if params is None or masks is None:
        raise ValueError("method='sparse' needs params and masks")
    fractions = mask_fractions(layers, params, masks)
    j = next((i for i, f in enumerate(fractions) if f > 0), None)
    if j is None:
        return sgd
    ascent = sum(layer.forward for layer in layers[j:]) + sum(layer.input_grad for layer in layers[j + 1:])
    ascent += sum(f * layer.weight_grad for f, layer in zip(fractions, layers))
    return sgd + ascent


def tensor_costs(layers: Sequence[LayerCost], params: Sequence[Tensor]) -> list[tuple[float, float]]:
    """``(chain, own)`` ascent costs of perturbing each of ``params`` (see the module docstring).

    ``chain``: forward of the tensor's layer and of every later layer, plus the input-gradients of
    every later layer; ``own``: the tensor's share (by size) of its layer's weight-gradient.
    Tensors in no layer get ``(0, 0)``.
    """
    suffix_forward = [0.0] * (len(layers) + 1)
    suffix_input = [0.0] * (len(layers) + 1)
    for i in range(len(layers) - 1, -1, -1):
        suffix_forward[i] = suffix_forward[i + 1] + layers[i].forward
        suffix_input[i] = suffix_input[i + 1] + layers[i].input_grad
    where: dict[int, tuple[float, float]] = {}
    for i, layer in enumerate(layers):
        total = sum(p.numel() for p in layer.params)
        for p in layer.params:
            if id(p) not in where:  # first call of the layer (the lowest) decides the chain
                where[id(p)] = (suffix_forward[i] + suffix_input[i + 1], 0.0)
            chain, own = where[id(p)]
            where[id(p)] = (chain, own + layer.weight_grad * p.numel() / total)
    return [where.get(id(p), (0.0, 0.0)) for p in params]


def _unit_table(scores: Sequence[Tensor], costs: Sequence, granularity: str):
    """Ranking units: (tensor index, row or None, numel, mass, chain, own)."""
    units = []
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


def cost_aware_mask(scores: Sequence[Tensor], costs: Sequence, sparsity: float, granularity: str = "layer",
                    max_cost: float | None = None) -> list[Tensor]:
    """Structured mask chosen by Fisher mass per unit of marginal ascent-pass cost.

    Args:
        scores: one Fisher-score tensor per parameter tensor (as for :func:`sparsam.masks.structured`).
        costs: per tensor, ``(chain, own)`` from :func:`tensor_costs`, or a plain number (an
            additive cost, ``chain = 0``).
        sparsity: fraction NOT perturbed; the budget ``int((1 - sparsity) d)`` is the one of
            :func:`sparsam.masks.structured`, so the density is at most ``1 - sparsity``.
        granularity: "layer" (whole tensors) or "filter" (rows along dim 0 of tensors with >= 2
            dims, each with ``own / rows`` of the tensor's weight-gradient cost).
        max_cost: optional budget on the ascent cost ``max chain + Σ own`` of the chosen set (same
            unit as ``costs``; e.g. ``0.25 * step_cost(layers)`` for an ascent pass of at most a
            quarter of an SGD step). ``None``: fill the parameter budget.

    Greedy: while some unit still fits in the remaining budget(s), take the fitting unit with the
    largest ``mass / (max(0, chain - current chain) + own)`` (zero marginal cost first; ties go to
    the larger mass, then the earlier unit). Without ``max_cost`` the parameter budget is filled as
    far as units fit, so small tensors low in the network (BatchNorm parameters) are eventually
    taken and the ascent reaches the bottom: use ``max_cost`` to keep the ascent cheap.
    """
    check_range("sparsity", sparsity, 0.0, 1.0)
    check_choice("granularity", granularity, ("layer", "filter"))
    if max_cost is not None:
        check_range("max_cost", max_cost, 0.0)
    if len(costs) != len(scores):
        raise ValueError(f"got {len(costs)} costs for {len(scores)} score tensors")
    units = _unit_table(scores, costs, granularity)
    masks = [torch.zeros(s.shape, dtype=torch.bool, device=s.device) for s in scores]
    if not units:
        return masks
    numel = torch.tensor([u[2] for u in units], dtype=torch.float64)
    mass = torch.tensor([u[3] for u in units], dtype=torch.float64)
    chain = torch.tensor([u[4] for u in units], dtype=torch.float64)
    own = torch.tensor([u[5] for u in units], dtype=torch.float64)
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
        key = torch.stack([ratio, mass], 1)
        key[~free] = -float("inf")
        best = _argmax_lex(key)
        i, row, n, _, c, _ = units[best]
        free[best] = False
        budget -= n
        room -= float(marginal[best])
        paid = max(paid, c)
        if row is None:
            masks[i].fill_(True)
        else:
            masks[i][row] = True
    return masks


def _argmax_lex(key: Tensor) -> int:
    """Index maximising ``key[:, 0]``, then ``key[:, 1]``, then the earliest index."""
    top = key[:, 0].max()
    tied = key[:, 0] == top
    second = torch.where(tied, key[:, 1], torch.full_like(key[:, 1], -float("inf")))
    best_second = second.max()
    candidates = (second == best_second) & tied
    return int(candidates.nonzero()[0, 0])


def cost_aware_layer_mask(scores: Sequence[Tensor], costs: Sequence, sparsity: float,
                          max_cost: float | None = None) -> list[Tensor]:
    """Whole tensors by Fisher mass per marginal ascent cost (:func:`cost_aware_mask`, "layer")."""
    return cost_aware_mask(scores, costs, sparsity, "layer", max_cost)
