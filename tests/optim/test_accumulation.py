"""Gradient accumulation (sparsam.optim.accumulate): k micro-batches of 16 take the step of one batch of 16k,
for SAM, SSAM-F (explicit and implicit), SSAM-D and SparseAscentSAM, with the same masks."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsam import SAM, SSAM, DynamicMask, FisherMask, micro_batches
from sparsam.optim.sparse_ascent import SparseAscentSAM

K, MICRO, STEPS = 4, 16, 3
KINDS = ("sam", "ssam-f", "ssam-f-implicit", "ssam-d", "sparse-ascent", "sparse-ascent-fisher")
OPTIMIZERS: list[SAM] = []


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: extra threads only spin (and crawl on a loaded machine); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _release_guards():
    """A test that raises between the passes leaves the weights at w + ε and the BatchNorm guard active."""
    yield
    for opt in OPTIMIZERS:
        opt.restore()
    OPTIMIZERS.clear()


def chain(batch_norm: bool, seed: int = 0) -> nn.Sequential:
    """Three stages (stem, body, head) on [B, 2, 6, 6] inputs, in float64; BatchNorm after each conv or none."""
    torch.manual_seed(seed)
    norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
    model = nn.Sequential(nn.Sequential(nn.Conv2d(2, 4, 3, bias=not batch_norm), norm(4), nn.ReLU()),
                          nn.Sequential(nn.Conv2d(4, 6, 3, padding=1, bias=not batch_norm), norm(6), nn.ReLU()),
                          nn.Sequential(nn.Flatten(), nn.Linear(6 * 4 * 4, 3))).double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


def data(n: int, size: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 2, 6, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (size,), generator=g))
            for _ in range(n)]


def stage_masks(model: nn.Sequential) -> list[torch.Tensor]:
    """Nothing of the stem (a shared prefix), half the filters of the body's conv, the whole head."""
    masks = []
    for k, stage in enumerate(model):
        for name, p in stage.named_parameters():
            m = torch.full(p.shape, k == 2, dtype=torch.bool)
            if k == 1 and name == "0.weight":
                m[::2] = True
            masks.append(m)
    return masks


def build(kind: str, model: nn.Sequential) -> SAM:
    fisher = dict(data=data(2, 8, seed=7), num_samples=12, update_every=1, update_unit="steps")
    base = dict(lr=0.1, momentum=0.9, weight_decay=1e-3)
    if kind == "sam":
        opt = SAM(model.parameters(), torch.optim.SGD, rho=0.5, **base)
    elif kind == "ssam-f":
        opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.5, mask=FisherMask(model, sparsity=0.5, **fisher),
                   **base)
    elif kind == "ssam-f-implicit":
        opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.5, form="implicit", model=model,
                   mask=FisherMask(model, sparsity=0.5, pattern="filter", **fisher), **base)
    elif kind == "ssam-d":
        opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.5, **base,
                   mask=DynamicMask(0.5, update_every=1, update_unit="steps", total_steps=10, seed=3))
    elif kind == "sparse-ascent":
        opt = SparseAscentSAM(list(model), torch.optim.SGD, rho=0.5, mask=stage_masks(model), **base)
        assert opt.plan().start == 1 and "rows" in opt.plan().kinds  # a shared prefix and kept rows
    else:
        opt = SparseAscentSAM(list(model), torch.optim.SGD, rho=0.5, **base,
                              mask=FisherMask(model, sparsity=0.5, pattern="layer", **fisher))
    OPTIMIZERS.append(opt)
    return opt


def masks_of(opt: SAM) -> list[torch.Tensor] | None:
    if isinstance(opt, SparseAscentSAM):
        return [m.clone() for m in opt.current_masks()]
    return [m.clone() for m in opt.mask.masks] if isinstance(opt, SSAM) else None


