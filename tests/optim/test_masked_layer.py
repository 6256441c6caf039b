"""The one masked-layer backward (sparsam.optim.masked_layer) as the implicit form and the sparse ascent use it:
their gradients (and the implicit form's ε) bit for bit against plain autograd with the mask applied (kept-rows
weight gradients: to rounding), and the patched-forward context.

References here never touch the library's autograd Function: the implicit form's g̃ comes from the layers' own
dense forward whose input gradient a tensor hook replaces by plain autograd of the layer with weight W⊙M; the
sparse ascent's gradients are the dense gradient of the whole network, masked.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsam import SAM, SSAM
from sparsam.experiment.models import build_model, model_stages
from sparsam.masks import patterns
from sparsam.optim.masked_layer import patched_forwards
from sparsam.optim.sparse_ascent import SparseAscentSAM, run_stages

from nets import FixedMask


class ConvNet(nn.Module):
    """Convolutions of every kind the implicit form serves (groups, dilation, bias, reflect and 'same'
    padding, a residual branch reading one input twice), BatchNorm and a Linear head; float32."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2, bias=True)
        self.conv3 = nn.Conv2d(8, 8, (3, 2), padding="same", padding_mode="reflect", bias=False)
        self.short = nn.Conv2d(8, 8, 1, bias=False)
        self.fc = nn.Linear(8 * 6 * 6, 5)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.conv3(F.relu(self.conv2(h))) + self.short(h))
        return self.fc(h.flatten(1))


def data(seed=1, n=6):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 6, 6, generator=g), torch.randint(0, 5, (n,), generator=g)


def dense_masked_gradient(model, x, y, masks):
    """g̃ of the implicit form by plain autograd (see the module docstring)."""
    mask_of = {id(p): m for p, m in zip(model.parameters(), masks)}

    def forward_of(layer):
        def forward(inp):
            private = inp * 1  # this layer's own copy: its gradient is the layer's input gradient only
            out = type(layer).forward(layer, private)  # the layer's dense forward, as it is
            if not private.requires_grad:
                return out
            caught = {}
            out.register_hook(lambda g: caught.__setitem__("dy", g))

            @torch.enable_grad()  # backward runs its hooks with grad mode off
            def input_gradient(_):
                leaf = private.detach().requires_grad_()
                wm = (layer.weight * mask_of[id(layer.weight)]).detach()
                ref = F.linear(leaf, wm) if isinstance(layer, nn.Linear) else layer._conv_forward(leaf, wm, None)
                return torch.autograd.grad(ref, leaf, caught["dy"])[0]
            private.register_hook(input_gradient)
            return out
        return forward

    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and id(m.weight) in mask_of]
    for layer in layers:
        layer.forward = forward_of(layer)
    try:
        return torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    finally:
        for layer in layers:
            del layer.forward


@pytest.mark.parametrize("pattern", ["2:4", "filter", "layer"])
def test_implicit_gradient_and_epsilon_are_bitwise_the_dense_masked_computation(pattern):
    torch.manual_seed(0)
    model = ConvNet()
    ref = copy.deepcopy(model)
    g = torch.Generator().manual_seed(2)
    scores = [torch.rand(p.shape, generator=g) for p in model.parameters()]
    masks = patterns.from_pattern(scores, pattern, 0.5)
    assert any(m.any() and not m.all() for m in masks) or pattern == "layer"
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.3, mask=FixedMask(masks, pattern), form="implicit",
               model=model, lr=0.1)
    x, y = data()
    with opt.ascent_pass():
        F.cross_entropy(model(x), y).backward()
    expected = dense_masked_gradient(ref, x, y, masks)
    plain = copy.deepcopy(ref)
    dense = torch.autograd.grad(F.cross_entropy(plain(x), y), list(plain.parameters()))
    for p, e in zip(model.parameters(), expected):
        assert torch.equal(p.grad, e)
    # ε: SAM's ε of that gradient (unmasked, normalised by its norm), bit for bit
    sam = SAM(ref.parameters(), torch.optim.SGD, rho=0.3, lr=0.1)
    for q, e in zip(ref.parameters(), expected):
        q.grad = e.clone()
    opt.first_step(zero_grad=True)
    sam.first_step(zero_grad=True)
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.equal(p, q)
    if pattern != "layer":
        assert not all(torch.equal(a, b) for a, b in zip(expected, dense))  # the mask matters


def tiny_resnet():
    torch.manual_seed(0)
    return build_model("resnet-small", 10, width=4)


