"""The training harness on real data: every optimizer learns, runs resume bit-identically, DDP agrees."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import layer_flops
from conftest import REPO, data_file
from sparsam.experiment.config import TrainConfig
from sparsam.experiment import store as runs
from sparsam.experiment.store import read_json

QUICK = dict(model="resnet-small", width=8, dataset="cifar10", n_train=2000, n_test=500, epochs=3, batch_size=64,
             lr=0.05, num_samples=64, update_every=1, update_unit="epochs")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def test_bad_config_values_are_rejected_with_the_parameter_name():
    for bad, name in [(dict(sparsity=1.0), "sparsity"), (dict(rho=-0.1), "rho"), (dict(epochs=0), "epochs"),
                      (dict(optimizer="adam"), "optimizer"), (dict(pattern="5:4"), "pattern"),
                      (dict(amp="fp8"), "amp"), (dict(device="tpu"), "device"), (dict(lr=0.0), "lr"),
                      (dict(model="resnet-smal"), "model must be one of"),
                      (dict(dataset="cifar11"), "dataset must be one of"),
                      (dict(amp="fp16"), "amp='fp16' needs device='cuda'")]:
        with pytest.raises(ValueError, match=name):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="unknown config keys"):
        TrainConfig.from_dict({"optimizer": "sam", "learning_rate": 0.1})
    for bad, name in [(dict(optimizer="ssam-f", pattern="layer", mask_rule="cheap"), "mask_rule"),
                      (dict(optimizer="ssam-f", mask_rule="cost-aware"), "mask_rule"),  # unstructured pattern
                      (dict(optimizer="ssam-d", pattern="layer", mask_rule="cost-aware"), "mask_rule"),
                      (dict(optimizer="ssam-f", pattern="layer", ascent_budget=0.25), "ascent_budget"),
                      (dict(optimizer="ssam-f", pattern="layer", mask_rule="cost-aware", ascent_budget=0.0),
                       "ascent_budget")]:
        with pytest.raises(ValueError, match=name):
            TrainConfig(**bad)


def test_stored_records_keep_their_ids_when_fields_are_added():
    """Fields added later hash only when set, so every committed record is still found by its config."""
    from sparsam.experiment.results import load_record

    # the quick profile's records (results/runs, retrained channels-last at 7bb6946) and the CPU study's, older
    paths = [path for store in (REPO / "results" / "runs", REPO / "results" / "study" / "runs")
             for path in sorted(store.glob("*.json"))]
    assert paths
    older = 0
    for path in paths:
        stored = read_json(path)["summary"]["config"]
        config = TrainConfig.from_dict(stored)
        assert config.run_id() == path.stem
        assert load_record(config, path.parent) is not None
        older += bool(set(TrainConfig().to_dict()) - set(stored))
    assert older > 0  # records written before some field existed (e.g. channels_last) are still found
    base = dict(optimizer="ssam-f", pattern="layer")
    assert TrainConfig(**base, mask_rule="cost-aware").run_id() != TrainConfig(**base).run_id()


def test_a_stored_summary_is_returned_only_for_its_own_config(tmp_path):
    """What two writers of one run id used to leave: B's config.json beside A's summary.json."""
    from sparsam.experiment.train import train

    a, b = TrainConfig(**QUICK), TrainConfig(**{**QUICK, "seed": 1, "epochs": 1})
    folder = tmp_path / "X"
    runs.atomic_write_json(folder / "config.json", b.to_dict())
    runs.atomic_write_json(folder / "summary.json", {"config": a.to_dict(), "final_test_acc": 0.5})
    with pytest.raises(FileExistsError, match="summary.json belongs to another config"):
        train(b, runs_dir=tmp_path, run_id="X", progress=False)
    runs.atomic_write_json(folder / "summary.json", {"config": b.to_dict(), "final_test_acc": 0.25})
    assert train(b, runs_dir=tmp_path, run_id="X", progress=False)["final_test_acc"] == 0.25
    with pytest.raises(FileExistsError, match="holds a run with another config"):
        train(a, runs_dir=tmp_path, run_id="X", progress=False)


def test_a_run_folder_in_use_is_refused_before_anything_is_read(tmp_path):
    from sparsam.experiment.train import train

    with runs.lock(tmp_path / "X"):
        with pytest.raises(runs.Locked, match=f"X is in use by process {os.getpid()}"):
            train(TrainConfig(**QUICK), runs_dir=tmp_path, run_id="X", progress=False)


def test_cli_rejects_bad_values_without_a_traceback():
    out = subprocess.run([sys.executable, "-m", "sparsam", "train", "--sparsity", "1.5"], capture_output=True,
                         text=True, env=_env(), cwd=REPO)
    assert out.returncode == 2 and "sparsity must be in [0.0, 1.0)" in out.stderr and "Traceback" not in out.stderr


def test_missing_data_names_the_variable_and_the_file(tmp_path, monkeypatch):
    from sparsam.experiment.train import train

    monkeypatch.setenv("SPARSAM_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="SPARSAM_DATA") as error:
        train(TrainConfig(**QUICK), runs_dir=tmp_path / "runs", progress=False)
    assert "cifar10-jpeg.npz" in str(error.value)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "sam", "asam", "ssam-f", "ssam-d"])
def test_each_optimizer_learns_real_cifar10(optimizer, tmp_path):
    data_file("cifar10-jpeg.npz")
    from sparsam.experiment.train import train

    config = TrainConfig(optimizer=optimizer, rho=0.5 if optimizer == "asam" else 0.05, **QUICK)
    summary = train(config, runs_dir=tmp_path, progress=False)
    assert summary["final_test_acc"] > 0.25, summary  # chance is 0.10 on the balanced test subset
    assert summary["best_test_acc"] >= summary["final_test_acc"]
    from sparsam.experiment.models import build_model
    chain = layer_flops.calls([build_model(config.model, 10, width=config.width)],
                              torch.zeros(summary["flops_batch_size"], 3, 32, 32))
    assert summary["flops_forward"] == layer_flops.forward(chain)
    assert summary["flops_per_step"] == (1 if optimizer == "sgd" else 2) * layer_flops.sgd_step(chain)
    if optimizer.startswith("ssam"):
        assert summary["mask_density"] == pytest.approx(0.5, abs=0.01)
    metrics = [json.loads(line) for line in (tmp_path / summary["run_id"] / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "images_per_s"):
        assert all(key in m for m in metrics)
    provenance = summary["provenance"]
    assert provenance["torch"] == torch.__version__ and provenance["git_commit"]
    assert summary["data"]["sha256"].startswith("771bab32")
    # a finished run is returned as it is, never re-run
    assert train(config, runs_dir=tmp_path, progress=False)["finished"] == summary["finished"]
    with pytest.raises(FileExistsError):
        train(config.replace(seed=1), runs_dir=tmp_path, run_id=summary["run_id"], progress=False)


@pytest.mark.parametrize("optimizer", ["sgd", "sam", "asam", "ssam-f", "ssam-d"])
def test_recorded_flops_are_the_layer_formula(optimizer):
    """count_flops: one forward, and one step (SGD's 3F - F of the first layer, whose input needs no
    gradient; twice that for the two passes of SAM and its kin), from the layer formula."""
    data_file("cifar10-jpeg.npz")
    from sparsam.experiment.train import Trainer

    trainer = Trainer(TrainConfig(optimizer=optimizer, **dict(QUICK, n_train=128, n_test=64, epochs=1,
                                                               num_samples=16)))
    x = next(iter(trainer.train_loader))[0]
    chain = layer_flops.calls([trainer.model], x)
    assert trainer.count_flops() == {"flops_forward": layer_flops.forward(chain), "flops_batch_size": len(x),
                                     "flops_per_step": (1 if optimizer == "sgd" else 2) * layer_flops.sgd_step(chain)}


def test_cost_aware_rule_trains_within_its_ascent_budget(tmp_path):
    """SSAM-F with the cost-aware layer rule: the mask is cost_aware_mask of the Fisher scores, and
    the recorded FLOPs of a sparse-ascent step stay within SGD + the ascent budget."""
    data_file("cifar10-jpeg.npz")
    from sparsam.masks import cost
    from sparsam.experiment.train import Trainer, train

    small = dict(QUICK, n_train=128, n_test=64, epochs=1, num_samples=16)
    config = TrainConfig(optimizer="ssam-f", pattern="layer", sparsity=0.9, mask_rule="cost-aware",
                         ascent_budget=0.25, **small)
    trainer = Trainer(config)
    mask = trainer.optimizer.mask
    scores = mask.scores()
    mask.scores = lambda: scores  # each Fisher pass draws new samples: build from these scores
    mask.update(0)
    expected = cost.cost_aware_mask(scores, cost.tensor_costs(trainer.layers, mask.params), 0.9, "layer",
                                    0.25 * cost.step_cost(trainer.layers))
    assert all(torch.equal(a, b) for a, b in zip(mask.masks, expected))
    assert 0 < trainer.mask_density() <= 0.1
    from sparsam.experiment.models import model_stages
    chain = layer_flops.calls(model_stages(trainer.model), next(iter(trainer.train_loader))[0][:2])
    assert trainer.sparse_step_flops() == pytest.approx(
        layer_flops.sparse_step(chain, mask.params, mask.masks) / layer_flops.sgd_step(chain), rel=1e-6)
    summary = train(config, runs_dir=tmp_path, progress=False)
    assert 1.0 < summary["sparse_step_flops_vs_sgd"] <= 1.25
    papers = train(config.replace(mask_rule="fisher", ascent_budget=None), runs_dir=tmp_path, progress=False)
    assert papers["sparse_step_flops_vs_sgd"] > summary["sparse_step_flops_vs_sgd"]
    assert train(TrainConfig(optimizer="sgd", **small), runs_dir=tmp_path, progress=False)[
        "sparse_step_flops_vs_sgd"] is None


def test_a_record_names_the_code_its_run_started_with(tmp_path, monkeypatch):
    """A commit or an edit made while a run trains is not the code that made it: the record keeps the commit and
    dirty flag taken when the run's process started."""
    from sparsam.experiment import provenance
    from sparsam.experiment.train import train

    calls = iter([("a" * 40, False)])
    monkeypatch.setattr(provenance, "code_commit", lambda: next(calls, ("b" * 40, True)))
    small = dict(QUICK, n_train=64, n_test=32, epochs=1, batch_size=32)
    summary = train(TrainConfig(optimizer="sgd", **small), runs_dir=tmp_path, progress=False)
    assert (summary["provenance"]["git_commit"], summary["provenance"]["git_dirty"]) == ("a" * 40, False)


