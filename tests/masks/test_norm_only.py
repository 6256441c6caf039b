"""SAM-ON (Mueller et al., NeurIPS 2023): the norm-only pattern, its mask strategy and its ascent step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsam import SSAM, NormMask
from sparsam._layers import norm_parameters
from sparsam.masks import patterns
from tests import nets


def test_norm_only_keeps_whole_flagged_tensors():
    like = [torch.zeros(3, 2), torch.zeros(4), torch.zeros(2, 2, 1)]
    got = patterns.norm_only([False, True, True], like)
    assert [m.dtype for m in got] == [torch.bool] * 3
    assert [bool(m.all()) for m in got] == [False, True, True]
    assert [bool(m.any()) for m in got] == [False, True, True]
    assert patterns.density(got) == pytest.approx((4 + 4) / (6 + 4 + 4))


def test_norm_only_rejects_mismatched_flags():
    with pytest.raises(ValueError, match="is_norm has 1 flags for 2 tensors"):
        patterns.norm_only([True], [torch.zeros(1), torch.zeros(2)])


def _sam_on(model: nn.Module, rho: float = 0.1) -> SSAM:
    return SSAM(model.parameters(), torch.optim.SGD, rho=rho, lr=0.1, mask=NormMask(model), normalize="masked")


def _convnet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8),
                         nn.ReLU(), nn.Flatten(), nn.LazyLinear(5))


def test_density_is_the_normalisation_parameters_share():
    """Counted by hand: two BatchNorm2d(8) hold 2 x (8 + 8) of the convolutions' (216 + 8) + (576 + 8), their 32 and
    the linear layer's 5 x 8 x 4 x 4 + 5 entries."""
    model = _convnet()
    model(torch.zeros(1, 3, 8, 8))  # materialise the lazy layer
    opt = _sam_on(model)
    total = (216 + 8) + (576 + 8) + 2 * 16 + 5 * 8 * 4 * 4 + 5
    assert sum(p.numel() for p in model.parameters()) == total
    assert opt.mask.density() == 32 / total
    kept = {id(p) for p, m in zip(opt.mask.params, opt.mask.masks) if m.all()}
    assert kept == {id(p) for m in (model[1], model[4]) for p in m.parameters()}
    assert not any(m.any() for p, m in zip(opt.mask.params, opt.mask.masks) if id(p) not in kept)


@pytest.mark.parametrize("layer", [nn.GroupNorm(2, 4), nn.LayerNorm(4), nn.InstanceNorm1d(4, affine=True),
                                   nn.BatchNorm1d(4), nn.RMSNorm(4)])
def test_every_normalisation_layer_counts(layer):
    model = nn.Sequential(nn.Linear(4, 4), layer, nn.Linear(4, 2))
    assert [id(p) for p in norm_parameters(model)] == [id(p) for p in layer.parameters()]


def test_a_network_without_normalisation_is_an_error():
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="none of the optimizer's parameters belongs to a normalisation layer"):
        SSAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1, mask=NormMask(model), normalize="masked")


def test_ascent_moves_only_the_normalisation_parameters_by_rho():
    """ε = ρ g_N / ‖g_N‖ (the masked normalisation), every other weight untouched; then back to w exactly."""
    model = nets.make()
    x, y = nets.batches(1)[0]
    opt = _sam_on(model, rho=0.3)
    before = [p.detach().clone() for p in model.parameters()]
    with opt.ascent_pass():
        F.cross_entropy(model(x), y).backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    opt.first_step(zero_grad=True)
    g_norm = torch.cat([grads["bn.weight"], grads["bn.bias"]]).norm()
    for (name, p), b in zip(model.named_parameters(), before):
        if name.startswith("bn."):
            torch.testing.assert_close(p.detach() - b, 0.3 * grads[name] / g_norm, rtol=1e-9, atol=0)  # SAM adds 1e-12 to the norm
        else:
            assert torch.equal(p.detach(), b), name
    assert opt.perturbation_norm() == pytest.approx(0.3, rel=1e-9)
    F.cross_entropy(model(x), y).backward()
    opt.second_step(zero_grad=True)
    assert opt.mask.updates == 0  # a fixed mask: never rebuilt


def test_mask_survives_a_checkpoint():
    model = nets.make()
    opt = _sam_on(model)
    fresh = _sam_on(nets.make(seed=1))
    fresh.load_state_dict(opt.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(fresh.mask.masks, opt.mask.masks))
    assert fresh.mask.density() == opt.mask.density()
