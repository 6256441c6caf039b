"""The book's scales (sparsam.book.scales): which one leads, what it reads, and the claims table by scale.

The scale tests build a book in a temporary folder (its markers, the profiles and margins of this book) with a
GPU study file in each of its states: absent, the candidate regimes without configurations (not a
registration), a registration without records, and a registration with one constructed record; and the same for
the ImageNet study, whose constructed records (four configurations, four seeds) are decided as one family."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from sparsam.book import claims, claims_table, deviations, layout, registry, scale_reports, scales, stats
from sparsam.book import study as studies
from sparsam.book.study import cost as study_cost, model as study_model
from sparsam.book.layout import (GPU_STUDY_FILE, GPU_STUDY_STORE, IMAGENET_STUDY_FILE, IMAGENET_STUDY_STORE,
                                   PROFILES_FILE, STUDY_FILE, STUDY_STORE)
from sparsam.book.layout import MARGINS
from sparsam.book.stats import combine, mean_interval
from sparsam.experiment.config import TrainConfig
from sparsam.experiment.record_schema import read_record

CPU_RECORD = next((REPO / STUDY_STORE).glob("sgd-*-s0-*.json"))  # a committed record of the CPU study
# What the GPU study's file holds before its registration: its candidate regimes and its pilot, no configurations.
CANDIDATES = {"question": "Does sparse SAM keep SAM's accuracy on the whole of CIFAR-10?",
              "common": {"model": "resnet18", "dataset": "cifar10", "n_train": None, "device": "cuda"},
              "candidates": {"A": {"width": 64, "epochs": 30}, "B": {"width": 32, "epochs": 120}},
              "pilot": {"configurations": ["sgd", "sam"], "seeds": [100, 101, 102]}}


def book(root: Path, gpu: dict | None = None, cpu_records: int = 1) -> Path:
    """A book in ``root``: this book's markers, profiles and margins, the CPU study's registration with its first
    ``cpu_records`` committed records (seed 0 of SGD first), and ``gpu`` as the GPU study's file (None: none)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    for name in (PROFILES_FILE, MARGINS, STUDY_FILE):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    (root / STUDY_STORE).mkdir(parents=True)
    others = sorted(p for p in (REPO / STUDY_STORE).glob("*.json") if p != CPU_RECORD)
    for path in [CPU_RECORD, *others][:cpu_records]:
        shutil.copy(path, root / STUDY_STORE / path.name)
    if gpu is not None:
        (root / GPU_STUDY_FILE).parent.mkdir(parents=True)
        (root / GPU_STUDY_FILE).write_text(yaml.safe_dump(gpu, sort_keys=False))
    return root


def gpu_registration() -> dict:
    """A registration in the CPU study's format for the GPU: its regime on CUDA, read as a family (Holm)."""
    spec = yaml.safe_load((REPO / STUDY_FILE).read_text())
    spec["regime"] = {**spec["regime"], "device": "cuda"}
    spec["correction"] = "holm"
    spec.pop("added_after_the_runs")
    return spec


def gpu_record(root: Path, wall: float) -> dict:
    """A record of the GPU registration's SGD run of seed 0, written into the GPU study's store of ``root``: the
    CPU study's committed record with the GPU regime's configuration, its run id and a wall time per step of
    ``wall`` seconds (every metric line and the summary)."""
    record = read_record(CPU_RECORD, "run")
    config = TrainConfig.from_dict({**record["summary"]["config"], "device": "cuda"})
    record["summary"].update(config=config.to_dict(), run_id=config.run_id(), seconds_per_step=wall)
    for line in record["metrics"]:
        line["seconds_per_step"] = wall
    (root / GPU_STUDY_STORE).mkdir(parents=True, exist_ok=True)
    (root / GPU_STUDY_STORE / f"{config.run_id()}.json").write_text(json.dumps(record))
    return record


def test_the_scales_are_the_gpu_study_then_the_cpu_study_with_paths_relative_to_the_book():
    assert [s.name for s in scales.SCALES] == ["GPU study", "CPU study"]
    assert [s.study_file for s in scales.SCALES] == [GPU_STUDY_FILE, STUDY_FILE]
    assert [s.store for s in scales.SCALES] == [GPU_STUDY_STORE, STUDY_STORE]
    assert not any(p.is_absolute() for s in scales.SCALES for p in (s.study_file, s.store))
    assert [s.time for s in scales.SCALES] == ["seconds_per_step", "cpu_seconds_per_step"]
    assert scales.SCALES[1].cost_registration == layout.COST_REGISTRATION
    assert scales.SCALES[0].cost_registration == layout.GPU_COST_REGISTRATION  # not yet written: cost undecided
    assert scale_reports.has_cost_measurement(scales.SCALES[1], REPO)
    assert scale_reports.has_cost_measurement(scales.SCALES[0], REPO) == (REPO / layout.GPU_COST_REGISTRATION).is_file()


def test_a_gpu_study_file_without_configurations_is_not_a_scale_with_records(tmp_path):
    root = book(tmp_path, gpu=CANDIDATES)
    gpu_record(root, 0.01)  # even a record in its store does not make the candidates a registration
    gpu, cpu = scale_reports.survey(root)
    assert gpu.exists and not gpu.registered and not gpu.has_records and gpu.records == 0
    assert gpu.cell() == "not yet registered" and "has no configurations" in gpu.text()
    assert cpu.registered and cpu.has_records and cpu.records == 1
    assert cpu.planned == len(studies.load_study(REPO / STUDY_FILE).configs())
    assert scale_reports.leading((gpu, cpu)) is cpu
    frame = scale_reports.survey_frame((gpu, cpu))
    assert list(frame["scale"]) == ["GPU study", "CPU study"] and list(frame["leads"]) == ["", "yes"]
    assert list(frame["study file"]) == [GPU_STUDY_FILE.as_posix(), STUDY_FILE.as_posix()]
    statuses = scale_reports.scale_statuses(gpu)
    assert set(statuses) == {c.key for c in registry.table_claims()} and set(statuses.values()) == {"not yet registered"}


def test_without_a_gpu_file_or_without_records_the_cpu_study_leads_and_without_any_none_does(tmp_path):
    root = book(tmp_path / "a")
    gpu, cpu = scale_reports.survey(root)
    assert not gpu.exists and "there is no study file" in gpu.text() and scale_reports.leading((gpu, cpu)) is cpu
    root = book(tmp_path / "b", gpu=gpu_registration())
    gpu, cpu = scale_reports.survey(root)
    assert gpu.registered and gpu.records == 0 and gpu.cell() == "registered, no records yet"
    assert scale_reports.leading((gpu, cpu)) is cpu
    root = book(tmp_path / "c", cpu_records=0)
    assert scale_reports.leading(scale_reports.survey(root)) is None