@pytest.mark.slow
def test_imagenette_resnet50_family_runs_end_to_end(tmp_path, monkeypatch):
    data_file("imagenette-72px.tar.gz")
    monkeypatch.setenv("SPARSAM_CACHE", str(tmp_path / "cache"))
    from sparsam.experiment.train import train

    config = TrainConfig(optimizer="ssam-f", model="resnet50-tiny", dataset="imagenette", n_train=200, n_test=100,
                         epochs=1, batch_size=32, num_samples=32)
    summary = train(config, runs_dir=tmp_path / "runs", progress=False)
    assert summary["epochs_run"] == 1 and 0.0 <= summary["final_test_acc"] <= 1.0
    assert summary["data"]["name"] == "imagenette"


def _train_cmd(runs: Path, config: TrainConfig) -> list[str]:
    args = [sys.executable, "-m", "sparsam", "train", "--runs-dir", str(runs), "--run-id", "r", "--no-progress"]
    for key, value in config.to_dict().items():
        if value is not None:
            args += ["--" + key.replace("_", "-"), str(value)]
    return args


def _model_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]


@pytest.mark.slow
def test_killed_run_resumes_bit_identical(tmp_path):
    data_file("cifar10-jpeg.npz")
    config = TrainConfig(optimizer="ssam-d", **{**QUICK, "n_train": 1000, "n_test": 200, "update_unit": "steps",
                                                 "update_every": 5})
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(straight, config), check=True, env=_env(), cwd=REPO, timeout=900)
    killed = tmp_path / "killed"
    process = subprocess.Popen(_train_cmd(killed, config), env=_env(), cwd=REPO)
    metrics = killed / "r" / "metrics.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        time.sleep(0.2)
    time.sleep(1.0)  # now inside epoch 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "r" / "summary.json").exists(), "the run finished before it could be killed"
    subprocess.run(_train_cmd(killed, config), check=True, env=_env(), cwd=REPO, timeout=900)
    assert read_json(killed / "r" / "summary.json")["resumed_from_epoch"] >= 1
    a, b = _model_state(straight / "r"), _model_state(killed / "r")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = ("seconds", "images_per_s", "seconds_per_step", "cpu_seconds_per_step")  # timings differ
    clean = lambda run: [{k: v for k, v in json.loads(line).items() if k not in drop}  # noqa: E731
                         for line in (run / "r" / "metrics.jsonl").read_text().splitlines()]
    assert clean(straight) == clean(killed)


