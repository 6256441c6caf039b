"""The theoretical FLOPs of a sparse step (sparsam.masks.ideal_cost) against a count by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsam.masks import cost
from sparsam.masks.ideal_cost import ideal_step_cost

B, I, H, O = 5, 4, 3, 2  # batch, input, hidden and output sizes


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(I, H, bias=False), nn.ReLU(), nn.Linear(H, O, bias=False))


def _masks(net, kept_first: int, kept_second: int):
    masks = [torch.zeros_like(p, dtype=torch.bool) for p in net.parameters()]
    masks[0].view(-1)[:kept_first] = True
    masks[1].view(-1)[:kept_second] = True
    return masks


def _layers(net):
    return cost.layer_costs([net], torch.randn(B, I))


def test_explicit_form_by_hand():
    """A multiply-add is 2 FLOPs: forward 2B(IH + HO); input-gradient of the second layer 2B·OH (the first's
    is never needed); weight-gradients 2B per kept entry in the ascent, 2B(IH + HO) in the descent."""
    net = _net()
    masks = _masks(net, kept_first=5, kept_second=2)
    forward, input_grad, dense_weight_grad = 2 * B * (I * H + H * O), 2 * B * O * H, 2 * B * (I * H + H * O)
    sgd = forward + input_grad + dense_weight_grad
    ascent = forward + input_grad + 2 * B * (5 + 2)
    assert ideal_step_cost(_layers(net), list(net.parameters()), masks) == sgd + ascent
    full = [torch.ones_like(m) for m in masks]
    assert ideal_step_cost(_layers(net), list(net.parameters()), full) == cost.step_cost(_layers(net), "sam")


def test_implicit_form_by_hand():
    """The second layer's input-gradient through W ⊙ M: 2B per kept entry of it; weight-gradients dense."""
    net = _net()
    masks = _masks(net, kept_first=5, kept_second=2)
    forward, dense_weight_grad = 2 * B * (I * H + H * O), 2 * B * (I * H + H * O)
    sgd = forward + 2 * B * O * H + dense_weight_grad
    ascent = forward + 2 * B * 2 + dense_weight_grad
    assert ideal_step_cost(_layers(net), list(net.parameters()), masks, form="implicit") == sgd + ascent


def test_the_ascent_starts_at_the_lowest_perturbed_layer():
    net = _net()
    masks = _masks(net, kept_first=0, kept_second=3)
    sgd = cost.step_cost(_layers(net))
    ascent = 2 * B * H * O + 2 * B * 3  # the second layer's forward and its 3 kept weight-gradient entries
    assert ideal_step_cost(_layers(net), list(net.parameters()), masks) == sgd + ascent
    nothing = _masks(net, 0, 0)
    assert ideal_step_cost(_layers(net), list(net.parameters()), nothing) == sgd


def test_bad_form_and_mask_count():
    net = _net()
    with pytest.raises(ValueError, match="form must be one of"):
        ideal_step_cost(_layers(net), list(net.parameters()), _masks(net, 1, 1), form="dense")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="got 1 masks for 2 parameters"):
        ideal_step_cost(_layers(net), list(net.parameters()), _masks(net, 1, 1)[:1])
