"""The label-noise study's registered curvature family: its file checked against the study, its networks the study's
own runs, the measurement on the labels those runs trained on, and the family decided on the scale-free measure with
Holm's step-down behind the premise (sparsam.book.study.model.load_flatness_registration,
sparsam.book.study.flatness_family)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from statsmodels.stats.multitest import multipletests

from sparsam.book import curvature, layout
from sparsam.book.stats import PREMISE_NOT_SHOWN
from sparsam.book.study import flatness_family, load_flatness_registration
from sparsam.experiment import data
from sparsam.experiment.results import load_all
from conftest import changed_yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def registration():
    return load_flatness_registration(REPO / layout.NOISE_FLATNESS_REGISTRATION)


def _write_changed(tmp_path: Path, **changes) -> Path:
    return changed_yaml(REPO / layout.NOISE_FLATNESS_REGISTRATION, tmp_path, "flatness_registration.yaml", **changes)


def test_the_registered_networks_are_the_studys_committed_runs(registration):
    records = {r["summary"]["run_id"]: r for r in load_all(REPO / layout.NOISE_STUDY_STORE)}
    configs = registration.configs()
    assert len(configs) == 4 * 4 and {seed for _, seed in configs} == {1, 2, 3, 4}
    for (method, seed), config in configs.items():
        assert config.run_id() in records, config.run_id()
        assert config.label_noise == 0.4 and config.seed == seed
        optimizer = {"SGD": "sgd", "SAM": "sam", "SSAM-F": "ssam-f", "SSAM-D": "ssam-d"}[method]
        assert records[config.run_id()]["summary"]["config"]["optimizer"] == optimizer
    assert configs["SSAM-D", 1].drop_rate == 0.5  # SSAM-D, not the fixed random mask (drop rate 0)
    premises = registration.premises()
    assert {(c.a, c.b) for c in premises} == {("SSAM-F", "SAM"), ("SSAM-D", "SAM")}
    assert {(p.a, p.b, p.claim) for p in premises.values()} == {("SAM", "SGD", "flatness_sam_vs_sgd")}


def test_a_registration_that_disagrees_with_its_study_or_the_margins_is_refused(tmp_path):
    cases = {
        "networks.SAM must be a configuration": dict(networks={"SGD": "sgd", "SAM": "sam-x"}),
        "seeds must be registered for every network": dict(seeds=[1, 5]),
        "seeds must be distinct": dict(seeds=[1, 1]),
        "measurement must hold exactly": dict(measurement={"n_eval": 512}),
        "measurement.power_iterations must be an integer >= 1": dict(measurement__power_iterations=0),
        "measures must be distinct ones": dict(measures=["eigenvalue", "sharpness"]),
        "margins.flatness_ssam_vs_sam: must pin exactly": dict(margins__flatness_ssam_vs_sam={
            "test": "non-inferiority", "unit": "ratio", "better": "lower", "margin": 1.5}),
        "must be one of its networks": dict(comparisons=[{"claim": "flatness_sam_vs_sgd", "a": "SAM", "b": "SGD"},
                                                         {"claim": "flatness_ssam_vs_sgd", "a": "SSAM-X", "b": "SGD"}]),
        "its premise 'flatness_sam_vs_sgd' must be in the family once": dict(
            comparisons=[{"claim": "flatness_ssam_vs_sam", "a": "SSAM-F", "b": "SAM"}]),
        "claim must be one in unit 'ratio'": dict(
            comparisons=[{"claim": "accuracy_sam_vs_sgd", "a": "SAM", "b": "SGD"}]),
        "correction must be one of": dict(correction="bonferroni"),
        "date must be a day": dict(date="7 December"),
        "must hold exactly study": dict(extra="x"),
    }
    for message, changes in cases.items():
        with pytest.raises(ValueError, match=message) as raised:
            load_flatness_registration(_write_changed(tmp_path, **changes))
        assert "\n" not in str(raised.value) and "flatness_registration.yaml" in str(raised.value)


def _rows(ratios: dict[str, tuple[float, float]], seeds=(1, 2, 3, 4), raw_flip: bool = False) -> pd.DataFrame:
    """Constructed rows: per method, (eigenvalue, trace) ratios to SGD in normalised weights, with a per-seed spread;
    the raw measures the inverse (so that a rule deciding on them would read the other way)."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in seeds:
        base = np.exp(rng.normal(0, 0.3, size=2)) * 100
        for method, (eig, tr) in ratios.items():
            wobble = np.exp(rng.normal(0, 0.02, size=2))
            eig_n, tr_n = base * (eig, tr) * wobble
            row = {c: math.nan for c in curvature.ROW}
            row.update(method=method, seed=seed, eigenvalue_normalized=eig_n, trace_normalized=tr_n,
                       eigenvalue=1e4 / eig_n if raw_flip else eig_n, trace=1e4 / tr_n if raw_flip else tr_n)
            rows.append(row)
    return pd.DataFrame(rows, columns=list(curvature.ROW))


