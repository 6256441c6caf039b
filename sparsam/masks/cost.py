"""Cost model of a (sparse) SAM step, per layer, and the per-tensor costs of the cost-aware mask rule.

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

:func:`tensor_costs` gives every parameter tensor its ``(chain, own)`` ascent cost: ``chain`` the
forward and input-gradient work from its layer to the loss (paid once, by the lowest perturbed
tensor), ``own`` its weight-gradient. The mask rule that ranks tensors or filters by score per unit
of that cost is :func:`sparsam.masks.patterns.cost_aware` (re-exported here as ``cost_aware_mask``).
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

from .._checks import check_choice, check_int
from .._layers import full_rows
from .._timing import timed
from .._types import CostUnit, StepMethod
from .patterns import cost_aware as cost_aware_mask

__all__ = ["LayerCost", "layer_costs", "tensor_costs", "step_cost", "mask_fractions",
           "cost_aware_mask"]
# The version of what this module computes (stored in every run record that uses it,
# sparsam.experiment.optimizers.numerics): raise it when a change alters any number it produces;
# tests/optim/test_numerics.py fingerprints each version.
NUMERICS = 1


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


def _measure(fn: Callable[[], None], unit: str, repeats: int, device: torch.device,
             timer: Callable[[], float]) -> float:
    if unit == "flops":
        with FlopCounterMode(display=False) as counter:
            fn()
        return float(counter.get_total_flops())
    fn()  # warm-up
    return statistics.median(timed(fn, device, timer)[0] for _ in range(repeats))


def layer_costs(stages: Sequence[nn.Module], x: Tensor, unit: CostUnit = "flops", repeats: int = 5,
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
    originals: dict[int, list[Tensor]] = {id(m): [p for p in m.parameters(recurse=False)]
                                          for s in stages for _, m in _leaves(s)}
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
        elif kept == m.numel() or (rows := full_rows(m)) is None:
            frac_of[id(p)] = 1.0
        else:
            frac_of[id(p)] = float(rows.float().mean())
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


def step_cost(layers: Sequence[LayerCost], method: StepMethod = "sgd", params: Sequence[Tensor] | None = None,
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
