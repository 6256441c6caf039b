"""The package outside its checkout: a wheel built from the sources alone, imported with torch and numpy
only, and the commands run from an empty folder writing there and nowhere else (sparsam.experiment.store.Workspace).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO, data_file
from sparsam.experiment.config import TrainConfig
from sparsam.experiment.store import Workspace

TINY = dict(model="resnet-small", width=4, n_train=64, n_test=32, epochs=1, batch_size=32)
# Not dependencies of `import sparsam` (the extras' packages): none may be importable in the bare install.
EXTRAS_ONLY = ("pandas", "scipy", "yaml", "submitit", "torchvision", "tqdm", "matplotlib")
# One SSAM-F step on a tiny model, run by the installed wheel and by the checkout: the same numbers.
STEP = """
import torch
import sparsam
from torch import nn
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
mask = sparsam.FisherMask(model, [(x, y)], sparsity=0.5, num_samples=8, update_every=1, update_unit="steps")
opt = sparsam.SSAM(model.parameters(), torch.optim.SGD, rho=0.1, mask=mask, lr=0.1)
def closure():
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss
before = [p.detach().clone() for p in model.parameters()]
loss = opt.step(closure)
stepped = [p.detach().tolist() for p in model.parameters()]
changed = all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
"""


def _sources(folder: Path) -> Path:
    """A copy of what the wheel is built from (pyproject.toml, README.md, sparsam/), so the build leaves the
    checkout as it is."""
    shutil.copy(REPO / "pyproject.toml", folder / "pyproject.toml")
    shutil.copy(REPO / "README.md", folder / "README.md")
    shutil.copytree(REPO / "sparsam", folder / "sparsam", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = _sources(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(src)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    [built] = out.glob("sparsam-*.whl")
    return built


def _install(wheel: Path, target: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    return target


def _requirement_closure(roots: tuple[str, ...]) -> list[metadata.Distribution]:
    """The installed distributions of ``roots`` and, recursively, of their requirements that apply here
    (markers evaluated, no extras); a requirement not installed here is left out."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if canonicalize_name(name) in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[canonicalize_name(name)] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return list(found.values())


def _links(folder: Path, distributions: list[metadata.Distribution]) -> Path:
    """A folder of symlinks to the top-level modules and metadata of ``distributions``."""
    folder.mkdir()
    for dist in distributions:
        for top in sorted({f.parts[0] for f in dist.files or []}):
            if top in ("..", "__pycache__") or top.endswith(".pth") or (folder / top).exists():
                continue
            located = Path(dist.locate_file(top))
            if located.exists():
                (folder / top).symlink_to(located)
    return folder


def test_the_wheel_imports_and_steps_with_torch_and_numpy_only(tmp_path, wheel):
    site = _install(wheel, tmp_path / "site")
    roots = ("torch", "numpy")
    distributions = _requirement_closure(roots)
    names = {canonicalize_name(d.metadata["Name"]) for d in distributions}
    assert {"torch", "numpy"} <= names and not names & {canonicalize_name(n) for n in ("pandas", "scipy", "pyyaml")}
    links = _links(tmp_path / "links", distributions)
    code = f"""
import importlib.util, json, sys
sys.path[:0] = [{str(site)!r}, {str(links)!r}]
{STEP}
print(json.dumps({{"file": sparsam.__file__, "path": sys.path, "stepped": stepped, "changed": changed,
                  "importable": [n for n in {EXTRAS_ONLY!r} if importlib.util.find_spec(n) is not None],
                  "loaded": sorted(n for n in sys.modules if n.split(".")[0] in {EXTRAS_ONLY!r})}}))
"""
    # -I: no PYTHONPATH, no user site; -S: not even the venv's site-packages. Only the two folders above.
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1"}, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert Path(result["file"]).is_relative_to(site)
    assert not [p for p in result["path"] if "site-packages" in p], result["path"]
    assert result["importable"] == [] and result["loaded"] == []
    assert result["changed"]
    here: dict = {}
    exec(STEP, here)  # the checkout's sparsam, in this process: the installed wheel computes the same step
    assert result["stepped"] == here["stepped"]


def test_the_bare_wheels_command_line_lists_its_commands_and_names_a_missing_extra(tmp_path, wheel):
    """Installed with torch and numpy only (no extra), ``python -m sparsam --help`` lists the commands, and a
    command ends in one line naming the extra it needs (issue 29), not in a traceback."""
    site = _install(wheel, tmp_path / "site")
    links = _links(tmp_path / "links", _requirement_closure(("torch", "numpy")))
    code = f"import runpy, sys; sys.path[:0] = [{str(site)!r}, {str(links)!r}]; " \
           "sys.argv = ['sparsam', *sys.argv[1:]]; runpy.run_module('sparsam', run_name='__main__')"

    def sparsam(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-I", "-S", "-c", code, *argv], capture_output=True, text=True,
                              cwd=tmp_path, env={"PATH": os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1"},
                              timeout=300)

    listed = sparsam("--help")
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in ("train", "train-grid", "sweep", "flatness", "study", "register"))
    for argv, extra in ((["train", "--help"], "experiment"), (["train", "--epochs", "1"], "experiment"),
                        (["study", "x.yaml"], "book"), (["train-grid", "grid.yaml"], "experiment")):
        out = sparsam(*argv)
        assert (out.returncode, out.stderr) == (2, f"error: 'sparsam {argv[0]}' needs the {extra} extra: "
                                                   f"pip install 'sparsam[{extra}]'\n"), (argv, out.stderr)


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")} if folder.exists() else {}


