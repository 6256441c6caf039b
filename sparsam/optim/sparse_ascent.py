"""Sparse ascent passes whose cost falls with sparsity ("make sparsity pay").

The official SSAM code computes every gradient densely and masks ε afterwards, so a sparse step
costs as much as a SAM step. :class:`SparseAscentSAM` skips the work a structured mask makes
unnecessary in the ascent (first) pass:

* **Layer-structured masks** (whole tensors perturbed or not): the ascent pass asks autograd for
  the gradients of the perturbed tensors only; unperturbed tensors have ``requires_grad`` switched
  off during the ascent forward, so no weight gradient is formed for them and nothing is
  back-propagated below the lowest perturbed tensor.
* **Shared prefix**: the model is given as an ordered list of stages (``model(x) ==
  stages[-1](...stages[0](x))``; :func:`model_stages` splits the networks of
  :mod:`sparsam.experiment.models`). Below the lowest stage holding a perturbed tensor, ``w + ε == w``, so
  that prefix runs ONCE (grad enabled, BatchNorm statistics move once); the ascent pass runs the
  remaining stages (the suffix) on the prefix output detached, and the descent pass runs the suffix
  at ``w + ε`` on the attached prefix output and back-propagates through suffix and prefix. The
  descent gradient is exactly SAM's gradient at ``w + ε`` of the whole network.
* **Filter-structured masks** (rows along dim 0 of a conv/linear weight): the weight gradient of a
  ``nn.Conv2d``/``nn.Linear`` is computed for the kept output channels only (a weight-gradient
  convolution on the sliced ``grad_output``).

Normalisation: the sparse pass never forms the full gradient, so ``ε = ρ m⊙g/‖g‖`` (the official
code's ``normalize="full"``) is NOT computable here. ε uses ``normalize="masked"`` semantics,
``ε = ρ m⊙g/‖m⊙g‖`` with ``‖ε‖ = ρ``, identical to ``SSAM(..., normalize="masked")`` with the same
mask (bit-identical for layer-structured masks). With ``adaptive=True`` (ASAM) it is
``ε = ρ T² m⊙g/‖T m⊙g‖``.

Restrictions: masks should be layer- or filter-structured to save work (any other partial mask is
handled correctly with a dense weight gradient for that tensor); the model must be expressible as a
chain of stages, and the first stage of the suffix must not modify its input in place (checked);
mask strategies that read the clean full gradient (``DynamicMask``) are rejected; no
``GradScaler`` and no DistributedDataParallel support (bf16 autocast around
:meth:`SparseAscentSAM.step` works). The prefix is shared at stage granularity: finer stages
(one per residual block) share more.

Example::

    stages = model_stages(model)                      # [stem, block, ..., block, head]
    mask = FisherMask(model, fisher_data, sparsity=0.9, pattern="layer", steps_per_epoch=len(loader))
    opt = SparseAscentSAM(stages, torch.optim.SGD, rho=0.1, mask=mask, lr=0.05, momentum=0.9)
    for x, y in loader:
        loss = opt.step(x, y)

The implicit form, whose sparsity pays in the input gradient (2:4 semi-structured kernels on GPUs),
is :mod:`sparsam.optim.implicit`, used by ``SSAM(form="implicit")``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .sam import SAM
from ..masks.strategies import MaskStrategy

__all__ = ["SparseAscentSAM", "AscentPlan", "plan_ascent", "lowest_stage", "run_stages", "model_stages"]

LossFn = Callable[[Tensor, Tensor], Tensor]


# --------------------------------------------------------------------------------------------
# The plan: which tensors are perturbed, how, and where the suffix starts.
# --------------------------------------------------------------------------------------------

@dataclass
class AscentPlan:
    """What one mask lets the ascent pass skip.

    ``kinds[i]`` is ``"none"`` (not perturbed), ``"whole"``, ``"rows"`` (whole rows along dim 0 of a
    conv/linear weight whose weight gradient is computed for those rows only) or ``"dense"`` (any
    other partial mask: dense weight gradient, masked afterwards).
    """

    kinds: list[str]
    perturbed: list[Tensor]
    start: int  # index of the first stage of the suffix (len(stages) when nothing is perturbed)
    rows: dict[int, Tensor] = field(default_factory=dict)  # id(weight) -> kept row indices

    @property
    def perturbed_ids(self) -> set[int]:
        return {id(p) for p in self.perturbed}


def lowest_stage(stages: Sequence[nn.Module], params: Sequence[Tensor]) -> int:
    """Index of the first stage that owns any of ``params`` (``len(stages)`` when ``params`` is empty)."""
    wanted = {id(p) for p in params}
    for k, stage in enumerate(stages):
        if any(id(p) in wanted for p in stage.parameters()):
            return k
    if wanted:
        raise ValueError("some perturbed parameters belong to none of the stages")
    return len(stages)


def _row_layers(stages: Sequence[nn.Module]) -> dict[int, nn.Module]:
    """id(weight) -> layer for the conv/linear layers whose kept-rows weight gradient is supported."""
    layers = {}
    for stage in stages:
        for m in stage.modules():
            if isinstance(m, nn.Linear) or (
                    isinstance(m, nn.Conv2d) and m.groups == 1 and m.padding_mode == "zeros"
                    and not isinstance(m.padding, str)):
                layers[id(m.weight)] = m
    return layers


def plan_ascent(stages: Sequence[nn.Module], params: Sequence[Tensor], masks: Sequence[Tensor]) -> AscentPlan:
    """Classify every mask and find the first suffix stage (reads the masks: host syncs, call rarely)."""
    row_layers = _row_layers(stages)
    kinds, perturbed, rows = [], [], {}
    for p, m in zip(params, masks):
        if m.shape != p.shape:
            raise ValueError(f"mask of shape {tuple(m.shape)} for a parameter of shape {tuple(p.shape)}")
        kept = int(m.sum())
        if kept == 0:
            kinds.append("none")
            continue
        perturbed.append(p)
        if kept == m.numel():
            kinds.append("whole")
            continue
        kind = "dense"
        if m.dim() >= 2 and id(p) in row_layers:
            flat = m.reshape(m.shape[0], -1)
            full_rows = flat.all(1)
            if bool((full_rows == flat.any(1)).all()):
                kind = "rows"
                rows[id(p)] = full_rows.nonzero().squeeze(1)
        kinds.append(kind)
    return AscentPlan(kinds, perturbed, lowest_stage(stages, perturbed), rows)


def run_stages(stages: Sequence[nn.Module], h: Tensor) -> Tensor:
    """``stages[-1](...stages[0](h))``."""
    for stage in stages:
        h = stage(h)
    return h


def model_stages(model: nn.Module) -> list[nn.Module]:
    """The networks of :mod:`sparsam.experiment.models` as chains of stages sharing the model's modules.

    CIFAR ResNets: ``[stem, block, ..., block, head]``; torchvision ResNets:
    ``[stem, block, ..., block, head]``; WideResNet and VGG-BN: ``[*features, head]``, where
    ``head`` is global average pooling, flatten and the model's ``fc``. ``run_stages(stages, x)``
    equals ``model(x)``. Other models: pass the stages yourself.
    """
    def head(*first: nn.Module) -> nn.Module:
        return nn.Sequential(*first, nn.AdaptiveAvgPool2d(1), nn.Flatten(1), model.fc)

    if all(hasattr(model, a) for a in ("stem", "layers", "fc")):
        return [model.stem, *model.layers, head()]
    if all(hasattr(model, a) for a in ("conv1", "bn1", "relu", "maxpool", "layer4", "fc")):
        blocks = [b for name in ("layer1", "layer2", "layer3", "layer4") for b in getattr(model, name)]
        return [nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool), *blocks, head()]
    if all(hasattr(model, a) for a in ("features", "fc")) and isinstance(model.features, nn.Sequential):
        return [*model.features, head()]
    raise ValueError(f"no stage split known for {type(model).__name__}; pass stages=[...] yourself")


# --------------------------------------------------------------------------------------------
# Kept-rows weight gradients for filter-structured masks.
# --------------------------------------------------------------------------------------------

class _KeptRowsGrad(torch.autograd.Function):
    """conv2d/linear forward; backward forms the weight gradient of the kept output rows only."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, rows: Tensor, conv: tuple | None) -> Tensor:
        ctx.conv = conv
        ctx.save_for_backward(x, weight, rows)
        if conv is None:
            return F.linear(x, weight, bias)
        stride, padding, dilation = conv
        return F.conv2d(x, weight, bias, stride, padding, dilation)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        x, weight, rows = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = gw = gb = None
        if ctx.conv is None:
            g2, x2 = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
            if need_x:
                gx = g.matmul(weight)
            if need_w:
                kept = g2.index_select(1, rows).t().matmul(x2)
                gw = weight.new_zeros(weight.shape).index_copy_(0, rows, kept)
            if need_b:
                gb = g2.sum(0)
        else:
            stride, padding, dilation = ctx.conv
            args = (stride, padding, dilation, False, [0] * len(stride), 1)
            if need_x:
                gx = torch.ops.aten.convolution_backward(g, x, weight, None, *args, [True, False, False])[0]
            if need_w:
                kept = torch.ops.aten.convolution_backward(g.index_select(1, rows), x, weight.index_select(0, rows),
                                                           None, *args, [False, True, False])[1]
                gw = weight.new_zeros(weight.shape).index_copy_(0, rows, kept)
            if need_b:
                gb = g.sum((0, 2, 3))
        return gx, gw, gb, None, None


