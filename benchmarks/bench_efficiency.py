"""Efficiency benchmark: does sparsity pay? One process, interleaved timings, a table of ratios.

    python benchmarks/bench_efficiency.py --out results/efficiency_cpu.json          # ~minutes, 2-core CPU
    python benchmarks/bench_efficiency.py --quick                                     # smoke run
    python benchmarks/bench_efficiency.py --device cuda --width 64 --out results/efficiency_gpu.json

P1  optimizer-step overhead without forward/backward: SSAM(explicit, masks) / SAM (target <= 1.10);
    whole step SAM / SGD (target <= 2.05).
P2  Fisher scores at N_F samples: sparsam.fisher_scores (method "per_layer", the default for these
    layers, and "vmap") vs the official batch-1 loop (target >= 10x), equality against an eval-mode
    batch-1 loop in float64; beside them one batched gradient of the same samples, the ceiling of
    what batching can gain on the device.
P3  whole SparseAscentSAM step / SGD step at s in {0.5, 0.9, 0.98}, layer and filter masks from
    Fisher scores (papers' rule and cost-aware), each against the ideal cost of its mask (sum of the
    per-layer costs it cannot skip, measured in this run; target within 10%), and a mask confined
    to the top blocks at s = 0.9 (target <= 1.2x SGD).

Not part of the test suite. Inputs are random CIFAR-shaped tensors (timings do not depend on the
values; masks come from Fisher scores of the untrained network on that batch).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparsam import SAM, SSAM

from sparsam._timing import sync, timed, timed_on  # noqa: E402
from sparsam.masks import patterns  # noqa: E402
from sparsam.masks.cost import layer_costs, step_cost, tensor_costs  # noqa: E402
from sparsam.masks.fisher import fisher_scores, fisher_scores_official  # noqa: E402
from sparsam.experiment.models import build_model, model_stages  # noqa: E402
from sparsam.experiment.provenance import provenance  # noqa: E402
from sparsam.optim.sparse_ascent import SparseAscentSAM, plan_ascent  # noqa: E402
from sparsam.masks.strategies import MaskStrategy  # noqa: E402

SGD_KW = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)
RHO = 0.1


class StaticMask(MaskStrategy):
    """Fixed masks, never rebuilt after step 0: the steps between two mask updates, which P1 times."""

    def __init__(self, masks: list[Tensor]):
        super().__init__(10**9, "steps", None)
        self.fixed = masks

    def _initial_masks(self) -> list[Tensor]:
        return list(self.fixed)

    def _build(self, step: int) -> list[Tensor]:
        return self.fixed


# ------------------------------------------------------------------------------------------------
# timing helpers
# ------------------------------------------------------------------------------------------------

CLOCK = "wall"  # --clock: "wall" (time.perf_counter) or "cpu" (time.process_time, all threads)
OTHER_TIMES: dict[str, list[float]] = {}  # the other clock's seconds of the last interleaved() call


def now() -> float:
    return time.perf_counter() if CLOCK == "wall" else time.process_time()


def other_clock() -> str:
    return "cpu" if CLOCK == "wall" else "wall"


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int,
                device: torch.device) -> dict[str, list[float]]:
    """Times of every function on the --clock, ``repeats`` times round-robin (rotating the order),
    after ``warmup`` rounds; the other clock's times go to :data:`OTHER_TIMES`.

    Process CPU time is far less sensitive than wall time to other processes taking the cores when
    torch runs one thread (with several, OpenMP threads spin while they wait and that counts too).
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    sync(device)
    times: dict[str, list[float]] = {n: [] for n in names}
    OTHER_TIMES.clear()
    OTHER_TIMES.update({n: [] for n in names})
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            (wall, cpu), _ = timed_on(fns[name], device, (time.perf_counter, time.process_time))
            times[name].append(wall if CLOCK == "wall" else cpu)
            OTHER_TIMES[name].append(cpu if CLOCK == "wall" else wall)
    return times


STAT: Callable[[list[float]], float] = statistics.median  # --stat: median (default) or min


