"""Scale line and deviation tables (sparsam.book.deviations) on constructed records frames and configurations."""

from __future__ import annotations

import pytest
import torch

from sparsam.book.records import records_frame

from sparsam.book import deviations
from sparsam.experiment import data
from sparsam.experiment.config import TrainConfig


def frame(**changes):
    base = TrainConfig(model="resnet-small", n_train=4000, n_test=2000, epochs=4, batch_size=64, num_samples=64)
    configs = [base.replace(optimizer=o, seed=s, **changes) for o in ("sgd", "ssam-f") for s in (0, 1)]
    records = [{"summary": {"config": c.to_dict(), "run_id": c.run_id(), "provenance": {"device_name": "x86_64"}}}
               for c in configs]
    return records_frame(records)


def test_scale_line_names_data_network_epochs_seeds_device():
    assert deviations.scale_text(frame()) == ("CIFAR-10 (4,000 train / 2,000 test images), resnet-small, 4 epochs, "
                                              "2 seeds, CPU (x86_64)")
    assert deviations.scale_text(frame().iloc[:0]) == "no runs"


def test_the_deviation_table_shows_an_earlier_records_note_as_its_pack_reads_now():
    from sparsam.experiment.results import load_all
    from conftest import REPO
    notes = [r["summary"]["data"]["note"] for r in load_all(REPO / "results" / "study" / "runs")]
    assert any("few tenths" in n for n in notes)  # the committed records keep the older note
    table = deviations.deviation_table(frame(), "cifar", notes=notes)
    assert dict(zip(table["aspect"], table["ours"]))["data encoding"] == data.pack_note("cifar10")


def test_deviation_table_sets_ours_against_the_papers_row_by_row():
    table = deviations.deviation_table(frame(), "cifar", notes=["JPEG re-encoding", "JPEG re-encoding"])
    ours = dict(zip(table["aspect"], table["ours"]))
    assert list(table["aspect"]) == list(deviations.PAPERS["cifar"])
    assert ours["batch"] == "64" and ours["N_F (Fisher samples)"] == "64" and ours["seeds"] == "2"
    assert ours["data encoding"] == "JPEG re-encoding" and ours["epochs"] == "4"
    full = deviations.deviation_table(frame(n_train=None, n_test=None), "cifar")
    assert "all train / all test" in full["ours"][0]
    empty = deviations.deviation_table(frame().iloc[:0], "imagenet")
    assert set(empty["ours"]) == {"no runs"}
    with pytest.raises(ValueError, match="paper"):
        deviations.deviation_table(frame(), "mnist")


def test_seeds_are_counted_per_configuration():
    """A frame whose configurations have 2 and 1 seeds says so; the distinct seeds (2) would not."""
    uneven = frame().iloc[:3]  # sgd with seeds 0 and 1, ssam-f with seed 0 only
    assert deviations.scale_text(uneven).endswith("4 epochs, 1 to 2 seeds per configuration, CPU (x86_64)")
    ours = dict(zip(*deviations.deviation_table(uneven, "cifar")[["aspect", "ours"]].T.to_numpy()))
    assert ours["seeds"] == "1 to 2 per configuration"
    one = frame().iloc[[0, 2]]  # one seed each
    assert deviations.scale_text(one).endswith("4 epochs, 1 seed, CPU (x86_64)")


def test_the_stem_is_read_from_the_network_and_agrees_with_a_forward_pass():
    """The stem's words come from the network built on the meta device; the side they state is the one a real
    forward pass through the stem gives (torchvision's ResNet-50: conv1, bn1, relu, maxpool)."""
    from sparsam.experiment import models

    assert deviations.stem_text("resnet50", 224) == deviations.PAPERS["imagenet"]["network stem"]
    assert deviations.stem_text("resnet50", 64) == ("7×7 stride-2 convolution, then a 3×3 stride-2 max-pool: 64-px "
                                                    "images reach the first stage at 16 px")
    assert deviations.stem_text("resnet50-tiny", 64) == deviations.stem_text("resnet50", 64)
    assert deviations.stem_text("resnet50-cifar-stem", 64) == ("3×3 stride-1 convolution, no max-pool: 64-px images "
                                                               "reach the first stage at 64 px")
    assert deviations.stem_text("resnet-small") == "3×3 stride-1 convolution, no max-pool"
    for name, size in (("resnet50", 64), ("resnet50-cifar-stem", 64), ("resnet50", 72)):
        net = models.build_model(name, 10).eval()
        with torch.no_grad():
            side = net.maxpool(net.relu(net.bn1(net.conv1(torch.zeros(1, 3, size, size))))).shape[-1]
        assert deviations.stem_text(name, size).endswith(f"reach the first stage at {side} px")


