"""Chapter 5 through papermill on the GPU machine (scripts/gpu/chapter_stretch.py), checked on the CPU."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tarfile
import time

import pytest

from conftest import REPO, data_file

spec = importlib.util.spec_from_file_location("chapter_stretch", REPO / "scripts/gpu/chapter_stretch.py")
chapter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(chapter)
TRAVEL_LIMIT = 64 * 2**20  # bytes of the working tree that travel to the GPU machine in one call


def requirements() -> list[str]:
    lines = (REPO / "scripts/gpu/wheels.txt").read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_every_wheel_is_pinned_once_because_two_versions_of_one_stop_the_whole_install():
    names = []
    for requirement in requirements():
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([0-9][0-9A-Za-z.]*)", requirement)
        assert match, f"not pinned as name==version: {requirement!r}"
        names.append(re.sub(r"[-_.]+", "-", match.group(1)).lower())
    assert len(names) == len(set(names)), "a package is named twice"
    assert {"papermill", "nbclient", "ipykernel", "myst-nb"} <= set(names)


def test_the_tracked_files_leave_room_for_each_calls_data_pack():
    """The CIFAR-10 call carries its pack alone; the chapter's call carries Imagenette and the wheels (5.3 MB
    when measured, budgeted here at 6 MB)."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    size = sum((REPO / name).stat().st_size for name in tracked.decode().split("\0") if (REPO / name).is_file())
    assert size + data_file("cifar10-jpeg.npz").stat().st_size < TRAVEL_LIMIT
    assert size + data_file("imagenette-72px.tar.gz").stat().st_size + 6e6 < TRAVEL_LIMIT


def test_no_wheels_is_a_one_line_error_that_says_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="fetch_wheels.sh"):
        chapter.install_wheels(tmp_path, tmp_path / "site")


def test_the_papermill_command_passes_every_parameter_and_the_store(tmp_path):
    command = chapter.papermill_command(tmp_path / "out.ipynb", chapter.GPU_PARAMETERS, tmp_path / "store")
    pairs = {command[i + 1]: command[i + 2] for i, word in enumerate(command) if word == "-p"}
    assert pairs == {**chapter.GPU_PARAMETERS, "store": str(tmp_path / "store"), "runs_dir": str(tmp_path / "runs")}
    assert command[3:5] == [chapter.NOTEBOOK, str(tmp_path / "out.ipynb")]


def test_cell_seconds_and_the_records_archive(tmp_path):
    notebook = {"cells": [{"cell_type": "markdown", "source": ["# t"], "metadata": {}},
                          {"cell_type": "code", "source": ["x = 1\n", "y = 2"],
                           "metadata": {"papermill": {"duration": 1.234}}},
                          {"cell_type": "code", "source": [], "metadata": {}}]}
    (tmp_path / "nb.ipynb").write_text(json.dumps(notebook))
    assert chapter.cell_seconds(tmp_path / "nb.ipynb") == [{"cell": 1, "first_line": "x = 1", "seconds": 1.23},
                                                             {"cell": 2, "first_line": "", "seconds": 0.0}]
    store = tmp_path / "store"
    store.mkdir()
    (store / "a.json").write_text("{}")
    (store / "a.pt").write_bytes(b"weights")
    assert chapter.pack_records(store, tmp_path / "r.tar.gz") == 1
    with tarfile.open(tmp_path / "r.tar.gz") as tar:
        assert tar.getnames() == ["a.json"]


def test_the_smoke_run_executes_chapter_5_and_says_what_it_took(tmp_path):
    started = time.time()
    done = subprocess.run([sys.executable, "scripts/gpu/chapter_stretch.py", "--smoke", "--minutes", "5"],
                          cwd=REPO, env={**chapter.os.environ, "OUT": str(tmp_path)}, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((tmp_path / "chapter_stretch.json").read_text())
    assert summary["exit_status"] == 0 and summary["records"] == 3  # SGD, SAM and SSAM-F for one seed
    assert summary["cells"] and sum(c["seconds"] for c in summary["cells"]) <= summary["execution_seconds"]
    assert (tmp_path / "05_imagenet-smoke.ipynb").exists()
    touched = [p for p in (REPO / "runs").glob("*imagenette-tiny*") if p.stat().st_mtime >= started]
    assert touched == []  # the runs went to the scratch folder beside the store, not into the checkout
