"""Test doubles shared by the layer folders: a fake torchvision CIFAR-10 folder."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torchvision


def fake_torchvision_cifar10(root: Path, monkeypatch: pytest.MonkeyPatch, per_batch: int = 4) -> list[dict]:
    """A tiny fake ``root/cifar-10-batches-py`` in torchvision's format (5 × ``per_batch`` train and
    ``per_batch`` test images), with torchvision's md5 checks switched off, which no fake can pass.
    Returns the list that records the ``root`` and ``download`` of every CIFAR10 construction."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": [i % 10 for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args: True)
    calls, init = [], torchvision.datasets.CIFAR10.__init__

    def recording_init(self, root, *args, download=False, **kwargs):
        calls.append({"root": str(root), "download": download})
        init(self, root, *args, download=download, **kwargs)

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "__init__", recording_init)
    return calls
