"""chapter_runs: the configurations notebooks 3 and 5 train, read by the notebooks and by the claims snapshot from one
place; the quick profile's are channels-last and each has its committed record, the CPU study profile's are the CPU
study's own runs (NCHW), but SSAM-D at s = 0.9, which the study does not train."""

from __future__ import annotations

from conftest import REPO
from sparsam.book import chapter_runs, profiles
from sparsam.experiment.grid import run_missing


def _recorded(configs, store) -> set[str]:
    return {r["summary"]["run_id"] for r in run_missing(list(configs), store=REPO / store, runs_dir=REPO / "runs",
                                                         train_missing=False)}


def test_the_quick_profiles_runs_are_channels_last_and_each_has_its_committed_record():
    p = profiles.parameters("03_cifar_accuracy", "quick", {})
    runs = chapter_runs.cifar_runs(p)
    assert (len(runs.main), len(runs.radius), len(runs.cost)) == (2 + 2 * len(p.sparsities), 1,
                                                                   2 * len(p.cost_sparsities))
    assert len(runs.configs) == len(set(runs.configs)) == 11 and not set(runs.tpami) & set(runs.configs)
    # the TPAMI patterns and forms, but the layer pattern at s = 0.5, which the cost runs hold already
    assert {c.pattern for c in runs.tpami} == {"filter", "2:4"} and {c.form for c in runs.tpami} == {"explicit",
                                                                                                  "implicit"}
    assert any(c.pattern == "layer" and c.sparsity == 0.5 and c.mask_rule == "fisher" for c in runs.cost)
    imagenet = chapter_runs.imagenet_runs(profiles.parameters("05_imagenet", "quick", {}))
    assert [c.optimizer for c in imagenet] == ["sgd", "sam", "ssam-f"]
    for configs in (runs.configs, imagenet):
        assert all(c.channels_last for c in configs)
        assert _recorded(configs, p.store) == {c.run_id() for c in configs}


def test_the_cpu_study_profiles_main_runs_are_the_cpu_studys_records():
    p = profiles.parameters("03_cifar_accuracy", "cpu-study", {})
    main = chapter_runs.cifar_runs(p).main
    assert not any(c.channels_last for c in main) and len(main) == len(p.seeds) * (2 + 2 * len(p.sparsities))
    registered = {c.run_id() for c in main if (c.optimizer, c.sparsity) != ("ssam-d", 0.9)}  # not in the study
    assert _recorded(main, p.store) == registered and len(registered) == 5 * len(p.seeds)
