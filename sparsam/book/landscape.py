"""Loss-landscape and curvature measurements of a trained network, in functional form.

Everything works on a *parameter dict* ``{name: tensor}`` (the trainable parameters of a module) and
a :class:`FunctionalLoss`, which evaluates the mean loss of a fixed set of batches at any parameter
dict through :func:`torch.func.functional_call` (the module itself is never modified; call
``model.eval()`` first so BatchNorm uses its running statistics). On top of it:

- :func:`filter_normalized_direction`: a random direction scaled filter by filter to the norms of
  the weights' filters (Li et al., 2018), so that distances along it are comparable across models;
- :func:`loss_along_line` and :func:`loss_surface`: the loss on a 1-D line / 2-D plane of directions;
- :func:`top_eigenvalue` (power iteration) and :func:`hutchinson_trace` on Hessian-vector products
  (``jvp`` or ``vjp`` of ``grad``, never forming the Hessian), of the Hessian ``H`` itself or, with the
  scales of :func:`normalizing_scales`, of the Hessian in normalised weights ``D H D``, which does not
  change when the weights before a BatchNorm are rescaled;
- :func:`sam_gradient` and :func:`top_share`: the SAM gradient ``∇L(w + ρ g/‖g‖)`` next to
  ``g = ∇L(w)`` and how concentrated their difference is (the papers' Fig. 1), read from the one
  :func:`cumulative_share`; :func:`concentration_curve` and :func:`layer_means`, what chapter 6's figure of
  the difference draws.

All randomness comes from an explicit :class:`torch.Generator`, so every result is a function of
its seed.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp, vjp

from .._checks import check_choice, check_int, check_range

Params = dict[str, Tensor]
LossFunction = Callable[[Tensor, Tensor], Tensor]

__all__ = ["Params", "FunctionalLoss", "parameters_of", "dot", "norm", "axpy", "random_like",
           "filter_normalized_direction", "loss_along_line", "loss_surface", "top_eigenvalue",
           "hutchinson_trace", "normalizing_scales", "EigenResult", "TraceResult", "sam_gradient", "top_share"]


def parameters_of(model: nn.Module) -> Params:
    """Detached copies of the trainable parameters of ``model``, by name."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def dot(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> Tensor:
    """Inner product of two parameter dicts with the same keys (a 0-d tensor, accumulated in float64)."""
    return sum((a[k].double() * b[k].double()).sum() for k in a)  # type: ignore[return-value]


def norm(a: Mapping[str, Tensor]) -> Tensor:
    """Euclidean norm of a parameter dict over all its entries."""
    return dot(a, a).sqrt()


def axpy(alpha: float | Tensor, x: Mapping[str, Tensor], y: Mapping[str, Tensor]) -> Params:
    """``alpha * x + y``, key by key, in the dtype of ``y``."""
    return {k: y[k] + (alpha * x[k]).to(y[k].dtype) for k in y}


def random_like(params: Mapping[str, Tensor], generator: torch.Generator, kind: str = "normal") -> Params:
    """A random parameter dict shaped like ``params``: standard normal or Rademacher (±1) entries.

    Draws happen key by key in the dict's order on the CPU, then move to each tensor's device, so the
    result depends only on the generator state and the shapes, not on the device.
    """
    check_choice("kind", kind, ("normal", "rademacher"))
    out = {}
    for k, p in params.items():
        if kind == "normal":
            draw = torch.randn(p.shape, generator=generator, dtype=torch.float64)
        else:
            draw = torch.randint(0, 2, p.shape, generator=generator).double().mul_(2).sub_(1)
        out[k] = draw.to(device=p.device, dtype=p.dtype)
    return out


def _filter_norms(w: Tensor) -> Tensor:
    """The norm of each filter of ``w`` (a slice along dimension 0) shaped to broadcast against ``w``;
    a one-dimensional ``w`` is one filter (a 0-d tensor)."""
    if w.dim() <= 1:
        return w.norm()
    return w.flatten(1).norm(dim=1).view(-1, *([1] * (w.dim() - 1)))