def _kept_rows_forward(layer: nn.Module, rows: Tensor) -> Callable[[Tensor], Tensor]:
    conv = None
    if isinstance(layer, nn.Conv2d):
        conv = (list(layer.stride), list(layer.padding), list(layer.dilation))

    def forward(x: Tensor) -> Tensor:
        return _KeptRowsGrad.apply(x, layer.weight, layer.bias, rows, conv)
    return forward


@contextlib.contextmanager
def _ascent_graph(stages: Sequence[nn.Module], plan: AscentPlan) -> Iterator[None]:
    """Ascent-forward context: only perturbed tensors require grad; kept-rows layers patched."""
    keep = plan.perturbed_ids
    switched = [p for stage in stages for p in stage.parameters() if p.requires_grad and id(p) not in keep]
    layers = _row_layers(stages)
    patched = [layers[wid] for wid in plan.rows]
    for p in switched:
        p.requires_grad_(False)
    for layer in patched:
        layer.forward = _kept_rows_forward(layer, plan.rows[id(layer.weight)])
    try:
        yield
    finally:
        for p in switched:
            p.requires_grad_(True)
        for layer in patched:
            del layer.forward


# --------------------------------------------------------------------------------------------
# The optimizer.
# --------------------------------------------------------------------------------------------

class SparseAscentSAM(SAM):
    """SSAM with ``normalize="masked"`` whose ascent pass skips what a structured mask leaves out.

    Args:
        stages: the model as an ordered chain of modules, ``model(x) == stages[-1](...stages[0](x))``
            (a CIFAR ResNet as ``[stem, block, ..., block, head]``: finer stages share more).
        base_optimizer, rho, adaptive, eta, bn_guard, base_kwargs: as for :class:`sparsam.SAM`.
        mask: a :class:`~sparsam.masks.strategies.MaskStrategy` that does not read the first-pass
            gradient (e.g. :class:`~sparsam.FisherMask` with pattern "layer" or "filter"), or a
            fixed list of boolean masks aligned with ``params`` (see :meth:`set_masks`).
        loss_fn: ``loss_fn(stages_output, targets)`` averaged over the batch.
        params: the trained parameters (default: every parameter of ``stages``).

    ``ε = ρ m⊙g/‖m⊙g‖`` (masked normalisation; see the module docstring for why). One call::

        loss = opt.step(x, y)

    runs :meth:`first_pass` (shared prefix, sparse ascent, ``w -> w + ε``), :meth:`second_pass`
    (gradient at ``w + ε`` in ``.grad``) and :meth:`~sparsam.SAM.second_step` (restore ``w``, base
    step). The BatchNorm modules of the prefix see one forward per step; those of the suffix see
    two, the second one guarded (running statistics move once).
    """

    def __init__(self, stages: Sequence[nn.Module], base_optimizer: type[torch.optim.Optimizer],
                 rho: float = 0.05, *, mask: MaskStrategy | Sequence[Tensor], loss_fn: LossFn = F.cross_entropy,
                 params: Sequence[Tensor] | None = None, **kwargs: Any):
        self.stages = list(stages)
        if not self.stages:
            raise ValueError("stages must hold at least one module")
        params = [p for s in self.stages for p in s.parameters()] if params is None else list(params)
        super().__init__(params, base_optimizer, rho=rho, **kwargs)
        self.loss_fn = loss_fn
        self.mask: MaskStrategy | None = None
        self._masks: list[Tensor] = []
        self._plan: AscentPlan | None = None
        self._plan_key: tuple | None = None
        self._pending: tuple[Tensor, Tensor] | None = None
        if isinstance(mask, MaskStrategy):
            if mask.needs_gradient:
                raise ValueError(f"{type(mask).__name__} reads the clean full gradient, which the sparse "
                                 "ascent pass does not compute; use a mask that does not (e.g. FisherMask)")
            self.mask = mask
            self.mask.bind(self._params())
        else:
            self.set_masks(mask)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if hasattr(self, "base_optimizer"):  # after __init__
            raise RuntimeError("SparseAscentSAM cannot add parameter groups: build it with every parameter "
                               "it will train (params=...)")
        super().add_param_group(param_group)

    # -- masks ---------------------------------------------------------------------------------
    def set_masks(self, masks: Sequence[Tensor]) -> None:
        """Use fixed boolean ``masks``, one per parameter in the optimizer's order."""
        params = self._params()
        if len(masks) != len(params):
            raise ValueError(f"got {len(masks)} masks for {len(params)} parameters")
        self.mask = None
        self._masks = [m.to(device=p.device, dtype=torch.bool) for m, p in zip(masks, params)]
        self._plan_key = None

    def current_masks(self) -> list[Tensor]:
        """The masks in force, one per parameter in the optimizer's order."""
        return self.mask.masks if self.mask is not None else self._masks

    def plan(self) -> AscentPlan:
        """The ascent plan of the current masks (recomputed only when the masks change)."""
        masks = self.current_masks()
        key = (id(masks), self.mask.updates if self.mask is not None else -1)
        if self._plan is None or key != self._plan_key:
            self._plan = plan_ascent(self.stages, self._params(), masks)
            self._plan_key = key
            # Only perturbed tensors get a gradient, and kept-rows gradients are zero outside the
            # rows, so ε needs an explicit mask only for "dense" (unstructured partial) masks.
            self._mask_of = None
            if "dense" in self._plan.kinds:
                self._mask_of = {id(p): m.to(p.dtype) for p, m in zip(self._params(), masks) if m.any()}
        return self._plan

    def _ascent_masks(self, params: list[Tensor]) -> tuple[list[Tensor] | None, bool]:
        if self._mask_of is None:  # the gradients are already m⊙g; SAM then normalises over them
            return None, True
        return [self._mask_of[id(p)] for p in params], True

    # -- the passes ----------------------------------------------------------------------------
    def first_pass(self, x: Tensor, y: Tensor) -> Tensor:
        """Shared prefix forward and sparse ascent; leaves the weights at ``w + ε``. Returns the loss at ``w``."""
        if self.mask is not None:
            self.mask.update(self.steps)
        plan = self.plan()
        self.zero_grad()
        self._ascent_finite = None
        with torch.enable_grad():
            h = run_stages(self.stages[:plan.start], x)
            if not plan.perturbed:  # ε = 0: the descent gradient is the gradient at w; one pass
                loss = self.loss_fn(h, y)
                self.first_step()  # moves nothing; second_step() follows
                self._pending = (loss, y)
                return loss.detach()
            suffix = self.stages[plan.start:]
            version = h._version
            with _ascent_graph(suffix, plan):
                loss = self.loss_fn(run_stages(suffix, h.detach()), y)
            grads = torch.autograd.grad(loss, plan.perturbed)
            if h._version != version:
                raise RuntimeError(f"stage {plan.start} modified its input in place; the prefix output is "
                                   "shared between the two passes, so the first suffix stage must not do that")
        for p, g in zip(plan.perturbed, grads):
            p.grad = g
        self.first_step(zero_grad=True)
        self._pending = (h, y)
        return loss.detach()

    def second_pass(self) -> Tensor:
        """Gradient at ``w + ε`` of the whole network into ``.grad``; returns the loss at ``w + ε``."""
        if self._pending is None:
            raise RuntimeError("second_pass() needs a first_pass() before it")
        h, y = self._pending
        self._pending = None
        plan = self.plan()
        with torch.enable_grad():
            loss = h if not plan.perturbed else self.loss_fn(run_stages(self.stages[plan.start:], h), y)
            loss.backward()
        return loss.detach()

    def step(self, x: Tensor, y: Tensor | None = None) -> Tensor:  # type: ignore[override]
        """One SSAM step on the batch ``(x, y)``; returns the loss at ``w`` (before the step)."""
        if callable(x) and y is None:
            raise TypeError("SparseAscentSAM.step takes the batch, step(x, y), not a closure")
        loss = self.first_pass(x, y)
        self.second_pass()
        self.second_step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.mask is not None:
            state["mask"] = self.mask.state_dict()
        else:
            state["masks"] = [m.clone() for m in self._masks]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if self.mask is not None and "mask" in state_dict:
            self.mask.load_state_dict(state_dict["mask"])
        elif "masks" in state_dict:
            self.set_masks(state_dict["masks"])
        self._plan_key = None
