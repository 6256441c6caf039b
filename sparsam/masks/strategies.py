"""Mask strategies for SSAM: when and how the binary perturbation mask is (re)built.

A strategy is bound to the optimizer's parameter list, owns one ``torch.bool`` mask per parameter
(on the parameter's device) and is asked by :class:`sparsam.SSAM` to :meth:`MaskStrategy.update` at
every step; it rebuilds the masks when its schedule says so, always by assigning a new ``masks``
list (never by editing the tensors in place), which is how SSAM knows its cached copies are stale.
``update_every`` counts optimizer steps (``update_unit="steps"``) or epochs
(``update_unit="epochs"`` with ``steps_per_epoch``).

* :class:`FisherMask` (SSAM-F): top entries of the empirical Fisher, any pattern of :mod:`.masks`.
* :class:`DynamicMask` (SSAM-D): random start, then drop the weakest live entries and regrow as
  many among entries that were dead before the update, with a cosine-decayed drop rate.
* :class:`NormMask` (SAM-ON, Mueller et al. 2023): a fixed mask of the normalisation layers' parameters.

Under torch.distributed, masks are identical on every rank: Fisher scores and the gradient
criterion are reduced across ranks, and random choices come from a generator seeded alike.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import patterns
from .._checks import check_choice, check_int, check_range
from .._dist import all_reduce_
from .._layers import NORM_LAYERS, norm_parameters
from .._types import Criterion, FirstMask, FisherMode, NMDim, UpdateUnit
from .._types import LossFn
from .fisher import Batches, fisher_scores, fisher_scores_official


class MaskStrategy:
    """Schedule and storage shared by the strategies; subclasses implement :meth:`_build`."""

    needs_gradient = False  # True: the update reads the first-pass gradient
    pattern = "unstructured"  # the mask pattern built (see :mod:`.masks`); the implicit form checks it

    def __init__(self, update_every: int, update_unit: UpdateUnit, steps_per_epoch: int | None):
        check_int("update_every", update_every, 1)
        check_choice("update_unit", update_unit, ("steps", "epochs"))
        if update_unit == "epochs":
            if steps_per_epoch is None:
                raise ValueError("steps_per_epoch is required when update_unit='epochs'")
            check_int("steps_per_epoch", steps_per_epoch, 1)
        self.interval = update_every * (steps_per_epoch if update_unit == "epochs" else 1)  # type: ignore[operator]
        self.masks: list[Tensor] = []
        self.params: list[Tensor] = []
        self.updates = 0  # how many times the masks were rebuilt
        self.last_update: int | None = None
        self.pending = False  # rebuild at the next update, whatever the schedule (set by rebind)

    def bind(self, params: Sequence[Tensor]) -> None:
        """Attach to the optimizer's parameters and create the initial masks."""
        self.params = list(params)
        self.masks = self._initial_masks()

    def rebind(self, params: Sequence[Tensor]) -> None:
        """Attach to a changed parameter list mid-run (``add_param_group``): the masks start over from
        their initial state and are rebuilt at the next :meth:`update`, whatever the schedule."""
        self.bind(params)
        self.pending = True

    def _initial_masks(self) -> list[Tensor]:
        return [torch.zeros_like(p, dtype=torch.bool) for p in self.params]

    def due(self, step: int) -> bool:
        """Whether the masks are rebuilt at ``step`` (0-based count of completed steps)."""
        return (self.pending or step % self.interval == 0) and self.last_update != step

    def update(self, step: int) -> bool:
        """Rebuild the masks if due at ``step``; returns whether it did."""
        if not self.due(step):
            return False
        self.masks = self._build(step)
        self.updates += 1
        self.last_update = step
        self.pending = False
        return True

    def _build(self, step: int) -> list[Tensor]:
        raise NotImplementedError

    def density(self) -> float:
        """Fraction of parameter entries currently perturbed."""
        return patterns.density(self.masks)

    def state_dict(self) -> dict[str, Any]:
        return {"masks": [m.clone() for m in self.masks], "updates": self.updates,
                "last_update": self.last_update}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shapes = [tuple(m.shape) for m in state["masks"]]
        if shapes != [tuple(p.shape) for p in self.params]:
            raise ValueError(f"state holds {len(shapes)} masks whose shapes do not match the bound parameters")
        self.masks = [m.to(p.device) for m, p in zip(state["masks"], self.params)]
        self.updates, self.last_update = state["updates"], state["last_update"]


