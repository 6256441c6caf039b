"""The theoretical FLOPs of a sparse SAM step: what an ideal sparse kernel would skip in the ascent pass.

The papers claim that a sparse perturbation saves training FLOPs *in theory*. Which products shrink with
the mask, for a chain of layers ``l`` with forward ``F_l``, input-gradient ``Bi_l`` and weight-gradient
``Bw_l`` (:class:`sparsam.masks.cost.LayerCost`, counted in FLOPs), and ``d_l`` the fraction of layer
``l``'s weight entries the mask keeps:

* the second (descent) pass is SGD's, dense: ``Σ F_l + Σ Bw_l + Σ_{l > first} Bi_l``;
* the ascent pass's forward is dense from the lowest layer ``j`` holding a perturbed entry (the loss
  needs it), and so are the input-gradients above ``j``: ``W^T δ`` needs every weight, masked or not;
* explicit form (the NeurIPS paper's ``ε = m ⊙ ρ g / ‖g‖``): only the kept entries of each weight-gradient
  are needed, ``Σ d_l Bw_l``: an ideal kernel computes each kept entry of ``δ x^T`` alone;
* implicit form (TPAMI: input-gradients through ``W ⊙ M``, dense weight-gradients): the input-gradients
  of the masked convolutions and linear layers shrink, ``Σ_{l > j} d'_l Bi_l`` with ``d'_l`` the kept
  fraction of layer ``l``'s weight matrix (1 for the other layers: their input-gradients are not masked),
  and every weight-gradient from ``j`` up stays dense.

So an ascent pass costs between ``F`` (everything skipped but the forward) and SGD's ``F + Bi + Bw``; at
best a sparse step saves the weight-gradient (explicit) or input-gradient (implicit) share of one pass.
:func:`ideal_step_cost` is that accounting; what today's kernels actually skip (whole tensors or rows only,
:func:`sparsam.masks.cost.step_cost` with ``method="sparse"``) is the realised cost, a separate number.
"""

from __future__ import annotations

from typing import Literal, Sequence

from torch import Tensor

from .._checks import check_choice
from .cost import LayerCost, step_cost

__all__ = ["entry_fractions", "weight_fractions", "ideal_step_cost"]

Form = Literal["explicit", "implicit"]


def entry_fractions(layers: Sequence[LayerCost], params: Sequence[Tensor], masks: Sequence[Tensor]) -> list[float]:
    """Per layer, the fraction of its weight entries the mask keeps (0 for a layer without parameters)."""
    if len(params) != len(masks):
        raise ValueError(f"got {len(masks)} masks for {len(params)} parameters")
    kept = {id(p): (int(m.sum()), m.numel()) for p, m in zip(params, masks)}
    fractions = []
    for layer in layers:
        counts = [kept.get(id(p), (0, p.numel())) for p in layer.params]
        total = sum(n for _, n in counts)
        fractions.append(sum(k for k, _ in counts) / total if total else 0.0)
    return fractions


def weight_fractions(layers: Sequence[LayerCost], params: Sequence[Tensor], masks: Sequence[Tensor]) -> list[float]:
    """Per layer, the kept fraction of its weight matrices (tensors of two or more dimensions), whose transpose
    the implicit form's input-gradient multiplies by; 1 for a layer without one (its input-gradient is dense)."""
    matrices = [[p for p in layer.params if p.dim() >= 2] for layer in layers]
    masked = entry_fractions([LayerCost(l.name, l.stage, m, 0, 0, 0) for l, m in zip(layers, matrices)], params,
                             masks)
    return [f if m else 1.0 for f, m in zip(masked, matrices)]


def ideal_step_cost(layers: Sequence[LayerCost], params: Sequence[Tensor], masks: Sequence[Tensor],
                    form: Form = "explicit") -> float:
    """FLOPs of one sparse SAM step when an ideal kernel skips every product the mask makes unnecessary
    (see the module docstring): the dense descent pass plus the ascent pass of ``form``."""
    check_choice("form", form, ("explicit", "implicit"))
    fractions = entry_fractions(layers, params, masks)
    sgd = step_cost(layers)
    j = next((i for i, f in enumerate(fractions) if f > 0), None)
    if j is None:  # nothing perturbed: no ascent pass at all
        return sgd
    ascent = sum(layer.forward for layer in layers[j:])
    if form == "explicit":
        ascent += sum(layer.input_grad for layer in layers[j + 1:])
        ascent += sum(f * layer.weight_grad for f, layer in zip(fractions, layers))
    else:
        through = weight_fractions(layers, params, masks)
        ascent += sum(f * layer.input_grad for f, layer in zip(through[j + 1:], layers[j + 1:]))
        ascent += sum(layer.weight_grad for layer in layers[j:])
    return sgd + ascent
