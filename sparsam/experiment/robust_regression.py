"""The convergence experiment of notebook 1: robust (Cauchy) linear regression, a stochastic
non-convex problem that meets every assumption of the convergence theorem, and the runs on it.

``F_i(w) = log(1 + (a_i·w - b_i)²)``; one label in five carries a large outlier, so many residuals
sit in the concave region ``|r| > 1``. ``|ψ'| <= 1`` and ``|ψ''| <= 2`` give the constants
``L = 2 max‖a_i‖²``, ``G = max‖a_i‖`` and ``σ² <= G²/|B|``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..masks.strategies import DynamicMask, FisherMask
from ..optim.sam import SAM
from .config import OPTIMIZER_NAMES
from .optimizers import build_optimizer

# The methods compared, by their display names (sparsam.experiment.config.OPTIMIZER_NAMES).
_OPTIMIZER_OF = {OPTIMIZER_NAMES[name]: name for name in ("sgd", "sam", "ssam-f", "ssam-d")}
METHODS = tuple(_OPTIMIZER_OF)
SCHEDULES = ("decaying", "constant")


def cauchy_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ψ(r) = log(1 + r²), averaged over the batch."""
    return torch.log1p((pred - target) ** 2).mean()


@dataclass(frozen=True)
class Problem:
    """A data set ``(a, b)`` of the robust regression and the theorem's constants for it."""

    a: torch.Tensor
    b: torch.Tensor
    outliers: int

    @property
    def L(self) -> float:
        return float(2 * self.a.norm(dim=1).max() ** 2)

    @property
    def G(self) -> float:
        return float(self.a.norm(dim=1).max())

    def sigma2(self, batch_size: int) -> float:
        """The bound σ² <= G²/|B| on the variance of a mini-batch gradient."""
        return self.G**2 / batch_size

    @torch.no_grad()
    def full_grad_sq(self, model: nn.Module) -> float:
        """‖∇f(w)‖² over the whole data set for the linear model of :func:`make_model`, in closed form:
        ∇f(w) = aᵀ ψ'(a w − b) / n with ψ'(r) = 2r / (1 + r²) (five times faster than autograd, which every step
        of :func:`run` would otherwise call on the whole data set; leaves the ``.grad`` fields alone)."""
        layer = model[0] if isinstance(model, nn.Sequential) else None
        if not isinstance(layer, nn.Linear) or layer.bias is not None or len(model) != 2:
            raise ValueError(f"model must be make_model's linear model a -> a·w, got {model}")
        residual = self.a @ layer.weight.reshape(-1) - self.b
        gradient = self.a.T @ (2 * residual / (1 + residual * residual)) / residual.numel()
        return float(gradient.square().sum())


def make_problem(n_points: int, dim: int, seed: int) -> Problem:
    """Features ``a_i ~ N(0, I)``, labels ``a_i·w* + 0.1·noise`` with one label in five an outlier (10·noise)."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n_points, dim, generator=gen)
    w_star = torch.randn(dim, generator=gen) / math.sqrt(dim)
    noise = 0.1 * torch.randn(n_points, generator=gen)
    outlier = torch.rand(n_points, generator=gen) < 0.2
    noise[outlier] = 10.0 * torch.randn(int(outlier.sum()), generator=gen)
    return Problem(a, a @ w_star + noise, int(outlier.sum()))


def make_model(dim: int, seed: int) -> nn.Module:
    """The linear model ``a -> a·w`` with a seeded initialisation (output of shape (batch,))."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, 1, bias=False), nn.Flatten(0))


def _optimizer(method: str, sparsity: float, model: nn.Module, problem: Problem, *, lr0: float, rho0: float,
               update_every: int, num_samples: int, steps: int, seed: int) -> torch.optim.Optimizer:
    name = _OPTIMIZER_OF[method]
    mask = None
    if name == "ssam-f":
        fisher_data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(problem.a, problem.b),
                                                  batch_size=num_samples, shuffle=True,
                                                  generator=torch.Generator().manual_seed(seed))
        mask = FisherMask(model, fisher_data, sparsity=sparsity, num_samples=num_samples, update_every=update_every,
                          update_unit="steps", loss_fn=cauchy_loss)
    elif name == "ssam-d":
        mask = DynamicMask(sparsity, update_every=update_every, update_unit="steps", total_steps=steps, seed=seed)
    return build_optimizer(name, model.parameters(), lr=lr0, rho=rho0, mask=mask)


def run(problem: Problem, method: str, sparsity: float, seed: int, *, steps: int, lr0: float, rho0: float,
        batch_size: int, update_every: int = 10, num_samples: int = 64,
        schedule: str = "decaying") -> tuple[np.ndarray, nn.Module]:
    """One run of ``steps`` iterations from a seeded initialisation; returns ``‖∇f(w_t)‖²`` for
    t = 1..steps (measured before each update) and the final model.

    ``schedule="decaying"``: ``η_t = η0/√t`` and ``ρ_t = ρ0/√t``, the theorem's schedules;
    ``"constant"``: ``η_t = η0`` and ``ρ_t = ρ0``, the negative control (the bound does not go to zero).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
    model = make_model(problem.a.shape[1], seed)
    opt = _optimizer(method, sparsity, model, problem, lr0=lr0, rho0=rho0, update_every=update_every,
                     num_samples=num_samples, steps=steps, seed=seed)
    decay = (lambda t: 1.0 / math.sqrt(t)) if schedule == "decaying" else (lambda t: 1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: decay(k + 1))
    batches = torch.Generator().manual_seed(10_000 + seed)
    n_points = problem.a.shape[0]
    grad_sq = np.empty(steps)
    for step in range(1, steps + 1):
        grad_sq[step - 1] = problem.full_grad_sq(model)
        idx = torch.randint(n_points, (batch_size,), generator=batches)
        x, y = problem.a[idx], problem.b[idx]

        def closure() -> torch.Tensor:
            loss = cauchy_loss(model(x), y)
            loss.backward()
            return loss

        if not isinstance(opt, SAM):  # SGD: one plain step
            opt.zero_grad()
            closure()
            opt.step()
        else:
            for group in opt.param_groups:
                group["rho"] = rho0 * decay(step)
            opt.step(closure)
            opt.zero_grad()
        sched.step()
    return grad_sq, model


def running_mean(values: np.ndarray) -> np.ndarray:
    """``(1/T) Σ_{t<=T} values_t`` for every T."""
    values = np.asarray(values, dtype=float)
    return np.cumsum(values) / np.arange(1, len(values) + 1)


def log_binned(values: np.ndarray, bins: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Means of ``values`` (indexed by t = 1..T) over logarithmically spaced bins of t: centres, means."""
    values = np.asarray(values, dtype=float)
    edges = np.unique(np.geomspace(1, len(values) + 1, bins + 1).astype(int))
    centres = np.sqrt(edges[:-1] * edges[1:])
    means = np.array([values[lo - 1:hi - 1].mean() for lo, hi in zip(edges[:-1], edges[1:])])
    return centres, means
