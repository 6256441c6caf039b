"""Proofs that code changes kept an algorithm's numerics (its NUMERICS version, which decides the staleness of
records: sparsam.book.records.stale_reason): the version of a definition before the change, read from git, runs side
by side with the one after on the same network, masks and batches, and every weight, momentum and mask agrees bit
for bit.

Needs the repository's history (CI runs in a full clone); a shallow clone skips these tests.
"""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsam import SAM, DynamicMask, FisherMask
from sparsam.masks.strategies import MaskStrategy

from conftest import REPO
from nets import batches, make


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)


pytestmark = pytest.mark.skipif(_git("rev-parse", "--is-shallow-repository").stdout.strip() != "false",
                                reason="the proofs read earlier versions from the full git history")


# SSAM's mask multipliers became persistent buffers overwritten in place at each mask rebuild (for CUDA graphs), and
# refresh_masks() was added: the same 0/1 values enter the same arithmetic (SSAM's numerics stayed at version 1).
SSAM_BEFORE, SSAM_AFTER = "58866c55018826739d01618a5c088e83da25a9a8", "127cf71ab1025863a3373c7ca3a7d73d2313af14"
# Gradient accumulation changed BatchNormGuard (it freezes a called module's whole subtree, for torch.compile) and
# SparseAscentSAM (one kept prefix output per ascent_pass()); both kept version 1. The proofs run the code of the last
# commit before that change beside today's, while today's still declares version 1 (a later change that raises it
# pins the last version-1 commit here instead of today's code).
ACCUMULATION_BEFORE = "9908cca980d3f522c196e3a9d2118d4509ee4853"


def module_at(commit: str, module: str) -> types.ModuleType:
    """``module`` (e.g. ``sparsam.optim.ssam``) as it was at ``commit``, its relative imports resolved in
    today's package."""
    path = module.replace(".", "/") + ".py"
    shown = _git("show", f"{commit}:{path}")
    assert shown.returncode == 0, shown.stderr
    old = types.ModuleType(f"{module}_at_{commit[:7]}")
    old.__package__ = module.rsplit(".", 1)[0]
    sys.modules[old.__name__] = old  # a dataclass in it looks its module up while it is defined
    exec(compile(shown.stdout, f"{path}@{commit[:7]}", "exec"), old.__dict__)
    return old


class EveryStepRandom(MaskStrategy):
    """A fresh random mask at every step: every step rebuilds (the case the change is about)."""

    def __init__(self):
        super().__init__(1, "steps", None)

    def _build(self, step):
        g = torch.Generator().manual_seed(step)
        return [torch.rand(p.shape, generator=g) < 0.5 for p in self.params]


def _masks(kind: str, model, data):
    if kind == "random":
        return EveryStepRandom()
    if kind == "fisher":
        return FisherMask(model, data, sparsity=0.5, num_samples=16, update_every=2, update_unit="steps")
    if kind == "fisher-filter":
        return FisherMask(model, data, sparsity=0.5, num_samples=16, update_every=3, update_unit="steps",
                          pattern="filter")
    return DynamicMask(0.5, total_steps=8, update_every=2, update_unit="steps", seed=3)


def _train(cls, kind: str, steps: int = 8, **options):
    model = make()
    data = batches(steps, seed=5)
    opt = cls(model.parameters(), torch.optim.SGD, rho=0.2, lr=0.1, momentum=0.9, weight_decay=1e-3,
              mask=_masks(kind, model, batches(2, seed=9)), model=model, **options)
    for x, y in data:
        with opt.ascent_pass():
            F.cross_entropy(model(x), y).backward()
        opt.first_step(zero_grad=True)
        F.cross_entropy(model(x), y).backward()
        opt.second_step(zero_grad=True)
    return model, opt


@pytest.mark.parametrize("kind, options", [
    ("random", {}), ("random", {"normalize": "masked"}), ("fisher", {}), ("dynamic", {"normalize": "masked"}),
    ("fisher-filter", {"form": "implicit"})])
def test_ssam_before_and_after_persistent_mask_buffers(kind, options):
    before = module_at(SSAM_BEFORE, "sparsam.optim.ssam").SSAM
    after = module_at(SSAM_AFTER, "sparsam.optim.ssam").SSAM
    assert before is not after
    (old_model, old_opt), (new_model, new_opt) = _train(before, kind, **options), _train(after, kind, **options)
    assert new_opt.mask.updates == old_opt.mask.updates > 1
    for old, new in zip(old_model.state_dict().values(), new_model.state_dict().values()):
        assert torch.equal(old, new)
    for old, new in zip(old_opt.mask.masks, new_opt.mask.masks):
        assert torch.equal(old, new)
    old_state, new_state = old_opt.state_dict()["base"]["state"], new_opt.state_dict()["base"]["state"]
    assert all(torch.equal(old_state[i]["momentum_buffer"], new_state[i]["momentum_buffer"]) for i in old_state)


def test_module_at_reads_the_old_code_not_todays():
    """The loader gives the code at the commit: the version before the change has no refresh_masks."""
    assert not hasattr(module_at(SSAM_BEFORE, "sparsam.optim.ssam").SSAM, "refresh_masks")
    assert hasattr(module_at(SSAM_AFTER, "sparsam.optim.ssam").SSAM, "refresh_masks")



class Nested(nn.Module):
    """The optimizer's BatchNorm one level down, before it a BatchNorm the optimizer does not train and one
    without affine parameters (neither is ever guarded)."""

    def __init__(self):
        super().__init__()
        self.net = make()
        self.other = nn.BatchNorm2d(2).double()
        self.plain = nn.BatchNorm2d(2, affine=False).double()

    def forward(self, x):
        return self.net(self.plain(self.other(x)))


