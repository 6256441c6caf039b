"""What the introduction's first screen says is missing (issue 32, item 7), computed from the records: whether any
run was made at the papers' scale, and what a study cannot decide and why (its premise not shown, its power at its
seeds), each checked against an independent computation or a constructed study."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml
from scipy import stats as scipy_stats

from conftest import REPO
from sparsam.book import deviations, layout, scale_reports, scales, study

CPU_SPEC = yaml.safe_load((REPO / layout.STUDY_FILE).read_text())
ACCURACY, PREMISE = study.ACCURACY_RULE, "accuracy_sam_vs_sgd"


def _runs(rows: list[dict]) -> pd.DataFrame:
    base = {"dataset": "cifar10", "model": "resnet18", "width": None, "n_train": None, "epochs": 200}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_a_run_is_at_the_papers_scale_only_with_their_data_network_width_and_epochs():
    frame = _runs([{}, {"model": "wrn28-10", "dataset": "cifar100", "epochs": 300},
                   {"width": 16}, {"n_train": 2500}, {"epochs": 199}, {"model": "resnet-small"},
                   {"dataset": "imagenette", "model": "resnet50", "epochs": 90},
                   {"dataset": "imagefolder:/data/imagenet", "model": "resnet50", "epochs": 90}])
    assert list(deviations.at_papers_scale(frame, "cifar")) == [True, True, False, False, False, False, False, False]
    assert list(deviations.at_papers_scale(frame, "imagenet")) == [False] * 7 + [True]  # Imagenette is a proxy
    with pytest.raises(ValueError, match="paper must be one of"):
        deviations.at_papers_scale(frame, "mnist")


def test_the_papers_scale_sentence_counts_such_runs_or_names_the_largest_there_are():
    small = _runs([{"model": "resnet-small", "width": 8, "n_train": 2500, "epochs": 200, "seed": 0},
                   {"model": "resnet-small", "width": 8, "n_train": 2500, "epochs": 3, "seed": 0}])
    small = small.assign(device="cpu", device_name="x86_64", n_test=None)
    text = deviations.papers_scale_text(small)
    assert text.startswith("No run at the papers' scale exists: none of the book's 2 run records")
    assert text.endswith("the largest (1 record) are " + deviations.scale_text(small.iloc[:1]) + ".")
    papers = pd.concat([small, _runs([{"seed": 0, "device": "cuda", "device_name": "H100", "n_test": None}])],
                       ignore_index=True)
    assert deviations.papers_scale_text(papers).startswith(
        "1 of the book's 3 run records was made at the papers' scale")


def test_the_books_committed_records_hold_no_run_at_the_papers_scale_and_each_is_counted_once():
    frame = scale_reports.book_records(REPO, scales.BOOK_SCALES)
    stores = {layout.RUNS_STORE, *(s.store for s in scales.BOOK_SCALES)}
    files = {p.stem for store in stores if (REPO / store).is_dir() for p in (REPO / store).glob("*.json")}
    assert len(frame) == len(files) and set(frame["run_id"]) == files
    assert deviations.papers_scale_text(frame).startswith(f"No run at the papers' scale exists: none of the book's "
                                                          f"{len(files)} run records")


def _power(n: int, distance: float, sd: float) -> float:
    """Independently: the one-sided paired t-test's power at 2.5%, from scipy's noncentral t."""
    crit = scipy_stats.t.ppf(0.975, n - 1)
    return float(1 - scipy_stats.nct.cdf(crit, n - 1, distance * math.sqrt(n) / sd))


def test_the_cpu_study_cannot_decide_non_inferiority_to_sam_for_its_premise_and_its_power():
    scale = scales.SCALES[1]
    registered, records, frame = scale_reports.load(scale, REPO)
    decided = scale_reports.decide(scale, registered, frame, records, resamples=0, root=REPO)
    text = scale_reports.limits_text(scale, registered, frame, decided)
    premise = decided.set_index("claim").loc[f"sam vs sgd ({PREMISE})"]
    assert premise["family_status"] != "reproduced"
    assert text.startswith(f"What the CPU study cannot decide, and why: sam is not shown better than sgd "
                           f"({premise['text'].rsplit(':', 1)[0]}; family-wise {premise['family_status']}), "
                           "so no non-inferiority to sam can stand")
    # the power, independently: the pooled paired SD of the accuracy comparisons from the records' own accuracies
    pairs = [(c.a, c.b) for c in registered.comparisons if registered.declared[c.claim]["unit"] == "pp"]
    by = frame.set_index(["configuration", "seed"])["final_test_acc"]
    diffs = [pd.Series(by[a]) - pd.Series(by[b]) for a, b in pairs]
    diffs = [d.dropna() for d in diffs]
    df = sum(len(d) - 1 for d in diffs if len(d) >= 2)
    sd = math.sqrt(sum((len(d) - 1) * d.var(ddof=1) for d in diffs if len(d) >= 2) / df)
    margin = CPU_SPEC["margins"][ACCURACY]["margin"]
    n = max(len(set(registered.configurations[c.a][1]) & set(registered.configurations[c.b][1]))
            for c in registered.comparisons if c.claim == ACCURACY)
    needed = next(k for k in range(2, 1000) if _power(k, margin, sd) >= 0.8)
    assert (f"at {n} seeds (the most its comparisons of {ACCURACY} pair) a method equal to sam is shown "
            f"non-inferior at the {margin:g} pp margin with power {_power(n, margin, sd):.2f} (realised pooled "
            f"paired SD {sd:.2f} pp; 80% power needs {needed} seeds)") in text
    assert round(_power(n, margin, sd), 2) < 0.8


def _study(tmp_path, sam: list[float], cand: list[float], premise: bool = True) -> tuple:
    """A constructed study of SGD, SAM and a candidate on three seeds: SAM against SGD (the premise, where
    ``premise``) and the candidate against SAM, with the CPU study's margins; SGD's accuracy 60%."""
    margins = {k: CPU_SPEC["margins"][k] for k in ("level", "min_n", ACCURACY, PREMISE)}
    comparisons = [{"claim": ACCURACY, "a": "cand", "b": "sam"}]
    if premise:
        comparisons.insert(0, {"claim": PREMISE, "a": "sam", "b": "sgd"})
    spec = {"question": "constructed", "regime": CPU_SPEC["regime"], "seeds": {"core": [0, 1, 2]},
            "configurations": {"sgd": {"seeds": "core", "optimizer": "sgd"},
                               "sam": {"seeds": "core", "optimizer": "sam"},
                               "cand": {"seeds": "core", "optimizer": "ssam-f", "sparsity": 0.9}},
            "comparisons": comparisons, "margins": margins, "pilot": {}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    registered = study.load_study(path, margins=REPO / layout.MARGINS)  # the book's rules, with their premises
    values = {"sgd": [0.60, 0.60, 0.60], "sam": sam, "cand": cand}
    records = [{"summary": {"config": config.to_dict(), "run_id": config.run_id(),
                            "final_test_acc": values[name][config.seed], "cpu_seconds_per_step": 0.05,
                            "seconds_per_step": 0.05, "finished": "2030-01-15T00:00:00+00:00",
                            "provenance": {"git_commit": "f" * 40, "git_dirty": False, "device_name": "x86_64"}},
                "metrics": []}
               for name in values for config in registered.configs(name)]
    frame = study.study_frame(registered, records)
    return registered, frame, study.decide_comparisons(registered, frame, records, resamples=0)


def test_a_study_whose_premise_is_shown_and_whose_seeds_suffice_has_nothing_missing(tmp_path):
    registered, frame, decided = _study(tmp_path, sam=[0.65, 0.651, 0.652], cand=[0.6502, 0.6511, 0.6521])
    assert scale_reports.limits_text(scales.SCALES[1], registered, frame, decided) == ""


def test_a_premise_not_shown_or_not_compared_and_too_few_seeds_are_each_said(tmp_path):
    (tmp_path / "a").mkdir()
    registered, frame, decided = _study(tmp_path / "a", sam=[0.61, 0.59, 0.60], cand=[0.62, 0.58, 0.60])
    text = scale_reports.limits_text(scales.SCALES[1], registered, frame, decided)
    assert "sam is not shown better than sgd (" in text and "so no non-inferiority to sam can stand (1 comparison)" in text
    assert "at 3 seeds (the most its comparisons of accuracy_ssam_vs_sam pair)" in text
    (tmp_path / "b").mkdir()
    registered, frame, decided = _study(tmp_path / "b", sam=[0.65, 0.651, 0.652], cand=[0.6502, 0.6511, 0.6521],
                                        premise=False)
    text = scale_reports.limits_text(scales.SCALES[1], registered, frame, decided)
    assert text == ("What the CPU study cannot decide, and why: it makes no comparison that shows the premise of its "
                    "non-inferiority comparisons, so none can stand (1 comparison).")
