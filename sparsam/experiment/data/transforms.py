"""The papers' transforms: the CIFAR training augmentations by name (:data:`AUGMENTATIONS`: crop, flip, Cutout),
the normalisation statistics (:data:`CIFAR_STATS` for the CIFAR-style data sets) and the ImageNet-style crops."""

from __future__ import annotations

import functools
from typing import Any, Sequence

import torch
from torch import Tensor
from torchvision.transforms import v2

from ..._checks import check_choice, check_int

# CIFAR training augmentations by name: (RandomCrop padding, horizontal flip, Cutout size); 0 = off.
# "crop-flip-cutout" is the papers' recipe; the lighter ones let small networks fit on a CPU budget.
AUGMENTATIONS = {"crop-flip-cutout": (4, True, 16), "crop-flip": (4, True, 0), "flip": (0, True, 0),
                 "none": (0, False, 0)}

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# The CIFAR-style data sets (those GpuBatches can hold on a GPU) and their normalisation statistics.
CIFAR_STATS = {"cifar10": (CIFAR10_MEAN, CIFAR10_STD), "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
               "cifar100-subset": (CIFAR100_MEAN, CIFAR100_STD)}


def cutout_(images: Tensor, size: int = 16, generator: torch.Generator | None = None) -> Tensor:
    """Zero one ``size``×``size`` square per image in place (DeVries & Taylor 2017); ``images``: (..., C, H, W).

    The square is centred at a uniformly drawn pixel and clipped at the borders.
    """
    *batch, _, h, w = images.shape
    draw = functools.partial(torch.randint, size=(*batch, 1, 1), generator=generator, device=images.device)
    top, left = draw(h) - size // 2, draw(w) - size // 2
    rows = torch.arange(h, device=images.device).view(h, 1)
    cols = torch.arange(w, device=images.device).view(1, w)
    mask = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return images.masked_fill_(mask.unsqueeze(-3), 0)


class Cutout(torch.nn.Module):
    """Transform form of :func:`cutout_` (on a normalised tensor, so the square is 0 = the mean)."""

    def __init__(self, size: int = 16):
        super().__init__()
        self.size = check_int("size", size, 1)

    def forward(self, image: Tensor) -> Tensor:
        return cutout_(image.clone(), self.size)


def _normalised(mean: Sequence[float], std: Sequence[float]) -> list[Any]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std), v2.ToPureTensor()]


def cifar_transform(train: bool, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                    augment: str = "crop-flip-cutout") -> v2.Compose:
    """Train: the ``augment`` of :data:`AUGMENTATIONS` (default the papers' RandomCrop(32, padding=4), flip,
    Cutout(16)) around the normalisation; test: normalise only."""
    check_choice("augment", augment, tuple(AUGMENTATIONS))
    padding, flip, cutout = AUGMENTATIONS[augment] if train else (0, False, 0)
    geometry = ([v2.RandomCrop(32, padding=padding)] if padding else []) + ([v2.RandomHorizontalFlip()] if flip else [])
    return v2.Compose([v2.ToImage(), *geometry, *_normalised(mean, std), *([Cutout(cutout)] if cutout else [])])


def imagenet_transform(train: bool, size: int = 224, resize: int | None = 256) -> v2.Compose:
    """Train: RandomResizedCrop(size), flip; eval: Resize(resize) (skipped if None), CenterCrop(size)."""
    if train:
        geometry = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
    else:
        geometry = ([v2.Resize(resize, antialias=True)] if resize else []) + [v2.CenterCrop(size)]
    return v2.Compose([v2.ToImage(), *geometry, *_normalised(IMAGENET_MEAN, IMAGENET_STD)])
