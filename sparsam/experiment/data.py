"""Datasets, the papers' transforms and reproducible loaders.

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

import dataclasses
import functools
import hashlib
import io
import math
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from torchvision.transforms import v2

from .._checks import check_choice, check_int, check_range

__all__ = ["DATASETS", "CHECKSUMS", "DataSource", "ArrayDataset", "Cutout", "EpochLoader", "GpuBatches",
           "Loaders", "data_root", "cache_dir", "sha256", "verify", "load_dataset", "balanced_subset",
           "cifar_transform", "imagenet_transform", "cutout_", "make_loaders", "check_dataset", "AUGMENTATIONS",
           "with_label_noise", "PACKS", "IMAGE_SIZES", "pack_note", "current_note"]

DATASETS = ("cifar10", "cifar100", "cifar100-subset", "imagenette", "imagenette-tiny", "imagefolder:<path>")

CHECKSUMS = {
    "cifar10-jpeg.npz": "771bab32135042bb4ad5aaa030373cd3ea016b16b46aafa701ba0c30964ec47b",
    "cifar100-exact-subset.npz": "b6b29f6761352b4367359214022913a2e828d6b01c423b820be33e24bed41e57",
    "imagenette-tiny64.npz": "e22aaa9f44381ee46dabcae0eb51ea7e8e139029834960255127f5ac43eaec61",
    "imagenette-72px.tar.gz": "97b092b9a91601298e15f83c6ee594c11a8e345f52311da54e0133a82752d350",
}

# CIFAR training augmentations by name: (RandomCrop padding, horizontal flip, Cutout size); 0 = off.
# "crop-flip-cutout" is the papers' recipe; the lighter ones let small networks fit on a CPU budget.
AUGMENTATIONS = {"crop-flip-cutout": (4, True, 16), "crop-flip": (4, True, 0), "flip": (0, True, 0),
                 "none": (0, False, 0)}

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_STATS = {"cifar10": (CIFAR10_MEAN, CIFAR10_STD), "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
          "cifar100-subset": (CIFAR100_MEAN, CIFAR100_STD)}  # the CIFAR-style (GPU-resident) datasets

_NOTES = {
    "cifar10-jpeg.npz": "JPEG re-encoding of CIFAR-10 (Krizhevsky 2009), lossy: median PSNR 30.5 dB against the "
                        "official pixels, as the data folder's README states; its effect on accuracy is not "
                        "measured here",
    "cifar100-exact-subset.npz": "281 train + 148 test exact CIFAR-100 images (98 classes): loader tests "
                                 "only, meaningless for accuracy",
    "imagenette-tiny64.npz": "300 train + 100 val Imagenette images at 64 px: tests of the ImageNet path only",
    "imagenette-72px.tar.gz": "Imagenette (imagenette2, 10 ImageNet-1k classes) resized to 72 px: an ImageNet "
                              "proxy, RandomResizedCrop(64) train / CenterCrop(64) eval; not ImageNet-1k",
}

# Notes that records made earlier keep for a pack, each with the pack it describes: a record's note is history,
# the pack's note (current_note) is what the book shows.
_EARLIER_NOTES = {
    "JPEG re-encoding of CIFAR-10 (Krizhevsky 2009), lossy: median PSNR 30.5 dB; expect accuracies a few tenths "
    "of a point below the official data": "cifar10-jpeg.npz",  # the accuracy gap was the README's guess, unmeasured
}

# The pack each data set name reads from SPARSAM_DATA ("cifar10" falls back to torchvision without it).
PACKS = {"cifar10": "cifar10-jpeg.npz", "cifar100-subset": "cifar100-exact-subset.npz",
         "imagenette-tiny": "imagenette-tiny64.npz", "imagenette": "imagenette-72px.tar.gz"}
# The ImageNet-style data sets' image sizes in px: (crop, resize before the evaluation centre crop, None: none);
# "imagefolder" stands for every "imagefolder:<path>".
IMAGE_SIZES: dict[str, tuple[int, int | None]] = {"imagenette": (64, 72), "imagenette-tiny": (64, None),
                                                  "imagefolder": (224, 256)}


def current_note(note: str) -> str:
    """The note a pack has now for a ``note`` an earlier record keeps (:data:`_EARLIER_NOTES`); any other note as
    it is."""
    return _NOTES[_EARLIER_NOTES[note]] if note in _EARLIER_NOTES else note


def pack_note(name: str) -> str | None:
    """The data note (:attr:`DataSource.note`) a run of data set ``name`` records when its data comes from the
    data set's pack in :data:`PACKS`; None for a data set without a pack."""
    check_dataset(name)
    return _NOTES[PACKS[name]] if name in PACKS else None


