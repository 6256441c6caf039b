"""Measurements of notebook 4: what one training step and one Fisher mask cost, per method.

- :func:`masks_for`: the masks of the papers' Fisher rules (unstructured, layer), of filters and of the
  cost-aware layer rule, from one set of Fisher scores;
- :func:`flops_ratios`: FLOPs per step of each mask, per SGD step, by one of :data:`ACCOUNTINGS`: in theory (what
  an ideal sparse kernel skips, :mod:`sparsam.masks.ideal_cost`: the papers' claim) or realised (what this
  package's sparse ascent pass skips with today's kernels, a separate number the papers never claimed);
- :func:`step_runners` and :func:`time_steps`: one training step per method on the same batch, timed
  interleaved across methods (so that a slow moment of a shared machine hits all of them);
  :func:`time_rounds` keeps every round's times;
- :func:`fisher_times`: the Fisher pass against the official one-sample loop and the batching limit;
- :func:`benchmark_rows`: the target table of a ``benchmarks/bench_efficiency.py`` JSON record.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Callable, Literal, Mapping, Sequence, get_args

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..masks import cost, patterns
from ..masks.ideal_cost import ideal_step_cost
from .._checks import check_choice
from ..masks.fisher import fisher_scores, fisher_scores_official
from .._timing import timed
from ..experiment.models import model_stages
from ..experiment.optimizers import build_optimizer
from ..masks.strategies import FisherMask

MASK_RULES = ("unstructured (papers' rule)", "layer (papers' rule)", "filter", "layer, cost-aware (this book)")


def masks_for(scores: Sequence[Tensor], per_tensor: Sequence[tuple[float, float]], sparsity: float
              ) -> dict[str, list[Tensor]]:
    """The masks of :data:`MASK_RULES` at ``sparsity`` from Fisher ``scores`` (``per_tensor``: the
    ascent costs of :func:`sparsam.masks.cost.tensor_costs`, used by the cost-aware rule only)."""
    return {MASK_RULES[0]: patterns.unstructured(scores, sparsity),
            MASK_RULES[1]: patterns.structured(scores, sparsity, "layer"),
            MASK_RULES[2]: patterns.structured(scores, sparsity, "filter"),
            MASK_RULES[3]: cost.cost_aware_mask(scores, per_tensor, sparsity, "layer")}


Accounting = Literal["ideal explicit", "ideal implicit", "realised"]
ACCOUNTINGS: tuple[str, ...] = get_args(Accounting)


def flops_ratios(layers: Sequence[cost.LayerCost], params: Sequence[Tensor],
                 mask_sets: Mapping[str, Sequence[Tensor]], accounting: Accounting) -> dict[str, float]:
    """FLOPs per step, per FLOPs of an SGD step: SAM's, and each mask's by ``accounting``.

    ``"ideal explicit"`` and ``"ideal implicit"``: the theoretical count of
    :func:`sparsam.masks.ideal_cost.ideal_step_cost` in that form, the products an ideal sparse kernel skips in
    the ascent pass (the papers' claim is of this kind); ``"realised"``: :func:`sparsam.masks.cost.step_cost` for
    the sparse ascent pass as today's kernels run it, which skips every layer below the lowest perturbed one and
    the weight-gradients of unperturbed whole tensors or filters only (an unstructured mask, scattered over every
    tensor, skips nothing there: it costs what SAM costs)."""
    check_choice("accounting", accounting, ACCOUNTINGS)
    sgd = cost.step_cost(layers, "sgd")
    ratios = {"SAM": cost.step_cost(layers, "sam") / sgd}
    for name, mask in mask_sets.items():
        if accounting == "realised":
            step = cost.step_cost(layers, "sparse", params, mask)
        else:
            step = ideal_step_cost(layers, params, mask, form="explicit" if accounting == "ideal explicit"
                                   else "implicit")
        ratios[name] = step / sgd
    return ratios


def step_runners(build: Callable[[], nn.Module], x: Tensor, y: Tensor, *, rho: float,
                 mask_sets: Mapping[str, Sequence[Tensor]], fisher_batch: tuple[Tensor, Tensor], sparsity: float,
                 num_samples: int) -> dict[str, Callable[[], Any]]:
    """One training step per method on the batch ``(x, y)``, each on a fresh network from ``build``:
    SGD, SAM, explicit SSAM-F (its Fisher mask built once, on ``fisher_batch``) and a sparse ascent
    step through each structured mask of ``mask_sets``."""
    def sgd() -> Callable[[], Any]:
        net = build()
        opt = build_optimizer("sgd", net.parameters(), lr=0.01, momentum=0.9)

        def step() -> None:
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
        return step

    def two_pass(make: Callable[[nn.Module], torch.optim.Optimizer]) -> Callable[[], Any]:
        net = build()
        opt = make(net)

        def closure() -> Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            return loss
        return lambda: opt.step(closure)

    def sparse(mask: Sequence[Tensor]) -> Callable[[], Any]:
        return two_pass(lambda net: build_optimizer("ssam-f", net.parameters(), lr=0.01, momentum=0.9, rho=rho,
                                                    mask=mask, normalize="masked", ascent="sparse",
                                                    stages=model_stages(net)))

    runners = {"SGD": sgd(),
               "SAM": two_pass(lambda net: build_optimizer("sam", net.parameters(), lr=0.01, momentum=0.9, rho=rho)),
               "SSAM explicit": two_pass(lambda net: build_optimizer(
                   "ssam-f", net.parameters(), lr=0.01, momentum=0.9, rho=rho,
                   mask=FisherMask(net, [fisher_batch], sparsity=sparsity, num_samples=num_samples,
                                   update_every=10**9, update_unit="steps")))}
    runners.update({f"sparse ascent, {name}": sparse(mask) for name, mask in mask_sets.items()
                    if not name.startswith("unstructured")})
    return runners


def time_rounds(runners: Mapping[str, Callable[[], Any]], repeats: int, device: torch.device,
                clock: Callable[[], float] = time.perf_counter) -> pd.DataFrame:
    """Seconds of every runner in each of ``repeats`` rounds (one row per round, one column per runner):
    one warm-up call each, then rounds in which every runner is called once, the order rotated by one
    each round, so that a slow moment of a shared machine and the position in a round hit all alike."""
    if repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    for run in runners.values():
        run()
    names = list(runners)
    rows = []
    for r in range(repeats):
        row = {}
        for name in names[r % len(names):] + names[:r % len(names)]:
            row[name] = timed(runners[name], device, clock)[0]
        rows.append(row)
    return pd.DataFrame(rows, columns=names)


def time_steps(runners: Mapping[str, Callable[[], Any]], repeats: int, device: torch.device,
               clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median seconds per step of each runner over the rounds of :func:`time_rounds`."""
    return {name: float(t) for name, t in time_rounds(runners, repeats, device, clock).median().items()}


def fisher_times(model: nn.Module, images: Tensor, labels: Tensor, sizes: Sequence[int],
                 device: torch.device) -> pd.DataFrame:
    """Seconds of one Fisher estimate at each ``N_F`` in ``sizes``: batched per layer, batched with
    ``torch.func.vmap``, the official one-sample loop (on a copy: it moves BatchNorm statistics) and
    the limit of any batched pass (one summed gradient of the same samples). One row per N_F."""
    params = list(model.parameters())

    def seconds(fn: Callable[[], Any]) -> float:
        return timed(fn, device)[0]

    rows = []
    for n in sizes:
        batch = [(images[:n], labels[:n])]
        twin = copy.deepcopy(model)
        row = {"N_F": n,
               "batched, per layer": seconds(lambda: fisher_scores(model, params, batch, n, method="per_layer")),
               "batched, torch.func.vmap": seconds(lambda: fisher_scores(model, params, batch, n, method="vmap")),
               "one sample at a time (official)": seconds(
                   lambda: fisher_scores_official(twin, list(twin.parameters()), batch, n))}
        model.eval()
        row["limit: one batched gradient"] = seconds(
            lambda: torch.autograd.grad(F.cross_entropy(model(batch[0][0]), batch[0][1]), params))
        model.train()
        rows.append(row)
    return pd.DataFrame(rows).set_index("N_F")


def benchmark_rows(table: Mapping[str, Any]) -> pd.DataFrame:
    """The measurements of a ``bench_efficiency.py`` record against their targets, one row each."""
    rows = []
    if "P1" in table:
        p1 = table["P1"]
        rows.append(("optimizer step only, SSAM explicit / SAM", f"{p1['ssam_over_sam_optimizer_step']:.3f}",
                     "≤ 1.10"))
        rows.append(("whole step, SAM / SGD", f"{p1['sam_over_sgd']:.3f}", "≤ 2.05"))
    if "P2" in table:
        p2 = table["P2"]
        ratio = p2.get("official_over_per_layer", p2.get("official_over_vmap"))
        rows.append(("Fisher, official batch-1 loop / fisher_scores", f"{ratio:.2f}", "≥ 10"))
        if "official_over_batched_gradient" in p2:
            rows.append(("Fisher, official batch-1 loop / one batched gradient (the limit of batching here)",
                         f"{p2['official_over_batched_gradient']:.2f}", "(limit)"))
        if "max_rel_diff_per_layer_vs_float64_loop" in p2:
            rows.append(("Fisher scores, max relative difference from a float64 batch-1 loop",
                         f"{p2['max_rel_diff_per_layer_vs_float64_loop']:.1e}", "≤ 1e-5"))
    if "P3" in table:
        p3 = [r for r in table["P3"]["rows"] if "over_ideal" in r]
        within = sum(r["within_10pct"] for r in p3)
        rows.append(("sparse-ascent masks within 10% of their ideal cost", f"{within} / {len(p3)}", "all"))
        for name, ratio in table["P3"].get("top_blocks_over_sgd", {}).items():
            rows.append((f"{name} / SGD", f"{ratio:.3f}", "≤ 1.2"))
    return pd.DataFrame(rows, columns=["measurement", "measured", "target"])