def test_a_registered_gpu_study_with_a_record_leads_and_is_read_with_its_gpu_time(tmp_path):
    root = book(tmp_path, gpu=gpu_registration(), cpu_records=2)
    record = gpu_record(root, 0.0125)
    gpu, cpu = scale_reports.survey(root)
    assert gpu.has_records and gpu.records == 1 and cpu.records == 2
    assert scale_reports.leading((gpu, cpu)) is gpu and gpu.in_progress and not gpu.complete
    assert gpu.cell() == (f"in progress: 1 of the {gpu.planned} planned runs so far (the others are still to train); "
                          "no verdict before all are in")
    registered, records, frame = scale_reports.load(gpu.scale, root)
    assert registered.correction == "holm"
    assert [r["summary"]["run_id"] for r in records] == [record["summary"]["run_id"]]
    assert list(frame["configuration"]) == ["sgd"] and list(frame["device"]) == ["cuda"]
    points = scale_reports.pareto_points(gpu.scale, registered, frame, root)
    assert list(points["label"]) == ["sgd"] and points["cost"].iloc[0] == 1.0  # its own wall time is the unit
    assert points["mean"].iloc[0] == pytest.approx(100 * record["summary"]["final_test_acc"])
    assert scale_reports.cost_note(gpu.scale, points, frame).startswith("the records' own seconds per step")
    decided = scale_reports.decide(gpu.scale, registered, frame, records, resamples=0, root=root)
    assert list(decided["claim"]) == [studies.comparison_label(c) for c in registered.family]
    assert set(decided["status"]) == {"inconclusive"} and (decided["n"] == 0).all()  # nothing is paired yet
    assert all(e.startswith("GPU study") for e in decided["evidence"])
    statuses = scale_reports.scale_statuses(gpu, registered, decided)  # one of its runs: where it stands, no verdict
    assert statuses["acc"] == statuses["cost_aware"] == gpu.cell()
    assert statuses["imagenet"] == statuses["convergence"] == statuses["flat"] == studies.NOT_IN_STUDY
    assert scale_reports.scale_statuses(gpu) == {c.key: gpu.cell() for c in registry.table_claims()}


def test_a_study_without_a_side_by_side_measurement_leaves_its_cost_undecided_whatever_its_records_time(tmp_path):
    """The GPU study's records' wall time per step (seconds_per_step) would decide its cost comparisons; they stay
    descriptive (the Pareto figure's cost), and every cost comparison is inconclusive with no seeds, saying why."""
    root = book(tmp_path, gpu=gpu_registration())
    registered = studies.load_study(root / GPU_STUDY_FILE)
    rows = []
    for name, wall, cpu in (("sgd", [0.010, 0.011, 0.0105], [5.0, 5.0, 5.0]), ("ssam-f-0.9", [0.011, 0.012, 0.0115],
                                                                               [1.0, 1.0, 1.0])):
        for seed, w, c in zip(range(3), wall, cpu):
            config = next(x for x in registered.configs(name) if x.seed == seed)
            rows.append({"summary": {"config": config.to_dict(), "run_id": config.run_id(), "final_test_acc": 0.6,
                                     "seconds_per_step": w, "cpu_seconds_per_step": c,
                                     "provenance": {"git_commit": "f" * 40, "git_dirty": False}}, "metrics": []})
    frame = studies.study_frame(registered, rows)
    by_records = studies.decide_comparisons(registered, frame, rows, resamples=0, time="seconds_per_step")
    label = "ssam-f-0.9 vs sgd (cost_time_vs_sgd_at_most_1_25)"
    assert by_records.set_index("claim").loc[label, "status"] == "reproduced"  # what the timings alone would say
    decided = scale_reports.decide(scales.SCALES[0], registered, frame, rows, resamples=0, root=root).set_index("claim")
    cost = decided[decided["rule"].str.startswith("cost_")]
    assert len(cost) == sum(1 for c in registered.family if c.claim.startswith("cost_")) > 0
    assert set(cost["status"]) == {"inconclusive"} and (cost["n"] == 0).all()
    assert all(study_cost.NOT_SIDE_BY_SIDE in e and e.startswith("GPU study") for e in cost["evidence"])
    (root / layout.GPU_COST_REGISTRATION).write_text(yaml.safe_dump({"measurement": {
        "record": "results/gpu_study/cost_interleaved.json"}}))  # registered, its measurement not yet made
    assert not scale_reports.has_cost_measurement(scales.SCALES[0], root)
    again = scale_reports.decide(scales.SCALES[0], registered, frame, rows, resamples=0, root=root).set_index("claim")
    assert set(again.loc[cost.index, "status"]) == {"inconclusive"}
    points = scale_reports.pareto_points(scales.SCALES[0], registered, frame, root).set_index("label")
    assert points.loc["ssam-f-0.9", "cost"] == pytest.approx(np.mean([0.011, 0.012, 0.0115]) / np.mean(
        [0.010, 0.011, 0.0105]), rel=0.02)  # the records' wall time, as the figure's description


def test_the_cpu_study_reads_its_cost_from_the_registered_interleaved_measurement():
    cpu = scales.SCALES[1]
    registered, records, frame = scale_reports.load(cpu, REPO)
    points = scale_reports.pareto_points(cpu, registered, frame, REPO)
    registration = study_model.load_cost_registration(REPO / layout.COST_REGISTRATION, study=registered)
    ratios = study_cost.ratios(study_cost.read(registration.record)["measured"]).set_index("configuration")
    assert sorted(points["label"]) == sorted(registration.configurations)
    assert list(points["cost"]) == sorted(points["cost"])  # cheapest first
    for _, row in points.iterrows():
        assert row["cost"] == pytest.approx(ratios.loc[row["label"], "cost"])
        assert row["cost_low"] == pytest.approx(ratios.loc[row["label"], "cost_low"])
        accuracy = frame.loc[frame["configuration"] == row["label"], "final_test_acc"]
        assert row["mean"] == pytest.approx(accuracy.mean()) and row["n"] == len(accuracy)
        assert row["low"] < row["mean"] < row["high"]
    assert points.loc[points["label"] == "sgd", "on_front"].item()  # the cheapest is on the front
    assert scale_reports.cost_budget(registered) == stats.margins()[studies.COST_RULE]["margin"]
    note = scale_reports.cost_note(cpu, points, frame)
    assert f"({registration.rounds} rounds" in note and f"timed {len(registration.configurations)} of the " \
        f"{frame['configuration'].nunique()} configurations" in note
    untimed = set(frame["configuration"]) - set(points["label"])
    assert untimed and all(name in note.split("not timed there: ")[1] for name in untimed)


