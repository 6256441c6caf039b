"""How far a set of runs is from the papers' setup: a one-line scale and a table of every deviation.

:data:`PAPERS` states the papers' setups in words (CIFAR and ImageNet); :func:`scale_text` describes
the runs of a records frame in one line and :func:`deviation_table` sets them against a paper setup,
one row per aspect (data and its encoding, network, epochs, batch, N_F, seeds, device; for ImageNet also
the resolution and the network's stem). :func:`regime_deviation_table` sets declared regimes (training
configurations, before any run) against it in the same rows; :func:`resolution_text` and :func:`stem_text`
read the resolution from the data module and the stem from the network itself. A paper setup is also the kind of
study a scale is (:attr:`sparsam.book.scales.Scale.paper`): ``"cifar-noise"`` is the papers' CIFAR setup seen by the
label-noise study, which deviates from it by its noisy training labels and sets them against the papers' clean ones
(:func:`labels_text`; :func:`scale_text` names label noise wherever runs have it).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Literal, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from .._checks import check_choice
from ..experiment.config import TrainConfig
from ..experiment.data import IMAGE_SIZES, current_note, pack_note
from ..experiment.models import build_model

Paper = Literal["cifar", "imagenet", "cifar-noise"]
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenette": "Imagenette at 64 px"}
TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000}
CIFAR_SIZE = 32  # px: CIFAR's own image size, trained and tested at it
PAPERS: dict[str, dict[str, str]] = {
    "cifar": {"data": "CIFAR-10 and CIFAR-100, all 50,000 training and 10,000 test images",
              "data encoding": "the original PNG-equivalent arrays", "network": "ResNet-18 and WideResNet-28-10",
              "epochs": "200", "batch": "128", "N_F (Fisher samples)": "128", "seeds": "3 (mean ± std reported)",
              "device": "GPU"},
    "imagenet": {"data": "ImageNet-1k, 1.28 million training images, 1,000 classes",
                 "data encoding": "the original JPEG files",
                 "resolution": "224 px: the standard ImageNet crops (random-resized to train, a centre crop to "
                               "evaluate)",
                 "network": "ResNet-50",
                 "network stem": "7×7 stride-2 convolution, then a 3×3 stride-2 max-pool: 224-px images reach the "
                                 "first stage at 56 px",
                 "epochs": "90", "batch": "256", "N_F (Fisher samples)": "128", "seeds": "not stated",
                 "device": "GPU"},
}
# The label-noise study (chapter 9) is set against the papers' CIFAR setup, whose training labels are the data
# sets' own: its noisy labels are the book's deviation, chosen so that SAM's gain over SGD is large.
PAPERS["cifar-noise"] = {**PAPERS["cifar"], "training labels": "the data sets' own labels (no noise)"}


def _one(values: pd.Series) -> str:
    distinct = sorted({str(v) for v in values})
    return " / ".join(distinct) if distinct else "–"


def _data(frame: pd.DataFrame) -> str:
    parts = []
    for (dataset, n_train, n_test), _ in frame.groupby(["dataset", "n_train", "n_test"], dropna=False):
        name = DATASET_NAMES.get(dataset, dataset)
        train = "all" if pd.isna(n_train) else f"{int(n_train):,}"
        test = "all" if pd.isna(n_test) else f"{int(n_test):,}"
        parts.append(f"{name} ({train} train / {test} test images)")
    return "; ".join(parts) if parts else "–"


PAPERS_NETWORKS = {"cifar": ("resnet18", "wrn28-10"), "imagenet": ("resnet50",)}  # :data:`PAPERS`' networks, by name


def _papers_data(dataset: pd.Series, paper: Paper) -> pd.Series:
    """Whether each data set is one of the papers': CIFAR-10 or CIFAR-100; for ImageNet, a folder of images
    (``imagefolder:<path>``, the way a reader trains on ImageNet-1k; Imagenette is a proxy, never the papers')."""
    if paper == "cifar":
        return dataset.isin(("cifar10", "cifar100"))
    return dataset.astype(str).str.startswith("imagefolder:")


def at_papers_scale(frame: pd.DataFrame, paper: Paper = "cifar") -> pd.Series:
    """Per run of a records frame, whether it ran at the papers' scale (:data:`PAPERS`): on the whole training
    set of one of their data sets, with one of their networks at full width, for their number of epochs or more."""
    check_choice("paper", paper, tuple(PAPERS_NETWORKS))  # the papers' own setups, not the label-noise study's
    if frame.empty:
        return pd.Series(dtype=bool)
    whole = frame["n_train"].isna() | (frame["n_train"] >= frame["dataset"].map(TRAIN_SIZES).fillna(float("inf")))
    return (_papers_data(frame["dataset"], paper) & frame["model"].isin(PAPERS_NETWORKS[paper])
            & frame["width"].isna() & (frame["epochs"] >= int(PAPERS[paper]["epochs"])) & whole)


def papers_scale_text(frame: pd.DataFrame) -> str:
    """Whether any run of a records frame (the book's committed run records) was made at the papers' scale
    (:func:`at_papers_scale`, CIFAR or ImageNet), in a sentence: which and how many, or that none was, and the
    largest that were (most training images x epochs, :func:`scale_text`)."""
    if frame.empty:
        return "No run at the papers' scale exists: the book holds no run record."
    papers = at_papers_scale(frame, "cifar") | at_papers_scale(frame, "imagenet")
    if papers.any():
        verb = "was" if papers.sum() == 1 else "were"
        return (f"{int(papers.sum())} of the book's {len(frame)} run records {verb} made at the papers' scale: "
                f"{scale_text(frame[papers])}.")
    images = frame["n_train"].fillna(frame["dataset"].map(TRAIN_SIZES)).fillna(0) * frame["epochs"]
    largest = frame[images == images.max()]
    return (f"No run at the papers' scale exists: none of the book's {len(frame)} run records trains one of the "
            f"papers' networks on the whole of CIFAR-10, CIFAR-100 or ImageNet for their "
            f"{PAPERS['cifar']['epochs']} (CIFAR) or {PAPERS['imagenet']['epochs']} (ImageNet) epochs; the largest "
            f"({len(largest)} {'record' if len(largest) == 1 else 'records'}) are {scale_text(largest)}.")


def _network(frame: pd.DataFrame) -> str:
    return _one(frame["model"] + frame["width"].map(lambda w: "" if pd.isna(w) else f" (width {int(w)})"))


def _device(frame: pd.DataFrame) -> str:
    return _one(frame["device"].map(lambda d: "CPU" if d == "cpu" else "GPU")
                + frame["device_name"].map(lambda n: "" if not n else f" ({n})"))


def _seeds(frame: pd.DataFrame, unit: str = "") -> str:
    """The number of seeds per configuration (runs that share every training option but the seed):
    ``"5"``, or ``"3 to 5 per configuration"`` where configurations differ; ``unit`` ("seed") is named
    after the number, in the plural where it is not 1."""
    options = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "seed" and f.name in frame.columns]
    counts = frame.groupby(options, dropna=False)["seed"].nunique() if options else frame["seed"].agg(["nunique"])
    low, high = int(counts.min()), int(counts.max())
    named = f" {unit}{'' if high == 1 else 's'}" if unit else ""
    return f"{low}{named}" if low == high else f"{low} to {high}{named} per configuration"