def normalizing_scales(params: Mapping[str, Tensor]) -> Params:
    """The diagonal ``D`` of the normalised weights, filter by filter: every entry of a filter (one slice
    along dimension 0 of a convolution kernel or linear weight) gets that filter's norm ``‖w_i‖``, every
    entry of a one-dimensional parameter (bias, BatchNorm scale or shift) the vector's norm.

    Why: a filter whose output feeds a BatchNorm can be rescaled, ``w_i → c w_i`` (with the running
    statistics of its channel, which training estimates from the weights it has), without changing the
    loss; the Hessian then changes as ``H → C⁻¹ H C⁻¹`` (``C`` = ``c`` on that filter's entries), so its
    eigenvalues and trace compare weight scales rather than sharpness (e.g. under another weight decay).
    ``D H D`` is the Hessian with respect to relative weights ``w_i (1 + δ_i)``; ``D → C D``, so it is
    unchanged by any such rescaling of any set of filters (per tensor included, the coarser choice).
    Filters rather than whole tensors because BatchNorm normalises each channel on its own; the unit
    is that of the filter-normalised directions (:func:`filter_normalized_direction`, Li et al., 2018)
    and of filter-wise adaptive sharpness (ASAM, Kwon et al., 2021), whose worst-case loss rise in a
    small normalised ball is, at a minimum and to second order, the top eigenvalue of this ``D H D``. A filter of zero
    norm gets zero scale: it takes no part in the measure."""
    return {k: _filter_norms(w).to(w.dtype) * torch.ones_like(w) for k, w in params.items()}


def filter_normalized_direction(params: Mapping[str, Tensor], generator: torch.Generator,
                                one_dimensional: str = "zero") -> Params:
    """A random Gaussian direction normalised filter by filter (Li et al., 2018, Sec. 4).

    For every parameter with two or more dimensions (convolution kernels, linear weights) a *filter*
    is one slice along dimension 0 (an output channel / output neuron); each direction filter
    ``d_i`` is rescaled to ``d_i ‖w_i‖ / ‖d_i‖``, so it has exactly the norm of the weight filter
    ``w_i``. One-dimensional parameters (biases, BatchNorm scales and shifts) get
    ``one_dimensional="zero"`` (Li et al.'s choice: they are not perturbed) or ``"filter"`` (the whole
    vector is one filter, rescaled to the vector's norm).
    """
    check_choice("one_dimensional", one_dimensional, ("zero", "filter"))
    direction = random_like(params, generator)
    for k, w in params.items():
        d = direction[k]
        if w.dim() <= 1:
            if one_dimensional == "zero":
                d.zero_()
            else:
                d.mul_(w.norm() / (d.norm() + 1e-12))
            continue
        d.mul_(_filter_norms(w) / (_filter_norms(d) + 1e-12))
    return direction


