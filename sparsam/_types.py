"""Types shared by the library's layers: the loss signature and the string options as ``Literal`` types.

Each ``Literal`` lists exactly the values its function accepts (``typing.get_args`` gives them for the
run-time check), so a type checker catches a misspelt option before the one-line ``ValueError`` does.
Mask patterns stay ``str``: ``"N:M"`` patterns such as ``"2:4"`` are an open family.
"""

from __future__ import annotations

from typing import Callable, Literal

from torch import Tensor

__all__ = ["LossFn", "Normalize", "Form", "NMDim", "Granularity", "UpdateUnit", "FirstMask", "FisherMode",
           "FisherMethod", "Criterion", "CostUnit", "StepMethod", "AscentKind"]

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``loss_fn(outputs, targets)``, averaged over the batch (``torch.nn.functional.cross_entropy``)."""

Normalize = Literal["full", "masked"]
"""SSAM's ε normalisation: by the full gradient's norm (the official code) or by the masked one's."""

Form = Literal["explicit", "implicit"]
"""SSAM's form: mask ε, or back-propagate the ascent pass through ``W⊙M``."""

NMDim = Literal["in", "out"]
"""Grouping dimension of an N:M mask: along a weight's input or output side."""

Granularity = Literal["layer", "filter"]
"""Unit of a structured mask: a whole tensor, or one row along dim 0 (an output channel)."""

UpdateUnit = Literal["steps", "epochs"]
"""What a mask strategy's ``update_every`` counts."""

FirstMask = Literal["fisher", "zeros"]
"""SSAM-F's mask before its first update: Fisher scores, or all zeros (the official code)."""

FisherMode = Literal["functional", "official"]
"""SSAM-F's Fisher pass: batched and side-effect free, or the official batch-1 train-mode loop."""

FisherMethod = Literal["auto", "per_layer", "vmap"]
"""How :func:`sparsam.masks.fisher.fisher_scores` forms per-sample gradients."""

Criterion = Literal["gradient", "weight", "random"]
"""SSAM-D's drop and grow criteria."""

CostUnit = Literal["flops", "seconds"]
"""Unit of :func:`sparsam.masks.cost.layer_costs`."""

StepMethod = Literal["sgd", "sam", "sparse"]
"""The step :func:`sparsam.masks.cost.step_cost` prices."""

AscentKind = Literal["none", "whole", "rows", "dense"]
"""How the sparse ascent pass treats one parameter's mask (see :class:`sparsam.optim.sparse_ascent.AscentPlan`)."""
