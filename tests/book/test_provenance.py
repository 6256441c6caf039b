"""Every status carries the provenance of its rule (issue 32, items 1 and 4): registered, or added after the runs
with the day git committed it and the reason; beside a rule that replaced a registered one, the registered rule's
reading; and the scale of the records that decided it. On a constructed study whose cost rule changed after its
records (a throwaway git history dates the change), and on the CPU study's committed records against an
independent computation from their JSON files."""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as scipy_stats

from conftest import REPO
from sparsam.book import claims, claims_table, study
from sparsam.book.stats import decide
from sparsam.book.study import cost as study_cost

CPU_STUDY = REPO / "results" / "study" / "cpu_study.yaml"
SPEC = yaml.safe_load(CPU_STUDY.read_text())
COST, ACCURACY = study.COST_RULE, study.ACCURACY_RULE
REGISTERED_WORDS = "the records' own CPU time per step, paired by seed"
RULE_FILE = "cost_rule.yaml"


def _git(repo: Path, *args: str, date: str = "2030-01-01T12:00:00") -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date,
                               "PATH": "/usr/bin:/bin"}).stdout.strip()


def _spec() -> dict:
    """A study of three configurations on the CPU study's regime: a candidate against SAM (accuracy) and against
    SGD (cost, the question's budget), with the CPU study's margins."""
    margins = {k: SPEC["margins"][k] for k in ("level", "min_n", ACCURACY, COST)}
    return {"question": "constructed", "regime": SPEC["regime"], "seeds": {"core": [0, 1, 2]},
            "configurations": {"sgd": {"seeds": "core", "optimizer": "sgd"},
                               "sam": {"seeds": "core", "optimizer": "sam"},
                               "cand": {"seeds": "core", "optimizer": "ssam-f", "sparsity": 0.9}},
            "comparisons": [{"claim": ACCURACY, "a": "cand", "b": "sam"}, {"claim": COST, "a": "cand", "b": "sgd"}],
            "margins": margins, "pilot": {}}


REPLACED = {"cost": {"registered": REGISTERED_WORDS, "by": RULE_FILE, "reason": "the records' loads differed"}}


def _repository(tmp_path: Path, replaced_on: str, declared: str | None = None) -> Path:
    """A git history: the registration committed on 2030-01-01, its cost rule replaced on ``replaced_on`` (the
    rule's file and the study file's added_after_the_runs.replaced, in one commit), the file declaring that day
    (or ``declared``) as the day of both."""
    day = declared or replaced_on
    reading = {"date": day, "note": "n", "replaced": {"cost": {**REPLACED["cost"], "date": day}}}
    _git(tmp_path, "init", "-q")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(_spec(), sort_keys=False))
    _git(tmp_path, "add", "study.yaml")
    _git(tmp_path, "commit", "-qm", "registered")
    path.write_text(yaml.safe_dump({**_spec(), "added_after_the_runs": reading}, sort_keys=False))
    (tmp_path / RULE_FILE).write_text("rule: interleaved\n")
    _git(tmp_path, "add", "study.yaml", RULE_FILE)
    _git(tmp_path, "commit", "-qm", "cost rule replaced", date=f"{replaced_on}T12:00:00")
    return path


ACCURACY_VALUES = {"sam": [0.660, 0.662, 0.668], "cand": [0.671, 0.671, 0.679], "sgd": [0.640, 0.645, 0.650]}
RECORDED_COST = {"sgd": [0.050, 0.051, 0.049], "sam": [0.090, 0.091, 0.089], "cand": [0.080, 0.083, 0.079]}
ROUNDS = {"sgd": [0.050, 0.052, 0.049, 0.051, 0.050], "cand": [0.055, 0.057, 0.054, 0.056, 0.055]}


def _records(registered: study.Study, finished: str = "2030-01-15T00:00:00+00:00") -> list[dict]:
    out = []
    for name in ("sgd", "sam", "cand"):
        for config in registered.configs(name):
            out.append({"summary": {"config": config.to_dict(), "run_id": config.run_id(),
                                    "final_test_acc": ACCURACY_VALUES[name][config.seed],
                                    "cpu_seconds_per_step": RECORDED_COST[name][config.seed],
                                    "seconds_per_step": RECORDED_COST[name][config.seed], "finished": finished,
                                    "provenance": {"git_commit": "f" * 40, "git_dirty": False,
                                                   "device_name": "x86_64"}}, "metrics": []})
    return out