@dataclass
class FunctionalLoss:
    """Mean loss of ``model`` over fixed ``batches`` as a function of a parameter dict.

    Buffers (BatchNorm running statistics) are taken from ``model`` as they are; put the model in eval
    mode first, otherwise the batch statistics of each evaluation are used (and nothing is updated).
    The mean is exact over all samples: batch ``b`` is weighted by ``len(b) / total``; gradients and
    Hessian-vector products are summed the same way, so batches only bound the memory used.
    """

    model: nn.Module
    batches: Sequence[tuple[Tensor, Tensor]]
    loss: LossFunction = F.cross_entropy
    buffers: Params = field(init=False)

    def __post_init__(self) -> None:
        if not self.batches:
            raise ValueError("batches must hold at least one (inputs, targets) pair")
        self.buffers = {k: b.detach() for k, b in self.model.named_buffers()}
        self.total = sum(len(y) for _, y in self.batches)

    def batch_loss(self, params: Params, x: Tensor, y: Tensor) -> Tensor:
        """Mean loss of one batch at ``params``."""
        return self.loss(functional_call(self.model, (params, self.buffers), (x,)), y)

    def __call__(self, params: Params) -> Tensor:
        """Mean loss over all batches at ``params`` (no graph is kept)."""
        with torch.no_grad():
            return sum(self.batch_loss(params, x, y) * (len(y) / self.total)  # type: ignore[return-value]
                       for x, y in self.batches)

    def gradient(self, params: Params) -> Params:
        """``∇L(params)`` over all batches."""
        total = {k: torch.zeros_like(p) for k, p in params.items()}
        for x, y in self.batches:
            g = grad(self.batch_loss)(params, x, y)
            for k in total:
                total[k].add_(g[k], alpha=len(y) / self.total)
        return total

    def hvp(self, params: Params, vector: Params, mode: str = "forward",
            scales: Mapping[str, Tensor] | None = None) -> Params:
        """Hessian-vector product ``∇²L(params) v`` over all batches; with ``scales`` (a dict ``D`` of
        per-entry factors shaped like ``params``, e.g. :func:`normalizing_scales`) the product of the
        scaled Hessian ``D ∇²L D``, i.e. ``D (∇²L (D v))``.

        ``mode="forward"``: forward-over-reverse, the ``jvp`` of ``grad`` along ``v`` (about a third
        cheaper on CPU); ``"reverse"``: reverse-over-reverse, the ``vjp`` of ``grad`` with ``v`` (the
        Hessian is symmetric, so ``vᵀH = Hv``). Both agree to rounding.
        """
        check_choice("mode", mode, ("forward", "reverse"))
        if scales is not None:
            if set(scales) != set(params):
                raise ValueError(f"scales must have the keys of params, got {sorted(scales)}")
            product = self.hvp(params, {k: vector[k] * scales[k] for k in params}, mode)
            return {k: product[k] * scales[k] for k in params}
        total = {k: torch.zeros_like(p) for k, p in params.items()}
        for x, y in self.batches:
            def batch_grad(p: Params, x: Tensor = x, y: Tensor = y) -> Params:
                return grad(self.batch_loss)(p, x, y)

            if mode == "forward":
                with warnings.catch_warnings():
                    # the first jvp makes torch script its forward-AD decompositions, which emits
                    # torch's own deprecation notice for torch.jit.script; nothing to act on here
                    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is", category=FutureWarning)
                    _, hv = jvp(batch_grad, (params,), (vector,))
            else:
                _, pullback = vjp(batch_grad, params)
                (hv,) = pullback(vector)
            for k in total:
                total[k].add_(hv[k], alpha=len(y) / self.total)
        return total


def loss_along_line(loss: Callable[[Params], Tensor], params: Params, direction: Params,
                    alphas: Sequence[float] | Tensor) -> Tensor:
    """``[L(w + α d) for α in alphas]`` as a float64 tensor."""
    return torch.tensor([float(loss(axpy(float(a), direction, params))) for a in alphas], dtype=torch.float64)


def loss_surface(loss: Callable[[Params], Tensor], params: Params, first: Params, second: Params,
                 alphas: Sequence[float] | Tensor, betas: Sequence[float] | Tensor) -> Tensor:
    """``Z[i, j] = L(w + α_i d₁ + β_j d₂)``, a float64 tensor of shape ``(len(alphas), len(betas))``."""
    rows = []
    for a in alphas:
        shifted = axpy(float(a), first, params)
        rows.append(loss_along_line(loss, shifted, second, betas))
    return torch.stack(rows)


@dataclass(frozen=True)
class EigenResult:
    """Outcome of :func:`top_eigenvalue`: the estimate, its per-iteration history and the vector."""

    value: float
    history: list[float]
    vector: Params


@dataclass(frozen=True)
class TraceResult:
    """Outcome of :func:`hutchinson_trace`: the mean, its standard error and each sample's ``vᵀHv``."""

    value: float
    stderr: float
    samples: list[float]


