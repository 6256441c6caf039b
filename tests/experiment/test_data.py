"""Data: the real packs in SPARSAM_DATA, transforms, subsets, checksums and reproducible loaders."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from fakes import fake_torchvision_cifar10

from sparsam.experiment import data


def pack(file: str) -> Path:
    """The pack ``file`` in SPARSAM_DATA, or a visible skip."""
    root = data.data_root()
    if root is None or not (root / file).is_file():
        pytest.skip(f"SPARSAM_DATA lacks {file}")
    return root / file


def synthetic(n: int = 100, seed: int = 0) -> data.ArrayDataset:
    """Random 32×32 images whose labels are their indices, so batches show which samples they hold."""
    images = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    return data.ArrayDataset(images, torch.arange(n), data.cifar_transform(True))


def test_cifar10_pack():
    pack("cifar10-jpeg.npz")
    train, source = data.load_dataset("cifar10", "train")
    test, _ = data.load_dataset("cifar10", "test")
    assert train.images.shape == (50_000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (10_000, 3, 32, 32)
    assert train.labels.dtype == torch.int64
    assert torch.bincount(train.labels).tolist() == [5000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    mean = train.images.sum(dim=(0, 2, 3), dtype=torch.int64).double() / (50_000 * 32 * 32)
    assert torch.allclose(mean, torch.tensor([125.3, 122.9, 113.9], dtype=torch.float64), atol=0.06)
    x, y = train[123]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    assert source.num_classes == 10 and source.sha256 == data.CHECKSUMS["cifar10-jpeg.npz"]
    assert "JPEG" in source.note and source.as_dict()["name"] == "cifar10"
    subset = data.balanced_subset(train.labels, 1000, seed=3)
    assert np.bincount(train.labels[subset].numpy()).tolist() == [100] * 10


def test_decoded_pixels_are_cached_once_per_machine_and_read_back_unchanged(tmp_path, monkeypatch):
    path = str(pack("cifar10-jpeg.npz"))
    monkeypatch.setenv("SPARSAM_CACHE", str(tmp_path))
    data.sources._decode_cifar10_pack.cache_clear()
    try:
        images, labels = data.sources._decode_cifar10_pack(path, "test")  # decodes, writes the cache
        [cached] = (tmp_path / "decoded").glob("cifar10-jpeg-*-test.npy")
        assert cached.name.startswith(f"cifar10-jpeg-{data.CHECKSUMS['cifar10-jpeg.npz'][:16]}")
        assert not list((tmp_path / "decoded").glob("*.partial"))
        data.sources._decode_cifar10_pack.cache_clear()

        def no_decoding(*args, **kwargs):
            raise AssertionError("decoded again instead of reading the cache")
        with monkeypatch.context() as m:
            m.setattr(data.sources.Image, "open", no_decoding)
            again, labels_again = data.sources._decode_cifar10_pack(path, "test")
        assert torch.equal(images, again) and torch.equal(labels, labels_again)
        np.save(cached, np.zeros((3, 32, 32, 3), np.uint8))  # a cache of another shape is not trusted
        data.sources._decode_cifar10_pack.cache_clear()
        assert torch.equal(data.sources._decode_cifar10_pack(path, "test")[0], images)
        assert np.load(cached).shape == (10_000, 32, 32, 3), "and is written again"
    finally:
        data.sources._decode_cifar10_pack.cache_clear()


def test_make_loaders_cifar10_subsets():
    pack("cifar10-jpeg.npz")
    loaders = data.make_loaders("cifar10", 64, n_train=500, n_test=200, seed=1, gpu_resident=True)  # CPU: DataLoader
    assert isinstance(loaders.train, data.EpochLoader) and len(loaders.train) == 8
    assert np.bincount(loaders.train.dataset.labels.numpy()).tolist() == [50] * 10
    x, y = next(iter(loaders.train))
    assert x.shape == (64, 3, 32, 32) and y.dtype == torch.int64
    assert sum(len(y) for _, y in loaders.test) == 200


def test_balanced_subset():
    labels = np.repeat(np.arange(10), [2] + [20] * 9)
    a = data.balanced_subset(labels, 50, seed=0)
    assert len(a) == 50 and len(set(a.tolist())) == 50 and np.all(np.diff(a) > 0)
    counts = np.bincount(labels[a], minlength=10)
    assert counts[0] == 2 and set(counts[1:].tolist()) <= {5, 6}
    assert np.array_equal(a, data.balanced_subset(labels, 50, seed=0))
    assert not np.array_equal(a, data.balanced_subset(labels, 50, seed=1))
    assert np.array_equal(data.balanced_subset(labels, len(labels), seed=5), np.arange(len(labels)))
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, 182\]"):
        data.balanced_subset(labels, 183, seed=0)


def test_transform_shapes():
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    assert data.cifar_transform(True)(image).shape == (3, 32, 32)
    mean, std = torch.tensor(data.CIFAR10_MEAN).view(3, 1, 1), torch.tensor(data.CIFAR10_STD).view(3, 1, 1)
    assert torch.allclose(data.cifar_transform(False)(image), (image / 255 - mean) / std, atol=1e-6)
    big = torch.randint(0, 256, (3, 72, 72), dtype=torch.uint8)
    assert data.imagenet_transform(True, 64)(big).shape == (3, 64, 64)
    centre = data.imagenet_transform(False, 64, 72)(big)
    assert torch.equal(centre, data.imagenet_transform(False, 64, None)(big[:, 4:68, 4:68]))


def zero_box(mask: torch.Tensor) -> tuple[int, int]:
    """Height and width of the zero region, asserting it is one axis-aligned rectangle."""
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    assert torch.equal(rows, torch.arange(rows[0], rows[-1] + 1))
    assert torch.equal(cols, torch.arange(cols[0], cols[-1] + 1))
    assert mask.sum() == len(rows) * len(cols)
    return len(rows), len(cols)


def test_cutout_zeroes_one_square():
    torch.manual_seed(0)
    sizes = set()
    for _ in range(200):
        out = data.Cutout(16)(torch.ones(3, 32, 32))
        zeros = out == 0
        assert torch.equal(zeros[0], zeros[1]) and torch.equal(zeros[0], zeros[2])
        h, w = zero_box(zeros[0])
        assert 8 <= h <= 16 and 8 <= w <= 16
        sizes.add((h, w))
    assert (16, 16) in sizes and len(sizes) > 1
    batch = data.cutout_(torch.ones(5, 3, 32, 32), 16, torch.Generator().manual_seed(1))
    assert all(zero_box(b[0] == 0)[0] <= 16 for b in batch)


def test_imagenette_tiny():
    pack("imagenette-tiny64.npz")
    loaders = data.make_loaders("imagenette-tiny", 16)
    x, y = next(iter(loaders.train))
    assert x.shape == (16, 3, 64, 64) and y.max() < 10
    assert len(loaders.train.dataset) == 300 and len(loaders.test.dataset) == 100
    assert loaders.source.num_classes == 10


def test_imagenette_tarball_extracts_once(tmp_path, monkeypatch):
    pack("imagenette-72px.tar.gz")
    monkeypatch.setenv("SPARSAM_CACHE", str(tmp_path))
    target = f"imagenette-72px-{data.CHECKSUMS['imagenette-72px.tar.gz'][:12]}"
    stale = tmp_path / f".{target}.killed.partial" / "imagenette_72px" / "train" / "n01440764"
    stale.mkdir(parents=True)  # what a killed extraction leaves behind

    def fail(self, path, **kwargs):  # an extraction that dies half-way
        (Path(path) / "half.JPEG").write_bytes(b"")
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(tarfile.TarFile, "extractall", fail)
        with pytest.raises(OSError, match="disk full"):
            data.load_dataset("imagenette", "train")
    assert sorted(p.name for p in tmp_path.iterdir()) == [stale.parents[2].name]

    train, source = data.load_dataset("imagenette", "train")
    assert len(train) == 9469 and len(train.classes) == 10 and source.num_classes == 10
    assert train[0][0].shape == (3, 64, 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == [stale.parents[2].name, target]
    assert stale.is_dir() and not any(stale.iterdir())  # untouched, never used

    monkeypatch.setattr(tarfile, "open", None)  # a second load must not extract again
    test, _ = data.load_dataset("imagenette", "test")
    assert len(test) == 3925 and test[0][0].shape == (3, 64, 64)


def test_cifar100_subset():
    pack("cifar100-exact-subset.npz")
    loaders = data.make_loaders("cifar100-subset", 32, seed=0)
    assert len(loaders.train.dataset) == 281 and len(loaders.test.dataset) == 148
    assert loaders.source.num_classes == 100
    x, y = next(iter(loaders.train))
    assert x.shape == (32, 3, 32, 32) and int(y.max()) < 100
    ranks = [data.make_loaders("cifar100-subset", 32, rank=r, world_size=2) for r in range(2)]
    assert set(ranks[0].train.sampler) | set(ranks[1].train.sampler) == set(range(281))
    assert [len(r.test.dataset) for r in ranks] == [74, 74]


def test_missing_data_message(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSAM_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="SPARSAM_DATA") as info:
        data.load_dataset("cifar10", "train")
    assert "cifar10-jpeg.npz" in str(info.value) and "download=True" in str(info.value)
    with pytest.raises(FileNotFoundError, match="imagenette-72px.tar.gz"):
        data.load_dataset("imagenette", "test")
    monkeypatch.delenv("SPARSAM_DATA")
    with pytest.raises(FileNotFoundError, match="SPARSAM_DATA is unset"):
        data.load_dataset("cifar100-subset", "train")
    monkeypatch.setenv("SPARSAM_DATA", str(tmp_path / "nothing"))
    with pytest.raises(NotADirectoryError, match="SPARSAM_DATA"):
        data.data_root()


def test_torchvision_cifar10_route(tmp_path, monkeypatch):
    fake_torchvision_cifar10(tmp_path, monkeypatch)
    train, source = data.load_dataset("cifar10", "train", root=tmp_path)
    assert len(train) == 20 and train[0][0].shape == (3, 32, 32)
    assert source.sha256 is None and source.num_classes == 10 and "official" in source.note


def test_download_and_root_reach_torchvision(tmp_path, monkeypatch):
    """Offline: torchvision finds the (fake) extracted folder and does not download; the arguments it got
    are checked. Without a root, download=True uses the cache folder; without download, a missing
    folder is an error that says how to download."""
    monkeypatch.delenv("SPARSAM_DATA", raising=False)
    monkeypatch.setenv("SPARSAM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="SPARSAM_DATA is unset.*--data-root.*--download"):
        data.load_dataset("cifar10", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not found in .*empty.*download=True"):
        data.load_dataset("cifar10", "test", root=tmp_path / "empty")
    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr("urllib.request.urlopen", offline)  # what download=True meets offline
    with pytest.raises(OSError, match="downloading CIFAR10 into .*empty failed .*Name or service not known.*"
                                      "check the internet connection, or put cifar-10-batches-py/ there"):
        data.load_dataset("cifar10", "test", root=tmp_path / "empty", download=True)
    calls = fake_torchvision_cifar10(tmp_path / "cache" / "torchvision", monkeypatch)
    train, _ = data.load_dataset("cifar10", "train", download=True)
    assert len(train) == 20 and calls == [{"root": str(tmp_path / "cache" / "torchvision"), "download": True}]


def test_sparsam_data_may_hold_torchvisions_cifar10(tmp_path, monkeypatch):
    """The path of the book's GitHub workflow: SPARSAM_DATA holds the downloaded cifar-10-batches-py/
    and no pack; the notebooks call load_dataset("cifar10", ...) without a root or download (the workflow's
    data step itself: tests/test_deploy.py)."""
    calls = fake_torchvision_cifar10(tmp_path, monkeypatch)
    monkeypatch.setenv("SPARSAM_DATA", str(tmp_path))
    train, source = data.load_dataset("cifar10", "train")
    assert len(train) == 20 and source.num_classes == 10 and calls == [{"root": str(tmp_path), "download": False}]


def test_subset_larger_than_the_split_names_the_parameter(tmp_path, monkeypatch):
    fake_torchvision_cifar10(tmp_path, monkeypatch)
    with pytest.raises(ValueError, match=r"n_train must be at most 20 \(the size of that split\), got 21"):
        data.make_loaders("cifar10", 4, n_train=21, root=tmp_path)
    with pytest.raises(ValueError, match="n_test must be at most 4"):
        data.make_loaders("cifar10", 4, n_train=20, n_test=5, root=tmp_path)
    assert len(data.make_loaders("cifar10", 4, n_train=20, n_test=4, root=tmp_path).train.dataset) == 20


def test_bad_arguments():
    with pytest.raises(ValueError, match="name must be one of"):
        data.load_dataset("mnist", "train")
    assert data.check_dataset("imagefolder:/any/path") == "imagefolder:/any/path"
    for bad in ("imagefolder", "cifar-10", None):
        with pytest.raises(ValueError, match="name must be one of .*imagefolder:<path>"):
            data.check_dataset(bad)
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_dataset("cifar10", "val")
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\)"):
        data.make_loaders("cifar10", 8, rank=2, world_size=2)


def test_checksum_mismatch(tmp_path):
    original = pack("cifar100-exact-subset.npz").read_bytes()
    (tmp_path / "cifar100-exact-subset.npz").write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(ValueError, match="SHA-256"):
        data.load_dataset("cifar100-subset", "train", root=tmp_path)
    (tmp_path / "small").write_bytes(b"abc")
    assert data.sha256(tmp_path / "small") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_epoch_loader_reproducible_and_isolated():
    loader = data.EpochLoader(synthetic(), 16, seed=7)
    loader.set_epoch(3)
    torch.manual_seed(0)
    first = list(loader)
    state = torch.get_rng_state()
    torch.manual_seed(123)  # another global RNG state must not matter
    again = list(loader)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    torch.manual_seed(0)
    list(loader)
    assert torch.equal(torch.get_rng_state(), state)  # iterating never advanced the global RNG
    assert sorted(torch.cat([y for _, y in first]).tolist()) == list(range(100))
    loader.set_epoch(4)
    assert not torch.equal(torch.cat([y for _, y in loader]), torch.cat([y for _, y in first]))



def test_endless_runs_the_epochs_in_order_past_the_end():
    loader = data.EpochLoader(synthetic(), 16, seed=7)  # 100 samples: 7 batches per epoch
    stream = data.endless(loader)
    labels = [next(stream)[1] for _ in range(len(loader) * 2 + 1)]
    epochs = []
    for epoch in range(3):
        loader.set_epoch(epoch)
        epochs += [y for _, y in loader]
    assert all(torch.equal(a, b) for a, b in zip(labels, epochs))
    assert sorted(torch.cat(labels[len(loader):2 * len(loader)]).tolist()) == list(range(100))  # all of epoch 1

def test_epoch_loader_workers_reproducible():
    loader = data.EpochLoader(synthetic(40), 10, seed=7, num_workers=2)
    loader.set_epoch(1)
    first, again = list(loader), list(loader)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))


def test_gpu_batches_on_cpu():
    dataset = synthetic()
    mean, std = data.CIFAR10_MEAN, data.CIFAR10_STD
    batches = data.GpuBatches(dataset, 32, mean, std, train=True, device="cpu", seed=7)
    assert len(batches) == 4
    batches.set_epoch(2)
    epoch2 = list(batches)
    assert [tuple(x.shape) for x, _ in epoch2] == [(32, 3, 32, 32)] * 3 + [(4, 3, 32, 32)]
    order = torch.cat([y for _, y in epoch2])
    assert sorted(order.tolist()) == list(range(100))
    twin = data.GpuBatches(dataset, 32, mean, std, train=True, device="cpu", seed=7)
    twin.set_epoch(2)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(epoch2, twin))
    twin.set_epoch(3)
    assert not torch.equal(torch.cat([y for _, y in twin]), order)
    loader = data.EpochLoader(dataset, 32, seed=7)
    loader.set_epoch(2)
    assert torch.equal(torch.cat([y for _, y in loader]), order)  # the same order as the DataLoader path
    for x, _ in epoch2:  # every image has its Cutout square: at least 8×8 exact zeros in every channel
        assert ((x == 0).all(1).flatten(1).sum(1) >= 64).all()

    shards = [data.GpuBatches(dataset, 32, mean, std, train=True, device="cpu", seed=7, rank=r, world_size=2)
              for r in range(2)]
    assert sorted(torch.cat([y for s in shards for _, y in s]).tolist()) == list(range(100))


def test_gpu_batches_crop_and_flip():
    dataset = synthetic(8)
    batches = data.GpuBatches(dataset, 8, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), train=True, device="cpu", cutout=0)
    x, y = next(iter(batches))
    padded = torch.nn.functional.pad(dataset.images.float() / 255, (4, 4, 4, 4))
    for image, i in zip(x, y):
        candidates = [padded[i, :, r:r + 32, c:c + 32] for r in range(9) for c in range(9)]
        assert any(torch.equal(image, v) or torch.equal(image, v.flip(-1)) for v in candidates)


def test_gpu_batches_test_split_matches_transform():
    dataset = data.ArrayDataset(synthetic(10).images.permute(0, 2, 3, 1), torch.arange(10),
                                data.cifar_transform(False))
    batches = data.GpuBatches(dataset, 4, data.CIFAR10_MEAN, data.CIFAR10_STD, train=False, device="cpu")
    x = torch.cat([x for x, _ in batches])
    assert torch.allclose(x, torch.stack([dataset[i][0] for i in range(10)]), atol=1e-6)
    halves = [data.GpuBatches(dataset, 4, data.CIFAR10_MEAN, data.CIFAR10_STD, train=False, device="cpu",
                              rank=r, world_size=2) for r in range(2)]
    assert [torch.cat([y for _, y in h]).tolist() for h in halves] == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]


def test_the_declared_sizes_and_pack_notes_are_what_loading_gives():
    """IMAGE_SIZES and pack_note (read by the book's deviation tables before any run) are what load_dataset uses."""
    pack(data.PACKS["imagenette-tiny"])
    crop, _ = data.IMAGE_SIZES["imagenette-tiny"]
    for split in ("train", "test"):
        dataset, source = data.load_dataset("imagenette-tiny", split)
        assert dataset[0][0].shape == (3, crop, crop) and source.note == data.pack_note("imagenette-tiny")
    assert data.pack_note("imagenette") == data.sources._NOTES[data.PACKS["imagenette"]] and "72 px" in data.pack_note(
        "imagenette")
    assert data.pack_note("cifar100") is None and data.pack_note("imagefolder:/x") is None
    with pytest.raises(ValueError, match="name must be one of"):
        data.pack_note("mnist")


def test_the_cifar_pack_note_says_where_its_numbers_come_from_and_claims_no_unmeasured_gap():
    """The PSNR is the data folder's README's (the originals are not here to measure it); the accuracy gap it
    guessed ("a few tenths of a point") was never measured, so the note no longer states it."""
    note = data.pack_note("cifar10")
    assert "median PSNR 30.5 dB" in note and "README" in note and "not measured" in note
    assert "few tenths" not in note
    from conftest import data_file
    readme = data_file("cifar10-jpeg.npz").parent / "README.md"
    if readme.is_file():
        assert "median PSNR 30.5 dB" in readme.read_text()  # the number the note attributes to it


def test_an_earlier_records_note_reads_as_its_packs_note_now():
    earlier = ("JPEG re-encoding of CIFAR-10 (Krizhevsky 2009), lossy: median PSNR 30.5 dB; expect accuracies a few "
               "tenths of a point below the official data")  # what the CPU study's records keep
    assert data.current_note(earlier) == data.pack_note("cifar10")
    assert data.current_note("anything else") == "anything else"
    assert data.current_note(data.pack_note("imagenette")) == data.pack_note("imagenette")
