"""Landscape math against exact references: Hessian routines vs. autograd's full Hessian of a tiny net."""

from __future__ import annotations

import math

import numpy as np
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


def test_the_concentration_curve_and_the_layer_means_of_a_difference():
    values = np.array([3.0, 0.0, -4.0, 0.0])
    assert ls.cumulative_share(values).tolist() == [16 / 25, 1.0, 1.0, 1.0]  # largest first: 16 of 25, then 9
    assert np.isnan(ls.cumulative_share(np.zeros(3))).all()
    fractions, shares = ls.concentration_curve(values, points=50)
    assert fractions.tolist() == [0.25, 0.5, 0.75, 1.0] and shares.tolist() == [16 / 25, 1.0, 1.0, 1.0]
    big = np.random.default_rng(0).standard_normal(100_000) ** 3
    fractions, shares = ls.concentration_curve(big)
    assert fractions[0] == 1e-5 and fractions[-1] == 1.0 and 300 < len(fractions) <= 400
    assert np.all(np.diff(fractions) > 0) and np.all(np.diff(shares) >= 0) and shares[-1] == pytest.approx(1.0)
    assert ls.top_share(torch.from_numpy(big), [0.01]) == pytest.approx([ls.cumulative_share(big)[999]], rel=1e-15)
    with pytest.raises(ValueError, match="no entries"):
        ls.concentration_curve(np.array([]))
    means = ls.layer_means({"conv.weight": np.array([[1.0, -3.0]]), "conv.bias": np.array([-2.0]),
                            "fc.weight": np.array([4.0])})
    assert means == {"conv": 2.0, "fc": 4.0}


# --- the scale-free measure: the Hessian in normalised weights --------------------------------------

class ScaleFree(nn.Module):
    """Every parameter tensor feeds a BatchNorm without affine parameters and with ``eps=0``, and the
    logits are the spatial mean of the last BatchNorm: multiplying a convolution's kernel by ``c``, with
    its BatchNorm's running mean by ``c`` and running variance by ``c²`` (what training those weights
    would estimate), leaves the eval-mode loss unchanged, in exact arithmetic and, for ``c = 2``, bitwise."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(2, 4, 3, bias=False), nn.BatchNorm2d(4, eps=0.0, affine=False)
        self.conv2, self.bn2 = nn.Conv2d(4, classes, 3, bias=False), nn.BatchNorm2d(classes, eps=0.0, affine=False)

    def forward(self, x):
        return self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))).mean(dim=(2, 3))


def scale_free_setup():
    torch.manual_seed(0)
    model = ScaleFree().double()
    with torch.no_grad():
        for bn in (model.bn1, model.bn2):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 2, 7, 7, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (12,), generator=g)
    return model.eval(), x, y


def rescaled(model, factors):
    """A copy of ``model`` with each convolution's output channels multiplied by ``factors[name]`` (a
    number or one per channel), its BatchNorm's running statistics following."""
    import copy

    other = copy.deepcopy(model)
    with torch.no_grad():
        for conv, bn in ((other.conv1, other.bn1), (other.conv2, other.bn2)):
            name = "conv1" if conv is other.conv1 else "conv2"
            c = torch.as_tensor(factors[name], dtype=torch.float64).expand(conv.out_channels)
            conv.weight.mul_(c.view(-1, 1, 1, 1))
            bn.running_mean.mul_(c)
            bn.running_var.mul_(c.square())
    return other


def measures(model, x, y, scales):
    loss = ls.FunctionalLoss(model, [(x, y)])
    params = ls.parameters_of(model)
    scale = ls.normalizing_scales(params) if scales else None

    def hvp(v):
        return loss.hvp(params, v, scales=scale)

    # 30 iterations: the relations tested hold iterate by iterate (the same seed, an exactly rescaled operator)
    eigen = ls.top_eigenvalue(hvp, params, 30, torch.Generator().manual_seed(5))
    trace = ls.hutchinson_trace(hvp, params, 8, torch.Generator().manual_seed(6))
    return float(loss(params)), eigen.value, trace.value


