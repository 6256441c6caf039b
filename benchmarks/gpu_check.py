"""GPU check of the implicit form's 2:4 path: same ε as the dense fallback, and what it costs.

    python benchmarks/gpu_check.py [--out results/gpu_check.json]      # a CUDA GPU; < 2 min on an H100

On a stack of bf16 ``nn.Linear`` layers (width and token count multiples of 64) with 2:4 masks along
the output dimension (``masks.n_m(..., dim="out")``, the layout of the input gradient's reduction):

1. ε of ``SSAM(form="implicit")`` (2:4 semi-structured input gradient wherever
   ``implicit.semi_structured_ok``) against ε from the dense fallback (``implicit_ascent(...,
   sparse=False)``) on the same batch, and both against a float32 dense-fallback ε: cosines and
   distances relative to ρ. Fails (exit 1) if the sparse kernel did not run or the two bf16 ε
   differ by more than ``--tol`` ρ beyond twice the dense fallback's own distance to float32.
2. Times of the ascent pass (forward + backward), interleaved, by CUDA events: implicit with the
   sparse kernel (including the per-step compression of ``(W⊙M)ᵀ``), implicit with the dense
   fallback, and SAM's plain dense pass.

``--device cpu`` runs the same code on the CPU at a tiny size (dense fallback only), to check the
script itself. The device paths of the tests (``pytest tests/test_implicit.py tests/test_sam.py``)
run on the same GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sparsam import SSAM
from sparsam.masks import patterns  # noqa: E402
from sparsam.optim.implicit import implicit_ascent, semi_structured_ok  # noqa: E402
from sparsam.experiment.provenance import provenance  # noqa: E402
from sparsam.masks.strategies import MaskStrategy  # noqa: E402


class FixedMasks(MaskStrategy):
    """The given 2:4 masks, every step."""

    pattern = "2:4"

    def __init__(self, masks: list[Tensor]):
        super().__init__(1, "steps", None)
        self.fixed = masks

    def _build(self, step: int) -> list[Tensor]:
        return list(self.fixed)


def mlp(width: int, depth: int, dtype: torch.dtype, device: torch.device) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.GELU()]
    return nn.Sequential(*layers[:-1]).to(device=device, dtype=dtype)


def loss_of(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    return F.mse_loss(model(x).float(), target)


def ascent_gradient(model: nn.Module, masks: dict[int, Tensor], x: Tensor, target: Tensor,
                    sparse: bool | None) -> list[Tensor]:
    """g̃ of the implicit form, with (``None``: where possible) or without (``False``) the sparse kernel."""
    with implicit_ascent(model, masks, sparse=sparse):
        loss = loss_of(model, x, target)
    return [g.float() for g in torch.autograd.grad(loss, list(model.parameters()))]


def eps_of(grads: list[Tensor], rho: float) -> Tensor:
    flat = torch.cat([g.reshape(-1) for g in grads])
    return rho * flat / flat.norm()


def compare(a: Tensor, b: Tensor, rho: float) -> dict[str, float]:
    return {"cosine": float(F.cosine_similarity(a, b, dim=0)), "distance_over_rho": float((a - b).norm() / rho)}


def timed(fns: dict, repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Milliseconds per call, the functions interleaved round by round (CUDA events on a GPU)."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(3):  # warm-up: kernel selection, compression caches
        for fn in fns.values():
            fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                out[name].append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                out[name].append(1e3 * (time.perf_counter() - t0))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rho", type=float, default=0.05)
    parser.add_argument("--tol", type=float, default=0.02,
                        help="|ε_sparse - ε_dense| / ρ accepted beyond twice the dense fallback's own bf16 error")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (use --device cpu to check the script itself)", file=sys.stderr)
        return 2
    if device.type == "cpu":
        args.width, args.tokens, args.repeats = min(args.width, 128), min(args.tokens, 256), min(args.repeats, 3)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

    model = mlp(args.width, args.depth, dtype, device)
    reference = mlp(args.width, args.depth, torch.float32, device)
    g = torch.Generator(device="cpu").manual_seed(1)
    x = torch.randn(args.tokens, args.width, generator=g).to(device)
    target = torch.randn(args.tokens, args.width, generator=g).to(device)
    weights = [p for p in model.parameters() if p.dim() == 2]
    nm = patterns.n_m([torch.rand(p.shape, generator=g).to(device) for p in weights], 2, 4, dim="out")
    masks = {id(p): m for p, m in zip(weights, nm)}
    sparse_ok = [semi_structured_ok(p, m) for p, m in zip(weights, nm)]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sparse_eps = eps_of(ascent_gradient(model, masks, x.to(dtype), target, None), args.rho)
    fallbacks = [str(w.message) for w in caught if "dense fallback" in str(w.message)]
    dense_eps = eps_of(ascent_gradient(model, masks, x.to(dtype), target, False), args.rho)
    ref_masks = {id(q): masks[id(p)] for p, q in zip(model.parameters(), reference.parameters()) if id(p) in masks}
    fp32_eps = eps_of(ascent_gradient(reference, ref_masks, x, target, False), args.rho)

    # the optimizer itself: SSAM(form="implicit")'s first pass gives the same g̃ (ε read off bf16
    # weights would drown in their rounding), and its first step runs
    mask = FixedMasks([masks.get(id(p), torch.ones_like(p, dtype=torch.bool)) for p in model.parameters()])
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=args.rho, mask=mask, form="implicit", model=model, lr=0.0)
    with opt.ascent_pass():
        loss_of(model, x.to(dtype), target).backward()
    ssam_eps = eps_of([p.grad.float() for p in model.parameters()], args.rho)
    opt.first_step(zero_grad=True)
    opt.restore()

    def sam_pass() -> None:
        loss_of(model, x.to(dtype), target).backward()
        model.zero_grad(set_to_none=True)

    def implicit_pass(sparse: bool | None):
        def run() -> None:
            with implicit_ascent(model, masks, sparse=sparse):
                loss = loss_of(model, x.to(dtype), target)
            loss.backward()
            model.zero_grad(set_to_none=True)
        return run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times = timed({"implicit, 2:4 sparse kernel": implicit_pass(None),
                       "implicit, dense fallback": implicit_pass(False), "SAM ascent (dense)": sam_pass},
                      args.repeats, device)
    medians = {k: statistics.median(v) for k, v in times.items()}

    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(dtype), "width": args.width, "depth": args.depth, "tokens": args.tokens, "rho": args.rho,
        "sparse_kernel_layers": f"{sum(sparse_ok)}/{len(sparse_ok)}", "fallback_warnings": fallbacks,
        "sparse_vs_dense_fallback": compare(sparse_eps, dense_eps, args.rho),
        "sparse_vs_fp32": compare(sparse_eps, fp32_eps, args.rho),
        "dense_fallback_vs_fp32": compare(dense_eps, fp32_eps, args.rho),
        "ssam_step_vs_sparse_context": compare(ssam_eps, sparse_eps, args.rho),
        "median_ms": medians,
        "sparse_over_dense_fallback": medians["implicit, 2:4 sparse kernel"] / medians["implicit, dense fallback"],
        "sparse_over_sam": medians["implicit, 2:4 sparse kernel"] / medians["SAM ascent (dense)"],
        "times_ms": times, "provenance": provenance(device),
    }
    print(json.dumps({k: v for k, v in result.items() if k not in ("times_ms", "provenance")}, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    failures = []
    if device.type == "cuda" and (not all(sparse_ok) or fallbacks):
        failures.append("the 2:4 sparse kernel did not run on every layer")
    rounding = 2 * result["dense_fallback_vs_fp32"]["distance_over_rho"]  # what bf16 costs the dense path
    if result["sparse_vs_dense_fallback"]["distance_over_rho"] > args.tol + rounding:
        failures.append(f"sparse and dense-fallback ε differ by more than {args.tol} ρ + bf16 rounding")
    if result["ssam_step_vs_sparse_context"]["distance_over_rho"] > args.tol + rounding:
        failures.append("SSAM(form='implicit')'s ε is not the implicit context's")
    for failure in failures:
        print("gpu_check FAILED:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
