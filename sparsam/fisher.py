"""Empirical Fisher scores: the sum over samples of squared per-sample gradients.

``score(θ) = Σ_{i<N_F} (∂ℓ(f(x_i; w), y_i) / ∂θ)²`` with ``ℓ`` the loss at the true label.
:func:`fisher_scores` computes the per-sample gradients in memory-bounded chunks with
``torch.func.vmap(grad(...))`` on a functional copy of the model in eval mode, so the model is left
exactly as it was: parameters, BatchNorm running statistics, train/eval mode and ``.grad`` fields.
:func:`fisher_scores_official` reproduces the official implementation (batch-1 loop in train mode,
which moves BatchNorm running statistics) for comparison and benchmarks only.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from ._checks import check_int

LossFn = Callable[[Tensor, Tensor], Tensor]
Batches = Iterable[tuple[Tensor, Tensor]]


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
    """Samples per vmap chunk so that the per-sample gradients fit in ``max_bytes``."""
    per_sample = sum(p.numel() * p.element_size() for p in params)
    return max(1, min(256, max_bytes // max(per_sample, 1)))


def fisher_scores(model: nn.Module, params: Sequence[Tensor], data: Batches, num_samples: int,
                  loss_fn: LossFn = F.cross_entropy, chunk_size: int | None = None) -> list[Tensor]:
    """Fisher score of every entry of ``params`` (parameters of ``model``) over ``num_samples`` samples.

    ``data`` yields (inputs, labels) batches; the first ``num_samples`` samples are used.
    ``loss_fn(logits, labels)`` must average over a batch (per-sample calls use batch size 1).
    The model runs in eval mode (BatchNorm with its running statistics); nothing of it changes.
    """
    check_int("num_samples", num_samples, 1)
    names = _named(model, params)
    device = params[0].device if params else torch.device("cpu")
    chunk = chunk_size or default_chunk_size(params)
    check_int("chunk_size", chunk, 1)
    frozen = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def sample_loss(trainable: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        out = functional_call(model, ({**frozen, **trainable}, buffers), (x.unsqueeze(0),))
        return loss_fn(out, y.unsqueeze(0))

    per_sample_grads = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    trainable = {n: frozen[n] for n in names}
    scores = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in trainable.items()}
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            for x, y in _samples(data, num_samples, device):
                for xc, yc in zip(x.split(chunk), y.split(chunk)):
                    grads = per_sample_grads(trainable, xc, yc)
                    for n in names:
                        scores[n].add_(grads[n].float().square().sum(0))
    finally:
        model.train(was_training)
    return [scores[n] for n in names]


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