@dataclass(frozen=True)
class DataSource:
    """Where a dataset came from, for run provenance (``sha256`` is None for unchecked sources)."""

    name: str
    path: str
    sha256: str | None
    num_classes: int
    note: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_dataset(name: str) -> str:
    """Return ``name`` if :func:`load_dataset` knows it (see :data:`DATASETS`), else raise ``ValueError``."""
    if not isinstance(name, str) or not (name in DATASETS[:-1] or name.startswith("imagefolder:")):
        raise ValueError(f"name must be one of {', '.join(DATASETS)}, got {name!r}")
    return name


def data_root() -> Path | None:
    """The folder named by ``SPARSAM_DATA``, or None when the variable is unset or empty."""
    value = os.environ.get("SPARSAM_DATA")
    if not value:
        return None
    if not Path(value).is_dir():
        raise NotADirectoryError(f"SPARSAM_DATA={value!r} is not a directory")
    return Path(value)


def cache_dir() -> Path:
    """Where extracted archives and downloads go: ``SPARSAM_CACHE``, else ``~/.cache/sparsam``."""
    return Path(os.environ.get("SPARSAM_CACHE") or Path.home() / ".cache" / "sparsam")


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(functools.partial(f.read, 1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256(path)


def verify(path: Path) -> str:
    """Check ``path`` against :data:`CHECKSUMS` (once per path, size and mtime); return its digest."""
    stat = path.stat()
    digest = _sha256_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if digest != CHECKSUMS[path.name]:
        raise ValueError(f"{path} has SHA-256 {digest}, expected {CHECKSUMS[path.name]}: the file is "
                         "corrupt or another version; copy it again")
    return digest


def _missing(file: str, root: Path | None, route: str) -> FileNotFoundError:
    where = f"in {root}" if root is not None else "(SPARSAM_DATA is unset)"
    return FileNotFoundError(f"{file} not found {where}: set SPARSAM_DATA to the folder holding {file}, "
                             f"or {route}")


def _pack(file: str, root: Path | None, route: str) -> Path:
    """The verified pack ``file`` in ``root`` (default ``SPARSAM_DATA``), else FileNotFoundError."""
    root = root if root is not None else data_root()
    if root is None or not (root / file).is_file():
        raise _missing(file, root, route)
    verify(root / file)
    return root / file


def _source(name: str, path: Path, num_classes: int) -> DataSource:
    """Provenance of a pack: named relative to SPARSAM_DATA (no machine path), identified by its SHA-256."""
    return DataSource(name, f"$SPARSAM_DATA/{path.name}", CHECKSUMS[path.name], num_classes, _NOTES[path.name])


class ArrayDataset(Dataset):
    """In-memory uint8 images (given N×H×W×C) and int64 labels; items are ``(transform(CHW uint8), int)``."""

    def __init__(self, images: np.ndarray | Tensor, labels: np.ndarray | Tensor, transform: Any = None):
        images, labels = torch.as_tensor(images), torch.as_tensor(labels, dtype=torch.int64)
        if images.dtype != torch.uint8 or images.dim() != 4 or len(images) != len(labels):
            raise ValueError(f"images must be uint8 N×H×W×C with N = len(labels), got {images.dtype} "
                             f"{tuple(images.shape)} and {len(labels)} labels")
        self.images = images.permute(0, 3, 1, 2)  # N×C×H×W view, no copy
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        image = self.images[i]
        return (image if self.transform is None else self.transform(image)), int(self.labels[i])

    def subset(self, indices: Sequence[int] | np.ndarray) -> ArrayDataset:
        """The samples at ``indices``, same transform."""
        index = torch.as_tensor(indices, dtype=torch.int64)
        return ArrayDataset(self.images[index].permute(0, 2, 3, 1), self.labels[index], self.transform)


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


@functools.lru_cache(maxsize=None)
def _decode_cifar10_pack(path: str, split: str) -> tuple[Tensor, Tensor]:
    """All JPEGs of one split decoded to uint8 N×32×32×3 and int64 labels: once per machine.

    The decoded pixels are kept in :func:`cache_dir` (``decoded/cifar10-jpeg-<digest>-<split>.npy``, 154 MB
    for the training split), named by the pack's SHA-256, written atomically, and read back by every later
    process (decoding takes about 10 s a process; reading, a fraction of a second). Where the cache cannot
    be written, every process decodes the pack itself.
    """
    with np.load(path, allow_pickle=False) as pack:
        labels = torch.from_numpy(pack[f"{split}_labels"].astype(np.int64))
        resolved, stat = Path(path).resolve(), Path(path).stat()
        digest = _sha256_cached(str(resolved), stat.st_size, stat.st_mtime_ns)
        cached = cache_dir() / "decoded" / f"cifar10-jpeg-{digest[:16]}-{split}.npy"
        if cached.is_file():
            images = np.load(cached, allow_pickle=False)
            if images.shape == (len(labels), 32, 32, 3) and images.dtype == np.uint8:
                return torch.from_numpy(images), labels
        blob, offsets = pack[f"{split}_jpeg"].tobytes(), pack[f"{split}_offsets"].tolist()
    images = np.stack([np.asarray(Image.open(io.BytesIO(blob[a:b])).convert("RGB"))
                       for a, b in zip(offsets[:-1], offsets[1:])])
    partial = cached.with_name(f"{cached.name}.{os.getpid()}.partial")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as f:
            np.save(f, images, allow_pickle=False)
        os.replace(partial, cached)
    except OSError:  # a read-only or full cache: decode again next time
        partial.unlink(missing_ok=True)
    return torch.from_numpy(images), labels


def _torchvision_cifar(cls: type, name: str, split: str, root: Path | None, download: bool,
                       file: str, augment: str) -> tuple[ArrayDataset, DataSource]:
    folder = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}[name]
    route = (f"pass root=<folder holding {folder}/> (command line: --data-root DIR), or download=True "
             f"(--download) to fetch it with torchvision.datasets.{cls.__name__}")
    root = root if root is not None else data_root()
    if root is None and download:
        root = cache_dir() / "torchvision"
    if root is None:
        raise _missing(file, root, route)
    try:
        ds = cls(str(root), train=split == "train", download=download)
    except RuntimeError as error:  # torchvision's "Dataset not found or corrupted"
        raise _missing(file, root, route) from error
    except OSError as error:  # the download itself (no connection, a server error, a full disk)
        raise OSError(f"downloading {cls.__name__} into {root} failed ({error}); check the internet connection, "
                      f"or put {folder}/ there yourself") from error
    mean, std = _STATS[name]
    note = f"official {cls.__name__} (torchvision format, md5-checked by torchvision)"
    return (ArrayDataset(ds.data, ds.targets, cifar_transform(split == "train", mean, std, augment)),
            DataSource(name, str(root), None, len(ds.classes), note))


def _extract_once(archive: Path) -> Path:
    """Extract ``archive`` into :func:`cache_dir` once; the result folder appears only when complete.

    Extraction goes into a fresh temporary folder beside the target, renamed into place atomically, so
    an interrupted or concurrent extraction never leaves a partial folder under the trusted name
    (stale ``.*.partial`` folders of killed processes are ignored and may be deleted).
    """
    target = cache_dir() / f"{archive.name.removesuffix('.tar.gz')}-{CHECKSUMS[archive.name][:12]}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():  # a real failure, not a concurrent extraction that finished first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _imagefolder(path: Path, split: str, transform: v2.Compose) -> torchvision.datasets.ImageFolder:
    folder = path / ("train" if split == "train" else "val")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: an image folder needs {path}/train and {path}/val, "
                                "each with one sub-folder of images per class")
    return torchvision.datasets.ImageFolder(str(folder), transform=transform)


