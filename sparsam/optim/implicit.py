"""The implicit form of SSAM (TPAMI 2025): sparse back-propagation in the ascent pass.

As the official code defines it (Mi-Peng/Systematic-Investigation-of-Sparse-Perturbed-Sharpness-
Aware-Minimization-Optimizer, commit 9895bb4: ``models/nm_linear.py`` ``Matmul_NMBP``,
``models/nm_conv.py`` ``MaskedMatMulConv``), the ascent pass of a masked ``nn.Linear`` or
``nn.Conv2d`` with weight ``W`` and mask ``M``

* runs the DENSE forward ``Y = f(X, W)`` (so the loss and the BatchNorm statistics are SAM's);
* back-propagates the input gradient through the masked weight, ``dX = dY · (W⊙M)``;
* keeps the weight gradient dense, ``dW = dYᵀ X``, from the dense forward's activations and the
  output gradients that arrived through the masked path (the bias gradient likewise).

The resulting gradient ``g̃`` gives ``ε = ρ g̃ / ‖g̃‖``, which is not masked again; parameters other
than conv/linear weights get their ``g̃`` unmasked. The sparsity pays in ``dX``: with a 2:4 mask
along the output dimension (``masks.n_m(..., dim="out")``) the input gradient of an ``nn.Linear``
runs as a 2:4 semi-structured sparse matmul on GPUs that support it (dense elsewhere, same values).

The backward is :class:`sparsam.optim.masked_layer.MaskedLayer` (with ``input_weight = W⊙M``), swapped in
by :func:`sparsam.optim.masked_layer.patched_forwards`. The official code serves N:M and layer-structured
masks only; :func:`check_pattern` rejects the
unstructured pattern (``"filter"`` masks, structured along output channels, are served too).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator, Mapping

import torch
from torch import Tensor, nn

from ..masks import patterns
from .masked_layer import masked_conv2d, masked_linear, patched_forwards, warn_dense

__all__ = ["check_pattern", "semi_structured_ok", "implicit_linear", "implicit_conv2d", "implicit_ascent"]

SERVED = ("layer", "filter", "N:M")
# The version of what this module computes (stored in every run record that uses it,
# sparsam.experiment.optimizers.numerics): raise it when a change alters any number it produces;
# tests/optim/test_numerics.py fingerprints each version.
NUMERICS = 1


def check_pattern(pattern: str) -> str:
    """``pattern`` if the implicit form can serve it, else a ValueError naming the allowed ones."""
    if patterns.parse_pattern(pattern)[0] == "unstructured":
        raise ValueError(f"form='implicit' serves mask patterns {', '.join(SERVED)} (the official code: "
                         f"structured and N:M), got {pattern!r}")
    return pattern


def semi_structured_ok(weight: Tensor, mask: Tensor) -> bool:
    """Whether ``(W⊙M)ᵀ`` can be a 2:4 semi-structured operand on this device.

    Needs CUDA with compute capability >= 8.0, fp16/bf16 weights of an ``nn.Linear``, both
    dimensions multiples of 64 and the mask 2:4 along the OUTPUT dimension
    (``masks.n_m(..., dim="out")``), the reduction dimension of the input gradient ``dY (W⊙M)``.
    """
    if not (weight.is_cuda and weight.dtype in (torch.float16, torch.bfloat16) and weight.dim() == 2):
        return False
    if not hasattr(torch.sparse, "to_sparse_semi_structured"):
        return False
    if torch.cuda.get_device_capability(weight.device)[0] < 8:
        return False
    out_f, in_f = weight.shape
    if out_f % 64 or in_f % 64:
        return False
    groups = mask.t().reshape(in_f, out_f // 4, 4)
    return bool((groups.sum(-1) <= 2).all())


def _masked(weight: Tensor, mask: Tensor) -> Tensor:
    """``W⊙M`` outside autograd: the input gradient's operand."""
    return weight.detach() * mask.to(weight.dtype)


def implicit_linear(x: Tensor, weight: Tensor, mask: Tensor, bias: Tensor | None = None,
                    sparse: bool | None = None) -> Tensor:
    """``F.linear(x, weight, bias)`` whose input gradient goes through ``weight ⊙ mask``.

    ``sparse=None`` uses a 2:4 semi-structured kernel for the input gradient when
    :func:`semi_structured_ok`; ``False`` forces the dense computation; ``True`` tries the kernel and
    falls back densely with a warning.
    """
    masked = _masked(weight, mask)
    sparse_t = None
    if semi_structured_ok(weight, mask) if sparse is None else sparse:
        try:
            sparse_t = torch.sparse.to_sparse_semi_structured(masked.t().contiguous())
        except (RuntimeError, NotImplementedError, ValueError) as err:
            warn_dense(err)
    return masked_linear(x, weight, bias, input_weight=masked, sparse_t=sparse_t)


def implicit_conv2d(layer: nn.Conv2d, x: Tensor, mask: Tensor) -> Tensor:
    """``layer(x)`` whose input gradient goes through ``layer.weight ⊙ mask`` (any stride, padding,
    dilation, groups and padding mode)."""
    return masked_conv2d(layer, x, input_weight=_masked(layer.weight, mask))


def _implicit_forward(layer: nn.Linear | nn.Conv2d, mask: Tensor, sparse: bool | None) -> Callable[[Tensor], Tensor]:
    if isinstance(layer, nn.Linear):
        linear = layer
        return lambda x: implicit_linear(x, linear.weight, mask, linear.bias, sparse)
    conv = layer
    return lambda x: implicit_conv2d(conv, x, mask)


@contextlib.contextmanager
def implicit_ascent(model: nn.Module, masks: Mapping[int, Tensor] | Iterable[tuple[Tensor, Tensor]],
                    sparse: bool | None = None) -> Iterator[None]:
    """Ascent-pass context: every ``nn.Linear``/``nn.Conv2d`` of ``model`` whose weight has a mask
    back-propagates sparsely (see the module docstring); other modules are untouched.

    ``masks`` maps ``id(weight)`` to its mask, or is an iterable of ``(weight, mask)`` pairs;
    ``sparse`` is passed to :func:`implicit_linear`.
    """
    by_id = masks if isinstance(masks, Mapping) else {id(p): m for p, m in masks}
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and id(m.weight) in by_id]
    with patched_forwards({layer: _implicit_forward(layer, by_id[id(layer.weight)], sparse) for layer in layers}):
        yield