@pytest.mark.slow
def test_the_commands_write_under_the_current_folder_and_nothing_in_the_checkout(tmp_path, wheel):
    data_file("cifar10-jpeg.npz")
    target = _install(wheel, tmp_path / "target")
    work = tmp_path / "work"
    work.mkdir()
    checkout = {name: _snapshot(REPO / name) for name in ("runs", "results/runs")}
    env = {k: v for k, v in os.environ.items() if k not in ("SPARSAM_RUNS", "SPARSAM_STORE")}
    env.update(PYTHONPATH=str(target), OMP_NUM_THREADS="1")

    def sparsam(*argv: str) -> subprocess.CompletedProcess:
        out = subprocess.run([sys.executable, "-m", "sparsam", *argv], cwd=work, env=env, capture_output=True,
                             text=True, timeout=900)
        assert out.returncode == 0, out.stderr
        return out

    where = subprocess.run([sys.executable, "-c", "import sparsam; print(sparsam.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(target)
    one = TrainConfig(**TINY, optimizer="sgd")
    arguments = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    summary = json.loads(sparsam("train", *arguments, "--optimizer", "sgd", "--no-progress").stdout.splitlines()[-1])
    assert summary["run_id"] == one.run_id()
    (work / "grid.yaml").write_text(yaml.safe_dump({"parameters": TINY, "grid": {"optimizer": ["sgd", "sam"],
                                                                                 "seed": [1]}}))
    sparsam("train-grid", "grid.yaml", "--executor", "local", "--jobs", "2")
    grid = [TrainConfig(**TINY, optimizer=o, seed=1) for o in ("sgd", "sam")]

    assert sorted(p.name for p in work.iterdir()) == ["grid.yaml", "results", "runs"]
    assert sorted(p.name for p in (work / "runs").iterdir()) == sorted(c.run_id() for c in [one, *grid])
    assert all((work / "runs" / c.run_id() / "summary.json").is_file() for c in [one, *grid])
    assert sorted(p.name for p in (work / "results" / "runs").iterdir()) == sorted(f"{c.run_id()}.json" for c in grid)
    for config in grid:
        record = json.loads((work / "results" / "runs" / f"{config.run_id()}.json").read_text())
        assert record["job"]["executor"] == "local" and record["summary"]["config"] == config.to_dict()
        assert record["summary"]["provenance"]["git_commit"] is None  # an installed wheel has no commit of its own
    # nothing of these commands in the checkout (other tests may write there meanwhile: compare what is ours)
    ours = {c.run_id() for c in [one, *grid]}
    now = {name: _snapshot(REPO / name) for name in ("runs", "results/runs")}
    for name in ("runs", "results/runs"):
        added = {Path(path).parts[0].removesuffix(".json") for path, mtime in now[name].items()
                 if checkout[name].get(path) != mtime}
        assert not added & ours, f"{name} of the checkout got {sorted(added & ours)}"


def test_the_workspace_takes_arguments_then_the_environment_then_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARSAM_RUNS", raising=False)
    monkeypatch.delenv("SPARSAM_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    here = Path.cwd()
    assert Workspace.resolve() == Workspace(here / "runs", here / "results" / "runs")
    monkeypatch.setenv("SPARSAM_RUNS", "~/elsewhere")
    monkeypatch.setenv("SPARSAM_STORE", str(tmp_path / "records"))
    assert Workspace.resolve() == Workspace(Path.home() / "elsewhere", tmp_path / "records")
    assert Workspace.resolve("r", "s") == Workspace(here / "r", here / "s")  # relative to the current folder
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    monkeypatch.delenv("SPARSAM_RUNS")
    assert Workspace.resolve().runs == Path.cwd() / "runs"  # read at the call, not at import
    with pytest.raises(dataclasses.FrozenInstanceError):
        Workspace.resolve().runs = tmp_path


def test_the_command_line_needs_submitit_only_for_the_local_and_slurm_executors(tmp_path):
    code = """
import sys
sys.modules["submitit"] = None  # as if the cluster extra were not installed: importing it raises ImportError
from sparsam import cli
from sparsam.experiment import grid, jobs, sweep
try:
    jobs.make_executor(jobs.ExecutorOptions("local"), sys.argv[1])
except ImportError as error:
    print(error)
"""
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith('executors local and slurm need submitit: pip install "sparsam[cluster]"')