def load_dataset(name: str, split: str, root: str | Path | None = None, download: bool = False,
                 augment: str = "crop-flip-cutout") -> tuple[Dataset, DataSource]:
    """The ``split`` ("train" or "test"; Imagenette's "test" is its val set) of ``name`` with its transforms.

    ``augment`` names the CIFAR training augmentation (:data:`AUGMENTATIONS`); the ImageNet-style
    datasets have only their papers' augmentation.

    ``root`` replaces ``SPARSAM_DATA`` as the folder searched for packs and torchvision roots;
    ``download`` lets torchvision fetch CIFAR-10/100 into ``root`` (default ``cache_dir()/torchvision``).
    Items are ``(float C×H×W normalised tensor, int label)``; train splits are augmented.
    """
    check_dataset(name)
    check_choice("split", split, ("train", "test"))
    check_choice("augment", augment, tuple(AUGMENTATIONS))
    if augment != "crop-flip-cutout" and name not in _STATS:
        raise ValueError(f"augment applies to the CIFAR datasets ({', '.join(_STATS)}) only; "
                         f"use 'crop-flip-cutout' for {name!r}")
    root = Path(root) if root is not None else None
    train = split == "train"
    if name == "cifar10":
        folder = root if root is not None else data_root()
        path = folder / PACKS["cifar10"] if folder is not None else None
        if path is None or not path.is_file():
            return _torchvision_cifar(torchvision.datasets.CIFAR10, name, split, root, download, PACKS["cifar10"],
                                      augment)
        verify(path)
        images, labels = _decode_cifar10_pack(str(path), split)
        return ArrayDataset(images, labels, cifar_transform(train, augment=augment)), _source(name, path, 10)
    if name == "cifar100":
        return _torchvision_cifar(torchvision.datasets.CIFAR100, name, split, root, download, "cifar-100-python",
                                  augment)
    if name == "cifar100-subset":
        path = _pack(PACKS["cifar100-subset"], root, "use name='cifar100' with a torchvision root")
        with np.load(path, allow_pickle=False) as pack:
            dataset = ArrayDataset(pack[f"x_{split}"], pack[f"y_{split}_fine"],
                                   cifar_transform(train, CIFAR100_MEAN, CIFAR100_STD, augment))
        return dataset, _source(name, path, 100)
    if name == "imagenette-tiny":
        path = _pack(PACKS["imagenette-tiny"], root, "use name='imagefolder:<path>' with your own images")
        key = "train" if train else "val"
        with np.load(path, allow_pickle=False) as pack:
            dataset = ArrayDataset(pack[f"x_{key}"], pack[f"y_{key}"],
                                   imagenet_transform(train, *IMAGE_SIZES["imagenette-tiny"]))
        return dataset, _source(name, path, 10)
    if name == "imagenette":
        path = _pack(PACKS["imagenette"], root, "use name='imagefolder:<path>' with an extracted copy")
        folder = _extract_once(path) / "imagenette_72px"
        dataset = _imagefolder(folder, split, imagenet_transform(train, *IMAGE_SIZES["imagenette"]))
        return dataset, _source(name, path, len(dataset.classes))
    if name.startswith("imagefolder:"):
        path = Path(name.removeprefix("imagefolder:")).expanduser()
        dataset = _imagefolder(path, split, imagenet_transform(train, *IMAGE_SIZES["imagefolder"]))
        return dataset, DataSource(name, str(path), None, len(dataset.classes), "user image folder")
    raise AssertionError(f"check_dataset accepted {name!r} but no loader handles it")


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
    """A shuffling train DataLoader whose epoch ``e`` depends only on ``(seed, e, rank)``; see the module doc.

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
    if gpu_resident and device.type == "cuda" and name in _STATS:
        mean, std = _STATS[name]
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
