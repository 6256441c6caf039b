"""SAM / ASAM against hand-written updates; LR schedulers; BatchNorm guard; GradScaler overflow."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from sparsam import SAM

from nets import batches, closure_step, make


def grads_at(model, x, y):
    """Gradient of the loss of ``model`` at its current weights (plain autograd)."""
    params = list(model.parameters())
    return torch.autograd.grad(F.cross_entropy(model(x), y), params)


def reference_sam(model, data, lrs, rho, momentum=0.0, wd=0.0, adaptive=False, eta=0.01):
    """Hand-written SAM/ASAM + SGD (momentum, weight decay, PyTorch's convention); returns weights."""
    params = list(model.parameters())
    bufs = [None] * len(params)
    for (x, y), lr in zip(data, lrs):
        g = grads_at(model, x, y)
        w = [p.detach().clone() for p in params]
        if adaptive:
            t = [wi.abs() + eta for wi in w]
            norm = torch.sqrt(sum(((ti * gi) ** 2).sum() for ti, gi in zip(t, g)))
            eps = [rho * ti * ti * gi / norm for ti, gi in zip(t, g)]
        else:
            norm = torch.sqrt(sum((gi ** 2).sum() for gi in g))
            eps = [rho * gi / norm for gi in g]
        with torch.no_grad():
            for p, wi, e in zip(params, w, eps):
                p.copy_(wi + e)
        g2 = grads_at(model, x, y)
        with torch.no_grad():
            for i, (p, wi, gi) in enumerate(zip(params, w, g2)):
                d = gi + wd * wi
                if momentum:
                    bufs[i] = d.clone() if bufs[i] is None else momentum * bufs[i] + d
                    d = bufs[i]
                p.copy_(wi - lr * d)
    return [p.detach().clone() for p in params]


def run_closure(model, opt, data, scheduler=None):
    for x, y in data:
        closure_step(model, opt, x, y)
        if scheduler is not None:
            scheduler.step()


def run_manual(model, opt, data, scheduler=None):
    for x, y in data:
        F.cross_entropy(model(x), y).backward()
        opt.first_step(zero_grad=True)
        F.cross_entropy(model(x), y).backward()
        opt.second_step(zero_grad=True)
        if scheduler is not None:
            scheduler.step()


def assert_close_lists(a, b, atol=1e-10):  # float64: the hand-written update agrees to rounding
    assert len(a) == len(b)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, atol=atol, rtol=0)


@pytest.mark.parametrize("runner", [run_closure, run_manual], ids=["closure", "manual"])
@pytest.mark.parametrize("adaptive", [False, True], ids=["SAM", "ASAM"])
def test_matches_hand_written_update(runner, adaptive):
    data = batches(3)
    rho, lr, mom, wd, eta = 0.1, 0.05, 0.9, 5e-3, 0.05
    model = make()
    ref = copy.deepcopy(model)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, adaptive=adaptive, eta=eta,
              lr=lr, momentum=mom, weight_decay=wd)
    runner(model, opt, data)
    expected = reference_sam(ref, data, [lr] * 3, rho, mom, wd, adaptive, eta)
    assert_close_lists([p.detach() for p in model.parameters()], expected)
    # the update is not trivially close to the start point
    start = [p.detach() for p in make().parameters()]
    assert max(float((a - b).abs().max()) for a, b in zip(expected, start)) > 1e-3


def test_sam_differs_from_sgd_and_asam():
    """Sanity: the reference can tell SAM, ASAM and SGD apart (so the comparisons above can fail)."""
    data = batches(3)
    sam = reference_sam(make(), data, [0.05] * 3, 0.1, 0.9)
    asam = reference_sam(make(), data, [0.05] * 3, 0.1, 0.9, adaptive=True, eta=0.05)
    sgd = reference_sam(make(), data, [0.05] * 3, 0.0, 0.9)
    assert max(float((a - b).abs().max()) for a, b in zip(sam, sgd)) > 1e-4
    assert max(float((a - b).abs().max()) for a, b in zip(sam, asam)) > 1e-4


class RecordingSGD(torch.optim.SGD):
    """SGD that records the parameter values it sees when its step is called."""

    seen: list = []

    def step(self, closure=None):
        RecordingSGD.seen.append([p.detach().clone() for g in self.param_groups for p in g["params"]])
        return super().step(closure)


@pytest.mark.parametrize("runner", [run_closure, run_manual], ids=["closure", "manual"])
@pytest.mark.parametrize("adaptive", [False, True], ids=["SAM", "ASAM"])
def test_weights_restored_exactly_before_base_step(runner, adaptive):
    model = make(dtype=torch.float32)  # float32: subtracting ε would not restore bitwise
    data = batches(2, dtype=torch.float32)
    RecordingSGD.seen = []
    opt = SAM(model.parameters(), RecordingSGD, rho=0.5, adaptive=adaptive, lr=0.1, momentum=0.9)
    before = []
    for x, y in data:
        before.append([p.detach().clone() for p in model.parameters()])
        runner(model, opt, [(x, y)])
    assert len(RecordingSGD.seen) == 2
    for seen, orig in zip(RecordingSGD.seen, before):
        for a, b in zip(seen, orig):
            assert torch.equal(a, b)


