"""The fast CUDA path's pieces: channels-last, the evaluation batch, the captured step (sparsam.experiment.graphed).

What needs no GPU runs here; the capture itself, and that a replay never waits for the host, run where
CUDA is (the GPU machine runs this file too, and benchmarks/bench_gpu_train.py measures the rest).
"""

from __future__ import annotations

import pytest
import torch

from conftest import data_file
from sparsam.experiment.config import TrainConfig
from sparsam.experiment.graphed import GraphedStep
from sparsam.experiment.train import Trainer

TINY = dict(model="resnet-small", width=4, dataset="cifar10", n_train=128, n_test=96, epochs=2, batch_size=32,
            num_samples=32, update_every=1, update_unit="epochs")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().double().flatten() for t in tensors])


def test_fast_path_fields_are_checked_and_leave_other_run_ids_alone():
    for bad, message in [(dict(capture="graph"), "capture must be one of"),
                         (dict(capture="cuda-graph"), "capture='cuda-graph' needs device='cuda'"),
                         (dict(device="cuda", capture="cuda-graph", amp="fp16"), "amp 'off' or 'bf16'"),
                         (dict(device="cuda", capture="cuda-graph", optimizer="ssam-f", pattern="2:4",
                               form="implicit"), "form='explicit'"),
                         (dict(eval_batch_size=0), "eval_batch_size")]:
        with pytest.raises(ValueError, match=message):
            TrainConfig(**bad)
    TrainConfig(device="cuda", capture="cuda-graph", amp="bf16", optimizer="ssam-d")  # allowed
    plain = TrainConfig(**TINY)
    assert plain.run_id() == TrainConfig.from_dict({k: v for k, v in plain.to_dict().items()
                                                    if k not in ("channels_last", "cudnn_benchmark", "capture",
                                                                 "eval_batch_size")}).run_id()
    assert len({plain.replace(**change).run_id() for change in (
        {}, {"channels_last": True}, {"eval_batch_size": 512}, {"cudnn_benchmark": True})}) == 4


def test_channels_last_trains_in_channels_last_with_the_same_gradients():
    data_file("cifar10-jpeg.npz")
    config = TrainConfig(optimizer="ssam-f", **TINY)
    dense, fast = Trainer(config), Trainer(config.replace(channels_last=True))
    fast.model.load_state_dict(dense.model.state_dict())
    # in float64: a BatchNorm network at initialisation amplifies float32 rounding (which differs between
    # layouts) by orders of magnitude; in float64 the two layouts must agree to rounding
    dense.optimizer.mask.update(0)
    # the same mask on both sides: Fisher scores computed in another layout may order near-ties otherwise
    fast.optimizer.mask.masks = [m.clone() for m in dense.optimizer.mask.masks]
    fast.optimizer.mask.last_update = 0
    dense.model.double(), fast.model.double()
    x, y = next(iter(dense.train_loader))
    x = x.double()
    for trainer in (dense, fast):
        trainer.step(x, y)
    convs = [p for p in fast.model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert not any(p.is_contiguous(memory_format=torch.channels_last) for p in dense.model.parameters()
                   if p.dim() == 4 and p.shape[-1] > 1)
    multipliers = fast.optimizer._mask_multipliers()
    assert all(m.is_contiguous(memory_format=torch.channels_last) for m in multipliers if m.dim() == 4)
    a, b = _flat(dense.model.parameters()), _flat(fast.model.parameters())
    assert float((a - b).norm() / a.norm()) < 1e-12  # one step: the same arithmetic in another layout


def test_the_evaluation_batch_size_changes_no_hit():
    data_file("cifar10-jpeg.npz")
    config = TrainConfig(optimizer="sgd", **TINY)
    small, large = Trainer(config.replace(eval_batch_size=7)), Trainer(config.replace(eval_batch_size=96))
    large.model.load_state_dict(small.model.state_dict())
    assert len(small.test_loader) == 14 and len(large.test_loader) == 1
    (scores_small, hits_small), (scores_large, hits_large) = small.evaluate(), large.evaluate()
    assert hits_small.dtype == torch.bool and hits_small.device.type == "cpu" and len(hits_small) == 96
    assert torch.equal(hits_small, hits_large)
    assert scores_small["test_acc"] == scores_large["test_acc"] == hits_small.double().mean().item()
    assert scores_small["test_loss"] == pytest.approx(scores_large["test_loss"], rel=1e-5)


def test_a_captured_step_needs_a_fused_base_and_runs_eagerly_where_a_replay_cannot():
    data_file("cifar10-jpeg.npz")
    trainer = Trainer(TrainConfig(optimizer="ssam-d", **TINY))
    with pytest.raises(ValueError, match="fused=True"):
        GraphedStep(lambda x, y: None, trainer.optimizer, two_pass=True)
    with pytest.raises(ValueError, match="warmup must be an integer >= 1"):
        GraphedStep(lambda x, y: None, trainer.optimizer, two_pass=True, warmup=0)
    for group in trainer.optimizer.param_groups:
        group["fused"] = True  # what build_optimizer(fused=True) sets; the CPU never captures
    step = GraphedStep(lambda x, y: None, trainer.optimizer, two_pass=True)
    x = torch.zeros(32, 3, 32, 32)
    mask = trainer.optimizer.mask
    trainer.optimizer.steps = len(trainer.train_loader)  # an epoch's end: SSAM-D updates every epoch
    assert mask.needs_gradient and mask.due(trainer.optimizer.steps)
    assert step.eager_needed(x), "SSAM-D's update reads the first pass's gradient: eager"
    trainer.optimizer.steps = 1  # between updates
    assert not mask.due(1) and not step.eager_needed(x)
    step.static = (torch.zeros(32, 3, 32, 32), torch.zeros(32, dtype=torch.long))
    assert step.eager_needed(torch.zeros(16, 3, 32, 32)), "an epoch's smaller last batch: eager"
    assert step.eager_needed(x.contiguous(memory_format=torch.channels_last)), "another layout: eager"
    assert not step.eager_needed(x.clone())


@cuda
@pytest.mark.parametrize("optimizer", ["sgd", "sam", "ssam-f", "ssam-d"])
def test_captured_training_follows_eager_training_without_host_syncs(optimizer):
    data_file("cifar10-jpeg.npz")
    config = TrainConfig(optimizer=optimizer, device="cuda", amp="bf16", channels_last=True,
                         **{**TINY, "n_train": 512})
    eager, graphed = Trainer(config), Trainer(config.replace(capture="cuda-graph"))
    graphed.model.load_state_dict(eager.model.state_dict())
    for trainer in (eager, graphed):
        for epoch in range(2):
            trainer.train_epoch(epoch, progress=False)
    graph = graphed.graphs[optimizer != "sgd"]
    assert graph.replays >= 2 * (512 // 32) - graph.warmup - 2  # SSAM-D: one eager step per epoch
    a, b = _flat(eager.model.parameters()), _flat(graphed.model.parameters())
    # eager steps use foreach SGD, replays fused SGD, both in bf16: rounding differs, the trajectory must not
    # (the GPU study's declared rule allows 1%: results/gpu_study/gpu_study.yaml, fast_path.rule)
    assert float((a - b).norm() / a.norm()) < 1e-2
    x, y = next(iter(graphed.train_loader))
    x = x.contiguous(memory_format=torch.channels_last)
    graphed.step(x, y)  # step 32 updates the masks (once an epoch, allowed to wait for the host); then replays
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            graphed.step(x, y)  # a replay, with everything Python does around it
    finally:
        torch.cuda.set_sync_debug_mode("default")