MEASURED_SCALE = "seed 0 only, 5 epochs timed per configuration, paired by round"


def _cost_rows(registered: study.Study):
    """The replacing rule's rows: the candidate's cost against SGD's in five interleaved rounds."""
    verdict = decide(COST, ROUNDS["cand"], ROUNDS["sgd"], declared=registered.declared)
    return claims.claims_frame([claims.row(f"cand vs sgd ({COST})", COST, verdict, evidence="interleaved",
                                           declared=registered.declared)]).assign(scale=MEASURED_SCALE)


def _interval(a, b, level: float = 0.95) -> tuple[float, float, float]:
    """Independently: the geometric-mean ratio of a over b paired by position and its two-sided t-interval."""
    d = np.log(np.asarray(a, float)) - np.log(np.asarray(b, float))
    half = scipy_stats.t.ppf((1 + level) / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return math.exp(d.mean()), math.exp(d.mean() - half), math.exp(d.mean() + half)


def _numbers(text: str) -> list[str]:
    """The ratios a verdict's text prints ("×1.60 [×1.57, ×1.63], n = 3: ..."), as printed."""
    return re.findall(r"×([0-9.]+)", text)


def _agrees(printed: list[str], expected: tuple[float, ...]) -> bool:
    """Whether each printed number is the expected value rounded to the digits it is printed with."""
    return len(printed) == len(expected) and all(
        abs(float(p) - e) <= 0.5 * 10 ** -len(p.split(".")[1]) + 1e-12 for p, e in zip(printed, expected))


def _status(high: float, low: float, margin: float) -> str:
    """Non-inferiority of a ratio ("lower is better") against ``margin``, independently."""
    return "reproduced" if high < margin else "not reproduced" if low > margin else "inconclusive"


def test_a_cost_rule_replaced_after_the_runs_shows_both_readings_and_both_labels(tmp_path):
    path = _repository(tmp_path, "2030-02-01")
    registered = study.load_study(path)
    records = _records(registered)
    frame = study.study_frame(registered, records)
    decided = study.decide_comparisons(registered, frame, records, resamples=0, cost=_cost_rows(registered))
    rows = decided.set_index("claim")
    cost, accuracy = rows.loc[f"cand vs sgd ({COST})"], rows.loc[f"cand vs sam ({ACCURACY})"]
    margin = SPEC["margins"][COST]["margin"]
    # the rule in force: the interleaved rounds; its provenance: added after the runs, on the day git says
    assert cost["status"] == _status(*_interval(ROUNDS["cand"], ROUNDS["sgd"])[2:0:-1], margin) == "reproduced"
    assert (cost["provenance"], cost["provenance_date"]) == (claims.ADDED, "2030-02-01")
    assert cost["replaces"] == REGISTERED_WORDS and cost["provenance_reason"] == REPLACED["cost"]["reason"]
    # beside it, the registered rule's reading: the records' own CPU time per step, paired by seed
    expected = _interval(RECORDED_COST["cand"], RECORDED_COST["sgd"])
    assert cost["registered_status"] == _status(expected[2], expected[1], margin) == "not reproduced"
    assert _agrees(_numbers(cost["registered_text"]), expected) and "n = 3" in cost["registered_text"]
    # a rule the registration holds is labelled registered, and its registered reading is its own
    assert (accuracy["provenance"], accuracy["registered_status"], accuracy["registered_text"]) == (
        claims.REGISTERED, accuracy["status"], "")
    # both labels wherever the status appears: the audit, the reader's table, the claims table's cell
    audit = study.audit_frame(registered, decided).set_index("comparison")
    assert audit.loc[f"cand vs sgd ({COST})", "rule"] == (
        f"{claims.ADDED} (2030-02-01); registered rule: {cost['registered_text']}")
    assert audit.loc[f"cand vs sam ({ACCURACY})", "rule"] == claims.REGISTERED
    assert list(claims.display_table(decided)["rule"]) == list(audit["rule"])
    needed = {"budget": ((COST, "cand", "sgd"),), "close": ((ACCURACY, "cand", "sam"),)}
    rules = study.claim_rules(registered, decided, claims=needed)
    assert rules == {"budget": f"rule {claims.ADDED} on 2030-02-01; by the registered rule ({REGISTERED_WORDS}): "
                               "not reproduced", "close": ""}
    cell = claims_table.with_rule(study.claim_statuses(registered, decided, claims=needed)["budget"], rules["budget"])
    assert claims_table.status_of(cell) == "reproduced" and cell.endswith("not reproduced]")
    # the study's answer in both readings: yes by the rule in force, no by the registration's own
    assert study.answer(registered, decided, reading="family-wise").startswith("Yes: cand")
    assert study.answer(registered, decided, reading="registered").startswith("No: ")
    # and the scale of what decided each: the measurement's for cost, the run records' for accuracy
    assert cost["scale"] == MEASURED_SCALE
    assert accuracy["scale"].endswith(f"{SPEC['regime']['epochs']} epochs, 3 seeds, CPU (x86_64), paired by seed")
    assert study.claim_scales(registered, decided, claims=needed) == {"budget": MEASURED_SCALE,
                                                                       "close": accuracy["scale"]}


def test_without_the_replacement_the_same_rows_are_registered_and_decide_alone(tmp_path):
    """Where the study file names no replacement, a given cost rule is the registration's: labelled registered,
    nothing beside it; and a rule said to be added after the runs but dated before them is refused."""
    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / "study.yaml"
    path.write_text(yaml.safe_dump(_spec(), sort_keys=False))
    registered = study.load_study(path)
    records = _records(registered)
    decided = study.decide_comparisons(registered, study.study_frame(registered, records), records, resamples=0,
                                       cost=_cost_rows(registered))
    assert set(decided["provenance"]) == {claims.REGISTERED} and set(decided["registered_text"]) == {""}
    assert list(decided["registered_status"]) == list(decided["status"])
    (tmp_path / "b").mkdir()
    registered = study.load_study(_repository(tmp_path / "b", "2030-01-10"))
    records = _records(registered)  # finished 2030-01-15, after the rule's commit
    with pytest.raises(ValueError, match="before the first of the runs finished"):
        study.decide_comparisons(registered, study.study_frame(registered, records), records, resamples=0,
                                 cost=_cost_rows(registered))


def test_a_comparison_added_after_the_runs_carries_the_sections_declared_date_which_git_confirms(tmp_path):
    path = _repository(tmp_path, "2030-02-01")
    spec = yaml.safe_load(path.read_text())
    spec["added_after_the_runs"]["comparisons"] = [{"claim": ACCURACY, "a": "cand", "b": "sgd"}]
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    _git(tmp_path, "commit", "-qam", "a comparison", date="2030-03-01T12:00:00")
    registered = study.load_study(path)
    added = registered.provenance(registered.added[0])
    assert (added.kind, added.date, added.reason) == (claims.ADDED, "2030-02-01", "n")
    assert registered.provenance(registered.comparisons[0]) == claims.Provenance()
    assert registered.provenance(registered.comparisons[1], replaced=False).registered  # its registered rule
    assert registered.provenance(registered.comparisons[1]).date == "2030-02-01"
    # git's days agree: the section's first commit (not the later one that added a comparison), the rule file's
    assert study.dates_against_git(registered) == {"added_after_the_runs": ("2030-02-01", "2030-02-01"),
                                                   "replaced.cost": ("2030-02-01", "2030-02-01")}
    # a copy outside git reads the same dates from the file, where git can say nothing
    (tmp_path / "copy").mkdir()
    for name in ("study.yaml", RULE_FILE):
        (tmp_path / "copy" / name).write_text((tmp_path / name).read_text())
    copied = study.load_study(tmp_path / "copy" / "study.yaml")
    assert copied.provenance(copied.added[0]) == added
    assert study.dates_against_git(copied) == {"added_after_the_runs": ("2030-02-01", "unknown"),
                                               "replaced.cost": ("2030-02-01", "unknown")}


def test_a_declared_date_that_git_contradicts_is_reported_and_a_missing_or_bad_one_refused(tmp_path):
    (tmp_path / "a").mkdir()
    registered = study.load_study(_repository(tmp_path / "a", "2030-02-01", declared="2030-01-20"))
    assert study.dates_against_git(registered) == {"added_after_the_runs": ("2030-01-20", "2030-02-01"),
                                                   "replaced.cost": ("2030-01-20", "2030-02-01")}
    reading = {"note": "n", "replaced": {"cost": {**REPLACED["cost"], "date": "2030-02-01"}}}
    (tmp_path / "b").mkdir()
    path = tmp_path / "b" / "study.yaml"
    path.write_text(yaml.safe_dump({**_spec(), "added_after_the_runs": reading}))
    with pytest.raises(ValueError, match=r"^added_after_the_runs\.date: give the day"):
        study.load_study(path)
    path.write_text(yaml.safe_dump({**_spec(), "added_after_the_runs": {**reading, "date": "2030-2-1"}}))
    with pytest.raises(ValueError, match=r"^added_after_the_runs\.date must be a day YYYY-MM-DD, got '2030-2-1'"):
        study.load_study(path)
    replaced = {"cost": {**REPLACED["cost"], "date": "soon"}}
    path.write_text(yaml.safe_dump({**_spec(), "added_after_the_runs": {**reading, "date": "2030-02-01",
                                                                        "replaced": replaced}}))
    with pytest.raises(ValueError, match=r"^added_after_the_runs\.replaced\.cost\.date must be a day"):
        study.load_study(path)


def test_the_cpu_studys_declared_dates_are_the_days_git_committed_them():
    dates = study.dates_against_git(study.load_study(CPU_STUDY))
    assert set(dates) == {"added_after_the_runs", "replaced.cost"}
    assert all(declared == from_git for declared, from_git in dates.values()), dates


def test_the_cpu_studys_registered_cost_reading_equals_an_independent_computation():
    """The CPU study's cost comparisons, decided by the interleaved measurement registered after the runs, carry
    the reading of the registered rule: each record's cpu_seconds_per_step, paired by seed, read here from the JSON
    files, geometric-mean ratio and 95% t-interval, against the claim's margin of book/margins.yaml."""
    from sparsam.book import layout
    from sparsam.book.study import model as study_model
    from sparsam.experiment.results import load_all

    registered = study.load_study(CPU_STUDY)
    records = load_all(REPO / "results" / "study" / "runs")
    registration = study_model.load_cost_registration(REPO / layout.COST_REGISTRATION, study=registered)
    decided = study.decide_comparisons(registered, study.study_frame(registered, records), records, resamples=0,
                                       cost=study_cost.cost_rows(registration, study_cost.read(registration.record)))
    rows = decided.set_index("claim")
    margins = yaml.safe_load((REPO / "book" / "margins.yaml").read_text())["claims"]
    per_seed = _committed_cpu_seconds()
    added = subprocess.run(["git", "log", "--diff-filter=A", "--format=%cs", "--", str(layout.COST_REGISTRATION)],
                           cwd=REPO, capture_output=True, text=True).stdout.split()
    for c in registered.comparisons:
        row = rows.loc[study.comparison_label(c)]
        if margins[c.claim]["unit"] != "ratio":
            assert row["provenance"] == claims.REGISTERED and row["registered_text"] == ""
            continue
        seeds = sorted(set(per_seed[c.a]) & set(per_seed[c.b]))
        expected = _interval([per_seed[c.a][s] for s in seeds], [per_seed[c.b][s] for s in seeds])
        rule = margins[c.claim]
        want = (_status(expected[2], expected[1], rule["margin"]) if rule["test"] == "non-inferiority" else
                "reproduced" if expected[2] < rule["margin"] else
                "not reproduced" if expected[1] > rule["margin"] else "inconclusive")
        assert row["registered_status"] == want, c
        assert _agrees(_numbers(row["registered_text"]), expected), (c, row["registered_text"], expected)
        assert f"n = {len(seeds)}" in row["registered_text"]
        assert row["provenance"] == claims.ADDED and row["n"] == registration.rounds  # decided by the rounds
        if added:
            assert row["provenance_date"] == added[-1]
    # the study's only decided claim by the rule in force is not decided by the registered one
    aware = rows.loc[f"cost-aware-0.9 vs sam ({'cost_time_cost_aware_vs_sam'})"]
    assert aware["status"] == "reproduced" and aware["registered_status"] == "inconclusive"


def _committed_cpu_seconds() -> dict[str, dict[int, float]]:
    """Per configuration of the CPU study and seed, the record's cpu_seconds_per_step, read from the JSON files:
    a record belongs to a configuration when it has each of its fields, and the training configuration's default
    of each field the configuration does not set but another does (a record made before a field existed has it at
    its default)."""
    import dataclasses

    from sparsam.experiment.config import TrainConfig

    named = {k for fields in SPEC["configurations"].values() for k in fields if k != "seeds"}
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in named}
    out: dict[str, dict[int, float]] = {}
    for file in sorted((REPO / "results" / "study" / "runs").glob("*.json")):
        summary = json.loads(file.read_text())["summary"]
        config = summary["config"]
        for name, fields in SPEC["configurations"].items():
            wanted = {**defaults, **{k: v for k, v in fields.items() if k != "seeds"}}
            if all(config.get(k, defaults.get(k)) == v for k, v in wanted.items()):
                seeds = out.setdefault(name, {})
                assert config["seed"] not in seeds, (name, config["seed"])
                seeds[config["seed"]] = summary["cpu_seconds_per_step"]
    return out