@pytest.mark.parametrize("runner", [run_closure, run_manual], ids=["closure", "manual"])
def test_lr_zero_leaves_weights_bitwise(runner):
    model = make(dtype=torch.float32)
    orig = [p.detach().clone() for p in model.parameters()]
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.0, momentum=0.9)
    runner(model, opt, batches(2, dtype=torch.float32))
    for p, o in zip(model.parameters(), orig):
        assert torch.equal(p.detach(), o)


@pytest.mark.parametrize("on_base", [False, True], ids=["scheduler-on-SAM", "scheduler-on-base"])
@pytest.mark.parametrize("runner", [run_closure, run_manual], ids=["closure", "manual"])
def test_lr_scheduler_changes_lr_used(on_base, runner):
    data = batches(3)
    lr0, t_max, rho = 0.2, 4, 0.05
    model = make()
    ref = copy.deepcopy(model)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, lr=lr0, momentum=0.9)
    assert opt.param_groups is opt.base_optimizer.param_groups
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "lr_scheduler.step() before optimizer.step()"
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt.base_optimizer if on_base else opt, T_max=t_max)
        runner(model, opt, data, sched)
    lrs = [0.5 * lr0 * (1 + math.cos(math.pi * t / t_max)) for t in range(3)]
    assert lrs[1] < lr0 and lrs[2] < lrs[1]
    expected = reference_sam(ref, data, lrs, rho, 0.9)
    assert_close_lists([p.detach() for p in model.parameters()], expected)
    assert opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(
        0.5 * lr0 * (1 + math.cos(math.pi * 3 / t_max)))


def test_scheduler_before_any_step_still_warns():
    """The warning is torch's own check, not silenced: stepping the scheduler first still warns."""
    opt = SAM(make().parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()


def test_add_param_group_perturbs_and_steps_the_new_parameters():
    data = batches(3)
    model = make()
    ref = copy.deepcopy(model)
    opt = SAM([model.conv.weight, model.bn.weight, model.bn.bias], torch.optim.SGD, rho=0.1, lr=0.05,
              momentum=0.9)
    opt.add_param_group({"params": [model.fc.weight, model.fc.bias]})
    assert opt.param_groups is opt.base_optimizer.param_groups and len(opt.param_groups) == 2
    assert opt.param_groups[1]["rho"] == 0.1 and opt.param_groups[1]["lr"] == 0.05
    run_manual(model, opt, data)
    expected = reference_sam(ref, data, [0.05] * 3, 0.1, 0.9)
    assert_close_lists([p.detach() for p in model.parameters()], expected)


def test_add_param_group_errors():
    model = make()
    opt = SAM([model.conv.weight], torch.optim.SGD, rho=0.1, lr=0.05)
    with pytest.raises(ValueError, match="rho"):
        opt.add_param_group({"params": [model.fc.weight], "rho": -1.0})
    assert len(opt.param_groups) == 1
    x, y = batches(1)[0]
    F.cross_entropy(model(x), y).backward()
    opt.first_step(zero_grad=True)
    with pytest.raises(RuntimeError, match="after second_step"):
        opt.add_param_group({"params": [model.fc.weight]})


def test_errors():
    params = list(make().parameters())
    with pytest.raises(ValueError, match="rho"):
        SAM(params, torch.optim.SGD, rho=-0.1, lr=0.1)
    with pytest.raises(ValueError, match="rho"):
        SAM(params, torch.optim.SGD, rho=float("nan"), lr=0.1)
    with pytest.raises(ValueError, match="eta"):
        SAM(params, torch.optim.SGD, rho=0.1, adaptive=True, eta=-1.0, lr=0.1)
    opt = SAM(params, torch.optim.SGD, rho=0.1, lr=0.1)
    with pytest.raises(RuntimeError, match="closure"):
        opt.step()


# ---------------------------------------------------------------- BatchNorm guard

def bn_state(model):
    return {k: v.clone() for k, v in model.named_buffers()}


@pytest.mark.parametrize("runner", [run_closure, run_manual], ids=["closure", "manual"])
def test_bn_stats_move_once_per_step(runner):
    model = make()
    data = batches(2)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.1, momentum=0.9)
    for x, y in data:
        ref = copy.deepcopy(model)
        ref(x)  # one plain forward in train mode
        runner(model, opt, [(x, y)])
        got, want = bn_state(model), bn_state(ref)
        for k in want:
            assert torch.equal(got[k], want[k]), k
    assert int(model.bn.num_batches_tracked) == 2
    # the guard is gone: a plain forward moves the statistics again
    assert model.bn.track_running_stats
    before = model.bn.running_mean.clone()
    model(data[0][0])
    assert int(model.bn.num_batches_tracked) == 3
    assert not torch.equal(before, model.bn.running_mean)