def whole_batch_step(model, opt, x, y):
    """The step protocol on the whole batch, written out (no micro-batches, no weights)."""
    with opt.ascent_pass():
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    opt.first_step(zero_grad=True)
    F.cross_entropy(model(x), y).backward()
    opt.second_step(zero_grad=True)
    return loss.detach()


def accumulated_step(model, opt, x, y, k):
    """The step over ``k`` micro-batches, as the accumulate module's docstring writes it."""
    parts = micro_batches(x, y, k)
    loss = 0.0
    for xb, yb, weight in parts:
        with opt.ascent_pass():
            part = weight * F.cross_entropy(model(xb), yb)
            part.backward()
        loss = loss + part.detach()
    opt.first_step(zero_grad=True)
    for xb, yb, weight in parts:
        (weight * F.cross_entropy(model(xb), yb)).backward()
    opt.second_step(zero_grad=True)
    return loss


def run(kind, batch_norm, k, steps=STEPS, train=True):
    """Weights, masks and first-pass losses after each of ``steps`` steps on batches of ``K * MICRO``."""
    model = chain(batch_norm)
    model.train(train)
    opt = build(kind, model)
    log = []
    for x, y in data(steps, K * MICRO, seed=1):
        loss = whole_batch_step(model, opt, x, y) if k == 1 else accumulated_step(model, opt, x, y, k)
        log.append((torch.cat([p.detach().flatten() for p in model.parameters()]).clone(), masks_of(opt), loss))
    start = torch.cat([p.detach().flatten() for p in chain(batch_norm).parameters()])
    return start, log, opt


def step_difference(kind, batch_norm, steps=STEPS, train=True):
    """Largest ‖w_accumulated - w_whole‖ / ‖w_whole - w_0‖ over the steps, after checking the masks agree."""
    start, whole, _ = run(kind, batch_norm, 1, steps, train)
    _, accumulated, opt = run(kind, batch_norm, K, steps, train)
    worst = 0.0
    for (w1, m1, loss1), (wk, mk, lossk) in zip(whole, accumulated):
        if m1 is not None:
            assert all(torch.equal(a, b) for a, b in zip(m1, mk)), "the masks differ"
        worst = max(worst, float((wk - w1).norm() / (w1 - start).norm()))
        if not batch_norm or not train:
            assert float(abs(lossk - loss1)) < 1e-13  # the reported loss is the whole batch's
    return worst, whole, opt


@pytest.mark.parametrize("kind", KINDS)
def test_micro_batches_take_the_whole_batch_step_to_float64_rounding(kind):
    worst, whole, opt = step_difference(kind, batch_norm=False)
    assert worst < 1e-12, worst
    assert opt.steps == STEPS
    if kind in ("ssam-f", "ssam-d"):
        masks = [m for _, m, _ in whole]
        assert opt.mask.updates == (STEPS if kind == "ssam-f" else STEPS - 1)  # once per step, not per micro-batch
        if kind == "ssam-d":  # its updates read the accumulated ascent gradient, and did change the mask
            assert not all(torch.equal(a, b) for a, b in zip(masks[0], masks[-1]))


class GhostNorm(nn.Module):
    """The training-mode normalisation of ``bn`` applied to each slice of ``size`` samples on its own
    (ghost batch normalisation), with ``bn``'s parameters and no running statistics."""

    def __init__(self, bn: nn.BatchNorm2d, size: int):
        super().__init__()
        self.weight, self.bias, self.eps, self.size = bn.weight, bn.bias, bn.eps, size

    def forward(self, x):
        return torch.cat([F.batch_norm(part, None, None, self.weight, self.bias, training=True, eps=self.eps)
                          for part in x.split(self.size)])


def ghost(model: nn.Sequential, size: int) -> nn.Sequential:
    """A copy of ``model`` whose BatchNorm modules normalise every ``size`` samples by their own statistics."""
    model = copy.deepcopy(model)
    for stage in model:
        for name, m in list(stage.named_children()):
            if isinstance(m, nn.BatchNorm2d):
                setattr(stage, name, GhostNorm(m, size))
    return model


