"""The book's scales (sparsam.book.scales): which one leads, what it reads, and the claims table by scale.

The scale tests build a book in a temporary folder (its markers, the profiles and margins of this book) with a
GPU study file in each of its states: absent, the candidate regimes without configurations (not a
registration), a registration without records, and a registration with one constructed record."""

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
from sparsam.book import claims, scales, study as studies, study_cost
from sparsam.book.profiles import GPU_STUDY_FILE, GPU_STUDY_STORE, PROFILES_FILE, STUDY_FILE, STUDY_STORE
from sparsam.book.stats import MARGINS, combine
from sparsam.experiment.config import TrainConfig

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
    record = json.loads(CPU_RECORD.read_text())
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
    assert scales.SCALES[1].cost_registration == study_cost.REGISTRATION and scales.SCALES[0].cost_registration is None


def test_a_gpu_study_file_without_configurations_is_not_a_scale_with_records(tmp_path):
    root = book(tmp_path, gpu=CANDIDATES)
    gpu_record(root, 0.01)  # even a record in its store does not make the candidates a registration
    gpu, cpu = scales.survey(root)
    assert gpu.exists and not gpu.registered and not gpu.has_records and gpu.records == 0
    assert gpu.cell() == "not yet registered" and "has no configurations" in gpu.text()
    assert cpu.registered and cpu.has_records and cpu.records == 1
    assert cpu.planned == len(studies.load_study(REPO / STUDY_FILE).configs())
    assert scales.leading((gpu, cpu)) is cpu
    frame = scales.survey_frame((gpu, cpu))
    assert list(frame["scale"]) == ["GPU study", "CPU study"] and list(frame["leads"]) == ["", "yes"]
    assert list(frame["study file"]) == [GPU_STUDY_FILE.as_posix(), STUDY_FILE.as_posix()]
    statuses = scales.scale_statuses(gpu)
    assert set(statuses) == {c.key for c in scales.CLAIMS} and set(statuses.values()) == {"not yet registered"}


def test_without_a_gpu_file_or_without_records_the_cpu_study_leads_and_without_any_none_does(tmp_path):
    root = book(tmp_path / "a")
    gpu, cpu = scales.survey(root)
    assert not gpu.exists and "there is no study file" in gpu.text() and scales.leading((gpu, cpu)) is cpu
    root = book(tmp_path / "b", gpu=gpu_registration())
    gpu, cpu = scales.survey(root)
    assert gpu.registered and gpu.records == 0 and gpu.cell() == "registered, no records yet"
    assert scales.leading((gpu, cpu)) is cpu
    root = book(tmp_path / "c", cpu_records=0)
    assert scales.leading(scales.survey(root)) is None


def test_a_registered_gpu_study_with_a_record_leads_and_is_read_with_its_gpu_time(tmp_path):
    root = book(tmp_path, gpu=gpu_registration(), cpu_records=2)
    record = gpu_record(root, 0.0125)
    gpu, cpu = scales.survey(root)
    assert gpu.has_records and gpu.records == 1 and cpu.records == 2
    assert scales.leading((gpu, cpu)) is gpu and gpu.cell() == f"1 of {gpu.planned} runs recorded"
    registered, records, frame = scales.load(gpu.scale, root)
    assert registered.correction == "holm"
    assert [r["summary"]["run_id"] for r in records] == [record["summary"]["run_id"]]
    assert list(frame["configuration"]) == ["sgd"] and list(frame["device"]) == ["cuda"]
    points = scales.pareto_points(gpu.scale, registered, frame, root)
    assert list(points["label"]) == ["sgd"] and points["cost"].iloc[0] == 1.0  # its own wall time is the unit
    assert points["mean"].iloc[0] == pytest.approx(100 * record["summary"]["final_test_acc"])
    assert scales.cost_note(gpu.scale, points, frame).startswith("the records' own seconds per step")
    decided = scales.decide(gpu.scale, registered, frame, records, resamples=0, root=root)
    assert list(decided["claim"]) == [studies.comparison_label(c) for c in registered.family]
    assert set(decided["status"]) == {"inconclusive"} and (decided["n"] == 0).all()  # nothing is paired yet
    assert all(e.startswith("GPU study") for e in decided["evidence"])
    statuses = scales.scale_statuses(gpu, registered, decided)
    assert statuses["acc"] == "inconclusive" and statuses["cost_aware"] == "inconclusive"
    assert statuses["imagenet"] == statuses["convergence"] == statuses["flat"] == studies.NOT_IN_STUDY
    with pytest.raises(ValueError, match="registered and decided"):
        scales.scale_statuses(gpu)


def test_a_study_without_a_cost_measurement_decides_cost_from_its_records_time(tmp_path):
    """The GPU study's cost comparisons read the records' wall time per step (seconds_per_step), not CPU time."""
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
    decided = scales.decide(scales.SCALES[0], registered, frame, rows, resamples=0, root=root).set_index("claim")
    row = decided.loc["ssam-f-0.9 vs sgd (cost_time_vs_sgd_at_most_1_25)"]
    assert row["n"] == 3 and np.exp(row["diff"]) == pytest.approx(
        np.exp(np.mean(np.log(np.divide([0.011, 0.012, 0.0115], [0.010, 0.011, 0.0105])))))
    assert row["status"] == "reproduced"  # about 1.09 SGD steps of wall time; by CPU time it would be 0.2


