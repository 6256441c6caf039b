"""The published book: the GitHub workflow that builds and deploys it, its data step (scripts/fetch_data.py)
and the Binder environment behind its launch buttons. No internet here: torchvision's download is replaced
by one that writes a small CIFAR-10 folder in torchvision's format, and torchvision's md5 table by that
folder's sums."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import pickle
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torchvision
import yaml

from conftest import REPO
from launch_buttons import assert_buttons
from sparsam.experiment import data

WORKFLOW = REPO / ".github" / "workflows" / "book.yml"
FETCH = REPO / "scripts" / "fetch_data.py"
spec = importlib.util.spec_from_file_location("fetch_data", FETCH)
fetch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fetch)

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_BATCH = {**{f"data_batch_{i}": 2 for i in range(1, 6)}, "test_batch": 3}  # images in each file


class SmallCifar:
    """A CIFAR-10 folder in torchvision's layout (``cifar-10-batches-py/``: five training batches, a test batch
    and ``batches.meta``, pickled dicts of rows R-plane, G-plane, B-plane) with a few random images, and
    the images and labels it holds, as H×W×C arrays in file order."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.images = {name: rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8) for name, n in PER_BATCH.items()}
        self.labels = {name: rng.integers(0, 10, n).tolist() for name, n in PER_BATCH.items()}

    def write(self, root: Path) -> None:
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        for name, images in self.images.items():
            rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3 * 32 * 32)  # the format: channel planes
            batch = {"batch_label": name, "data": rows, "labels": self.labels[name],
                     "filenames": [f"{name}_{i}.png" for i in range(len(images))]}
            (folder / name).write_bytes(pickle.dumps(batch))
        (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": CLASSES, "num_vis": 3072}))

    def split(self, split: str) -> tuple[np.ndarray, list[int]]:
        names = [n for n in PER_BATCH if (n == "test_batch") == (split == "test")]
        return np.concatenate([self.images[n] for n in names]), sum((self.labels[n] for n in names), [])


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def cifar(tmp_path, monkeypatch):
    """The small CIFAR-10 (not yet on disk), torchvision's md5 table made its own, and torchvision's download
    replaced by one that writes it into the folder asked for; ``cifar.downloads`` lists the folders."""
    small = SmallCifar()
    small.write(tmp_path / "reference")
    folder = tmp_path / "reference" / "cifar-10-batches-py"
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[n, _md5(folder / n)] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, _md5(folder / n)] for n, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(folder / cls.meta["filename"])})
    small.downloads = []

    def download(url, download_root, filename=None, md5=None):
        assert url == cls.url and filename == cls.filename  # torchvision's own download of CIFAR-10
        small.downloads.append(Path(download_root))
        small.write(Path(download_root))

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", download)
    return small


def _assert_loader_reads(folder: Path, small: SmallCifar) -> None:
    """The package's loader reads exactly the small folder's images and labels, in file order."""
    for split in ("train", "test"):
        dataset, source = data.load_dataset("cifar10", split, root=folder)
        images, labels = small.split(split)
        assert np.array_equal(dataset.images.permute(0, 2, 3, 1).numpy(), images)
        assert dataset.labels.tolist() == labels and source.num_classes == 10 and source.sha256 is None


def test_the_small_folder_has_torchvisions_layout(cifar, tmp_path):
    cifar.write(tmp_path)
    assert sorted(p.name for p in (tmp_path / "cifar-10-batches-py").iterdir()) == sorted(
        [n for n, _ in torchvision.datasets.CIFAR10.train_list + torchvision.datasets.CIFAR10.test_list]
        + ["batches.meta"])
    dataset = torchvision.datasets.CIFAR10(str(tmp_path), train=False)
    assert dataset.classes == CLASSES and len(dataset) == PER_BATCH["test_batch"]
    assert np.array_equal(np.asarray(dataset[1][0]), cifar.images["test_batch"][1])  # a PIL image, H×W×C


def test_fetch_downloads_once_then_finds_the_folder_intact(cifar, tmp_path, capsys):
    folder = tmp_path / "data"
    assert fetch.main([str(folder)]) == 0
    assert cifar.downloads == [folder]
    first = capsys.readouterr().out.splitlines()
    assert first == [f"train: 10 images, 10 classes in {folder} (official CIFAR10 (torchvision format, md5-checked "
                     "by torchvision))", f"test: 3 images, 10 classes in {folder} (official CIFAR10 (torchvision "
                     "format, md5-checked by torchvision))"]
    assert fetch.main([str(folder)]) == 0 and fetch.main([str(folder), "--check"]) == 0
    assert cifar.downloads == [folder], "a second run downloads nothing"
    assert capsys.readouterr().out.splitlines() == first * 2
    _assert_loader_reads(folder, cifar)


