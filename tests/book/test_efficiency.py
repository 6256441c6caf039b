"""Measurements of notebook 4 (sparsam.book.efficiency) on a narrow CIFAR ResNet-18 and random images."""

from __future__ import annotations

import itertools

import pytest
import torch

import layer_flops

from sparsam.masks import cost

from sparsam.book import efficiency

from sparsam.masks import patterns as masks

from sparsam.experiment import models
from sparsam.experiment.models import model_stages

DEVICE = torch.device("cpu")


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = models.build_model("resnet18", 10, width=4)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    params = list(model.parameters())
    scores = [torch.rand_like(p) for p in params]
    layers = cost.layer_costs(model_stages(model), x, unit="flops")
    return model, x, y, params, scores, layers


def test_masks_of_every_rule_keep_about_the_requested_share(setup):
    model, x, y, params, scores, layers = setup
    sets = efficiency.masks_for(scores, cost.tensor_costs(layers, params), 0.9)
    assert list(sets) == list(efficiency.MASK_RULES)
    assert masks.density(sets["unstructured (papers' rule)"]) == pytest.approx(0.1, abs=1e-3)
    for name, mask in sets.items():
        assert 0 < masks.density(mask) <= 0.1 + 1e-3, name


def test_flops_ratios_put_sam_at_two_unstructured_with_it_and_structured_masks_below(setup):
    model, x, y, params, scores, layers = setup
    sets = efficiency.masks_for(scores, cost.tensor_costs(layers, params), 0.9)
    sets = {**sets, "nothing": [torch.zeros_like(p, dtype=torch.bool) for p in params],
            "everything": [torch.ones_like(p, dtype=torch.bool) for p in params]}
    ratios = efficiency.flops_ratios(layers, params, sets, "realised")
    # exactly the layer formula's counts (tests/layer_flops.py), mask by mask
    chain = layer_flops.calls(model_stages(model), x)
    sgd = layer_flops.sgd_step(chain)
    expected = {"SAM": 2.0, **{name: layer_flops.sparse_step(chain, params, mask) / sgd for name, mask in sets.items()}}
    assert ratios == pytest.approx(expected, rel=1e-6)  # row shares are float32 means in the code
    assert ratios["SAM"] == pytest.approx(2.0)
    assert ratios["nothing"] == pytest.approx(1.0) and ratios["everything"] == pytest.approx(2.0)
    assert ratios["unstructured (papers' rule)"] == pytest.approx(2.0)   # scattered entries skip no layer
    for name in ("layer (papers' rule)", "filter", "layer, cost-aware (this book)"):
        assert 1.0 < ratios[name] < 2.0, name


def test_ideal_flops_ratios_are_the_hand_count_and_below_the_realised_ones(setup):
    """In theory (an ideal sparse kernel) every mask saves FLOPs, the unstructured one too, which today's kernels
    run at SAM's cost; the counts are the layer formula's (tests/layer_flops.py), independent of the cost model;
    in the explicit form no mask costs more in theory than the sparse ascent pass realises."""
    model, x, y, params, scores, layers = setup
    sets = efficiency.masks_for(scores, cost.tensor_costs(layers, params), 0.9)
    sets = {**sets, "nothing": [torch.zeros_like(p, dtype=torch.bool) for p in params],
            "everything": [torch.ones_like(p, dtype=torch.bool) for p in params]}
    chain = layer_flops.calls(model_stages(model), x)
    sgd = layer_flops.sgd_step(chain)
    realised = efficiency.flops_ratios(layers, params, sets, "realised")
    for form in ("explicit", "implicit"):
        ideal = efficiency.flops_ratios(layers, params, sets, f"ideal {form}")
        expected = {"SAM": 2.0, **{name: layer_flops.ideal_step(chain, params, mask, form) / sgd
                                   for name, mask in sets.items()}}
        assert ideal == pytest.approx(expected, rel=1e-6), form
        assert ideal["nothing"] == pytest.approx(1.0) and ideal["everything"] == pytest.approx(2.0), form
        assert ideal["unstructured (papers' rule)"] < 1.95, form  # a saving in theory: the papers' claim
        if form == "explicit":  # the sparse ascent pass runs the explicit form, skipping part of what it could
            for name in efficiency.MASK_RULES:
                assert ideal[name] <= realised[name] + 1e-9, name
    with pytest.raises(ValueError, match="accounting must be one of"):
        efficiency.flops_ratios(layers, params, sets, "ideal")  # type: ignore[arg-type]


