"""Training throughput on a CPU: fp32 NCHW against channels-last, bf16 autocast and both, side by side.

    OMP_NUM_THREADS=1 python benchmarks/bench_cpu_train.py --out results/bench_cpu_train.json   # about 10 minutes
    python benchmarks/bench_cpu_train.py --quick                                               # checks the script

The harness's own :class:`Trainer` on the label-noise study's candidate regimes (resnet-small at
widths 8 and 16, batch 32, 2,500 CIFAR-10 images), for SGD, SAM, SSAM-F 0.5, SSAM-D 0.5 and SAM-ON.
Every (regime, optimizer, rung) is timed round-robin in this one process, ``--steps`` steps per round
after a warm-up, the order rotated each round, and summarised by the median over ``--rounds`` rounds
of the process-CPU time per step (which other jobs on the machine barely disturb; wall time beside it).
``--compile`` adds ``torch.compile`` of the network on the fastest eager rung, with its compile time,
and says whether it pays over a 200-epoch run.

Faithfulness against fp32 NCHW, decided by :data:`CHECKS` (declared before any measurement): the
first-pass gradient and ε of SAM and SSAM-F on the same weights, batch and mask (cosines), and a short
training curve of SGD and SAM from the same start (train loss per epoch). :func:`fastest_faithful`
names the rung the quick profile and the label-noise study use: the fastest (median over optimizers
of the speed-up of the width-8 regime) among those that pass every check. The record holds the
processor (vendor, model, kernel extensions), since both the speed-ups and the bits depend on it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gpu_train import batches, cosine, first_pass  # noqa: E402
from sparsam.experiment.config import TrainConfig  # noqa: E402
from sparsam.experiment.provenance import provenance  # noqa: E402
from sparsam.experiment.store import read_metrics  # noqa: E402
from sparsam.experiment.train import Trainer, train  # noqa: E402

OPTIMIZERS = {"SGD": dict(optimizer="sgd"), "SAM": dict(optimizer="sam"),
              "SSAM-F 0.5": dict(optimizer="ssam-f", sparsity=0.5),
              "SSAM-D 0.5": dict(optimizer="ssam-d", sparsity=0.5),
              "SAM-ON": dict(optimizer="sam-on", rho=0.5)}
# one change at a time, then both
RUNGS = {"fp32 NCHW": dict(), "fp32 channels-last": dict(channels_last=True), "bf16 autocast": dict(amp="bf16"),
         "bf16 + channels-last": dict(amp="bf16", channels_last=True)}
REFERENCE = "fp32 NCHW"
REGIMES = {"width 8": dict(width=8), "width 16": dict(width=16)}
# The faithfulness rule, fixed before the benchmark ran: a rung passes when, against fp32 NCHW, the
# first-pass gradient and ε of SAM and SSAM-F have cosines of at least 0.99, and the short curve's train
# loss stays within 0.05 of the reference's at every epoch for SGD and SAM.
CHECKS = {"min_cosine": 0.99, "max_curve_gap": 0.05}


def base_config(args: argparse.Namespace, regime: dict[str, Any], **changes: Any) -> TrainConfig:
    """The study's candidate regime (resnet-small, batch 32, 2,500 images) with ``changes``."""
    return TrainConfig(model="resnet-small", dataset="cifar10", n_train=args.n_train, n_test=args.n_test,
                       batch_size=32, epochs=200, label_noise=0.4, num_samples=128, update_every=1,
                       update_unit="epochs", device="cpu", seed=300, **{**regime, **changes})


def run_steps(trainer: Trainer, feed, steps: int) -> tuple[float, float]:
    """Process-CPU and wall seconds of ``steps`` training steps."""
    trainer.model.train()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(steps):
        trainer.step(*next(feed))
    return time.process_time() - cpu, time.perf_counter() - wall