def test_the_cpu_study_reads_its_cost_from_the_registered_interleaved_measurement():
    cpu = scales.SCALES[1]
    registered, records, frame = scales.load(cpu, REPO)
    points = scales.pareto_points(cpu, registered, frame, REPO)
    registration = study_cost.load_registration(REPO / study_cost.REGISTRATION, study=registered)
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
    assert scales.cost_budget(registered) == studies.declared_margins()[studies.COST_RULE]["margin"]
    note = scales.cost_note(cpu, points, frame)
    assert f"({registration.rounds} rounds" in note and f"timed {len(registration.configurations)} of the " \
        f"{frame['configuration'].nunique()} configurations" in note
    untimed = set(frame["configuration"]) - set(points["label"])
    assert untimed and all(name in note.split("not timed there: ")[1] for name in untimed)


def test_the_sparsity_figure_takes_the_configurations_that_set_only_optimizer_and_sparsity():
    registered = studies.load_study(REPO / STUDY_FILE)
    names = scales.sparsity_configurations(registered)
    assert names == ["sgd", "sam", "ssam-f-0.5", "ssam-f-0.9", "ssam-d-0.5"]
    left_out = [n for n in registered.configurations if n not in names]
    assert all(set(registered.configurations[n][0]) - {"optimizer", "sparsity"} for n in left_out)


def saved(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["chapter", "rule", "claim", "status"])


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
        ("05_imagenet", "accuracy_ssam_vs_sam", "ImageNet proxy: SSAM-F (s = 0.5) vs SAM", "inconclusive"),
        ("05_imagenet", "accuracy_sam_vs_sgd", "ImageNet proxy: SAM vs SGD", "not reproduced"),  # no claim's row
    ])
    statuses = scales.profile_statuses(frame)
    assert statuses["acc"] == combine(["reproduced", "inconclusive"]) == "inconclusive"
    assert statuses["radius"] == "reproduced" and statuses["sam_sgd"] == "reproduced"
    assert statuses["patterns"] == "not reproduced" and statuses["forms"] == "no row of chapter 3"
    assert statuses["cost"] == statuses["cost_aware"] == "reproduced" and statuses["imagenet"] == "inconclusive"
    assert statuses["flat"] == "chapter 6 not executed in this profile"
    assert statuses["convergence"].startswith("decided in chapter 1")
    with pytest.raises(ValueError, match="no claim of the table takes"):
        scales.profile_statuses(saved([("04_efficiency", "accuracy_sam_vs_sgd", "x", "reproduced")]))


def test_chapter_3_names_its_radius_row_as_the_claims_table_reads_it():
    source = "".join("".join(c["source"]) for c in json.loads((REPO / "notebooks/03_cifar_accuracy.ipynb").read_text())
                     ["cells"] if c["cell_type"] == "code")
    assert re.search(r'"' + scales.RADIUS_PREFIX + r': SSAM-F', source)
    assert set(claims.CHAPTERS) == {chapter for chapter, _ in scales.PROFILE_RULES}


def test_the_claims_table_has_the_gpu_study_then_the_cpu_study_then_the_profile():
    gpu = {c.key: "not yet registered" for c in scales.CLAIMS}
    cpu = {c.key: "inconclusive" for c in scales.CLAIMS} | {"cost_aware": "reproduced", "sam_sgd": "not reproduced"}
    quick = {c.key: "inconclusive" for c in scales.CLAIMS} | {"cost": "reproduced"}
    table = scales.claims_table([gpu, cpu], quick, profile="quick")
    assert list(table.columns) == ["claim", "GPU study", "CPU study", "quick profile"]
    assert list(table["claim"]) == [c.name for c in scales.CLAIMS]
    row = table.set_index("claim").loc[next(c.name for c in scales.CLAIMS if c.key == "cost_aware")]
    assert list(row) == ["not yet registered", "reproduced", "inconclusive"]
    assert list(scales.claims_table([gpu, cpu], quick, profile="cpu-study").columns)[-1] == "cpu-study profile"
    with pytest.raises(ValueError, match="one column per scale"):
        scales.claims_table([cpu], quick)
    with pytest.raises(ValueError, match="lacks the claims"):
        scales.claims_table([gpu, {"acc": "reproduced"}], quick)
    sentence = scales.decided_sentence(table, "CPU study", "2,500 images")
    assert sentence.startswith(f"The CPU study decides 2 of the {len(scales.CLAIMS)} claims (")
    assert sentence.endswith(" Its scale: 2,500 images.")
    assert "SAM improves on SGD (CIFAR): not reproduced" in sentence and "cost-aware rule" in sentence
    assert scales.decided_sentence(table, "GPU study") == (
        f"The GPU study decides none of the {len(scales.CLAIMS)} claims (not yet registered).")
    with pytest.raises(ValueError, match="status column"):
        scales.decided_sentence(table, "claim")


def test_the_reproduction_pages_claims_table_has_the_same_column_order():
    page = (REPO / "book/reproduction.md").read_text()
    header = next(line for line in page.splitlines() if line.startswith("| Claim of the papers"))
    cells = [cell.strip() for cell in header.strip("|").split("|")]
    positions = [next(i for i, cell in enumerate(cells) if cell.startswith(name))
                 for name in ("GPU study", "CPU study", "Quick profile")]
    assert positions == sorted(positions) and positions[0] == 1  # the first status column is the GPU study's
    lines = page.splitlines()
    rows = list(itertools.takewhile(lambda line: line.startswith("|"), lines[lines.index(header) + 2:]))
    assert len(rows) == len(scales.CLAIMS)
    for row, claim in zip(rows, scales.CLAIMS):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert f"07_claims.ipynb::status_gpu_{claim.key}:s" in cells[positions[0]]
        assert f"07_claims.ipynb::status_cpu_{claim.key}:s" in cells[positions[1]]


def test_a_real_gpu_study_file_of_this_book_is_read_as_what_it_is():
    """Whatever the GPU study's file holds today, the survey reads it without error and calls it a registration
    only when it has configurations."""
    gpu, cpu = scales.survey(REPO)
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
