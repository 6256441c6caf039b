"""The convergence experiment's problem and runs (sparsam.experiment.robust_regression), against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsam.experiment import robust_regression as rr

SETUP = dict(steps=30, lr0=0.5, rho0=0.3, batch_size=4, update_every=5, num_samples=16)


@pytest.fixture(scope="module")
def problem():
    return rr.make_problem(256, 5, seed=3)


def test_problem_is_seeded_and_has_the_theorems_constants(problem):
    again = rr.make_problem(256, 5, seed=3)
    assert torch.equal(problem.a, again.a) and torch.equal(problem.b, again.b)
    norms = problem.a.norm(dim=1)
    assert problem.L == pytest.approx(2 * float(norms.max()) ** 2)
    assert problem.G == pytest.approx(float(norms.max()))
    assert problem.sigma2(8) == pytest.approx(problem.G**2 / 8)
    assert 0 < problem.outliers < 256


def test_full_gradient_matches_the_closed_form(problem):
    model = rr.make_model(5, seed=1)
    w = model[0].weight.detach().reshape(-1).double()
    r = problem.a.double() @ w - problem.b.double()
    grad = (2 * r / (1 + r**2)) @ problem.a.double() / len(r)      # ψ'(r) = 2r / (1 + r²)
    assert problem.full_grad_sq(model) == pytest.approx(float(grad.square().sum()), rel=1e-5)
    assert model[0].weight.grad is None
    for seed in range(3):  # and autograd of the loss itself, away from the initialisation too
        other = rr.make_model(5, seed=seed)
        with torch.no_grad():
            other[0].weight.add_(torch.randn(other[0].weight.shape, generator=torch.Generator().manual_seed(seed)))
        grads = torch.autograd.grad(rr.cauchy_loss(other(problem.a), problem.b), list(other.parameters()))
        assert problem.full_grad_sq(other) == pytest.approx(float(sum(g.square().sum() for g in grads)), rel=1e-5)
    with pytest.raises(ValueError, match="model must be make_model's linear model"):
        problem.full_grad_sq(torch.nn.Sequential(torch.nn.Linear(5, 1), torch.nn.Flatten(0)))  # with a bias


def test_sam_with_zero_radius_is_sgd(problem):
    sgd, _ = rr.run(problem, "SGD", 0.0, 0, **{**SETUP, "rho0": 0.0})
    sam, _ = rr.run(problem, "SAM", 0.0, 0, **{**SETUP, "rho0": 0.0})
    np.testing.assert_allclose(sam, sgd, rtol=1e-6)


def test_schedules_differ_after_the_first_step(problem):
    decaying, _ = rr.run(problem, "SAM", 0.0, 0, **SETUP)
    constant, _ = rr.run(problem, "SAM", 0.0, 0, **SETUP, schedule="constant")
    assert decaying[0] == constant[0] and decaying[1] == constant[1]   # η_1 = η0 in both
    assert not np.allclose(decaying[2:], constant[2:])


def _minimizer(problem) -> np.ndarray:
    """The Cauchy regression's minimizer by iteratively reweighted least squares in float64 (weights
    ψ'(r)/(2r) = 1/(1 + r²)), from the least-squares fit; checked to be a stationary point."""
    a, b = problem.a.double().numpy(), problem.b.double().numpy()
    w = np.linalg.lstsq(a, b, rcond=None)[0]
    for _ in range(500):
        weights = 1.0 / (1.0 + (a @ w - b) ** 2)
        w = np.linalg.solve(a.T @ (weights[:, None] * a), a.T @ (weights * b))
    r = a @ w - b
    assert np.abs((2 * r / (1 + r**2)) @ a / len(r)).max() < 1e-12
    return w


@pytest.mark.parametrize("method", ["SSAM-F", "SSAM-D"])
@pytest.mark.parametrize("seed", [1, 2])
def test_ssam_converges_to_the_minimizer(problem, method, seed):
    """200 steps with η_t, ρ_t ∝ 1/√t end within a twentieth of the start's distance from the minimizer,
    with a hundredth of its excess loss, and the full gradient's squared norm (mean of the last 20 steps)
    falls below a fiftieth of the first one's (measured at batch size 4: about 1/45, 1/1000 and 1/120)."""
    w_opt = _minimizer(problem)
    a, b = problem.a.double().numpy(), problem.b.double().numpy()
    loss = lambda w: float(np.log1p((a @ w - b) ** 2).mean())  # noqa: E731
    start = rr.make_model(5, seed)[0].weight.detach().double().numpy().reshape(-1)
    grad_sq, model = rr.run(problem, method, 0.5, seed, **{**SETUP, "steps": 200})
    final = model[0].weight.detach().double().numpy().reshape(-1)
    assert grad_sq.shape == (200,) and np.all(np.isfinite(grad_sq))
    assert np.linalg.norm(final - w_opt) < np.linalg.norm(start - w_opt) / 20
    assert loss(final) - loss(w_opt) < (loss(start) - loss(w_opt)) / 100
    assert grad_sq[-20:].mean() < grad_sq[0] / 50


def test_bad_method_or_schedule_is_refused(problem):
    with pytest.raises(ValueError, match="method"):
        rr.run(problem, "Adam", 0.0, 0, **SETUP)
    with pytest.raises(ValueError, match="schedule"):
        rr.run(problem, "SAM", 0.0, 0, **SETUP, schedule="cosine")


def test_running_mean_and_log_bins():
    values = np.array([4.0, 2.0, 0.0, 2.0])
    np.testing.assert_allclose(rr.running_mean(values), [4.0, 3.0, 2.0, 2.0])
    centres, means = rr.log_binned(np.arange(1, 101, dtype=float), bins=5)
    assert np.all(np.diff(centres) > 0) and len(centres) == len(means)
    assert means[0] == 1.0 and means[-1] < 100 and np.all(np.diff(means) > 0)