class FisherMask(MaskStrategy):
    """SSAM-F: keep the entries with the largest empirical Fisher score.

    Args:
        model: the network the optimizer trains (the plain module, not a DDP wrapper).
        data: iterable of (inputs, labels) batches; each update reads its first ``num_samples``
            samples afresh, so a shuffling loader gives new samples every time.
        sparsity: fraction NOT perturbed, in [0, 1); default 0.5. N:M patterns fix it to 1 - n/m
            (leave it ``None`` or pass exactly that; ``.sparsity`` reports it).
        num_samples: N_F, samples per Fisher estimate.
        update_every, update_unit, steps_per_epoch: T_m in steps or epochs.
        pattern: "unstructured", "layer", "filter" or "N:M" such as "2:4" (see :mod:`.masks`).
        nm_dim: grouping dimension of N:M masks, "in" or "out".
        loss_fn: loss at the true label, averaged over a batch (cross-entropy by default).
        first_mask: "fisher" computes a mask before step 1; "zeros" reproduces the official code,
            whose first mask is all zeros (no perturbation until the first update at step T_m).
        fisher_mode: "functional" (batched, side-effect free) or "official" (batch-1 loop in train
            mode that moves BatchNorm running statistics, as the official code does).
        chunk_size: samples per chunk of the Fisher pass (default: 32, fewer if their per-sample
            gradients would exceed 1 GiB).
        costs: per parameter, the ``(chain, own)`` ascent costs of :func:`sparsam.masks.cost.tensor_costs`.
            With a "layer" or "filter" pattern they switch the selection from the largest Fisher
            mass (the papers' rule) to the largest Fisher mass per unit of ascent-pass cost
            (:func:`sparsam.masks.patterns.cost_aware`), under the same parameter budget.
        max_cost: with ``costs``, the most the ascent pass may cost (same unit as ``costs``).
    """

    # The version of what it computes (stored in every run record, sparsam.experiment.optimizers.numerics): raise it
    # when a change alters any number it produces; tests/optim/test_numerics.py fingerprints each version.
    NUMERICS: ClassVar[int] = 1

    def __init__(self, model: nn.Module, data: Batches, sparsity: float | None = None, num_samples: int = 128,
                 update_every: int = 1, update_unit: UpdateUnit = "epochs", steps_per_epoch: int | None = None,
                 pattern: str = "unstructured", nm_dim: NMDim = "in", loss_fn: LossFn = F.cross_entropy,
                 first_mask: FirstMask = "fisher", fisher_mode: FisherMode = "functional",
                 chunk_size: int | None = None,
                 costs: Sequence | None = None, max_cost: float | None = None):
        super().__init__(update_every, update_unit, steps_per_epoch)
        nominal = patterns.n_m_sparsity(pattern)
        if nominal is not None and sparsity is not None and not math.isclose(sparsity, nominal):
            raise ValueError(f"sparsity must be None or {nominal} for pattern {pattern!r}, got {sparsity!r}")
        if sparsity is None:
            sparsity = 0.5 if nominal is None else nominal
        self.sparsity = check_range("sparsity", sparsity, 0.0, 1.0)
        self.pattern = pattern
        self.nm_dim = check_choice("nm_dim", nm_dim, ("in", "out"))
        self.num_samples = check_int("num_samples", num_samples, 1)
        self.first_mask = check_choice("first_mask", first_mask, ("fisher", "zeros"))
        self.fisher_mode = check_choice("fisher_mode", fisher_mode, ("functional", "official"))
        self.model, self.data, self.loss_fn, self.chunk_size = model, data, loss_fn, chunk_size
        if costs is not None and pattern not in ("layer", "filter"):
            raise ValueError(f"costs (the cost-aware rule) need pattern 'layer' or 'filter', got {pattern!r}")
        if max_cost is not None and costs is None:
            raise ValueError("max_cost needs costs (it bounds the cost-aware rule)")
        self.costs, self.max_cost = (None if costs is None else list(costs)), max_cost

    def due(self, step: int) -> bool:
        return super().due(step) and not (step == 0 and self.first_mask == "zeros")

    def scores(self) -> list[Tensor]:
        """Fisher scores of the bound parameters, summed over ranks under torch.distributed."""
        if self.fisher_mode == "official":
            scores = fisher_scores_official(self.model, self.params, self.data, self.num_samples, self.loss_fn)
        else:
            scores = fisher_scores(self.model, self.params, self.data, self.num_samples, self.loss_fn,
                                   self.chunk_size)
        all_reduce_(scores)
        return scores

    def bind(self, params: Sequence[Tensor]) -> None:
        if self.costs is not None and len(self.costs) != len(params):
            raise ValueError(f"costs has {len(self.costs)} entries for {len(params)} parameters")
        super().bind(params)

    def _build(self, step: int) -> list[Tensor]:
        if self.costs is not None:
            return patterns.cost_aware(self.scores(), self.costs, self.sparsity,
                                       self.pattern, self.max_cost)  # type: ignore[arg-type]  # checked in __init__
        return patterns.from_pattern(self.scores(), self.pattern, self.sparsity, dim=self.nm_dim)


