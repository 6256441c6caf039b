"""One masked ``nn.Linear``/``nn.Conv2d`` backward and one patched-forward context, for every ascent pass
that back-propagates through a layer differently from autograd's default.

:class:`MaskedLayer` runs the layer's DENSE forward and, in the backward,

* forms the input gradient through ``input_weight`` (``dX = dY · W'``; ``W' = W⊙M`` for the implicit
  form of :mod:`sparsam.optim.implicit`, ``W' = W`` otherwise), on a 2:4 semi-structured operand
  ``(W⊙M)ᵀ`` when one is given (linear layers; dense fallback with a warning if the kernel refuses);
* forms the weight gradient densely, or for the kept output rows only (``rows``: the filter masks of
  :mod:`sparsam.optim.sparse_ascent`; zero elsewhere), and the bias gradient densely.

:func:`patched_forwards` swaps modules' ``forward`` for the duration of a ``with`` block and puts the
originals back however the block ends; :func:`masked_linear` and :func:`masked_conv2d` are the masked
forwards that the implicit form and the sparse ascent pass put there.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterator, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._layers import pads_inside

__all__ = ["MaskedLayer", "ConvArgs", "conv_call", "masked_linear", "masked_conv2d", "patched_forwards",
           "warn_dense"]

ConvArgs = tuple[list[int], list[int], list[int], int]
"""``(stride, padding, dilation, groups)`` of a 2-D convolution whose input is already padded as needed."""


class MaskedLayer(torch.autograd.Function):
    """Dense linear/conv2d forward; input gradient through ``input_weight`` (``None``: the weight itself),
    weight gradient dense or for ``rows`` only, bias gradient dense."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Optional[Tensor], input_weight: Optional[Tensor],
                rows: Optional[Tensor], conv: Optional[ConvArgs], sparse_t: Any) -> Tensor:
        ctx.conv, ctx.sparse_t, ctx.has_bias = conv, sparse_t, bias is not None
        ctx.save_for_backward(x, weight, input_weight, rows)
        if conv is None:
            return F.linear(x, weight, bias)
        stride, padding, dilation, groups = conv
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Optional[Tensor], ...]:
        g = grads[0]
        x, weight, input_weight, rows = ctx.saved_tensors
        w_in = weight if input_weight is None else input_weight
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = gw = gb = None
        if ctx.conv is None:
            g2, x2 = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
            if need_x:
                gx = _sparse_input_grad(g2, ctx.sparse_t, x.shape)
                if gx is None:
                    gx = g.matmul(w_in)
            if need_w:
                if rows is None:
                    gw = g2.t().matmul(x2)
                else:
                    gw = weight.new_zeros(weight.shape).index_copy_(0, rows, g2.index_select(1, rows).t().matmul(x2))
            if need_b:
                gb = g2.sum(0)
        else:
            stride, padding, dilation, groups = ctx.conv
            args = (stride, padding, dilation, False, [0] * len(stride), groups)
            if need_x:
                gx = torch.ops.aten.convolution_backward(g, x, w_in, None, *args, [True, False, False])[0]
            if rows is None:
                if need_w or need_b:
                    bias_sizes = [weight.shape[0]] if ctx.has_bias else None
                    _, gw, gb = torch.ops.aten.convolution_backward(g, x, weight, bias_sizes, *args,
                                                                    [False, need_w, need_b])
            else:
                if need_w:
                    kept = torch.ops.aten.convolution_backward(g.index_select(1, rows), x, weight.index_select(0, rows),
                                                               None, *args, [False, True, False])[1]
                    gw = weight.new_zeros(weight.shape).index_copy_(0, rows, kept)
                if need_b:
                    gb = g.sum((0, 2, 3))
        return gx, gw, gb, None, None, None, None


def _sparse_input_grad(g2: Tensor, sparse_t: Any, shape: torch.Size) -> Tensor | None:
    """``dY (W⊙M)`` with the 2:4 operand ``(W⊙M)ᵀ``; ``None`` if there is none or the kernel refuses."""
    if sparse_t is None:
        return None
    try:
        return F.linear(g2, sparse_t).reshape(shape)
    except (RuntimeError, NotImplementedError) as err:  # shape/kernel limits: dense instead
        warn_dense(err)
        return None


def warn_dense(err: Exception) -> None:
    """Warn (Python shows it once per call site by default) that the sparse kernel was not used."""
    warnings.warn(f"2:4 semi-structured input-gradient failed ({err}); using the dense fallback", stacklevel=3)


def conv_call(layer: nn.Conv2d, x: Tensor) -> tuple[Tensor, ConvArgs]:
    """The input and :data:`ConvArgs` with which ``F.conv2d`` computes ``layer(x)``: a layer that does not
    :func:`~sparsam._layers.pads_inside` has its input padded here, as ``nn.Conv2d`` does."""
    padding = layer.padding
    if not pads_inside(layer):
        mode = "constant" if layer.padding_mode == "zeros" else layer.padding_mode
        x, padding = F.pad(x, layer._reversed_padding_repeated_twice, mode=mode), (0, 0)
    return x, (list(layer.stride), list(padding), list(layer.dilation), layer.groups)  # type: ignore[arg-type]


def masked_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, *, input_weight: Tensor | None = None,
                  rows: Tensor | None = None, sparse_t: Any = None) -> Tensor:
    """``F.linear(x, weight, bias)`` with the backward of :class:`MaskedLayer`."""
    return MaskedLayer.apply(x, weight, bias, input_weight, rows, None, sparse_t)


def masked_conv2d(layer: nn.Conv2d, x: Tensor, *, input_weight: Tensor | None = None,
                  rows: Tensor | None = None) -> Tensor:
    """``layer(x)`` with the backward of :class:`MaskedLayer` (kept ``rows`` need one group)."""
    if rows is not None and layer.groups != 1:
        raise ValueError(f"rows: a kept-rows weight gradient needs groups=1, the layer has groups={layer.groups}")
    x, conv = conv_call(layer, x)
    return MaskedLayer.apply(x, layer.weight, layer.bias, input_weight, rows, conv, None)


@contextlib.contextmanager
def patched_forwards(forwards: Mapping[nn.Module, Callable[..., Any]]) -> Iterator[None]:
    """Within the block, module ``m`` runs ``forwards[m]`` instead of its ``forward``; afterwards each module
    has its own ``forward`` again (an instance attribute it had before is put back)."""
    saved = {m: m.__dict__.get("forward") for m in forwards}
    for module, forward in forwards.items():
        module.forward = forward
    try:
        yield
    finally:
        for module, before in saved.items():
            if before is None:
                del module.forward
            else:
                module.forward = before