def top_eigenvalue(hvp: Callable[[Params], Params], like: Mapping[str, Tensor], iterations: int,
                   generator: torch.Generator, tol: float = 0.0) -> EigenResult:
    """Eigenvalue of largest magnitude of a symmetric operator by power iteration on ``hvp``.

    Starts from a normalised Gaussian vector shaped like ``like``; each iteration sets
    ``λ = vᵀHv`` (Rayleigh quotient, ``‖v‖ = 1``) and ``v ← Hv / ‖Hv‖``. Stops after ``iterations``
    products, or earlier once ``|λ_t − λ_{t−1}| <= tol |λ_t|`` (``tol=0``: never early).
    For the Hessian at a trained minimum the largest-magnitude eigenvalue is the top (positive) one.
    """
    check_int("iterations", iterations, 1)
    check_range("tol", tol, 0.0)
    v = random_like(like, generator)
    scale = 1.0 / norm(v)
    v = {k: t * scale.to(t.dtype) for k, t in v.items()}
    history: list[float] = []
    for _ in range(iterations):
        hv = hvp(v)
        history.append(float(dot(v, hv)))
        size = norm(hv)
        if size == 0:
            break
        v = {k: t / size.to(t.dtype) for k, t in hv.items()}
        if tol > 0 and len(history) > 1 and abs(history[-1] - history[-2]) <= tol * abs(history[-1]):
            break
    return EigenResult(history[-1], history, v)


def hutchinson_trace(hvp: Callable[[Params], Params], like: Mapping[str, Tensor], samples: int,
                     generator: torch.Generator) -> TraceResult:
    """Hutchinson's unbiased estimate ``tr H ≈ mean_i v_iᵀ H v_i`` with Rademacher ``v_i``.

    ``stderr`` is the sample standard deviation over ``√samples`` (``nan`` for one sample).
    """
    check_int("samples", samples, 1)
    values = []
    for _ in range(samples):
        v = random_like(like, generator, kind="rademacher")
        values.append(float(dot(v, hvp(v))))
    mean = sum(values) / samples
    stderr = (math.sqrt(sum((s - mean) ** 2 for s in values) / (samples - 1) / samples)
              if samples > 1 else float("nan"))
    return TraceResult(mean, stderr, values)


def sam_gradient(gradient: Callable[[Params], Params], params: Params, rho: float) -> tuple[Params, Params]:
    """``(g, g_SAM)``: ``g = ∇L(w)`` and the SAM gradient ``∇L(w + ε)`` with ``ε = ρ g / ‖g‖``."""
    check_range("rho", rho, 0.0)
    g = gradient(params)
    eps_scale = rho / (float(norm(g)) + 1e-12)
    return g, gradient(axpy(eps_scale, g, params))


def cumulative_share(values: np.ndarray) -> np.ndarray:
    """Share of ``Σ values²`` carried by the ``k`` largest entries of ``values`` by magnitude, for k = 1..n
    (NaN where every entry is zero)."""
    squares = np.sort(np.square(np.asarray(values, dtype=float).ravel()))[::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.cumsum(squares) / squares.sum()


def top_share(values: Tensor, fractions: Sequence[float]) -> list[float]:
    """Share of ``Σ values²`` carried by the largest ``f`` fraction of entries, for each ``f``.

    The top ``ceil(f n)`` entries by magnitude are counted (at least one). A share far above ``f``
    means the mass is concentrated in few entries.
    """
    shares = cumulative_share(values.detach().double().flatten().cpu().numpy())
    out = []
    for f in fractions:
        check_range("fraction", f, 0.0, 1.0, low_open=True, high_open=False)
        k = max(1, math.ceil(f * len(shares)))
        out.append(float(shares[k - 1]))
    return out


def concentration_curve(values: np.ndarray, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """The :func:`cumulative_share` of ``values`` at about ``points`` ranks spaced evenly on a log scale (the first
    and the last included): the fractions of entries ``k / n`` and the shares they carry."""
    check_int("points", points, 2)
    shares = cumulative_share(values)
    if shares.size == 0:
        raise ValueError("values holds no entries")
    ranks = np.unique(np.geomspace(1, len(shares), points).astype(int))
    return ranks / len(shares), shares[ranks - 1]


def layer_means(values: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The mean magnitude of the entries of each layer of ``values`` (parameter name -> array; a layer is the name
    without its last part, e.g. ``layer1.0.conv1`` of ``layer1.0.conv1.weight``), in the order of the names."""
    layers: dict[str, list[np.ndarray]] = {}
    for name, value in values.items():
        layers.setdefault(name.rsplit(".", 1)[0], []).append(np.abs(np.asarray(value, dtype=float)).ravel())
    return {name: float(np.concatenate(parts).mean()) for name, parts in layers.items()}
