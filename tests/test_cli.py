"""The command line as a person meets it: one-line errors with exit status 2, a described --help,
the data options, start and per-epoch messages, and one writer per run folder."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import fields

import pytest
import torch

from conftest import REPO, data_file
from sparsam import cli
from sparsam.experiment import store as runs
from sparsam.experiment.config import TrainConfig
from fakes import fake_torchvision_cifar10

TINY = ["--model", "resnet-small", "--width", "4", "--batch-size", "10", "--epochs", "1", "--no-progress"]


def one_line_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """Run the CLI, expect exit status 2 and a single 'error: ...' line on stderr; return that line."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """SPARSAM_DATA points at an empty folder: an error about names must come before any data loads."""
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("SPARSAM_DATA", str(tmp_path / "empty"))
    return tmp_path / "empty"


@pytest.mark.parametrize("argv, message", [
    (["--model", "resnet-tiny"], "model must be one of resnet18, resnet-small, .* got 'resnet-tiny'"),
    (["--dataset", "cifar11"], "dataset must be one of cifar10, .*imagefolder:<path>, got 'cifar11'"),
    (["--optimizer", "ssam-f", "--pattern", "2:4:1"], r"pattern must be one of .*N:M \(e.g. '2:4'\), got '2:4:1'"),
    (["--amp", "fp16"], "amp='fp16' needs device='cuda'"),
    (["--sparsity", "1.5"], r"sparsity must be in \[0.0, 1.0\)"),
])
def test_bad_values_are_one_line_errors_before_any_data_loads(argv, message, capsys, no_data, tmp_path):
    line = one_line_error(capsys, ["train", "--runs-dir", str(tmp_path / "runs"), *argv])
    assert re.search(message, line), line
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_a_one_line_error(capsys, no_data, tmp_path):
    line = one_line_error(capsys, ["train", "--runs-dir", str(tmp_path), "--device", "cuda"])
    assert "device='cuda' but torch sees 0 CUDA GPU(s)" in line and "use device='cpu'" in line


def test_data_problems_are_one_line_errors(capsys, no_data, tmp_path, monkeypatch):
    line = one_line_error(capsys, ["train", "--runs-dir", str(tmp_path / "runs"), *TINY])
    assert f"cifar10-jpeg.npz not found in {no_data}" in line and "--download" in line
    assert list((tmp_path / "runs").iterdir()) == []  # nothing half-written is left
    (no_data / "cifar10-jpeg.npz").write_bytes(b"not the pack")
    line = one_line_error(capsys, ["train", "--runs-dir", str(tmp_path / "runs"), *TINY])
    assert "cifar10-jpeg.npz has SHA-256" in line and "corrupt" in line
    fake_torchvision_cifar10(tmp_path / "tv", monkeypatch)
    line = one_line_error(capsys, ["train", "--runs-dir", str(tmp_path / "runs"), "--data-root", str(tmp_path / "tv"),
                                   *TINY, "--n-train", "21"])
    assert "n_train must be at most 20" in line


def test_bad_grid_files_are_one_line_errors(capsys, tmp_path):
    assert "grid file" in one_line_error(capsys, ["sweep", str(tmp_path / "nothere.yaml"), "--dry-run"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("notebook: notebooks/03_cifar_accuracy.ipynb\ngrid: {seed: [0, 1]\n")
    assert "not valid YAML (line 3)" in one_line_error(capsys, ["sweep", str(bad), "--dry-run"])


def test_a_truncated_checkpoint_is_named_with_how_to_start_over(capsys, tmp_path):
    config = TrainConfig(model="resnet-small", width=4, batch_size=10, epochs=1)
    folder = tmp_path / "r"
    runs.atomic_write_json(folder / "config.json", config.to_dict())
    (folder / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    line = one_line_error(capsys, ["train", "--runs-dir", str(tmp_path), "--run-id", "r", *TINY])
    assert f"{folder / 'checkpoint.pt'} is unreadable" in line and "delete it to restart" in line


def test_a_real_process_prints_one_line_and_exits_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "sparsam", "train", "--model", "resnet-tiny"], capture_output=True,
                         text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 2 and out.stderr.startswith("error: model must be one of") and out.stderr.count("\n") == 1
    out = subprocess.run([sys.executable, "-m", "sparsam", "--traceback", "train", "--model", "resnet-tiny"],
                         capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 1 and "Traceback" in out.stderr  # asked for


def test_help_describes_every_option_and_lists_its_choices():
    helps = {f.name: f.metadata.get("help") for f in fields(TrainConfig)}
    missing = sorted(name for name, text in helps.items() if not isinstance(text, str) or not text.strip())
    assert not missing, f"fields without a help line: {missing}"  # a new field needs its line
    assert len(set(helps.values())) == len(helps)  # no line copied from another field
    train = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    options = {a.dest: a for a in train._actions}
    for f in fields(TrainConfig):
        text = options[f.name].help
        assert text.startswith(helps[f.name]) and "default:" in text, f.name
        for choice in cli.command_module("train").choices().get(f.name, ()):
            assert choice in text, (f.name, choice)
    for name in ("runs_dir", "run_id", "wait", "data_root", "download", "no_progress"):
        assert options[name].help, name
    assert "N:M (e.g. '2:4')" in options["pattern"].help and "wrn-<depth>-<widen>" in options["model"].help
    train.format_help()  # no stray % in the texts


def test_the_readme_examples_are_valid(tmp_path, monkeypatch):
    """The README's train command parses into a valid config; its sweep grid has two valid points."""
    monkeypatch.chdir(REPO)  # as the README runs it: the grid's notebook is relative to the checkout's root
    pytest.importorskip("papermill")
    from sparsam.experiment import sweep

    section = (REPO / "README.md").read_text().split("## Command line", 1)[1].split("\n## ", 1)[0]
    command = next(line for line in section.splitlines() if line.startswith("python -m sparsam train --"))
    args = cli.build_parser().parse_args(shlex.split(command)[3:])
    TrainConfig.from_dict({f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    (tmp_path / "grid.yaml").write_text(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    notebook, points = sweep.load_grid(tmp_path / "grid.yaml")
    defaults = sweep.notebook_defaults(notebook)
    sweep.check_parameters(notebook, points, defaults)
    assert len(points) == 2 and all(sweep.check_point(point, defaults) is None for point in points)


def test_data_root_and_download_reach_torchvision(capsys, tmp_path, monkeypatch):
    calls = fake_torchvision_cifar10(tmp_path / "tv", monkeypatch, per_batch=10)
    monkeypatch.delenv("SPARSAM_DATA", raising=False)
    argv = ["train", "--runs-dir", str(tmp_path / "runs"), *TINY]
    assert cli.main([*argv, "--data-root", str(tmp_path / "tv"), "--download"]) == 0
    assert calls and all(c == {"root": str(tmp_path / "tv"), "download": True} for c in calls)
    assert json.loads(capsys.readouterr().out)["rank"] == 0


def test_start_resume_finished_and_epoch_lines(capsys, tmp_path, monkeypatch):
    from sparsam.experiment.train import train

    fake_torchvision_cifar10(tmp_path / "tv", monkeypatch, per_batch=10)
    argv = ["train", "--runs-dir", str(tmp_path / "runs"), "--run-id", "m", "--data-root", str(tmp_path / "tv"),
            *TINY, "--epochs", "2"]
    config = TrainConfig.from_dict({f.name: getattr(cli.build_parser().parse_args(argv), f.name)
                                    for f in fields(TrainConfig)})
    assert train(config, tmp_path / "runs", "m", stop_after=1, verbose=True, data_root=tmp_path / "tv") == {}
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{tmp_path / 'runs' / 'm'}: starting"
    assert err[1].startswith("epoch 1/2  train loss ") and err[1].endswith(" s") and "images/s" in err[1]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{tmp_path / 'runs' / 'm'}: resuming from epoch 1" and err[1].startswith("epoch 2/2")
    assert len(err) == 2  # no progress bars without a terminal
    assert cli.main(argv) == 0
    assert capsys.readouterr().err.startswith(f"{tmp_path / 'runs' / 'm'}: already finished")


def test_a_second_writer_fails_at_once_or_waits(capsys, tmp_path, monkeypatch):
    fake_torchvision_cifar10(tmp_path / "tv", monkeypatch, per_batch=10)
    argv = ["train", "--runs-dir", str(tmp_path / "runs"), "--run-id", "x", "--data-root", str(tmp_path / "tv"),
            *TINY]
    with runs.lock(tmp_path / "runs" / "x"):
        line = one_line_error(capsys, argv)
        assert f"{tmp_path / 'runs' / 'x'} is in use by process {os.getpid()}" in line
    held, released = threading.Event(), []

    def hold() -> None:
        with runs.lock(tmp_path / "runs" / "x"):
            held.set()
            time.sleep(1.0)
            released.append(time.monotonic())

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait()
    assert cli.main([*argv, "--wait"]) == 0
    assert released and time.monotonic() > released[0]
    thread.join()


@pytest.mark.slow
def test_two_processes_with_one_run_id_and_different_configs(capsys, tmp_path):
    """The issue's probe: A (seed 0, 3 epochs) runs; B (seed 1, 1 epoch) with the same run id must not
    write into A's folder, and must never be handed A's summary."""
    data_file("cifar10-jpeg.npz")
    common = ["--runs-dir", str(tmp_path), "--run-id", "X", "--model", "resnet-small", "--width", "8",
              "--n-train", "200", "--n-test", "100", "--batch-size", "50", "--no-progress"]
    a = subprocess.Popen([sys.executable, "-m", "sparsam", "train", *common, "--seed", "0", "--epochs", "3"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while runs.holder(tmp_path / "X") is None:
        assert a.poll() is None and time.time() < deadline, a.communicate()
        time.sleep(0.1)
    b = ["train", *common, "--seed", "1", "--epochs", "1"]
    assert f"is in use by process {a.pid}" in one_line_error(capsys, b)
    out, err = a.communicate(timeout=600)
    assert a.returncode == 0, err
    assert "holds a run with another config" in one_line_error(capsys, b)
    summary = runs.read_json(tmp_path / "X" / "summary.json")
    assert summary["config"]["seed"] == 0 and runs.read_json(tmp_path / "X" / "config.json")["seed"] == 0


def test_study_prints_every_comparison_with_the_numbers_of_the_librarys_frame(capsys):
    import csv
    import io

    from sparsam.book import study
    from sparsam.book.intervals import precision
    from sparsam.experiment.results import load_all

    path = REPO / "results" / "study" / "cpu_study.yaml"
    registered = study.load_study(path)
    records = load_all(REPO / "results" / "study" / "runs")
    from sparsam.book import layout
    from sparsam.book.study import cost as study_cost, model as study_model

    registration = study_model.load_cost_registration(REPO / layout.COST_REGISTRATION, study=registered)
    cost = study_cost.cost_rows(registration, study_cost.read(registration.record))
    frame = study.audit_frame(registered, study.decide_comparisons_interleaved(
        registered, study.study_frame(registered, records), records, cost, resamples=0))
    assert (frame.loc[frame["unit"] == "ratio", "n"] == registration.rounds).all()  # cost: rounds, not seeds
    assert cli.main(["study", str(path), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["comparison"] for r in rows] == list(frame["comparison"]) and len(rows) == len(registered.family)
    for row, (_, expected) in zip(rows, frame.iterrows()):
        for column in ("mean", "low", "high", "sim_low", "sim_high", "p_value"):
            assert float(row[column]) == pytest.approx(expected[column], rel=1e-12), (row["comparison"], column)
        assert (row["status"], row["family_status"], row["registration"], int(row["n"])) == (
            expected["status"], expected["family_status"], expected["registration"], expected["n"])
        assert (row["rule"], row["registered_status"], row["scale"]) == (
            expected["rule"], expected["registered_status"], expected["scale"])
    assert cli.main(["study", str(path)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[1] == "cost: the interleaved measurement of results/study/cost_registration.yaml"
    assert "Holm's step-down at family-wise 5% over the 21 comparisons" in text[2] and "added after the runs" in text[2]
    assert text[3].startswith("rules added after the runs (the runs finished on 20")  # dated from the records
    start = next(i for i, line in enumerate(text) if line.startswith("comparison "))  # the table's header
    head, body = text[:start], text[start + 1:]
    for scale in dict.fromkeys(frame["scale"]):  # every scale that decided a comparison is named once
        assert sum(line.endswith(f": {scale}") for line in head) == 1
    assert len(body) == len(frame)
    for line, (_, expected) in zip(body, frame.iterrows()):
        assert line.startswith(expected["comparison"])
        digits = precision(expected["low"], expected["high"])  # the mean to the precision of its interval
        shown = f"×{expected['mean']:.{digits}f}" if expected["unit"] == "ratio" else f"{expected['mean']:+.{digits}f}"
        assert f" {shown} " in line and f" {expected['p_value']:.4f} " in line
        assert line.rstrip().endswith(expected["rule"]) and f" {expected['family_status']} " in line


def test_study_with_a_bad_path_is_a_one_line_error(capsys, tmp_path):
    assert "study file" in one_line_error(capsys, ["study", str(tmp_path / "nothere.yaml")])
    line = one_line_error(capsys, ["study", str(REPO / "results" / "study" / "cpu_study.yaml"), "--store",
                                   str(tmp_path / "none")])
    assert "--store" in line and "not a folder of records" in line


def test_help_names_the_layers_and_where_output_goes(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for package in ("sparsam.optim", "sparsam.masks", "sparsam.experiment", "sparsam.book", "sparsam.cli"):
        assert package in out
    assert "$SPARSAM_RUNS" in out and "$SPARSAM_STORE" in out


def _study_copy(folder, cost: bool = True):
    """A copy of the CPU study's folder (its file, records and, with ``cost``, its cost registration and record)
    outside the book."""
    import shutil

    source = REPO / "results" / "study"
    folder.mkdir()
    shutil.copy(source / "cpu_study.yaml", folder)
    shutil.copytree(source / "runs", folder / "runs")
    if cost:
        for name in ("cost_registration.yaml", "cost_interleaved.json"):
            shutil.copy(source / name, folder)
    return folder / "cpu_study.yaml"


def test_study_runs_from_an_empty_folder_on_a_copy_of_the_cpu_study(tmp_path, capsys):
    """Issue 30: no book root needed; the study file's own margins decide as the book's margins.yaml does."""
    copy = _study_copy(tmp_path / "copy")
    (tmp_path / "empty").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "sparsam", "study", str(copy), "--csv"], capture_output=True,
                         text=True, cwd=tmp_path / "empty", env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    assert cli.main(["study", str(REPO / "results" / "study" / "cpu_study.yaml"), "--csv",
                     "--margins", str(REPO / "book" / "margins.yaml")]) == 0
    assert out.stdout == capsys.readouterr().out  # the same comparisons, numbers and statuses as the book's
    assert list(os.scandir(tmp_path / "empty")) == []  # it writes nothing
    text = subprocess.run([sys.executable, "-m", "sparsam", "study", str(copy)], capture_output=True, text=True,
                          cwd=tmp_path / "empty", env=env, timeout=600).stdout.splitlines()
    assert text[1] == f"cost: the interleaved measurement of {(tmp_path / 'copy' / 'cost_registration.yaml').resolve().as_posix()}"
    bare = _study_copy(tmp_path / "bare", cost=False)
    assert cli.main(["study", str(bare)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[1].startswith("cost: not decided: no registered interleaved measurement")


def test_study_margins_are_the_files_own_or_the_ones_named(tmp_path, capsys):
    import yaml

    path = str(REPO / "results" / "study" / "cpu_study.yaml")
    assert "margins: no file" in one_line_error(capsys, ["study", path, "--margins", str(tmp_path / "none.yaml")])
    changed = yaml.safe_load((REPO / "book" / "margins.yaml").read_text())
    changed["claims"]["accuracy_ssam_vs_sam"]["margin"] = 1.0
    (tmp_path / "margins.yaml").write_text(yaml.safe_dump(changed))
    line = one_line_error(capsys, ["study", path, "--margins", str(tmp_path / "margins.yaml")])
    assert "claim 'accuracy_ssam_vs_sam': the study's pinned margin (margin) differs from" in line


def test_no_help_text_doubles_a_percent_sign():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    texts = [parser.format_help(), *(sub.format_help() for sub in commands.values())]
    assert all("%%" not in text for text in texts) and "95%" in commands["study"].format_help()


BLOCK = """
import sys
sys.modules.update(dict.fromkeys(sys.argv[1].split(",")))  # as if not installed: importing them raises
from sparsam.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("blocked, argv, extra", [
    ("pandas,torchvision", ["train", "--help"], "experiment"),
    ("torchvision", ["train", "--epochs", "1"], "experiment"),
    ("torchvision", ["train-grid", "grid.yaml"], "experiment"),
    ("scipy,statsmodels", ["study", "results/study/cpu_study.yaml"], "book"),
    ("pandas", ["study", "results/study/cpu_study.yaml"], "book"),  # the book extra brings pandas too
    ("papermill", ["sweep", "sweep.yaml"], "book"),
    ("pandas", ["flatness"], "book"),
])
def test_a_command_whose_extra_is_missing_ends_in_one_line_naming_it(blocked, argv, extra, tmp_path):
    (tmp_path / "grid.yaml").write_text("parameters: {epochs: 1}\ngrid: {seed: [0]}\n")
    (tmp_path / "sweep.yaml").write_text("notebook: x.ipynb\nparameters: {}\ngrid: {seed: [0]}\n")
    (tmp_path / "x.ipynb").write_text("{}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", BLOCK, blocked, *argv], capture_output=True, text=True,
                         cwd=REPO if argv[0] in ("study", "flatness") else tmp_path, env=env, timeout=300)
    assert (out.returncode, out.stderr) == (2, f"error: 'sparsam {argv[0]}' needs the {extra} extra: "
                                               f"pip install 'sparsam[{extra}]'\n"), out.stderr
    listed = subprocess.run([sys.executable, "-c", BLOCK, blocked, "--help"], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=300)
    assert listed.returncode == 0 and argv[0] in listed.stdout, listed.stderr  # the commands are still listed


def test_the_extras_modules_are_those_of_pyproject():
    """Each extra's packages (pyproject.toml) are named by the modules the command line maps to that extra."""
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    imported = {"pyyaml": "yaml", "pillow": "PIL", "jupyter-book": "myst_nb", "sphinx-mathjax-offline": None}
    for extra, modules in cli.EXTRA_MODULES.items():
        for requirement in declared[extra]:
            name = re.split(r"[<>=\[; ]", requirement)[0].lower()
            if name == "sparsam":
                continue
            module = imported.get(name, name.replace("-", "_"))
            assert module is None or module in modules, (extra, name)
