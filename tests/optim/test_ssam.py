"""SSAM: masked perturbation, mask schedules (SSAM-F, SSAM-D), checkpoints, add_param_group, errors.

The implicit form is tested in test_implicit.py."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
import torch.nn.functional as F

from sparsam import SAM, SSAM, DynamicMask, FisherMask, MaskStrategy

from nets import batches, closure_step, fisher_loop, make


def weights(model):
    return [p.detach().clone() for p in model.parameters()]


def grads(model):
    return [p.grad.detach().clone() for p in model.parameters()]


def gnorm(ts):
    return math.sqrt(sum(float((t.double() ** 2).sum()) for t in ts))


class RandomMask(MaskStrategy):
    """A test strategy: a fresh random mask (density ~ 1/2) at every step, no gradient needed."""

    def __init__(self, seed=123):
        super().__init__(1, "steps", None)
        self.seed = seed

    def _build(self, step):
        g = torch.Generator().manual_seed(self.seed + step)
        return [torch.rand(p.shape, generator=g) < 0.5 for p in self.params]


def manual_step(model, opt, x, y, between=None):
    """One SAM step by the manual API; ``between(opt)`` runs right after first_step."""
    F.cross_entropy(model(x), y).backward()
    opt.first_step(zero_grad=True)
    if between is not None:
        between(opt)
    F.cross_entropy(model(x), y).backward()
    opt.second_step(zero_grad=True)


# ---------------------------------------------------------------- explicit ε

@pytest.mark.parametrize("adaptive", [False, True], ids=["SAM", "ASAM"])
@pytest.mark.parametrize("normalize", ["full", "masked"])
def test_explicit_perturbation(normalize, adaptive):
    model = make()
    rho, eta = 0.3, 0.05
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=rho, mask=RandomMask(), normalize=normalize,
               adaptive=adaptive, eta=eta, lr=0.1, momentum=0.9)
    for step, (x, y) in enumerate(batches(3)):
        F.cross_entropy(model(x), y).backward()
        w0, g = weights(model), grads(model)
        opt.first_step(zero_grad=True)
        eps = [p.detach() - w for p, w in zip(model.parameters(), w0)]
        m = [mk.clone() for mk in opt.mask.masks]
        assert opt.mask.last_update == step
        assert 0.3 < sum(int(k.sum()) for k in m) / sum(k.numel() for k in m) < 0.7
        # zero exactly where the mask is False, nonzero where it is True (and g != 0)
        for p, w, mk, gi in zip(model.parameters(), w0, m, g):
            assert torch.equal(p.detach()[~mk], w[~mk])
            assert bool((p.detach()[mk & (gi != 0)] != w[mk & (gi != 0)]).all())
        # ε = ρ T² (m⊙g) / ‖T·(m⊙g or g)‖ written out
        t = [w.abs() + eta if adaptive else torch.ones_like(w) for w in w0]
        full = gnorm([ti * gi for ti, gi in zip(t, g)])
        masked = gnorm([ti * gi * mk for ti, gi, mk in zip(t, g, m)])
        norm = masked if normalize == "masked" else full
        expected = [rho * ti * ti * gi * mk / norm for ti, gi, mk in zip(t, g, m)]
        for e, ex in zip(eps, expected):
            torch.testing.assert_close(e, ex, rtol=1e-9, atol=1e-15)
        if not adaptive:
            want = rho if normalize == "masked" else rho * masked / full
            assert gnorm(eps) == pytest.approx(want, rel=1e-6)
            assert want < rho or normalize == "masked"
        F.cross_entropy(model(x), y).backward()
        opt.second_step(zero_grad=True)


def test_ssam_with_full_mask_is_sam():
    """A mask of all ones gives SAM's update (hand-checked in test_sam) bit for bit."""
    class Ones(MaskStrategy):
        def __init__(self):
            super().__init__(1, "steps", None)

        def _build(self, step):
            return [torch.ones_like(p, dtype=torch.bool) for p in self.params]

    a, b = make(), make()
    sam = SAM(a.parameters(), torch.optim.SGD, rho=0.2, lr=0.1, momentum=0.9)
    ssam = SSAM(b.parameters(), torch.optim.SGD, rho=0.2, mask=Ones(), normalize="masked", lr=0.1, momentum=0.9)
    for x, y in batches(3):
        manual_step(a, sam, x, y)
        manual_step(b, ssam, x, y)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-14)


# ---------------------------------------------------------------- SSAM-F

