"""Sparse ascent (sparsam.optim.sparse_ascent), cost model (sparsam.masks.cost) and the cost-aware mask rule
(sparsam.masks.patterns.cost_aware): same SSAM step, less work."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from sparsam import SSAM

from sparsam.masks import patterns
from sparsam.masks.cost import layer_costs, step_cost, tensor_costs
from sparsam.masks import cost_aware
from sparsam.optim.sparse_ascent import SparseAscentSAM, plan_ascent, run_stages

from nets import FixedMask

RHO = 0.5


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.short(x))


def tiny_stages(seed: int = 0) -> list[nn.Module]:
    """A small CIFAR-style ResNet as a chain: [stem, block, block, block, head]."""
    torch.manual_seed(seed)
    return [nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU()),
            Block(8, 8, 1), Block(8, 16, 2), Block(16, 16, 1),
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))]


def batch(seed: int = 1, n: int = 16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def params_of(stages):
    return [p for s in stages for p in s.parameters()]


def layer_masks(stages, names):
    """Whole-tensor masks: True for the parameters named "stage.param" in ``names``."""
    out = []
    for k, s in enumerate(stages):
        for n, p in s.named_parameters():
            out.append(torch.full(p.shape, f"{k}.{n}" in names, dtype=torch.bool))
    return out


def filter_masks(stages, sparsity=0.6, seed=3):
    g = torch.Generator().manual_seed(seed)
    scores = [torch.rand(p.shape, generator=g) for p in params_of(stages)]
    return patterns.structured(scores, sparsity, "filter")


OPTIMIZERS = []


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: extra threads only spin (and crawl on a loaded machine); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _release_guards():
    """A test that stops after the first pass leaves the weights at w + ε and the BatchNorm guard active."""
    yield
    for opt in OPTIMIZERS:
        opt.restore()
    OPTIMIZERS.clear()


def sparse(stages, masks, **kw):
    opt = SparseAscentSAM(stages, torch.optim.SGD, rho=RHO, mask=masks, **kw)
    OPTIMIZERS.append(opt)
    return opt


def first_pass(opt, stages, x, y):
    """The ascent pass by SAM's protocol: forward + backward inside ascent_pass(), then first_step()."""
    with opt.ascent_pass():
        loss = F.cross_entropy(run_stages(stages, x), y)
        loss.backward()
    opt.first_step(zero_grad=True)
    return loss.detach()


def second_pass(stages, x, y):
    """The descent pass: forward + backward at w + ε (the prefix stages serve their kept output)."""
    loss = F.cross_entropy(run_stages(stages, x), y)
    loss.backward()
    return loss.detach()


def sparse_step(opt, stages, x, y):
    """One ``opt.step(closure)`` on the cross-entropy of the chain ``stages``; returns the first loss."""
    def closure():
        loss = F.cross_entropy(run_stages(stages, x), y)
        loss.backward()
        return loss
    return opt.step(closure).detach()


def reference(stages, masks, **kw):
    """SSAM explicit, masked normalisation, over the same modules as one nn.Sequential."""
    model = nn.Sequential(*stages)
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=RHO, mask=FixedMask(masks), normalize="masked", **kw)
    OPTIMIZERS.append(opt)
    return model, opt


def eps_of(opt):
    perturbed = {id(p) for p in opt._perturbed}
    return [(p - opt.state[p]["w"]) if id(p) in perturbed else torch.zeros_like(p) for p in opt._params()]


TOP = {"3.conv2.weight", "3.bn2.weight", "3.bn2.bias", "4.2.weight", "4.2.bias"}
MIDDLE = {"2.short.0.weight", "2.conv2.weight", "4.2.weight"}


@pytest.mark.parametrize("names", [TOP, MIDDLE, {"0.0.weight"}])
def test_layer_structured_epsilon_is_bit_identical(names):
    stages = tiny_stages()
    ref_stages = copy.deepcopy(stages)
    masks = layer_masks(stages, names)
    x, y = batch()
    opt = sparse(stages, masks, lr=0.1)
    loss = first_pass(opt, stages, x, y)
    model, ref = reference(ref_stages, masks, lr=0.1)
    ref_loss = F.cross_entropy(model(x), y)
    ref_loss.backward()
    ref.first_step(zero_grad=True)
    assert torch.equal(loss, ref_loss.detach())
    for p, q in zip(opt._params(), ref._params()):
        assert torch.equal(p, q)  # w + ε, bit for bit
    for m, e in zip(masks, eps_of(opt)):
        assert not e[~m].any()
    assert torch.stack([e.norm() for e in eps_of(opt)]).norm().item() == pytest.approx(RHO, rel=1e-5)


