"""The first GPU stretch of the GPU study (issue 23): check the fast path, benchmark it, run the pilot.

Sent to the GPU machine as one command (the working tree travels; the CIFAR-10 pack in ``.carry/data``)::

    SPARSAM_GIT_COMMIT=<hash> python3 scripts/gpu/pilot_stretch.py --minutes 8.5

Everything it makes goes under ``$OUT``, in four files: the output of every step (``stretch.log``), the
benchmark's record (``bench_gpu_train.json``), the rule's outcome (``fast_path.json``), and ``pilot.tar``,
which holds per chunk the archive of its records and its summary (``pilot_A.tar.gz``,
``pilot_A.chunk.json``, ...). In order, each step inside what is left of ``--minutes``:

1. the CUDA tests of ``tests/experiment/test_fast_path.py``;
2. ``benchmarks/bench_gpu_train.py`` (fewer rounds than its default), which also measures whether several
   runs at once pay;
3. the fast-path rule of ``results/gpu_study/gpu_study.yaml`` (``fast_path.rule``): the pilot's grids keep
   the fast path, or run with ``capture: off`` (and ``amp: off`` if a cosine is below 0.99);
4. the pilot, candidate A then B, each as one ``train-grid --budget-minutes`` chunk, with as many runs at
   once as measured fastest and a per-run estimate from the benchmark's time per step.

``--study results/imagenet_study/imagenet_study.yaml --fast-path results/gpu_study/fast_path.json`` runs the
ImageNet study's pilot instead (with the Imagenette pack in ``.carry/data``, a call of its own): the fast
path as the GPU study's first stretch decided it, no benchmark, and each candidate's first run (SGD, seed 100)
alone first, whose time then estimates the others.

``--smoke`` runs the same steps on the CPU at a tiny size (a check of this script, nothing to keep).
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

import yaml

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "results" / "gpu_study" / "gpu_study.yaml"
FAST_ROW = "+ CUDA graph (fast path)"
START_SECONDS = 45.0  # a run's start beyond its steps: decoding the data, cuDNN's search, the capture


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def run(command: list[str], out: Path, seconds: float, env: dict[str, str]) -> int:
    """``command`` with its output appended to ``out``; its exit status, 124 if it ran past ``seconds``."""
    log(f"{' '.join(command)}  (at most {seconds:.0f} s)")
    with out.open("a") as sink:
        sink.write(f"\n===== {' '.join(command)}\n")
        sink.flush()
        try:
            return subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, timeout=max(seconds, 1.0),
                                  cwd=ROOT, env=env).returncode
        except subprocess.TimeoutExpired:
            return 124


def fast_path_rule(tests_rc: int, bench: dict[str, Any] | None) -> dict[str, Any]:
    """The declared rule: keep the fast path, or which of its parts the pilot turns off, and why."""
    reasons = []
    if tests_rc != 0:
        reasons.append(f"the CUDA tests of the fast path failed (exit status {tests_rc})")
    faith = (bench or {}).get("faithfulness", {})
    cosines = {f"{name} {kind}": faith[name][kind] for name in ("SAM", "SSAM-F 0.5") if name in faith
               for kind in ("grad_cosine", "eps_cosine")}
    distances = {name: row["relative_distance"] for name, row in faith.get("graph_vs_eager", {}).items()}
    if bench is None or len(cosines) < 4 or len(distances) < 4:
        reasons.append("the benchmark did not measure every faithfulness check")
    low = [k for k, v in cosines.items() if v < 0.99]
    far = [k for k, v in distances.items() if v > 0.01]
    if low:
        reasons.append(f"cosines below 0.99: {low}")
    if far:
        reasons.append(f"captured step more than 1% from the eager one: {far}")
    changes: dict[str, Any] = {}
    if reasons:
        changes["capture"] = "off"
    if low or bench is None:
        changes["amp"] = "off"
    return {"keep_fast_path": not reasons, "changes": changes, "reasons": reasons, "cosines": cosines,
            "graph_vs_eager": distances}


def concurrency(bench: dict[str, Any] | None) -> tuple[int, dict[int, float]]:
    """Runs at once and each one's images/s for SAM: the count whose summed rate beats one run by 10%."""
    rows = [r for r in (bench or {}).get("processes", []) if r["optimizer"] == "SAM"]
    each = {r["processes"]: min(r["images_per_s_each"]) for r in rows}
    total = {r["processes"]: r["images_per_s_total"] for r in rows}
    if 1 not in total:
        return 1, each
    best = max(total, key=lambda n: total[n])
    return (best if total[best] > 1.1 * total[1] else 1), each