@pytest.mark.parametrize("api", ["manual", "closure"])
def test_fisher_mask_at_first_step(api):
    model = make()
    fdata = batches(2, seed=7, size=4)
    mask = FisherMask(model, fdata, sparsity=0.5, num_samples=6, update_every=10, update_unit="steps")
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.1, mask=mask, lr=0.1)
    d = sum(p.numel() for p in model.parameters())
    x, y = batches(1)[0]
    assert mask.density() == 0.0  # nothing computed before the first step
    if api == "manual":
        F.cross_entropy(model(x), y).backward()
        ref_scores = fisher_loop(model, fdata, 6)  # state of the model when first_step runs
        opt.first_step(zero_grad=True)
        F.cross_entropy(model(x), y).backward()
        opt.second_step(zero_grad=True)
    else:
        ref_scores = fisher_loop(model, fdata, 6)  # ascent_pass refreshes before the first forward
        closure_step(model, opt, x, y)
    assert mask.updates == 1 and mask.last_update == 0
    assert sum(int(m.sum()) for m in mask.masks) == int(0.5 * d)
    assert mask.density() == pytest.approx(0.5, abs=1 / d)
    kept = torch.cat([s[m] for s, m in zip(ref_scores, mask.masks)])
    dropped = torch.cat([s[~m] for s, m in zip(ref_scores, mask.masks)])
    assert float(kept.min()) >= float(dropped.max()) * (1 - 1e-5)


def test_fisher_first_mask_zeros_is_sgd_until_update():
    t_m = 3
    model = make()
    sgd_model = copy.deepcopy(model)
    fdata = batches(1, seed=7, size=6)
    mask = FisherMask(model, fdata, sparsity=0.5, num_samples=6, update_every=t_m, update_unit="steps",
                      first_mask="zeros")
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.5, mask=mask, lr=0.1, momentum=0.9, weight_decay=1e-3)
    sgd = torch.optim.SGD(sgd_model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    data = batches(t_m + 1)
    for step, (x, y) in enumerate(data[:t_m]):
        seen = []
        manual_step(model, opt, x, y, between=lambda o: seen.append([m.clone() for m in o.mask.masks]))
        assert not any(bool(m.any()) for m in seen[0]), step
        sgd.zero_grad()
        F.cross_entropy(sgd_model(x), y).backward()
        sgd.step()
        for p, q in zip(model.parameters(), sgd_model.parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-12)
    assert mask.updates == 0
    x, y = data[t_m]
    w_before = weights(model)
    manual_step(model, opt, x, y)
    assert mask.updates == 1 and mask.last_update == t_m
    assert mask.density() == pytest.approx(0.5, abs=0.01)
    sgd.zero_grad()
    F.cross_entropy(sgd_model(x), y).backward()
    sgd.step()
    # from now on SSAM perturbs: it no longer matches SGD
    assert not all(torch.allclose(p, q, atol=1e-9) for p, q in zip(model.parameters(), sgd_model.parameters()))
    assert not all(torch.equal(p, w) for p, w in zip(model.parameters(), w_before))


@pytest.mark.parametrize("kwargs,first,expected", [
    (dict(update_every=2, update_unit="steps"), "fisher", [0, 2, 4, 6]),
    (dict(update_every=3, update_unit="steps"), "zeros", [3, 6]),
    (dict(update_every=1, update_unit="epochs", steps_per_epoch=3), "fisher", [0, 3, 6]),
    (dict(update_every=2, update_unit="epochs", steps_per_epoch=2), "fisher", [0, 4]),
    (dict(update_every=1, update_unit="epochs", steps_per_epoch=4), "zeros", [4]),
])
def test_fisher_update_schedule(kwargs, first, expected):
    model = make()
    mask = FisherMask(model, batches(1, seed=7, size=3), sparsity=0.5, num_samples=3, first_mask=first, **kwargs)
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.1, mask=mask, lr=0.05)
    refreshed, last = [], 0
    for step, (x, y) in enumerate(batches(7, size=4)):
        (closure_step if step % 2 else manual_step)(model, opt, x, y)
        if mask.updates != last:
            assert mask.updates == last + 1
            assert mask.last_update == step
            refreshed.append(step)
            last = mask.updates
    assert refreshed == expected


def test_dynamic_update_schedule_in_epochs():
    model = make(dtype=torch.float32)
    mask = DynamicMask(sparsity=0.5, update_every=2, update_unit="epochs", steps_per_epoch=2, total_steps=100)
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.1, mask=mask, lr=0.05)
    refreshed = []
    for step, (x, y) in enumerate(batches(9, dtype=torch.float32, size=4)):
        before = mask.updates
        manual_step(model, opt, x, y)
        if mask.updates != before:
            refreshed.append(step)
    assert refreshed == [4, 8]


def test_fisher_official_mode_in_both_apis():
    """fisher_mode="official" runs inside first_step (under no_grad) with the manual API."""
    model = make()
    fdata = batches(1, seed=7, size=5)
    mask = FisherMask(model, fdata, sparsity=0.5, num_samples=5, update_every=1, update_unit="steps",
                      fisher_mode="official")
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.1, mask=mask, lr=0.05)
    x, y = batches(1)[0]
    nbt = int(model.bn.num_batches_tracked)
    for step, run in enumerate((manual_step, closure_step)):
        # the official scores at the weights the mask is built at (w, before the step), from a plain
        # batch-1 train-mode loop; the mask keeps their global top half (no ties among these scores)
        scores = fisher_loop(model, fdata, 5, train=True)
        flat = torch.cat([s.reshape(-1) for s in scores])
        keep = torch.zeros(flat.numel(), dtype=torch.bool)
        keep[torch.topk(flat, int(0.5 * flat.numel())).indices] = True
        run(model, opt, x, y)
        assert mask.updates == step + 1
        assert torch.equal(torch.cat([m.reshape(-1) for m in mask.masks]), keep)
        if step == 0:  # first pass + 5 official batch-1 passes; the guarded second pass does not count
            assert int(model.bn.num_batches_tracked) == nbt + 1 + 5
    assert mask.density() == pytest.approx(0.5, abs=0.01)


# ---------------------------------------------------------------- SSAM-D

def dynamic_run(seed, steps, total_steps, dtype=torch.float32, drop_rate=0.5):
    """Train SSAM-D and record (old mask, |g| seen by the update, new mask) at every step."""
    model = make(dtype=dtype)
    mask = DynamicMask(sparsity=0.5, update_every=1, total_steps=total_steps, drop_rate=drop_rate, seed=seed)
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.1, mask=mask, lr=0.05, momentum=0.9)
    log = []
    for x, y in batches(steps, dtype=dtype):
        old = torch.cat([m.reshape(-1).clone() for m in mask.masks])
        F.cross_entropy(model(x), y).backward()
        g = torch.cat([p.grad.reshape(-1).abs() for p in model.parameters()])
        opt.first_step(zero_grad=True)
        new = torch.cat([m.reshape(-1).clone() for m in mask.masks])
        log.append((old, g, new))
        F.cross_entropy(model(x), y).backward()
        opt.second_step(zero_grad=True)
    return log, mask


def test_dynamic_drop_and_regrow():
    total = 10
    log, mask = dynamic_run(seed=0, steps=total + 2, total_steps=total)
    d = log[0][0].numel()
    live0 = int(0.5 * d)
    for t, (old, g, new) in enumerate(log):
        assert int(old.sum()) == live0 and int(new.sum()) == live0  # constant density
        if t == 0:
            assert torch.equal(old, new)  # no update at step 0
            continue
        alpha = 0.5 * (1 + math.cos(math.pi * min(t, total) / total)) / 2
        k = int(alpha * live0)
        dropped, grown = old & ~new, new & ~old
        assert int(dropped.sum()) == k and int(grown.sum()) == k, t
        if k == 0:
            assert torch.equal(old, new)
            continue
        # dropped entries were live and are the k smallest |g| among live entries
        kept = old & new
        assert float(g[dropped].max()) <= float(g[kept].min())
        live_sorted = torch.sort(g[old]).values
        assert float(g[dropped].max()) == float(live_sorted[k - 1])
        # regrown entries were dead before the update (so none of those just dropped)
        assert not bool((grown & old).any()) and not bool((grown & dropped).any())
    # the drop rate decays to 0 at t = T (and stays there)
    assert torch.equal(log[total][0], log[total][2]) and torch.equal(log[total + 1][0], log[total + 1][2])
    assert mask.updates == total + 1


def test_dynamic_seed_determinism():
    a, _ = dynamic_run(seed=5, steps=5, total_steps=5)
    b, _ = dynamic_run(seed=5, steps=5, total_steps=5)
    c, _ = dynamic_run(seed=6, steps=5, total_steps=5)
    assert all(torch.equal(u[2], v[2]) for u, v in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])  # initial random masks differ across seeds
    assert not all(torch.equal(u[2], v[2]) for u, v in zip(a[1:], c[1:]))


def test_dynamic_initial_mask_density():
    model = make()
    for s in (0.0, 0.3, 0.9):
        mask = DynamicMask(sparsity=s, total_steps=10)
        SSAM(model.parameters(), torch.optim.SGD, rho=0.1, mask=mask, lr=0.1)
        d = sum(p.numel() for p in model.parameters())
        assert sum(int(m.sum()) for m in mask.masks) == int((1 - s) * d)


# ---------------------------------------------------------------- checkpoints

def build(kind, model):
    common = dict(lr=0.05, momentum=0.9, weight_decay=5e-4)
    if kind == "SAM":
        return SAM(model.parameters(), torch.optim.SGD, rho=0.1, **common)
    if kind == "SSAM-F":
        mask = FisherMask(model, batches(1, seed=7, size=4, dtype=torch.float32), sparsity=0.5, num_samples=4,
                          update_every=2, update_unit="steps")
    else:
        mask = DynamicMask(sparsity=0.5, update_every=1, total_steps=20, seed=3)
    return SSAM(model.parameters(), torch.optim.SGD, rho=0.1, mask=mask, **common)


@pytest.mark.parametrize("kind", ["SAM", "SSAM-F", "SSAM-D"])
def test_checkpoint_round_trip(kind):
    data = batches(6, dtype=torch.float32)
    model = make(dtype=torch.float32)
    opt = build(kind, model)
    for i, (x, y) in enumerate(data[:3]):
        (manual_step if i % 2 else closure_step)(model, opt, x, y)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)

    def cont(m, o):
        out = []
        for i, (x, y) in enumerate(data[3:]):
            (manual_step if i % 2 else closure_step)(m, o, x, y)
            out.append({k: v.clone() for k, v in m.state_dict().items()})
        return out

    original = cont(model, opt)
    buf.seek(0)
    ckpt = torch.load(buf)
    fresh = make(seed=42, dtype=torch.float32)
    fresh_opt = build(kind, fresh)
    fresh.load_state_dict(ckpt["model"])
    fresh_opt.load_state_dict(ckpt["opt"])
    resumed = cont(fresh, fresh_opt)
    for a, b in zip(original, resumed):
        for k in a:
            assert torch.equal(a[k], b[k]), k
    if kind != "SAM":
        assert all(torch.equal(a, b) for a, b in zip(opt.mask.masks, fresh_opt.mask.masks))
        assert opt.mask.updates == fresh_opt.mask.updates
    # without the optimizer state (momentum, masks, generator) the continuation differs
    buf.seek(0)
    ckpt = torch.load(buf)
    other = make(seed=42, dtype=torch.float32)
    other_opt = build(kind, other)
    other.load_state_dict(ckpt["model"])
    diverged = cont(other, other_opt)
    assert not torch.equal(diverged[-1]["fc.weight"], original[-1]["fc.weight"])


# ---------------------------------------------------------------- errors