TINY_RESUME = dict(model="resnet-small", width=4, dataset="cifar10", n_train=64, n_test=32, epochs=2, batch_size=16,
                   lr=0.05, num_samples=16, update_every=3, update_unit="steps")  # 4 steps an epoch


def _same(a, b, where: str = "state") -> None:
    """Exact equality of two nested checkpoint states (dicts, lists, tensors, numbers), naming the first
    difference."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            _same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.parametrize("optimizer", ["sgd", "sam", "ssam-f", "ssam-d"])
def test_a_run_stopped_after_one_epoch_resumes_with_its_optimizer_and_scheduler_state(optimizer, tmp_path):
    """Two epochs straight, against one epoch, a stop and a resumed second epoch (in this process, on the
    CPU): the final checkpoints are equal bit for bit, momentum buffers, step counts, the mask with its
    schedule and generator, the learning rate and the weights included, and so are the metrics."""
    data_file("cifar10-jpeg.npz")
    from sparsam.experiment.train import train

    config = TrainConfig(optimizer=optimizer, **TINY_RESUME)
    straight = train(config, runs_dir=tmp_path / "straight", run_id="r", progress=False)
    assert train(config, runs_dir=tmp_path / "stopped", run_id="r", progress=False, stop_after=1) == {}
    halfway = torch.load(tmp_path / "stopped" / "r" / "checkpoint.pt", weights_only=False)
    assert halfway["epoch"] == 1 and not (tmp_path / "stopped" / "r" / "summary.json").exists()
    resumed = train(config, runs_dir=tmp_path / "stopped", run_id="r", progress=False)
    assert (straight["resumed_from_epoch"], resumed["resumed_from_epoch"]) == (0, 1)
    a, b = (torch.load(tmp_path / run / "r" / "checkpoint.pt", weights_only=False) for run in ("straight", "stopped"))
    assert a["epoch"] == b["epoch"] == 2
    base = (lambda opt: opt["base"]) if optimizer != "sgd" else (lambda opt: opt)  # noqa: E731
    buffers = [s["momentum_buffer"] for s in base(a["optimizer"])["state"].values()]
    assert len(buffers) == len(a["model"]) - sum(k.endswith(("running_mean", "running_var", "num_batches_tracked"))
                                                 for k in a["model"])          # one per parameter
    _same(base(a["optimizer"])["state"], base(b["optimizer"])["state"], "momentum buffers")
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 8   # the scheduler's step count
    _same(a["scheduler"], b["scheduler"], "scheduler")
    assert [g["lr"] for g in base(b["optimizer"])["param_groups"]] == b["scheduler"]["_last_lr"]
    if optimizer != "sgd":
        assert a["optimizer"]["steps"] == b["optimizer"]["steps"] == 8
    if optimizer.startswith("ssam"):
        mask_a, mask_b = a["optimizer"]["mask"], b["optimizer"]["mask"]
        assert mask_a["last_update"] == 6 and mask_a["updates"] >= 2           # rebuilt at steps 0, 3, 6
        _same(mask_a, mask_b, "mask")
        assert a["fisher_draws"] == b["fisher_draws"]
    _same(a, b)                                                                # and everything else
    drop = ("seconds", "images_per_s", "seconds_per_step", "cpu_seconds_per_step")
    clean = lambda run: [{k: v for k, v in json.loads(line).items() if k not in drop}  # noqa: E731
                         for line in (tmp_path / run / "r" / "metrics.jsonl").read_text().splitlines()]
    assert clean("straight") == clean("stopped") and [m["lr"] for m in clean("straight")][0] == 0.05


# the command line under torchrun, with every rank saving the parameters its Trainer ends with
_RANK_DUMP = """
import sys