@pytest.mark.parametrize("kind", KINDS)
def test_with_batchnorm_micro_batches_differ_by_their_batch_statistics(kind):
    """In training mode BatchNorm normalises each micro-batch of 16 by its own mean and variance, so the step
    is not that of one batch of 64: measured 0.13 to 0.18 of the step's length on this network (random
    labels, one step), asserted below 0.25. In evaluation mode (running statistics, no batch dependence)
    the two agree to rounding again."""
    worst, _, _ = step_difference(kind, batch_norm=True, steps=1)
    assert 1e-3 < worst < 0.25, worst
    exact, _, _ = step_difference(kind, batch_norm=True, steps=1, train=False)
    assert exact < 1e-12, exact


@pytest.mark.parametrize("kind", ("sam", "ssam-d", "sparse-ascent"))
def test_with_batchnorm_micro_batches_take_the_ghost_batchnorm_step(kind):
    """The whole difference is the batch statistics: the whole batch through a network that normalises each
    16 samples by their own statistics (ghost BatchNorm) takes the accumulated step to rounding. (The
    Fisher-mask kinds are left out: their Fisher pass knows BatchNorm, not this module.)"""
    x, y = data(1, K * MICRO, seed=1)[0]
    model = chain(True)
    reference = ghost(model, MICRO)
    start = torch.cat([p.detach().flatten() for p in model.parameters()])
    opt, opt_ref = build(kind, model), build(kind, reference)
    accumulated_step(model, opt, x, y, K)
    whole_batch_step(reference, opt_ref, x, y)
    a = torch.cat([p.detach().flatten() for p in model.parameters()])
    b = torch.cat([p.detach().flatten() for p in reference.parameters()])
    assert float((a - b).norm() / (b - start).norm()) < 1e-12


@pytest.mark.parametrize("kind", ("sam", "ssam-f", "ssam-f-implicit", "ssam-d", "sparse-ascent"))
def test_step_with_a_closure_that_loops_over_the_micro_batches(kind):
    """``opt.step(closure)`` with a closure that accumulates is the written-out accumulated step, bit for bit,
    and returns the whole batch's mean loss; SparseAscentSAM, one forward per ``ascent_pass()``, refuses it."""
    x, y = data(1, K * MICRO, seed=1)[0]
    by_hand, by_step = chain(False), chain(False)
    opt_hand, opt_step = build(kind, by_hand), build(kind, by_step)

    def closure():
        total = 0.0
        for xb, yb, share in micro_batches(x, y, K):
            loss = share * F.cross_entropy(by_step(xb), yb)
            loss.backward()
            total = total + loss.detach()
        return total

    if kind == "sparse-ascent":
        with pytest.raises(RuntimeError, match="ran 4 times in the ascent pass"):
            opt_step.step(closure)
        return
    expected = accumulated_step(by_hand, opt_hand, x, y, K)
    loss = opt_step.step(closure)
    assert all(torch.equal(a, b) for a, b in zip(by_hand.parameters(), by_step.parameters()))
    assert torch.equal(loss, expected)
    with torch.no_grad():
        assert float(abs(loss - F.cross_entropy(chain(False)(x), y))) < 1e-13