def test_the_family_decides_on_the_scale_free_measure_behind_its_premise(registration):
    flat = _rows({"SGD": (1, 1), "SAM": (0.5, 0.5), "SSAM-F": (0.52, 0.5), "SSAM-D": (0.9, 0.95)}, raw_flip=True)
    decided = flatness_family.decide(registration, flat)
    assert len(decided) == 10
    status = {name.split(" (")[0]: v.family_status for name, v in decided.items()}
    assert status["SAM vs SGD: top Hessian eigenvalue"] == "reproduced"  # normalised; the raw would read the other way
    assert status["SSAM-F vs SAM: Hessian trace"] == "reproduced"
    assert status["SSAM-D vs SAM: Hessian trace"] == "not reproduced"  # 0.95 / 0.5 is far above the 1.25 margin
    # Holm's step-down on the two-sided p-values, as statsmodels computes it
    p = [2 * min(v.p_value, 1 - v.p_value) for v in decided.values()]
    rejected = multipletests(p, alpha=0.05, method="holm")[0]
    for (name, verdict), reject in zip(decided.items(), rejected):
        expected = verdict.status if reject else "inconclusive"
        assert verdict.family_status == expected, name
        assert verdict.family_size == 10

    sharp = _rows({"SGD": (1, 1), "SAM": (1.0, 1.0), "SSAM-F": (1.0, 1.0), "SSAM-D": (1.0, 1.0)})
    premise_failed = flatness_family.decide(registration, sharp)
    as_flat = [v for name, v in premise_failed.items() if "flatness_ssam_vs_sam" in name]
    assert all(v.status == "reproduced" for v in as_flat)  # as flat as a SAM that is no flatter than SGD ...
    assert all(v.family_status == PREMISE_NOT_SHOWN for v in as_flat)  # ... stands on no premise

    # a claim combines its own rules' rows only: SAM sharper than SGD (the premise, not reproduced) does not count
    sharper = flatness_family.decide(registration, _rows({"SGD": (1, 1), "SAM": (1.6, 1.6), "SSAM-F": (0.5, 0.5),
                                                          "SSAM-D": (0.5, 0.5)}))
    premise = [v.family_status for name, v in sharper.items() if "flatness_sam_vs_sgd" in name]
    assert premise == ["not reproduced", "not reproduced"]
    flat = ("flatness_ssam_vs_sam", "flatness_ssam_vs_sgd")
    assert flatness_family.claim_statuses(registration, sharper, {"flat": flat, "none": ("accuracy_sam_vs_sgd",)}) \
        == {"flat": "inconclusive"}  # as flat: premise not shown; flatter than SGD: reproduced


def test_fewer_than_three_seeds_or_no_records_decide_nothing(registration):
    two = flatness_family.decide(registration, _rows({"SGD": (1, 1), "SAM": (0.1, 0.1), "SSAM-F": (0.1, 0.1),
                                                      "SSAM-D": (0.1, 0.1)}, seeds=(1, 2)))
    assert {v.family_status for v in two.values()} == {"inconclusive"}
    none = flatness_family.decide(registration, pd.DataFrame(columns=list(curvature.ROW)))
    assert {v.status for v in none.values()} == {"inconclusive"} and {v.n for v in none.values()} == {0}
    assert flatness_family.answer(registration, none).endswith(
        "(10 comparisons at 0 paired seeds, Holm: 10 inconclusive).")


