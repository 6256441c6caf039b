"""Layer and mask-shape predicates shared by the masks (layer 0) and the optimizers (layer 0).

One place for the tests that decide which fast path a layer or a mask may take:

* :func:`pads_inside`: a ``nn.Conv2d`` whose zero padding is given as numbers, so that
  ``F.conv2d(x, weight, bias, stride, padding, dilation, groups)`` is the layer (other padding modes,
  and ``padding="same"``, pad the input first);
* :func:`kept_rows_layer`: a layer whose weight gradient can be formed for some output rows only;
* :func:`full_rows`: whether a mask is made of whole rows along dim 0, and which;
* :func:`norm_parameters`: the affine parameters of a network's normalisation layers (SAM-ON's mask).
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["pads_inside", "kept_rows_layer", "full_rows", "NORM_LAYERS", "norm_parameters"]

# The normalisation layers whose affine parameters SAM-ON perturbs (Mueller et al., NeurIPS 2023):
# batch, group, layer, instance and RMS normalisation, and their synchronised variant.
NORM_LAYERS: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
                                            nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
                                            nn.InstanceNorm3d, nn.RMSNorm)


def pads_inside(layer: nn.Conv2d) -> bool:
    """Whether ``layer`` pads with zeros by numbers given in ``layer.padding``."""
    return layer.padding_mode == "zeros" and not isinstance(layer.padding, str)


def kept_rows_layer(module: nn.Module) -> bool:
    """Whether the weight gradient of ``module`` can be formed for kept output rows only: an ``nn.Linear``,
    or an ``nn.Conv2d`` of one group that :func:`pads_inside`."""
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1
                                             and pads_inside(module))


def full_rows(mask: Tensor) -> Tensor | None:
    """The boolean rows (along dim 0) that ``mask`` keeps whole, if every row is kept whole or not at all;
    ``None`` for a mask of fewer than two dimensions or one that keeps part of a row."""
    if mask.dim() < 2:
        return None
    flat = mask.reshape(mask.shape[0], -1)
    whole = flat.all(1)
    return whole if bool((whole == flat.any(1)).all()) else None


def norm_parameters(model: nn.Module) -> list[Tensor]:
    """The parameters (weights and biases) of the :data:`NORM_LAYERS` in ``model``, in module order."""
    return [p for module in model.modules() if isinstance(module, NORM_LAYERS)
            for p in module.parameters(recurse=False)]