def test_filter_structured_epsilon_matches_explicit():
    stages = tiny_stages()
    ref_stages = copy.deepcopy(stages)
    masks = filter_masks(stages)
    plan = plan_ascent(stages, params_of(stages), masks)
    assert "rows" in plan.kinds  # the kept-rows weight gradient is exercised
    x, y = batch()
    opt = sparse(stages, masks, lr=0.1)
    first_pass(opt, stages, x, y)
    model, ref = reference(ref_stages, masks, lr=0.1)
    F.cross_entropy(model(x), y).backward()
    ref.first_step(zero_grad=True)
    for e, r, m in zip(eps_of(opt), eps_of(ref), masks):
        torch.testing.assert_close(e, r, rtol=0, atol=1e-6)
        assert not e[~m].any()


def test_unstructured_partial_mask_falls_back_to_dense_weight_gradient():
    stages = tiny_stages()
    ref_stages = copy.deepcopy(stages)
    g = torch.Generator().manual_seed(5)
    masks = patterns.unstructured([torch.rand(p.shape, generator=g) for p in params_of(stages)], 0.7)
    assert "dense" in plan_ascent(stages, params_of(stages), masks).kinds
    x, y = batch()
    opt = sparse(stages, masks, lr=0.1)
    first_pass(opt, stages, x, y)
    model, ref = reference(ref_stages, masks, lr=0.1)
    F.cross_entropy(model(x), y).backward()
    ref.first_step(zero_grad=True)
    for e, r in zip(eps_of(opt), eps_of(ref)):
        torch.testing.assert_close(e, r, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["top", "middle", "filter"])
def test_full_step_equals_plain_ssam_step(kind):
    """Descent gradient with prefix reuse == plain two-pass gradient at w+ε; same base step; BN once."""
    stages = tiny_stages()
    ref_stages = copy.deepcopy(stages)
    masks = filter_masks(stages) if kind == "filter" else layer_masks(stages, TOP if kind == "top" else MIDDLE)
    kw = dict(lr=0.1, momentum=0.9, weight_decay=5e-4)
    opt = sparse(stages, masks, **kw)
    model, ref = reference(ref_stages, masks, **kw)
    for step in range(2):
        x, y = batch(seed=10 + step)
        loss = sparse_step(opt, stages, x, y)

        def closure():
            out = F.cross_entropy(model(x), y)
            out.backward()
            return out
        ref.zero_grad()
        ref_loss = ref.step(closure)
        torch.testing.assert_close(loss, ref_loss.detach(), rtol=0, atol=1e-6)
        for p, q in zip(opt._params(), ref._params()):
            torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-6)  # gradient at w + ε
            torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
        for a, b in zip([b for s in stages for b in s.buffers()], [b for s in ref_stages for b in s.buffers()]):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
        for s in stages:
            for m in s.modules():
                if isinstance(m, nn.BatchNorm2d):
                    assert int(m.num_batches_tracked) == step + 1  # running stats moved once per step
                    assert m.track_running_stats


def test_layer_structured_descent_gradient_is_exact():
    stages = tiny_stages()
    ref_stages = copy.deepcopy(stages)
    masks = layer_masks(stages, TOP)
    opt = sparse(stages, masks, lr=0.1)
    x, y = batch()
    first_pass(opt, stages, x, y)
    second_pass(stages, x, y)
    # plain computation: whole network, first pass at w (moves BN), second at w + ε with BN guarded
    model, ref = reference(ref_stages, masks, lr=0.1)
    F.cross_entropy(model(x), y).backward()
    ref.first_step(zero_grad=True)
    F.cross_entropy(model(x), y).backward()
    for p, q in zip(opt._params(), ref._params()):
        assert torch.equal(p.grad, q.grad)


class OpLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.conv_backward = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.convolution_backward.default:
            self.conv_backward.append((tuple(args[2].shape), tuple(args[-1])))
        return func(*args, **(kwargs or {}))


