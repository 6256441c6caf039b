"""Datasets, the papers' transforms and reproducible loaders: a package of three modules, :mod:`.sources` (the data
sets, their packs, checksums and torchvision download), :mod:`.transforms` and :mod:`.loaders` (subsets, label noise,
the loaders), whose public names are all importable from here.

Data comes from the folder in ``SPARSAM_DATA`` (checksummed packs) or from a torchvision-format root.
Names accepted by :func:`load_dataset` and :func:`make_loaders` (:data:`DATASETS`):

- ``"cifar10"``: the pack ``cifar10-jpeg.npz`` (a lossy JPEG re-encoding, see :class:`DataSource`),
  else ``torchvision.datasets.CIFAR10(root, download=download)``;
- ``"cifar100"``: torchvision format only; ``"cifar100-subset"``: 281 + 148 exact images, for tests;
- ``"imagenette"``: the 72-px ImageFolder tarball, extracted once into :func:`cache_dir`;
  ``"imagenette-tiny"``: 300 + 100 images at 64 px, for tests;
- ``"imagefolder:<path>"``: any ``<path>/{train,val}/<class>/*`` folder, with ImageNet transforms.

Reproducibility contract (what the training harness relies on for bit-identical resume):
:func:`make_loaders` returns a train loader (:class:`EpochLoader`, or :class:`GpuBatches` on CUDA)
with ``set_epoch(epoch)``. Call it before iterating each epoch; epoch ``e`` is then a pure function
of ``(seed, e, rank)``: the order is ``DistributedSampler(seed=seed)``'s permutation for epoch ``e``
and the augmentation draws come from a private generator seeded from ``(seed, e, rank)``. The loaders
never read or advance torch's global RNG (with ``num_workers=0`` the augmentation state is swapped in
around each batch; workers are seeded from the loader's own generator), so the model's dropout and
the harness's own reseeding are unaffected. Resuming at an epoch boundary therefore reproduces the
run exactly on the same machine and software; mid-epoch positions are not restorable.
"""

from __future__ import annotations

from .loaders import EpochLoader, GpuBatches, Loaders, balanced_subset, endless, make_loaders, with_label_noise
from .sources import (CHECKSUMS, DATASETS, IMAGE_SIZES, PACKS, ArrayDataset, DataSource, cache_dir, check_dataset,
                      current_note, data_root, load_dataset, pack_note, sha256, verify)
from .transforms import (AUGMENTATIONS, CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, CIFAR_STATS,
                         IMAGENET_MEAN, IMAGENET_STD, Cutout, cifar_transform, cutout_, imagenet_transform)

__all__ = ["DATASETS", "CHECKSUMS", "DataSource", "ArrayDataset", "Cutout", "EpochLoader", "GpuBatches",
           "Loaders", "data_root", "cache_dir", "sha256", "verify", "load_dataset", "balanced_subset",
           "cifar_transform", "imagenet_transform", "cutout_", "make_loaders", "check_dataset", "AUGMENTATIONS",
           "with_label_noise", "PACKS", "IMAGE_SIZES", "pack_note", "current_note", "endless", "CIFAR10_MEAN",
           "CIFAR10_STD", "CIFAR100_MEAN", "CIFAR100_STD", "IMAGENET_MEAN", "IMAGENET_STD", "CIFAR_STATS"]
