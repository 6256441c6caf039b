"""The README's library section runs as it stands: its python blocks, in order, in one namespace (the stand-in
network and data, SSAM-F, gradient accumulation, bf16 autocast), and the DDP block in two gloo processes set up
as torchrun sets them up."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

from conftest import REPO

DDP_MARK = "DistributedDataParallel(model)"


def library_blocks() -> list[str]:
    """The python code blocks of the README's "## The library" section, in order."""
    section = (REPO / "README.md").read_text().split("\n## The library\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_library_section_has_the_examples():
    blocks = library_blocks()
    assert len(blocks) == 5 and DDP_MARK in blocks[-1]
    assert "sparsam.FisherMask" in blocks[1] and "sparsam.micro_batches" in blocks[2]
    assert "torch.autocast(device_type, dtype=torch.bfloat16)" in blocks[3]
    assert "ddp.no_sync(), opt.ascent_pass()" in blocks[4]


def test_the_examples_run_in_order_and_train():
    """Each example takes one optimizer step per batch and moves the weights, which stay fp32."""
    torch.set_num_threads(1)
    namespace: dict = {"__name__": "readme"}
    blocks = library_blocks()[:-1]
    exec(compile(blocks[0], "README.md (stand-in)", "exec"), namespace)
    model, loader = namespace["model"], namespace["loader"]
    weights = [p.detach().clone() for p in model.parameters()]
    for k, block in enumerate(blocks[1:], start=1):
        exec(compile(block, f"README.md (example {k})", "exec"), namespace)
        assert namespace["opt"].steps == k * len(loader) == k * 4
        now = [p.detach().clone() for p in model.parameters()]
        assert all(p.dtype == torch.float32 for p in now) and not any(torch.equal(a, b) for a, b in zip(weights, now))
        weights = now
    assert namespace["opt"].mask.density() == pytest.approx(0.5, abs=0.01)


WORKER = """
import os, torch
torch.set_num_threads(1)
namespace = {"__name__": "readme"}
for k, block in enumerate(torch.load(os.environ["README_BLOCKS"])):
    exec(compile(block, f"README.md (block {k})", "exec"), namespace)
opt, model = namespace["opt"], namespace["model"]
torch.save({"weights": [p.detach() for p in model.parameters()], "masks": opt.mask.masks, "steps": opt.steps,
            "world": torch.distributed.get_world_size()}, os.environ["README_OUT"])
torch.distributed.destroy_process_group()
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed with gloo")
def test_the_ddp_example_runs_in_two_processes_whose_weights_and_masks_agree(tmp_path):
    torch.save(library_blocks(), tmp_path / "blocks.pt")
    port = free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "README_BLOCKS": str(tmp_path / "blocks.pt"), "README_OUT": str(tmp_path / f"rank{rank}.pt")}
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    first, second = (torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2))
    assert first["world"] == 2 and first["steps"] == second["steps"] == 2  # 128 samples per rank, batches of 64
    assert all(torch.equal(a, b) for a, b in zip(first["weights"], second["weights"]))
    assert all(torch.equal(a, b) for a, b in zip(first["masks"], second["masks"]))
