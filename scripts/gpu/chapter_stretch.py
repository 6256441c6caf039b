"""One chapter of the book executed through papermill on the GPU machine (issue 23): chapter 5 on CUDA.

Sent to the GPU machine as one command, the working tree travelling with the Imagenette pack in ``.carry/data``
and the wheels of ``scripts/gpu/wheels.txt`` in ``.whl`` (``bash scripts/gpu/fetch_wheels.sh``)::

    SPARSAM_GIT_COMMIT=<hash> python3 scripts/gpu/chapter_stretch.py --minutes 6

Chapter 5 is the chapter whose data fits beside the wheels: the CIFAR-10 pack (55.8 MB) and the tracked files
leave no room for them. The script installs the wheels into a scratch folder (``pip --target``, no index),
then executes ``notebooks/05_imagenet.ipynb`` with papermill in the quick profile, on CUDA in bf16, with three
seeds, its runs stored in a scratch store. Under ``$OUT`` it writes the executed notebook
(``05_imagenet-cuda.ipynb``), what that took (``chapter_stretch.json``: the wheels and their size, the
install's seconds, the execution's seconds and each cell's, the GPU, torch, the exit status) and the runs'
records (``chapter_runs.tar.gz``).

``--smoke`` runs the same on the CPU with this checkout's own papermill (no wheels), at the size of the
Imagenette test pack: a check of this script, nothing to keep.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "notebooks/05_imagenet.ipynb"
GPU_PARAMETERS = {"profile": "quick", "device": "cuda", "amp": "bf16", "seeds": "[0, 1, 2]"}
SMOKE_PARAMETERS = {"profile": "quick", "device": "cpu", "amp": "off", "seeds": "[0]", "dataset": "imagenette-tiny",
                    "n_train": "64", "n_test": "32", "epochs": "1", "batch_size": "32", "num_samples": "16"}


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def install_wheels(wheels: Path, target: Path) -> float:
    """The wheels of ``wheels`` installed into ``target`` without an index or their dependencies; the seconds."""
    files = sorted(str(path) for path in wheels.glob("*.whl"))
    if not files:
        raise FileNotFoundError(f"no wheels in {wheels}: run scripts/gpu/fetch_wheels.sh and carry .whl")
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(target), *files], check=True)
    return time.monotonic() - started


def papermill_command(output: Path, parameters: dict[str, str], store: Path) -> list[str]:
    """papermill on the chapter with ``parameters`` (``-p``, as a reader gives them), the records kept in
    ``store`` and the runs' checkpoints beside it (``store``/../runs), never in the checkout."""
    command = [sys.executable, "-m", "papermill", NOTEBOOK, str(output), "--cwd", "notebooks", "-k", "python3"]
    for name, value in {**parameters, "store": str(store), "runs_dir": str(Path(store).parent / "runs")}.items():
        command += ["-p", name, value]
    return command


def cell_seconds(notebook: Path) -> list[dict[str, Any]]:
    """Each code cell's execution seconds as papermill recorded them, with the cell's first line."""
    cells = json.loads(notebook.read_text())["cells"]
    return [{"cell": i, "first_line": "".join(cell["source"]).splitlines()[0][:80] if cell["source"] else "",
             "seconds": round(cell["metadata"].get("papermill", {}).get("duration") or 0.0, 2)}
            for i, cell in enumerate(cells) if cell["cell_type"] == "code"]


def machine(env: dict[str, str]) -> dict[str, Any]:
    """torch's version and the GPU's name, asked of a fresh interpreter (the one the kernel also uses)."""
    probe = ("import json, torch; print(json.dumps({'torch': torch.__version__, 'gpu': torch.cuda.get_device_name() "
             "if torch.cuda.is_available() else None}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr.strip()[-300:]}


def pack_records(store: Path, target: Path) -> int:
    """The store's run records (JSON, no checkpoints) into ``target``; how many."""
    records = sorted(store.glob("*.json")) if store.is_dir() else []
    with tarfile.open(target, "w:gz") as tar:
        for record in records:
            tar.add(record, arcname=record.name)
    return len(records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="the papermill execution's limit")
    parser.add_argument("--smoke", action="store_true", help="the same on the CPU, without the wheels, tiny")
    args = parser.parse_args(argv)
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="chapter-stretch-"))
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="chapter-"))
    env = {**os.environ, "SPARSAM_DATA": os.environ.get("SPARSAM_DATA") or str(ROOT / ".carry" / "data")}
    summary: dict[str, Any] = {"notebook": NOTEBOOK, "commit": os.environ.get("SPARSAM_GIT_COMMIT")}
    paths = [str(ROOT)]
    if not args.smoke:
        wheels = sorted((ROOT / ".whl").glob("*.whl"))
        summary["wheels"] = {"count": len(wheels), "megabytes": round(sum(w.stat().st_size for w in wheels) / 1e6, 2),
                             "install_seconds": round(install_wheels(ROOT / ".whl", scratch / "site"), 1)}
        paths.insert(0, str(scratch / "site"))
        log(f"wheels installed: {summary['wheels']}")
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    summary["machine"] = machine(env)
    parameters = SMOKE_PARAMETERS if args.smoke else GPU_PARAMETERS
    summary["parameters"] = parameters
    executed = out / ("05_imagenet-smoke.ipynb" if args.smoke else "05_imagenet-cuda.ipynb")
    command = papermill_command(executed, parameters, scratch / "store")
    log(" ".join(command))
    started = time.monotonic()
    try:
        summary["exit_status"] = subprocess.run(command, cwd=ROOT, env=env, timeout=args.minutes * 60).returncode
    except subprocess.TimeoutExpired:
        summary["exit_status"] = 124
    summary["execution_seconds"] = round(time.monotonic() - started, 1)
    summary["cells"] = cell_seconds(executed) if executed.exists() else []
    summary["records"] = pack_records(scratch / "store", out / "chapter_runs.tar.gz")
    (out / "chapter_stretch.json").write_text(json.dumps(summary, indent=1) + "\n")
    log(f"exit status {summary['exit_status']} after {summary['execution_seconds']} s, {summary['records']} records; "
        f"files in {out}: {sorted(p.name for p in out.iterdir())}")
    return summary["exit_status"]


if __name__ == "__main__":
    sys.exit(main())