def test_ascent_skips_unneeded_work():
    stages = tiny_stages()
    masks = layer_masks(stages, {"3.conv2.weight", "4.2.weight"})
    opt = sparse(stages, masks, lr=0.1)
    assert opt.plan().start == 3  # stem and the first two blocks are the shared prefix
    x, y = batch()
    with OpLog() as log:
        first_pass(opt, stages, x, y)
    # only conv2 of the last block back-propagates, and only its weight gradient
    assert log.conv_backward == [((16, 16, 3, 3), (False, True, False))]
    opt.restore()  # back to w without a descent pass
    fmasks = filter_masks(stages)
    opt.set_masks(fmasks)
    with OpLog() as log:
        first_pass(opt, stages, x, y)
    partial = [p for p, m in zip(opt._params(), fmasks) if p.dim() == 4 and m.any() and not m.all()]
    assert partial
    weight_calls = [shape for shape, mask in log.conv_backward if mask[1]]
    assert all(p.shape not in weight_calls for p in partial)  # no full weight gradient for them
    assert len(weight_calls) >= len(partial)  # but a sliced one


def test_nothing_perturbed_is_an_sgd_step():
    """ε = 0: the step is SGD's, bit for bit (the second pass takes the gradient at w; BatchNorm moves once)."""
    stages = tiny_stages()
    ref_stages = copy.deepcopy(stages)
    masks = [torch.zeros(p.shape, dtype=torch.bool) for p in params_of(stages)]
    opt = sparse(stages, masks, lr=0.1)
    sgd = torch.optim.SGD(params_of(ref_stages), lr=0.1)
    x, y = batch()
    sparse_step(opt, stages, x, y)
    F.cross_entropy(nn.Sequential(*ref_stages)(x), y).backward()
    sgd.step()
    for p, q in zip(params_of(stages), params_of(ref_stages)):
        assert torch.equal(p, q)
    for a, b in zip([b for s in stages for b in s.buffers()], [b for s in ref_stages for b in s.buffers()]):
        assert torch.equal(a, b)


def test_mask_strategy_and_state_dict():
    stages = tiny_stages()
    masks = layer_masks(stages, TOP)
    kw = dict(lr=0.1, momentum=0.9)
    opt = SparseAscentSAM(stages, torch.optim.SGD, rho=RHO, mask=FixedMask(masks), **kw)
    sparse_step(opt, stages, *batch())
    assert opt.mask.updates == 1 and opt.steps == 1
    assert opt.plan().start == 3
    # a fresh optimizer over a copy of the network (no momentum, step 0, its strategy's initial all-zero
    # masks) takes the state
    copied = copy.deepcopy(stages)
    fresh = SparseAscentSAM(copied, torch.optim.SGD, rho=RHO, mask=FixedMask(masks), **kw)
    assert not any(m.any() for m in fresh.current_masks())
    fresh.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert fresh.steps == 1 and fresh.mask.updates == 1 and fresh.mask.last_update == 0
    assert all(torch.equal(a, b) for a, b in zip(fresh.current_masks(), masks))
    assert fresh.plan().start == 3  # the plan follows the loaded masks
    # ... and continues exactly as the original (momentum buffers, mask schedule and step count restored)
    for seed in (2, 3):
        sparse_step(opt, stages, *batch(seed))
        sparse_step(fresh, copied, *batch(seed))
    assert fresh.steps == opt.steps == 3
    for p, q in zip(params_of(stages), params_of(copied)):
        assert torch.equal(p, q)
    # fixed masks travel in the state too
    fixed = SparseAscentSAM(copy.deepcopy(stages), torch.optim.SGD, rho=RHO, mask=masks, **kw)
    other = layer_masks(stages, {"0.0.weight"})
    target = SparseAscentSAM(copy.deepcopy(stages), torch.optim.SGD, rho=RHO, mask=other, **kw)
    target.load_state_dict(fixed.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(target.current_masks(), masks))
    assert target.plan().start == 3

    class NeedsGradient(FixedMask):
        needs_gradient = True
    with pytest.raises(ValueError, match="full gradient"):
        SparseAscentSAM(stages, torch.optim.SGD, mask=NeedsGradient(masks), lr=0.1)
    with pytest.raises(RuntimeError, match="closure"):
        opt.step()


