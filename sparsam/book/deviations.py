"""How far a set of runs is from the papers' setup: a one-line scale and a table of every deviation.

:data:`PAPERS` states the papers' setups in words (CIFAR and ImageNet); :func:`scale_text` describes
the runs of a records frame in one line and :func:`deviation_table` sets them against a paper setup,
one row per aspect (data and its encoding, network, epochs, batch, N_F, seeds, device).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import pandas as pd

from .._checks import check_choice
from ..experiment.config import TrainConfig

DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenette": "Imagenette at 64 px"}
TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000}
PAPERS: dict[str, dict[str, str]] = {
    "cifar": {"data": "CIFAR-10 and CIFAR-100, all 50,000 training and 10,000 test images",
              "data encoding": "the original PNG-equivalent arrays", "network": "ResNet-18 and WideResNet-28-10",
              "epochs": "200", "batch": "128", "N_F (Fisher samples)": "128", "seeds": "3 (mean ± std reported)",
              "device": "GPU"},
    "imagenet": {"data": "ImageNet-1k, 1.28 million training images, 1,000 classes, 224 px",
                 "data encoding": "the original JPEG files", "network": "ResNet-50", "epochs": "90", "batch": "256",
                 "N_F (Fisher samples)": "128", "seeds": "not stated", "device": "GPU"},
}


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


def scale_text(frame: pd.DataFrame) -> str:
    """One line on the runs of a records frame: data, network, epochs, seeds and device ("no runs" if empty).
    Seeds are counted per configuration ("3 to 5 seeds per configuration" where they differ)."""
    if frame.empty:
        return "no runs"
    return (f"{_data(frame)}, {_network(frame)}, {_one(frame['epochs'])} epochs, "
            f"{_seeds(frame, 'seed')}, {_device(frame)}")


def deviation_table(frame: pd.DataFrame, paper: str, notes: Sequence[str] = ()) -> pd.DataFrame:
    """One row per aspect of the papers' setup ``paper`` ("cifar" or "imagenet"): theirs and ours.

    ``notes`` are the data notes of the records (``summary["data"]["note"]``), which say how the data
    is encoded. With no runs, "ours" reads "no runs".
    """
    check_choice("paper", paper, tuple(PAPERS))
    ssam = frame[frame["optimizer"].str.startswith("ssam")] if not frame.empty else frame
    ours: Mapping[str, Any] = {} if frame.empty else {
        "data": _data(frame), "data encoding": "; ".join(sorted(set(notes))) or "not recorded",
        "network": _network(frame), "epochs": _one(frame["epochs"]), "batch": _one(frame["batch_size"]),
        "N_F (Fisher samples)": _one(ssam[ssam["optimizer"] == "ssam-f"]["num_samples"]) if not ssam.empty else "–",
        "seeds": _seeds(frame), "device": _device(frame)}
    return pd.DataFrame([{"aspect": aspect, "papers": theirs, "ours": ours.get(aspect, "no runs")}
                         for aspect, theirs in PAPERS[paper].items()])
