"""Two CPU processes (gloo) with DistributedDataParallel: masks and weights agree across ranks."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from nets import Net, fisher_loop, shard

REPO = Path(__file__).resolve().parents[2]
STEPS = 3

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")

WORKER = '''
import sys
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from sparsam import SSAM, DynamicMask, FisherMask

sys.path.insert(0, TESTS)
from nets import Net, shard


def main(rank, port, out, steps):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    results = {}
    for kind in ("fisher", "dynamic"):
        torch.manual_seed(rank)  # different initialisations: DDP broadcasts rank 0's weights
        model = Net()
        ddp = DDP(model)
        data = shard(rank, steps, 8, seed=1)
        fisher_data = shard(rank, 1, 4, seed=2)  # each rank its own Fisher samples
        if kind == "fisher":
            mask = FisherMask(model, fisher_data, sparsity=0.5, num_samples=4, update_every=1, update_unit="steps")
        else:
            mask = DynamicMask(sparsity=0.5, update_every=1, total_steps=2 * steps, seed=11)
        opt = SSAM(ddp.parameters(), torch.optim.SGD, rho=0.1, mask=mask, lr=0.1, momentum=0.9)
        log = []
        for x, y in data:
            rec = {"old_masks": [m.clone() for m in mask.masks]}
            with ddp.no_sync():
                F.cross_entropy(ddp(x), y).backward()
            rec["state"] = {k: v.clone() for k, v in model.state_dict().items()}  # at the mask update
            rec["grads"] = [p.grad.clone() for p in model.parameters()]
            w0 = [p.detach().clone() for p in model.parameters()]
            opt.first_step(zero_grad=True)
            rec["eps"] = [p.detach() - w for p, w in zip(model.parameters(), w0)]
            rec["masks"] = [m.clone() for m in mask.masks]
            F.cross_entropy(ddp(x), y).backward()
            opt.second_step(zero_grad=True)
            rec["weights"] = [p.detach().clone() for p in model.parameters()]
            log.append(rec)
        results[kind] = log
    torch.save(results, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
'''



def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    script = tmp / "worker.py"
    script.write_text(textwrap.dedent(WORKER).replace("TESTS", repr(str(Path(__file__).parents[1]))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    port = free_port()
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(port), str(tmp), str(STEPS)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=180)[0])
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail("the distributed workers did not finish in 180 s")
    for r, (p, text) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"rank {r} failed:\n{text[-4000:]}"
    return [torch.load(tmp / f"rank{r}.pt") for r in (0, 1)]


def equal_lists(a, b):
    return len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("kind", ["fisher", "dynamic"])
def test_ranks_agree_on_masks_and_weights(ranks, kind):
    r0, r1 = ranks[0][kind], ranks[1][kind]
    assert len(r0) == len(r1) == STEPS
    for t, (a, b) in enumerate(zip(r0, r1)):
        # the first pass was not synchronised: local gradients, hence ε, differ between ranks
        assert not equal_lists(a["grads"], b["grads"]), t
        assert not equal_lists(a["eps"], b["eps"]), t
        # but the masks are identical, and so are the weights after the (synchronised) step
        assert equal_lists(a["masks"], b["masks"]), t
        assert equal_lists(a["weights"], b["weights"]), t
        total = sum(m.numel() for m in a["masks"])
        assert sum(int(m.sum()) for m in a["masks"]) == int(0.5 * total)
        if kind == "dynamic" and t > 0:
            assert not equal_lists(a["masks"], a["old_masks"])  # the masks do move


def hand_fisher(state, data, num_samples):
    model = Net()
    model.load_state_dict(state)
    return fisher_loop(model, data, num_samples)


def test_fisher_scores_are_reduced(ranks):
    """The SSAM-F mask is the top half of the Fisher scores summed over both ranks' samples."""
    for t in range(STEPS):
        per_rank = [hand_fisher(ranks[r]["fisher"][t]["state"], shard(r, 1, 4, seed=2), 4) for r in (0, 1)]
        summed = torch.cat([(a + b).reshape(-1) for a, b in zip(*per_rank)])
        mask = torch.cat([m.reshape(-1) for m in ranks[0]["fisher"][t]["masks"]])
        assert float(summed[mask].min()) >= float(summed[~mask].max()) * (1 - 1e-5)
        # a rank's own scores alone would give a different mask
        local = torch.cat([s.reshape(-1) for s in per_rank[1]])
        k = int(mask.sum())
        assert not torch.equal(torch.topk(local, k).indices.sort().values, mask.nonzero().flatten())


def test_dynamic_drop_uses_mean_gradient(ranks):
    """SSAM-D drops the live entries with the smallest |mean gradient over ranks|."""
    steps = 2 * STEPS
    for t in range(1, STEPS):
        rec0, rec1 = ranks[0]["dynamic"][t], ranks[1]["dynamic"][t]
        old = torch.cat([m.reshape(-1) for m in rec0["old_masks"]])
        new = torch.cat([m.reshape(-1) for m in rec0["masks"]])
        g = torch.cat([((a + b) / 2).abs().reshape(-1) for a, b in zip(rec0["grads"], rec1["grads"])])
        live = int(old.sum())
        k = int(0.5 * (1 + math.cos(math.pi * t / steps)) / 2 * live)
        dropped, kept = old & ~new, old & new
        assert int(dropped.sum()) == k and int((new & ~old).sum()) == k
        assert float(g[dropped].max()) <= float(g[kept].min())