def test_the_sparsity_figure_takes_the_configurations_that_set_only_optimizer_and_sparsity():
    registered = studies.load_study(REPO / STUDY_FILE)
    names = scale_reports.sparsity_configurations(registered)
    assert names == ["sgd", "sam", "ssam-f-0.5", "ssam-f-0.9", "ssam-d-0.5"]
    left_out = [n for n in registered.configurations if n not in names]
    assert all(set(registered.configurations[n][0]) - {"optimizer", "sparsity"} for n in left_out)


def saved(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """Saved rows read as the profile's family (as load_verdicts reads them), each with this family-wise status."""
    return pd.DataFrame(rows, columns=["chapter", "rule", "claim", "family_status"])


def test_profile_statuses_combine_each_chapters_rows_by_rule():
    frame = saved([
        ("03_cifar_accuracy", "accuracy_ssam_vs_sam", "SSAM-F (s = 0.5) vs SAM", "reproduced"),
        ("03_cifar_accuracy", "accuracy_ssam_vs_sam", "SSAM-D (s = 0.5) vs SAM", "inconclusive"),
        ("03_cifar_accuracy", "accuracy_sam_vs_sgd", "SAM vs SGD", "reproduced"),
        ("03_cifar_accuracy", "accuracy_ssam_vs_sam", "radius control: SSAM-F (‖ε‖ = ρ) vs SAM", "reproduced"),
        ("03_cifar_accuracy", "accuracy_pattern_vs_sam", "TPAMI: SSAM-F layer (s = 0.5) vs SAM", "reproduced"),
        ("03_cifar_accuracy", "accuracy_pattern_vs_sam", "TPAMI: SSAM-F 2:4 (s = 0.5) vs SAM", "not reproduced"),
        ("04_efficiency", "cost_flops_ssam_vs_sam", "FLOPs: layer mask (papers' rule) vs SAM", "reproduced"),
        ("04_efficiency", "cost_time_cost_aware_vs_sam", "book's own rule: time", "reproduced"),
        # today's kernels, which the papers never claimed: a row of its own, not folded into the FLOPs claim
        ("04_efficiency", "cost_flops_realised_vs_sam", "FLOPs realised: unstructured mask vs SAM", "not reproduced"),
        ("04_efficiency", "cost_time_ssam_vs_sam", "time: explicit SSAM (official form) vs SAM", "inconclusive"),
        ("05_imagenet", "accuracy_ssam_vs_sam", "ImageNet proxy: SSAM-F (s = 0.5) vs SAM", "inconclusive"),
        ("05_imagenet", "accuracy_sam_vs_sgd", "ImageNet proxy: SAM vs SGD", "not reproduced"),  # no claim's row
    ])
    statuses = claims_table.profile_statuses(frame)
    assert statuses["acc"] == combine(["reproduced", "inconclusive"]) == "inconclusive"
    assert statuses["radius"] == "reproduced" and statuses["sam_sgd"] == "reproduced"
    assert statuses["patterns"] == "not reproduced" and statuses["forms"] == "no row of chapter 3"
    assert statuses["cost"] == statuses["cost_aware"] == "reproduced" and statuses["imagenet"] == "inconclusive"
    assert statuses["cost_realised"] == "not reproduced"
    assert statuses["flat"] == "chapter 6 not executed in this profile"
    assert statuses["convergence"].startswith("decided in chapter 1")
    with pytest.raises(ValueError, match="no claim of the table takes"):
        claims_table.profile_statuses(saved([("04_efficiency", "accuracy_sam_vs_sgd", "x", "reproduced")]))


def test_every_row_a_chapter_declares_belongs_to_a_claim_or_is_a_declared_premise():
    """The rows the registry declares for chapters 3 and 5 (their labels under the quick profile) each map to one
    claim of the table, the radius-control row to its own (by its label's prefix), or are the chapter's premise."""
    from sparsam.book import profiles

    for name in ("03_cifar_accuracy", "05_imagenet"):
        p = profiles.parameters(name, "quick", {})
        declared = registry.chapter(name)
        for entry in declared.compare:
            label = registry.resolve(entry["label"], p, {"pattern": "layer"})
            key = registry.claim_of_row(name, entry["rule"], label)
            assert key in {c.key for c in registry.table_claims()} or entry["rule"] in declared.premises, label
    assert registry.claim_of_row("03_cifar_accuracy", "accuracy_ssam_vs_sam",
                                 "radius control: SSAM-F (s = 0.5, ‖ε‖ = ρ) vs SAM") == "radius"
    assert registry.claim_of_row("03_cifar_accuracy", "accuracy_ssam_vs_sam", "SSAM-F (s = 0.5) vs SAM") == "acc"
    assert set(registry.chapters()) == {c.chapter for c in registry.claims() if c.rows}


def test_the_claims_table_has_the_gpu_study_then_the_cpu_study_then_the_profile():
    gpu = {c.key: "not yet registered" for c in registry.table_claims()}
    cpu = {c.key: "inconclusive" for c in registry.table_claims()} | {"cost_aware": "reproduced", "sam_sgd": "not reproduced"}
    quick = {c.key: "inconclusive" for c in registry.table_claims()} | {"cost": "reproduced"}
    table = claims_table.claims_table([gpu, cpu], quick, profile="quick")
    assert list(table.columns) == ["claim", "GPU study", "CPU study", "quick profile"]
    assert list(table["claim"]) == [c.name for c in registry.table_claims()]
    row = table.set_index("claim").loc[next(c.name for c in registry.table_claims() if c.key == "cost_aware")]
    assert list(row) == ["not yet registered", "reproduced", "inconclusive"]
    assert list(claims_table.claims_table([gpu, cpu], quick, profile="cpu-study").columns)[-1] == "cpu-study profile"
    with pytest.raises(ValueError, match="one column per scale"):
        claims_table.claims_table([cpu], quick)
    with pytest.raises(ValueError, match="lacks the claims"):
        claims_table.claims_table([gpu, {"acc": "reproduced"}], quick)
    sentence = claims_table.decided_sentence(table, "CPU study", "2,500 images")
    assert sentence.startswith(f"The CPU study decides 2 of the {len(registry.table_claims())} claims (")
    assert sentence.endswith(" Its runs: 2,500 images.")
    assert "SAM improves on SGD (CIFAR): not reproduced" in sentence and "cost-aware rule" in sentence
    assert claims_table.decided_sentence(table, "GPU study") == (
        f"The GPU study decides none of the {len(registry.table_claims())} claims (not yet registered).")
    with pytest.raises(ValueError, match="status column"):
        claims_table.decided_sentence(table, "claim")


def test_the_reproduction_pages_claims_table_has_the_same_column_order():
    page = (REPO / "book/reproduction.md").read_text()
    header = next(line for line in page.splitlines() if line.startswith("| Claim of the papers"))
    cells = [cell.strip() for cell in header.strip("|").split("|")]
    positions = [next(i for i, cell in enumerate(cells) if cell.startswith(name))
                 for name in ("GPU study", "CPU study", "label-noise CPU study", "Quick profile")]
    assert positions == sorted(positions) and positions[0] == 1  # the first status column is the GPU study's
    lines = page.splitlines()
    rows = list(itertools.takewhile(lambda line: line.startswith("|"), lines[lines.index(header) + 2:]))
    assert len(rows) == len(registry.table_claims())
    for row, claim in zip(rows, registry.table_claims()):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert f"07_claims.ipynb::status_gpu_{claim.key}:s" in cells[positions[0]]
        assert f"07_claims.ipynb::status_cpu_{claim.key}:s" in cells[positions[1]]
        assert cells[positions[2]] == f"{{glue:text}}`../notebooks/07_claims.ipynb::status_noise_{claim.key}:s`"
        if claim.chapter in registry.chapters():  # the profile's cell is chapter 7's, in the columns' one reading
            assert cells[positions[3]].startswith(f"{{glue:text}}`../notebooks/07_claims.ipynb::status_profile_"
                                                  f"{claim.key}:s`")


def test_every_status_column_of_the_reproduction_pages_claims_table_names_its_reading():
    """The page's claims table shows chapter 7's columns (issue 32, item 8): each status column's header names
    the one reading of its cells, in the package's words (claims_table.READING, stats.READING_WORDS)."""
    page = (REPO / "book/reproduction.md").read_text()
    header = next(line for line in page.splitlines() if line.startswith("| Claim of the papers"))
    cells = [cell.strip() for cell in header.strip("|").split("|")]
    words = stats.READING_WORDS[claims_table.READING]
    for name in ("GPU study", "CPU study", "Quick profile"):
        cell = next(cell for cell in cells if cell.startswith(name))
        assert cell.startswith(f"{name} ({words}"), cell
    notebook = json.loads((REPO / "notebooks/07_claims.ipynb").read_text())
    source = "".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    assert 'glue(f"status_profile_{claim.key}", cells.loc[claim.name, f"{p.profile} profile"]' in source


def test_a_real_gpu_study_file_of_this_book_is_read_as_what_it_is():
    """Whatever the GPU study's file holds today, the survey reads it without error and calls it a registration
    only when it has configurations."""
    gpu, cpu = scale_reports.survey(REPO)
    path = REPO / GPU_STUDY_FILE
    assert gpu.exists == path.is_file()
    assert gpu.registered == (path.is_file() and "configurations" in (yaml.safe_load(path.read_text()) or {}))
    assert cpu.has_records and cpu.records == len(list((REPO / STUDY_STORE).glob("*.json")))


def test_a_study_that_makes_only_some_of_a_claims_comparisons_says_how_many(tmp_path):
    spec = gpu_registration()
    spec["comparisons"] = [c for c in spec["comparisons"] if not (c["a"] == "ssam-d-0.5" and c["b"] == "sam")
                           and c["claim"] != "accuracy_pattern_vs_sam"]
    root = book(tmp_path, gpu=spec)
    registered = studies.load_study(root / GPU_STUDY_FILE)
    decided = studies.decide_comparisons(registered, studies.study_frame(registered, []), [], resamples=0)
    statuses = studies.claim_statuses(registered, decided)
    assert statuses["acc"] == "inconclusive (1 of 2 comparisons in the study)"
    assert statuses["patterns"] == studies.NOT_IN_STUDY and statuses["sam_sgd"] == "inconclusive"
    with pytest.raises(ValueError, match="which the study does not make"):
        studies.book_statuses(registered, decided)
    with pytest.raises(ValueError, match="time must be one of cpu_seconds_per_step, seconds_per_step"):
        studies.decide_comparisons(registered, studies.study_frame(registered, []), [], resamples=0, time="wall")


# --- the ImageNet study (chapter 5 leads with it; the claims table's ImageNet row reads it) ---------------------

IMAGENET_TEMPLATE = next((REPO / "results/runs").glob("sgd-resnet50-tiny-imagenette-e2-*.json"))  # 2 epochs
IMAGENET_COMMON = {"model": "resnet50", "dataset": "imagenette", "n_train": None, "n_test": None, "epochs": 2,
                   "eval_every": 1, "batch_size": 256, "lr": 0.1, "weight_decay": 1.0e-4, "rho": 0.05,
                   "num_samples": 128, "device": "cuda"}
# What the ImageNet study's file holds before its registration, in its format: candidates, a pilot with a store.
IMAGENET_DECLARED = {"question": "Do SSAM-F and SSAM-D keep SAM's accuracy on Imagenette?",
                     "common": IMAGENET_COMMON,
                     "candidates": {"A": {"model": "resnet50"}, "B": {"model": "resnet50-cifar-stem"}},
                     "pilot": {"configurations": ["sgd", "sam"], "seeds": [100, 101, 102],
                               "store": "results/imagenet_study/pilot"},
                     "selection": {"seeds": "n from the pilot's paired SD"},
                     "configurations_planned": ["sgd", "sam", "ssam-f-0.5", "ssam-d-0.5"]}
IMAGENET_SEEDS = [0, 1, 2, 3]
# Final accuracy per configuration and seed: SAM 3 pp above SGD, SSAM-F at SAM's, SSAM-D 3 pp below it.
IMAGENET_ACCURACY = {"sgd": [0.700, 0.702, 0.699, 0.701], "sam": [0.730, 0.731, 0.728, 0.732],
                     "ssam-f-0.5": [0.731, 0.730, 0.729, 0.733], "ssam-d-0.5": [0.700, 0.699, 0.701, 0.700]}


def imagenet_registration() -> dict:
    """A registration of the ImageNet study in the CPU study's format: the declared regime (candidate A), the four
    planned configurations on four seeds, the comparisons of chapter 3 with the half-gain contrast, the margins of
    book/margins.yaml pinned (with the premise and the contrast), read as one family (Holm)."""
    declared = stats.margins(REPO / MARGINS)
    comparisons = [{"claim": "accuracy_sam_vs_sgd", "a": "sam", "b": "sgd"},
                   {"claim": "accuracy_ssam_vs_sam", "a": "ssam-f-0.5", "b": "sam"},
                   {"claim": "accuracy_ssam_vs_sam", "a": "ssam-d-0.5", "b": "sam"},
                   {"claim": "accuracy_ssam_keeps_half_gain", "a": "ssam-f-0.5", "b": "sam", "over": "sgd"},
                   {"claim": "accuracy_ssam_keeps_half_gain", "a": "ssam-d-0.5", "b": "sam", "over": "sgd"}]
    pinned = {c["claim"]: {k: declared[c["claim"]][k] for k in ("test", "unit", "better", "margin")}
              for c in comparisons}
    pinned["accuracy_ssam_vs_sam"]["premise"] = "accuracy_sam_vs_sgd"  # as sparsam.book.study.registering pins them
    pinned["accuracy_ssam_keeps_half_gain"]["contrast"] = "half-gain"
    return {"question": IMAGENET_DECLARED["question"], "regime": IMAGENET_COMMON, "seeds": {"core": IMAGENET_SEEDS},
            "configurations": {"sgd": {"seeds": "core", "optimizer": "sgd"},
                               "sam": {"seeds": "core", "optimizer": "sam"},
                               "ssam-f-0.5": {"seeds": "core", "optimizer": "ssam-f", "sparsity": 0.5},
                               "ssam-d-0.5": {"seeds": "core", "optimizer": "ssam-d", "sparsity": 0.5}},
            "comparisons": comparisons, "margins": {"level": 0.95, "min_n": 3, **pinned}, "pilot": {},
            "correction": "holm"}


def imagenet_record(config: TrainConfig, accuracy: float, wall: float = 0.05) -> dict:
    """A whole record of ``config`` (2 epochs, evaluated after each) on the GPU, ending at ``accuracy``: a committed
    quick-profile Imagenette record with the configuration's run id, its accuracies, losses and wall time."""
    record = read_record(IMAGENET_TEMPLATE, "run")
    summary, lines = record["summary"], record["metrics"]
    assert config.epochs == len(lines) == 2 and config.eval_every == 1
    summary.pop("test_correct", None)
    for i, line in enumerate(lines):
        line.update(test_acc=accuracy - 0.1 * (len(lines) - 1 - i), train_loss=2.0 - 0.5 * i, seconds_per_step=wall,
                    steps=37, mask_density=None)
    summary.update(config=config.to_dict(), run_id=config.run_id(), final_test_acc=accuracy, best_test_acc=accuracy,
                   final_train_loss=lines[-1]["train_loss"], weight_decay_used=config.decay, mask_density=None,
                   seeds={"seed": config.seed}, seconds_per_step=wall)
    summary["provenance"].update(device="cuda", device_name="NVIDIA H200")
    return record


def imagenet_book(root: Path, spec: dict | None, runs: dict[str, list[float]] | None = None) -> Path:
    """A book (that of :func:`book`) with ``spec`` as the ImageNet study's file (None: none) and, for ``runs``
    (configuration -> accuracy per seed of the registration), those records in the ImageNet study's store."""
    book(root)
    if spec is not None:
        (root / IMAGENET_STUDY_FILE).parent.mkdir(parents=True, exist_ok=True)
        (root / IMAGENET_STUDY_FILE).write_text(yaml.safe_dump(spec, sort_keys=False))
    if runs:
        registered = studies.load_study(root / IMAGENET_STUDY_FILE)
        (root / IMAGENET_STUDY_STORE).mkdir(parents=True, exist_ok=True)
        for name, accuracies in runs.items():
            for config, accuracy in zip(registered.configs(name), accuracies):
                (root / IMAGENET_STUDY_STORE / f"{config.run_id()}.json").write_text(
                    json.dumps(imagenet_record(config, accuracy)))
    return root


def test_the_imagenet_study_is_a_scale_of_its_own_whose_claim_is_the_imagenet_claim():
    imagenet = scales.IMAGENET_STUDY
    assert imagenet not in scales.SCALES and scales.IMAGENET_SCALES == (imagenet,)
    assert scales.BOOK_SCALES == (*scales.SCALES, *scales.NOISE_SCALES, imagenet)
    assert (imagenet.study_file, imagenet.store) == (IMAGENET_STUDY_FILE, IMAGENET_STUDY_STORE)
    assert not imagenet.study_file.is_absolute() and imagenet.paper == "imagenet" and imagenet.report == "05_imagenet"
    assert imagenet.claim_map == {"imagenet": registry.study_claims("cifar")["acc"]}  # SSAM-F and SSAM-D against SAM
    assert imagenet.column == "GPU study" and imagenet.time == "seconds_per_step"
    assert all(s.claim_map == registry.study_claims("cifar") and s.paper == "cifar" and s.column is None for s in scales.SCALES)
    moved = imagenet.with_paths("elsewhere/study.yaml", "elsewhere/runs")
    assert (moved.study_file, moved.store) == (Path("elsewhere/study.yaml"), Path("elsewhere/runs"))
    assert moved.claim_map == imagenet.claim_map and imagenet.study_file == IMAGENET_STUDY_FILE


def test_an_unregistered_imagenet_study_says_so_in_words_read_from_its_file(tmp_path):
    spec = json.loads(json.dumps(IMAGENET_DECLARED))
    spec["candidates"]["C"] = {"model": "resnet50-tiny"}  # a third candidate: the words follow the file
    root = imagenet_book(tmp_path, spec)
    (root / "results/imagenet_study/pilot").mkdir(parents=True)
    for changes in ({"optimizer": "sam", "seed": 101},  # candidate A's SAM, seed 101
                    {"optimizer": "sgd", "seed": 100, "model": "resnet50-tiny", "amp": "bf16"},  # C's, a fast path
                    {"optimizer": "sgd", "seed": 7},  # not a pilot seed
                    {"optimizer": "sgd", "seed": 100, "lr": 0.2}):  # not a candidate's setting
        pilot = TrainConfig.from_dict({**IMAGENET_COMMON, **changes})
        (root / "results/imagenet_study/pilot" / f"{pilot.run_id()}.json").write_text(
            json.dumps(imagenet_record(pilot, 0.5)))
    found = scale_reports.report(scales.IMAGENET_STUDY, root)
    assert not found.state.registered and not found.state.has_records and found.decided is None
    assert found.text.startswith("not yet registered: results/imagenet_study/imagenet_study.yaml has no "
                                 "configurations yet")
    for words in (IMAGENET_DECLARED["question"], "3 candidate regimes", "A: model resnet50", "B: model "
                  "resnet50-cifar-stem", "C: model resnet50-tiny", "a pilot of sgd and sam over seeds 100, 101 and 102",
                  "2 of its 18 runs have a record in results/imagenet_study/pilot/",
                  "sgd, sam, ssam-f-0.5 and ssam-d-0.5", "No run of the study exists yet: results/imagenet_study/runs/ "
                  "holds no record"):
        assert words in found.text, words
    declared = found.declaration
    assert declared is not None and list(declared.regimes()) == ["A", "B", "C"] and declared.pilot_recorded == 2
    assert [len(runs) for runs in declared.pilot_runs().values()] == [6, 6, 6]
    settings = declared.frame().set_index("setting")
    assert list(settings.columns) == ["declared", "candidate A", "candidate B", "candidate C"]
    assert settings.loc["model", "declared"] == "per candidate" and settings.loc["lr", "declared"] == "common"
    assert settings.loc["model", "candidate B"] == "resnet50-cifar-stem" and settings.loc["lr", "candidate C"] == 0.1
    table = found.deviations.set_index("aspect")
    assert list(table.columns) == ["papers", "candidate A", "candidate B", "candidate C"]
    assert list(table.index) == list(deviations.PAPERS["imagenet"])
    assert table.loc["network", "candidate B"] == "resnet50-cifar-stem" and table.loc["epochs", "candidate A"] == "2"
    assert table.loc["network stem", "candidate A"].endswith("at 16 px")  # 64 px through torchvision's stem
    assert table.loc["network stem", "candidate B"].endswith("at 64 px")  # and through the CIFAR-style one
    assert table.loc["seeds", "candidate A"] == declared.seed_rule and "pilot" in declared.seed_rule
    assert found.statuses == {c.key: "not yet registered" for c in registry.table_claims()}
    assert found.sentence == ("The ImageNet study does not decide its claim (" + next(
        c.name for c in registry.table_claims() if c.key == "imagenet") + ": not yet registered).")
    assert found.accuracy.empty and found.curves.empty and found.frame.empty
    with pytest.raises(ValueError, match="is a registration"):
        scale_reports.declaration(scales.IMAGENET_STUDY, imagenet_book(tmp_path / "r", imagenet_registration()))


def test_without_a_file_or_without_records_the_imagenet_report_says_where_it_stands(tmp_path):
    found = scale_reports.report(scales.IMAGENET_STUDY, imagenet_book(tmp_path / "none", None))
    assert found.text.startswith("not yet registered: there is no study file results/imagenet_study/")
    assert set(found.deviations["ours"]) == {"no runs"} and found.declaration is None
    found = scale_reports.report(scales.IMAGENET_STUDY, imagenet_book(tmp_path / "empty", imagenet_registration()))
    assert found.state.registered and not found.state.has_records and found.decided is None
    assert found.text == "registered in results/imagenet_study/imagenet_study.yaml, no records yet in " \
                         "results/imagenet_study/runs/."
    table = found.deviations.set_index("aspect")["registered regime"]
    assert table["seeds"] == str(len(IMAGENET_SEEDS)) and table["network"] == "resnet50" and table["device"] == "GPU"
    assert set(found.statuses.values()) == {"registered, no records yet"}


def test_a_registered_imagenet_study_with_records_shows_intervals_curves_and_family_wise_verdicts(tmp_path):
    root = imagenet_book(tmp_path, imagenet_registration(), IMAGENET_ACCURACY)
    found = scale_reports.report(scales.IMAGENET_STUDY, root, resamples=0)
    assert found.state.has_records and found.state.records == found.state.planned == 16
    assert found.registered is not None and found.registered.correction == "holm"
    # accuracy per configuration: the mean over its seeds with the 95% t-interval over seeds, in the file's order
    assert list(found.accuracy["configuration"]) == list(IMAGENET_ACCURACY)
    for _, row in found.accuracy.iterrows():
        values = 100 * np.array(IMAGENET_ACCURACY[row["configuration"]])
        mean, low, high = mean_interval(values, 0.95)
        assert (row["mean"], row["low"], row["high"], row["n"]) == pytest.approx((mean, low, high, 4))
        assert row["low"] < row["mean"] < row["high"]
    cells = found.configurations.set_index("configuration")["test accuracy (%)"]
    assert all(re.fullmatch(r"[\d.]+ \[[\d.]+, [\d.]+\]", cell) for cell in cells), cells
    assert found.chance == 10.0
    # training curves: every configuration, every epoch, one line per seed
    assert set(found.curves["method"]) == set(IMAGENET_ACCURACY)
    assert found.curves.groupby(["method", "epoch"]).size().eq(4).all()
    # the comparisons decided as one family (Holm), as sparsam.book.study decides them
    registered = found.registered
    assert list(found.decided["claim"]) == [studies.comparison_label(c) for c in registered.family]
    family = found.decided.set_index("claim")["family_status"]
    assert family["sam vs sgd (accuracy_sam_vs_sgd)"] == "reproduced"
    assert family["ssam-f-0.5 vs sam (accuracy_ssam_vs_sam)"] == "reproduced"
    assert family["ssam-d-0.5 vs sam (accuracy_ssam_vs_sam)"] == "not reproduced"
    assert found.decided["family_size"].eq(len(registered.family)).all()
    assert all(e.startswith("ImageNet study (notebook 5)") for e in found.decided["evidence"])
    audit = found.audit.set_index("comparison")
    assert (audit["low"] < audit["mean"]).all() and (audit["mean"] < audit["high"]).all() and (audit["n"] == 4).all()
    assert (audit["sim_low"] <= audit["low"]).all()  # the simultaneous interval is the wider
    expected = studies.decide_comparisons(registered, found.frame, list(found.records), resamples=0,
                                          time="seconds_per_step", evidence="x")
    assert list(found.decided["family_status"]) == list(expected["family_status"])
    # its claim needs both SSAM variants: decided, not reproduced; the CIFAR claims are not in this study
    assert found.statuses["imagenet"] == "not reproduced"
    assert found.statuses["acc"] == found.statuses["sam_sgd"] == studies.NOT_IN_STUDY
    assert found.sentence.startswith("The ImageNet study decides its claim (") and "not reproduced)." in found.sentence
    assert found.sentence.endswith(f" Its scale: {found.scale_text}.") and "4 seeds" in found.scale_text
    # the deviations, now from the records
    table = found.deviations.set_index("aspect")["ours"]
    assert table["network"] == "resnet50" and table["seeds"] == "4" and table["device"] == "GPU (NVIDIA H200)"
    assert table["network stem"] == deviations.stem_text("resnet50", 64) and table["epochs"] == "2"
    assert "RandomResizedCrop(64)" in table["data encoding"]


def test_the_imagenet_row_of_the_claims_table_reads_the_imagenet_study_in_the_gpu_column():
    gpu = {c.key: "not yet registered" for c in registry.table_claims()}
    cpu = {c.key: "inconclusive" for c in registry.table_claims()} | {"imagenet": studies.NOT_IN_STUDY}
    imagenet = {c.key: studies.NOT_IN_STUDY for c in registry.table_claims()} | {"imagenet": "not reproduced"}
    noise = {c.key: "registered, no records yet" for c in registry.table_claims()}
    quick = {c.key: "inconclusive" for c in registry.table_claims()}
    table = claims_table.claims_table([gpu, cpu, noise, imagenet], quick, scales=scales.BOOK_SCALES)
    assert list(table.columns) == ["claim", "GPU study", "CPU study", "label-noise CPU study",
                                   "quick profile"]  # no column of its own
    rows = table.set_index("claim")
    name = next(c.name for c in registry.table_claims() if c.key == "imagenet")
    assert list(rows.loc[name]) == ["ImageNet study: not reproduced", studies.NOT_IN_STUDY,
                                    "registered, no records yet", "inconclusive"]
    assert set(rows.drop(index=name)["GPU study"]) == {"not yet registered"}  # the other rows read the GPU study
    assert table.drop(columns="GPU study").equals(claims_table.claims_table(
        [gpu, cpu, noise], quick, scales=(*scales.SCALES, *scales.NOISE_SCALES)).drop(columns="GPU study"))
    with pytest.raises(ValueError, match="fills the GPU study column, which no scale of scales has"):
        claims_table.claims_table([imagenet], quick, scales=scales.IMAGENET_SCALES)
    assert scale_reports.scale_sentence(scales.IMAGENET_STUDY, imagenet, "2 epochs") == (
        f"The ImageNet study decides its claim ({name}: not reproduced). Its scale: 2 epochs.")
    assert scale_reports.scale_sentence(scales.SCALES[1], cpu).startswith(
        f"The CPU study decides none of its {len([c for c in registry.table_claims() if c.key in registry.study_claims('cifar')])} claims (")
    with pytest.raises(ValueError, match="missing"):
        scale_reports.scale_sentence(scales.IMAGENET_STUDY, {"acc": "reproduced"})


def test_the_imagenet_study_file_of_this_book_is_read_as_what_it_is():
    """Whatever the ImageNet study's file holds today, chapter 5's report reads it without error: its candidates
    in words while it is no registration, its records once it is one."""
    found = scale_reports.report(scales.IMAGENET_STUDY, REPO, resamples=0)
    spec = yaml.safe_load((REPO / IMAGENET_STUDY_FILE).read_text())
    assert found.state.registered == ("configurations" in spec)
    if not found.state.registered:
        assert found.declaration is not None and list(found.declaration.candidates) == [str(k) for k in
                                                                                        spec["candidates"]]
        assert all(f"{name}: " in found.text for name in spec["candidates"])
        assert list(found.deviations.columns[2:]) == [f"candidate {k}" for k in spec["candidates"]]


# --- the label-noise study (chapter 9): a column of its own, its verdicts only once every run is in -------------

NOISE_SPEC = yaml.safe_load((REPO / layout.NOISE_STUDY_FILE).read_text())  # the committed registration
NOISE_SEEDS = [0, 1, 2, 3]
# Final accuracy per configuration (mean over seeds) under label noise: SAM 8 pp above SGD, SSAM-F at SAM's, SSAM-D
# 1 pp below it (well within the fixed margin, keeping most of SAM's gain), a fixed random mask 3 pp below SAM; each
# seed off its mean by a few hundredths of a point, differently per configuration (paired differences spread).
NOISE_MEANS = {"sgd": 0.40, "sam": 0.48, "ssam-f-0.5": 0.48, "ssam-d-0.5": 0.47, "random-0.5": 0.45}
NOISE_JITTER = {"sgd": (0, 2, -1, 1), "sam": (1, 0, 2, -1), "ssam-f-0.5": (-1, 1, 0, 2), "ssam-d-0.5": (2, -1, 1, 0),
                "random-0.5": (0, -1, 2, 1)}  # in 0.01 pp


def noise_accuracy(means: dict[str, float]) -> dict[str, list[float]]:
    return {name: [mean + 1e-4 * j for j in NOISE_JITTER[name]] for name, mean in means.items()}


def noise_registration() -> dict:
    """A small registration in the label-noise study's format: the committed regime (2 epochs, evaluated after each),
    five of its configurations on four seeds, every committed comparison among them with the committed margins,
    read as one family (Holm)."""
    comparisons = [c for c in NOISE_SPEC["comparisons"] if {c["a"], c["b"], c.get("over", "sgd")} <= set(NOISE_MEANS)]
    margins = {k: v for k, v in NOISE_SPEC["margins"].items()
               if k in ("level", "min_n") or k in {c["claim"] for c in comparisons}}
    return {"question": NOISE_SPEC["question"], "regime": {**NOISE_SPEC["regime"], "epochs": 2, "eval_every": 1},
            "seeds": {"core": NOISE_SEEDS},
            "configurations": {name: NOISE_SPEC["configurations"][name] for name in NOISE_MEANS},
            "comparisons": comparisons, "margins": margins, "pilot": {}, "correction": "holm"}


def noise_book(root: Path, means: dict[str, float] = NOISE_MEANS, left_out: frozenset = frozenset()) -> Path:
    """A book (that of :func:`book`) with :func:`noise_registration` as the label-noise study's file and a record of
    each of its runs, on the CPU, but those of ``left_out`` ((configuration, seed) pairs)."""
    book(root)
    path = root / layout.NOISE_STUDY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(noise_registration(), sort_keys=False))
    registered = studies.load_study(path)
    (root / layout.NOISE_STUDY_STORE).mkdir(parents=True)
    for name, accuracies in noise_accuracy(means).items():
        for config, accuracy in zip(registered.configs(name), accuracies):
            if (name, config.seed) in left_out:
                continue
            record = imagenet_record(config, accuracy)
            record["summary"]["provenance"].update(device="cpu", device_name="x86_64")
            (root / layout.NOISE_STUDY_STORE / f"{config.run_id()}.json").write_text(json.dumps(record))
    return root


