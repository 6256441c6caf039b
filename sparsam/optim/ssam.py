"""Sparse SAM (Mi et al., NeurIPS 2022; TPAMI 2025): SAM whose perturbation is masked.

Explicit form: ``ε = m ⊙ ρ g / ‖·‖``. Implicit form (:mod:`sparsam.optim.implicit`): the first (ascent)
pass runs the dense forward, and every masked ``nn.Conv2d``/``nn.Linear`` back-propagates its input
gradient through ``W ⊙ M`` while its weight gradient stays dense; ``ε = ρ g̃ / ‖g̃‖`` from that
gradient is not masked again. This is the form sparse kernels can accelerate.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar, Iterable, Iterator

import torch
from torch import Tensor, nn

from .._checks import check_choice
from .._types import Form, Normalize
from .implicit import check_pattern, implicit_ascent
from .sam import SAM
from ..masks.strategies import MaskStrategy


class SSAM(SAM):
    """SAM with a sparse perturbation built by a :class:`~sparsam.masks.strategies.MaskStrategy`.

    Args:
        params, base_optimizer, rho, adaptive, eta, bn_guard, base_kwargs: as for :class:`SAM`.
        mask: a :class:`~sparsam.FisherMask` (SSAM-F), :class:`~sparsam.DynamicMask` (SSAM-D) or
            :class:`~sparsam.NormMask` (SAM-ON, with ``normalize="masked"``).
        normalize: ``"full"`` divides the masked gradient by the norm of the FULL gradient,
            ``ε = ρ m⊙g/‖g‖`` so ``‖ε‖ = ρ‖m⊙g‖/‖g‖ <= ρ``. It is the default because the papers'
            results were produced by the official code, which normalises this way (a fidelity
            choice); the convergence analysis only needs ``‖ε‖ <= ρ``, which it satisfies.
            ``"masked"`` renormalises over the mask, ``ε = ρ m⊙g/‖m⊙g‖`` with ``‖ε‖ = ρ``.
            Explicit form only.
        form: ``"explicit"`` (mask ε) or ``"implicit"`` (sparse back-propagation in the ascent pass,
            see :mod:`sparsam.optim.implicit`; needs ``model`` and a mask pattern "layer", "filter" or
            "N:M"; wrap the first forward in :meth:`ascent_pass`, as :meth:`step` does).
        model: the trained module, required by the implicit form.
    """

    # The version of what it computes (stored in every run record, sparsam.experiment.optimizers.numerics): raise it
    # when a change alters any number it produces; tests/optim/test_numerics.py fingerprints each version.
    NUMERICS: ClassVar[int] = 1

    def __init__(self, params: Iterable, base_optimizer: type[torch.optim.Optimizer], rho: float = 0.05, *,
                 mask: MaskStrategy, normalize: Normalize = "full", form: Form = "explicit",
                 model: nn.Module | None = None, **kwargs: Any):
        if not isinstance(mask, MaskStrategy):
            raise ValueError(f"mask must be a FisherMask or DynamicMask, got {type(mask).__name__}")
        self.normalize = check_choice("normalize", normalize, ("full", "masked"))
        self.form = check_choice("form", form, ("explicit", "implicit"))
        if form == "implicit":
            if model is None:
                raise ValueError("form='implicit' needs model=<the trained nn.Module>")
            if normalize != "full":
                raise ValueError("normalize='masked' applies to form='explicit' only (the implicit form's ε "
                                 "is not masked)")
            check_pattern(mask.pattern)
        self.model = model
        self.mask = mask
        super().__init__(params, base_optimizer, rho=rho, **kwargs)
        self.mask.bind(self._params())
        self._mask_of = {id(p): i for i, p in enumerate(self.mask.params)}
        self._masked_ascent_at: int | None = None  # step whose first pass ran sparsely back-propagated
        self._multipliers: tuple[list[Tensor], list[Tensor]] | None = None  # (bool masks, 0/1 copies)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; the mask strategy is bound afresh to all parameters (see ``MaskStrategy.rebind``)."""
        super().add_param_group(param_group)
        if hasattr(self, "base_optimizer"):  # after __init__
            self.mask.rebind(self._params())
            self._mask_of = {id(p): i for i, p in enumerate(self.mask.params)}
            self._multipliers = None  # one buffer per parameter: made afresh for the new list

    def masks_for(self, params: list[Tensor]) -> list[Tensor]:
        """The current masks of ``params``, in their order."""
        return [self.mask.masks[self._mask_of[id(p)]] for p in params]

    def _ascent_masks(self, params: list[Tensor]) -> tuple[list[Tensor] | None, bool]:
        self.mask.update(self.steps)
        if self.form == "implicit":
            if self._masked_ascent_at != self.steps:
                raise RuntimeError("form='implicit': run the first forward inside `with opt.ascent_pass():` "
                                   "(step(closure) does it), otherwise the ascent pass is dense")
            return None, False
        multipliers = self._mask_multipliers()
        return [multipliers[self._mask_of[id(p)]] for p in params], self.normalize == "masked"

    def _mask_multipliers(self) -> list[Tensor]:
        """The masks as 0/1 tensors of the parameters' dtype and memory format, refreshed once per mask rebuild.

        A strategy replaces its ``masks`` list whenever it rebuilds (it never edits it in place), so the
        list's identity tells whether the copies are current. The copies are persistent buffers, one per
        parameter (``empty_like``: a channels-last weight gets a channels-last mask), overwritten in place
        at each rebuild: a step captured in a CUDA graph reads the current mask at every replay.
        """
        if self._multipliers is None:
            buffers = [torch.empty_like(p) for p in self.mask.params]
        elif self._multipliers[0] is not self.mask.masks:
            buffers = self._multipliers[1]
        else:
            return self._multipliers[1]
        if buffers:
            torch._foreach_copy_(buffers, self.mask.masks)  # bool -> 0/1 in the parameter's dtype
        self._multipliers = (self.mask.masks, buffers)
        return buffers

    def refresh_masks(self) -> bool:
        """Rebuild the masks if due at the coming step (:attr:`steps`) and refresh the multipliers in place;
        returns whether the masks were rebuilt.

        :meth:`first_step` (explicit form) does the same by itself; a step replayed from a CUDA graph does
        not run Python, so its caller calls this before each replay (for a strategy that reads no gradient).
        """
        if self.mask.needs_gradient and self.mask.due(self.steps):
            raise RuntimeError(f"the mask is due at step {self.steps} and its update reads the first-pass "
                               "gradient: run this step eagerly (first_step does the update)")
        rebuilt = self.mask.update(self.steps)
        if self.form == "explicit":
            self._mask_multipliers()
        return rebuilt

    @contextlib.contextmanager
    def ascent_pass(self) -> Iterator[None]:
        """First-pass context: refreshes a gradient-free mask; the implicit form back-propagates sparsely in it."""
        if not self.mask.needs_gradient:
            self.mask.update(self.steps)
        if self.form == "explicit":
            yield
            return
        self._masked_ascent_at = self.steps
        with implicit_ascent(self.model, zip(self.mask.params, self.mask.masks)):  # type: ignore[arg-type]  # set
            yield

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "mask": self.mask.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.mask.load_state_dict(state_dict["mask"])  # first: it validates the shapes
        super().load_state_dict(state_dict)

