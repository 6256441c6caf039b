"""The label-noise study's question read from decided comparisons (sparsam.book.study.sam_effect), and the checks
that its runs came after its registration (sparsam.book.study.registration_commit, runs_before_registration)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from sparsam.book.study import Comparison, Study, registration_commit, runs_before_registration, sam_effect

NI, HALF = sam_effect.NON_INFERIORITY, sam_effect.HALF_GAIN


def _study(seeds: tuple[int, ...] = (0, 1, 2, 3, 4)) -> Study:
    names = ("sgd", "sam", "f", "d", "on")
    comparisons = (Comparison("accuracy_sam_vs_sgd", "sam", "sgd"),
                   *(Comparison(NI, a, "sam") for a in ("f", "d", "on")),
                   *(Comparison(HALF, a, "sam", "sgd") for a in ("f", "d")))  # "on" has no half-gain: left out
    return Study({}, {n: ({"optimizer": "sgd"}, seeds) for n in names}, comparisons, {}, {})


def _decided(status: list[str], family: list[str], n: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"status": status, "registered_status": status, "family_status": family, "n": n})


def test_both_readings_reproduced_keep_the_effect_and_one_failure_loses_it():
    decided = _decided(["reproduced", "reproduced", "not reproduced", "reproduced", "reproduced", "inconclusive"],
                       ["reproduced", "reproduced", "inconclusive", "reproduced", "reproduced", "inconclusive"],
                       [5] * 6)
    registered = sam_effect.effect_table(_study(), decided, reading="registered")
    assert list(registered.index) == ["f", "d"]  # only what both readings compare
    assert registered.loc["f", "answer"] == sam_effect.KEEPS
    assert registered.loc["d", "answer"] == sam_effect.LOSES  # one reading not reproduced
    family = sam_effect.effect_table(_study(), decided)  # family-wise by default
    assert family.loc["d", "answer"] == "not decided at this scale"  # every planned seed in, still inconclusive
    assert family.loc["d", "non-inferior to SAM (family-wise)"] == "inconclusive"
    assert sam_effect.effect_answer(registered) == "f keeps SAM's effect; d does not."
    assert sam_effect.effect_answer(family) == "f keeps SAM's effect; d: not decided."


def test_missing_seeds_say_yet_and_a_study_without_both_readings_is_refused():
    decided = _decided(["inconclusive"] * 6, ["inconclusive"] * 6, [2] * 6)
    table = sam_effect.effect_table(_study(), decided)
    assert set(table["answer"]) == {"not decided yet"} and list(table["seeds"]) == [2, 2]
    bare = Study({}, {"sam": ({}, (0,)), "sgd": ({}, (0,))}, (Comparison("accuracy_sam_vs_sgd", "sam", "sgd"),), {}, {})
    with pytest.raises(ValueError, match="must compare some configuration with SAM by both"):
        sam_effect.effect_table(bare, _decided(["reproduced"], ["reproduced"], [5]))
    with pytest.raises(ValueError, match="reading must be one of"):
        sam_effect.effect_table(_study(), decided, reading="holm")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}).stdout.strip()


def _record(run_id: str, commit: str | None) -> dict:
    return {"summary": {"run_id": run_id, "provenance": {"git_commit": commit}}}


def test_runs_made_before_the_registration_commit_are_named(tmp_path):
    _git(tmp_path, "init", "-q")
    study = tmp_path / "study.yaml"
    study.write_text("question: q\ncandidates: {A: {}}\n")
    _git(tmp_path, "add", "study.yaml")
    _git(tmp_path, "commit", "-qm", "declared")
    declared = _git(tmp_path, "rev-parse", "HEAD")
    assert registration_commit(study) is None  # declared, not registered
    assert runs_before_registration(study, [_record("early", declared)]) == ["early"]
    study.write_text(study.read_text() + "regime: {}\npilot_result: {chosen: A}\n")
    _git(tmp_path, "commit", "-qam", "registered")
    registered = _git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "later.txt").write_text("x")
    _git(tmp_path, "add", "later.txt")
    _git(tmp_path, "commit", "-qm", "later")
    later = _git(tmp_path, "rev-parse", "HEAD")
    assert registration_commit(study) == registered
    records = [_record("before", declared), _record("at", registered), _record("after", later),
               _record("unknown", None)]
    assert runs_before_registration(study, records) == ["before", "unknown"]
