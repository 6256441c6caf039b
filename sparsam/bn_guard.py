"""BatchNorm guard: running statistics move only in the first pass of a SAM step.

In the second (descent) pass the network runs at ``w + ε``; its batch statistics must not leak
into the running mean and variance. While the guard is active, every BatchNorm module whose
affine parameters belong to the optimizer runs with ``track_running_stats=False`` (it normalises
with batch statistics exactly as in the first pass, but updates no buffer). A global forward
pre-hook finds the modules, so the guard needs no reference to the model and works through
DistributedDataParallel. BatchNorm without affine parameters cannot be matched and is not guarded.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class BatchNormGuard:
    """Context that freezes the running statistics of the optimizer's BatchNorm modules."""

    def __init__(self) -> None:
        self._param_ids: set[int] = set()
        self._frozen: list[_BatchNorm] = []
        self._handle: torch.utils.hooks.RemovableHandle | None = None

    @property
    def active(self) -> bool:
        return self._handle is not None

    def enter(self, params: Iterable[torch.Tensor]) -> None:
        """Start guarding the BatchNorm modules that own any of ``params``."""
        if self.active:
            return
        self._param_ids = {id(p) for p in params}
        self._handle = nn.modules.module.register_module_forward_pre_hook(self._freeze)

    def exit(self) -> None:
        """Stop guarding and give every frozen module its running statistics back."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        for module in self._frozen:
            module.track_running_stats = True
        self._frozen.clear()

    def _freeze(self, module: nn.Module, args: tuple) -> None:
        if (isinstance(module, _BatchNorm) and module.training and module.track_running_stats
                and module.weight is not None and id(module.weight) in self._param_ids):
            module.track_running_stats = False
            self._frozen.append(module)