def run_minutes(grid: dict[str, Any], bench: dict[str, Any] | None, jobs: int, each: dict[int, float],
                smoke: bool) -> float:
    """A run's expected minutes for the slowest configuration of ``grid`` (SAM): its epochs at the rate one of
    ``jobs`` concurrent SAM runs measured (scaled by width² from the benchmark's width), plus the start."""
    if smoke:
        return 1.0
    line = grid["grid"] if isinstance(grid["grid"], dict) else grid["grid"][0]
    epochs, width = line["epochs"][0], line["width"][0]
    rate = each.get(jobs)
    if rate is None:  # no concurrency measured: the single fast SAM row, else a conservative guess
        rows = [r for r in (bench or {}).get("throughput", []) if r["optimizer"] == "SAM" and r["path"] == FAST_ROW]
        rate = rows[0]["images_per_s"] / jobs if rows else 5000.0 / jobs
    bench_width = (bench or {}).get("args", {}).get("width", 64)
    rate *= min(4.0, (bench_width / width) ** 2) ** 0.5  # a narrower net runs faster, less than its FLOPs say
    return (epochs * (50_000 + 10_000 / 4) / rate + START_SECONDS) / 60


def smoke_grid(grid: dict[str, Any]) -> dict[str, Any]:
    """``grid`` at a size the CPU runs in seconds: the same optimizers, two seeds, one epoch, a tiny network and
    data of the same kind (CIFAR-10 or the Imagenette test pack)."""
    fixed = dict(grid["parameters"], device="cpu", amp="off", capture="off", cudnn_benchmark=False, epochs=1,
                 eval_every=1, num_samples=32, num_workers=0)
    if fixed["dataset"] == "cifar10":
        fixed.update(model="resnet-small", width=4, n_train=256, n_test=128)
    else:
        fixed.update(model="resnet50-tiny", dataset="imagenette-tiny", batch_size=64)
    lines = grid["grid"] if isinstance(grid["grid"], list) else [grid["grid"]]
    return {"parameters": fixed, "grid": [{"optimizer": line["optimizer"], "seed": [100, 101]} for line in lines[:1]]}


def bundle(out: Path) -> Path:
    """The pilot's archives and chunk summaries under ``out`` joined into one ``pilot.tar`` (the files that come
    back from the machine are few), the parts removed."""
    parts = sorted([*out.glob("pilot_*.tar.gz"), *out.glob("pilot_*.chunk.json")])
    target = out / "pilot.tar"
    with tarfile.open(target, "w") as tar:
        for part in parts:
            tar.add(part, arcname=part.name)
    for part in parts:
        part.unlink()
    return target


def calibrated_minutes(store: Path, first_run: str, factor: float = 2.2) -> float:
    """A SAM run's expected minutes from the calibration run (the grid's first, an SGD run) just finished:
    ``factor`` times its wall time (two passes a step, plus the mask's own work for SSAM)."""
    record = json.loads((store / f"{first_run}.json").read_text())["summary"]
    return factor * (record["wall_seconds_this_process"] + START_SECONDS) / 60