def _guarded_run(guard_class, closure: bool):
    model = Nested()
    opt = SAM(model.net.parameters(), torch.optim.SGD, rho=0.2, lr=0.1, momentum=0.9, weight_decay=1e-3)
    opt.bn_guard = guard_class()
    for x, y in batches(6, seed=5):
        if closure:
            def run():
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                return loss
            opt.step(run)
        else:
            with opt.ascent_pass():
                F.cross_entropy(model(x), y).backward()
            opt.first_step(zero_grad=True)
            F.cross_entropy(model(x), y).backward()
            opt.second_step(zero_grad=True)
    return model, opt


def _same_runs(old_model, old_opt, new_model, new_opt) -> None:
    assert old_model.state_dict().keys() == new_model.state_dict().keys()
    for old, new in zip(old_model.state_dict().values(), new_model.state_dict().values()):
        assert torch.equal(old, new)  # weights and every BatchNorm buffer, bit for bit
    old_state, new_state = old_opt.state_dict()["base"]["state"], new_opt.state_dict()["base"]["state"]
    assert old_state and all(torch.equal(old_state[i]["momentum_buffer"], new_state[i]["momentum_buffer"])
                             for i in old_state)


@pytest.mark.parametrize("closure", [False, True])
def test_bn_guard_before_and_after_freezing_whole_subtrees(closure):
    """The guard freezes the BatchNorm modules of a called module's whole subtree (for torch.compile, whose graph
    calls no hook for submodules) instead of each BatchNorm at its own call: on an eager model the same modules
    are frozen for the same forwards, and the running statistics move as before."""
    from sparsam.optim.bn_guard import BatchNormGuard as after

    assert SAM.NUMERICS == 1  # the version the records ran; see ACCUMULATION_BEFORE
    before = module_at(ACCUMULATION_BEFORE, "sparsam.optim.bn_guard").BatchNormGuard
    assert not hasattr(before(), "_seen") and hasattr(after(), "_seen")  # the code before the change, and after
    (old_model, old_opt), (new_model, new_opt) = _guarded_run(before, closure), _guarded_run(after, closure)
    assert int(new_model.net.bn.num_batches_tracked) == 6 and int(new_model.other.num_batches_tracked) == 12
    _same_runs(old_model, old_opt, new_model, new_opt)


def _stages(seed: int = 0) -> list[nn.Module]:
    torch.manual_seed(seed)
    return [nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU()),
            nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU()),
            nn.Sequential(nn.Conv2d(4, 6, 3, bias=False), nn.BatchNorm2d(6), nn.ReLU()),
            nn.Sequential(nn.Flatten(), nn.Linear(6 * 4 * 4, 3))]


def _sparse_masks(kind: str, stages, model):
    params = [p for s in stages for p in s.parameters()]
    if kind == "fisher-layer":
        return FisherMask(model, batches(2, seed=9, dtype=torch.float32), sparsity=0.5, num_samples=16,
                          update_every=2, update_unit="steps", pattern="layer")
    masks = []
    for k, stage in enumerate(stages):
        for name, p in stage.named_parameters():
            m = torch.full(p.shape, k >= 2, dtype=torch.bool)
            if kind == "filter" and k == 1 and name == "0.weight":
                m[::2] = True
            masks.append(m)
    assert len(masks) == len(params)
    return masks


def _sparse_run(cls, kind: str, closure: bool):
    stages = _stages()
    model = nn.Sequential(*stages)
    opt = cls(stages, torch.optim.SGD, rho=0.2, mask=_sparse_masks(kind, stages, model), lr=0.1, momentum=0.9,
              weight_decay=1e-3)
    for x, y in batches(6, seed=5, dtype=torch.float32):
        if closure:
            def run():
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                return loss
            opt.step(run)
        else:
            with opt.ascent_pass():
                F.cross_entropy(model(x), y).backward()
            opt.first_step(zero_grad=True)
            F.cross_entropy(model(x), y).backward()
            opt.second_step(zero_grad=True)
    return model, opt


@pytest.mark.parametrize("kind", ["layer", "filter", "fisher-layer"])
@pytest.mark.parametrize("closure", [False, True])
def test_sparse_ascent_before_and_after_one_prefix_output_per_micro_batch(kind, closure):
    """SparseAscentSAM keeps one prefix output per ascent_pass() of a step (gradient accumulation) instead of one,
    clears the gradients at the step's first ascent_pass() only, checks that the descent used every kept output
    and ends a compiled graph at the kept output: with one ascent_pass() per step, as every record ran it, the
    same steps bit for bit."""
    from sparsam.optim.sparse_ascent import SparseAscentSAM as after

    assert after.NUMERICS == 1  # the version the records ran; see ACCUMULATION_BEFORE
    before = module_at(ACCUMULATION_BEFORE, "sparsam.optim.sparse_ascent").SparseAscentSAM
    assert not hasattr(before, "_serve_prefix_out") and hasattr(after, "_serve_prefix_out")
    (old_model, old_opt), (new_model, new_opt) = _sparse_run(before, kind, closure), _sparse_run(after, kind, closure)
    if kind != "fisher-layer":
        assert new_opt.plan().start == {"layer": 2, "filter": 1}[kind]  # a shared prefix
    _same_runs(old_model, old_opt, new_model, new_opt)
    assert all(torch.equal(a, b) for a, b in zip(old_opt.current_masks(), new_opt.current_masks()))
