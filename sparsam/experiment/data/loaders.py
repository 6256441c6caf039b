"""Reproducible loaders (the contract in :mod:`sparsam.experiment.data`'s docstring): :func:`make_loaders`, its
:class:`EpochLoader` (or :class:`GpuBatches`, the whole data set on a GPU), seeded class-balanced subsets
(:func:`balanced_subset`) and symmetric label noise (:func:`with_label_noise`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ..._checks import check_int, check_range
from .sources import ArrayDataset, DataSource, load_dataset
from .transforms import AUGMENTATIONS, CIFAR_STATS, cutout_


def balanced_subset(labels: Sequence[int] | np.ndarray | Tensor, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` samples, as equal per class as the class sizes allow; fixed by ``seed``.

    Classes take turns (in a seeded order) giving their next seeded-random sample, so class counts
    differ by at most one unless a class runs out.
    """
    labels = np.asarray(labels)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(labels):
        raise ValueError(f"n must be an integer in [1, {len(labels)}], got {n!r}")
    rng = np.random.default_rng(check_int("seed", seed, 0))
    turn, rank, index = [], [], []
    for k, c in enumerate(rng.permutation(np.unique(labels))):
        members = rng.permutation(np.flatnonzero(labels == c))
        turn.append(np.full(len(members), k))
        rank.append(np.arange(len(members)))
        index.append(members)
    order = np.lexsort((np.concatenate(turn), np.concatenate(rank)))[:n]
    return np.sort(np.concatenate(index)[order])


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A well-mixed 64-bit seed for the augmentation draws of (seed, epoch, rank)."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, np.uint64)[0])


class EpochLoader:
    """A shuffling train DataLoader whose epoch ``e`` depends only on ``(seed, e, rank)``; see
    :mod:`sparsam.experiment.data`.

    Iterate it like the DataLoader (``self.loader``); call :meth:`set_epoch` before each epoch.
    """

    def __init__(self, dataset: Dataset, batch_size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                 num_workers: int = 0, drop_last: bool = False, pin_memory: bool = False):
        self.dataset, self.seed, self.rank = dataset, seed, rank
        self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        self.generator = torch.Generator()  # seeds the workers; never the global RNG
        self.loader = DataLoader(dataset, batch_size, sampler=self.sampler, num_workers=num_workers,
                                 drop_last=drop_last, pin_memory=pin_memory, generator=self.generator)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch``'s order and augmentation draws."""
        self.epoch = check_int("epoch", epoch, 0)
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        self.generator.manual_seed(_epoch_seed(self.seed, self.epoch, self.rank))
        if self.loader.num_workers > 0:  # each worker seeds itself from self.generator
            yield from self.loader
            return
        state = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch, self.rank)).get_state()
        batches = iter(self.loader)
        while True:  # transforms draw from the global RNG: run them on the epoch's own state
            outer = torch.get_rng_state()
            torch.set_rng_state(state)
            try:
                batch = next(batches)
            except StopIteration:
                return
            finally:
                state = torch.get_rng_state()
                torch.set_rng_state(outer)
            yield batch


def endless(loader: EpochLoader | GpuBatches, device: str | torch.device = "cpu") -> Iterator[tuple[Tensor, Tensor]]:
    """The ``(x, y)`` batches of ``loader`` on ``device``, epoch 0, 1, 2, ... after one another, without end."""
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        for x, y in loader:
            yield x.to(device), y.to(device)
        epoch += 1