def test_first_step_outside_ascent_pass_is_refused():
    stages = tiny_stages()
    opt = sparse(stages, layer_masks(stages, TOP), lr=0.1)
    x, y = batch()
    F.cross_entropy(run_stages(stages, x), y).backward()
    with pytest.raises(RuntimeError, match="ascent_pass"):
        opt.first_step(zero_grad=True)
    first_pass(opt, stages, x, y)
    with pytest.raises(RuntimeError, match="between first_step"):
        with opt.ascent_pass():
            pass
    with pytest.raises(RuntimeError, match="called twice"):
        opt.first_step()


def test_in_place_first_suffix_stage_is_refused():
    stages = tiny_stages()
    stages[1] = nn.Sequential(nn.ReLU(inplace=True), stages[1])
    masks = layer_masks(stages, {"1.1.conv1.weight"})
    opt = sparse(stages, masks, lr=0.1)
    assert opt.plan().start == 1
    with pytest.raises(RuntimeError, match="in place"):
        first_pass(opt, stages, *batch())


# ---- cost model ----------------------------------------------------------------------------------

def test_layer_costs_flops_and_step_costs():
    stages = tiny_stages()
    x, _ = batch()
    layers = layer_costs(stages, x, unit="flops")
    conv = next(layer for layer in layers if layer.name == "3.conv2")
    assert conv.forward > 0 and conv.input_grad == pytest.approx(conv.forward, rel=0.01)
    assert conv.weight_grad == pytest.approx(conv.forward, rel=0.01)
    assert conv.params == [stages[3].conv2.weight]
    params = params_of(stages)
    sgd = step_cost(layers, "sgd")
    assert step_cost(layers, "sam") == 2 * sgd
    top = step_cost(layers, "sparse", params, layer_masks(stages, {"4.2.weight"}))
    low = step_cost(layers, "sparse", params, layer_masks(stages, {"0.0.weight"}))
    assert sgd < top < low <= 2 * sgd
    # filter masks need a fraction of the weight gradients
    half = [torch.zeros(p.shape, dtype=torch.bool) for p in params]
    idx = [i for i, p in enumerate(params) if p is stages[3].conv2.weight][0]
    half[idx][:8] = True
    whole = layer_masks(stages, {"3.conv2.weight"})
    assert step_cost(layers, "sparse", params, half) == pytest.approx(
        step_cost(layers, "sparse", params, whole) - conv.weight_grad / 2)
    assert len(tensor_costs(layers, params)) == len(params)


def test_layer_costs_leave_the_model_unchanged():
    stages = tiny_stages()
    before = [b.clone() for s in stages for b in s.buffers()]
    layers = layer_costs(stages, batch()[0], unit="seconds", repeats=1)
    assert all(layer.forward > 0 for layer in layers)
    assert all(torch.equal(a, b) for a, b in zip(before, [b for s in stages for b in s.buffers()]))
    assert all(p.requires_grad for p in params_of(stages))


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.98])
@pytest.mark.parametrize("granularity", ["layer", "filter"])
def test_cost_aware_mask_respects_budget(sparsity, granularity):
    stages = tiny_stages()
    params = params_of(stages)
    layers = layer_costs(stages, batch()[0], unit="flops")
    g = torch.Generator().manual_seed(0)
    scores = [torch.rand(p.shape, generator=g) for p in params]
    costs = tensor_costs(layers, params)
    masks = cost_aware(scores, costs, sparsity, granularity)
    budget = int((1 - sparsity) * sum(p.numel() for p in params))
    assert sum(int(m.sum()) for m in masks) <= budget
    assert patterns.density(masks) <= 1 - sparsity
    for m in masks:
        if granularity == "layer" or m.dim() < 2:
            assert not m.any() or m.all()
        else:
            flat = m.reshape(m.shape[0], -1)
            assert torch.equal(flat.all(1), flat.any(1))
    # nothing left out that would still fit: every unit not taken (a whole tensor; for "filter" a row
    # along dim 0 of a tensor with >= 2 dims, 1-D tensors whole) is larger than the budget left
    left = []
    for m in masks:
        if granularity == "filter" and m.dim() >= 2:
            rows = m.reshape(m.shape[0], -1)
            left += [rows.shape[1]] * int((~rows.any(1)).sum())
        elif not m.any():
            left.append(m.numel())
    assert left, "the budget leaves some unit out at every sparsity here"
    assert all(n > budget - sum(int(m.sum()) for m in masks) for n in left)


