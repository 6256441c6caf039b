"""The optimizers by name: one factory for the trainer, the convergence experiment and the efficiency
measurements (:func:`build_optimizer`).

The name is one of :data:`sparsam.experiment.config.OPTIMIZERS`; the base optimizer is always
``torch.optim.SGD``. SGD takes a plain step, SAM and ASAM the two-pass step of
:class:`sparsam.optim.sam.SAM`, SSAM-F, SSAM-D and SAM-ON the masked one of :class:`sparsam.optim.ssam.SSAM`
(or, for SSAM-F with ``ascent="sparse"``, :class:`sparsam.optim.sparse_ascent.SparseAscentSAM`);
SAM-ON always normalises over its mask (``normalize="masked"``).
Options that do not act on the named optimizer (:data:`sparsam.experiment.config.ACTS_ON`) are
ignored, or rejected when the configuration rejects them too.
"""

from __future__ import annotations

from typing import Any, Iterable, Literal, Mapping, Sequence, cast

import torch
from torch import Tensor, nn

from .._checks import check_choice
from .._types import Form, Normalize
from ..masks import cost, fisher, patterns
from ..masks.strategies import DynamicMask, FisherMask, MaskStrategy, NormMask
from ..optim import implicit
from ..optim.sam import SAM
from ..optim.sparse_ascent import SparseAscentSAM
from ..optim.ssam import SSAM
from .config import ACTS_ON, OPTIMIZERS, Optimizer, acts_on

# The mask strategy each masked optimizer perturbs through (the optimizers that take a mask).
MASKS: dict[Optimizer, type[MaskStrategy]] = {"ssam-f": FisherMask, "ssam-d": DynamicMask, "sam-on": NormMask}
MASK_NAMES = {FisherMask: "fisher_mask", DynamicMask: "dynamic_mask", NormMask: "norm_mask"}


def numerics(config: Mapping[str, Any]) -> dict[str, int]:
    """The algorithms a training configuration (a config dict, :meth:`TrainConfig.to_dict`; missing fields take
    their defaults) runs, each with the version of its numbers (the ``NUMERICS`` it carries): what a run record
    stores, and what makes it stale when a version changes (:func:`sparsam.book.records.stale_reason`), whatever
    module the code sits in. SGD is torch's and runs none of them."""
    optimizer = config.get("optimizer", "sgd")
    if not acts_on("rho", optimizer):
        return {}
    found = {"sam": SAM.NUMERICS}
    mask = MASKS.get(optimizer)
    if mask is None:
        return found
    found |= {"ssam": SSAM.NUMERICS, MASK_NAMES[mask]: mask.NUMERICS, "patterns": patterns.NUMERICS}
    if mask is FisherMask:
        found["fisher_scores"] = fisher.NUMERICS
    if config.get("form", "explicit") == "implicit":
        found["implicit"] = implicit.NUMERICS
    if config.get("ascent", "dense") == "sparse":
        found["sparse_ascent"] = SparseAscentSAM.NUMERICS
    if config.get("ascent", "dense") == "sparse" or config.get("mask_rule", "fisher") == "cost-aware":
        found["cost_model"] = cost.NUMERICS
    return dict(sorted(found.items()))


def build_optimizer(name: Optimizer, params: Iterable[Tensor], *, lr: float, momentum: float = 0.0,
                    weight_decay: float = 0.0, rho: float = 0.05,
                    mask: MaskStrategy | Sequence[Tensor] | None = None,
                    normalize: Normalize = "full", form: Form = "explicit", model: nn.Module | None = None,
                    ascent: Literal["dense", "sparse"] = "dense",
                    stages: Sequence[nn.Module] | None = None, fused: bool = False) -> torch.optim.Optimizer:
    """The optimizer ``name`` over ``params``, on an SGD base with ``lr``, ``momentum`` and ``weight_decay``.

    ``rho``: the radius of the SAM family (ignored by SGD); ``asam`` is SAM with ``adaptive=True``.
    ``mask``: required by the masked optimizers and only by them, a :data:`MASKS` strategy of the
    name (a :class:`FisherMask` for ``ssam-f``, a :class:`DynamicMask` for ``ssam-d``, a :class:`NormMask`
    for ``sam-on``), or, with the
    sparse ascent pass, also fixed per-parameter masks. ``normalize``, ``form`` and ``model`` (the
    trained module, needed by the implicit form) go to :class:`SSAM`. ``ascent="sparse"`` (``ssam-f``
    only): :class:`SparseAscentSAM` over the chain ``stages``
    (:func:`sparsam.experiment.models.model_stages`); it normalises over the mask, so it needs
    ``normalize="masked"``. ``fused``: the base SGD's one-kernel update (``torch.optim.SGD(fused=True)``,
    which a step captured in a CUDA graph needs: :mod:`sparsam.experiment.graphed`).
    """
    check_choice("name", name, OPTIMIZERS)
    check_choice("ascent", ascent, ("dense", "sparse"))
    for option, value, default in (("form", form, "explicit"), ("ascent", ascent, "dense")):
        if value != default and not acts_on(option, name):
            needed = " or ".join(map(repr, ACTS_ON[option]))
            raise ValueError(f"{option}={value!r} applies to optimizer {needed} only, got name={name!r}")
    if stages is not None and ascent != "sparse":
        raise ValueError("stages applies to ascent='sparse' only")
    params = list(params)
    base: dict[str, Any] = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, **({"fused": True} if fused else {}))
    wanted = MASKS.get(name)
    if wanted is None:
        if mask is not None:
            raise ValueError(f"mask applies to optimizer {' or '.join(map(repr, MASKS))} only, got name={name!r}")
        if not acts_on("rho", name):
            return torch.optim.SGD(params, **base)
        return SAM(params, torch.optim.SGD, rho=rho, adaptive=name == "asam", **base)
    fixed = isinstance(mask, (list, tuple)) and all(isinstance(m, Tensor) for m in mask)
    if not (isinstance(mask, wanted) or (ascent == "sparse" and fixed)):
        allowed = f"a {wanted.__name__}" + (" or a list of fixed masks" if ascent == "sparse" else "")
        raise ValueError(f"optimizer {name!r} needs mask=<{allowed}>, got {type(mask).__name__}")
    if ascent == "sparse":
        if stages is None:
            raise ValueError("ascent='sparse' needs stages=[...] (sparsam.experiment.models.model_stages)")
        if normalize != "masked":
            raise ValueError(f"ascent='sparse' needs normalize='masked' (the sparse pass never forms the full "
                             f"gradient), got normalize={normalize!r}")
        return SparseAscentSAM(stages, torch.optim.SGD, rho=rho, mask=cast("MaskStrategy | list[Tensor]", mask),
                               params=params, **base)
    if name == "sam-on":  # its radius is over the normalisation parameters alone (Mueller et al., 2023)
        normalize = "masked"
    return SSAM(params, torch.optim.SGD, rho=rho, mask=cast(MaskStrategy, mask), form=form, normalize=normalize,
                model=model, **base)