def med(xs: list[float]) -> float:
    """The summary statistic of repeated timings (the median unless --stat min)."""
    return STAT(xs)


def machine(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
            "device": str(device), "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        info["loadavg_start"] = os.getloadavg()
    except OSError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def new_model(args, device: torch.device, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("resnet18", 10, width=args.width).to(device).train()


def make_batch(n: int, device: torch.device, seed: int = 1) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g).to(device), torch.randint(0, 10, (n,), generator=g).to(device)


def sgd_step_fn(model: nn.Module, x: Tensor, y: Tensor) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), **SGD_KW)

    def step() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def sam_step_fn(model: nn.Module, opt: SAM, x: Tensor, y: Tensor) -> Callable[[], None]:
    def closure() -> Tensor:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    def step() -> None:
        opt.zero_grad()
        opt.step(closure)
    return step


# ------------------------------------------------------------------------------------------------
# P1: optimizer-step overhead and whole-step SAM / SGD
# ------------------------------------------------------------------------------------------------

def part1(args, device: torch.device, x: Tensor, y: Tensor) -> dict:
    print("\n== P1: optimizer-step overhead (no forward/backward) and whole steps ==", flush=True)
    models = {name: new_model(args, device) for name in ("sgd", "sam", "ssam")}
    params = {name: list(m.parameters()) for name, m in models.items()}
    g = torch.Generator().manual_seed(3)
    grads = [torch.randn(p.shape, generator=g).to(device) for p in params["sgd"]]
    scores = [torch.rand(p.shape, generator=g).to(device) for p in params["sgd"]]
    mask = patterns.unstructured(scores, 0.5)
    sgd = torch.optim.SGD(params["sgd"], **SGD_KW)
    sam = SAM(params["sam"], torch.optim.SGD, rho=RHO, **SGD_KW)
    ssam = SSAM(params["ssam"], torch.optim.SGD, rho=RHO, mask=StaticMask(mask), **SGD_KW)

    def set_grads(ps: list[Tensor]) -> None:
        for p, gr in zip(ps, grads):
            p.grad = gr

    def base_only() -> None:
        set_grads(params["sgd"])
        sgd.step()

    def two_steps(opt: SAM, ps: list[Tensor]) -> Callable[[], None]:
        def run() -> None:
            set_grads(ps)
            opt.first_step()
            set_grads(ps)
            opt.second_step()
        return run

    t = interleaved({"sgd.step": base_only, "sam.first+second": two_steps(sam, params["sam"]),
                     "ssam.first+second": two_steps(ssam, params["ssam"])},
                    args.opt_repeats, 3, device)
    overhead = {k: med(v) for k, v in t.items()}
    ratio_opt = overhead["ssam.first+second"] / overhead["sam.first+second"]

    models = {name: new_model(args, device) for name in ("sgd", "sam", "ssam")}
    sam = SAM(models["sam"].parameters(), torch.optim.SGD, rho=RHO, **SGD_KW)
    mask = patterns.unstructured([torch.rand(p.shape, generator=g).to(device) for p in models["ssam"].parameters()],
                                 0.5)
    ssam = SSAM(models["ssam"].parameters(), torch.optim.SGD, rho=RHO, mask=StaticMask(mask), **SGD_KW)
    t = interleaved({"SGD": sgd_step_fn(models["sgd"], x, y), "SAM": sam_step_fn(models["sam"], sam, x, y),
                     "SSAM explicit (s=0.5)": sam_step_fn(models["ssam"], ssam, x, y)},
                    args.repeats, args.warmup, device)
    steps = {k: med(v) for k, v in t.items()}
    other = {k: med(v) for k, v in OTHER_TIMES.items()}
    out = {
        "clock": CLOCK,
        f"step_seconds_{other_clock()}_clock": other,
        f"sam_over_sgd_{other_clock()}_clock": other["SAM"] / other["SGD"],
        "optimizer_step_seconds": overhead,
        "ssam_over_sam_optimizer_step": ratio_opt,
        "step_seconds": steps,
        "sam_over_sgd": steps["SAM"] / steps["SGD"],
        "ssam_explicit_over_sgd": steps["SSAM explicit (s=0.5)"] / steps["SGD"],
        "raw": {"steps": t, f"steps_{other_clock()}_clock": dict(OTHER_TIMES)},
    }
    print(f"  optimizer step only: SGD {overhead['sgd.step'] * 1e3:7.2f} ms | SAM first+second "
          f"{overhead['sam.first+second'] * 1e3:7.2f} ms | SSAM {overhead['ssam.first+second'] * 1e3:7.2f} ms")
    print(f"  SSAM/SAM optimizer step      {ratio_opt:5.3f}   (target <= 1.10: "
          f"{'met' if ratio_opt <= 1.10 else 'MISSED'})")
    print(f"  whole step: SGD {steps['SGD']:.3f} s | SAM {steps['SAM']:.3f} s | SSAM explicit "
          f"{steps['SSAM explicit (s=0.5)']:.3f} s")
    print(f"  SAM/SGD whole step           {out['sam_over_sgd']:5.3f}   (target <= 2.05: "
          f"{'met' if out['sam_over_sgd'] <= 2.05 else 'MISSED'}); on the {other_clock()} clock "
          f"{out[f'sam_over_sgd_{other_clock()}_clock']:5.3f}")
    print(f"  SSAM explicit/SGD            {out['ssam_explicit_over_sgd']:5.3f}   (the official form: as slow as SAM)")
    return out