def every_claim(status: str) -> dict[str, str]:
    """A scale's statuses (another scale's, beside the label-noise study's), every claim ``status``."""
    return {c.key: status for c in registry.table_claims()}


def test_the_label_noise_study_is_a_scale_with_a_column_of_its_own_set_against_clean_labels():
    noise = scales.NOISE_STUDY
    assert scales.NOISE_SCALES == (noise,) and noise not in scales.SCALES and noise.column is None
    assert (noise.study_file, noise.store) == (layout.NOISE_STUDY_FILE, layout.NOISE_STUDY_STORE)
    assert noise.paper == "cifar-noise" and noise.report == "09_noise_study" and noise.time == "cpu_seconds_per_step"
    assert "training labels" in deviations.PAPERS[noise.paper]
    assert {k: v for k, v in deviations.PAPERS[noise.paper].items() if k != "training labels"} == deviations.PAPERS["cifar"]
    claim_map = noise.claim_map
    assert set(claim_map) & {c.key for c in registry.table_claims()} == {"acc", "sam_sgd"}
    # "match SAM" is its registered question for the paper's two SSAM configurations: both readings, both of them
    assert sorted(claim_map["acc"]) == sorted((rule, a, "sam") for rule in (
        "accuracy_noise_ssam_vs_sam", "accuracy_ssam_keeps_half_gain") for a in ("ssam-f-0.5", "ssam-d-0.5"))
    assert claim_map["sam_sgd"] == (("accuracy_sam_vs_sgd", "sam", "sgd"),)
    made = {(c.claim, c.a, c.b) for c in studies.load_study(REPO / layout.NOISE_STUDY_FILE).comparisons}
    assert all(needed in made for comparisons in claim_map.values() for needed in comparisons)  # all registered


