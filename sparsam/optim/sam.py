"""Sharpness-Aware Minimization (Foret et al., 2021) and ASAM (Kwon et al., 2021).

A step has two passes. The first computes ``g = ∇L(w)`` and the perturbation
``ε = ρ T² g / ‖T g‖`` (``T = 1`` for SAM, ``T = |w| + η`` for ASAM); :meth:`SAM.first_step` moves
the weights to ``w + ε``. The second pass computes ``∇L(w + ε)``; :meth:`SAM.second_step` puts the
weights back to ``w`` exactly (from a saved copy, not by subtracting ``ε``) and lets the base
optimizer step with that gradient. :class:`sparsam.SSAM` multiplies ``ε`` by a mask through the
``_ascent_masks`` hook; everything else is shared.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ClassVar, ContextManager, Iterable

import torch
from torch import Tensor

from .._checks import check_range
from .bn_guard import BatchNormGuard


class SAM(torch.optim.Optimizer):
    """SAM over any ``torch.optim`` base optimizer, which shares this object's ``param_groups``.

    Args:
        params: parameters or parameter groups, as for any optimizer.
        base_optimizer: an optimizer class (e.g. ``torch.optim.SGD``), built with ``base_kwargs``.
        rho: radius ρ of the perturbation, >= 0.
        adaptive: ASAM: scale ε element-wise by ``T = |w| + eta``.
        eta: ASAM's η, >= 0 (ASAM's paper uses 0.01); unused unless ``adaptive``.
        bn_guard: freeze BatchNorm running statistics in the second pass (see :mod:`.bn_guard`).

    Use :meth:`step` with a closure, or call the passes yourself::

        loss_fn(model(x), y).backward()
        opt.first_step(zero_grad=True)
        loss_fn(model(x), y).backward()
        opt.second_step(zero_grad=True)

    Gradient accumulation over micro-batches (:mod:`sparsam.optim.accumulate`): back-propagate every
    micro-batch's loss, times its share of the batch, before ``first_step`` (each inside
    :meth:`ascent_pass`) and again, in the same order, before ``second_step``; the BatchNorm guard
    holds from ``first_step`` to ``second_step``, over every micro-batch of the second pass.

    With ``torch.amp.GradScaler`` back-propagate ``scaler.scale(loss)`` in both passes, call
    ``second_step(scaler=scaler)`` and then ``scaler.update()``: a non-finite gradient in either pass
    skips the base step (the weights are already restored exactly) and backs the scale off. To
    unscale for gradient clipping, call ``scaler.unscale_(opt.base_optimizer)`` (the optimizer the
    scaler steps), never ``scaler.unscale_(opt)``, which would unscale twice.

    An LR scheduler may be attached to this object or to ``base_optimizer`` (they share
    ``param_groups``). If your own loop raises between the passes, call :meth:`restore` before going
    on; :meth:`step` does that itself.
    """

    # The version of what it computes (stored in every run record, sparsam.experiment.optimizers.numerics): raise it
    # when a change alters any number it produces; tests/optim/test_numerics.py fingerprints each version.
    NUMERICS: ClassVar[int] = 1

    def __init__(self, params: Iterable, base_optimizer: type[torch.optim.Optimizer], rho: float = 0.05,
                 adaptive: bool = False, eta: float = 0.01, bn_guard: bool = True, **base_kwargs: Any):
        check_range("rho", rho, 0.0)
        check_range("eta", eta, 0.0)
        super().__init__(params, dict(rho=rho, adaptive=adaptive, eta=eta, **base_kwargs))
        self.base_optimizer: torch.optim.Optimizer = base_optimizer(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)
        self.bn_guard = BatchNormGuard() if bn_guard else None
        self.steps = 0  # completed steps; the schedule counter of masks
        self._perturbed: list[Tensor] | None = None  # parameters at w + ε, None outside a step
        self._ascent_finite: Tensor | None = None

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to this optimizer and its base optimizer (they share ``param_groups``)."""
        if not hasattr(self, "base_optimizer"):  # called by Optimizer.__init__
            super().add_param_group(param_group)
            return
        if self._perturbed is not None:
            raise RuntimeError("add_param_group() between first_step() and second_step(): add groups "
                               "after second_step()")
        for key in ("rho", "adaptive", "eta"):
            param_group.setdefault(key, self.defaults[key])
        check_range("rho", param_group["rho"], 0.0)
        check_range("eta", param_group["eta"], 0.0)
        self.base_optimizer.add_param_group(param_group)

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _ascent_masks(self, params: list[Tensor]) -> tuple[list[Tensor] | None, bool]:
        """Masks for ε as 0/1 tensors of the parameters' dtype (``None``: dense), and whether ‖ε‖ is
        renormalised to ρ over the mask."""
        return None, False

    def ascent_pass(self) -> ContextManager:
        """Context for the first forward pass; SSAM's implicit form back-propagates through W⊙M inside it."""
        return contextlib.nullcontext()

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Move every parameter with a gradient from ``w`` to ``w + ε``."""
        if self._perturbed is not None:
            raise RuntimeError("first_step() called twice: call second_step() (or restore()) after each "
                               "first_step(), before the next one")
        params, groups, directions, scales = [], [], [], []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                params.append(p)
                groups.append(group)
                scales.append(p.abs().add_(group["eta"]) if group["adaptive"] else None)
                directions.append(p.grad if scales[-1] is None else p.grad * scales[-1])
        masks, renormalise = self._ascent_masks(params)
        norm = _global_norm(torch._foreach_mul(directions, masks) if renormalise and masks is not None else directions)
        self._ascent_finite = torch.isfinite(norm)
        inv_norm = 1.0 / (norm + 1e-12)
        if params:
            torch._foreach_copy_([self._saved_weights(p) for p in params], params)
        # ε = ρ/‖·‖ · d ⊙ (m ⊙ T): one fused update per group of equal ρ and multiplier kind
        multipliers = [_product(masks[i] if masks is not None else None, t) for i, t in enumerate(scales)]
        buckets: dict[tuple[float, bool], list[int]] = {}
        for i, (group, mult) in enumerate(zip(groups, multipliers)):
            buckets.setdefault((group["rho"], mult is None), []).append(i)
        for (rho, plain), idx in buckets.items():
            _add_scaled_([params[i] for i in idx], [directions[i] for i in idx],
                         None if plain else [multipliers[i] for i in idx],  # type: ignore[misc]  # not None
                         inv_norm * rho)
        self._perturbed = params
        if self.bn_guard is not None:
            self.bn_guard.enter(self._params())
        if zero_grad:
            self.zero_grad()

    def _saved_weights(self, p: Tensor) -> Tensor:
        """The persistent buffer that holds ``w`` while the weights sit at ``w + ε``."""
        state = self.state[p]
        if "w" not in state:
            state["w"] = torch.empty_like(p, memory_format=torch.preserve_format)
        return state["w"]

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False, scaler: "torch.amp.GradScaler | None" = None) -> None:
        """Restore ``w`` exactly and step the base optimizer with the gradient taken at ``w + ε``."""
        if self._perturbed is None:
            raise RuntimeError("second_step() without first_step(): call first_step() after the first "
                               "backward pass, then second_step() after the second")
        self.restore()
        if scaler is None:
            self.base_optimizer.step()
        else:
            self._poison_if_ascent_overflowed()
            scaler.step(self.base_optimizer)
        self._opt_called = True  # an LR scheduler attached to this object reads it: this optimizer stepped
        self.steps += 1
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def restore(self) -> None:
        """Put the weights back to ``w`` and lift the BatchNorm guard, without a base step.

        For an exception between the passes; a no-op outside a step.
        """
        if self._perturbed:
            torch._foreach_copy_(self._perturbed, [self.state[p]["w"] for p in self._perturbed])
        if self.bn_guard is not None:
            self.bn_guard.exit()
        self._perturbed = None

    @torch.no_grad()
    def perturbation_norm(self) -> Tensor:
        """``‖ε‖`` of the current step, as a 0-d tensor (no host sync): call it between the two steps."""
        if self._perturbed is None:
            raise RuntimeError("perturbation_norm() outside a step: call it after first_step(), before second_step()")
        saved = [self.state[p]["w"] for p in self._perturbed]
        return _global_norm(torch._foreach_sub(self._perturbed, saved) if saved else [])

    def _poison_if_ascent_overflowed(self) -> None:
        """Make the scaler see a first-pass overflow: NaN into one gradient, no host sync."""
        if self._ascent_finite is None:
            return
        grad = next((p.grad for p in self._params() if p.grad is not None), None)
        if grad is not None:
            grad.mul_(torch.where(self._ascent_finite, 1.0, float("nan")).to(grad.dtype))

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        """Run both passes: ``closure`` does forward + backward and returns the loss; returns the first loss.

        As with any optimizer, gradients are left in ``.grad`` after the step: call ``zero_grad()``
        before the next one (or inside the closure before its backward).

        Gradient accumulation (:mod:`sparsam.optim.accumulate`): a closure that loops over the
        micro-batches, back-propagating each loss times its share of the batch (zeroing the gradients
        before the loop, not inside it), takes the step of the whole batch with ``SAM`` and ``SSAM``;
        :class:`~sparsam.optim.sparse_ascent.SparseAscentSAM` takes one :meth:`ascent_pass` per
        micro-batch, so with it call the passes yourself.
        """
        if closure is None:
            raise RuntimeError("SAM.step() needs a closure that runs forward + backward and returns the "
                               "loss (it is called twice); or call first_step() and second_step() yourself")
        closure = torch.enable_grad()(closure)
        with self.ascent_pass():
            loss = closure()
        self.first_step(zero_grad=True)
        try:
            closure()
        except BaseException:
            self.restore()
            raise
        self.second_step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base_optimizer.zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state (momentum, param groups) and the step counter."""
        return {"base": self.base_optimizer.state_dict(), "steps": self.steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_optimizer.load_state_dict(state_dict["base"])
        self.param_groups = self.base_optimizer.param_groups
        self.steps = state_dict["steps"]


def _product(mask: Tensor | None, scale: Tensor | None) -> Tensor | None:
    """Element-wise multiplier of ε beyond ``ρ/‖·‖ · d``: the mask, ASAM's ``T``, both, or none."""
    if mask is None or scale is None:
        return scale if mask is None else mask
    return mask * scale


def _add_scaled_(params: list[Tensor], directions: list[Tensor], multipliers: list[Tensor] | None,
                 scale: Tensor) -> None:
    """``p += scale · d ⊙ multiplier`` (multiplier 1 if ``None``) for a 0-d tensor ``scale``, fused.

    Masked and unmasked updates run the same ``addcmul`` arithmetic, so an entry whose mask is 1
    moves exactly as it would without a mask. A scale on the CPU is read into the kernel, which is
    free on the host; on an accelerator it stays a tensor (no host sync) and is folded into the
    multiplier.
    """
    if scale.device.type == "cpu":
        if multipliers is None:
            multipliers = [d.new_ones(()) for d in directions]
        torch._foreach_addcmul_(params, directions, multipliers, float(scale))
    else:
        scaled = [scale] * len(directions) if multipliers is None else torch._foreach_mul(multipliers, scale)
        torch._foreach_addcmul_(params, directions, scaled)


def _global_norm(tensors: list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    """Euclidean norm over a list of tensors, as a 0-d tensor (no host sync)."""
    if not tensors:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors)))