@pytest.mark.parametrize("runner", [run_closure, run_manual], ids=["closure", "manual"])
def test_without_bn_guard_stats_move_twice(runner):
    model = make()
    x, y = batches(1)[0]
    ref = copy.deepcopy(model)
    ref(x)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.1, bn_guard=False)
    runner(model, opt, [(x, y)])
    assert int(model.bn.num_batches_tracked) == 2
    assert not torch.allclose(model.bn.running_mean, ref.bn.running_mean)


# ---------------------------------------------------------------- GradScaler overflow

def scaled_pass(model, scaler, x, y):
    scaler.scale(F.cross_entropy(model(x), y)).backward()


def poison(model):
    model.fc.weight.grad.view(-1)[0] = float("inf")


def momentum_buffers(opt):
    return [opt.base_optimizer.state[p]["momentum_buffer"].clone() for p in opt._params()]


def amp_setup():
    model = make(dtype=torch.float32)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    assert scaler.is_enabled()
    data = batches(3, dtype=torch.float32)
    # one finite step so that momentum buffers exist
    x, y = data[0]
    scaled_pass(model, scaler, x, y)
    opt.first_step(zero_grad=True)
    scaled_pass(model, scaler, x, y)
    opt.second_step(zero_grad=True, scaler=scaler)
    scaler.update()
    assert scaler.get_scale() == 2.0 ** 10
    return model, opt, scaler, data


@pytest.mark.parametrize("where", ["first", "second", "first-only", "none"])
def test_grad_scaler_overflow_skips_step(where):
    model, opt, scaler, data = amp_setup()
    x, y = data[1]
    w0 = [p.detach().clone() for p in model.parameters()]
    m0 = momentum_buffers(opt)
    scaled_pass(model, scaler, x, y)
    if where in ("first", "first-only"):
        poison(model)
    opt.first_step(zero_grad=True)
    scaled_pass(model, scaler, x, y)
    if where == "first-only":
        # isolate the first-pass check: the second-pass gradient is made finite again
        for p in model.parameters():
            p.grad = torch.nan_to_num(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
    if where == "second":
        poison(model)
    opt.second_step(zero_grad=True, scaler=scaler)
    scaler.update()
    changed = [not torch.equal(p.detach(), w) for p, w in zip(model.parameters(), w0)]
    if where == "none":
        assert all(changed)
        assert scaler.get_scale() == 2.0 ** 10
        assert not all(torch.equal(a, b) for a, b in zip(momentum_buffers(opt), m0))
        return
    assert not any(changed)
    for a, b in zip(momentum_buffers(opt), m0):
        assert torch.equal(a, b)
    assert scaler.get_scale() == 2.0 ** 9
    # training continues normally afterwards
    x, y = data[2]
    scaled_pass(model, scaler, x, y)
    opt.first_step(zero_grad=True)
    scaled_pass(model, scaler, x, y)
    opt.second_step(zero_grad=True, scaler=scaler)
    scaler.update()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not any(torch.equal(p.detach(), w) for p, w in zip(model.parameters(), w0))


def _add_scaled_case(device):
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)]
    directions = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
    mults = [(torch.rand(p.shape, generator=g) < 0.5).double() for p in params]
    return [[t.to(device) for t in ts] for ts in (params, directions, mults)]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="the tensor-scale path runs on accelerators"))])
@pytest.mark.parametrize("with_multipliers", [False, True])
def test_add_scaled_agrees_with_written_out_update(device, with_multipliers):
    """The fused ε update (scale read on the host, or kept as a device tensor) gives p + s·d(·m)."""
    from sparsam.optim.sam import _add_scaled_
    params, directions, mults = _add_scaled_case(device)
    mults = mults if with_multipliers else None
    scale = torch.tensor(0.37, dtype=torch.float64, device=device)
    expected = [p + 0.37 * d * (1 if mults is None else m)
                for p, d, m in zip(params, directions, mults or [None] * 2)]
    _add_scaled_(params, directions, mults, scale)
    for p, e in zip(params, expected):
        torch.testing.assert_close(p, e, rtol=1e-15, atol=1e-15)


# ---------------------------------------------------------------- misuse and exceptions

