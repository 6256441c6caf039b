"""Proofs that code changes kept an algorithm's numerics (its NUMERICS version, which decides the staleness of
records: sparsam.book.records.stale_reason): the version of a definition before the change, read from git, runs side
by side with the one after on the same network, masks and batches, and every weight, momentum and mask agrees bit
for bit.

Needs the repository's history (CI runs in a full clone); a shallow clone skips these tests.
"""

from __future__ import annotations

import subprocess
import types

import pytest
import torch
import torch.nn.functional as F

from sparsam import DynamicMask, FisherMask
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


def module_at(commit: str, module: str) -> types.ModuleType:
    """``module`` (e.g. ``sparsam.optim.ssam``) as it was at ``commit``, its relative imports resolved in
    today's package."""
    path = module.replace(".", "/") + ".py"
    shown = _git("show", f"{commit}:{path}")
    assert shown.returncode == 0, shown.stderr
    old = types.ModuleType(f"{module}_at_{commit[:7]}")
    old.__package__ = module.rsplit(".", 1)[0]
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
