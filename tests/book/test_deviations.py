"""Scale line and deviation table (sparsam.book.deviations) on constructed records frames."""

from __future__ import annotations

import pytest

from sparsam.book import records as analysis

from sparsam.book import deviations
from sparsam.experiment.config import TrainConfig


def frame(**changes):
    base = TrainConfig(model="resnet-small", n_train=4000, n_test=2000, epochs=4, batch_size=64, num_samples=64)
    configs = [base.replace(optimizer=o, seed=s, **changes) for o in ("sgd", "ssam-f") for s in (0, 1)]
    records = [{"summary": {"config": c.to_dict(), "run_id": c.run_id(), "provenance": {"device_name": "x86_64"}}}
               for c in configs]
    return analysis.records_frame(records)


def test_scale_line_names_data_network_epochs_seeds_device():
    assert deviations.scale_text(frame()) == ("CIFAR-10 (4,000 train / 2,000 test images), resnet-small, 4 epochs, "
                                              "2 seeds, CPU (x86_64)")
    assert deviations.scale_text(frame().iloc[:0]) == "no runs"


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