def test_first_step_twice_raises_and_keeps_w():
    model = make()
    ref = copy.deepcopy(model)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.1)
    x, y = batches(1)[0]
    F.cross_entropy(model(x), y).backward()
    opt.first_step()
    with pytest.raises(RuntimeError, match="call second_step"):
        opt.first_step()
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.second_step()  # the saved w was not overwritten by w + ε: one exact SAM step
    assert_close_lists([p.detach() for p in model.parameters()], reference_sam(ref, [(x, y)], [0.1], 0.5))
    with pytest.raises(RuntimeError, match="without first_step"):
        opt.second_step()


def test_second_step_without_first_step_raises_and_changes_nothing():
    model = make()
    w = [p.detach().clone() for p in model.parameters()]
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.1)
    x, y = batches(1)[0]
    F.cross_entropy(model(x), y).backward()
    with pytest.raises(RuntimeError, match="call first_step"):
        opt.second_step()
    assert opt.steps == 0
    assert all(torch.equal(p.detach(), w0) for p, w0 in zip(model.parameters(), w))


class Boom(Exception):
    pass


def test_closure_exception_in_second_pass_restores_w_and_lifts_guard():
    model = make()
    w = [p.detach().clone() for p in model.parameters()]
    stats = bn_state(model)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.1)
    x, y = batches(1)[0]
    calls = []

    def closure():
        calls.append(1)
        if len(calls) == 2:
            raise Boom
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    with pytest.raises(Boom):
        opt.step(closure)
    assert all(torch.equal(p.detach(), w0) for p, w0 in zip(model.parameters(), w))
    assert not opt.bn_guard.active and model.bn.track_running_stats
    assert int(model.bn.num_batches_tracked) == int(stats["bn.num_batches_tracked"]) + 1  # the first pass only
    # the optimizer is usable again and matches a fresh SAM step from the same point
    closure_step(model, opt, x, y)
    fresh = make()
    fresh_opt = SAM(fresh.parameters(), torch.optim.SGD, rho=0.5, lr=0.1)
    fresh(x)  # the same BatchNorm history as the failed first pass
    closure_step(fresh, fresh_opt, x, y)
    assert_close_lists([p.detach() for p in model.parameters()], [p.detach() for p in fresh.parameters()])


def test_restore_in_a_users_loop():
    model = make()
    w = [p.detach().clone() for p in model.parameters()]
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.1)
    x, y = batches(1)[0]
    F.cross_entropy(model(x), y).backward()
    opt.first_step(zero_grad=True)
    assert not torch.equal(model.fc.weight.detach(), w[-2]) and opt.bn_guard.active
    opt.restore()  # e.g. in an except clause
    assert all(torch.equal(p.detach(), w0) for p, w0 in zip(model.parameters(), w))
    assert not opt.bn_guard.active
    opt.restore()  # a no-op outside a step


def test_guard_keeps_nothing_alive_and_unhooks_when_collected():
    import gc
    import weakref
    model = make()
    model_ref = weakref.ref(model)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.1)
    x, y = batches(1)[0]
    F.cross_entropy(model(x), y).backward()
    opt.first_step(zero_grad=True)  # an exception here would leave the guard active
    model(x)
    assert not model.bn.track_running_stats  # frozen by the active guard
    guard = opt.bn_guard
    del opt, guard
    gc.collect()
    assert model.bn.track_running_stats  # the collected guard gave the statistics back
    before = int(model.bn.num_batches_tracked)
    model(x)
    assert int(model.bn.num_batches_tracked) == before + 1  # and its hook is gone
    # a guard still held does not keep the model alive either
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.1, bn_guard=False)
    other = SAM(make(seed=1).parameters(), torch.optim.SGD, rho=0.5, lr=0.1)
    other.bn_guard.enter(model.parameters())
    model(x)
    del model, opt
    gc.collect()
    assert model_ref() is None
    other.bn_guard.exit()


def test_step_without_any_gradient_moves_nothing():
    model = make()
    w = [p.detach().clone() for p in model.parameters()]
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.1)
    opt.first_step()  # no parameter has a gradient: ε is empty
    opt.second_step()
    assert opt.steps == 1
    assert all(torch.equal(p.detach(), w0) for p, w0 in zip(model.parameters(), w))


@pytest.mark.parametrize("adaptive", [False, True])
def test_perturbation_norm_is_the_distance_moved(adaptive):
    model = make()
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.07, adaptive=adaptive, lr=0.1)
    x, y = batches(1)[0]
    with pytest.raises(RuntimeError, match="outside a step"):
        opt.perturbation_norm()
    before = [p.detach().clone() for p in model.parameters()]
    F.cross_entropy(model(x), y).backward()
    opt.first_step(zero_grad=True)
    moved = math.sqrt(sum(float((p.detach() - b).square().sum()) for p, b in zip(model.parameters(), before)))
    assert float(opt.perturbation_norm()) == pytest.approx(moved, rel=1e-12)
    if not adaptive:
        assert moved == pytest.approx(0.07, rel=1e-9)  # SAM: ‖ε‖ = ρ
