"""The first GPU stretch of the GPU study (issue 23): check the fast path, benchmark it, run the pilot.

Sent to the GPU machine as one command (the working tree travels; the CIFAR-10 pack in ``.carry/data``)::

    SPARSAM_GIT_COMMIT=<hash> python3 scripts/gpu/pilot_stretch.py --minutes 8.5

Everything it makes goes under ``$OUT``, in seven files: the output of every step (``stretch.log``), the
benchmark's record (``bench_gpu_train.json``), the rule's outcome (``fast_path.json``), and per pilot
candidate the archive of its records and the chunk's summary (``pilot_A.tar.gz``, ``pilot_A.chunk.json``,
...). In order, each step inside what is left of ``--minutes``:

1. the CUDA tests of ``tests/experiment/test_fast_path.py``;
2. ``benchmarks/bench_gpu_train.py`` (fewer rounds than its default), which also measures whether several
   runs at once pay;
3. the fast-path rule of ``results/gpu_study/gpu_study.yaml`` (``fast_path.rule``): the pilot's grids keep
   the fast path, or run with ``capture: off`` (and ``amp: off`` if a cosine is below 0.99);
4. the pilot, candidate A then B, each as one ``train-grid --budget-minutes`` chunk, with as many runs at
   once as measured fastest and a per-run estimate from the benchmark's time per step.

``--smoke`` runs the same steps on the CPU at a tiny size (a check of this script, nothing to keep).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.5, help="the whole stretch's command, start to end")
    parser.add_argument("--smoke", action="store_true", help="the same steps on the CPU at a tiny size")
    args = parser.parse_args(argv)
    started = time.monotonic()
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="stretch-"))
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "SPARSAM_DATA": os.environ.get("SPARSAM_DATA") or str(ROOT / ".carry" / "data")}
    left = lambda: args.minutes * 60 - (time.monotonic() - started)  # noqa: E731

    tests_rc = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                    "tests/experiment/test_fast_path.py"],
                   out / "stretch.log", min(120.0, left()), env)
    bench_file = out / "bench_gpu_train.json"
    bench_args = (["--device", "cpu", "--quick"] if args.smoke
                  else ["--rounds", "3", "--steps", "30", "--processes", "1", "2", "4"])
    bench_rc = run([sys.executable, "benchmarks/bench_gpu_train.py", *bench_args, "--out", str(bench_file)],
                   out / "stretch.log", min(240.0, left() - 120), env)
    bench = json.loads(bench_file.read_text()) if bench_rc == 0 and bench_file.exists() else None
    rule = fast_path_rule(0 if args.smoke else tests_rc, bench)
    if args.smoke:  # the CPU has no fast path: the rule was computed for the record, the grids run on the CPU
        rule["smoke"] = True
    jobs, each = concurrency(bench)
    rule.update(jobs=jobs, tests_exit_status=tests_rc, bench_exit_status=bench_rc)
    (out / "fast_path.json").write_text(json.dumps(rule, indent=1) + "\n")
    log(f"fast path kept: {rule['keep_fast_path']} {rule['reasons']}; {jobs} run(s) at once")

    study = yaml.safe_load(STUDY.read_text())
    scratch = Path(tempfile.mkdtemp(prefix="pilot-grids-"))
    store = scratch / "store" if args.smoke else ROOT / study["pilot"]["store"]
    for name, grid_file in study["pilot"]["grids"].items():
        grid = yaml.safe_load((ROOT / grid_file).read_text())
        grid["parameters"].update(rule["changes"])
        if args.smoke:
            grid["parameters"].update(device="cpu", amp="off", capture="off", cudnn_benchmark=False,
                                      model="resnet-small", n_train=256, n_test=128, num_samples=32)
            grid["grid"].update(width=[4], epochs=[1], eval_every=[1], seed=[100])
        path = scratch / f"pilot_{name}.yaml"
        path.write_text(yaml.safe_dump(grid))
        minutes = run_minutes(grid, bench, jobs, each, args.smoke)
        budget = (left() - 30) / 60  # leave half a minute for packing and the copy back
        if budget < minutes:
            log(f"candidate {name}: {budget:.1f} min left, a run needs ~{minutes:.1f}: not started")
            continue
        run([sys.executable, "-m", "sparsam", "train-grid", str(path), "--store", str(store), "--runs-dir",
             str(scratch / "runs"), "--budget-minutes", f"{budget:.2f}", "--run-minutes", f"{minutes:.2f}",
             "--jobs", str(jobs), "--pack", str(out / f"pilot_{name}.tar.gz")],
            out / "stretch.log", budget * 60 + 20, env)
    log(f"done in {time.monotonic() - started:.0f} s; files in {out}: {sorted(p.name for p in out.iterdir())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
