"""Device-synchronised timing, shared by the cost model, the efficiency measurements and the benchmarks.

A GPU runs its work asynchronously: a clock read right after a call measures the launch, not the
work. :func:`timed` waits for the device's queued work before starting the clocks and again before
reading them, so the time is that of the call's own work (on a CPU both waits do nothing).
"""

from __future__ import annotations

import time
from typing import Callable, Sequence, TypeVar

import torch

T = TypeVar("T")


def sync(device: torch.device | str) -> None:
    """Wait for the device's queued work (nothing to do on a CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_on(fn: Callable[[], T], device: torch.device | str,
             clocks: Sequence[Callable[[], float]]) -> tuple[list[float], T]:
    """Run ``fn`` once between two device synchronisations; the seconds each of ``clocks`` (e.g.
    ``time.perf_counter`` and ``time.process_time``, read in that order) counted, and ``fn``'s result."""
    if not clocks:
        raise ValueError("clocks must hold at least one clock, got none")
    sync(device)
    starts = [clock() for clock in clocks]
    out = fn()
    sync(device)
    return [clock() - start for clock, start in zip(clocks, starts)], out


def timed(fn: Callable[[], T], device: torch.device | str,
          clock: Callable[[], float] = time.perf_counter) -> tuple[float, T]:
    """Seconds of one call of ``fn`` on ``clock`` between device synchronisations, and its result."""
    (seconds,), out = timed_on(fn, device, (clock,))
    return seconds, out
