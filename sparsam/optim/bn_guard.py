"""BatchNorm guard: running statistics move only in the first pass of a SAM step.

In the second (descent) pass the network runs at ``w + ε``; its batch statistics must not leak
into the running mean and variance. While the guard is active, every BatchNorm module whose
affine parameters belong to the optimizer runs with ``track_running_stats=False`` (it normalises
with batch statistics exactly as in the first pass, but updates no buffer). A global forward
pre-hook finds the modules, so the guard needs no reference to the model and works through
DistributedDataParallel and ``torch.compile``. BatchNorm without affine parameters cannot be matched
and is not guarded.

The guard holds only weak references (to the parameters, the frozen modules, and the hook to the
guard itself): a guard left active by an exception keeps no model alive, and once the guard is
garbage-collected its hook is removed and the modules get their statistics back.
"""

from __future__ import annotations

import weakref
from typing import Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class BatchNormGuard:
    """Context that freezes the running statistics of the optimizer's BatchNorm modules."""

    def __init__(self) -> None:
        self._params: dict[int, weakref.ref] = {}  # id(parameter) -> weak reference to it
        self._frozen: list[weakref.ref] = []  # the modules switched off, weakly
        self._seen: set[int] = set()  # ids of the modules whose subtree was visited while active
        self._handle: list[torch.utils.hooks.RemovableHandle] = []  # shared with the finalizer
        weakref.finalize(self, _release, self._handle, self._frozen)

    @property
    def active(self) -> bool:
        return bool(self._handle)

    def enter(self, params: Iterable[torch.Tensor]) -> None:
        """Start guarding the BatchNorm modules that own any of ``params``."""
        if self.active:
            return
        self._params = {id(p): weakref.ref(p) for p in params}
        guard = weakref.ref(self)

        def freeze(module: nn.Module, args: tuple) -> None:
            alive = guard()
            if alive is not None:
                alive._freeze(module)

        self._handle.append(nn.modules.module.register_module_forward_pre_hook(freeze))

    def exit(self) -> None:
        """Stop guarding and give every frozen module its running statistics back."""
        _release(self._handle, self._frozen)
        self._params = {}
        self._seen = set()

    def _freeze(self, module: nn.Module) -> None:
        """Switch off the BatchNorm modules in ``module``'s subtree, once per subtree while active.

        The whole subtree, before any of it runs: a ``torch.compile``'d model runs its submodules
        inside the compiled graph, without calling this hook for them, and recompiles for the
        switched-off statistics (it guards on ``track_running_stats``)."""
        if id(module) in self._seen:
            return
        for m in module.modules():
            self._seen.add(id(m))
            if not (isinstance(m, _BatchNorm) and m.training and m.track_running_stats and m.weight is not None):
                continue
            owned = self._params.get(id(m.weight))
            if owned is not None and owned() is m.weight:
                m.track_running_stats = False
                self._frozen.append(weakref.ref(m))


def _release(handle: list[torch.utils.hooks.RemovableHandle], frozen: list[weakref.ref]) -> None:
    """Remove the hook and switch the frozen modules that still exist back on."""
    while handle:
        handle.pop().remove()
    for ref in frozen:
        module = ref()
        if module is not None:
            module.track_running_stats = True
    frozen.clear()