class GpuBatches:
    """Batches of a whole :class:`ArrayDataset` held on ``device``, augmented there in batch.

    Train: the same per-epoch order as :class:`EpochLoader`, then RandomCrop(padding) + flip +
    normalise + Cutout (each off when 0 / False), drawn from a ``device`` generator seeded from
    ``(seed, epoch, rank)``.
    Test (``train=False``): normalise only, in order, rank ``r`` of ``w`` taking samples r, r+w, ...
    ``dataset`` stays available (on the CPU, with its own transform) for random access.
    """

    def __init__(self, dataset: ArrayDataset, batch_size: int, mean: Sequence[float], std: Sequence[float], *,
                 train: bool, device: str | torch.device = "cuda", seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False, padding: int = 4, flip: bool = True,
                 cutout: int = 16):
        self.dataset, self.train, self.seed, self.rank, self.flip = dataset, train, seed, rank, flip
        self.batch_size, self.drop_last = check_int("batch_size", batch_size, 1), drop_last
        self.padding, self.cutout = check_int("padding", padding, 0), check_int("cutout", cutout, 0)
        self.device = torch.device(device)
        self.images = dataset.images.permute(0, 2, 3, 1).to(self.device).contiguous()  # N×H×W×C: fast crops
        self.labels = dataset.labels.to(self.device)
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1)
        self.sampler = DistributedSampler(range(len(dataset)), num_replicas=world_size, rank=rank, seed=seed)
        self.eval_order = torch.arange(rank, len(dataset), world_size, device=self.device)
        self.generator = torch.Generator(self.device)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch``'s order and augmentation draws."""
        self.epoch = check_int("epoch", epoch, 0)
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        n = len(self.sampler) if self.train else len(self.eval_order)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self.eval_order
        if self.train:
            order = torch.tensor(list(self.sampler), device=self.device)
            self.generator.manual_seed(_epoch_seed(self.seed, self.epoch, self.rank))
        for i in range(len(self)):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            images = self.images[index]
            yield (self._augment(images) if self.train else self._normalise(images)), self.labels[index]

    def _normalise(self, images: Tensor) -> Tensor:
        """N×H×W×C uint8 to normalised N×C×H×W float."""
        return (images.permute(0, 3, 1, 2).float().div_(255) - self.mean).div_(self.std).contiguous()

    def _augment(self, images: Tensor) -> Tensor:
        n, h, w, _ = images.shape
        p, g = self.padding, self.generator
        padded = F.pad(images, (0, 0, p, p, p, p))
        top = torch.randint(2 * p + 1, (n, 1), generator=g, device=self.device)
        left = torch.randint(2 * p + 1, (n, 1), generator=g, device=self.device)
        flip = (torch.rand((n, 1), generator=g, device=self.device) < 0.5) & self.flip
        rows = top + torch.arange(h, device=self.device)
        cols = left + torch.where(flip, torch.arange(w - 1, -1, -1, device=self.device),
                                  torch.arange(w, device=self.device))
        crops = padded[torch.arange(n, device=self.device).view(n, 1, 1), rows.view(n, h, 1), cols.view(n, 1, w)]
        out = self._normalise(crops)
        return cutout_(out, self.cutout, g) if self.cutout else out


class Loaders(NamedTuple):
    """What :func:`make_loaders` returns."""

    train: EpochLoader | GpuBatches
    test: DataLoader | GpuBatches
    source: DataSource


def with_label_noise(dataset: Dataset, fraction: float, num_classes: int, seed: int) -> ArrayDataset:
    """A copy of ``dataset`` whose labels are wrong for ``round(fraction * len)`` samples chosen by ``seed``.

    Symmetric noise: each chosen label becomes one of the *other* ``num_classes - 1`` classes, uniformly,
    so exactly that many labels are wrong. In-memory (:class:`ArrayDataset`) datasets only.
    """
    check_range("label_noise", fraction, 0.0, 1.0)
    if not isinstance(dataset, ArrayDataset):
        raise ValueError(f"label_noise needs an in-memory CIFAR-style dataset, got {type(dataset).__name__}")
    generator = torch.Generator().manual_seed(seed * 7_919 + 17)
    chosen = torch.randperm(len(dataset), generator=generator)[: round(fraction * len(dataset))]
    labels = dataset.labels.clone()
    shift = torch.randint(1, num_classes, (len(chosen),), generator=generator)
    labels[chosen] = (labels[chosen] + shift) % num_classes
    return ArrayDataset(dataset.images.permute(0, 2, 3, 1), labels, dataset.transform)


