"""Landscape math against exact references: Hessian routines vs. autograd's full Hessian of a tiny net."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.functional import hessian
from torch.func import functional_call

from sparsam.book import landscape as ls


class Tiny(nn.Module):
    """Conv2d + BatchNorm2d + Linear on [B, 2, 5, 5] inputs (a few hundred parameters)."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * 3 * 3, classes)

    def forward(self, x):
        return self.fc(torch.tanh(self.bn(self.conv(x))).flatten(1))


def setup(seed: int = 0):
    torch.manual_seed(seed)
    model = Tiny().double()
    with torch.no_grad():  # non-trivial running statistics and affine parameters
        model.bn.running_mean.uniform_(-0.2, 0.2)
        model.bn.running_var.uniform_(0.5, 2.0)
        model.bn.weight.uniform_(0.5, 1.5)
        model.bn.bias.uniform_(-0.5, 0.5)
    model.eval()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(10, 2, 5, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (10,), generator=g)
    return model, x, y


def exact_hessian(model, x, y):
    """The full Hessian of the mean cross-entropy over all parameters (flattened in dict order)."""
    params = ls.parameters_of(model)
    buffers = dict(model.named_buffers())
    names, shapes = list(params), [p.shape for p in params.values()]
    sizes = [p.numel() for p in params.values()]

    def loss(flat):
        chunks = dict(zip(names, (c.view(s) for c, s in zip(flat.split(sizes), shapes))))
        return F.cross_entropy(functional_call(model, (chunks, buffers), (x,)), y)

    flat = torch.cat([p.flatten() for p in params.values()])
    return hessian(loss, flat), params


def flatten(d):
    return torch.cat([t.flatten() for t in d.values()])


def test_hvp_matches_the_exact_hessian_and_batches_only_split_the_mean():
    model, x, y = setup()
    H, params = exact_hessian(model, x, y)
    v = ls.random_like(params, torch.Generator().manual_seed(3))
    whole = ls.FunctionalLoss(model, [(x, y)])
    split = ls.FunctionalLoss(model, [(x[:3], y[:3]), (x[3:], y[3:])])  # unequal batches
    for loss in (whole, split):
        for mode in ("forward", "reverse"):
            assert torch.allclose(flatten(loss.hvp(params, v, mode=mode)), H @ flatten(v), atol=1e-10)
        assert math.isclose(float(loss(params)), float(whole(params)), rel_tol=1e-12)
    assert torch.allclose(flatten(split.gradient(params)), flatten(whole.gradient(params)), atol=1e-12)


def matrix_operator(H, params):
    """``v ↦ H v`` on parameter dicts, for an explicit matrix ``H``."""
    names, shapes = list(params), [p.shape for p in params.values()]
    sizes = [p.numel() for p in params.values()]

    def apply(v):
        return dict(zip(names, (c.view(s) for c, s in zip((H @ flatten(v)).split(sizes), shapes))))
    return apply


def test_power_iteration_finds_the_top_eigenvalue():
    model, x, y = setup()
    H, params = exact_hessian(model, x, y)
    eigenvalues, eigenvectors = torch.linalg.eigh(H)
    top = int(eigenvalues.abs().argmax())
    exact = matrix_operator(H, params)
    result = ls.top_eigenvalue(exact, params, 2000, torch.Generator().manual_seed(0), tol=1e-13)
    assert len(result.history) < 2000 and math.isclose(result.value, float(eigenvalues[top]), rel_tol=1e-6)
    vector = flatten(result.vector)
    assert math.isclose(float(vector.norm()), 1.0, rel_tol=1e-9)
    assert abs(float(vector @ eigenvectors[:, top])) > 1 - 1e-4
    # the Hessian-vector products of the network follow the same iterates (same seed)
    loss = ls.FunctionalLoss(model, [(x, y)])
    short = ls.top_eigenvalue(lambda v: loss.hvp(params, v), params, 15, torch.Generator().manual_seed(0))
    assert short.history == pytest.approx(result.history[:15], rel=1e-8)
    assert eigenvalues[top] == eigenvalues.max()  # the top eigenvalue is positive: Rayleigh quotients stay below
    assert max(short.history) <= float(eigenvalues[top]) * (1 + 1e-9)


