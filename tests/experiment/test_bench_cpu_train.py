"""benchmarks/bench_cpu_train.py: its faithfulness rule on constructed measurements, and the script itself."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_cpu_train", ROOT / "benchmarks" / "bench_cpu_train.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_cpu_train"] = module
    spec.loader.exec_module(module)
    return module


def _rows(bench, speedups):
    return [{"regime": "width 8", "optimizer": opt, "rung": rung, "speedup": speedups[rung]}
            for rung in bench.RUNGS for opt in bench.OPTIMIZERS]


def test_the_fastest_rung_that_passes_is_chosen():
    bench = _bench()
    first = {rung: {"SAM": {"grad_cosine": 0.999, "eps_cosine": 0.999}} for rung in bench.RUNGS}
    curve = {rung: {"SGD": [2.0, 1.5], "SAM": [2.1, 1.6]} for rung in bench.RUNGS}
    first["bf16 + channels-last"]["SAM"]["eps_cosine"] = 0.98        # below 0.99: fails
    curve["bf16 autocast"]["SAM"] = [2.1, 1.66]                      # 0.06 above fp32 at epoch 2: fails
    checks = {rung: bench.passes(rung, first, curve) for rung in bench.RUNGS}
    assert checks["bf16 + channels-last"] == {"cosines": False, "curves": True}
    assert checks["bf16 autocast"] == {"cosines": True, "curves": False}
    speed = {"fp32 NCHW": 1.0, "fp32 channels-last": 1.3, "bf16 autocast": 1.6, "bf16 + channels-last": 2.0}
    assert bench.fastest_faithful(_rows(bench, speed), checks) == "fp32 channels-last"
    all_pass = {rung: {"cosines": True, "curves": True} for rung in bench.RUNGS}
    assert bench.fastest_faithful(_rows(bench, speed), all_pass) == "bf16 + channels-last"


@pytest.mark.slow
def test_quick_run_writes_a_record(tmp_path):
    out = tmp_path / "bench.json"
    _bench().main(["--quick", "--runs-dir", str(tmp_path / "runs"), "--out", str(out)])
    record = json.loads(out.read_text())
    assert record["fastest_faithful"] in record["checks"]
    assert record["provenance"]["processor"]["capability"]
    assert {r["rung"] for r in record["throughput"]} == set(record["checks"])