# ------------------------------------------------------------------------------------------------
# P2: Fisher scores
# ------------------------------------------------------------------------------------------------

def fisher_eval_loop(model: nn.Module, params: list[Tensor], x: Tensor, y: Tensor) -> list[Tensor]:
    """Batch-1 loop in eval mode: the exact quantity sparsam.fisher_scores computes."""
    was = model.training
    model.eval()
    scores = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    for i in range(len(x)):
        grads = torch.autograd.grad(F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]), params)
        for s, gr in zip(scores, grads):
            s.add_(gr.float().square())
    model.train(was)
    return scores


def batched_gradient(model: nn.Module, params: list[Tensor], x: Tensor, y: Tensor) -> list[Tensor]:
    """The summed-loss gradient of all samples in one eval-mode pass.

    It does the batch-1 loop's arithmetic (forward, input gradients, weight gradients contracted over
    samples too) with no per-sample split, so no Fisher method that keeps per-sample gradients can
    beat it: official loop / this is the ceiling of the speed-up batching can buy on this device.
    """
    was = model.training
    model.eval()
    try:
        return list(torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), params))
    finally:
        model.train(was)


def max_rel_diff(a: list[Tensor], b: list[Tensor]) -> float:
    return max(float((u - v).abs().max() / v.abs().max().clamp(min=1e-30)) for u, v in zip(a, b))


