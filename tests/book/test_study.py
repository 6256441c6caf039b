"""The CPU study's pre-registration: valid configurations, pinned margins, pilot decisions, and order in git."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from sparsam.book import layout
from sparsam.experiment.results import load_all
from sparsam.book.study import load_study, pilot_verdicts

STUDY, STORE = REPO / layout.STUDY_FILE, REPO / layout.STUDY_STORE  # the book's, relative to its root


def test_every_configuration_is_valid_and_distinct():
    study = load_study()
    configs = study.configs()
    assert len({c.run_id() for c in configs}) == len(configs)
    for name, (_, seeds) in study.configurations.items():
        assert len(seeds) >= 3, name
        for config in study.configs(name):
            assert study.name_of(config) == name
    core = ["sgd", "sam", "ssam-f-0.5", "ssam-f-0.9", "ssam-d-0.5", "ssam-f-0.5-masked", "random-0.5"]
    assert all(len(study.configurations[name][1]) >= 5 for name in core)
    assert all(c.n_test is None and c.device == "cpu" for c in configs)  # full test set, on the CPU


def test_a_margin_that_differs_from_book_margins_is_rejected(tmp_path):
    spec = yaml.safe_load(STUDY.read_text())
    spec["margins"]["accuracy_ssam_vs_sam"]["margin"] = 1.0
    changed = tmp_path / "study.yaml"
    changed.write_text(yaml.safe_dump(spec))
    with pytest.raises(ValueError, match="claim 'accuracy_ssam_vs_sam': the study's pinned margin .margin. differs"):
        load_study(changed, margins=REPO / layout.MARGINS)
    assert load_study(changed).declared["accuracy_ssam_vs_sam"]["margin"] == 1.0  # its own margins: as it says
    spec["margins"]["accuracy_ssam_vs_sam"]["margin"] = 0.5
    spec["comparisons"].append({"claim": "accuracy_ssam_vs_sam", "a": "ssam-f-0.7", "b": "sam"})
    changed.write_text(yaml.safe_dump(spec))
    with pytest.raises(ValueError, match="ssam-f-0.7"):
        load_study(changed)


def test_the_pilot_statuses_follow_from_its_records():
    study = load_study()
    decided = {regime: verdict.status for regime, verdict in pilot_verdicts(study).items()}
    assert decided == study.pilot["statuses"]
    assert all(verdict.n >= 3 for verdict in pilot_verdicts(study).values())


def test_the_pilot_paired_sd_is_the_spread_behind_the_pilot_verdict_of_the_studys_regime():
    import dataclasses
    import math

    from scipy import stats as scipy_stats

    from sparsam.book.study import pilot_paired_sd

    study = load_study()
    n, sd = pilot_paired_sd(study)
    own = next(regime for regime, changes in study.pilot["regimes"].items() if not changes)
    verdict = pilot_verdicts(study)[own]  # its interval's half-width is t * sd / sqrt(n): recover the SD from it
    assert n == verdict.n
    half = (verdict.high - verdict.low) / 2
    assert sd == pytest.approx(half * math.sqrt(n) / scipy_stats.t.ppf((1 + verdict.level) / 2, n - 1), rel=1e-9)
    changed = dataclasses.replace(study, pilot={**study.pilot, "regimes": {"B": {"epochs": 100}}})
    with pytest.raises(ValueError, match="exactly one regime without changes"):
        pilot_paired_sd(changed)


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)


def test_the_preregistration_precedes_every_ssam_record_of_the_study():
    first = _git("log", "--diff-filter=A", "--format=%H", "--", str(STUDY.relative_to(REPO))).stdout.split()
    if not first:
        pytest.skip("the pre-registration is not committed yet")
    preregistration = first[-1]
    for record in load_all(STORE):
        summary = record["summary"]
        if summary["config"]["optimizer"].startswith("ssam"):
            commit = summary["provenance"]["git_commit"]
            ok = _git("merge-base", "--is-ancestor", preregistration, commit).returncode == 0
            assert ok, f"{summary['run_id']} was made at {commit}, not after the pre-registration {preregistration}"


def test_study_and_pilot_records_belong_to_the_study():
    study = load_study()
    for record in load_all(STORE):
        from sparsam.experiment.config import TrainConfig

        assert study.name_of(TrainConfig.from_dict(record["summary"]["config"])) is not None
    assert (REPO / layout.PILOT_STORE).is_dir()


def test_train_grid_reads_the_preregistration(tmp_path):
    """The harness does not read studies (a layer below the book); the command line hands it their
    configurations, and the dry run lists every one."""
    from sparsam.experiment.grid import load_train_grid

    with pytest.raises(ValueError, match="pre-registration, not a training grid"):
        load_train_grid(STUDY)
    out = subprocess.run([sys.executable, "-m", "sparsam", "train-grid", str(STUDY), "--store", str(tmp_path),
                          "--dry-run"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("sgd-resnet-small-cifar10-e200") == 5
    listed = [line.split()[-1] for line in out.stdout.splitlines() if "-e200-" in line]
    assert listed == [c.run_id() for c in load_study().configs(order="seed")]  # seed by seed
    seeds = [c.seed for c in load_study().configs(order="seed")]
    assert seeds == sorted(seeds, key=sorted(set(seeds)).index) and sorted(listed) == sorted(
        c.run_id() for c in load_study().configs())  # the same runs, whole seeds first
    with pytest.raises(ValueError, match="order must be 'configuration' or 'seed'"):
        load_study().configs(order="random")


def test_the_family_reading_is_added_beside_an_unchanged_registration():
    study = load_study()
    assert len(study.comparisons) == 19 and study.correction == "none"      # the registration named no correction
    assert [(c.claim, c.a, c.b, c.over) for c in study.added] == [
        ("accuracy_ssam_keeps_half_gain", "ssam-f-0.5", "sam", "sgd"),
        ("accuracy_ssam_keeps_half_gain", "ssam-d-0.5", "sam", "sgd")]
    assert study.family == (*study.comparisons, *study.added)
    assert not any(study.registered(c) for c in study.added) and all(study.registered(c) for c in study.comparisons)
    assert study.reading_note.startswith("Family-wise reading added after the runs")
    committed = subprocess.run(["git", "show", f"{_first_commit()}:{STUDY.relative_to(REPO)}"], cwd=REPO,
                               capture_output=True, text=True).stdout
    if committed:                                                            # the registered values are unchanged
        before, now = yaml.safe_load(committed), yaml.safe_load(STUDY.read_text())
        assert {k: v for k, v in now.items() if k != "added_after_the_runs"} == before


def _first_commit() -> str:
    added = _git("log", "--diff-filter=A", "--format=%H", "--", str(STUDY.relative_to(REPO))).stdout.split()
    return added[-1] if added else "HEAD"


@pytest.mark.parametrize("change, message", [
    (lambda s: s["comparisons"].append({"claim": "accuracy_ssam_vs_sam", "a": "sgd", "b": "sam", "over": "sgd"}),
     "'over' goes with a half-gain claim and only with one"),
    (lambda s: s["added_after_the_runs"]["comparisons"].append({"claim": "accuracy_ssam_keeps_half_gain",
                                                                "a": "sgd", "b": "sam"}),
     "'over' goes with a half-gain claim"),
    (lambda s: s["added_after_the_runs"]["comparisons"].append(dict(s["added_after_the_runs"]["comparisons"][0])),
     "each comparison is made once"),
    (lambda s: s["added_after_the_runs"].update(more={}),
     "added_after_the_runs may hold date, note, comparisons, margins, replaced only"),
    (lambda s: s["added_after_the_runs"]["replaced"].update(accuracy=dict(s["added_after_the_runs"]["replaced"]["cost"])),
     "what is replaced must be one of cost, got 'accuracy'"),
    (lambda s: s["added_after_the_runs"]["replaced"]["cost"].pop("reason"),
     "replaced.cost must give registered, by, date, reason"),
    (lambda s: s["added_after_the_runs"]["replaced"]["cost"].update(by=""),
     "replaced.cost must give registered, by, date, reason"),
    (lambda s: s["added_after_the_runs"]["replaced"]["cost"].pop("date"),
     "replaced.cost must give registered, by, date, reason"),
    (lambda s: s["added_after_the_runs"]["margins"].update(accuracy_sam_vs_sgd={"margin": 0.5}),
     "accuracy_sam_vs_sgd may not change the registered margin"),
    (lambda s: s["added_after_the_runs"]["margins"].pop("accuracy_ssam_keeps_half_gain"),
     "claim 'accuracy_ssam_keeps_half_gain' is not declared in study.yaml .its own margins."),
    (lambda s: s.update(correction="bonferroni"), "correction must be one of none, holm"),
    (lambda s: s["comparisons"].append({"claim": "accuracy_sam_vs_sgd", "a": "sam", "b": "sgd", "c": "x"}),
     "a comparison holds claim, a, b"),
])
def test_a_bad_family_reading_is_rejected(tmp_path, change, message):
    spec = yaml.safe_load(STUDY.read_text())
    change(spec)
    changed = tmp_path / "study.yaml"
    changed.write_text(yaml.safe_dump(spec))
    with pytest.raises(ValueError, match=message):
        load_study(changed)


def test_the_studys_own_margins_are_the_books_for_every_claim_it_decides():
    """What the file pins, and what its added reading adds, equal book/margins.yaml in every field that decides
    (so `python -m sparsam study` decides anywhere as the book does); the premises of the family reading too."""
    from sparsam.book.stats import margins

    book = margins(REPO / layout.MARGINS)
    own = load_study(STUDY).declared
    assert set(own) == {c.claim for c in load_study(STUDY).family}
    for claim, rule in own.items():
        assert {k: v for k, v in rule.items() if k != "reason"} == \
            {k: v for k, v in book[claim].items() if k != "reason"}, claim
    assert own["accuracy_ssam_vs_sam"]["premise"] == "accuracy_sam_vs_sgd"
