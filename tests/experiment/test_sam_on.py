"""SAM-ON through the harness: the optimizer factory, the configuration and the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from sparsam import SSAM, NormMask
from sparsam.experiment import models
from sparsam.experiment.config import TrainConfig
from sparsam.experiment.optimizers import build_optimizer


def test_factory_normalises_over_the_mask():
    torch.manual_seed(0)
    model = models.build_model("resnet-small", 10, width=8)
    opt = build_optimizer("sam-on", model.parameters(), lr=0.1, rho=0.5, mask=NormMask(model), normalize="full")
    assert isinstance(opt, SSAM) and opt.normalize == "masked"  # whatever is asked: ε has radius ρ over the mask
    norm = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert opt.mask.density() == norm / sum(p.numel() for p in model.parameters())


def test_factory_needs_a_norm_mask():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with pytest.raises(ValueError, match="optimizer 'sam-on' needs mask=<a NormMask>"):
        build_optimizer("sam-on", model.parameters(), lr=0.1)


def test_config_run_id_and_fields():
    config = TrainConfig(optimizer="sam-on", rho=2.0, model="resnet-small")
    assert config.run_id().startswith("sam-on-resnet-small-cifar10-e200-s0-")  # no sparsity in its name
    assert config.decay == 1e-3  # the SAM family's weight decay
    with pytest.raises(ValueError, match="drop_rate=0.0 applies to optimizer 'ssam-d' only"):
        TrainConfig(optimizer="sam-on", drop_rate=0.0)


def test_cpu_bf16_is_allowed_and_fp16_is_not():
    assert TrainConfig(amp="bf16", channels_last=True).amp == "bf16"
    with pytest.raises(ValueError, match="amp='fp16' needs device='cuda'"):
        TrainConfig(amp="fp16")


def test_command_line_trains_sam_on(tmp_path):
    """One short epoch through `python -m sparsam train`, on the CPU's fast path (bf16, channels-last)."""
    out = subprocess.run([sys.executable, "-m", "sparsam", "train", "--optimizer", "sam-on", "--rho", "0.5",
                          "--model", "resnet-small", "--width", "4", "--n-train", "64", "--n-test", "32",
                          "--epochs", "1", "--batch-size", "32", "--amp", "bf16", "--channels-last", "true",
                          "--runs-dir", str(tmp_path), "--no-progress"],
                         capture_output=True, text=True, check=True)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    record = json.loads((tmp_path / summary["run_id"] / "summary.json").read_text())
    assert record["config"]["optimizer"] == "sam-on" and record["config"]["amp"] == "bf16"
    assert 0 < record["mask_density"] < 0.05
    assert record["mean_eps_norm"] == pytest.approx(0.5, rel=1e-5)  # radius ρ over the normalisation parameters
    assert record["provenance"]["processor"]["capability"] == torch.backends.cpu.get_cpu_capability()