def part2(args, device: torch.device) -> tuple[dict, list[Tensor]]:
    print(f"\n== P2: Fisher scores, N_F={args.fisher_samples}, ResNet-18 width {args.width} ==", flush=True)
    model = new_model(args, device)
    params = list(model.parameters())
    fx, fy = make_batch(args.fisher_samples, device, seed=7)
    data = [(fx, fy)]

    def timed_now(fn: Callable[[], list[Tensor]]) -> tuple[float, list[Tensor]]:
        return timed(fn, device, now)

    official_model = copy.deepcopy(model)  # the official loop moves BatchNorm statistics: its own copy
    fns = {"per_layer": lambda: fisher_scores(model, params, data, args.fisher_samples, method="per_layer"),
           "vmap": lambda: fisher_scores(model, params, data, args.fisher_samples, method="vmap"),
           "official": lambda: fisher_scores_official(official_model, list(official_model.parameters()), data,
                                                      args.fisher_samples),
           "batched_gradient": lambda: batched_gradient(model, params, fx, fy)}
    for _ in range(args.warmup):  # on a GPU the first calls also choose kernels
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    results = {}
    for r in range(args.fisher_repeats):
        for name in (list(fns)[r % len(fns):] + list(fns)[:r % len(fns)]):
            t, results[name] = timed_now(fns[name])
            times[name].append(t)
    # equality on the first samples against an eval-mode batch-1 loop (what fisher_scores computes) in
    # float64, the independent reference; the float32 loop's own distance from it shows the rounding scale.
    # TF32 (cuDNN's default for float32 convolutions on a GPU) is off here: the check is of the arithmetic
    n_check = min(args.check_samples, args.fisher_samples)
    cx, cy = fx[:n_check], fy[:n_check]
    reference = copy.deepcopy(model).double()
    exact = fisher_eval_loop(reference, list(reference.parameters()), cx.double(), cy)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            checks = {name: fisher_scores(model, params, [(cx, cy)], n_check, method=name)
                      for name in ("per_layer", "vmap")}
            checks["float32_loop"] = fisher_eval_loop(model, params, cx, cy)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    out = {"seconds": {k: med(v) for k, v in times.items()}, "check_samples": n_check,
           "official_over_per_layer": med(times["official"]) / med(times["per_layer"]),
           "official_over_vmap": med(times["official"]) / med(times["vmap"]),
           "official_over_batched_gradient": med(times["official"]) / med(times["batched_gradient"]),
           **{f"max_rel_diff_{name}_vs_float64_loop": max_rel_diff(c, exact) for name, c in checks.items()},
           "max_rel_diff_per_layer_vs_vmap": max_rel_diff(results["per_layer"], results["vmap"]),
           "raw": times}
    s = out["seconds"]
    print(f"  per-layer {s['per_layer']:.3f} s | vmap {s['vmap']:.3f} s | official batch-1 loop (train mode) "
          f"{s['official']:.3f} s")
    print(f"  official/per-layer           {out['official_over_per_layer']:6.2f}x (target >= 10x: "
          f"{'met' if out['official_over_per_layer'] >= 10 else 'MISSED'})")
    print(f"  official/vmap                {out['official_over_vmap']:6.2f}x")
    print(f"  official/batched gradient    {out['official_over_batched_gradient']:6.2f}x (one forward and "
          f"backward of all {args.fisher_samples} samples, {s['batched_gradient']:.3f} s: the arithmetic "
          f"of the loop without the per-sample split, so the most batching can gain here)")
    print(f"  max relative difference (max |a-b| / max |b| per tensor) against an eval-mode batch-1 loop in "
          f"float64 on {n_check} samples: per-layer {out['max_rel_diff_per_layer_vs_float64_loop']:.1e}, vmap "
          f"{out['max_rel_diff_vmap_vs_float64_loop']:.1e}, the same loop in float32 "
          f"{out['max_rel_diff_float32_loop_vs_float64_loop']:.1e}; per-layer vs vmap on {args.fisher_samples}: "
          f"{out['max_rel_diff_per_layer_vs_vmap']:.1e}")
    return out, [s_.detach() for s_ in results["per_layer"]]


# ------------------------------------------------------------------------------------------------
# P3: sparse ascent steps vs SGD, against the ideal cost of each mask
# ------------------------------------------------------------------------------------------------

def top_blocks_mask(stages: list[nn.Module], params: list[Tensor], scores: list[Tensor], sparsity: float,
                    blocks: int, granularity: str) -> list[Tensor]:
    """Papers' rule restricted to the last ``blocks`` blocks and the head, same total budget."""
    top = {id(p) for st in stages[-1 - blocks:] for p in st.parameters()}
    inside = [i for i, p in enumerate(params) if id(p) in top]
    total = sum(p.numel() for p in params)
    sub_total = sum(params[i].numel() for i in inside)
    sub_sparsity = max(0.0, 1.0 - (1.0 - sparsity) * total / sub_total)
    sub = patterns.structured([scores[i] for i in inside], sub_sparsity, granularity)
    masks = [torch.zeros(p.shape, dtype=torch.bool, device=p.device) for p in params]
    for i, m in zip(inside, sub):
        masks[i] = m
    return masks