@pytest.mark.parametrize("granularity", ["layer", "filter"])
def test_sparse_ascent_gradients_are_the_dense_gradient_masked(granularity):
    model = tiny_resnet()
    ref = copy.deepcopy(model)
    g = torch.Generator().manual_seed(4)
    params = list(model.parameters())
    masks = patterns.structured([torch.rand(p.shape, generator=g) for p in params], 0.8, granularity)
    if granularity == "filter":
        assert any(m.any() and not m.all() for m in masks)  # kept rows exercised
    opt = SparseAscentSAM(model_stages(model), torch.optim.SGD, rho=0.1, mask=masks, lr=0.1)
    x = torch.randn(4, 3, 16, 16, generator=g)
    y = torch.randint(0, 10, (4,), generator=g)
    with opt.ascent_pass():
        F.cross_entropy(model(x), y).backward()
    dense = torch.autograd.grad(F.cross_entropy(ref(x), y), list(ref.parameters()))
    kinds = opt.plan().kinds
    assert ("rows" in kinds) == (granularity == "filter")
    for p, m, d, kind in zip(params, masks, dense, kinds):
        if kind == "none":
            assert p.grad is None  # nothing formed for an unperturbed tensor
        elif kind == "whole":
            assert torch.equal(p.grad, d)
        else:  # kept rows: zero elsewhere; a weight-gradient convolution of the kept rows only, whose sums
            # are blocked differently from the dense one's (equal to rounding, not bit for bit)
            assert kind == "rows" and not p.grad[~m].any()
            torch.testing.assert_close(p.grad, d * m, rtol=0, atol=1e-6)
    opt.restore()


@pytest.mark.parametrize("name", ["resnet-small", "resnet50-tiny"])
def test_sparse_ascent_step_calls_the_model_itself(name):
    """Trainer-style closures call model(x): the prefix is shared through the model's own forward (its
    stages are its modules); the step equals masked-normalised SSAM's, BatchNorm statistics move once."""
    torch.manual_seed(0)
    model = build_model(name, 10, **({"width": 8} if name == "resnet-small" else {}))
    ref = copy.deepcopy(model)
    stages = model_stages(model)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    model.eval()
    assert torch.equal(run_stages(stages, x), model(x))
    model.train()
    top = {id(p) for p in stages[-2].parameters()} | {id(p) for p in stages[-1].parameters()}
    masks = [torch.full(p.shape, id(p) in top, dtype=torch.bool) for p in model.parameters()]
    opt = SparseAscentSAM(stages, torch.optim.SGD, rho=0.1, mask=masks, lr=0.1, momentum=0.9)
    assert opt.plan().start == len(stages) - 2
    ssam = SSAM(ref.parameters(), torch.optim.SGD, rho=0.1, mask=FixedMask(masks), normalize="masked", lr=0.1,
                momentum=0.9)
    calls = []
    handle = stages[0].register_forward_pre_hook(lambda *_: calls.append(1))
    for net, o in ((model, opt), (ref, ssam)):
        def closure(net=net):
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            return loss
        o.step(closure)
    handle.remove()
    assert calls == [1, 1]  # the first stage ran in the ascent pass and was skipped in the descent pass
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    for a, b in zip(model.buffers(), ref.buffers()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_a_stage_the_model_does_not_call_is_an_error():
    model = tiny_resnet()
    stages = model_stages(model)
    stages[1] = nn.Sequential(*stages[1].children())  # a new module: the model's forward never calls it
    masks = [torch.full(p.shape, True) for p in model.parameters()]
    masks = [torch.zeros_like(m) if id(p) in {id(q) for q in stages[0].parameters()} or
             id(p) in {id(q) for q in stages[1].parameters()} else m for p, m in zip(model.parameters(), masks)]
    opt = SparseAscentSAM(stages, torch.optim.SGD, rho=0.1, mask=masks, lr=0.1)
    assert opt.plan().start == 2
    x, y = torch.randn(2, 3, 16, 16), torch.randint(0, 10, (2,))
    with pytest.raises(RuntimeError, match="ran 0 times"):
        with opt.ascent_pass():
            F.cross_entropy(model(x), y).backward()


def test_patched_forwards_restores_every_forward_however_the_block_ends():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    own = a.forward  # b gets an instance-level forward of its own before the block
    b.forward = lambda x: x * 3
    x = torch.ones(1, 2)
    with pytest.raises(KeyError):
        with patched_forwards({a: lambda x: x + 1, b: lambda x: x - 1}):
            assert torch.equal(a(x), x + 1) and torch.equal(b(x), x - 1)
            raise KeyError("inside")
    assert "forward" not in a.__dict__ and a.forward == own
    assert torch.equal(b(x), x * 3)
