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

The official code serves N:M and layer-structured masks only; :func:`check_pattern` rejects the
unstructured pattern (``"filter"`` masks, structured along output channels, are served too).
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..masks import patterns

__all__ = ["check_pattern", "semi_structured_ok", "implicit_linear", "implicit_conv2d", "implicit_ascent"]

SERVED = ("layer", "filter", "N:M")


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


class _SparseBackprop(torch.autograd.Function):
    """Dense linear/conv2d forward; input gradient through ``W⊙M``, weight and bias gradients dense."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, masked: Tensor, conv: tuple | None,
                sparse_t: Any) -> Tensor:
        ctx.conv, ctx.sparse_t, ctx.has_bias = conv, sparse_t, bias is not None
        ctx.save_for_backward(x, weight, masked)
        if conv is None:
            return F.linear(x, weight, bias)
        stride, padding, dilation, groups = conv
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        x, weight, masked = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = gw = gb = None
        if ctx.conv is None:
            g2, x2 = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
            if need_x:
                gx = _sparse_input_grad(g2, ctx.sparse_t, x.shape)
                if gx is None:
                    gx = g.matmul(masked)
            if need_w:
                gw = g2.t().matmul(x2)
            if need_b:
                gb = g2.sum(0)
        else:
            stride, padding, dilation, groups = ctx.conv
            args = (stride, padding, dilation, False, [0, 0], groups)
            bias_sizes = [weight.shape[0]] if ctx.has_bias else None
            if need_x:
                gx = torch.ops.aten.convolution_backward(g, x, masked, None, *args, [True, False, False])[0]
            if need_w or need_b:
                _, gw, gb = torch.ops.aten.convolution_backward(g, x, weight, bias_sizes, *args,
                                                                [False, need_w, need_b])
        return gx, gw, gb, None, None, None


def _sparse_input_grad(g2: Tensor, sparse_t: Any, shape: torch.Size) -> Tensor | None:
    """``dY (W⊙M)`` with the 2:4 operand ``(W⊙M)ᵀ``; ``None`` if there is none or the kernel refuses."""
    if sparse_t is None:
        return None
    try:
        return F.linear(g2, sparse_t).reshape(shape)
    except (RuntimeError, NotImplementedError) as err:  # shape/kernel limits: dense instead
        _warn_dense(err)
        return None


def _warn_dense(err: Exception) -> None:
    """Warn (Python shows it once per call site by default) that the sparse kernel was not used."""
    warnings.warn(f"2:4 semi-structured input-gradient failed ({err}); using the dense fallback", stacklevel=3)


def _masked(weight: Tensor, mask: Tensor) -> Tensor:
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
            _warn_dense(err)
    return _SparseBackprop.apply(x, weight, bias, masked, None, sparse_t)


def implicit_conv2d(layer: nn.Conv2d, x: Tensor, mask: Tensor) -> Tensor:
    """``layer(x)`` whose input gradient goes through ``layer.weight ⊙ mask`` (any stride, padding,
    dilation, groups and padding mode)."""
    padding = layer.padding
    if layer.padding_mode != "zeros" or isinstance(padding, str):  # pad outside, as nn.Conv2d does
        mode = "constant" if layer.padding_mode == "zeros" else layer.padding_mode
        x, padding = F.pad(x, layer._reversed_padding_repeated_twice, mode=mode), (0, 0)
    conv = (list(layer.stride), list(padding), list(layer.dilation), layer.groups)
    return _SparseBackprop.apply(x, layer.weight, layer.bias, _masked(layer.weight, mask), conv, None)


def _implicit_forward(layer: nn.Module, mask: Tensor, sparse: bool | None) -> Callable[[Tensor], Tensor]:
    if isinstance(layer, nn.Linear):
        return lambda x: implicit_linear(x, layer.weight, mask, layer.bias, sparse)
    return lambda x: implicit_conv2d(layer, x, mask)


@contextlib.contextmanager
def implicit_ascent(model: nn.Module, masks: Mapping[int, Tensor] | Sequence[tuple[Tensor, Tensor]],
                    sparse: bool | None = None) -> Iterator[None]:
    """Ascent-pass context: every ``nn.Linear``/``nn.Conv2d`` of ``model`` whose weight has a mask
    back-propagates sparsely (see the module docstring); other modules are untouched.

    ``masks`` maps ``id(weight)`` to its mask, or is a sequence of ``(weight, mask)`` pairs;
    ``sparse`` is passed to :func:`implicit_linear`.
    """
    if not isinstance(masks, Mapping):
        masks = {id(p): m for p, m in masks}
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and id(m.weight) in masks]
    for layer in layers:
        layer.forward = _implicit_forward(layer, masks[id(layer.weight)], sparse)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward
