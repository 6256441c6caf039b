"""The implicit form (sparsam.optim.implicit, SSAM(form="implicit")) against hand-written sparse back-propagation.

The reference: dense forward; dX = dY·(W⊙M) and dW = dYᵀX written out (Linear) or taken from plain
autograd of conv2d with the masked weight (input gradient) and the dense weight (weight gradient),
independently of the library's autograd Function.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsam import SSAM, DynamicMask, FisherMask

from sparsam.masks import patterns
from sparsam.optim.implicit import check_pattern, implicit_ascent, implicit_conv2d, implicit_linear, semi_structured_ok

from nets import FixedMask, batches, closure_step, make


def random_masks(model, seed=3):
    """2:4 masks along the input dimension of every weight of ``model`` (1-D tensors whole)."""
    g = torch.Generator().manual_seed(seed)
    return patterns.n_m([torch.rand(p.shape, generator=g) for p in model.parameters()], 2, 4)


# ---------------------------------------------------------------- one layer

def test_linear_gradients_are_written_out_sparse_backprop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, 12, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 12, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(8, generator=g, dtype=torch.float64, requires_grad=True)
    mask = patterns.n_m([torch.rand(w.shape, generator=g)], 2, 4)[0]
    out = implicit_linear(x, w, mask, b)
    dy = torch.randn(out.shape, generator=g, dtype=torch.float64)
    gx, gw, gb = torch.autograd.grad(out, (x, w, b), dy)
    x2, dy2 = x.detach().reshape(-1, 12), dy.reshape(-1, 8)
    torch.testing.assert_close(out, x.detach() @ w.detach().t() + b.detach(), rtol=0, atol=1e-12)  # dense forward
    torch.testing.assert_close(gx, dy @ (w.detach() * mask), rtol=0, atol=1e-12)
    torch.testing.assert_close(gw, dy2.t() @ x2, rtol=0, atol=1e-12)
    torch.testing.assert_close(gb, dy2.sum(0), rtol=0, atol=1e-12)
    assert not torch.allclose(gx, dy @ w.detach())  # the mask matters


CONVS = {
    "plain": dict(in_channels=4, out_channels=8, kernel_size=3),
    "stride-padding": dict(in_channels=4, out_channels=8, kernel_size=3, stride=2, padding=1),
    "groups-dilation-bias": dict(in_channels=4, out_channels=8, kernel_size=3, padding=2, dilation=2, groups=2,
                                 bias=True),
    "depthwise": dict(in_channels=4, out_channels=4, kernel_size=3, padding=1, groups=4),
    "1x1": dict(in_channels=4, out_channels=8, kernel_size=1),
    "same-reflect": dict(in_channels=4, out_channels=8, kernel_size=(3, 2), padding="same", padding_mode="reflect"),
}


@pytest.mark.parametrize("kind", list(CONVS))
def test_conv2d_gradients_match_autograd_of_masked_and_dense_weights(kind):
    torch.manual_seed(0)
    layer = nn.Conv2d(**{"bias": False, **CONVS[kind]}).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 9, 9, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(layer.weight.shape, generator=g) < 0.5
    out = implicit_conv2d(layer, x, mask)
    torch.testing.assert_close(out, layer(x), rtol=0, atol=1e-12)  # dense forward
    dy = torch.randn(out.shape, generator=g, dtype=torch.float64)
    wrt = [x, layer.weight] + ([layer.bias] if layer.bias is not None else [])
    got = torch.autograd.grad(out, wrt, dy)
    masked = (layer.weight * mask).detach()
    ref_gx, = torch.autograd.grad(layer._conv_forward(x, masked, None), [x], dy)
    ref_w = torch.autograd.grad(layer(x.detach()), wrt[1:], dy)
    for a, b in zip(got, [ref_gx, *ref_w]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    dense_gx, = torch.autograd.grad(layer(x), [x], dy)
    assert not torch.allclose(got[0], dense_gx)  # the mask matters


def test_context_patches_masked_layers_only_and_restores():
    model = make()
    x, y = batches(1)[0]
    mask = torch.zeros_like(model.conv.weight, dtype=torch.bool)
    plain = model(x)
    with implicit_ascent(model, [(model.conv.weight, mask)]):
        assert "forward" in model.conv.__dict__ and "forward" not in model.fc.__dict__
        torch.testing.assert_close(model(x), plain, rtol=0, atol=1e-12)  # forward unchanged
    assert "forward" not in model.conv.__dict__


def test_semi_structured_path_falls_back_to_dense_on_cpu():
    torch.manual_seed(0)
    w = torch.randn(64, 64, requires_grad=True)
    mask = patterns.n_m([w], 2, 4, dim="out")[0]
    assert not semi_structured_ok(w, mask)  # CPU: the sparse kernel cannot run here
    x = torch.randn(8, 64, requires_grad=True)
    with pytest.warns(UserWarning, match="dense fallback"):
        out = implicit_linear(x, w, mask, sparse=True)
    torch.testing.assert_close(out, x.detach() @ w.detach().t(), rtol=0, atol=1e-6)
    gx, = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(gx, torch.ones(8, 64) @ (w.detach() * mask), rtol=0, atol=1e-5)


# ---------------------------------------------------------------- the optimizer

def official_gradient(model, x, y, masks):
    """g̃ of the whole network: every conv/linear output is f(x, W⊙M) + f(x̄, W) − f(x̄, W⊙M)̄ (bar: detached),
    whose value is f(x, W), whose input gradient goes through W⊙M and whose weight gradient is dense."""
    maskd = {id(p): m.to(p.dtype) for p, m in zip(model.parameters(), masks)}

    def patched(layer):
        def forward(inp):
            wm = (layer.weight * maskd[id(layer.weight)]).detach()
            if isinstance(layer, nn.Linear):
                return F.linear(inp, wm) + F.linear(inp.detach(), layer.weight, layer.bias) - F.linear(inp.detach(), wm).detach()
            return (layer._conv_forward(inp, wm, None) + layer._conv_forward(inp.detach(), layer.weight, layer.bias)
                    - layer._conv_forward(inp.detach(), wm, None).detach())
        return forward

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for layer in layers:
        layer.forward = patched(layer)
    try:
        return torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    finally:
        for layer in layers:
            del layer.forward


def norm(ts):
    return torch.sqrt(sum((t ** 2).sum() for t in ts))


@pytest.mark.parametrize("pattern", ["2:4", "layer"])
def test_ssam_implicit_step_matches_hand_written(pattern):
    rho, lr = 0.2, 0.1
    model = make()
    ref = copy.deepcopy(model)
    if pattern == "2:4":
        masks = random_masks(model)
    else:  # the papers' layer mask that leaves the conv weight out
        masks = [torch.full(p.shape, n != "conv.weight") for n, p in model.named_parameters()]
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=rho, mask=FixedMask(masks, pattern), form="implicit",
               model=model, lr=lr)
    for x, y in batches(2):
        w = [p.detach().clone() for p in ref.parameters()]
        ref_stats = copy.deepcopy(ref)
        ref_stats(x)  # BatchNorm statistics move once per step, as with a plain forward
        g1 = official_gradient(ref, x, y, masks)
        eps = [rho * g / norm(g1) for g in g1]
        with torch.no_grad():
            for p, e in zip(ref.parameters(), eps):
                p.add_(e)
        g2 = torch.autograd.grad(F.cross_entropy(ref(x), y), list(ref.parameters()))
        with torch.no_grad():
            for p, wi, gi in zip(ref.parameters(), w, g2):
                p.copy_(wi - lr * gi)
        ref.load_state_dict({**ref.state_dict(), **dict(ref_stats.named_buffers())})
        closure_step(model, opt, x, y)
        for p, q in zip(model.parameters(), ref.parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-12)
        for a, b in zip(model.buffers(), ref_stats.buffers()):  # num_batches_tracked: +1 per step
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # ε is not masked again: with the layer mask the conv weight is perturbed all the same
    assert bool((eps[0] != 0).all())


def test_first_pass_is_dense_and_eps_unmasked():
    model = make()
    dense = copy.deepcopy(model)
    masks = random_masks(model)
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.1, mask=FixedMask(masks, "2:4"), form="implicit", model=model,
               lr=0.1)
    x, y = batches(1)[0]
    with opt.ascent_pass():
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    torch.testing.assert_close(loss, F.cross_entropy(dense(x), y), rtol=0, atol=0)  # SAM's first loss
    explicit_g = torch.autograd.grad(F.cross_entropy(dense(x), y), list(dense.parameters()))
    got = [p.grad.clone() for p in model.parameters()]
    # the fc layer is last: its weight gradient is the dense one; the conv weight's is not
    torch.testing.assert_close(got[-2], explicit_g[-2], rtol=0, atol=1e-12)
    assert not torch.allclose(got[0], explicit_g[0])
    w = [p.detach().clone() for p in model.parameters()]
    opt.first_step(zero_grad=True)
    eps = [p.detach() - wi for p, wi in zip(model.parameters(), w)]
    assert all(bool((e[~m] != 0).any()) for e, m in zip(eps, masks) if (~m).any())
    opt.restore()


def test_implicit_form_rejects_what_it_cannot_serve():
    model = make()
    params = list(model.parameters())
    with pytest.raises(ValueError, match="form='implicit' serves mask patterns"):
        SSAM(params, torch.optim.SGD, mask=DynamicMask(total_steps=10), form="implicit", model=model, lr=0.1)
    with pytest.raises(ValueError, match="form='implicit' serves mask patterns"):
        SSAM(params, torch.optim.SGD, mask=FisherMask(model, batches(1), pattern="unstructured", update_unit="steps"),
             form="implicit", model=model, lr=0.1)
    with pytest.raises(ValueError, match="normalize='masked'"):
        SSAM(params, torch.optim.SGD, mask=FixedMask(random_masks(model), "2:4"), form="implicit", model=model,
             normalize="masked", lr=0.1)
    with pytest.raises(ValueError, match="needs model"):
        SSAM(params, torch.optim.SGD, mask=FixedMask(random_masks(model), "2:4"), form="implicit", lr=0.1)
    for ok in ("layer", "filter", "2:4", "1:8"):
        assert check_pattern(ok) == ok
    with pytest.raises(ValueError, match="pattern"):
        check_pattern("rows")


def test_implicit_form_refuses_a_first_pass_outside_ascent_pass():
    model = make()
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1, mask=FixedMask(random_masks(model), "2:4"),
               form="implicit", model=model)
    x, y = batches(1)[0]
    F.cross_entropy(model(x), y).backward()
    with pytest.raises(RuntimeError, match="ascent_pass"):
        opt.first_step()
    opt.restore()
    opt.zero_grad()
    closure_step(model, opt, x, y)  # step(closure) enters the context itself
    assert opt.steps == 1