def test_hutchinson_is_unbiased_for_the_trace():
    model, x, y = setup()
    H, params = exact_hessian(model, x, y)
    result = ls.hutchinson_trace(matrix_operator(H, params), params, 2000, torch.Generator().manual_seed(0))
    assert abs(result.value - float(H.trace())) < 4 * result.stderr
    loss = ls.FunctionalLoss(model, [(x, y)])
    network = ls.hutchinson_trace(lambda v: loss.hvp(params, v), params, 3, torch.Generator().manual_seed(0))
    assert network.samples == pytest.approx(result.samples[:3], rel=1e-8)
    # with Rademacher vectors each sample is trace + Σ_{i≠j} v_i v_j H_ij: exact for a diagonal operator
    diag = {k: torch.rand_like(p) for k, p in params.items()}
    exact = ls.hutchinson_trace(lambda v: {k: diag[k] * v[k] for k in v}, params, 3, torch.Generator())
    assert math.isclose(exact.value, float(flatten(diag).sum()), rel_tol=1e-12) and exact.stderr < 1e-9


def test_filter_normalisation_gives_each_filter_the_norm_of_the_weight_filter():
    model, _, _ = setup()
    params = ls.parameters_of(model)
    d = ls.filter_normalized_direction(params, torch.Generator().manual_seed(0))
    for name, w in params.items():
        if w.dim() > 1:
            assert torch.allclose(d[name].flatten(1).norm(dim=1), w.flatten(1).norm(dim=1), rtol=1e-10)
            assert not torch.allclose(d[name], w)
        else:
            assert torch.count_nonzero(d[name]) == 0  # biases and BN parameters: not perturbed
    d1 = ls.filter_normalized_direction(params, torch.Generator().manual_seed(0), one_dimensional="filter")
    assert math.isclose(float(d1["bn.weight"].norm()), float(params["bn.weight"].norm()), rel_tol=1e-10)
    again = ls.filter_normalized_direction(params, torch.Generator().manual_seed(0))
    assert all(torch.equal(d[k], again[k]) for k in d)


def test_line_and_surface_evaluate_the_loss_at_the_shifted_weights():
    model, x, y = setup()
    params = ls.parameters_of(model)
    loss = ls.FunctionalLoss(model, [(x, y)])
    g = torch.Generator().manual_seed(0)
    d1, d2 = ls.filter_normalized_direction(params, g), ls.filter_normalized_direction(params, g)
    line = ls.loss_along_line(loss, params, d1, [-0.5, 0.0, 0.5])
    assert math.isclose(float(line[1]), float(loss(params)), rel_tol=1e-12)
    surface = ls.loss_surface(loss, params, d1, d2, [-0.5, 0.0, 0.5], [0.0, 0.25])
    assert surface.shape == (3, 2)
    assert torch.allclose(surface[:, 0], line)
    shifted = {k: params[k] + 0.5 * d1[k] + 0.25 * d2[k] for k in params}
    assert math.isclose(float(surface[2, 1]), float(loss(shifted)), rel_tol=1e-12)
    before = {k: b.clone() for k, b in model.named_buffers()}
    loss.hvp(params, d1)  # the functional loss leaves the module's running statistics alone
    assert all(torch.equal(b, before[k]) for k, b in model.named_buffers())


def test_sam_gradient_and_top_share():
    model, x, y = setup()
    params = ls.parameters_of(model)
    loss = ls.FunctionalLoss(model, [(x, y)])
    g, g_sam = ls.sam_gradient(loss.gradient, params, rho=0.05)
    eps = {k: 0.05 * g[k] / ls.norm(g) for k in g}
    expected = loss.gradient({k: params[k] + eps[k] for k in params})
    assert torch.allclose(flatten(g_sam), flatten(expected), atol=1e-12)
    g0, same = ls.sam_gradient(loss.gradient, params, rho=0.0)
    assert torch.allclose(flatten(g0), flatten(same))
    shares = ls.top_share(torch.tensor([3.0, 0.0, -4.0, 0.0]), [0.25, 0.5, 1.0])
    assert shares == pytest.approx([16 / 25, 1.0, 1.0])
    with pytest.raises(ValueError, match="fraction"):
        ls.top_share(torch.ones(3), [0.0])
