"""The fast CUDA step: a whole training step captured once in a CUDA graph and replayed.

A SAM step launches hundreds of small kernels (two forward and backward passes, the foreach updates
of the ascent and of the base step); at CIFAR sizes on a large GPU the host may not launch them as
fast as the GPU runs them (``benchmarks/bench_gpu_train.py`` measures whether it does).
:class:`GraphedStep` records the step once (``torch.cuda.graph``) and replays it with one launch. What a
replay cannot do, it leaves to Python between replays:

- the batch is copied into the static input buffers the graph reads;
- the learning rate of each parameter group is a device tensor, filled from the scheduler's float
  before each replay (the base SGD is ``fused``, the one kind that reads a tensor learning rate
  without a host sync);
- an SSAM mask strategy that reads no gradient (SSAM-F) is brought up to date by
  :meth:`sparsam.SSAM.refresh_masks`, which overwrites the persistent multipliers the graph reads;
  a step at which a mask update reads the first-pass gradient (SSAM-D) runs eagerly instead;
- the optimizer's step counter, which the captured ``second_step`` advanced once at capture time,
  is advanced after each replay.

A batch of another shape (an epoch's last, smaller batch) also runs eagerly. The first ``warmup``
steps of each kind run eagerly on a side stream, as CUDA graph capture requires (cuDNN's algorithm
search, lazily allocated optimizer state); then the next eligible step is captured and replayed.
Eager and replayed steps share every tensor that carries state (weights, momentum, the saved
weights of SAM, BatchNorm statistics, masks): all are updated in place by both.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..optim.sam import SAM
from ..optim.ssam import SSAM

StepOutput = tuple[Tensor, Tensor, "Tensor | None"]  # first-pass loss, logits, ‖ε‖ (None for a plain step)


class GraphedStep:
    """Eager warm-up, one capture and replays of one kind of step (two-pass or plain) of an optimizer.

    Args:
        step: runs the step eagerly on a batch: ``step(x, y) -> (loss, logits, eps_norm)``.
        optimizer: the optimizer ``step`` steps (a :class:`~sparsam.SAM` or a plain ``torch.optim``
            optimizer); its base optimizer must be ``torch.optim.SGD(fused=True)``.
        two_pass: whether ``step`` is the two-pass step of a SAM-type optimizer.
        warmup: eager steps on a side stream before the capture, >= 1.
    """

    def __init__(self, step: Callable[[Tensor, Tensor], StepOutput], optimizer: torch.optim.Optimizer,
                 two_pass: bool, warmup: int = 3):
        if warmup < 1:
            raise ValueError(f"warmup must be an integer >= 1, got {warmup!r}")
        self.run_eagerly, self.optimizer, self.two_pass, self.warmup = step, optimizer, two_pass, warmup
        self.base = optimizer.base_optimizer if isinstance(optimizer, SAM) else optimizer
        if not all(group.get("fused") for group in self.base.param_groups):
            raise ValueError("a captured step needs the base optimizer built with fused=True (it reads a tensor "
                             "learning rate without a host sync)")
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warmed = 0
        self.replays = 0
        self.static: tuple[Tensor, Tensor] | None = None
        self.outputs: StepOutput | None = None
        self.lrs: list[Tensor] = []

    def eager_needed(self, x: Tensor) -> bool:
        """Whether this batch's step must run eagerly: another shape than the captured one, or an SSAM mask
        update that reads the first-pass gradient."""
        if self.static is not None and (x.shape != self.static[0].shape or x.stride() != self.static[0].stride()):
            return True
        opt = self.optimizer
        return self.two_pass and isinstance(opt, SSAM) and opt.mask.needs_gradient and opt.mask.due(opt.steps)

    def __call__(self, x: Tensor, y: Tensor) -> StepOutput:
        """One training step on (x, y): eager (warm-up or :meth:`eager_needed`), else replayed."""
        if self.graph is None and self.warmed < self.warmup:
            return self._warm(x, y)
        if self.eager_needed(x):
            return self.run_eagerly(x, y)
        if self.graph is None:
            self._capture(x, y)
        else:
            assert self.static is not None
            self.static[0].copy_(x)
            self.static[1].copy_(y)
        self._prepare()
        assert self.graph is not None and self.outputs is not None
        self.graph.replay()
        self.replays += 1
        if isinstance(self.optimizer, SAM):
            self.optimizer.steps += 1  # what second_step does in Python
        return self.outputs

    def _warm(self, x: Tensor, y: Tensor) -> StepOutput:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = self.run_eagerly(x, y)
        torch.cuda.current_stream().wait_stream(side)
        self.warmed += 1
        return out

    def _prepare(self) -> None:
        """What Python does before a replay: the masks up to date, the learning rates into their tensors."""
        if self.two_pass and isinstance(self.optimizer, SSAM):
            self.optimizer.refresh_masks()
        for tensor, group in zip(self.lrs, self.base.param_groups):
            tensor.fill_(float(group["lr"]))

    def _capture(self, x: Tensor, y: Tensor) -> None:
        """Record the step on static copies of (x, y); the learning rates read device tensors meanwhile."""
        self.static = (x.clone(memory_format=torch.preserve_format), y.clone())
        self._prepare()  # before the capture, so that no mask is rebuilt inside it
        groups = self.base.param_groups
        floats = [float(group["lr"]) for group in groups]
        device = self.static[0].device
        self.lrs = [torch.tensor(lr, device=device) for lr in floats]
        steps = self.optimizer.steps if isinstance(self.optimizer, SAM) else None
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            for group, tensor in zip(groups, self.lrs):
                group["lr"] = tensor
            with torch.cuda.graph(graph):
                self.outputs = self.run_eagerly(*self.static)
        finally:
            for group, lr in zip(groups, floats):
                group["lr"] = lr  # the scheduler keeps computing in Python floats
        if steps is not None:
            self.optimizer.steps = steps  # the capture ran second_step's Python once, no real step
        self.graph = graph