def labels_text(frame: pd.DataFrame) -> str:
    """The training labels of the runs (or configurations) of a frame in words, from their ``label_noise``:
    "clean (the data set's own)" or, e.g., "40% replaced by another class (label noise 0.4, the book's deviation
    from the papers; test labels clean)"; a frame without the column has clean labels (older records)."""
    noise = frame["label_noise"] if "label_noise" in frame.columns else pd.Series([0.0] * len(frame), dtype=float)
    parts = ["clean (the data set's own)" if not value else
             f"{100 * value:g}% replaced by another class (label noise {value:g}, the book's deviation from the "
             "papers; test labels clean)" for value in sorted({float(v) for v in noise.fillna(0.0)})]
    return " / ".join(parts) if parts else "–"


def _noisy(frame: pd.DataFrame) -> bool:
    return "label_noise" in frame.columns and bool((frame["label_noise"].fillna(0.0) > 0).any())


def setup_text(frame: pd.DataFrame) -> str:
    """The data and the network of the runs of a records frame (or of a frame of training configurations, with
    ``device_name`` where known), the first part of :func:`scale_text`."""
    return f"{_data(frame)}, {_network(frame)}"


def scale_text(frame: pd.DataFrame) -> str:
    """One line on the runs of a records frame: data, network, epochs, seeds and device ("no runs" if empty), and
    where some runs have noisy training labels, their labels (:func:`labels_text`). Seeds are counted per
    configuration ("3 to 5 seeds per configuration" where they differ)."""
    if frame.empty:
        return "no runs"
    labels = f", training labels {labels_text(frame)}" if _noisy(frame) else ""
    return f"{setup_text(frame)}, {_one(frame['epochs'])} epochs, {_seeds(frame, 'seed')}, {_device(frame)}{labels}"


def _image_sizes(dataset: str) -> tuple[int, int | None] | None:
    """(crop, resize) of an ImageNet-style data set (:data:`sparsam.experiment.data.IMAGE_SIZES`), else None."""
    return IMAGE_SIZES.get("imagefolder" if dataset.startswith("imagefolder:") else dataset)


def image_size(dataset: str) -> int | None:
    """The side in px of the images a network of data set ``dataset`` sees (the crop of an ImageNet-style one,
    CIFAR's own 32), None where unknown."""
    sizes = _image_sizes(dataset)
    return sizes[0] if sizes else CIFAR_SIZE if dataset.startswith("cifar") else None