def test_the_scale_of_a_cost_measurement_is_read_from_its_record():
    registered = study.load_study(CPU_STUDY)
    rounds, warmup = 4, 2
    measured = [{"round": r, "configuration": name, "cpu_seconds_per_step": 0.05, "epoch": r + warmup,
                 "order": 2 * r + i} for r in range(rounds) for i, name in enumerate(("sgd", "sam"))]
    check = {"args": {"seed": 1}, "machine": {"threads": 1}, "measured": measured,
             "provenance": {"device": "cpu", "device_name": "x86_64"}}
    regime = SPEC["regime"]
    assert study_cost.measurement_scale(check, registered) == (
        f"CIFAR-10 ({regime['n_train']:,} train / all test images), {regime['model']} (width {regime['width']}), "
        f"seed 1 only, {rounds} epochs timed per configuration (one per round, 2 configurations) after {warmup} "
        "untimed warm-up epochs, paired by round, CPU (x86_64), 1 thread")
    committed = study_cost.read(REPO / "results" / "study" / "cost_interleaved.json")
    scale = study_cost.measurement_scale(committed, registered)
    assert f"seed {committed['args']['seed']} only, {committed['args']['rounds']} epochs timed" in scale
    assert "after 1 untimed warm-up epoch," in scale and "paired by round" in scale