def check_fast_path(args: argparse.Namespace, out: Path, env: dict[str, str], left) -> tuple[dict[str, Any], Any]:
    """Steps 1 to 3: the CUDA tests, the benchmark and the declared rule (or the rule's committed outcome)."""
    if args.fast_path:
        rule = {**json.loads((ROOT / args.fast_path).read_text()), "from": args.fast_path}
        (out / "fast_path.json").write_text(json.dumps(rule, indent=1) + "\n")
        log(f"fast path as decided in {args.fast_path}: kept {rule['keep_fast_path']}, {rule['jobs']} run(s) at once")
        return rule, None
    tests_rc = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                    "tests/experiment/test_fast_path.py"], out / "stretch.log", min(120.0, left()), env)
    bench_file = out / "bench_gpu_train.json"
    bench_args = (["--device", "cpu", "--quick"] if args.smoke
                  else ["--rounds", "3", "--steps", "30", "--processes", "1", "2", "4",
                        "--process-optimizers", "SAM"])
    bench_rc = run([sys.executable, "benchmarks/bench_gpu_train.py", *bench_args, "--out", str(bench_file)],
                   out / "stretch.log", min(270.0, left() - 120), env)
    bench = json.loads(bench_file.read_text()) if bench_rc == 0 and bench_file.exists() else None
    rule = fast_path_rule(0 if args.smoke else tests_rc, bench)
    if args.smoke:  # the CPU has no fast path: the rule was computed for the record, the grids run on the CPU
        rule["smoke"] = True
    jobs, each = concurrency(bench)
    rule.update(jobs=jobs, each=each, tests_exit_status=tests_rc, bench_exit_status=bench_rc)
    (out / "fast_path.json").write_text(json.dumps(rule, indent=1) + "\n")
    log(f"fast path kept: {rule['keep_fast_path']} {rule['reasons']}; {jobs} run(s) at once")
    return rule, bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.5, help="the whole stretch's command, start to end")
    parser.add_argument("--study", default=str(STUDY.relative_to(ROOT)),
                        help="the study whose pilot runs (default: the GPU study)")
    parser.add_argument("--fast-path", default=None, metavar="FILE",
                        help="the fast-path rule's outcome committed from an earlier stretch (fast_path.json): no "
                             "tests or benchmark here; each candidate's first run (SGD) then calibrates the others")
    parser.add_argument("--smoke", action="store_true", help="the same steps on the CPU at a tiny size")
    args = parser.parse_args(argv)
    started = time.monotonic()
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="stretch-"))
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "SPARSAM_DATA": os.environ.get("SPARSAM_DATA") or str(ROOT / ".carry" / "data")}
    left = lambda: args.minutes * 60 - (time.monotonic() - started)  # noqa: E731
    rule, bench = check_fast_path(args, out, env, left)
    jobs, each = rule["jobs"], {int(k): v for k, v in rule.get("each", {}).items()}

    study = yaml.safe_load((ROOT / args.study).read_text())
    scratch = Path(tempfile.mkdtemp(prefix="pilot-grids-"))
    store = scratch / "store" if args.smoke else ROOT / study["pilot"]["store"]
    for name, grid_file in study["pilot"]["grids"].items():
        grid = yaml.safe_load((ROOT / grid_file).read_text())
        grid["parameters"].update(rule["changes"])
        if args.smoke:
            grid = smoke_grid(grid)
        path = scratch / f"pilot_{name}.yaml"
        path.write_text(yaml.safe_dump(grid))

        def chunk(grid_file: Path, pack: str, minutes: float) -> None:
            """One ``train-grid --budget-minutes`` chunk of ``grid_file`` in what is left, packed into ``pack``."""
            budget = (left() - 30) / 60  # leave half a minute for packing and the copy back
            run([sys.executable, "-m", "sparsam", "train-grid", str(grid_file), "--store", str(store),
                 "--runs-dir", str(scratch / "runs"), "--jobs", str(jobs), "--pack", str(out / pack),
                 "--budget-minutes", f"{budget:.2f}", "--run-minutes", f"{minutes:.2f}"],
                out / "stretch.log", budget * 60 + 20, env)

        if bench is not None or args.smoke and not args.fast_path:
            minutes = run_minutes(grid, bench, jobs, each, args.smoke)
        else:  # calibrate: the grid's first configuration alone, then the others estimated from its record
            from sparsam.experiment.grid import load_train_grid  # the package is on the path (ROOT)

            first = load_train_grid(path)[0]
            one = scratch / f"pilot_{name}_first.yaml"
            one.write_text(yaml.safe_dump({"parameters": first.to_dict(), "grid": {}}))
            chunk(one, f"pilot_{name}_first.tar.gz", min((left() - 30) / 60, 4.0) - 0.5)
            if not (store / f"{first.run_id()}.json").exists():
                log(f"candidate {name}: the calibration run did not finish; nothing more started")
                continue
            minutes = calibrated_minutes(store, first.run_id())
        if (left() - 30) / 60 < minutes:
            log(f"candidate {name}: {(left() - 30) / 60:.1f} min left, a run needs ~{minutes:.1f}: not started")
            continue
        chunk(path, f"pilot_{name}.tar.gz", minutes)
    bundle(out)
    log(f"done in {time.monotonic() - started:.0f} s; files in {out}: {sorted(p.name for p in out.iterdir())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
