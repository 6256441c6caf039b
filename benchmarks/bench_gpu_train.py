"""Training throughput on a GPU: today's step against the fast CUDA path, side by side in one process.

    python benchmarks/bench_gpu_train.py --out results/bench_gpu_train.json     # an H200: about 3 minutes
    python benchmarks/bench_gpu_train.py --device cpu --quick                   # checks the script itself

ResNet-18 (width 64) on full CIFAR-10 at batch 128, the harness's own :class:`Trainer` (GPU-resident
data and augmentation), for SGD, SAM, SSAM-F 0.5 and SSAM-D 0.5. Each optimizer runs under a ladder
of paths, from today's (fp32 with TF32 convolutions, NCHW, eager) to the fast one (bf16 autocast with
fp32 weights, channels-last, cuDNN autotuning, the whole step in a CUDA graph), plus ``torch.compile``
of the network; the rungs between show where the time goes. All (optimizer, path) pairs are timed
round-robin, ``--steps`` steps each per round after a warm-up, and summarised by the median over
``--rounds`` rounds: images/s, ms per step and the fraction of the chip's measured bf16 matmul rate
(FLOPs of a step from ``FlopCounterMode``, convolutions and matmuls only).

Faithfulness, on the same weights and batch: the fast path's first-pass gradient and ε against the
fp32 reference's (cosines), and its loss; the captured step against the same settings run eagerly,
after ``--check-steps`` steps from the same start (relative distance of the weights).

``--processes 1 2 4``: the fast SGD and SAM paths (``--process-optimizers``) in that many processes at once on
the one GPU (each its own model and data), their summed images/s: whether several runs at a time pay.
The targets on one H200: SGD >= 60,000 images/s, SAM >= 30,000, SSAM within 10% of SAM.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sparsam.experiment.config import TrainConfig  # noqa: E402
from sparsam.experiment.provenance import provenance  # noqa: E402
from sparsam.experiment.train import Trainer  # noqa: E402

OPTIMIZERS = {"SGD": dict(optimizer="sgd"), "SAM": dict(optimizer="sam"),
              "SSAM-F 0.5": dict(optimizer="ssam-f", sparsity=0.5),
              "SSAM-D 0.5": dict(optimizer="ssam-d", sparsity=0.5)}
# from today's path to the fast one, one change per rung; then torch.compile beside the last eager rung
PATHS = {
    "today (fp32/TF32, NCHW, eager)": dict(),
    "+ bf16 autocast": dict(amp="bf16"),
    "+ channels-last": dict(amp="bf16", channels_last=True),
    "+ cuDNN autotuning": dict(amp="bf16", channels_last=True, cudnn_benchmark=True),
    "+ CUDA graph (fast path)": dict(amp="bf16", channels_last=True, cudnn_benchmark=True, capture="cuda-graph"),
    "torch.compile (no graph)": dict(amp="bf16", channels_last=True, cudnn_benchmark=True, capture="compile"),
}
TARGETS = {"SGD": 60_000, "SAM": 30_000}


def base_config(args: argparse.Namespace, **changes: Any) -> TrainConfig:
    return TrainConfig(model="resnet18", width=args.width, dataset="cifar10", n_train=args.n_train, n_test=256,
                       batch_size=args.batch_size, epochs=10, num_samples=128, update_every=1, update_unit="epochs",
                       device=args.device, seed=0, **changes)


def on_device(path: dict[str, Any], device: str) -> dict[str, Any]:
    """The part of ``path`` the device runs: on a CPU without bf16 autocast, cuDNN autotuning and CUDA graphs
    (so that ``--device cpu`` still runs every other piece of the script)."""
    if device.startswith("cuda"):
        return path
    return {k: v for k, v in path.items() if k not in ("amp", "cudnn_benchmark") and v != "cuda-graph"}


def rungs(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The paths to time on this device: each distinct there (a CPU drops the CUDA-only rungs)."""
    out: dict[str, dict[str, Any]] = {}
    for name, path in PATHS.items():
        path = on_device(path, args.device)
        if path not in out.values() and (path.get("capture") != "compile" or args.compile):
            out[name] = path
    return out


