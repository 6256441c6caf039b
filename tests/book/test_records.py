"""Provenance of run records: which records no longer describe what the code at HEAD computes (stale).

A record is stale when a numerics version of an algorithm it ran (declared by the algorithm, stored in the record,
fingerprinted by tests/optim/test_numerics.py) differs from today's, or when its provenance cannot vouch for it
(no commit, a dirty tree, a commit outside HEAD's history); where the code sits does not matter. Needs the
repository's history (CI runs in a full clone); a shallow clone skips these tests.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from sparsam.book import records
from sparsam.experiment import optimizers, results
from sparsam.experiment.config import TrainConfig
from sparsam.masks import patterns
from sparsam.optim.sam import SAM
from conftest import REPO


STORE = REPO / "results" / "runs"  # the committed records
STUDY_STORE = REPO / "results" / "study" / "runs"


def git(*args: str, check: bool = True) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=check).stdout.strip()


pytestmark = pytest.mark.skipif(git("rev-parse", "--is-shallow-repository") != "false",
                                reason="staleness needs the full git history (this is a shallow clone)")
FIRST = git("rev-list", "--max-parents=0", "HEAD").split()[-1]  # the first commit: an ancestor of HEAD


def record(optimizer: str, commit: str | None, dirty: bool | None = False, numerics: dict | None = None,
           **fields) -> dict:
    config = TrainConfig(optimizer=optimizer, model="resnet-small", epochs=1, **fields)
    provenance = {} if commit is None else {"git_commit": commit, "git_dirty": dirty}
    summary = {"config": config.to_dict(), "run_id": config.run_id(), "provenance": provenance}
    return {"summary": summary if numerics is None else {**summary, "numerics": numerics}}


def test_each_configuration_names_the_algorithms_it_runs_with_their_versions():
    assert optimizers.numerics({"optimizer": "sgd"}) == {}
    assert optimizers.numerics({"optimizer": "sam"}) == optimizers.numerics({"optimizer": "asam"}) == {"sam": 1}
    assert optimizers.numerics({"optimizer": "ssam-f"}) == {"fisher_mask": 1, "fisher_scores": 1, "patterns": 1,
                                                            "sam": 1, "ssam": 1}
    assert set(optimizers.numerics({"optimizer": "ssam-d"})) == {"dynamic_mask", "patterns", "sam", "ssam"}
    assert set(optimizers.numerics({"optimizer": "sam-on"})) == {"norm_mask", "patterns", "sam", "ssam"}
    assert {"implicit"} <= set(optimizers.numerics({"optimizer": "ssam-f", "form": "implicit", "pattern": "2:4"}))
    sparse = optimizers.numerics({"optimizer": "ssam-f", "ascent": "sparse", "pattern": "layer"})
    assert {"sparse_ascent", "cost_model"} <= set(sparse) and "implicit" not in sparse
    assert "cost_model" in optimizers.numerics({"optimizer": "ssam-f", "mask_rule": "cost-aware", "pattern": "layer"})


def test_records_made_at_head_or_before_in_a_clean_tree_are_current():
    for optimizer in ("sgd", "sam", "asam", "ssam-f", "ssam-d", "sam-on"):
        assert records.stale_reason(record(optimizer, git("rev-parse", "HEAD"))) is None, optimizer
        assert records.stale_reason(record(optimizer, FIRST)) is None, optimizer  # no numerics stored: version 1
        stored = optimizers.numerics(TrainConfig(optimizer=optimizer).to_dict())
        assert records.stale_reason(record(optimizer, FIRST, numerics=stored)) is None, optimizer


def test_a_new_numerics_version_makes_the_records_that_ran_the_old_one_stale(monkeypatch):
    made = {optimizer: record(optimizer, FIRST, numerics=optimizers.numerics({"optimizer": optimizer}))
            for optimizer in ("sgd", "sam", "ssam-f", "ssam-d")}
    monkeypatch.setattr(SAM, "NUMERICS", 2)
    assert records.stale_reason(made["sam"]) == f"numerics changed since {FIRST[:7]}: sam 1 -> 2"
    assert records.is_stale(made["ssam-f"]) and records.is_stale(made["ssam-d"])  # SSAM runs SAM's step too
    assert not records.is_stale(made["sgd"])
    monkeypatch.setattr(SAM, "NUMERICS", 1)
    monkeypatch.setattr(patterns, "NUMERICS", 3)
    assert "patterns 1 -> 3" in records.stale_reason(made["ssam-f"]) and not records.is_stale(made["sam"])
    assert records.is_stale(record("ssam-f", FIRST))  # a record without numerics ran version 1 of each


@pytest.mark.parametrize("commit, dirty, expected", [
    ("f" * 40, False, "unknown commit"),
    (None, False, "unknown commit (not recorded)"),
    ("HEAD", True, "dirty tree"),
    ("HEAD", None, "dirty flag not recorded"),
])
def test_unknown_commits_and_dirty_trees_are_stale(commit, dirty, expected):
    commit = git("rev-parse", "HEAD") if commit == "HEAD" else commit
    reason = records.stale_reason(record("sgd", commit, dirty))
    assert reason is not None and expected in reason


def whole_record(optimizer: str, commit: str, numerics: dict | None = None) -> dict:
    """A committed SGD record as if made by ``optimizer`` at ``commit`` in a clean tree: a whole record, as the
    store must hold (records are validated when a store is read)."""
    rec = json.loads(sorted((REPO / "results" / "runs").glob("sgd-*.json"))[0].read_text())
    config = TrainConfig.from_dict(rec["summary"]["config"]).replace(optimizer=optimizer)
    rec["summary"].update(config=config.to_dict(), run_id=config.run_id(), weight_decay_used=config.decay)
    rec["summary"]["provenance"].update(git_commit=commit, git_dirty=False)
    if numerics is not None:
        rec["summary"]["numerics"] = numerics
    return rec


def test_stale_records_lists_the_stale_records_of_a_store(tmp_path):
    stored = {"old": whole_record("sam", FIRST, {"sam": 0}), "new": whole_record("asam", FIRST),
              "sgd": whole_record("sgd", FIRST, {})}
    for rec in stored.values():
        (tmp_path / f"{rec['summary']['run_id']}.json").write_text(json.dumps(rec))
    assert records.stale_records(tmp_path) == [stored["old"]["summary"]["run_id"]]


@pytest.mark.parametrize("store", [STORE, STUDY_STORE], ids=["quick profile", "CPU study"])
def test_the_committed_records_are_current(store):
    """Issue 29: the quick profile's records (results/runs) and the CPU study's 53 (results/study/runs) stay
    current; moving code between modules no longer touches them."""
    found = results.load_all(store)
    assert len(found) == (53 if store == STUDY_STORE else len(list(store.glob("*.json"))))
    stale = {r["summary"]["run_id"]: records.stale_reason(r) for r in found if records.is_stale(r)}
    assert stale == {}
    frame = records.records_frame(found)
    assert not frame["stale"].any()


def test_the_trainer_stores_the_numerics_of_its_configuration(tmp_path, monkeypatch):
    """A run's summary holds the versions of what its configuration ran (sparsam.experiment.train)."""
    from fakes import fake_torchvision_cifar10
    from sparsam.experiment.train import train

    fake_torchvision_cifar10(tmp_path / "tv", monkeypatch, per_batch=10)
    config = TrainConfig(optimizer="ssam-f", model="resnet-small", width=4, batch_size=10, epochs=1, num_samples=8,
                         update_every=1, update_unit="epochs")
    summary = train(config, runs_dir=tmp_path / "runs", progress=False, data_root=tmp_path / "tv")
    assert summary["numerics"] == {"fisher_mask": 1, "fisher_scores": 1, "patterns": 1, "sam": 1, "ssam": 1}
    monkeypatch.setattr(SAM, "NUMERICS", 2)
    assert "sam 1 -> 2" in records.stale_reason({"summary": {**summary, "provenance": {
        "git_commit": git("rev-parse", "HEAD"), "git_dirty": False}}})