def resolution_text(dataset: str) -> str:
    """The resolution of data set ``dataset`` in words, from the data module's sizes: e.g. "64 px: random-resized
    64-px crops to train, a centre 64-px crop of the images resized to 72 px to evaluate"."""
    sizes = _image_sizes(dataset)
    if sizes is None:
        size = image_size(dataset)
        return f"{size} px (the data's own size)" if size else f"not known for {dataset}"
    crop, resize = sizes
    return (f"{crop} px: random-resized {crop}-px crops to train, a centre {crop}-px crop"
            + (f" of the images resized to {resize} px" if resize else "") + " to evaluate")


def _side(value: Any) -> int:
    return int(value[0] if isinstance(value, tuple) else value)


def _out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


@functools.lru_cache(maxsize=None)
def stem_text(model: str, size: int | None = None) -> str:
    """The stem of network ``model`` in words, read from the network (built on the meta device, no weights): its
    first convolution, the max-pool after it (torchvision's ResNets) or none, and with ``size`` the side at which
    images of ``size`` px reach the first stage."""
    with torch.device("meta"):
        net = build_model(model, 10)
    conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    kernel, stride, padding = _side(conv.kernel_size), _side(conv.stride), _side(conv.padding)
    text = f"{kernel}×{kernel} stride-{stride} convolution"
    out = None if size is None else _out(size, kernel, stride, padding)
    pool = getattr(net, "maxpool", None)
    if isinstance(pool, nn.MaxPool2d):
        kernel, stride, padding = _side(pool.kernel_size), _side(pool.stride), _side(pool.padding)
        text += f", then a {kernel}×{kernel} stride-{stride} max-pool"
        out = None if out is None else _out(out, kernel, stride, padding)
    else:
        text += ", no max-pool"
    return text + ("" if out is None else f": {size}-px images reach the first stage at {out} px")


def _ours(frame: pd.DataFrame, paper: str, encoding: str, num_samples: str, seeds: str) -> dict[str, str]:
    """Our side of every aspect of ``paper``'s setup for a non-empty frame of configurations."""
    ours = {"data": _data(frame), "data encoding": encoding, "network": _network(frame),
            "epochs": _one(frame["epochs"]), "batch": _one(frame["batch_size"]), "N_F (Fisher samples)": num_samples,
            "seeds": seeds, "device": _device(frame)}
    if "resolution" in PAPERS[paper]:
        ours["resolution"] = _one(frame["dataset"].map(resolution_text))
    if "training labels" in PAPERS[paper]:
        ours["training labels"] = labels_text(frame)
    if "network stem" in PAPERS[paper]:
        ours["network stem"] = _one(pd.Series([stem_text(m, image_size(d))
                                               for m, d in zip(frame["model"], frame["dataset"])], dtype=object))
    return ours


def deviation_table(frame: pd.DataFrame, paper: Paper, notes: Sequence[str] = ()) -> pd.DataFrame:
    """One row per aspect of the papers' setup ``paper`` ("cifar", "imagenet" or "cifar-noise"): theirs and ours.

    ``notes`` are the data notes of the records (``summary["data"]["note"]``), which say how the data
    is encoded, each shown as its pack's note is now (:func:`sparsam.experiment.data.current_note`). With no runs,
    "ours" reads "no runs".
    """
    check_choice("paper", paper, tuple(PAPERS))
    ssam = frame[frame["optimizer"].str.startswith("ssam")] if not frame.empty else frame
    ours: Mapping[str, Any] = {} if frame.empty else _ours(
        frame, paper, "; ".join(sorted({current_note(n) for n in notes})) or "not recorded",
        _one(ssam[ssam["optimizer"] == "ssam-f"]["num_samples"]) if not ssam.empty else "–", _seeds(frame))
    return pd.DataFrame([{"aspect": aspect, "papers": theirs, "ours": ours.get(aspect, "no runs")}
                         for aspect, theirs in PAPERS[paper].items()])


def regime_deviation_table(regimes: Mapping[str, TrainConfig], paper: Paper, seeds: str) -> pd.DataFrame:
    """:func:`deviation_table` for declared regimes instead of records: one row per aspect of ``paper``'s setup,
    the papers' side, then one column per regime (name -> its training configuration, e.g. a study's candidate
    regimes before any run), read from the configuration: the data encoding is the note of the data set's pack
    (:func:`sparsam.experiment.data.pack_note`), N_F the configuration's SSAM-F samples, the device CPU or GPU
    (no machine is named before a run); ``seeds`` says how many seeds the regimes have (or how they are chosen)."""
    check_choice("paper", paper, tuple(PAPERS))
    if not regimes:
        raise ValueError("regimes must name at least one regime")
    out = pd.DataFrame({"aspect": list(PAPERS[paper]), "papers": list(PAPERS[paper].values())})
    for name, config in regimes.items():
        frame = pd.DataFrame([{**config.to_dict(), "device_name": None}])
        ours = _ours(frame, paper, pack_note(config.dataset) or "named by each run's record", str(config.num_samples),
                     seeds)
        out[name] = [ours[aspect] for aspect in PAPERS[paper]]
    return out