@pytest.mark.parametrize("granularity", ["layer", "filter"])
def test_cost_aware_mask_respects_cost_budget(granularity):
    stages = tiny_stages()
    params = params_of(stages)
    layers = layer_costs(stages, batch()[0], unit="flops")
    g = torch.Generator().manual_seed(0)
    scores = [torch.rand(p.shape, generator=g) for p in params]
    costs = tensor_costs(layers, params)
    cap = 0.3 * step_cost(layers)
    masks = cost_aware(scores, costs, 0.5, granularity, max_cost=cap)
    assert any(m.any() for m in masks)
    assert step_cost(layers, "sparse", params, masks) - step_cost(layers) <= cap * (1 + 1e-9)
    uncapped = cost_aware(scores, costs, 0.5, granularity)
    assert step_cost(layers, "sparse", params, uncapped) > step_cost(layers, "sparse", params, masks)


def test_model_stages_of_the_library_resnet():
    from sparsam.experiment.models import build_model
    from sparsam.experiment.models import model_stages
    torch.manual_seed(0)
    model = build_model("resnet-small", 10, width=8)
    ref_model = copy.deepcopy(model)
    stages = model_stages(model)
    x = torch.randn(8, 3, 32, 32)
    y = torch.randint(0, 10, (8,))
    model.eval()
    assert torch.equal(run_stages(stages, x), model(x))
    model.train()
    names = {n for n, _ in model.named_parameters() if n.startswith(("layers.3", "fc"))}
    masks = [torch.full(p.shape, n in names, dtype=torch.bool) for n, p in model.named_parameters()]
    opt = sparse(stages, masks, lr=0.1, momentum=0.9)
    assert opt.plan().start == 4
    ref = SSAM(ref_model.parameters(), torch.optim.SGD, rho=RHO, mask=FixedMask(masks), normalize="masked",
               lr=0.1, momentum=0.9)
    OPTIMIZERS.append(ref)
    sparse_step(opt, stages, x, y)

    def closure():
        loss = F.cross_entropy(ref_model(x), y)
        loss.backward()
        return loss
    ref.step(closure)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_cost_aware_layer_rule_prefers_cheap_tensors():
    scores = [torch.full((10,), 1.0), torch.full((10,), 1.0), torch.full((10,), 0.9)]
    # tensor 0 sits low (expensive chain), 1 and 2 high; the budget fits two tensors
    costs = [(100.0, 1.0), (2.0, 1.0), (1.0, 1.0)]
    masks = cost_aware(scores, costs, 0.3, "layer")
    assert [bool(m.all()) for m in masks] == [False, True, True]
    # the paper's rule (mean score) would take tensor 0
    assert [bool(m.all()) for m in patterns.structured(scores, 0.3, "layer")] == [True, True, False]
    # plain numbers are additive costs
    masks = cost_aware(scores, [5.0, 1.0, 1.0], 0.6, "layer")
    assert [bool(m.all()) for m in masks] == [False, True, False]


def test_cost_aware_is_the_cost_modules_rule_and_checks_its_input():
    from sparsam.masks import cost
    assert cost.cost_aware_mask is cost_aware  # one implementation, re-exported
    scores = [torch.ones(4), torch.ones(4)]
    with pytest.raises(ValueError, match="costs"):
        cost_aware(scores, [1.0], 0.5)
    with pytest.raises(ValueError, match="granularity"):
        cost_aware(scores, [1.0, 1.0], 0.5, "unstructured")
    with pytest.raises(ValueError, match="max_cost"):
        cost_aware(scores, [1.0, 1.0], 0.5, max_cost=-1.0)


def test_sparse_ascent_refuses_new_parameter_groups():
    stages = tiny_stages()
    opt = sparse(stages, layer_masks(stages, TOP), lr=0.1)
    with pytest.raises(RuntimeError, match="every parameter"):
        opt.add_param_group({"params": [torch.zeros(3, requires_grad=True)]})


def test_the_sparse_ascent_optimizer_is_exported_at_the_top_level_as_sam_and_ssam_are():
    import sparsam
    from sparsam.optim import sparse_ascent

    assert sparsam.SparseAscentSAM is sparse_ascent.SparseAscentSAM and "SparseAscentSAM" in sparsam.__all__
    assert all(hasattr(sparsam, name) for name in sparsam.__all__)