def batches(trainer: Trainer):
    """The trainer's training batches, epoch after epoch, as its loop feeds them."""
    epoch = 0
    while True:
        trainer.train_loader.set_epoch(epoch)
        for x, y in trainer.train_loader:
            if len(y) == trainer.config.batch_size:  # an epoch's smaller last batch would run eagerly
                yield (x.to(trainer.device).contiguous(memory_format=trainer.memory_format), y.to(trainer.device))
        epoch += 1


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_steps(trainer: Trainer, feed, steps: int) -> float:
    """Seconds for ``steps`` training steps, the device synchronised before and after."""
    torch.backends.cudnn.benchmark = trainer.config.cudnn_benchmark  # a global switch: set per path
    trainer.model.train()
    sync(trainer.config.device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step(*next(feed))
    sync(trainer.config.device)
    return time.perf_counter() - start


def matmul_rate(device: str, size: int) -> float:
    """Measured FLOP/s of a bf16 (CUDA) or fp32 (CPU) square matmul: the chip's rate to compare against."""
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    sync(device)
    repeats, start = 10, time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * size ** 3 * repeats / (time.perf_counter() - start)


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().float().flatten() for t in tensors])


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def first_pass(trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """Loss, gradient and ε of one SAM-type first step on (x, y), the weights put back afterwards."""
    opt, params = trainer.optimizer, list(trainer.model.parameters())
    before = [p.detach().clone() for p in params]
    loss = trainer.ascent_gradients(x, y)
    grad = flat([p.grad for p in params])
    opt.first_step(zero_grad=True)
    eps = flat([p.detach() - b for p, b in zip(params, before)])
    opt.restore()
    return {"loss": float(loss), "grad": grad, "eps": eps}


def faithfulness(args: argparse.Namespace) -> dict[str, Any]:
    """The fast path's first step against the fp32 reference, and its captured step against its eager one."""
    fast = on_device(PATHS["+ CUDA graph (fast path)"], args.device)
    eager_fast = {k: v for k, v in fast.items() if k != "capture"}
    out: dict[str, Any] = {"fast_path": fast}
    for name in ("SAM", "SSAM-F 0.5"):
        reference = Trainer(base_config(args, **OPTIMIZERS[name]))
        trial = Trainer(base_config(args, **OPTIMIZERS[name], **eager_fast))
        trial.model.load_state_dict(reference.model.state_dict())
        x, y = next(batches(reference))
        ref = first_pass(reference, x, y)
        mask = getattr(reference.optimizer, "mask", None)
        if mask is not None:  # the same mask on both sides (the reference's, built at step 0)
            trial.optimizer.mask.masks = [m.clone() for m in mask.masks]
            trial.optimizer.mask.last_update = 0
        got = first_pass(trial, x.contiguous(memory_format=trial.memory_format), y)
        out[name] = {"grad_cosine": cosine(ref["grad"], got["grad"]), "eps_cosine": cosine(ref["eps"], got["eps"]),
                     "loss_reference": ref["loss"], "loss_fast": got["loss"]}
    if fast.get("capture") == "cuda-graph":
        for name in OPTIMIZERS:
            eager = Trainer(base_config(args, **OPTIMIZERS[name], **eager_fast))
            graphed = Trainer(base_config(args, **OPTIMIZERS[name], **fast))
            graphed.model.load_state_dict(eager.model.state_dict())
            for trainer in (eager, graphed):
                run_steps(trainer, batches(trainer), args.check_steps)
            a, b = flat(eager.model.parameters()), flat(graphed.model.parameters())
            out.setdefault("graph_vs_eager", {})[name] = {
                "steps": args.check_steps, "replays": sum(g.replays for g in (graphed.graphs or {}).values()),
                "relative_distance": float((a - b).norm() / a.norm())}
    return out


def throughput(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Images/s of every (optimizer, path), interleaved round-robin."""
    trainers, feeds, flops = {}, {}, {}
    for opt_name, opt in OPTIMIZERS.items():
        for path_name, path in rungs(args).items():
            trainer = Trainer(base_config(args, **opt, **path))
            trainers[opt_name, path_name], feeds[opt_name, path_name] = trainer, batches(trainer)
            run_steps(trainer, feeds[opt_name, path_name], args.warmup)
        reference = trainers[opt_name, next(iter(PATHS))]
        flops[opt_name] = reference.count_flops()["flops_per_step"]
    times: dict[tuple[str, str], list[float]] = {key: [] for key in trainers}
    for round_ in range(args.rounds):
        keys = list(trainers)
        keys = keys[round_ % len(keys):] + keys[:round_ % len(keys)]  # rotate the order each round
        for key in keys:
            times[key].append(run_steps(trainers[key], feeds[key], args.steps) / args.steps)
    rows = []
    for (opt_name, path_name), seconds in times.items():
        per_step = statistics.median(seconds)
        rows.append({"optimizer": opt_name, "path": path_name, "ms_per_step": 1e3 * per_step,
                     "images_per_s": args.batch_size / per_step, "flops_per_step": flops[opt_name],
                     "raw_seconds_per_step": seconds})
    return rows


def processes(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Summed images/s of N concurrent processes on one GPU, each timing the fast path of one optimizer."""
    rows = []
    for opt_name in args.process_optimizers:
        for n in args.processes:
            command = [sys.executable, __file__, "--worker", opt_name, "--device", args.device, "--width",
                       str(args.width), "--batch-size", str(args.batch_size), "--steps", str(args.steps),
                       "--rounds", str(args.rounds), "--n-train", str(args.n_train or 0)]
            running = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(n)]
            rates = [json.loads(p.communicate()[0].strip().splitlines()[-1])["images_per_s"] for p in running]
            rows.append({"optimizer": opt_name, "processes": n, "images_per_s_total": sum(rates),
                         "images_per_s_each": rates})
    return rows


def worker(args: argparse.Namespace) -> None:
    """One process of :func:`processes`: time the fast path of ``--worker`` and print its images/s."""
    path = on_device(PATHS["+ CUDA graph (fast path)"], args.device)
    trainer = Trainer(base_config(args, **OPTIMIZERS[args.worker], **path))
    feed = batches(trainer)
    run_steps(trainer, feed, args.warmup)
    seconds = [run_steps(trainer, feed, args.steps) / args.steps for _ in range(args.rounds)]
    print(json.dumps({"images_per_s": args.batch_size / statistics.median(seconds)}))


def table(rows: list[dict[str, Any]], peak: float) -> str:
    lines = ["| optimizer | path | ms / step | images/s | × today | of bf16 peak |", "|---|---|---|---|---|---|"]
    today = {r["optimizer"]: r["ms_per_step"] for r in rows if r["path"] == next(iter(PATHS))}
    for r in rows:
        rate = r["flops_per_step"] / (r["ms_per_step"] / 1e3)
        lines.append(f"| {r['optimizer']} | {r['path']} | {r['ms_per_step']:.2f} | {r['images_per_s']:,.0f} | "
                     f"{today[r['optimizer']] / r['ms_per_step']:.2f} | {rate / peak:.1%} |")
    return "\n".join(lines)


def verdicts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The targets, read from the fast path's rows."""
    fast = {r["optimizer"]: r["images_per_s"] for r in rows if r["path"] == "+ CUDA graph (fast path)"}
    if not fast:
        return {}
    out = {f"{name} >= {target:,} images/s": fast[name] >= target for name, target in TARGETS.items()}
    for name in ("SSAM-F 0.5", "SSAM-D 0.5"):
        out[f"{name} within 10% of SAM"] = fast[name] >= 0.9 * fast["SAM"]
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--n-train", type=int, default=None, help="training images (default: all 50,000)")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per (optimizer, path) and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (the graph warms up in 3)")
    parser.add_argument("--check-steps", type=int, default=10, help="steps of the captured-against-eager check")
    parser.add_argument("--processes", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--process-optimizers", nargs="*", default=["SGD", "SAM"], choices=list(OPTIMIZERS),
                        help="the optimizers whose fast path runs in --processes processes at once")
    parser.add_argument("--compile", action="store_true", help="add the torch.compile path (minutes to compile)")
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--quick", action="store_true", help="a tiny run that checks the script (CPU)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="write the JSON record here")
    args = parser.parse_args(argv)
    if args.n_train == 0:
        args.n_train = None
    if args.quick:
        args.width, args.batch_size, args.n_train, args.steps, args.rounds = 8, 32, 256, 2, 2
        args.warmup, args.check_steps, args.processes, args.matmul_size = 5, 6, [1, 2], 256
    if args.worker:
        worker(args)
        return {}
    started = time.perf_counter()
    peak = matmul_rate(args.device, args.matmul_size)
    rows = throughput(args)
    record = {"provenance": provenance(torch.device(args.device)), "args": vars(args),
              "matmul_flops_per_s": peak, "throughput": rows, "targets": verdicts(rows),
              "faithfulness": faithfulness(args), "processes": processes(args)}
    record["wall_seconds"] = time.perf_counter() - started
    print(f"measured {'bf16' if args.device.startswith('cuda') else 'fp32'} matmul rate: {peak / 1e12:.1f} TFLOP/s")
    print(table(rows, peak))
    print(json.dumps({"targets": record["targets"], "faithfulness": record["faithfulness"],
                      "processes": [{k: v for k, v in r.items() if k != "images_per_s_each"}
                                    for r in record["processes"]]}, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    main()
