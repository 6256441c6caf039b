"""Gradient accumulation in the harness (``TrainConfig.accumulate``, ``Trainer._passes``): the step over micro-batches
is the whole batch's, the reported loss and logits cover the whole batch, and under DDP only the descent's last
micro-batch all-reduces."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from conftest import data_file
from sparsam.experiment.config import TrainConfig
from sparsam.experiment.train import Trainer
from sparsam.masks.strategies import FisherMask

TINY = dict(model="resnet-small", width=4, dataset="cifar10", n_train=64, n_test=32, epochs=1, batch_size=32,
            num_samples=16, update_every=1, update_unit="steps")
SPARSE = dict(optimizer="ssam-f", pattern="layer", normalize="masked", ascent="sparse")


def test_accumulate_is_checked_and_leaves_other_run_ids_alone():
    for bad, message in [(dict(accumulate=0), "accumulate must be an integer >= 1, got 0"),
                         (dict(batch_size=30, accumulate=4), "batch_size=30 must be divisible by accumulate=4")]:
        with pytest.raises(ValueError, match=message):
            TrainConfig(**bad)
    plain = TrainConfig(**TINY)
    assert plain.run_id() == TrainConfig.from_dict({k: v for k, v in plain.to_dict().items()
                                                    if k != "accumulate"}).run_id()
    assert plain.replace(accumulate=2).run_id() != plain.run_id()
    TrainConfig(**TINY, accumulate=32)  # one sample per micro-batch is allowed


class Float64:
    """The batches of ``batches`` with float64 inputs."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return ((x.double(), y) for x, y in self.batches)


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("changes", [dict(optimizer="sgd"), dict(optimizer="sam"), dict(optimizer="ssam-f"),
                                     dict(optimizer="ssam-d"), SPARSE], ids=lambda c: "-".join(map(str, c.values())))
def test_the_trainers_step_over_micro_batches_is_the_whole_batch_step(changes):
    """In float64 and with BatchNorm in evaluation mode (its running statistics: a sample's logits do not depend
    on the other samples of its micro-batch), accumulate=4 takes the steps of accumulate=1 to rounding and
    reports the whole batch's loss and logits; the SSAM masks are the same."""
    data_file("cifar10-jpeg.npz")
    config = TrainConfig(**TINY, **changes)
    whole, parts = Trainer(config), Trainer(config.replace(accumulate=4))
    parts.model.load_state_dict(whole.model.state_dict())
    start = _flat(whole.model).double()
    for trainer in (whole, parts):
        trainer.model.double().eval()
        mask = getattr(trainer.optimizer, "mask", None)
        if isinstance(mask, FisherMask):  # its samples in float64 too, still drawn by the trainer's FisherBatches
            mask.data = Float64(trainer.fisher_data)
    batches = [(x.double(), y) for x, y in whole.train_loader]
    assert len(batches) == 2 and len(batches[0][1]) == 32
    for i, (x, y) in enumerate(batches):
        torch.manual_seed(i)  # the same augmentation of the Fisher samples (drawn from the training set)
        loss1, out1 = whole.step(x, y)
        torch.manual_seed(i)
        loss4, out4 = parts.step(x, y)
        assert out4.shape == out1.shape == (32, 10)
        assert float((out4 - out1).abs().max()) < 1e-12 and float(abs(loss4 - loss1)) < 1e-13
        mask = getattr(whole.optimizer, "mask", None)
        if mask is not None:
            assert all(torch.equal(a, b) for a, b in zip(mask.masks, parts.optimizer.mask.masks))
    moved = _flat(whole.model) - start
    assert float((_flat(parts.model) - _flat(whole.model)).norm() / moved.norm()) < 1e-12
    if whole.is_sam:
        assert float(parts.eps_norm_sum) == pytest.approx(float(whole.eps_norm_sum), rel=1e-12)
        assert whole.optimizer.steps == parts.optimizer.steps == 2  # optimizer steps, not micro-batches
    if changes.get("optimizer") == "ssam-f":
        assert parts.fisher_data.draws == whole.fisher_data.draws == 2  # one Fisher estimate per step


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed with gloo")
def test_under_ddp_only_the_descents_last_micro_batch_all_reduces(tmp_path):
    """A one-process gloo group: the forwards of the ascent's micro-batches and of all but the descent's last run
    under ``no_sync`` (DDP reads ``require_backward_grad_sync`` at the forward to decide its backward)."""
    data_file("cifar10-jpeg.npz")
    trainer = Trainer(TrainConfig(**TINY, optimizer="sam", accumulate=4))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        net = DistributedDataParallel(trainer.model)
        synced: list[bool] = []
        trainer.model.register_forward_pre_hook(lambda module, args: synced.append(net.require_backward_grad_sync))
        x, y = next(iter(trainer.train_loader))
        trainer._step(trainer.optimizer, net, x, y, True, None)
        assert synced == [False] * 4 + [False] * 3 + [True]
        synced.clear()
        trainer._step(trainer.optimizer, net, x, y, False, None)  # a plain step (sam_every) accumulates alike
        assert synced == [False] * 3 + [True]
    finally:
        dist.destroy_process_group()