import torch

from sparsam.cli import main
from sparsam.experiment import train as harness

trainers = []
init = harness.Trainer.__init__


def recording(self, *args, **kwargs):
    init(self, *args, **kwargs)
    trainers.append(self)


harness.Trainer.__init__ = recording
code = main(sys.argv[2:])
(trainer,) = trainers
torch.save({name: p.detach().cpu().clone() for name, p in trainer.model.named_parameters()},
           f"{sys.argv[1]}/rank{trainer.rank}.pt")
sys.exit(code)
"""


@pytest.mark.slow
def test_torchrun_two_processes_agree_on_metrics_and_weights(tmp_path):
    """Metrics are summed across ranks, so they agree even when the ranks train apart: the ranks' final
    parameters must be equal, bit for bit, and be the checkpoint's."""
    data_file("cifar10-jpeg.npz")
    config = TrainConfig(optimizer="ssam-f", **{**QUICK, "n_train": 512, "n_test": 256, "epochs": 1})
    script = tmp_path / "rank_dump.py"
    script.write_text(_RANK_DUMP)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(script), str(tmp_path), *_train_cmd(tmp_path, config)[3:]]
    out = subprocess.run(command, capture_output=True, text=True, env=_env(), cwd=REPO, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert sorted(line["rank"] for line in lines) == [0, 1]
    assert lines[0]["final_test_acc"] == lines[1]["final_test_acc"]
    assert lines[0]["final_train_loss"] == lines[1]["final_train_loss"]
    assert read_json(tmp_path / "r" / "summary.json")["world_size"] == 2
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    saved = _model_state(tmp_path / "r")
    assert ranks[0].keys() == ranks[1].keys() and ranks[0].keys() <= saved.keys()
    drift = {name: float((ranks[0][name] - ranks[1][name]).abs().max()) for name in ranks[0]
             if not torch.equal(ranks[0][name], ranks[1][name])}
    assert not drift, f"the ranks' weights differ: {drift}"
    assert all(torch.equal(ranks[0][name], saved[name]) for name in ranks[0])
