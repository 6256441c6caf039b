"""FLOPs by the layer formula, for the tests of the cost model and of the harness's FLOP counts.

Independent of ``torch.utils.flop_counter`` and of ``sparsam.masks.cost``: the forward FLOPs of a call
are computed from its shapes, ``2·B·C_out·H_out·W_out·(C_in/groups)·k_h·k_w`` for a convolution and
``2·rows·in·out`` for a linear layer (multiply and add counted apart, as FlopCounterMode does; other
layers, biases and elementwise work: 0). Each backward product (input-gradient, weight-gradient) costs
what the forward does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn


@dataclass
class Call:
    """One leaf-module call: the module, its parameters and its forward FLOPs by the formula."""

    module: nn.Module
    params: list[Tensor]
    flops: int


def formula(module: nn.Module, inp: Tensor, out: Tensor) -> int:
    """Forward FLOPs of one call of ``module`` by the layer formula (0 unless conv or linear)."""
    if isinstance(module, nn.Conv2d):
        c_out, c_in_per_group, kh, kw = module.weight.shape
        batch, _, h_out, w_out = out.shape
        return 2 * batch * c_out * h_out * w_out * c_in_per_group * kh * kw
    if isinstance(module, nn.Linear):
        rows = inp.numel() // module.in_features
        return 2 * rows * module.in_features * module.out_features
    return 0


def calls(stages: Sequence[nn.Module], x: Tensor) -> list[Call]:
    """Every leaf-module call of running ``stages`` as a chain on ``x``, in execution order (run in eval
    mode, so that BatchNorm statistics stay as they are; the modes are restored)."""
    found: list[Call] = []
    handles = []
    modes = [(m, m.training) for stage in stages for m in stage.modules()]
    for stage in stages:
        stage.eval()
    for stage in stages:
        for module in stage.modules():
            if not list(module.children()):
                def hook(mod, args, out):
                    found.append(Call(mod, [p for p in mod.parameters(recurse=False) if p.requires_grad],
                                      formula(mod, args[0], out)))
                handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            h = x
            for stage in stages:
                h = stage(h)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.train(training)
    return found


def forward(chain: Sequence[Call]) -> int:
    return sum(c.flops for c in chain)


def sgd_step(chain: Sequence[Call]) -> int:
    """Forward, weight-gradients and input-gradients, except the input-gradient of the first layer with
    parameters (nothing below it needs one): ``3·F − F_first``."""
    first = next(c for c in chain if c.params)
    return 3 * forward(chain) - first.flops


def _fraction(mask: Tensor) -> float:
    """Share of a tensor's weight-gradient a mask needs: 0 if nothing is kept, kept rows / rows when
    whole rows along dim 0 are kept, else 1."""
    if not mask.any():
        return 0.0
    if mask.dim() < 2:
        return 1.0
    rows = mask.reshape(mask.shape[0], -1)
    if torch.equal(rows.all(1), rows.any(1)):
        return int(rows.all(1).sum()) / rows.shape[0]
    return 1.0


def sparse_step(chain: Sequence[Call], params: Sequence[Tensor], masks: Sequence[Tensor]) -> float:
    """An SGD step plus a sparse ascent pass: the forward from the lowest perturbed layer ``j`` up, the
    input-gradients above ``j`` and each layer's needed share of its weight-gradient (a layer's tensors
    share it in proportion to their sizes)."""
    share = {id(p): _fraction(m) for p, m in zip(params, masks)}
    fractions = [sum(share.get(id(p), 0.0) * p.numel() for p in c.params) / sum(p.numel() for p in c.params)
                 if c.params else 0.0 for c in chain]
    j = next((i for i, f in enumerate(fractions) if f > 0), None)
    if j is None:
        return float(sgd_step(chain))
    ascent = forward(chain[j:]) + forward(chain[j + 1:]) + sum(f * c.flops for f, c in zip(fractions, chain))
    return sgd_step(chain) + ascent


def ideal_step(chain: Sequence[Call], params: Sequence[Tensor], masks: Sequence[Tensor], form: str) -> float:
    """An SGD step plus the ascent pass an ideal sparse kernel runs: the forward from the lowest perturbed layer
    ``j`` up; explicit form, the input-gradients above ``j`` and each layer's weight-gradient in proportion to
    its kept entries; implicit form, each input-gradient above ``j`` in proportion to the kept entries of the
    layer's weight matrix (1 for a layer without one) and every weight-gradient from ``j`` up whole."""
    kept = {id(p): float(m.sum()) for p, m in zip(params, masks)}

    def entries(ps: Sequence[Tensor]) -> float:
        total = sum(p.numel() for p in ps)
        return sum(kept.get(id(p), 0.0) for p in ps) / total if total else 0.0

    fractions = [entries(c.params) for c in chain]
    j = next((i for i, f in enumerate(fractions) if f > 0), None)
    if j is None:
        return float(sgd_step(chain))
    ascent = forward(chain[j:])
    if form == "explicit":
        ascent += forward(chain[j + 1:]) + sum(f * c.flops for f, c in zip(fractions, chain))
    else:
        matrices = [[p for p in c.params if p.dim() >= 2] for c in chain]
        ascent += sum((entries(m) if m else 1.0) * c.flops for m, c in zip(matrices[j + 1:], chain[j + 1:]))
        ascent += forward(chain[j:])
    return sgd_step(chain) + ascent