def test_the_label_noise_study_in_progress_shows_how_many_runs_are_in_and_no_verdict_from_them(tmp_path):
    root = noise_book(tmp_path, left_out=frozenset({("ssam-d-0.5", 3)}))
    state, = scale_reports.survey(root, scales.NOISE_SCALES)
    planned = len(NOISE_MEANS) * len(NOISE_SEEDS)
    assert state.in_progress and not state.complete and (state.records, state.planned) == (planned - 1, planned)
    cell = (f"in progress: {planned - 1} of the {planned} planned runs so far (the others are still to train); "
            "no verdict before all are in")
    assert state.cell() == cell
    registered, records, frame = scale_reports.load(state.scale, root)
    decided = scale_reports.decide(state.scale, registered, frame, records, resamples=0, root=root)
    would = studies.claim_statuses(registered, decided, claims=state.scale.claim_map)
    assert would["sam_sgd"] == "reproduced"  # what the partial records alone would decide (all seeds of both)
    statuses = scale_reports.scale_statuses(state, registered, decided)
    assert statuses == {c.key: cell if c.key in ("acc", "sam_sgd") else studies.NOT_IN_STUDY
                        for c in registry.table_claims()}
    assert scale_reports.scale_statuses(state) == {c.key: cell for c in registry.table_claims()}
    other, quick = every_claim("not yet registered"), every_claim("inconclusive")  # GPU, CPU, ImageNet; profile
    table = claims_table.claims_table([other, other, statuses, other], quick, scales=scales.BOOK_SCALES)
    assert list(table.columns) == ["claim", "GPU study", "CPU study", "label-noise CPU study", "quick profile"]
    column = table["label-noise CPU study"]
    assert not any(claims_table.status_of(c) in claims_table.DECIDED for c in column)  # no verdict from part of it
    assert set(column) == {cell, studies.NOT_IN_STUDY}
    sentence = claims_table.decided_sentence(table, "label-noise CPU study", deviations.scale_text(frame))
    assert sentence.startswith("The label-noise CPU study decides none of the ") and cell in sentence
    assert "training labels 40% replaced by another class (label noise 0.4, the book's deviation" in sentence
    assert "3 to 4 seeds per configuration" in sentence