def part3(args, device: torch.device, x: Tensor, y: Tensor, scores: list[Tensor] | None) -> dict:
    print("\n== P3: SparseAscentSAM whole step / SGD step, vs the ideal cost of each mask ==", flush=True)
    model = new_model(args, device)
    stages = model_stages(model)
    params = list(model.parameters())
    if scores is None:
        fx, fy = make_batch(args.fisher_samples, device, seed=7)
        scores = fisher_scores(model, params, [(fx, fy)], args.fisher_samples)
    print("  per-layer costs (seconds and FLOPs) ...", flush=True)
    t0 = time.perf_counter()
    layers_s = layer_costs(stages, x, unit="seconds", repeats=args.layer_repeats, timer=now)
    layers_f = layer_costs(stages, x, unit="flops")
    print(f"  ... {time.perf_counter() - t0:.0f} s, {len(layers_s)} leaf calls", flush=True)
    unit_layers = layers_s if args.cost_unit == "seconds" else layers_f
    costs = tensor_costs(unit_layers, params)
    cap = None if args.ascent_budget <= 0 else args.ascent_budget * step_cost(unit_layers)

    mask_sets: dict[str, list[Tensor]] = {}
    for s in args.sparsities:
        for gran in ("layer", "filter"):
            mask_sets[f"{gran} s={s} fisher"] = patterns.structured(scores, s, gran)
            mask_sets[f"{gran} s={s} cost-aware"] = patterns.cost_aware(scores, costs, s, gran, max_cost=cap)
    for gran in ("layer", "filter"):
        mask_sets[f"{gran} s=0.9 top blocks"] = top_blocks_mask(stages, params, scores, 0.9, 2, gran)

    fns: dict[str, Callable[[], object]] = {"SGD": sgd_step_fn(new_model(args, device), x, y)}
    sam_model = new_model(args, device)
    fns["SAM"] = sam_step_fn(sam_model, SAM(sam_model.parameters(), torch.optim.SGD, rho=RHO, **SGD_KW), x, y)
    info = {}
    for name, masks in mask_sets.items():
        m = new_model(args, device)
        opt = SparseAscentSAM(model_stages(m), torch.optim.SGD, rho=RHO, mask=masks, **SGD_KW)
        plan = plan_ascent(opt.stages, opt._params(), masks)
        fns[name] = sam_step_fn(m, opt, x, y)
        info[name] = {"density": patterns.density(masks), "tensors": sum(k != "none" for k in plan.kinds),
                      "row_tensors": sum(k == "rows" for k in plan.kinds), "suffix_start": plan.start,
                      "stages": len(opt.stages),
                      "ideal_seconds_ratio": step_cost(layers_s, "sparse", params, masks) / step_cost(layers_s),
                      "ideal_flops_ratio": step_cost(layers_f, "sparse", params, masks) / step_cost(layers_f)}
    print(f"  timing {len(fns)} configurations x {args.repeats} interleaved repeats ...", flush=True)
    t = interleaved(fns, args.repeats, args.warmup, device)
    other = dict(OTHER_TIMES)
    sgd, sgd_other = med(t["SGD"]), med(other["SGD"])
    rows = []
    for name, times in t.items():
        ratio = med(times) / sgd
        row = {"config": name, "seconds": med(times), "ratio_to_sgd": ratio,
               "other_clock_ratio_to_sgd": med(other[name]) / sgd_other, **info.get(name, {})}
        if name in info:
            row["over_ideal"] = ratio / info[name]["ideal_seconds_ratio"]
            row["within_10pct"] = row["over_ideal"] <= 1.10
        rows.append(row)
    out = {"clock": CLOCK, "rows": rows, "sam_over_sgd": med(t["SAM"]) / sgd, "raw": t,
           f"raw_{other_clock()}_clock": other,
           "layer_costs": [{"name": layer.name, "stage": layer.stage, "forward_s": layer.forward,
                            "input_grad_s": layer.input_grad, "weight_grad_s": layer.weight_grad,
                            "forward_flops": lf.forward, "input_grad_flops": lf.input_grad,
                            "weight_grad_flops": lf.weight_grad}
                           for layer, lf in zip(layers_s, layers_f)],
           "ideal_sam_over_sgd_seconds": step_cost(layers_s, "sam") / step_cost(layers_s)}
    out["top_blocks_over_sgd"] = {r["config"]: r["ratio_to_sgd"] for r in rows if "top blocks" in r["config"]}

    print(f"\n  {'config':<28} {'density':>7} {'tensors':>7} {'start':>5} {'step/SGD':>8} {other_clock():>6} "
          f"{'ideal':>6} {'flops':>6} {'/ideal':>6}")
    for r in rows:
        if "density" in r:
            print(f"  {r['config']:<28} {r['density']:7.4f} {r['tensors']:7d} {r['suffix_start']:5d} "
                  f"{r['ratio_to_sgd']:8.3f} {r['other_clock_ratio_to_sgd']:6.3f} {r['ideal_seconds_ratio']:6.3f} "
                  f"{r['ideal_flops_ratio']:6.3f} {r['over_ideal']:6.3f}"
                  f"{'' if r['within_10pct'] else '  > 10% over ideal'}")
        else:
            print(f"  {r['config']:<28} {'':7} {'':7} {'':5} {r['ratio_to_sgd']:8.3f} "
                  f"{r['other_clock_ratio_to_sgd']:6.3f}")
    met = sum(r.get("within_10pct", False) for r in rows)
    print(f"\n  within 10% of ideal: {met}/{len(info)} masks")
    for name, ratio in out["top_blocks_over_sgd"].items():
        print(f"  {name}: {ratio:.3f}x SGD (target <= 1.2: {'met' if ratio <= 1.2 else 'MISSED'})")
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small and fast: width 16, batch 64, few repeats")
    p.add_argument("--device", default="cpu")
    p.add_argument("--width", type=int, default=None, help="ResNet-18 width (default 32; quick 16)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 128; quick 64)")
    p.add_argument("--repeats", type=int, default=None, help="timed whole steps per configuration (default 5)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads on CPU")
    p.add_argument("--fisher-samples", type=int, default=128)
    p.add_argument("--check-samples", type=int, default=32,
                   help="samples of the eval-mode batch-1 loop the Fisher scores are checked against")
    p.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.9, 0.98])
    p.add_argument("--cost-unit", choices=("seconds", "flops"), default="seconds",
                   help="per-layer costs the cost-aware masks use")
    p.add_argument("--ascent-budget", type=float, default=0.25,
                   help="cost-aware masks: ascent cost at most this fraction of an SGD step (0: fill the "
                        "parameter budget)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="what the ratios are measured in: wall time, or process CPU time (with --threads 1 "
                        "the robust choice on a machine shared with other jobs)")
    p.add_argument("--stat", choices=("median", "min"), default="median",
                   help="summary of repeated timings; min resists other processes on a shared machine")
    p.add_argument("--parts", default="1,2,3")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    args.width = args.width or (16 if args.quick else 32)
    args.batch = args.batch or (64 if args.quick else 128)
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.opt_repeats = 20 if args.quick else 200
    args.fisher_repeats = 1 if args.quick else (5 if args.device.startswith("cuda") else 2)
    args.layer_repeats = 3 if args.quick else 5
    global STAT, CLOCK
    STAT = statistics.median if args.stat == "median" else min
    CLOCK = args.clock
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    parts = {int(s) for s in args.parts.split(",")}
    x, y = make_batch(args.batch, device)
    result = {"machine": machine(device), "provenance": provenance(device),
              "args": {k: v for k, v in vars(args).items() if k != "out"}}  # no machine paths
    print(f"ResNet-18 width {args.width}, batch {args.batch}, {device}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, {result['machine']['cpu']}; {args.stat} of {CLOCK}-clock times")
    start = time.perf_counter()
    scores = None
    if 1 in parts:
        result["P1"] = part1(args, device, x, y)
    if 2 in parts:
        result["P2"], scores = part2(args, device)
    if 3 in parts:
        result["P3"] = part3(args, device, x, y, scores)
    result["wall_seconds"] = time.perf_counter() - start
    try:
        result["machine"]["loadavg_end"] = os.getloadavg()
    except OSError:
        pass
    print(f"\ntotal {result['wall_seconds']:.0f} s")
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1, default=float))
        print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