def test_a_noisy_run_is_measured_on_the_labels_it_trained_on():
    n_train, n_eval, seed = 120, 40, 3
    noisy = curvature.evaluation_batches("cifar10", n_train, n_eval, seed, 16, torch.device("cpu"), label_noise=0.4)
    clean = curvature.evaluation_batches("cifar10", n_train, n_eval, seed, 16, torch.device("cpu"))
    images = torch.cat([x for x, _ in noisy])
    assert torch.equal(images, torch.cat([x for x, _ in clean]))  # the same images
    # independently: the training pipeline's own dataset of that run (its subset, its seeded noise), at the
    # positions whose images the measurement took, under the evaluation transform
    trained = data.make_loaders("cifar10", 32, n_train=n_train, seed=seed, label_noise=0.4).train.dataset
    plain = data.make_loaders("cifar10", 32, n_train=n_train, seed=seed).train.dataset
    trained.transform = plain.transform = data.load_dataset("cifar10", "test")[0].transform
    local = data.balanced_subset(plain.labels, n_eval, seed)
    assert torch.equal(torch.stack([trained[int(i)][0] for i in local]), images)
    noisy_labels, clean_labels = torch.cat([y for _, y in noisy]), torch.cat([y for _, y in clean])
    assert torch.equal(noisy_labels, trained.labels[local])
    assert torch.equal(clean_labels, plain.labels[local])
    assert 0 < int((noisy_labels != clean_labels).sum()) < n_eval  # the noise reaches the measurement, not all of it


def test_the_command_measures_a_registration_and_refuses_training(tmp_path, capsys):
    from sparsam.cli import main

    with pytest.raises(SystemExit, match="--train-missing does not apply to --registration"):
        main(["flatness", "--registration", str(REPO / layout.NOISE_FLATNESS_REGISTRATION), "--train-missing"])
    # an empty runs folder: nothing finished, nothing measured, nothing written but the store
    assert main(["flatness", "--registration", str(REPO / layout.NOISE_FLATNESS_REGISTRATION),
                 "--runs-dir", str(tmp_path / "runs"), "--store", str(tmp_path / "flatness"), "--shard", "1/4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"not finished: {c.run_id()}" for c in list(
        load_flatness_registration(REPO / layout.NOISE_FLATNESS_REGISTRATION).configs().values())[1::4]]
    assert not list((tmp_path / "flatness").iterdir())


def test_the_claims_table_reads_the_second_family_where_the_accuracy_family_cannot():
    import dataclasses

    from sparsam.book import scale_reports, scales, stats
    from sparsam.book.claims_table import status_of
    from sparsam.book.study import NOT_IN_STUDY

    (state,) = scale_reports.survey(REPO, (scales.NOISE_STUDY,))
    registered, records, frame = scale_reports.load(state.scale, REPO)
    decided = scale_reports.decide(state.scale, registered, frame, records, resamples=0, root=REPO)
    cells = scale_reports.scale_statuses(state, registered, decided)
    # independently: the family-wise statuses of the rows of chapter 6's two flatness rules, every measure, combined
    registration = load_flatness_registration(REPO / layout.NOISE_FLATNESS_REGISTRATION)
    family = flatness_family.decide(registration, flatness_family.flatness_rows(registration))
    rows = [v.family_status for name, v in family.items()
            if name.endswith(("(flatness_ssam_vs_sam)", "(flatness_ssam_vs_sgd)"))]
    assert len(rows) == 8
    assert status_of(cells["flat"]) == stats.combine(rows)
    assert "registered second family" in cells["flat"] and "4 paired seeds" in cells["flat"]
    names = scale_reports.claim_scales(state, registered, decided)
    assert "4 seeds" in names["SSAM reaches minima as flat as SAM's and flatter than SGD's"]
    # the accuracy family's own cells are untouched; a scale without a second family, or not complete, has none
    alone = dataclasses.replace(state, scale=dataclasses.replace(state.scale, second_family=None))
    assert scale_reports.scale_statuses(alone, registered, decided) == {**cells, "flat": NOT_IN_STUDY}
    assert scale_reports.second_family(dataclasses.replace(state, records=state.planned - 1)) is None