def test_every_step_runner_moves_its_network_and_time_steps_interleaves_with_medians(setup):
    model, x, y, params, scores, layers = setup
    sets = efficiency.masks_for(scores, cost.tensor_costs(layers, params), 0.5)
    built = []

    def build():
        built.append(models.build_model("resnet18", 10, width=4))
        return built[-1]

    runners = efficiency.step_runners(build, x, y, rho=0.1, mask_sets=sets, fisher_batch=(x, y), sparsity=0.5,
                                      num_samples=8)
    assert set(runners) == {"SGD", "SAM", "SSAM explicit", "sparse ascent, layer (papers' rule)",
                            "sparse ascent, filter", "sparse ascent, layer, cost-aware (this book)"}
    # every runner is a step of its own fresh network: one call moves the weights of exactly one of
    # the networks built, a different one for each runner
    assert len(built) == len(runners)
    moved = set()
    for name, run in runners.items():
        before = [[p.detach().clone() for p in net.parameters()] for net in built]
        run()
        changed = [k for k, net in enumerate(built)
                   if any(not torch.equal(a, p) for a, p in zip(before[k], net.parameters()))]
        assert len(changed) == 1 and changed[0] not in moved, (name, changed)
        moved.add(changed[0])
    calls = []
    fake = {name: (lambda name=name: calls.append(name)) for name in ("a", "b")}
    ticks = itertools.count()
    medians = efficiency.time_steps(fake, 3, DEVICE, clock=lambda: float(next(ticks)))
    assert calls == ["a", "b"] + ["a", "b", "b", "a", "a", "b"] and medians == {"a": 1.0, "b": 1.0}
    with pytest.raises(ValueError, match="repeats"):
        efficiency.time_steps(fake, 0, DEVICE)
    medians = efficiency.time_steps(runners, 1, DEVICE)
    assert set(medians) == set(runners) and all(t > 0 for t in medians.values())


def test_time_rounds_rotates_the_order_and_charges_each_runner_its_own_time():
    now = [0.0]
    cost = {"a": 1.0, "b": 3.0, "c": 5.0}
    order = []

    def runner(name: str):
        def run() -> None:
            order.append(name)
            now[0] += cost[name]
        return run

    rounds = efficiency.time_rounds({n: runner(n) for n in cost}, 3, DEVICE, clock=lambda: now[0])
    assert order == ["a", "b", "c"] + ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert list(rounds.columns) == ["a", "b", "c"] and len(rounds) == 3
    assert rounds.to_numpy().tolist() == [[1.0, 3.0, 5.0]] * 3


def test_fisher_times_and_benchmark_rows(setup):
    model, x, y, *_ = setup
    times = efficiency.fisher_times(model, x, y, [2, 4], DEVICE)
    assert list(times.index) == [2, 4] and (times > 0).all().all() and times.shape[1] == 4
    rows = efficiency.benchmark_rows({"P1": {"ssam_over_sam_optimizer_step": 1.07, "sam_over_sgd": 1.88},
                                      "P3": {"rows": [{"over_ideal": 1.0, "within_10pct": True}]}})
    assert list(rows["measured"]) == ["1.070", "1.880", "1 / 1"]
    assert efficiency.benchmark_rows({}).empty


def test_each_step_runner_runs_the_method_it_is_named_for_by_its_flops(setup):
    """One call of each runner, counted by torch's FlopCounterMode, against the layer formula
    (tests/layer_flops.py): SGD one step, SAM and explicit SSAM two dense passes, and a sparse ascent
    runner the sparse count of its own mask: a plain SAM step in its place counts 2 SGD steps.

    Two masks start at the first layer of a stage (the last block, and half the filters of its convs),
    where the ascent pass's count is exactly the formula's. The notebook's masks count at least the
    formula's ideal (one starting inside a stage re-runs the stage's forward from its first layer, which
    the formula does not count) and less than SAM."""
    from torch.utils.flop_counter import FlopCounterMode

    model, x, y, params, scores, layers = setup
    names = [name for name, _ in model.named_parameters()]
    top = [name.startswith(("layers.7.", "fc.")) for name in names]
    half = [(torch.arange(p.shape[0]) < p.shape[0] // 2).reshape(-1, *[1] * (p.dim() - 1)).expand_as(p).clone()
            if name.startswith("layers.7.conv") else torch.full_like(p, name.startswith("fc."), dtype=torch.bool)
            for name, p in zip(names, params)]
    sets = {"layer, last block": [torch.full_like(p, keep, dtype=torch.bool) for p, keep in zip(params, top)],
            "filter, half the last block": half,
            **efficiency.masks_for(scores, cost.tensor_costs(layers, params), 0.9)}
    runners = efficiency.step_runners(lambda: models.build_model("resnet18", 10, width=4), x, y, rho=0.1,
                                      mask_sets=sets, fisher_batch=(x, y), sparsity=0.5, num_samples=8)
    counted = {}
    for name, run in runners.items():
        run()                                           # the first step: momentum buffers, the mask's build
        with FlopCounterMode(display=False) as counter:
            run()
        counted[name] = counter.get_total_flops()
    chain = layer_flops.calls(model_stages(model), x)
    sgd = layer_flops.sgd_step(chain)
    assert counted["SGD"] == sgd and counted["SAM"] == counted["SSAM explicit"] == 2 * sgd
    for name in ("layer, last block", "filter, half the last block"):
        expected = layer_flops.sparse_step(chain, params, sets[name])
        assert sgd < expected < 1.2 * sgd
        assert counted[f"sparse ascent, {name}"] == pytest.approx(expected, rel=1e-9), name
    for name in ("layer (papers' rule)", "filter", "layer, cost-aware (this book)"):
        ideal = layer_flops.sparse_step(chain, params, sets[name])
        assert ideal * (1 - 1e-6) <= counted[f"sparse ascent, {name}"] < 2 * sgd, name
