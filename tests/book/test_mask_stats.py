"""Mask statistics against values worked out by hand on small masks, and the SSAM mask trace."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch

from nets import batches, closure_step, make
from sparsam import SSAM, DynamicMask, FisherMask
from sparsam.book import mask_stats
from sparsam.masks import patterns as masks

T, F = True, False


def test_tensor_densities_fisher_mass_and_overlap_by_hand():
    scores = [torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([[10.0]])]
    chosen = [torch.tensor([F, T, F, T]), torch.tensor([[T]])]
    np.testing.assert_array_equal(mask_stats.tensor_densities(chosen), [0.5, 1.0])
    assert mask_stats.fisher_mass(scores, chosen) == pytest.approx((2 + 4 + 10) / 20, abs=1e-12)
    one = [torch.tensor([T, F, F, F])]
    two = [torch.tensor([T, T, F, F])]
    assert mask_stats.overlap(one, two) == 1.0  # every entry of `one` is in `two`
    assert mask_stats.overlap(two, one) == 0.5  # half of `two` is in `one`: the overlap is not symmetric
    assert mask_stats.overlap(two, [torch.tensor([F, F, T, T])]) == 0.0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="first must perturb"):
        mask_stats.overlap([torch.zeros(3, dtype=torch.bool)], [torch.ones(3, dtype=torch.bool)])
    with pytest.raises(ValueError, match="masks must hold one tensor of the same shape"):
        mask_stats.fisher_mass([torch.ones(3)], [torch.ones(4, dtype=torch.bool)])
    with pytest.raises(ValueError, match="scores must have a positive sum"):
        mask_stats.fisher_mass([torch.zeros(3)], [torch.ones(3, dtype=torch.bool)])
    weight = [torch.ones(4, 2)]
    with pytest.raises(ValueError, match="n must be in"):
        mask_stats.nm_defect(weight, [torch.ones(4, 2, dtype=torch.bool)] * 1, masks.n_m(weight, 2, 4, "out"), 5, 4)
    with pytest.raises(ValueError, match="scores must be weights of 2 or more dimensions"):
        mask_stats.nm_defect([torch.ones(4)], [torch.ones(4, dtype=torch.bool)], [torch.ones(4, dtype=torch.bool)],
                             2, 4)
    with pytest.raises(ValueError, match="names must have one name per tensor"):
        mask_stats.nm_defect(weight, masks.n_m(weight, 2, 4, "out"), masks.n_m(weight, 2, 4, "out"), 2, 4,
                             names=["a", "b"])


def test_pattern_table_splits_weights_from_1d_tensors():
    scores = [torch.tensor([[4.0, 1.0], [2.0, 1.0]]), torch.tensor([1.0, 1.0])]
    weight_half = [torch.tensor([[T, F], [T, F]]), torch.tensor([F, F])]
    bias_only = [torch.zeros(2, 2, dtype=torch.bool), torch.tensor([T, T])]
    table = mask_stats.pattern_table(scores, {"weight half": weight_half, "bias only": bias_only})
    expected = pd.DataFrame({"overall density": [2 / 6, 2 / 6], "conv/linear weights": [0.5, 0.0],
                             "1-D tensors": [0.0, 1.0], "Fisher mass kept": [6 / 10, 2 / 10]},
                            index=pd.Index(["weight half", "bias only"], name="pattern"))
    pd.testing.assert_frame_equal(table, expected)


def test_nm_defect_of_the_official_mask_by_hand():
    # A conv weight [C_out=4, C_in=1, 1, 2]: at input position 0 the output channels score 4, 3, 2, 1,
    # at position 1 they score 1, 2, 3, 4. The best 2:4 mask along the output dimension keeps
    # channels 0, 1 at position 0 and channels 2, 3 at position 1 (score 14 of 20).
    scores = [torch.tensor([[4.0, 1.0], [3.0, 2.0], [2.0, 3.0], [1.0, 4.0]]).reshape(4, 1, 1, 2)]
    intended = masks.n_m(scores, 2, 4, dim="out")
    assert intended[0].reshape(4, 2).tolist() == [[T, F], [T, F], [F, T], [F, T]]
    # The official code picks the same bits on the transposed scores, then reads them back untransposed:
    # flat [T, T, F, F, F, F, T, T] as [4, 2] perturbs channels 0 and 3 at both positions.
    official = masks.n_m_official(scores, 2, 4)
    assert official[0].reshape(4, 2).tolist() == [[T, T], [F, F], [F, F], [T, T]]
    frame = mask_stats.nm_defect(scores, official, intended, 2, 4, names=["conv"])
    expected = pd.DataFrame({"groups": [2], "wrong_groups": [2], "chosen_mass": [4.0 + 1 + 1 + 4],
                             "intended_mass": [14.0], "total_mass": [20.0]}, index=["conv"])
    pd.testing.assert_frame_equal(frame, expected)
    right = mask_stats.nm_defect(scores, intended, intended, 2, 4)
    assert right["wrong_groups"].tolist() == [0] and right["chosen_mass"].tolist() == [14.0]
    summary = mask_stats.nm_summary(frame, 2, 4)
    assert summary.to_dict() == pytest.approx({"wrong_groups": 1.0, "chosen_mass": 10 / 14,
                                               "random_mass": 0.5 * 20 / 14})


def test_nm_defect_counts_full_groups_only():
    # A linear weight [6, 3]: at each of the 3 input positions one full group of 4 output channels;
    # channels 4 and 5 form a partial group that no statistic of the groups counts.
    scores = [torch.arange(18, dtype=torch.float64).reshape(6, 3)]
    intended = masks.n_m(scores, 1, 2, dim="out")  # 1:2 leaves 3 full groups per position
    frame = mask_stats.nm_defect(scores, intended, intended, 1, 2)
    assert frame["groups"].tolist() == [9] and frame["wrong_groups"].tolist() == [0]
    worst = [~intended[0]]  # keeps the lesser entry of every pair
    assert mask_stats.nm_defect(scores, worst, intended, 1, 2)["wrong_groups"].tolist() == [9]
    four = mask_stats.nm_defect(scores, worst, intended, 2, 4)
    assert four["groups"].tolist() == [3]
    # in each group of channels 0-3 `worst` keeps channels 0 and 2, the best two are 2 and 3
    assert four["wrong_groups"].tolist() == [3]


def test_nm_shares_read_each_row_as_nm_summary_reads_the_totals():
    defect = pd.DataFrame({"groups": [4, 2], "wrong_groups": [1, 0], "chosen_mass": [1.0, 3.0],
                           "intended_mass": [2.0, 4.0], "total_mass": [3.0, 6.0]}, index=["a", "b"])
    shares = mask_stats.nm_shares(defect, 2, 4)
    assert shares.index.tolist() == ["a", "b"]
    assert shares.to_dict("index") == {"a": {"wrong_groups": 0.25, "chosen_mass": 0.5, "random_mass": 0.75},
                                       "b": {"wrong_groups": 0.0, "chosen_mass": 0.75, "random_mass": 0.75}}
    for name in ("a", "b"):
        assert mask_stats.nm_summary(defect.loc[[name]], 2, 4).to_dict() == shares.loc[name].to_dict()
    assert mask_stats.nm_summary(defect, 2, 4).to_dict() == {"wrong_groups": 1 / 6, "chosen_mass": 4 / 6,
                                                             "random_mass": 0.5 * 9 / 6}


def test_nm_summary_of_no_rows_is_nan():
    empty = mask_stats.nm_defect([], [], [], 2, 4)
    assert empty.empty and list(empty.columns) == ["groups", "wrong_groups", "chosen_mass", "intended_mass",
                                                   "total_mass"]
    assert mask_stats.nm_summary(empty, 2, 4).isna().all()


def test_trace_of_a_dynamic_mask_follows_its_schedule_and_trains_as_step_does():
    model, twin = make(), make()
    data = batches(6)
    strategy = DynamicMask(sparsity=0.7, update_every=2, total_steps=6, seed=3)
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.1, mask=strategy, lr=0.1, momentum=0.9)
    twin_opt = SSAM(twin.parameters(), torch.optim.SGD, rho=0.1, lr=0.1, momentum=0.9,
                    mask=DynamicMask(sparsity=0.7, update_every=2, total_steps=6, seed=3))
    trace = mask_stats.trace_masks(model, opt, iter(data), 6)
    for x, y in data:
        closure_step(twin, twin_opt, x, y)
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    total = sum(p.numel() for p in model.parameters())
    live = int(0.3 * total)
    np.testing.assert_array_equal(trace.density, np.full(7, live / total))  # constant density
    assert trace.updates["step"].tolist() == [2, 4]
    for step, dropped in zip(trace.updates["step"], trace.updates["dropped"]):  # k = int(α_t · live) exchanged
        assert round(dropped * live) == int(strategy.drop_fraction(step) * live)
    np.testing.assert_allclose(trace.updates["dropped"], 1 - trace.updates["kept_previous"])
    kept_first = trace.updates["kept_first"].tolist()
    assert kept_first[0] == 1.0  # the first rebuild against itself; the second against the first, its previous
    assert kept_first[1] == trace.updates["kept_previous"].iloc[1] < 1.0
    sizes = np.array([p.numel() for p in model.parameters()])
    np.testing.assert_allclose(trace.layers @ sizes / total, trace.density)  # per-tensor densities add up
    np.testing.assert_array_equal(trace.layers[-1], mask_stats.tensor_densities(strategy.masks))
    np.testing.assert_array_equal(trace.update_layers, trace.layers[[3, 5]])  # rebuilt in steps 3 and 5


def test_trace_of_a_fisher_mask_starts_from_its_first_update():
    model = make()
    data = batches(5)
    strategy = FisherMask(model, data[:1], sparsity=0.5, num_samples=8, update_every=2, update_unit="steps")
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.1, mask=strategy, lr=0.1)
    trace = mask_stats.trace_masks(model, opt, iter(data), 5)
    assert trace.density[0] == 0.0  # the placeholder before the first Fisher pass perturbs nothing
    assert trace.updates["step"].tolist() == [0, 2, 4]
    assert math.isnan(trace.updates["kept_previous"].iloc[0])
    assert trace.updates["kept_first"].iloc[0] == 1.0
    assert trace.update_layers.shape == (3, len(strategy.masks))
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        mask_stats.trace_masks(model, opt, iter(data), 0)
    sgd = torch.optim.SGD(copy.deepcopy(model).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="optimizer must be a sparsam.SSAM"):
        mask_stats.trace_masks(model, sgd, iter(data), 1)


def test_train_steps_are_plain_sgd_steps_with_the_loss_before_each_update():
    model, twin = make(), make()
    data = batches(4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    losses = mask_stats.train_steps(model, opt, iter(data), 4)
    expected = []
    for x, y in data:  # the same steps by hand: SGD's update on the cross-entropy of each batch
        loss = torch.nn.functional.cross_entropy(twin(x), y)
        expected.append(loss.item())
        twin_opt.zero_grad()
        loss.backward()
        twin_opt.step()
    np.testing.assert_array_equal(losses, expected)
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert mask_stats.train_steps(model, opt, iter([]), 0).shape == (0,)
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        mask_stats.train_steps(model, opt, iter(data), -1)