def test_errors():
    model = make()
    params = list(model.parameters())
    with pytest.raises(ValueError, match="normalize"):
        SSAM(params, torch.optim.SGD, mask=RandomMask(), normalize="both", lr=0.1)
    with pytest.raises(ValueError, match="form"):
        SSAM(params, torch.optim.SGD, mask=RandomMask(), form="sideways", lr=0.1)
    with pytest.raises(ValueError, match="model"):
        SSAM(params, torch.optim.SGD, mask=RandomMask(), form="implicit", lr=0.1)
    with pytest.raises(ValueError, match="mask"):
        SSAM(params, torch.optim.SGD, mask="fisher", lr=0.1)
    with pytest.raises(ValueError, match="rho"):
        SSAM(params, torch.optim.SGD, rho=-1.0, mask=RandomMask(), lr=0.1)
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="sparsity"):
            FisherMask(model, batches(1), sparsity=bad, steps_per_epoch=1)
        with pytest.raises(ValueError, match="sparsity"):
            DynamicMask(sparsity=bad, total_steps=10)
    with pytest.raises(ValueError, match="sparsity"):
        FisherMask(model, batches(1), sparsity=0.3, pattern="2:4", steps_per_epoch=1)
    with pytest.raises(ValueError, match="pattern"):
        FisherMask(model, batches(1), pattern="3:2", steps_per_epoch=1)
    with pytest.raises(ValueError, match="pattern"):
        FisherMask(model, batches(1), pattern="foo", steps_per_epoch=1)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        FisherMask(model, batches(1), update_unit="epochs")
    with pytest.raises(ValueError, match="update_every"):
        DynamicMask(update_every=0, total_steps=10)
    with pytest.raises(ValueError, match="drop_rate"):
        DynamicMask(drop_rate=1.5, total_steps=10)
    with pytest.raises(TypeError, match="total_steps"):
        DynamicMask(sparsity=0.5)  # no default: a one-step schedule would freeze the mask after step 0
    with pytest.raises(ValueError, match="total_steps"):
        DynamicMask(total_steps=0)
    with pytest.raises(ValueError, match="first_mask"):
        FisherMask(model, batches(1), first_mask="ones", steps_per_epoch=1)
    costs = [(1.0, 1.0)] * len(params)
    with pytest.raises(ValueError, match="pattern"):
        FisherMask(model, batches(1), costs=costs, steps_per_epoch=1)  # unstructured
    with pytest.raises(ValueError, match="max_cost"):
        FisherMask(model, batches(1), pattern="layer", max_cost=1.0, steps_per_epoch=1)
    with pytest.raises(ValueError, match="costs"):
        SSAM(params, torch.optim.SGD, lr=0.1,
             mask=FisherMask(model, batches(1), pattern="layer", costs=costs[1:], steps_per_epoch=1))


def test_fisher_cost_aware_rule_is_cost_aware_mask_of_the_scores():
    """With costs, SSAM-F's layer mask is masks.cost_aware of its Fisher scores; without, the papers' rule."""
    from sparsam.masks import patterns

    model = make()
    params = list(model.parameters())
    # the conv (bottom) is expensive to reach, the head cheap: a chain cost on every tensor below the head
    costs = [(10.0 if "fc" not in n else 1.0, 1.0) for n, _ in model.named_parameters()]
    data = batches(2)
    rules = {"cost-aware": dict(costs=costs, max_cost=3.0), "papers": {}}
    for name, rule in rules.items():
        mask = FisherMask(model, data, sparsity=0.5, num_samples=8, pattern="layer", update_every=1,
                          update_unit="steps", **rule)
        opt = SSAM(params, torch.optim.SGD, rho=0.1, mask=mask, lr=0.1)
        scores = mask.scores()
        mask.scores = lambda: scores
        mask.update(0)
        expected = (patterns.cost_aware(scores, costs, 0.5, "layer", 3.0) if rule
                    else patterns.structured(scores, 0.5, "layer"))
        assert all(torch.equal(a, b) for a, b in zip(opt.mask.masks, expected)), name
        chosen = {n for (n, _), m in zip(model.named_parameters(), opt.mask.masks) if m.all()}
        if rule:
            assert chosen and chosen <= {"fc.weight", "fc.bias"}  # the budget keeps the ascent at the head


def test_mask_state_of_another_model_is_rejected():
    opt = SSAM(make().parameters(), torch.optim.SGD, rho=0.1, lr=0.1, mask=RandomMask())
    state = opt.state_dict()
    state["mask"]["masks"] = state["mask"]["masks"][:-1]
    with pytest.raises(ValueError, match="masks"):
        opt.load_state_dict(state)


def test_n_m_fisher_mask_reports_its_sparsity():
    model = make()
    assert FisherMask(model, batches(1), pattern="1:4", steps_per_epoch=1).sparsity == 0.75
    assert FisherMask(model, batches(1), pattern="2:4", sparsity=0.5, steps_per_epoch=1).sparsity == 0.5
    assert FisherMask(model, batches(1), steps_per_epoch=1).sparsity == 0.5


# ---------------------------------------------------------------- add_param_group

