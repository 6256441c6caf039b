"""Sparse ascent passes whose cost falls with sparsity ("make sparsity pay").

The official SSAM code computes every gradient densely and masks ε afterwards, so a sparse step
costs as much as a SAM step. :class:`SparseAscentSAM` skips the work a structured mask makes
unnecessary in the ascent (first) pass:

* **Layer-structured masks** (whole tensors perturbed or not): the ascent pass asks autograd for
  the gradients of the perturbed tensors only; unperturbed tensors have ``requires_grad`` switched
  off during the ascent forward, so no weight gradient is formed for them and nothing is
  back-propagated below the lowest perturbed tensor.
* **Shared prefix**: the model is given as an ordered list of stages (``model(x) ==
  stages[-1](...stages[0](x))``; :func:`sparsam.experiment.models.model_stages` splits the networks of
  :mod:`sparsam.experiment.models`). Below the lowest stage holding a perturbed tensor, ``w + ε == w``, so
  that prefix runs ONCE (grad enabled, BatchNorm statistics move once); the ascent pass runs the
  remaining stages (the suffix) on the prefix output detached, and the descent pass runs the suffix
  at ``w + ε`` on the attached prefix output and back-propagates through suffix and prefix. The
  descent gradient is exactly SAM's gradient at ``w + ε`` of the whole network.
* **Filter-structured masks** (rows along dim 0 of a conv/linear weight): the weight gradient of a
  ``nn.Conv2d``/``nn.Linear`` is computed for the kept output channels only (a weight-gradient
  convolution on the sliced ``grad_output``; :class:`sparsam.optim.masked_layer.MaskedLayer` with ``rows``).

The step protocol is SAM's: :meth:`SparseAscentSAM.ascent_pass` around the first forward and backward,
:meth:`~sparsam.SAM.first_step`, the second forward and backward, :meth:`~sparsam.SAM.second_step`; or
``step(closure)``. The forwards call the model (or the stages) as usual: inside :meth:`ascent_pass` the
output of the last prefix stage is detached (and kept); between ``first_step`` and ``second_step`` the
prefix stages do no work and the last one returns the kept output. With gradient accumulation
(:mod:`sparsam.optim.accumulate`) each micro-batch of the ascent runs in its own :meth:`ascent_pass`
(one forward per context, checked) and the descent pass runs the same micro-batches in the same order:
the last prefix stage returns their kept outputs one after another (another count is an error).
The prefix's graph of every micro-batch stays alive until its descent backward, so accumulation saves
the memory of the suffix's activations only.

Normalisation: the sparse pass never forms the full gradient, so ``ε = ρ m⊙g/‖g‖`` (the official
code's ``normalize="full"``) is NOT computable here. ε uses ``normalize="masked"`` semantics,
``ε = ρ m⊙g/‖m⊙g‖`` with ``‖ε‖ = ρ``, identical to ``SSAM(..., normalize="masked")`` with the same
mask (bit-identical for layer-structured masks). With ``adaptive=True`` (ASAM) it is
``ε = ρ T² m⊙g/‖T m⊙g‖``.

Restrictions: masks should be layer- or filter-structured to save work (any other partial mask is
handled correctly with a dense weight gradient for that tensor); the model must be expressible as a
chain of stages in which every stage but the last is a module that the model's forward calls once,
its output the next stage's input (the last, e.g. a pooling-and-classifier head, may be a new
``nn.Sequential`` of the model's modules); the first stage of the suffix must not modify its input in
place (checked); mask strategies that read the clean full gradient (``DynamicMask``) are rejected; no
``GradScaler`` and no DistributedDataParallel support (bf16 autocast around the forwards works;
``torch.compile`` of the model or of its stages too: a compiled graph ends at the kept prefix output,
so the ascent backward leaves the prefix's backward to the descent). The
prefix is shared at stage granularity: finer stages (one per residual block) share more. A mask that
perturbs nothing gives ε = 0 and a plain gradient step (the second pass takes the gradient at ``w``).

Example::

    stages = model_stages(model)                      # [stem, block, ..., block, head]
    mask = FisherMask(model, fisher_data, sparsity=0.9, pattern="layer", steps_per_epoch=len(loader))
    opt = SparseAscentSAM(stages, torch.optim.SGD, rho=0.1, mask=mask, lr=0.05, momentum=0.9)
    for x, y in loader:
        def closure():
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss
        loss = opt.step(closure)

The implicit form, whose sparsity pays in the input gradient (2:4 semi-structured kernels on GPUs),
is :mod:`sparsam.optim.implicit`, used by ``SSAM(form="implicit")``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Sequence

import torch
from torch import Tensor, nn

from .._layers import full_rows, kept_rows_layer
from .._types import AscentKind
from ..masks.strategies import MaskStrategy
from .masked_layer import masked_conv2d, masked_linear, patched_forwards
from .sam import SAM

__all__ = ["SparseAscentSAM", "AscentPlan", "plan_ascent", "lowest_stage", "run_stages"]


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

    kinds: list[AscentKind]
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


def _row_layers(stages: Sequence[nn.Module]) -> dict[int, nn.Linear | nn.Conv2d]:
    """id(weight) -> layer for the conv/linear layers whose kept-rows weight gradient is supported."""
    return {id(m.weight): m for stage in stages for m in stage.modules()
            if isinstance(m, (nn.Linear, nn.Conv2d)) and kept_rows_layer(m)}


def plan_ascent(stages: Sequence[nn.Module], params: Sequence[Tensor], masks: Sequence[Tensor]) -> AscentPlan:
    """Classify every mask and find the first suffix stage (reads the masks: host syncs, call rarely)."""
    row_layers = _row_layers(stages)
    kinds: list[AscentKind] = []
    perturbed, rows = [], {}
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
        whole = full_rows(m) if id(p) in row_layers else None
        if whole is None:
            kinds.append("dense")
        else:
            kinds.append("rows")
            rows[id(p)] = whole.nonzero().squeeze(1)
    return AscentPlan(kinds, perturbed, lowest_stage(stages, perturbed), rows)


def run_stages(stages: Sequence[nn.Module], h: Tensor) -> Tensor:
    """``stages[-1](...stages[0](h))``."""
    for stage in stages:
        h = stage(h)
    return h


# --------------------------------------------------------------------------------------------
# Kept-rows weight gradients for filter-structured masks.
# --------------------------------------------------------------------------------------------

def _kept_rows_forward(layer: nn.Linear | nn.Conv2d, rows: Tensor) -> Callable[[Tensor], Tensor]:
    if isinstance(layer, nn.Conv2d):
        conv = layer
        return lambda x: masked_conv2d(conv, x, rows=rows)
    linear = layer
    return lambda x: masked_linear(x, linear.weight, linear.bias, rows=rows)


@contextlib.contextmanager
def _ascent_graph(stages: Sequence[nn.Module], plan: AscentPlan) -> Iterator[None]:
    """Ascent-forward context: only perturbed tensors require grad; kept-rows layers patched."""
    keep = plan.perturbed_ids
    switched = [p for stage in stages for p in stage.parameters() if p.requires_grad and id(p) not in keep]
    layers = _row_layers(stages)
    for p in switched:
        p.requires_grad_(False)
    try:
        with patched_forwards({layers[wid]: _kept_rows_forward(layers[wid], rows) for wid, rows in plan.rows.items()}):
            yield
    finally:
        for p in switched:
            p.requires_grad_(True)


def _skipped(x: Any, *args: Any, **kwargs: Any) -> Any:
    """The forward of a prefix stage in the descent pass: no work (its output is not used)."""
    return x


# --------------------------------------------------------------------------------------------
# The optimizer.
# --------------------------------------------------------------------------------------------

class SparseAscentSAM(SAM):
    """SSAM with ``normalize="masked"`` whose ascent pass skips what a structured mask leaves out.

    Args:
        stages: the model as an ordered chain of modules, ``model(x) == stages[-1](...stages[0](x))``
            (a CIFAR ResNet as ``[stem, block, ..., block, head]``: finer stages share more); every stage
            but the last must be a module the model's forward calls (see the module docstring).
            :func:`sparsam.experiment.models.model_stages` gives them for the library's networks.
        base_optimizer, rho, adaptive, eta, bn_guard, base_kwargs: as for :class:`sparsam.SAM`.
        mask: a :class:`~sparsam.masks.strategies.MaskStrategy` that does not read the first-pass
            gradient (e.g. :class:`~sparsam.FisherMask` with pattern "layer" or "filter"), or a
            fixed list of boolean masks aligned with ``params`` (see :meth:`set_masks`).
        params: the trained parameters (default: every parameter of ``stages``).

    ``ε = ρ m⊙g/‖m⊙g‖`` (masked normalisation; see the module docstring for why). The protocol is
    SAM's: ``opt.step(closure)``, or the passes by hand::

        with opt.ascent_pass():                 # shared prefix, sparse ascent
            loss_fn(model(x), y).backward()
        opt.first_step(zero_grad=True)          # w -> w + ε
        loss_fn(model(x), y).backward()         # suffix at w + ε on the kept prefix output
        opt.second_step(zero_grad=True)         # restore w, base step

    The BatchNorm modules of the prefix see one forward per step; those of the suffix see two, the
    second one guarded (running statistics move once).
    """

    # The version of what it computes (stored in every run record, sparsam.experiment.optimizers.numerics): raise it
    # when a change alters any number it produces; tests/optim/test_numerics.py fingerprints each version.
    NUMERICS: ClassVar[int] = 1

    def __init__(self, stages: Sequence[nn.Module], base_optimizer: type[torch.optim.Optimizer],
                 rho: float = 0.05, *, mask: MaskStrategy | Sequence[Tensor],
                 params: Sequence[Tensor] | None = None, **kwargs: Any):
        self.stages = list(stages)
        if not self.stages:
            raise ValueError("stages must hold at least one module")
        params = [p for s in self.stages for p in s.parameters()] if params is None else list(params)
        super().__init__(params, base_optimizer, rho=rho, **kwargs)
        self.mask: MaskStrategy | None = None
        self._masks: list[Tensor] = []
        self._plan: AscentPlan | None = None
        self._plan_key: tuple | None = None
        self._mask_of: dict[int, Tensor] | None = None
        self._ascent_at: int | None = None  # step whose first pass ran inside ascent_pass()
        self._prefix_outs: list[Tensor] = []  # outputs of the last prefix stage, attached, one per micro-batch
        self._served = 0  # how many of them the descent pass has used
        self._descent: contextlib.ExitStack | None = None  # the prefix stages' descent forwards, while patched
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
    @contextlib.contextmanager
    def ascent_pass(self) -> Iterator[None]:
        """First-pass context: refreshes the mask, clears ``.grad``; inside it the forward shares the prefix
        (its output is kept and the suffix runs on it detached) and the backward forms the gradients of
        the perturbed tensors only, of the kept rows only for filter masks.

        One forward (and its backward) per context. Gradient accumulation enters it once per
        micro-batch: the later contexts of a step keep the gradients of the earlier ones and add their
        prefix outputs, which the descent pass uses in the same order.
        """
        if self._perturbed is not None:
            raise RuntimeError("ascent_pass() between first_step() and second_step(): finish the step first")
        if self.mask is not None:
            self.mask.update(self.steps)
        plan = self.plan()
        if self._ascent_at != self.steps:  # the step's first micro-batch
            self.zero_grad()
            self._prefix_outs = []
        self._ascent_at = None  # set again when this context ends without an error
        if not plan.perturbed:  # ε = 0: a dense pass whose gradient first_step() drops
            yield
            self._ascent_at = self.steps
            return
        kept: list[tuple[Tensor, int]] = []

        def detach(module: nn.Module, args: Any, out: Tensor) -> Tensor:
            if torch.compiler.is_compiling():  # a compiled model: the prefix ends its graph here, so that the
                torch._dynamo.graph_break()     # ascent backward leaves the prefix's backward to the descent
            kept.append((out, out._version))
            return out.detach()
        handle = self.stages[plan.start - 1].register_forward_hook(detach) if plan.start > 0 else None
        try:
            with _ascent_graph(self.stages[plan.start:], plan):
                yield
        except BaseException:
            self._prefix_outs = []  # the step starts over at the next ascent_pass()
            raise
        finally:
            if handle is not None:
                handle.remove()
        if handle is not None:
            if len(kept) != 1:
                self._prefix_outs = []
                raise RuntimeError(f"stage {plan.start - 1} (the last of the shared prefix) ran {len(kept)} times "
                                   "in the ascent pass, not once: every stage but the last must be a module that "
                                   "the model's forward calls once, and with gradient accumulation each "
                                   "micro-batch runs in its own `with opt.ascent_pass():`")
            out, version = kept[0]
            if out._version != version:
                self._prefix_outs = []
                raise RuntimeError(f"stage {plan.start} modified its input in place; the prefix output is "
                                   "shared between the two passes, so the first suffix stage must not do that")
            self._prefix_outs.append(out)
        self._ascent_at = self.steps

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Move the perturbed tensors from ``w`` to ``w + ε``; the prefix stages then serve the kept outputs."""
        if self._perturbed is None and self._ascent_at != self.steps:  # (a second call: SAM's error)
            raise RuntimeError("SparseAscentSAM: run the first forward and backward inside `with "
                               "opt.ascent_pass():` (step(closure) does it)")
        if self._perturbed is None and not self.plan().perturbed:
            self.zero_grad()  # nothing perturbed: ε = 0, and the second pass takes the gradient at w
        super().first_step(zero_grad)
        self._ascent_at = None
        if self._prefix_outs:
            start = self.plan().start
            forwards: dict[nn.Module, Callable[..., Any]] = {stage: _skipped for stage in self.stages[:start - 1]}
            forwards[self.stages[start - 1]] = self._serve_prefix_out
            self._served = 0
            self._descent = contextlib.ExitStack()
            self._descent.enter_context(patched_forwards(forwards))

    def _serve_prefix_out(self, *args: Any, **kwargs: Any) -> Tensor:
        """The forward of the last prefix stage in the descent pass: the ascent's outputs, in their order."""
        if self._served == len(self._prefix_outs):
            raise RuntimeError(f"the descent pass ran more forwards than the ascent pass ({len(self._prefix_outs)}):"
                               " run the same micro-batches, in the same order, in both passes")
        self._served += 1
        return self._prefix_outs[self._served - 1]

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False, scaler: "torch.amp.GradScaler | None" = None) -> None:
        """As :meth:`sparsam.SAM.second_step`, after checking that the descent used every kept prefix output."""
        if self._prefix_outs and self._served != len(self._prefix_outs):
            ran, kept = self._served, len(self._prefix_outs)
            self.restore()
            raise RuntimeError(f"the descent pass ran {ran} forwards, the ascent pass {kept}: run the same "
                               "micro-batches, in the same order, in both passes (weights restored, no step taken)")
        super().second_step(zero_grad, scaler)

    @torch.no_grad()
    def restore(self) -> None:
        """As :meth:`sparsam.SAM.restore`; the prefix stages compute again and the kept outputs are dropped."""
        if self._descent is not None:
            self._descent.close()
            self._descent = None
        self._prefix_outs = []
        super().restore()

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