def test_once_every_run_is_in_the_label_noise_column_reads_its_family_wise_verdicts(tmp_path):
    root = noise_book(tmp_path)
    state, = scale_reports.survey(root, scales.NOISE_SCALES)
    planned = len(NOISE_MEANS) * len(NOISE_SEEDS)
    assert state.complete and not state.in_progress and state.cell() == f"{planned} of {planned} runs recorded"
    registered, records, frame = scale_reports.load(state.scale, root)
    decided = scale_reports.decide(state.scale, registered, frame, records, resamples=0, root=root)
    assert decided["family_size"].eq(len(registered.family)).all() and (decided["n"] == len(NOISE_SEEDS)).all()
    family = dict(zip(decided["claim"], decided["family_status"]))
    labels = {(c.claim, c.a, c.b): studies.comparison_label(c) for c in registered.family}
    statuses = scale_reports.scale_statuses(state, registered, decided)
    for key in ("acc", "sam_sgd"):
        assert statuses[key] == combine([family[labels[n]] for n in state.scale.claim_map[key]]) == "reproduced"
    assert {k for k, v in statuses.items() if v == studies.NOT_IN_STUDY} == {
        c.key for c in registry.table_claims()} - {"acc", "sam_sgd"}
    with pytest.raises(ValueError, match="registered and decided"):
        scale_reports.scale_statuses(state)
    other = every_claim("not yet registered")
    table = claims_table.claims_table([other, other, statuses, other], every_claim("inconclusive"),
                                      scales=scales.BOOK_SCALES)
    rows = table.set_index("claim")["label-noise CPU study"]
    assert [rows[c.name] for c in registry.table_claims()] == [statuses[c.key] for c in registry.table_claims()]
    sentence = claims_table.decided_sentence(table, "label-noise CPU study", deviations.scale_text(frame),
                                             scale_reports.claim_scales(state, registered, decided))
    assert sentence.startswith("The label-noise CPU study decides 2 of the ") and "label noise 0.4" in sentence
    # the half-gain reading is part of its "match SAM": SSAM-D 4.5 pp below SAM is within the fixed margin (5.24 pp)
    # but keeps less than half of SAM's 8 pp gain, so the claim is not reproduced there
    root = noise_book(tmp_path / "half", {**NOISE_MEANS, "ssam-d-0.5": NOISE_MEANS["sam"] - 0.045})
    state, = scale_reports.survey(root, scales.NOISE_SCALES)
    registered, records, frame = scale_reports.load(state.scale, root)
    decided = scale_reports.decide(state.scale, registered, frame, records, resamples=0, root=root)
    family = dict(zip(decided["claim"], decided["family_status"]))
    assert family[labels["accuracy_noise_ssam_vs_sam", "ssam-d-0.5", "sam"]] == "reproduced"
    assert family[labels["accuracy_ssam_keeps_half_gain", "ssam-d-0.5", "sam"]] == "not reproduced"
    assert scale_reports.scale_statuses(state, registered, decided)["acc"] == "not reproduced"