def throughput(args: argparse.Namespace) -> list[dict[str, Any]]:
    """CPU seconds per step of every (regime, optimizer, rung), interleaved round-robin."""
    trainers, feeds = {}, {}
    for regime_name, regime in REGIMES.items():
        for opt_name, opt in OPTIMIZERS.items():
            for rung_name, rung in RUNGS.items():
                key = (regime_name, opt_name, rung_name)
                trainers[key] = Trainer(base_config(args, regime, **opt, **rung))
                feeds[key] = batches(trainers[key])
                run_steps(trainers[key], feeds[key], args.warmup)
    cpu: dict[tuple[str, str, str], list[float]] = {key: [] for key in trainers}
    wall: dict[tuple[str, str, str], list[float]] = {key: [] for key in trainers}
    for round_ in range(args.rounds):
        keys = list(trainers)
        keys = keys[round_ % len(keys):] + keys[:round_ % len(keys)]  # rotate the order each round
        for key in keys:
            c, w = run_steps(trainers[key], feeds[key], args.steps)
            cpu[key].append(c / args.steps)
            wall[key].append(w / args.steps)
    rows = []
    for (regime_name, opt_name, rung_name), seconds in cpu.items():
        rows.append({"regime": regime_name, "optimizer": opt_name, "rung": rung_name,
                     "cpu_ms_per_step": 1e3 * statistics.median(seconds),
                     "wall_ms_per_step": 1e3 * statistics.median(wall[regime_name, opt_name, rung_name]),
                     "raw_cpu_seconds_per_step": seconds})
    reference = {(r["regime"], r["optimizer"]): r["cpu_ms_per_step"] for r in rows if r["rung"] == REFERENCE}
    for r in rows:
        r["speedup"] = reference[r["regime"], r["optimizer"]] / r["cpu_ms_per_step"]
    return rows