def _subset(dataset: Dataset, n: int | None, seed: int, name: str) -> Dataset:
    """The seeded balanced subset of ``n`` samples (all of them for None); ``name`` is the parameter's."""
    if n is None:
        return dataset
    labels = dataset.labels if isinstance(dataset, ArrayDataset) else dataset.targets
    if isinstance(n, int) and n > len(labels):
        raise ValueError(f"{name} must be at most {len(labels)} (the size of that split), got {n}")
    indices = balanced_subset(labels, n, seed)
    return dataset.subset(indices) if isinstance(dataset, ArrayDataset) else Subset(dataset, indices.tolist())


def make_loaders(name: str, batch_size: int, *, n_train: int | None = None, n_test: int | None = None,
                 seed: int = 0, num_workers: int = 0, rank: int = 0, world_size: int = 1,
                 device: str | torch.device = "cpu", gpu_resident: bool = False, drop_last: bool = False,
                 eval_batch_size: int | None = None, root: str | Path | None = None,
                 download: bool = False, augment: str = "crop-flip-cutout", label_noise: float = 0.0) -> Loaders:
    """Train and test loaders of dataset ``name`` and its :class:`DataSource`.

    ``n_train``/``n_test``: seeded class-balanced subsets (:func:`balanced_subset`). The train loader is
    sharded over ``world_size`` ranks (DistributedSampler); every rank's test loader takes every
    ``world_size``-th sample, so summing counts over ranks gives exact test metrics. With a CUDA
    ``device``, ``gpu_resident=True`` and a CIFAR-style dataset both loaders are :class:`GpuBatches`;
    otherwise the train loader is an :class:`EpochLoader` and the test loader a plain DataLoader.
    ``augment``: the CIFAR training augmentation (:data:`AUGMENTATIONS`). ``label_noise``: the fraction
    of training labels replaced by another class, drawn by :func:`with_label_noise` (test labels stay clean).
    """
    check_int("batch_size", batch_size, 1)
    check_int("seed", seed, 0)
    check_int("num_workers", num_workers, 0)
    check_int("world_size", world_size, 1)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank!r}")
    eval_batch_size = check_int("eval_batch_size", eval_batch_size or batch_size, 1)
    check_range("label_noise", label_noise, 0.0, 1.0)
    train, source = load_dataset(name, "train", root, download, augment)
    test, _ = load_dataset(name, "test", root, download)
    train, test = _subset(train, n_train, seed, "n_train"), _subset(test, n_test, seed, "n_test")
    if label_noise > 0:
        train = with_label_noise(train, label_noise, source.num_classes, seed)
    device = torch.device(device)
    shard = dict(seed=seed, rank=rank, world_size=world_size)
    if gpu_resident and device.type == "cuda" and name in CIFAR_STATS:
        mean, std = CIFAR_STATS[name]
        padding, flip, cutout = AUGMENTATIONS[augment]
        return Loaders(GpuBatches(train, batch_size, mean, std, train=True, device=device, drop_last=drop_last,
                                  padding=padding, flip=flip, cutout=cutout, **shard),
                       GpuBatches(test, eval_batch_size, mean, std, train=False, device=device, **shard), source)
    pin = device.type == "cuda"
    train_loader = EpochLoader(train, batch_size, num_workers=num_workers, drop_last=drop_last, pin_memory=pin,
                               **shard)
    test_loader = DataLoader(Subset(test, range(rank, len(test), world_size)) if world_size > 1 else test,
                             eval_batch_size, num_workers=num_workers, pin_memory=pin,
                             generator=torch.Generator())  # keeps the global RNG untouched
    return Loaders(train_loader, test_loader, source)