def test_a_decided_claim_is_named_with_the_scale_that_decided_it_and_its_rule():
    table = claims_table.claims_table(
        [{"cost_aware": "not yet registered"} | {c: "not yet registered" for c in _keys()},
         {c: "inconclusive" for c in _keys()} | {"cost_aware": claims_table.with_rule("reproduced", "rule words")}],
        {c: "inconclusive" for c in _keys()})
    name = table.loc[table["CPU study"].str.startswith("reproduced"), "claim"].item()
    sentence = claims_table.decided_sentence(table, "CPU study", "the runs", {name: "seed 0 only, paired by round"})
    assert f"({name}: reproduced, decided on seed 0 only, paired by round [rule words]);" in sentence
    assert sentence.startswith("The CPU study decides 1 of") and sentence.endswith(" Its runs: the runs.")
    assert claims_table.status_of("inconclusive (premise not shown)") == "inconclusive (premise not shown)"


def _keys() -> list[str]:
    from sparsam.book import registry

    return [c.key for c in registry.table_claims()]


def _prose(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return " ".join(" ".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown").split())
    return " ".join(path.read_text().split())


def test_no_page_calls_the_cost_rule_registered_before_the_runs():
    """Issue 32 item 1: the interleaved measurement was registered after the runs. The pages said it was
    "committed before it ran" and "the registered interleaved measurement", and called its statuses registered;
    they must say it came after the runs and read its provenance and the registered reading from the records."""
    chapter, page = _prose(REPO / "notebooks" / "08_cpu_study.ipynb"), _prose(REPO / "book" / "reproduction.md")
    intro = _prose(REPO / "book" / "intro.md")
    for text in (chapter, page, intro):
        assert "registered interleaved measurement" not in text
        assert "from the pre-registered comparisons below" not in text
    assert "{glue:text}`study_cost_registered` before it ran, but after the study's runs" in chapter
    assert "{glue:text}`study_cost_provenance`" in chapter and "{glue:text}`study_cost_registered_reading`" in chapter
    assert "study_cost_added:s" in page and "study_family_provenance:s" in page and "study_status_flat_raw:s" in page
    code = " ".join("".join(c["source"]) for c in json.loads((REPO / "notebooks" / "08_cpu_study.ipynb").read_text())[
        "cells"] if c["cell_type"] == "code")
    assert "as pre-registered" not in code  # the old label of the answer by the rules in force


def test_the_family_text_counts_what_the_registration_holds():
    registered = study.load_study(CPU_STUDY)
    rows = [{"claim": study.comparison_label(c), "status": "inconclusive", "text": ""} for c in registered.family]
    replaced = [registered.replacement(c) is not None for c in registered.family]
    decided = claims.with_provenance(
        pd.DataFrame(rows), [registered.provenance(c) if r or not registered.registered(c) else claims.Provenance()
                             for c, r in zip(registered.family, replaced)],
        [{"status": "inconclusive", "text": "t"} if r else None for r in replaced], [""] * len(rows))
    text = study.family_text(registered, decided)
    assert text.startswith(f"of its {len(registered.family)} comparisons, {len(registered.comparisons)} were "
                           f"registered and {len(registered.added)} added after the runs "
                           "(accuracy_ssam_keeps_half_gain)")
    assert f"; {sum(replaced)} registered comparisons are decided by a rule added after the runs (" in text
    assert registered.replaced["cost"].registered in text


def test_the_flatness_rules_are_dated_by_the_commits_that_added_them():
    """The measure in normalised weights and the premise rule came after the CPU study's flatness records; their
    provenance is dated by git (the oldest commit adding each marker), the claim's rows replacing the raw rule."""
    def oldest(*args: str) -> str | None:
        done = subprocess.run(["git", "log", "--format=%cs", *args], cwd=REPO, capture_output=True, text=True)
        dates = done.stdout.split()
        return dates[-1] if done.returncode == 0 and dates else None

    measure, premise = study.flatness_provenance(root=REPO), study.flatness_provenance(premise=True, root=REPO)
    records = oldest("--", "results/study/flatness")
    if records is None:
        pytest.skip("no git history to date the rules by")
    assert measure.date == oldest("-S", "normalizing_scales", "--", "sparsam/book/landscape.py")
    assert premise.date == oldest("-S", "flatness_sam_vs_sgd:", "--", "book/margins.yaml")
    assert records < measure.date <= premise.date and not measure.registered and not premise.registered
    assert measure.replaces and not premise.replaces


def test_the_flatness_rules_raw_reading_is_named_as_declared_not_as_registered():
    """Issue 32: the flatness rules on the raw measure were declared in book/margins.yaml before the runs, and no
    study registered them; the reading beside the scale-free rows names them so, never as a registered rule."""
    measure = study.flatness_provenance(root=REPO)
    assert measure.earlier == study.deciding.FLATNESS_EARLIER_RULE and "no study registered it" in measure.earlier
    assert "it replaces the rule declared before the runs" in measure.text()
    raw = {"status": "not reproduced", "text": "×1.34 [×1.30, ×1.38], n = 5: not reproduced"}
    frame = pd.DataFrame([{"claim": "SSAM-F vs SAM, top eigenvalue", "status": "inconclusive"},
                          {"claim": "SAM vs SGD, top eigenvalue", "status": "inconclusive"}])
    rows = claims.with_provenance(frame, [measure, study.flatness_provenance(premise=True, root=REPO)], [raw, None],
                                  ["s", "s"])
    assert list(rows["earlier_rule"]) == [measure.earlier, ""]
    texts = [claims.rule_text(r) for r in rows.to_dict("records")]
    assert texts[0] == f"{claims.ADDED} ({measure.date}); {measure.earlier}: {raw['text']}"
    assert "registered rule" not in texts[0] and texts[1] == f"{claims.ADDED} ({rows['provenance_date'][1]})"
    # a study's replaced rule is still its registered one
    assert claims.Provenance(claims.ADDED, "2030-02-01", "r", "the records' time").earlier == claims.REGISTERED_RULE