def test_check_never_downloads_and_names_the_folder_it_finds_wrong(cifar, tmp_path, capsys):
    folder = tmp_path / "data"
    assert fetch.main([str(folder), "--check"]) == 2
    assert capsys.readouterr().err == f"error: {folder} is not a folder; run `python scripts/fetch_data.py " \
                                      f"{folder}` where there is internet\n"
    folder.mkdir()
    assert fetch.main([str(folder), "--check"]) == 2
    empty = capsys.readouterr().err
    assert empty.startswith(f"error: {folder} holds no intact CIFAR-10") and empty.count("\n") == 1
    cifar.write(folder)
    batch = folder / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:-1] + b"\0")  # one byte wrong: the md5 check fails
    assert fetch.main([str(folder), "--check"]) == 2
    assert capsys.readouterr().err == empty and cifar.downloads == []
    assert fetch.main([str(folder)]) == 0 and cifar.downloads == [folder], "without --check it downloads again"
    _assert_loader_reads(folder, cifar)


def test_a_failed_download_is_one_line_naming_the_folder(cifar, tmp_path, capsys, monkeypatch):
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure\nin name resolution")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    assert fetch.main([str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: downloading CIFAR10 into {tmp_path / 'data'} failed") and err.count("\n") == 1


def test_check_reads_the_pack_where_the_folder_holds_it(capsys):
    """The package reads the JPEG pack before torchvision's folder; --check says which it read."""
    root = os.environ.get("SPARSAM_DATA")
    if not root or not (Path(root) / data.PACKS["cifar10"]).is_file():
        pytest.skip("SPARSAM_DATA lacks cifar10-jpeg.npz")
    assert fetch.main([root, "--check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["train", "test"]
    assert out[0].startswith("train: 50000 images, 10 classes") and "JPEG re-encoding" in out[0]
    assert out[1].startswith("test: 10000 images, 10 classes")


# The workflow ---------------------------------------------------------------------------------------------

PROGRAMS = {"source", "bash", "python"}  # what the steps may run: the repository's scripts, through these


def commands(run: str) -> list[list[str]]:
    """The commands of a step's ``run:`` block, one a line, split as the shell splits words."""
    return [shlex.split(line) for line in run.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def problem(argv: list[str]) -> str | None:
    """Why the command ``argv`` of the workflow is not one of the repository's, or None where it is: a
    script of the repository through bash, source or python, or a module of it through ``python -m``."""
    if argv[0] not in PROGRAMS:
        return f"{argv[0]!r} is not one of {sorted(PROGRAMS)}"
    if any(word in {"|", "||", "&&", ";", ">", ">>", "<"} for word in argv):
        return "one command a line, without pipes or redirections"
    if argv[:2] == ["python", "-m"]:
        try:
            importlib.import_module(argv[2])
        except ImportError as error:
            return f"python -m {argv[2]}: {error}"
        return None
    if argv[1].startswith("-"):
        return f"{argv[0]} {argv[1]}: only a script of the repository or python -m"
    return None if (REPO / argv[1]).is_file() else f"{argv[1]} is not a file of the repository"


def test_problem_finds_what_is_not_the_repositorys():
    assert problem(["bash", "scripts/build_book.sh"]) is None and problem(["python", "-m", "sparsam"]) is None
    assert "is not one of" in problem(["pip", "install", "."])
    assert "only a script" in problem(["python", "-c", "from sparsam import data"])
    assert "No module named" in problem(["python", "-m", "sparsam.nowhere"])
    assert "not a file" in problem(["python", "scripts/fetch.py", "data"])
    assert "one command a line" in problem(["python", "scripts/fetch_data.py", "data", ">>", "log"])


def _steps() -> list[dict]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_every_step_runs_a_script_or_module_of_the_repository():
    steps = _steps()
    assert all(("run" in step) != ("uses" in step) for step in steps), "a step either runs or uses an action"
    assert all(step["uses"].startswith("actions/") for step in steps if "uses" in step)
    ran = [argv for step in steps if "run" in step for argv in commands(step["run"])]
    assert [argv for argv in ran if problem(argv)] == [], [problem(argv) for argv in ran if problem(argv)]
    assert ["bash", "scripts/build_book.sh"] in ran, "the book is built by the README's command"


def test_the_data_step_fills_the_folder_the_build_reads(cifar, tmp_path, monkeypatch, capsys):
    """Runs the workflow's data step as the runner would (its python commands; ``source scripts/env.sh`` is
    the .venv this test already runs in), with SPARSAM_DATA at a local folder, then the package's loader there."""
    build = yaml.safe_load(WORKFLOW.read_text())["jobs"]["build"]
    assert build["env"]["SPARSAM_DATA"] == "${{ github.workspace }}/data"  # the build's data folder, every step
    assert not any("SPARSAM_DATA" in step.get("env", {}) for step in build["steps"])
    runs = [step.get("run", "") for step in build["steps"]]
    fetching = [i for i, run in enumerate(runs) if "scripts/fetch_data.py" in run]
    building = [i for i, run in enumerate(runs) if "scripts/build_book.sh" in run]
    assert len(fetching) == 1 and len(building) == 1 and fetching[0] < building[0], "one data step, before the build"
    ran = commands(runs[fetching[0]])
    assert ran[0] == ["source", "scripts/env.sh"] and all(argv[:2] == ["python", "scripts/fetch_data.py"]
                                                         for argv in ran[1:])
    folder = tmp_path / "workspace" / "data"
    monkeypatch.setenv("SPARSAM_DATA", str(folder))
    for _ in range(2):  # the step run twice, as on a re-run of the workflow
        for argv in ran[1:]:
            monkeypatch.setattr(sys, "argv", [os.path.expandvars(word) for word in argv[1:]])
            with pytest.raises(SystemExit) as exit:
                runpy.run_path(str(REPO / argv[1]), run_name="__main__")
            assert exit.value.code == 0, capsys.readouterr().err
    assert cifar.downloads == [folder]
    _assert_loader_reads(folder, cifar)


def test_the_readme_says_where_the_book_is_published():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    owner, name = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+)", config["repository"]["url"]).groups()
    readme = (REPO / "README.md").read_text()
    assert f"https://{owner}.github.io/{name}/" in readme and ".github/workflows/book.yml" in readme


# Binder ---------------------------------------------------------------------------------------------------

def _env_sh_pins() -> dict[str, str]:
    return dict(re.findall(r'"(torch|torchvision)==([^"]+)"', (REPO / "scripts" / "env.sh").read_text()))


def test_environment_yml_installs_what_the_scripts_install_with_cpu_torch_from_pip():
    """Binder (repo2docker) builds the launched session from environment.yml at the root: the python of the
    workflow, torch and torchvision pinned as scripts/env.sh pins them (CPU wheels, from pip), and the package
    itself from the checkout with the extras the scripts install (a local requirement, which repo2docker
    installs after copying the repository)."""
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    setup = next(step for step in _steps() if "actions/setup-python" in step.get("uses", ""))
    assert f"python={setup['with']['python-version']}" in conda and "pip" in conda
    assert not [d for d in conda if re.match(r"(py)?torch", d)], "torch from pip, not conda"
    build = yaml.safe_load(WORKFLOW.read_text())["jobs"]["build"]
    assert f"--extra-index-url {build['env']['PIP_EXTRA_INDEX_URL']}" in pip
    assert {m.group(1): m.group(2) for d in pip if (m := re.fullmatch(r"(torch|torchvision)==(\S+)", d))} == \
        _env_sh_pins()
    local = [d for d in pip if d.startswith(("-e .", "."))]
    extras = re.search(r'-e "\.\[([^\]]+)\]"', (REPO / "scripts" / "env.sh").read_text()).group(1)
    assert local == [f"-e .[{extras}]"] and (REPO / "pyproject.toml").is_file()


def test_binder_fetches_the_data_once_and_points_the_notebooks_at_it():
    """postBuild runs once when Binder builds the image, start at every launch (both executable)."""
    post_build, start = REPO / "postBuild", REPO / "start"
    assert os.access(post_build, os.X_OK) and os.access(start, os.X_OK)
    ran = [argv for argv in commands(post_build.read_text()) if argv[0] in PROGRAMS]
    assert ran == [["python", "scripts/fetch_data.py", "data"]] and problem(ran[0]) is None
    assert 'export SPARSAM_DATA="$(cd "$(dirname "$0")" && pwd)/data"' in start.read_text()
    assert start.read_text().rstrip().endswith('exec "$@"')


def test_a_notebook_page_has_launch_buttons_beside_the_download_and_repository_buttons(tmp_path):
    """A one-page book with the repository's _config.yml (execution off: a second or two); the book build's
    test checks the same on every chapter of the real build."""
    pytest.importorskip("jupyter_book")
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    book = tmp_path / "book"
    (book / "notebooks").mkdir(parents=True)
    (book / "book").mkdir()
    shutil.copy(REPO / config["bibtex_bibfiles"][0], book / config["bibtex_bibfiles"][0])
    (book / "_config.yml").write_text(yaml.safe_dump({**config, "execute": {"execute_notebooks": "off"}}))
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/01_page\n")
    (book / "intro.md").write_text("# Intro\n")
    cell = {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": ["1 + 1"]}
    notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# A page\n"]}, cell],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    (book / "notebooks" / "01_page.ipynb").write_text(json.dumps(notebook))
    jupyter_book = Path(sys.executable).with_name("jupyter-book")  # this interpreter's, on PATH or not
    build = subprocess.run([str(jupyter_book), "build", str(book), "-W"], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert_buttons(book / "_build" / "html", "notebooks/01_page.ipynb", config)