def test_the_resolution_is_read_from_the_data_modules_sizes():
    crop, resize = data.IMAGE_SIZES["imagenette"]
    assert deviations.resolution_text("imagenette") == (f"{crop} px: random-resized {crop}-px crops to train, a "
                                                        f"centre {crop}-px crop of the images resized to {resize} px "
                                                        "to evaluate")
    assert deviations.resolution_text("imagenette-tiny").endswith("a centre 64-px crop to evaluate")
    assert deviations.resolution_text("imagefolder:/data/imagenet").startswith("224 px")
    assert deviations.resolution_text("cifar10") == "32 px (the data's own size)"
    assert [deviations.image_size(d) for d in ("imagenette", "imagefolder:/x", "cifar100", "cifar100-subset")] == [
        crop, 224, 32, 32]


def test_declared_regimes_are_set_against_the_papers_from_their_configurations():
    a = TrainConfig(model="resnet50", dataset="imagenette", epochs=30, batch_size=256, num_samples=100, device="cuda")
    b = a.replace(model="resnet50-cifar-stem", device="cpu")
    table = deviations.regime_deviation_table({"candidate A": a, "candidate B": b}, "imagenet", "chosen later")
    assert list(table.columns) == ["aspect", "papers", "candidate A", "candidate B"]
    assert list(table["aspect"]) == list(deviations.PAPERS["imagenet"])
    assert list(table["papers"]) == list(deviations.PAPERS["imagenet"].values())
    rows = table.set_index("aspect")
    assert list(rows.loc["network"])[1:] == ["resnet50", "resnet50-cifar-stem"]
    assert rows.loc["network stem", "candidate A"] == deviations.stem_text("resnet50", 64)
    assert rows.loc["network stem", "candidate B"] == deviations.stem_text("resnet50-cifar-stem", 64)
    assert rows.loc["data", "candidate A"] == "Imagenette at 64 px (all train / all test images)"
    assert rows.loc["data encoding", "candidate A"] == data.pack_note("imagenette")
    assert rows.loc["resolution", "candidate B"] == deviations.resolution_text("imagenette")
    assert (rows.loc["epochs", "candidate A"], rows.loc["batch", "candidate A"]) == ("30", "256")
    assert rows.loc["N_F (Fisher samples)", "candidate A"] == "100" and rows.loc["seeds", "candidate B"] == "chosen later"
    assert (rows.loc["device", "candidate A"], rows.loc["device", "candidate B"]) == ("GPU", "CPU")
    cifar = deviations.regime_deviation_table({"ours": TrainConfig(n_train=2500)}, "cifar", "5")
    assert list(cifar["aspect"]) == list(deviations.PAPERS["cifar"]) and "network stem" not in set(cifar["aspect"])
    assert cifar.set_index("aspect").loc["data", "ours"] == "CIFAR-10 (2,500 train / all test images)"
    with pytest.raises(ValueError, match="regimes"):
        deviations.regime_deviation_table({}, "imagenet", "3")
    with pytest.raises(ValueError, match="paper"):
        deviations.regime_deviation_table({"a": a}, "mnist", "3")


def test_the_imagenet_table_of_records_has_the_resolution_and_the_stem():
    runs = frame(model="resnet50-cifar-stem", dataset="imagenette")
    ours = deviations.deviation_table(runs, "imagenet").set_index("aspect")["ours"]
    assert ours["resolution"] == deviations.resolution_text("imagenette")
    assert ours["network stem"] == deviations.stem_text("resnet50-cifar-stem", 64)
    assert "network stem" not in set(deviations.deviation_table(frame(), "cifar")["aspect"])


def test_noisy_training_labels_are_named_in_the_scale_line_and_set_against_the_papers_clean_ones():
    """The label-noise study's deviation (its scale's paper "cifar-noise"): the scale line names the noise read from
    the runs' label_noise, the deviation table has a row for the training labels; clean runs read as before."""
    noisy = frame(label_noise=0.4)
    assert deviations.scale_text(noisy) == deviations.scale_text(frame()) + (
        ", training labels 40% replaced by another class (label noise 0.4, the book's deviation from the papers; "
        "test labels clean)")
    assert "label noise" not in deviations.scale_text(frame())
    table = deviations.deviation_table(noisy, "cifar-noise")
    assert list(table["aspect"]) == [*deviations.PAPERS["cifar"], "training labels"]
    labels = dict(zip(table["aspect"], zip(table["papers"], table["ours"])))["training labels"]
    assert "no noise" in labels[0] and labels[1].startswith("40% replaced by another class (label noise 0.4")
    clean = dict(zip(*deviations.deviation_table(frame(), "cifar-noise")[["aspect", "ours"]].T.to_numpy()))
    assert clean["training labels"] == "clean (the data set's own)"
    assert "training labels" not in set(deviations.deviation_table(noisy, "cifar")["aspect"])  # the papers' table
    declared = deviations.regime_deviation_table({"registered regime": TrainConfig(label_noise=0.25)}, "cifar-noise",
                                                 "5")
    assert declared.set_index("aspect").loc["training labels", "registered regime"].startswith("25% replaced")
