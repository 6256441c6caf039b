"""The small network and random batches the optimizer tests share (imported by the DDP workers too)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from sparsam.masks.strategies import MaskStrategy


class Net(nn.Module):
    """Conv2d + BatchNorm2d + Linear on [B, 2, 6, 6] inputs."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, bias=False)  # a bias before BN has zero gradient
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, classes)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def make(seed: int = 0, dtype: torch.dtype = torch.float64) -> Net:
    """A seeded Net with non-trivial BatchNorm affine parameters."""
    torch.manual_seed(seed)
    model = Net().to(dtype)
    with torch.no_grad():
        model.bn.weight.uniform_(0.5, 1.5)
        model.bn.bias.uniform_(-0.5, 0.5)
    return model


def batches(n: int, seed: int = 1, dtype: torch.dtype = torch.float64, size: int = 8):
    """``n`` seeded random (inputs, labels) batches for Net."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 2, 6, 6, generator=g, dtype=dtype), torch.randint(0, 3, (size,), generator=g))
            for _ in range(n)]


def shard(rank: int, n: int, size: int, seed: int):
    """Float32 batches of one DDP rank: the same seed gives every rank different samples."""
    g = torch.Generator().manual_seed(seed + 1000 * rank)
    return [(torch.randn(size, 2, 6, 6, generator=g), torch.randint(0, 3, (size,), generator=g)) for _ in range(n)]


def closure_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    """One ``opt.step(closure)`` on the cross-entropy of ``model`` on (x, y)."""
    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss
    opt.step(closure)


def fisher_loop(model: nn.Module, data, num_samples: int, names: list[str] | None = None,
                train: bool = False) -> list[torch.Tensor]:
    """Sum over the first ``num_samples`` samples of the squared batch-1 gradient (plain autograd), on a
    deep copy of ``model`` in train or eval mode, for the parameters called ``names`` (default: all)."""
    model = copy.deepcopy(model)
    model.train(train)
    named = dict(model.named_parameters())
    mine = [named[n] for n in (names if names is not None else named)]
    out = [torch.zeros_like(p) for p in mine]
    seen = 0
    for x, y in data:
        for i in range(len(x)):
            if seen == num_samples:
                break
            grads = torch.autograd.grad(F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]), mine, allow_unused=True)
            for o, g in zip(out, grads):
                if g is not None:
                    o += g.detach() ** 2
            seen += 1
    assert seen == num_samples
    return out


class FixedMask(MaskStrategy):
    """Fixed masks, declared as ``pattern`` (what an implicit-form SSAM checks them against)."""

    def __init__(self, masks, pattern="unstructured"):
        super().__init__(1, "steps", None)
        self.fixed, self.pattern = masks, pattern

    def _build(self, step):
        return [m.clone() for m in self.fixed]
