"""Gradient accumulation: one SAM step over k micro-batches of a batch that does not fit at once.

Every optimizer here reads the gradients left in ``.grad`` and nothing else, so the step protocol
accumulates by construction: back-propagate each micro-batch's loss, weighted by its share of the
batch, in the ascent pass (each micro-batch inside its own ``with opt.ascent_pass():``, which every
optimizer accepts and :class:`~sparsam.optim.sparse_ascent.SparseAscentSAM` needs), call
``first_step``, back-propagate the same micro-batches at ``w + ε`` in the same order, call
``second_step``. The summed gradients are the batch's mean-loss gradients, so ε and the base step are
those of the whole batch (to rounding, for a network whose output for a sample does not depend on the
other samples of its batch; BatchNorm in training mode normalises each micro-batch by its own
statistics, so there the step is that of k smaller batches). Masks count optimizer steps, not
micro-batches: SSAM-F draws its Fisher samples and SSAM-D updates its mask (from the accumulated
ascent gradient) once per step, as without accumulation. With ``SAM`` and ``SSAM``, ``step(closure)``
takes the same step when the closure loops over the micro-batches::

    for x, y in loader:
        parts = micro_batches(x, y, k)
        for xb, yb, weight in parts:
            with opt.ascent_pass():
                (weight * loss_fn(model(xb), yb)).backward()
        opt.first_step(zero_grad=True)
        for xb, yb, weight in parts:
            (weight * loss_fn(model(xb), yb)).backward()
        opt.second_step(zero_grad=True)
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from .._checks import check_int

__all__ = ["MicroBatch", "micro_batches"]


class MicroBatch(NamedTuple):
    """A slice of a batch and the weight of its mean loss: its share of the batch's samples."""

    x: Tensor
    y: Tensor
    weight: float


def micro_batches(x: Tensor, y: Tensor, k: int) -> list[MicroBatch]:
    """``(x, y)`` split along dim 0 into ``k`` micro-batches of near-equal size (fewer when the batch holds
    fewer than ``k`` samples), each with ``weight = len(slice) / len(x)``.

    For a loss averaged over its batch, ``Σ weight · loss(slice)`` is the batch's mean loss, and so its
    gradient; the weights are exact for unequal slices too (an epoch's last, smaller batch).
    """
    check_int("k", k, 1)
    if len(x) != len(y):
        raise ValueError(f"x and y must hold the same number of samples, got {len(x)} and {len(y)}")
    if len(x) == 0:
        raise ValueError("the batch is empty: x holds no sample")
    parts = min(k, len(x))
    return [MicroBatch(xb, yb, len(xb) / len(x)) for xb, yb in zip(x.tensor_split(parts), y.tensor_split(parts))]
