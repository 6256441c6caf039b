"""Where the data sets come from: the checksummed packs of ``SPARSAM_DATA`` (:data:`PACKS`, :data:`CHECKSUMS`,
:func:`verify`), torchvision-format roots and their download, image folders, and :func:`load_dataset`, one split of
a data set by name (:data:`DATASETS`) with its transforms (:mod:`sparsam.experiment.data.transforms`)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from ..._checks import check_choice
from .transforms import AUGMENTATIONS, CIFAR100_MEAN, CIFAR100_STD, CIFAR_STATS, cifar_transform, imagenet_transform

DATASETS = ("cifar10", "cifar100", "cifar100-subset", "imagenette", "imagenette-tiny", "imagefolder:<path>")

CHECKSUMS = {
    "cifar10-jpeg.npz": "771bab32135042bb4ad5aaa030373cd3ea016b16b46aafa701ba0c30964ec47b",
    "cifar100-exact-subset.npz": "b6b29f6761352b4367359214022913a2e828d6b01c423b820be33e24bed41e57",
    "imagenette-tiny64.npz": "e22aaa9f44381ee46dabcae0eb51ea7e8e139029834960255127f5ac43eaec61",
    "imagenette-72px.tar.gz": "97b092b9a91601298e15f83c6ee594c11a8e345f52311da54e0133a82752d350",
}

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
    mean, std = CIFAR_STATS[name]
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
    if augment != "crop-flip-cutout" and name not in CIFAR_STATS:
        raise ValueError(f"augment applies to the CIFAR datasets ({', '.join(CIFAR_STATS)}) only; "
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