def test_sparse_ascent_checks_that_both_passes_run_the_same_micro_batches():
    x, y = data(1, K * MICRO, seed=1)[0]
    model = chain(False)
    opt = build("sparse-ascent", model)
    w0 = [p.detach().clone() for p in model.parameters()]
    parts = micro_batches(x, y, 2)
    with pytest.raises(RuntimeError, match="ran 2 times.*each micro-batch runs in its own"):
        with opt.ascent_pass():
            for xb, yb, weight in parts:
                (weight * F.cross_entropy(model(xb), yb)).backward()
    for fewer in (True, False):  # the descent runs one micro-batch fewer, or one more
        for xb, yb, weight in parts:
            with opt.ascent_pass():
                (weight * F.cross_entropy(model(xb), yb)).backward()
        opt.first_step(zero_grad=True)
        if fewer:
            F.cross_entropy(model(parts[0].x), parts[0].y).backward()
            with pytest.raises(RuntimeError, match="descent pass ran 1 forwards, the ascent pass 2"):
                opt.second_step()
        else:
            for xb, yb, weight in parts:
                F.cross_entropy(model(xb), yb).backward()
            with pytest.raises(RuntimeError, match=r"descent pass ran more forwards than the ascent pass \(2\)"):
                model(parts[0].x)
            opt.restore()
        assert all(torch.equal(p, w) for p, w in zip(model.parameters(), w0)) and opt.steps == 0
        opt.zero_grad()
    accumulated_step(model, opt, x, y, 2)  # after the errors, a step goes through
    assert opt.steps == 1


def test_micro_batches_split_a_batch_by_shares():
    x, y = torch.arange(10.0).reshape(10, 1), torch.arange(10)
    parts = micro_batches(x, y, 4)
    assert [len(p.x) for p in parts] == [3, 3, 2, 2] and [p.weight for p in parts] == [0.3, 0.3, 0.2, 0.2]
    assert torch.equal(torch.cat([p.x for p in parts]), x) and torch.equal(torch.cat([p.y for p in parts]), y)
    assert math.isclose(math.fsum(p.weight for p in parts), 1.0)
    assert [p.weight for p in micro_batches(x[:2], y[:2], 4)] == [0.5, 0.5]  # fewer samples than k
    assert micro_batches(x, y, 1)[0].weight == 1.0
    for args, message in [((x, y, 0), "k must be an integer >= 1"), ((x, y[:9], 2), "same number of samples"),
                          ((x[:0], y[:0], 2), "batch is empty")]:
        with pytest.raises(ValueError, match=message):
            micro_batches(*args)


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
@pytest.mark.filterwarnings("ignore:Using `torch.compile\\(module\\)` when there are global hooks")  # the BN guard's
def test_the_optimizers_step_a_compiled_model_as_they_step_the_eager_one(backend):
    """torch.compile on the CPU, the whole model, with accumulation: the same steps as eager, to the compiled
    kernels' rounding, and BatchNorm's running statistics moved once per ascent micro-batch, as in eager
    (the guard switches them off for the compiled graph too). aot_eager traces and differentiates the
    model as inductor does, without generating kernels (inductor's first compilation takes about 20 s
    here, so it is marked slow)."""
    compile_graph = torch._dynamo.lookup_backend(backend)
    for kind in ("sam", "ssam-f", "ssam-f-implicit", "ssam-d", "sparse-ascent"):
        torch._dynamo.reset()  # each kind compiles afresh (past the recompile limit dynamo would run eagerly)
        graphs = []

        def counted(gm, example_inputs):
            graphs.append(gm)
            return compile_graph(gm, example_inputs)
        eager = chain(True)
        compiled_model = copy.deepcopy(eager)
        compiled = torch.compile(compiled_model, backend=counted)
        opts = build(kind, eager), build(kind, compiled_model)
        for x, y in data(2, 2 * MICRO, seed=1):
            accumulated_step(eager, opts[0], x, y, 2)
            accumulated_step(compiled, opts[1], x, y, 2)
        a = torch.cat([p.detach().flatten() for p in eager.parameters()])
        b = torch.cat([p.detach().flatten() for p in compiled_model.parameters()])
        start = torch.cat([p.detach().flatten() for p in chain(True).parameters()])
        assert graphs and float((a - b).norm() / (a - start).norm()) < 1e-9, kind
        running = [(m.running_mean, c.running_mean) for m, c in zip(eager.modules(), compiled_model.modules())
                   if isinstance(m, nn.BatchNorm2d)]
        assert running and all(torch.allclose(e, c, rtol=0, atol=1e-12) for e, c in running), kind