def first_pass_checks(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Gradient and ε cosines of each rung's first step against fp32 NCHW (same weights, batch and mask)."""
    out: dict[str, dict[str, Any]] = {}
    regime = REGIMES["width 8"]
    for opt_name in ("SAM", "SSAM-F 0.5"):
        reference = Trainer(base_config(args, regime, **OPTIMIZERS[opt_name]))
        x, y = next(batches(reference))
        ref = first_pass(reference, x, y)
        for rung_name, rung in RUNGS.items():
            if rung_name == REFERENCE:
                continue
            trial = Trainer(base_config(args, regime, **OPTIMIZERS[opt_name], **rung))
            trial.model.load_state_dict(reference.model.state_dict())
            mask = getattr(reference.optimizer, "mask", None)
            if mask is not None:  # the reference's mask, built at step 0, on both sides
                trial.optimizer.mask.masks = [m.clone() for m in mask.masks]
                trial.optimizer.mask.last_update = 0
            got = first_pass(trial, x.contiguous(memory_format=trial.memory_format), y)
            out.setdefault(rung_name, {})[opt_name] = {
                "grad_cosine": cosine(ref["grad"], got["grad"]), "eps_cosine": cosine(ref["eps"], got["eps"]),
                "loss_reference": ref["loss"], "loss": got["loss"]}
    return out


def curves(args: argparse.Namespace, runs_dir: Path) -> dict[str, dict[str, list[float]]]:
    """Train loss per epoch of a short run of SGD and SAM under every rung, from the same seed."""
    out: dict[str, dict[str, list[float]]] = {}
    for rung_name, rung in RUNGS.items():
        for opt_name in ("SGD", "SAM"):
            config = base_config(args, REGIMES["width 8"], **OPTIMIZERS[opt_name], **rung).replace(
                n_train=args.curve_images, n_test=args.n_test, epochs=args.curve_epochs, eval_every=args.curve_epochs)
            train(config, runs_dir=runs_dir, progress=False)
            metrics = read_metrics(runs_dir / config.run_id() / "metrics.jsonl")
            out.setdefault(rung_name, {})[opt_name] = [m["train_loss"] for m in metrics]
    return out


def passes(rung: str, first: dict[str, dict[str, Any]], curve: dict[str, dict[str, list[float]]]) -> dict[str, bool]:
    """Each check of :data:`CHECKS` for ``rung`` (the reference passes by definition)."""
    if rung == REFERENCE:
        return {"cosines": True, "curves": True}
    cosines = all(min(c["grad_cosine"], c["eps_cosine"]) >= CHECKS["min_cosine"] for c in first[rung].values())
    gaps = [abs(a - b) for opt in curve[rung] for a, b in zip(curve[rung][opt], curve[REFERENCE][opt])]
    return {"cosines": cosines, "curves": max(gaps) <= CHECKS["max_curve_gap"]}


def fastest_faithful(rows: list[dict[str, Any]], checks: dict[str, dict[str, bool]]) -> str:
    """The rung with the largest median speed-up over the optimizers at width 8 among those passing every check."""
    speed = {rung: statistics.median(r["speedup"] for r in rows if r["rung"] == rung and r["regime"] == "width 8")
             for rung in RUNGS}
    return max((rung for rung in RUNGS if all(checks[rung].values())), key=lambda rung: speed[rung])


def compiled(args: argparse.Namespace, rung: str) -> list[dict[str, Any]]:
    """``torch.compile`` of the network on ``rung``, against the same rung eager: compile seconds, CPU ms per
    step, and the epochs of the regime after which the compile time is paid back."""
    rows = []
    for opt_name in ("SGD", "SAM"):
        eager = Trainer(base_config(args, REGIMES["width 8"], **OPTIMIZERS[opt_name], **RUNGS[rung]))
        fast = Trainer(base_config(args, REGIMES["width 8"], **OPTIMIZERS[opt_name], **RUNGS[rung],
                                   capture="compile"))
        feeds = {"eager": batches(eager), "compile": batches(fast)}
        start = time.perf_counter()
        run_steps(fast, feeds["compile"], args.warmup)
        compile_seconds = time.perf_counter() - start
        run_steps(eager, feeds["eager"], args.warmup)
        times: dict[str, list[float]] = {"eager": [], "compile": []}
        for _ in range(args.rounds):
            for name, trainer in (("eager", eager), ("compile", fast)):
                times[name].append(run_steps(trainer, feeds[name], args.steps)[1] / args.steps)
        eager_s, compile_s = statistics.median(times["eager"]), statistics.median(times["compile"])
        saved_per_epoch = (eager_s - compile_s) * len(eager.train_loader)
        rows.append({"optimizer": opt_name, "rung": rung, "compile_seconds": compile_seconds,
                     "eager_wall_ms_per_step": 1e3 * eager_s, "compile_wall_ms_per_step": 1e3 * compile_s,
                     "pays_back_after_epochs": compile_seconds / saved_per_epoch if saved_per_epoch > 0 else None})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| regime | optimizer | rung | CPU ms / step | × fp32 NCHW |", "|---|---|---|---|---|"]
    lines += [f"| {r['regime']} | {r['optimizer']} | {r['rung']} | {r['cpu_ms_per_step']:.1f} | {r['speedup']:.2f} |"
              for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per (regime, optimizer, rung) and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--n-train", type=int, default=2500)
    parser.add_argument("--n-test", type=int, default=500, help="test images (the timing never evaluates)")
    parser.add_argument("--curve-images", type=int, default=640, help="training images of the short curves")
    parser.add_argument("--curve-epochs", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="add torch.compile on the fastest faithful rung")
    parser.add_argument("--runs-dir", default="runs/bench_cpu_train", help="where the short curves' runs go")
    parser.add_argument("--quick", action="store_true", help="a tiny run that checks the script")
    parser.add_argument("--out", default=None, help="write the JSON record here")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.rounds, args.warmup, args.n_train, args.n_test = 2, 2, 1, 256, 64
        args.curve_images, args.curve_epochs = 64, 1
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    started, load = time.perf_counter(), os.getloadavg()
    rows = throughput(args)
    first = first_pass_checks(args)
    curve = curves(args, Path(args.runs_dir))
    checks = {rung: passes(rung, first, curve) for rung in RUNGS}
    chosen = fastest_faithful(rows, checks)
    measured = {k: v for k, v in vars(args).items() if k not in ("runs_dir", "out")}  # no machine paths in a record
    record = {"provenance": provenance(torch.device("cpu")), "args": measured, "checks_rule": CHECKS,
              "throughput": rows, "first_pass": first, "curves": curve, "checks": checks, "fastest_faithful": chosen,
              "fastest_faithful_config": RUNGS[chosen], "load_average_start": load[0]}
    if args.compile:
        record["compile"] = compiled(args, chosen)
    record["load_average_end"] = os.getloadavg()[0]
    record["wall_seconds"] = time.perf_counter() - started
    print(table(rows))
    print(json.dumps({"checks": checks, "fastest_faithful": chosen, "compile": record.get("compile"),
                      "first_pass": first}, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    main()
