"""The label-noise study's declaration (results/noise_study/): its pilot grids train exactly the declared
candidates, its planned configurations are valid, and its pilot's seeds are never study seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sparsam.experiment.config import TrainConfig
from sparsam.experiment.grid import load_train_grid
from sparsam.experiment.results import load_all

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "results" / "noise_study"


def _spec():
    return yaml.safe_load((FOLDER / "noise_study.yaml").read_text())


@pytest.mark.parametrize("candidate", ["A", "B"])
def test_pilot_grids_are_the_declared_candidates(candidate):
    spec = _spec()
    declared = TrainConfig(**{**spec["common"], **spec["candidates"][candidate]})
    grid = load_train_grid(ROOT / spec["pilot"]["grids"][candidate])
    assert {(c.optimizer, c.seed) for c in grid} == {(o, s) for o in spec["pilot"]["configurations"]
                                                    for s in spec["pilot"]["seeds"]}
    for config in grid:
        assert config == declared.replace(optimizer=config.optimizer, seed=config.seed)
    sam_on = load_train_grid(FOLDER / f"pilot_sam_on_{candidate}.yaml")
    assert {(c.rho, c.seed) for c in sam_on} == {(r, s) for r in spec["pilot"]["sam_on"]["rhos"]
                                                 for s in spec["pilot"]["seeds"]}
    for config in sam_on:
        assert config == declared.replace(optimizer="sam-on", rho=config.rho, seed=config.seed)


def test_the_fast_path_of_the_declaration_is_the_benchmarks_choice():
    import json

    record = json.loads((ROOT / "results" / "bench_cpu_train.json").read_text())
    common = _spec()["common"]
    chosen = record["fastest_faithful_config"]
    assert {k: common.get(k, TrainConfig.__dataclass_fields__[k].default) for k in ("amp", "channels_last")} == {
        "amp": chosen.get("amp", "off"), "channels_last": chosen.get("channels_last", False)}


def test_planned_configurations_and_seeds():
    spec = _spec()
    for name, values in spec["configurations_planned"].items():
        fields = {k: v for k, v in values.items() if k != "seeds"}
        if fields.get("rho") == "pilot":  # SAM-ON's radius: one of the pilot's
            fields["rho"] = spec["pilot"]["sam_on"]["rhos"][0]
        if fields.get("sparsity") == "sam-on density":
            fields["sparsity"] = 0.99
        TrainConfig(**{**spec["common"], **spec["candidates"]["A"], **fields})  # valid, or this raises
    assert spec["seeds_planned"] == {"core": "power"}  # 0, 1, 2, ...: never the pilot's 100-102
    assert min(spec["pilot"]["seeds"]) >= 100
    names = set(spec["configurations_planned"])
    for comparison in spec["comparisons_planned"]:
        assert {comparison["a"], comparison["b"], comparison.get("over", "sgd")} <= names


def test_the_books_noise_margin_is_the_fixed_margin_rules_on_the_committed_pilot():
    """M2 in book/margins.yaml is what the declared rule makes of the committed pilot records, recomputed here from
    the records' final accuracies with scipy (not through the package's verdicts)."""
    import json
    import math

    import numpy as np
    from scipy import stats

    from sparsam.book.study import fixed_margin, load_candidates

    spec = load_candidates(FOLDER / "noise_study.yaml")
    records = load_all(FOLDER / "pilot")
    chosen, _ = fixed_margin.choose_cheapest(list(fixed_margin.candidate_plans(spec, records).values()))
    width = spec.settings(chosen.name)["width"]
    accuracy = {}
    for r in records:
        c = r["summary"]["config"]
        if c["width"] == width and c["optimizer"] in ("sgd", "sam") and c["seed"] in spec.pilot_seeds:
            accuracy[c["optimizer"], c["seed"]] = 100 * r["summary"]["final_test_acc"]
    diffs = np.array([accuracy["sam", s] - accuracy["sgd", s] for s in spec.pilot_seeds])
    low = diffs.mean() - stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / math.sqrt(len(diffs))
    m1 = math.floor(low * 100 + 1e-7) / 100
    m2 = math.floor(m1 * 50 + 1e-7) / 100
    declared = yaml.safe_load((ROOT / "book" / "margins.yaml").read_text())["claims"]
    assert declared["accuracy_noise_ssam_vs_sam"]["margin"] == pytest.approx(m2)
    assert declared["accuracy_noise_ssam_vs_sam"]["premise"] == "accuracy_sam_vs_sgd"
    assert f"{m1:.2f} pp" in " ".join(declared["accuracy_noise_ssam_vs_sam"]["reason"].split())
    assert declared["accuracy_norm_only_vs_fisher"] == {**declared["accuracy_norm_only_vs_fisher"],
                                                        "test": "superiority", "margin": 0.0}
