"""Empirical Fisher scores: the sum over samples of squared per-sample gradients.

``score(θ) = Σ_{i<N_F} (∂ℓ(f(x_i; w), y_i) / ∂θ)²`` with ``ℓ`` the loss at the true label.
:func:`fisher_scores` computes the per-sample gradients in memory-bounded chunks of a batch, in eval
mode, and leaves the model exactly as it was: parameters, BatchNorm running statistics, train/eval
mode and ``.grad`` fields. Two methods give the same scores:

* ``"per_layer"``: one batched forward and one input-gradient backward per chunk; each layer's
  per-sample weight gradients then come from its input activations and output gradients
  (``nn.Linear``: ``G_iᵀ A_i``; ``nn.Conv2d``: ``G_i · unfold(A_i)ᵀ``, or one convolution with the
  samples as groups where a sample's gradient is smaller than its unfolded input; eval-mode
  BatchNorm: ``Σ G_i x̂_i`` and ``Σ G_i``), squared and summed a few samples at a time in one reused
  buffer (cache-sized on a CPU). A Linear on flat inputs needs no per-sample product at all:
  ``Σ_i (g_i a_iᵀ)² = (g²)ᵀ a²``. The backward never forms the batch weight gradients, so a chunk
  costs about one SGD step plus the per-sample products.
* ``"vmap"``: ``torch.func.vmap(grad(...))`` over a functional copy of the model; any module works.
:func:`fisher_scores_official` reproduces the official implementation (batch-1 loop in train mode,
which moves BatchNorm running statistics) for comparison and benchmarks only.
"""

from __future__ import annotations

import collections
import functools
from typing import Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
import torch.nn.grad
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.func import functional_call, grad, vmap

from .._checks import check_choice, check_int
from .._layers import pads_inside
from .._types import FisherMethod, LossFn

Batches = Iterable[tuple[Tensor, Tensor]]
# The version of what this module computes (stored in every run record that uses it,
# sparsam.experiment.optimizers.numerics): raise it when a change alters any number it produces;
# tests/optim/test_numerics.py fingerprints each version.
NUMERICS = 1


def _named(model: nn.Module, params: Sequence[Tensor]) -> list[str]:
    names = {id(p): n for n, p in model.named_parameters()}
    missing = [i for i, p in enumerate(params) if id(p) not in names]
    if missing:
        raise ValueError(f"params: entries {missing[:5]} are not parameters of the model")
    return [names[id(p)] for p in params]


