"""The cost model (sparsam.masks.cost) in FLOPs against the layer formula of tests/layer_flops.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import layer_flops
from sparsam.experiment import models
from sparsam.masks import cost, patterns
from sparsam.optim.sparse_ascent import model_stages


def _chains():
    """A CIFAR ResNet (strided and 1x1 shortcut convolutions, BatchNorm, a linear head) and a chain with
    a strided, padded convolution with a bias, a linear layer on 3-D input and another linear layer.
    (Not grouped: FlopCounterMode counts a grouped convolution's weight-gradient as groups times the formula.)"""
    torch.manual_seed(0)
    resnet = models.build_model("resnet-small", 10, width=8)
    yield model_stages(resnet), torch.randn(4, 3, 32, 32)
    odd = [nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU()),
           nn.Sequential(nn.Flatten(2), nn.Linear(16, 5)), nn.Sequential(nn.Flatten(1), nn.Linear(30, 3))]
    yield odd, torch.randn(3, 4, 8, 8)


@pytest.mark.parametrize("case", [0, 1])
def test_layer_costs_in_flops_are_the_layer_formula(case):
    stages, x = list(_chains())[case]
    layers = cost.layer_costs(stages, x, unit="flops")
    chain = layer_flops.calls(stages, x)
    assert [len(layer.params) for layer in layers] == [len(c.params) for c in chain]
    assert all(all(a is b for a, b in zip(layer.params, c.params)) for layer, c in zip(layers, chain))
    assert [layer.forward for layer in layers] == [c.flops for c in chain]
    assert [layer.input_grad for layer in layers] == [c.flops for c in chain]
    assert [layer.weight_grad for layer in layers] == [c.flops if c.params else 0 for c in chain]
    assert any(c.flops for c in chain)


@pytest.mark.parametrize("case", [0, 1])
@pytest.mark.parametrize("granularity", ["layer", "filter"])
def test_step_costs_are_the_layer_formula(case, granularity):
    stages, x = list(_chains())[case]
    params = [p for stage in stages for p in stage.parameters()]
    layers = cost.layer_costs(stages, x, unit="flops")
    chain = layer_flops.calls(stages, x)
    sgd = layer_flops.sgd_step(chain)
    assert cost.step_cost(layers, "sgd") == sgd
    assert cost.step_cost(layers, "sam") == 2 * sgd
    g = torch.Generator().manual_seed(1)
    scores = [torch.rand(p.shape, generator=g) for p in params]
    for sparsity in (0.3, 0.7, 0.95):
        for mask in (patterns.structured(scores, sparsity, granularity),
                     patterns.cost_aware(scores, cost.tensor_costs(layers, params), sparsity, granularity)):
            assert any(m.any() for m in mask)
            assert cost.step_cost(layers, "sparse", params, mask) == pytest.approx(
                layer_flops.sparse_step(chain, params, mask), rel=1e-6)  # the code takes row shares as float32 means