def test_normalised_hvp_is_d_h_d_of_the_exact_hessian():
    model, x, y = setup()
    H, params = exact_hessian(model, x, y)
    scales = ls.normalizing_scales(params)
    d = flatten(scales)
    # every filter (conv output channel, fc row) carries its own norm, a 1-D parameter the vector's norm
    assert torch.allclose(scales["conv.weight"][1], params["conv.weight"][1].norm().expand(2, 3, 3))
    assert torch.allclose(scales["fc.weight"][2], params["fc.weight"][2].norm().expand(27))
    assert torch.allclose(scales["bn.bias"], params["bn.bias"].norm().expand(3))
    v = ls.random_like(params, torch.Generator().manual_seed(3))
    loss = ls.FunctionalLoss(model, [(x, y)])
    expected = (d[:, None] * H * d[None, :]) @ flatten(v)
    for mode in ("forward", "reverse"):
        assert torch.allclose(flatten(loss.hvp(params, v, mode=mode, scales=scales)), expected, atol=1e-10)
    with pytest.raises(ValueError, match="scales must have the keys of params"):
        loss.hvp(params, v, scales={"conv.weight": scales["conv.weight"]})


def test_rescaling_the_weights_before_batchnorm_divides_the_raw_hessian_and_leaves_the_normalised_one():
    model, x, y = scale_free_setup()
    double = rescaled(model, {"conv1": 2.0, "conv2": 2.0})  # every parameter tensor feeds a BatchNorm
    loss, eigen, trace = measures(model, x, y, scales=False)
    loss2, eigen2, trace2 = measures(double, x, y, scales=False)
    assert loss2 == loss                                      # bitwise: powers of two scale exactly
    assert eigen > 0 and trace > 0
    assert eigen2 == pytest.approx(eigen / 4, rel=1e-10)      # H -> H / c²: the raw measure reads "flatter"
    assert trace2 == pytest.approx(trace / 4, rel=1e-10)
    _, eigen_n, trace_n = measures(model, x, y, scales=True)
    _, eigen_n2, trace_n2 = measures(double, x, y, scales=True)
    assert eigen_n2 == pytest.approx(eigen_n, rel=1e-10)
    assert trace_n2 == pytest.approx(trace_n, rel=1e-10)
    # filter by filter, with different factors per channel and layer, the normalised measure still holds
    uneven = rescaled(model, {"conv1": [2.0, 0.5, 4.0, 1.0], "conv2": [0.25, 8.0, 2.0]})
    loss3, eigen3, trace3 = measures(uneven, x, y, scales=False)
    _, eigen_n3, trace_n3 = measures(uneven, x, y, scales=True)
    assert loss3 == pytest.approx(loss, rel=1e-13)
    assert not eigen3 == pytest.approx(eigen, rel=0.01)       # the raw measure changes
    assert eigen_n3 == pytest.approx(eigen_n, rel=1e-8)
    assert trace_n3 == pytest.approx(trace_n, rel=1e-10)


def test_the_normalised_measure_is_not_blind_to_a_change_of_function():
    model, x, y = scale_free_setup()
    other = rescaled(model, {"conv1": [2.0, 1.0, 1.0, 1.0], "conv2": 1.0})
    with torch.no_grad():  # the weights change, but the running statistics do not follow: another function
        other.bn1.running_mean.copy_(model.bn1.running_mean)
        other.bn1.running_var.copy_(model.bn1.running_var)
    loss, eigen_n, _ = measures(model, x, y, scales=True)
    loss2, eigen_n2, _ = measures(other, x, y, scales=True)
    assert loss2 != pytest.approx(loss, rel=1e-6) and eigen_n2 != pytest.approx(eigen_n, rel=1e-3)