def _samples(data: Batches, num_samples: int, device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield the first ``num_samples`` samples of ``data`` as (x, y) batches on ``device``."""
    seen = 0
    for x, y in data:
        take = min(len(x), num_samples - seen)
        yield x[:take].to(device), y[:take].to(device)
        seen += take
        if seen == num_samples:
            return
    raise ValueError(f"num_samples={num_samples} but the data yielded only {seen} samples")


def default_chunk_size(params: Sequence[Tensor], max_bytes: int = 1 << 30) -> int:
    """Samples per chunk: 32 (fastest on the CPU we measured), fewer if the per-sample gradients
    would exceed ``max_bytes``."""
    per_sample = sum(p.numel() * p.element_size() for p in params)
    return max(1, min(32, max_bytes // max(per_sample, 1)))


def fisher_scores(model: nn.Module, params: Sequence[Tensor], data: Batches, num_samples: int,
                  loss_fn: LossFn = F.cross_entropy, chunk_size: int | None = None,
                  method: FisherMethod = "auto") -> list[Tensor]:
    """Fisher score of every entry of ``params`` (parameters of ``model``) over ``num_samples`` samples.

    ``data`` yields (inputs, labels) batches; the first ``num_samples`` samples are used.
    ``loss_fn(logits, labels)`` must average over a batch (per-sample calls use batch size 1).
    The model runs in eval mode (BatchNorm with its running statistics); nothing of it changes.
    ``method``: ``"per_layer"`` (needs every module owning one of ``params`` to be an ``nn.Linear``,
    an ``nn.Conv2d`` with zero padding given as numbers, or a BatchNorm with running statistics),
    ``"vmap"`` (any module), or ``"auto"`` (``"per_layer"`` where it applies, else ``"vmap"``).
    """
    check_int("num_samples", num_samples, 1)
    check_choice("method", method, ("auto", "per_layer", "vmap"))
    names = _named(model, params)
    device = params[0].device if params else torch.device("cpu")
    chunk = chunk_size or default_chunk_size(params)
    check_int("chunk_size", chunk, 1)
    layers = _per_layer_modules(model, params)
    if method == "per_layer" and layers is None:
        raise ValueError("method='per_layer' handles parameters of nn.Linear, nn.Conv2d (zero padding given "
                         "as numbers) and BatchNorm with running statistics only; use method='vmap'")
    if method != "vmap" and layers is not None:
        chunk_scores: Callable[[Tensor, Tensor], list[Tensor]] = functools.partial(
            _per_layer_chunk, model, layers, params, loss_fn)
    else:
        chunk_scores = _vmap_chunk(model, names, loss_fn)
    scores = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            for x, y in _samples(data, num_samples, device):
                for xc, yc in zip(x.split(chunk), y.split(chunk)):
                    torch._foreach_add_(scores, chunk_scores(xc, yc))
    finally:
        model.train(was_training)
    return scores


def _vmap_chunk(model: nn.Module, names: list[str], loss_fn: LossFn) -> Callable[[Tensor, Tensor], list[Tensor]]:
    """Fisher scores of one chunk by ``vmap(grad(...))`` over a functional copy of ``model``."""
    frozen = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    trainable = {n: frozen[n] for n in names}

    def sample_loss(weights: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        out = functional_call(model, ({**frozen, **weights}, buffers), (x.unsqueeze(0),))
        return loss_fn(out, y.unsqueeze(0))

    per_sample_grads = vmap(grad(sample_loss), in_dims=(None, 0, 0))

    def chunk_scores(x: Tensor, y: Tensor) -> list[Tensor]:
        grads = per_sample_grads(trainable, x, y)
        return [grads[n].float().square().sum(0) for n in names]
    return chunk_scores


def _per_layer_ok(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    if isinstance(module, nn.Conv2d):
        return pads_inside(module)
    if isinstance(module, _BatchNorm):
        return module.running_mean is not None and module.running_var is not None
    return False


def _per_layer_modules(model: nn.Module, params: Sequence[Tensor]) -> list[nn.Module] | None:
    """The modules owning ``params``, or ``None`` if the per-layer method cannot handle one of them."""
    wanted = {id(p) for p in params}
    owners = [m for m in model.modules() if any(id(p) in wanted for p in m.parameters(recurse=False))]
    return owners if all(_per_layer_ok(m) for m in owners) else None


def _per_layer_chunk(model: nn.Module, layers: list[nn.Module], params: Sequence[Tensor], loss_fn: LossFn,
                     x: Tensor, y: Tensor) -> list[Tensor]:
    """Fisher scores of one chunk from the per-layer activations and output gradients."""
    calls: list[list] = []  # [module, input, output gradient] per call (a module may run twice)

    def make_leaf(module: nn.Module, args: tuple) -> tuple | None:
        if args[0].requires_grad:
            return None
        return (args[0].detach().requires_grad_(), *args[1:])  # the backward must reach this layer

    def record(module: nn.Module, args: tuple, out: Tensor) -> None:
        call = [module, args[0], None]
        calls.append(call)
        # a tensor hook sees the gradient of `out` as returned, even if a later op edits it in place
        out.register_hook(lambda g: call.__setitem__(2, g))

    handles = [h for m in layers for h in (m.register_forward_pre_hook(make_leaf), m.register_forward_hook(record))]
    try:
        loss = loss_fn(model(x), y) * len(x)  # Σ_i ℓ_i: row i of every output gradient is sample i's
        inputs = list({id(c[1]): c[1] for c in calls}.values())
        torch.autograd.grad(loss, inputs, allow_unused=True)  # input gradients only: no weight gradients
    finally:
        for h in handles:
            h.remove()
    index = {id(p): i for i, p in enumerate(params)}
    uses = collections.Counter(index[id(p)] for module, _, g in calls if g is not None
                               for p in (module.weight, module.bias) if p is not None and id(p) in index)
    reused = {i for i, count in uses.items() if count > 1}
    scores = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    shared: dict[int, Tensor] = {}  # per-sample gradients of a parameter used by several calls, summed
    for module, a, g in calls:
        if g is None:  # the output did not reach the loss
            continue
        if not any(id(p) in index and index[id(p)] in reused for p in (module.weight, module.bias)):
            # the usual case: squared sums straight from this call
            for p, square_sum in zip((module.weight, module.bias), _square_sums(module, a.detach(), g)):
                if p is not None and id(p) in index:
                    scores[index[id(p)]] = square_sum.float().view_as(p)
            continue
        for p, ps in zip((module.weight, module.bias), _per_sample_grads(module, a.detach(), g)):
            if p is None or id(p) not in index:
                continue
            i = index[id(p)]
            uses[i] -= 1
            if i in shared:
                ps = shared.pop(i) + ps
            if uses[i]:
                shared[i] = ps
            else:
                scores[i] = ps.float().square().sum(0).view_as(params[i])
    return scores


def _block_bytes(device: torch.device) -> int:
    """Bytes of per-sample gradients formed at once: cache-sized on a CPU (writing and re-reading a
    large buffer costs more there than the products), the whole chunk on an accelerator."""
    return 1 << 22 if device.type == "cpu" else 1 << 30


def _square_sum_of_products(lhs: Tensor, rhs: Tensor) -> Tensor:
    """``Σ_i (lhs[i] @ rhs[i])²``, forming a few products at a time in one reused buffer."""
    n, shape = len(lhs), torch.broadcast_shapes(lhs.shape[1:-2], rhs.shape[1:-2]) + (lhs.shape[-2], rhs.shape[-1])
    block = max(1, min(n, _block_bytes(lhs.device) // (lhs.element_size() * shape.numel())))
    buffer = lhs.new_empty((block, *shape))
    total = lhs.new_zeros(shape)
    for start in range(0, n, block):
        stop = min(n, start + block)
        products = torch.matmul(lhs[start:stop], rhs[start:stop], out=buffer[:stop - start])
        total += products.square_().sum(0)
    return total


def _grouped_conv_pays(module: nn.Conv2d, positions: int) -> bool:
    """Per-sample conv weight gradients by one grouped convolution (samples as groups) rather than
    from the unfolded input: when a sample's gradient is smaller than its unfolded input."""
    return module.out_channels < positions


def _square_sums(module: nn.Module, a: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """``Σ_i`` of the squared per-sample gradients of (weight, bias) of ``module`` from its input
    ``a`` and the gradient ``g`` of its output (the bias entry is junk where the module has no bias)."""
    n = len(a)
    if a.dtype not in (torch.float32, torch.float64):
        a, g = a.float(), g.float()
    if isinstance(module, nn.Linear):
        a, g = a.reshape(n, -1, a.shape[-1]), g.reshape(n, -1, g.shape[-1])
        bias = g.sum(1).square().sum(0)
        if a.shape[1] == 1:  # (g aᵀ)² = g² (a²)ᵀ entrywise: one product over the samples
            return g[:, 0].square().T @ a[:, 0].square(), bias
        return _square_sum_of_products(g.transpose(1, 2), a), bias
    if isinstance(module, nn.Conv2d):
        bias = g.sum((2, 3)).square().sum(0)
        groups, (c_in, h, w), (c_out, *out_hw) = module.groups, a.shape[1:], g.shape[1:]
        if _grouped_conv_pays(module, out_hw[0] * out_hw[1]):
            weight = torch.nn.grad.conv2d_weight(
                a.reshape(1, n * c_in, h, w), (n * c_out, *module.weight.shape[1:]), g.reshape(1, n * c_out, *out_hw),
                module.stride, module.padding, module.dilation, n * groups)
            return weight.view(n, -1).square_().sum(0), bias
        # padding: numbers here (``_per_layer_ok``)
        u = F.unfold(a, module.kernel_size, module.dilation, module.padding,  # type: ignore[arg-type]
                     module.stride)  # [N, Cin k k, P]
        u = u.view(n, groups, -1, u.shape[-1]).transpose(2, 3)                  # [N, G, P, Cin/G k k]
        return _square_sum_of_products(g.reshape(n, groups, c_out // groups, -1), u), bias
    weight, bias = _per_sample_grads(module, a, g)  # BatchNorm: a vector per sample
    return weight.float().square().sum(0), bias.float().square().sum(0)


def _per_sample_grads(module: nn.Module, a: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample gradients ``[N, *shape]`` of (weight, bias) of ``module`` from its input ``a`` and
    the gradient ``g`` of its output (the bias entry is junk where the module has no bias)."""
    n = len(a)
    if isinstance(module, nn.Linear):
        a, g = a.reshape(n, -1, a.shape[-1]), g.reshape(n, -1, g.shape[-1])
        return torch.bmm(g.transpose(1, 2), a), g.sum(1)
    if isinstance(module, nn.Conv2d):
        groups = module.groups
        # padding: numbers here (``_per_layer_ok``)
        u = F.unfold(a, module.kernel_size, module.dilation, module.padding,  # type: ignore[arg-type]
                     module.stride)  # [N, Cin k k, P]
        u = u.view(n, groups, -1, u.shape[-1])                                # [N, G, Cin/G k k, P]
        go = g.reshape(n, groups, -1, u.shape[-1])                            # [N, G, Cout/G, P]
        weight = torch.matmul(go, u.transpose(2, 3))                          # [N, G, Cout/G, Cin/G k k]
        return weight.reshape(n, *module.weight.shape), g.sum(tuple(range(2, g.dim())))
    # eval-mode BatchNorm: y = γ x̂ + β with x̂ from the running statistics
    shape = (1, -1) + (1,) * (a.dim() - 2)
    # a BatchNorm's running statistics (typed as Tensor | Module on an nn.Module)
    xhat = (a - module.running_mean.view(shape)) * torch.rsqrt(  # type: ignore[operator]
        module.running_var.view(shape) + module.eps)  # type: ignore[operator]
    dims = tuple(range(2, a.dim()))
    return (g * xhat).sum(dims) if dims else g * xhat, g.sum(dims) if dims else g


def fisher_scores_official(model: nn.Module, params: Sequence[Tensor], data: Batches, num_samples: int,
                           loss_fn: LossFn = F.cross_entropy) -> list[Tensor]:
    """The official Fisher pass: one sample at a time in train mode (moves BatchNorm statistics).

    Kept to reproduce the official behaviour and to benchmark against. ``.grad`` fields are not
    touched and the train/eval mode is restored; the BatchNorm running statistics are NOT (the defect).
    """
    check_int("num_samples", num_samples, 1)
    _named(model, params)
    device = params[0].device if params else torch.device("cpu")
    scores = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    was_training = model.training
    model.train()
    try:
        for x, y in _samples(data, num_samples, device):
            for i in range(len(x)):
                with torch.enable_grad():  # also when called from SSAM.first_step (under no_grad)
                    loss = loss_fn(model(x[i:i + 1]), y[i:i + 1])
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                for s, g in zip(scores, grads):
                    if g is not None:
                        s.add_(g.float().square())
    finally:
        model.train(was_training)
    return scores
