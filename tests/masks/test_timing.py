"""The device-synchronised timer (sparsam._timing), shared by the cost model (masks.cost: its wait), the
efficiency measurements and the benchmarks: the device waits bracket the call, the clocks are read inside."""

from __future__ import annotations

import itertools

import pytest
import torch

from sparsam import _timing
from sparsam.masks import cost
from sparsam.experiment.models import model_stages
from sparsam.experiment import models


@pytest.fixture
def log(monkeypatch):
    """Every torch.cuda.synchronize call, as ("sync", device), in order with the other events."""
    events: list = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append(("sync", str(device))))
    return events


def clock(name: str, events: list, ticks: itertools.count):
    def read() -> float:
        events.append(name)
        return float(next(ticks))
    return read


def test_on_a_gpu_the_clocks_are_read_between_the_two_waits_and_the_call_between_the_reads(log):
    ticks = itertools.count()
    seconds, out = _timing.timed_on(lambda: log.append("call") or 42, torch.device("cuda:1"),
                                    (clock("wall", log, ticks), clock("cpu", log, ticks)))
    assert log == [("sync", "cuda:1"), "wall", "cpu", "call", ("sync", "cuda:1"), "wall", "cpu"]
    assert seconds == [2.0, 2.0] and out == 42  # wall read at 0 and 2, cpu at 1 and 3


def test_on_a_cpu_nothing_waits_and_timed_gives_one_clock_and_the_result(log):
    now = [10.0]

    def work() -> str:
        now[0] += 2.5
        return "done"

    assert _timing.timed(work, "cpu", clock=lambda: now[0]) == (2.5, "done")
    _timing.sync(torch.device("cpu"))
    assert log == []
    _timing.sync("cuda")
    assert log == [("sync", "cuda")]
    with pytest.raises(ValueError, match="clocks"):
        _timing.timed_on(work, "cpu", ())


def test_the_cost_model_waits_with_the_shared_sync_around_each_timed_repeat(monkeypatch):
    """layer_costs in seconds: every repeat of every piece timed by the shared sparsam._timing.timed, between two
    waits of its sync, the timer read inside them."""
    events: list = []
    monkeypatch.setattr(_timing, "sync", lambda device: events.append(("sync", str(device))))
    torch.manual_seed(0)
    model = models.build_model("resnet-small", 10, width=4)
    ticks = itertools.count()
    layers = cost.layer_costs(model_stages(model), torch.randn(2, 3, 32, 32), unit="seconds", repeats=3,
                              timer=clock("timer", events, ticks))
    pieces = sum(1 + (layer.input_grad > 0) + (layer.weight_grad > 0) for layer in layers)
    assert events == [("sync", "cpu"), "timer", ("sync", "cpu"), "timer"] * 3 * pieces
    for layer in layers:  # each timed call reads the fake clock twice in a row: one tick
        assert layer.forward == 1.0 and layer.input_grad in (0.0, 1.0) and layer.weight_grad in (0.0, 1.0)
