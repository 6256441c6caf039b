"""Rows of the claims table (sparsam.book.claims) on constructed records: verdicts, bootstrap, provenance, saved frames."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from sparsam.book.records import records_frame

from sparsam.book import claims

from sparsam.book import stats
from sparsam.experiment.config import TrainConfig
from sparsam.experiment.results import pack_bits

BASE = TrainConfig(model="resnet-small", n_train=100, n_test=200, epochs=1)
FAMILY = ["family_status", "family_size", "sim_low", "sim_high"]  # filled in when a frame is read as a family


def record(config: TrainConfig, correct: np.ndarray, commit: str = "f" * 40) -> dict:
    return {"summary": {"config": config.to_dict(), "run_id": config.run_id(), "final_test_acc": float(correct.mean()),
                        "test_correct": pack_bits(correct),
                        "provenance": {"git_commit": commit, "git_dirty": False}}, "metrics": []}


def runs(gain: float, seeds: list[int]) -> list[dict]:
    """SAM and SSAM-F runs per seed; SSAM-F gets ``gain`` (a fraction of the 200 examples) more right."""
    out = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        sam = rng.random(200) < 0.6
        ssam = sam.copy()
        flip = np.flatnonzero(~sam if gain > 0 else sam)[: int(abs(gain) * 200) + seed]
        ssam[flip] = gain > 0
        out.append(record(BASE.replace(optimizer="sam", seed=seed), sam))
        out.append(record(BASE.replace(optimizer="ssam-f", sparsity=0.5, seed=seed), ssam))
    return out


def decide(records):
    frame = records_frame(records)
    return claims.accuracy(frame, records, "SSAM-F vs SAM", "accuracy_ssam_vs_sam", {"optimizer": "ssam-f"},
                           {"optimizer": "sam"}, resamples=500)


def test_a_clear_gain_over_three_seeds_is_reproduced_with_both_intervals_above_zero():
    row = decide(runs(0.05, [0, 1, 2]))
    assert row["status"] == "reproduced" and row["n"] == 3
    assert row["low"] > 0 and row["boot_low"] > 0 and row["boot_low"] < row["diff"] < row["boot_high"]
    expected = stats.compare([100 * (0.05 * 200 + s) / 200 for s in range(3)], [0, 0, 0], margin=0.5,
                                test="non-inferiority")
    assert row["diff"] == pytest.approx(expected.diff) and row["low"] == pytest.approx(expected.low)


def test_a_clear_loss_is_not_reproduced_and_one_seed_is_inconclusive():
    assert decide(runs(-0.05, [0, 1, 2]))["status"] == "not reproduced"
    single = decide(runs(0.05, [0]))
    assert single["status"] == "inconclusive" and single["n"] == 1 and math.isnan(single["low"])


def test_provenance_names_commits_and_flags_unknown_ones_as_stale():
    row = decide(runs(0.05, [0, 1, 2]))
    assert row["commits"] == "fffffff" and row["stale"]           # not a commit of this repository
    empty = claims.accuracy(records_frame([]), [], "x", "accuracy_sam_vs_sgd", {"optimizer": "sam"},
                            {"optimizer": "sgd"})
    assert empty["status"] == "inconclusive" and empty["n"] == 0 and empty["commits"] == "no runs"


def test_mismatched_frame_and_records_are_refused_and_the_table_reads_ratios():
    records = runs(0.05, [0])
    with pytest.raises(ValueError, match="frame and records"):
        claims.accuracy(records_frame(records), records[:1], "x", "accuracy_sam_vs_sgd", {}, {})
    ratio = claims.row("flat", "flatness_ssam_vs_sgd", stats.decide("flatness_ssam_vs_sgd", [1, 1, 1], [2, 2, 2.2]))
    table = claims.display_table(claims.claims_frame([ratio]))
    assert table["mean difference"][0].startswith("×0.") and table[claims.STATUS_HEADER][0] == "reproduced"
    with pytest.raises(ValueError, match="rule must be one of"):
        claims.row("x", "accuracy_of_everything", stats.compare([1, 2, 3], [0, 1, 2]))


def test_saved_verdicts_come_back_exactly_in_chapter_order_with_chapter_and_profile(tmp_path):
    cifar = claims.claims_frame([decide(runs(0.05, [0, 1, 2])), decide(runs(0.05, [0]))])  # NaN bounds, bools
    flat = claims.claims_frame([claims.row("flat", "flatness_ssam_vs_sgd",
                                           stats.decide("flatness_ssam_vs_sgd", [1, 1, 1], [2, 2, 2.2]))])
    claims.save_verdicts(flat, "06_landscape", "quick", folder=tmp_path)    # saved first, listed last
    path = claims.save_verdicts(cifar, "03_cifar_accuracy", "quick", folder=tmp_path)
    assert path == tmp_path / "03_cifar_accuracy.json"
    loaded = claims.load_verdicts(tmp_path)
    assert list(loaded["chapter"]) == ["03_cifar_accuracy"] * 2 + ["06_landscape"]
    assert set(loaded["profile"]) == {"quick"} and list(loaded.columns[:2]) == ["chapter", "profile"]
    again = claims.load_verdicts(tmp_path).iloc[:2].drop(columns=["chapter", "profile", *FAMILY])
    pd.testing.assert_frame_equal(again, cifar.drop(columns=FAMILY))         # exact: values, NaNs and dtypes
    pd.testing.assert_frame_equal(claims.load_verdicts(tmp_path).iloc[2:].drop(columns=["chapter", "profile", *FAMILY])
                                  .reset_index(drop=True), flat.drop(columns=FAMILY))
    assert list(loaded["family_size"]) == [3, 3, 3]                          # the claims table is one family
    assert list(loaded["claim"]) == ["SSAM-F vs SAM"] * 2 + ["flat"]         # names as saved (two alike)
    assert claims.missing_chapters(loaded) == ["04_efficiency", "05_imagenet"]
    claims.save_verdicts(flat, "06_landscape", "paper", folder=tmp_path)      # overwrites, another profile
    assert list(claims.load_verdicts(tmp_path, profile="quick")["chapter"].unique()) == ["03_cifar_accuracy"]
    assert list(claims.load_verdicts(tmp_path, profile="paper")["chapter"].unique()) == ["06_landscape"]


def test_no_saved_verdicts_give_an_empty_frame_with_the_columns(tmp_path):
    empty = claims.load_verdicts(tmp_path / "never-written")
    assert empty.empty and list(empty.columns) == ["chapter", "profile", *claims.claims_frame([]).columns]
    assert claims.missing_chapters(empty) == ["03_cifar_accuracy", "04_efficiency", "05_imagenet", "06_landscape"]


def test_bad_saved_files_and_bad_names_are_refused_in_one_line_naming_them(tmp_path):
    frame = claims.claims_frame([decide(runs(0.05, [0]))])
    for text in ("{not json", json.dumps({"chapter": "03_cifar_accuracy"}), "[]"):
        (tmp_path / "03_cifar_accuracy.json").write_text(text)
        with pytest.raises(ValueError, match=r"03_cifar_accuracy\.json is not a saved verdicts frame") as error:
            claims.load_verdicts(tmp_path)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="chapter must be one of"):
        claims.save_verdicts(frame, "07_everything", "quick", folder=tmp_path)
    with pytest.raises(ValueError, match="profile must be one of"):
        claims.save_verdicts(frame, "03_cifar_accuracy", "fast", folder=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["03_cifar_accuracy.json"]   # nothing half-written


def _row(label: str, rule: str, a, b) -> dict:
    return claims.row(label, rule, stats.decide(rule, a, b))


SGD = np.array([70.0, 71.0, 69.5, 70.5, 70.2])
SAM_LIKE_SGD = SGD + np.array([0.3, -0.4, 0.5, -0.2, 0.1])
SSAM_LIKE_SAM = SAM_LIKE_SGD + np.array([0.05, -0.05, 0.1, -0.1, 0.0])


def test_the_claims_table_is_one_family_with_premises_in_the_same_chapter(tmp_path):
    cifar = claims.claims_frame([_row("SSAM-F vs SAM", "accuracy_ssam_vs_sam", SSAM_LIKE_SAM, SAM_LIKE_SGD),
                                 _row("SAM vs SGD", "accuracy_sam_vs_sgd", SAM_LIKE_SGD, SGD)])
    claims.save_verdicts(cifar, "03_cifar_accuracy", "quick", folder=tmp_path)
    imagenet = claims.claims_frame([_row("SSAM-F vs SAM", "accuracy_ssam_vs_sam", SSAM_LIKE_SAM, SAM_LIKE_SGD),
                                    _row("SAM vs SGD", "accuracy_sam_vs_sgd", SGD + 5 + (SAM_LIKE_SGD - SGD) / 10,
                                         SGD)])
    claims.save_verdicts(imagenet, "05_imagenet", "quick", folder=tmp_path)
    table = claims.load_verdicts(tmp_path).set_index(["chapter", "claim"])
    assert set(table["status"].loc[:, "SSAM-F vs SAM"]) == {"reproduced"}    # registered: decided in both chapters
    assert table.loc[("03_cifar_accuracy", "SSAM-F vs SAM"), "family_status"] == stats.PREMISE_NOT_SHOWN
    assert table.loc[("05_imagenet", "SSAM-F vs SAM"), "family_status"] == "reproduced"  # SAM beats SGD there
    assert table.loc[("05_imagenet", "SAM vs SGD"), "family_status"] == "reproduced"
    assert set(table["family_size"]) == {4}
    shown = claims.display_table(table.reset_index())
    assert list(shown[claims.FAMILY_HEADER])[0] == stats.PREMISE_NOT_SHOWN
    assert shown["simultaneous interval"][0].endswith("(m = 4)") and shown["one-sided p"][0] != "–"
    alone = claims.display_table(cifar)                                       # not read as a family: no reading
    assert list(alone[claims.FAMILY_HEADER]) == ["–", "–"] and alone["simultaneous interval"][0] == "–"


def test_family_wise_takes_explicit_premises_and_refuses_ambiguous_ones():
    frame = claims.claims_frame([_row("ssam", "accuracy_ssam_vs_sam", SSAM_LIKE_SAM, SAM_LIKE_SGD),
                                 _row("sam", "accuracy_sam_vs_sgd", SGD + 5 + (SAM_LIKE_SGD - SGD) / 10, SGD)])
    assert list(claims.family_wise(frame)["family_status"]) == ["reproduced", "reproduced"]
    assert claims.family_wise(frame, {"ssam": None})["family_status"][0] == stats.PREMISE_NOT_SHOWN
    assert list(frame["family_status"]) == ["", ""]                           # the input is not changed
    twice = claims.claims_frame([*frame.to_dict("records"), frame.iloc[1].to_dict() | {"claim": "sam again"}])
    with pytest.raises(ValueError, match="has 2 premises of rule 'accuracy_sam_vs_sgd'"):
        claims.family_wise(twice)
    with pytest.raises(ValueError, match="premises must name claims of the frame once each"):
        claims.family_wise(frame, {"nobody": None})


def test_a_frame_saved_without_the_family_columns_is_refused_naming_the_file(tmp_path):
    frame = claims.claims_frame([decide(runs(0.05, [0]))]).drop(columns=["p_value", *FAMILY])
    claims.save_verdicts(frame, "03_cifar_accuracy", "quick", folder=tmp_path)
    with pytest.raises(ValueError, match=r"03_cifar_accuracy\.json is not a saved verdicts frame: it lacks the "
                                         r"columns \['p_value'.*run its chapter again"):
        claims.load_verdicts(tmp_path)