def test_add_param_group_binds_masks_and_perturbs_the_new_parameters():
    from sparsam.masks import patterns
    model = make()
    data = batches(3)
    mask = FisherMask(model, data, sparsity=0.5, num_samples=8, update_every=100, update_unit="steps")
    opt = SSAM([model.conv.weight, model.bn.weight, model.bn.bias], torch.optim.SGD, rho=0.1, mask=mask, lr=0.1)
    manual_step(model, opt, *data[0])
    assert mask.updates == 1 and len(mask.masks) == 3
    opt.add_param_group({"params": [model.fc.weight, model.fc.bias]})
    assert len(mask.masks) == 5 and [m.shape for m in mask.masks] == [p.shape for p in opt._params()]
    x, y = data[1]
    F.cross_entropy(model(x), y).backward()
    expected = patterns.unstructured(mask.scores(), 0.5)  # rebuilt at the next step over all five tensors
    w0, g = weights(model), grads(model)
    opt.first_step(zero_grad=True)
    assert mask.updates == 2 and mask.last_update == 1  # out of schedule (update_every=100)
    assert all(torch.equal(a, b) for a, b in zip(mask.masks, expected))
    fc_eps = model.fc.weight.detach() - w0[3]
    m = opt.masks_for([model.fc.weight])[0]
    assert 0 < int(m.sum()) < m.numel()
    torch.testing.assert_close(fc_eps, 0.1 * g[3] * m / gnorm(g), rtol=1e-9, atol=1e-15)
    F.cross_entropy(model(x), y).backward()
    opt.second_step(zero_grad=True)
    manual_step(model, opt, *data[2])
    assert mask.updates == 2  # back on schedule


def test_dynamic_ties_break_by_index():
    """Equal criteria: the lowest-index live entries are dropped and the lowest-index dead ones regrown."""
    params = [torch.ones(6, 4), torch.ones(8)]
    mask = DynamicMask(sparsity=0.5, total_steps=10, drop_rate=0.5, drop_criterion="weight", grow_criterion="weight")
    mask.bind(params)
    old = torch.cat([m.reshape(-1) for m in mask.masks])
    mask.update(1)
    new = torch.cat([m.reshape(-1) for m in mask.masks])
    k = int(mask.drop_fraction(1) * int(old.sum()))
    live, dead = old.nonzero().squeeze(1), (~old).nonzero().squeeze(1)
    assert k > 0
    assert (old & ~new).nonzero().squeeze(1).tolist() == live[:k].tolist()
    assert (new & ~old).nonzero().squeeze(1).tolist() == dead[:k].tolist()


# ---------------------------------------------------------------- persistent mask buffers (CUDA graphs)

def test_mask_multipliers_are_persistent_buffers_overwritten_at_each_rebuild():
    """A captured step reads the multipliers' memory: a rebuild must write into the same tensors."""
    model = make()
    model.conv.weight.data = model.conv.weight.data.to(memory_format=torch.channels_last)
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1, mask=RandomMask())
    x, y = batches(1)[0]
    manual_step(model, opt, x, y)
    buffers = list(opt._mask_multipliers())
    first = [b.clone() for b in buffers]
    manual_step(model, opt, x, y)  # RandomMask rebuilds at every step
    after = opt._mask_multipliers()
    assert all(a is b for a, b in zip(after, buffers)), "the same tensors, overwritten"
    assert any(not torch.equal(a, f) for a, f in zip(after, first)), "with the new mask's values"
    for buffer, mask, p in zip(after, opt.mask.masks, opt.mask.params):
        assert torch.equal(buffer, mask.to(p.dtype)) and buffer.dtype == p.dtype
    assert after[0].is_contiguous(memory_format=torch.channels_last), "in the weight's memory format"


def test_refresh_masks_updates_before_a_replay_and_refuses_a_gradient_update():
    model = make()
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1, mask=RandomMask())
    buffers = opt._mask_multipliers()
    assert opt.refresh_masks() and opt.mask.last_update == 0
    assert all(torch.equal(b, m.to(b.dtype)) for b, m in zip(buffers, opt.mask.masks))
    assert not opt.refresh_masks(), "already rebuilt for step 0"
    dynamic = SSAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1,
                   mask=DynamicMask(0.5, total_steps=10, update_every=5, update_unit="steps", seed=0))
    dynamic.steps = 3
    assert not dynamic.refresh_masks(), "not due: nothing to do"
    dynamic.steps = 5
    with pytest.raises(RuntimeError, match="due at step 5 .* reads the first-pass gradient"):
        dynamic.refresh_masks()


def test_add_param_group_makes_a_buffer_for_the_new_parameter():
    model = make()
    params = list(model.parameters())
    opt = SSAM(params[:-1], torch.optim.SGD, rho=0.1, lr=0.1, mask=RandomMask())
    assert len(opt._mask_multipliers()) == len(params) - 1
    opt.add_param_group({"params": [params[-1]]})
    x, y = batches(1)[0]
    manual_step(model, opt, x, y)
    assert [b.shape for b in opt._mask_multipliers()] == [p.shape for p in params]
