"""Options the CPU study needs: lighter augmentation, label noise, per-step times and per-example correctness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import data_file
from sparsam.experiment import data
from sparsam.experiment.config import TrainConfig
from sparsam.experiment.results import pack_bits, unpack_bits


def _images(n: int = 8) -> data.ArrayDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=generator)
    return data.ArrayDataset(images, torch.arange(n) % 10)


def test_no_augmentation_is_the_test_transform():
    image = _images().images[0]
    plain = data.cifar_transform(False)(image)
    assert torch.equal(data.cifar_transform(True, augment="none")(image), plain)


def test_each_augmentation_changes_only_what_it_names():
    image = _images().images[1]
    plain = data.cifar_transform(False)(image)
    torch.manual_seed(3)
    flips = [data.cifar_transform(True, augment="flip")(image) for _ in range(20)]
    assert all(torch.equal(f, plain) or torch.equal(f, plain.flip(-1)) for f in flips)
    assert any(torch.equal(f, plain.flip(-1)) for f in flips) and any(torch.equal(f, plain) for f in flips)
    torch.manual_seed(3)
    cut = [data.cifar_transform(True, augment="crop-flip-cutout")(image) for _ in range(5)]
    uncut = [data.cifar_transform(True, augment="crop-flip")(image) for _ in range(5)]
    zero_squares = [int((c == 0).all(0).sum()) for c in cut]
    assert min(zero_squares) >= 8 * 8  # a 16×16 square, clipped at the border to at least 8×8
    assert all(int((u == 0).all(0).sum()) < 64 for u in uncut)


def test_gpu_batches_follow_the_augmentation_on_the_cpu_device():
    ds = _images(10)  # labels 0..9: a label names its image
    mean, std = data.CIFAR10_MEAN, data.CIFAR10_STD
    plain = next(iter(data.GpuBatches(ds, 10, mean, std, train=False, device="cpu")))[0]
    batches = data.GpuBatches(ds, 10, mean, std, train=True, device="cpu", padding=0, flip=False, cutout=0)
    images, labels = next(iter(batches))
    assert torch.allclose(images, plain[labels], atol=1e-6)  # same images, the epoch's order


def test_bad_augment_and_label_noise_name_the_parameter():
    with pytest.raises(ValueError, match="augment"):
        TrainConfig(augment="mixup")
    with pytest.raises(ValueError, match="label_noise"):
        TrainConfig(label_noise=1.0)
    with pytest.raises(ValueError, match="augment"):
        data.load_dataset("imagenette-tiny", "train", augment="none")


def test_label_noise_flips_exactly_the_fraction_to_other_classes():
    ds = data.ArrayDataset(torch.zeros(1000, 4, 4, 3, dtype=torch.uint8), torch.arange(1000) % 10)
    noisy = data.with_label_noise(ds, 0.2, 10, seed=5)
    wrong = noisy.labels != ds.labels
    assert int(wrong.sum()) == 200
    assert torch.equal(noisy.labels, data.with_label_noise(ds, 0.2, 10, seed=5).labels)
    assert not torch.equal(noisy.labels, data.with_label_noise(ds, 0.2, 10, seed=6).labels)
    assert torch.equal(ds.labels, torch.arange(1000) % 10)  # the original is untouched
    assert int(noisy.labels.max()) < 10 and int(noisy.labels.min()) >= 0


def test_label_noise_reaches_the_train_loader_only():
    data_file("cifar10-jpeg.npz")
    clean = data.make_loaders("cifar10", 100, n_train=500, n_test=200, seed=0)
    noisy = data.make_loaders("cifar10", 100, n_train=500, n_test=200, seed=0, label_noise=0.4)
    assert int((clean.train.dataset.labels != noisy.train.dataset.labels).sum()) == 200
    assert torch.equal(clean.test.dataset.labels, noisy.test.dataset.labels)


def test_pack_bits_round_trips():
    flags = np.random.default_rng(0).random(10_001) < 0.3
    packed = pack_bits(flags)
    assert packed["n"] == 10_001 and len(packed["bits"]) <= 4 * (10_001 // 8 + 1) // 3 + 4
    assert np.array_equal(unpack_bits(packed), flags)


@pytest.mark.slow
def test_a_run_records_per_step_times_and_which_test_examples_it_got_right(tmp_path):
    data_file("cifar10-jpeg.npz")
    from sparsam.experiment.train import train

    config = TrainConfig(optimizer="sam", model="resnet-small", width=4, n_train=256, n_test=300, epochs=2,
                         batch_size=64, augment="flip")
    summary = train(config, runs_dir=tmp_path, progress=False)
    correct = unpack_bits(summary["test_correct"])
    assert len(correct) == 300
    assert correct.mean() == pytest.approx(summary["final_test_acc"], abs=1e-12)
    assert summary["seconds_per_step"] > 0 and summary["cpu_seconds_per_step"] > 0
    assert summary["seconds_per_step"] * 4 * 2 <= summary["train_seconds"] * 1.001  # 4 steps an epoch
    assert summary["mean_eps_norm"] == pytest.approx(config.rho, rel=1e-5)  # SAM: ‖ε‖ = ρ at every step


@pytest.mark.slow
def test_eval_every_skips_test_evaluations_but_not_the_last(tmp_path):
    data_file("cifar10-jpeg.npz")
    from sparsam.experiment.store import read_metrics
    from sparsam.experiment.train import train

    config = TrainConfig(model="resnet-small", width=4, n_train=128, n_test=100, epochs=3, batch_size=64,
                         eval_every=2)
    summary = train(config, runs_dir=tmp_path, progress=False)
    metrics = read_metrics(tmp_path / summary["run_id"] / "metrics.jsonl")
    assert [m["test_acc"] is None for m in metrics] == [True, False, False]  # epochs 2 and 3 (the last)
    assert summary["final_test_acc"] == metrics[-1]["test_acc"]
    assert summary["best_test_acc"] == max(metrics[1]["test_acc"], metrics[2]["test_acc"])
    assert TrainConfig(eval_every=1).run_id() == TrainConfig().run_id() != TrainConfig(eval_every=5).run_id()
    with pytest.raises(ValueError, match="eval_every"):
        TrainConfig(eval_every=0)


def test_options_for_one_optimizer_are_rejected_elsewhere():
    for bad, name in [(dict(optimizer="sgd", sam_every=2), "sam_every"), (dict(optimizer="ssam-f", sam_every=2),
                      "sam_every"), (dict(optimizer="sam", drop_rate=0.0), "drop_rate"),
                      (dict(optimizer="ssam-f", form="implicit"), "implicit"),  # unstructured
                      (dict(optimizer="ssam-d", form="implicit", pattern="2:4"), "implicit"),
                      (dict(optimizer="ssam-f", form="implicit", pattern="2:4", normalize="masked"), "implicit"),
                      (dict(optimizer="ssam-f", pattern="layer", ascent="sparse"), "ascent"),  # full normalisation
                      (dict(optimizer="ssam-f", pattern="2:4", normalize="masked", ascent="sparse"), "ascent"),
                      (dict(optimizer="sam", ascent="sparse"), "ascent"), (dict(sam_every=0), "sam_every"),
                      (dict(optimizer="ssam-d", drop_rate=1.5), "drop_rate"), (dict(ascent="half"), "ascent")]:
        with pytest.raises(ValueError, match=name):
            TrainConfig(**bad)
    TrainConfig(optimizer="ssam-f", pattern="filter", normalize="masked", ascent="sparse")  # allowed
    assert TrainConfig(optimizer="sam").run_id() == TrainConfig(optimizer="sam", sam_every=1).run_id()


def _trainer(**values):
    data_file("cifar10-jpeg.npz")
    from sparsam.experiment.train import Trainer

    base = dict(model="resnet-small", width=4, n_train=256, n_test=64, epochs=2, batch_size=64, update_unit="steps")
    return Trainer(TrainConfig(**{**base, **values}))


def test_sam_every_two_perturbs_every_other_step():
    trainer = _trainer(optimizer="sam", sam_every=2, rho=0.05)
    epoch = trainer.train_epoch(0, progress=False)  # 4 steps: SAM, base, SAM, base
    assert epoch["steps"] == 4
    assert epoch["eps_norm"] == pytest.approx(0.05 * 2 / 4, rel=1e-6)  # ‖ε‖ = ρ on SAM steps, 0 on the others
    assert trainer.optimizer.steps == 2  # SAM's own count of two-pass steps


def test_ssam_d_with_no_drop_keeps_its_random_mask():
    fixed = _trainer(optimizer="ssam-d", drop_rate=0.0, update_every=1)
    moving = _trainer(optimizer="ssam-d", drop_rate=0.5, update_every=1)
    start = [m.clone() for m in fixed.optimizer.mask.masks]
    assert all(torch.equal(a, b) for a, b in zip(start, moving.optimizer.mask.masks))  # same seeded start
    fixed.train_epoch(0, progress=False)
    moving.train_epoch(0, progress=False)
    assert fixed.optimizer.mask.updates >= 3  # updates ran, and exchanged nothing
    assert all(torch.equal(a, b) for a, b in zip(start, fixed.optimizer.mask.masks))
    assert not all(torch.equal(a, b) for a, b in zip(start, moving.optimizer.mask.masks))


def test_sparse_ascent_trains_with_radius_rho_and_reports_its_mask():
    from sparsam.optim.sparse_ascent import SparseAscentSAM

    trainer = _trainer(optimizer="ssam-f", pattern="layer", sparsity=0.9, normalize="masked", ascent="sparse",
                       num_samples=32, rho=0.05)
    assert isinstance(trainer.optimizer, SparseAscentSAM)
    assert [id(p) for p in trainer.optimizer.mask.params] == [id(p) for p in trainer.model.parameters()]
    epoch = trainer.train_epoch(0, progress=False)
    assert epoch["eps_norm"] == pytest.approx(0.05, rel=1e-5)  # masked normalisation: ‖ε‖ = ρ
    assert 0.0 <= epoch["train_acc"] <= 1.0 and np.isfinite(epoch["train_loss"])
    assert 0.0 < trainer.mask_density() <= 0.1 + 1e-9


def test_the_store_follows_sparsam_store(tmp_path, monkeypatch):
    """Read at each call (the module is imported already): the argument, else SPARSAM_STORE, else ./results/runs."""
    from sparsam.experiment import results
    from sparsam.experiment.store import Workspace

    monkeypatch.delenv("SPARSAM_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(optimizer="sgd")
    assert Workspace.resolve().store == Path.cwd() / "results" / "runs"
    assert results.record_path(config) == Path.cwd() / "results" / "runs" / f"{config.run_id()}.json"
    monkeypatch.setenv("SPARSAM_STORE", str(tmp_path / "mine"))
    assert results.record_path(config).parent == tmp_path / "mine"
    assert results.record_path(config, "given").parent == Path.cwd() / "given"  # the argument wins
    monkeypatch.setenv("SPARSAM_STORE", "")  # set but empty: as if unset
    assert Workspace.resolve().store == Path.cwd() / "results" / "runs"