class DynamicMask(MaskStrategy):
    """SSAM-D: random initial mask, then drop-and-regrow on schedule at constant density.

    At an update at step ``t`` the drop rate is ``α_t = drop_rate · (1 + cos(π t / total_steps)) / 2``
    and ``k = int(α_t · live)`` entries are exchanged: the ``k`` live entries with the smallest
    drop criterion are dropped and ``k`` entries among those dead before this update (so never one
    just dropped) are regrown by the grow criterion. Ties go to the lower index (see
    :func:`sparsam.masks.patterns.top_k`).

    Args:
        sparsity: fraction NOT perturbed, in [0, 1).
        update_every, update_unit, steps_per_epoch: T_m in steps or epochs.
        total_steps: length of the run in optimizer steps, for the cosine decay (required).
        drop_rate: α at step 0, in [0, 1].
        drop_criterion: "gradient" (smallest |g| of the clean first-pass gradient), "weight"
            (smallest |w|) or "random".
        grow_criterion: "random" (default), "gradient" (largest |g|) or "weight" (largest |w|).
        seed: seeds the generator of every random choice; the same seed on every rank keeps
            masks identical under torch.distributed.
    """

    # The version of what it computes (stored in every run record, sparsam.experiment.optimizers.numerics): raise it
    # when a change alters any number it produces; tests/optim/test_numerics.py fingerprints each version.
    NUMERICS: ClassVar[int] = 1

    needs_gradient = True
    CRITERIA = ("gradient", "weight", "random")

    def __init__(self, sparsity: float = 0.5, update_every: int = 1, update_unit: UpdateUnit = "steps",
                 steps_per_epoch: int | None = None, *, total_steps: int, drop_rate: float = 0.5,
                 drop_criterion: Criterion = "gradient", grow_criterion: Criterion = "random", seed: int = 0):
        super().__init__(update_every, update_unit, steps_per_epoch)
        self.sparsity = check_range("sparsity", sparsity, 0.0, 1.0)
        self.total_steps = check_int("total_steps", total_steps, 1)
        self.drop_rate = check_range("drop_rate", drop_rate, 0.0, 1.0, high_open=False)
        self.drop_criterion = check_choice("drop_criterion", drop_criterion, self.CRITERIA)
        self.grow_criterion = check_choice("grow_criterion", grow_criterion, self.CRITERIA)
        self.generator = torch.Generator().manual_seed(seed)

    def _initial_masks(self) -> list[Tensor]:
        scores = [torch.rand(p.shape, generator=self.generator).to(p.device) for p in self.params]
        return patterns.unstructured(scores, self.sparsity)

    def due(self, step: int) -> bool:
        return step > 0 and super().due(step)

    def drop_fraction(self, step: int) -> float:
        """α at ``step``: cosine decay from ``drop_rate`` to 0 over ``total_steps``."""
        return self.drop_rate * 0.5 * (1.0 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))

    def _criterion(self, name: Criterion) -> Tensor:
        if name == "random":
            total = sum(p.numel() for p in self.params)
            return torch.rand(total, generator=self.generator).to(self.params[0].device)
        if name == "weight":
            return torch.cat([p.detach().abs().reshape(-1) for p in self.params])
        grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in self.params]
        all_reduce_(grads, average=True)
        return torch.cat([g.abs().reshape(-1) for g in grads])

    def _build(self, step: int) -> list[Tensor]:
        live = torch.cat([m.reshape(-1) for m in self.masks])
        dead_before = ~live
        k = min(int(self.drop_fraction(step) * int(live.sum())), int(dead_before.sum()))
        new = live.clone()
        if k > 0:
            drop = self._criterion(self.drop_criterion).float().masked_fill(dead_before, math.inf)
            new[patterns.top_k(drop, k, largest=False)] = False
            grow = self._criterion(self.grow_criterion).float().masked_fill(live, -math.inf)
            new[patterns.top_k(grow, k)] = True
        return [m.view_as(p) for m, p in zip(new.split([p.numel() for p in self.params]), self.params)]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.generator.set_state(state["generator"])


class NormMask(MaskStrategy):
    """SAM-ON (Mueller et al., NeurIPS 2023): perturb only the affine parameters of the normalisation
    layers (:data:`sparsam._layers.NORM_LAYERS`), a fixed mask built when bound and never rebuilt.

    Use it with ``SSAM(..., normalize="masked")``: ε = ρ g_N / ‖g_N‖ has radius ρ over the normalisation
    parameters alone (with SAM's full-gradient norm the perturbation would nearly vanish).

    Args:
        model: the network whose parameters the optimizer trains (the plain module, not a DDP wrapper).
    """

    # The version of what it computes (stored in every run record, sparsam.experiment.optimizers.numerics): raise it
    # when a change alters any number it produces; tests/optim/test_numerics.py fingerprints each version.
    NUMERICS: ClassVar[int] = 1

    pattern = "norm-only"

    def __init__(self, model: nn.Module):
        super().__init__(update_every=1, update_unit="steps", steps_per_epoch=None)
        self.model = model

    def _initial_masks(self) -> list[Tensor]:
        norm = {id(p) for p in norm_parameters(self.model)}
        if not norm & {id(p) for p in self.params}:
            raise ValueError("NormMask: none of the optimizer's parameters belongs to a normalisation layer of "
                             f"the model ({', '.join(t.__name__ for t in NORM_LAYERS)})")
        return patterns.norm_only([id(p) in norm for p in self.params], self.params)

    def due(self, step: int) -> bool:
        return False  # the mask is fixed (rebinding to a new parameter list builds it afresh)

    def _build(self, step: int) -> list[Tensor]:
        return self.masks
