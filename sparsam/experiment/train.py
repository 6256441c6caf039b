"""Training harness: one entry point for SGD, SAM, ASAM, SSAM-F and SSAM-D from a :class:`TrainConfig`.

``train(config)`` writes ``runs/<run_id>/``: ``config.json``, ``metrics.jsonl`` (one line per
epoch), ``checkpoint.pt`` (atomically, every epoch) and ``summary.json`` with provenance. A killed
run resumes from its last checkpoint and ends bit-identical (on CPU) to an uninterrupted one: the
data order and every random draw of an epoch depend only on (seed, epoch). Under ``torchrun`` it
runs DistributedDataParallel (gloo on CPU, NCCL on GPU); metrics are reduced once per epoch.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from ..masks import cost
from . import data
from ..masks import patterns
from . import models, optimizers, provenance, results, store
from .models import model_stages
from .config import TrainConfig
from .graphed import GraphedStep
from ..optim.accumulate import micro_batches
from ..optim.sam import SAM
from ..optim.sparse_ascent import SparseAscentSAM
from ..masks.strategies import DynamicMask, FisherMask, NormMask


class FisherBatches:
    """Fresh seeded random subsets of a dataset for SSAM-F: the i-th pass draws with seed (seed, i)."""

    def __init__(self, dataset: torch.utils.data.Dataset, num_samples: int, batch_size: int, seed: int):
        self.dataset, self.num_samples, self.batch_size, self.seed = dataset, num_samples, batch_size, seed
        self.draws = 0

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.draws)
        self.draws += 1
        order = torch.randperm(len(self.dataset), generator=generator)[: self.num_samples].tolist()
        for start in range(0, len(order), self.batch_size):
            samples = [self.dataset[i] for i in order[start:start + self.batch_size]]
            yield torch.stack([s[0] for s in samples]), torch.as_tensor([int(s[1]) for s in samples])


def config_optimizer(config: TrainConfig, model: nn.Module, fisher_data: FisherBatches | None,
                     steps_per_epoch: int, layers: list[cost.LayerCost] | None = None) -> torch.optim.Optimizer:
    """The optimizer a run of ``config`` trains ``model`` with: its mask built from the configuration, then
    :func:`sparsam.experiment.optimizers.build_optimizer` (the one builder of an optimizer by name).

    ``layers``: ``model``'s per-layer costs (:func:`sparsam.masks.cost.layer_costs`), which the
    cost-aware mask rule needs. The sparse ascent pass (``config.ascent="sparse"``) gets the stages of
    :func:`sparsam.experiment.models.model_stages`.
    """
    schedule = dict(update_every=config.update_every, update_unit=config.update_unit, steps_per_epoch=steps_per_epoch)
    mask = None
    if config.optimizer == "ssam-f":
        sparsity = None if patterns.n_m_sparsity(config.pattern) is not None else config.sparsity
        rule = {}
        if config.mask_rule == "cost-aware":
            if layers is None:
                raise ValueError("mask_rule='cost-aware' needs the model's layer costs (layers=...)")
            rule["costs"] = cost.tensor_costs(layers, list(model.parameters()))
            if config.ascent_budget is not None:
                rule["max_cost"] = config.ascent_budget * cost.step_cost(layers)
        mask = FisherMask(model, fisher_data, sparsity=sparsity, num_samples=fisher_data.num_samples,
                          pattern=config.pattern, **rule, **schedule)
    elif config.optimizer == "ssam-d":
        mask = DynamicMask(config.sparsity, total_steps=config.epochs * steps_per_epoch, seed=config.seed,
                           drop_rate=config.drop_rate, **schedule)
    elif config.optimizer == "sam-on":
        mask = NormMask(model)
    return optimizers.build_optimizer(
        config.optimizer, model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.decay,
        rho=config.rho, mask=mask, normalize=config.normalize, form=config.form, model=model, ascent=config.ascent,
        stages=model_stages(model) if config.ascent == "sparse" else None, fused=config.capture == "cuda-graph")


class Trainer:
    """Holds the model, optimizer and data of one run and performs its steps and evaluations."""

    def __init__(self, config: TrainConfig, rank: int = 0, world: int = 1, data_root: str | Path | None = None,
                 download: bool = False):
        self.config, self.rank, self.world = config, rank, world
        self.device = torch.device(config.device)
        if config.cudnn_benchmark and self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        torch.manual_seed(config.seed)
        self.train_loader, self.test_loader, self.source = data.make_loaders(
            config.dataset, config.batch_size, n_train=config.n_train, n_test=config.n_test, seed=config.seed,
            eval_batch_size=config.eval_batch_size,
            num_workers=config.num_workers, device=self.device, gpu_resident=config.gpu_resident,
            rank=rank, world_size=world, augment=config.augment, label_noise=config.label_noise, root=data_root,
            download=download)
        self.model = models.build_model(config.model, self.source.num_classes,
                                        **({} if config.width is None else {"width": config.width})).to(
            self.device, memory_format=self.memory_format)
        self.net = (DistributedDataParallel(self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
                    if world > 1 else self.model)
        if config.capture != "off" and world > 1:
            raise ValueError(f"capture={config.capture!r} runs on one process (no DistributedDataParallel); use "
                             "capture='off' under torchrun")
        if config.capture == "compile":
            self.net = torch.compile(self.model)
        self.steps_per_epoch = len(self.train_loader)
        self.fisher_data = None
        if config.optimizer == "ssam-f":
            per_rank = max(1, config.num_samples // world)
            self.fisher_data = FisherBatches(self.train_loader.dataset, per_rank, config.batch_size,
                                             seed=config.seed * 1000 + rank)
        self.layers = None  # per-layer FLOPs for structured masks: what a sparse ascent pass can skip
        if config.optimizer == "ssam-f" and config.pattern in ("layer", "filter"):
            example = next(iter(self.train_loader))[0][:2].to(self.device)
            self.layers = cost.layer_costs(model_stages(self.model), example, unit="flops")
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.optimizer = config_optimizer(config, self.model, self.fisher_data, self.steps_per_epoch, self.layers)
        if isinstance(self.optimizer, SparseAscentSAM) and world > 1:
            raise ValueError("ascent='sparse' runs on one process (no DistributedDataParallel); use ascent='dense'")
        self.is_sam = isinstance(self.optimizer, SAM)
        self.eps_norm_sum = torch.zeros((), dtype=torch.float64, device=self.device)  # Σ‖ε‖ this epoch
        scheduled = self.optimizer.base_optimizer if self.is_sam else self.optimizer
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(scheduled, T_max=config.epochs * self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type) if config.amp == "fp16" else None
        self.graphs: dict[bool, GraphedStep] | None = {} if config.capture == "cuda-graph" else None

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision of ``config.amp`` (weights, their gradients, ‖g‖ and ε stay fp32); none when off.

        The cast cache is off under a CUDA graph capture: every pass casts the weights afresh."""
        if self.config.amp == "off":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.config.amp == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype, cache_enabled=self.graphs is None)

    def _passes(self, net: nn.Module, x: Tensor, y: Tensor, scaler: torch.amp.GradScaler | None,
                ascent: SAM | None = None) -> tuple[Tensor, Tensor]:
        """Forward and backward of the batch in ``config.accumulate`` micro-batches, the gradients summed (each
        loss weighted by its share of the batch, :func:`sparsam.optim.accumulate.micro_batches`); returns the
        whole batch's mean loss and logits. ``ascent``: the optimizer whose ascent pass this is (each micro-batch
        inside its ``ascent_pass()``, forward and backward under DDP's ``no_sync``); otherwise only the last
        micro-batch's backward all-reduces under DDP."""
        parts = micro_batches(x, y, self.config.accumulate)
        losses, outs = [], []
        for i, (xb, yb, weight) in enumerate(parts):
            quiet = ascent is not None or i < len(parts) - 1
            no_sync = net.no_sync() if quiet and isinstance(net, DistributedDataParallel) else contextlib.nullcontext()
            with no_sync, ascent.ascent_pass() if ascent is not None else contextlib.nullcontext():
                with self.autocast():
                    out = net(xb)
                    loss = self.criterion(out, yb) if len(parts) == 1 else weight * self.criterion(out, yb)
                (loss if scaler is None else scaler.scale(loss)).backward()
            losses.append(loss.detach())
            outs.append(out.detach())
        if len(parts) == 1:
            return losses[0], outs[0]
        return torch.stack(losses).sum(), torch.cat(outs)

    def _step(self, opt: torch.optim.Optimizer, net: nn.Module, x: Tensor, y: Tensor, two_pass: bool,
              scaler: torch.amp.GradScaler | None) -> tuple[Tensor, Tensor, Tensor | None]:
        """One step of ``opt`` over ``net`` on a batch: both passes of a SAM-type optimizer when ``two_pass``,
        else a plain step of the base optimizer; returns the first-pass loss and logits, and ‖ε‖ (two passes)."""
        if two_pass:  # SAM, SSAM (either form) and SparseAscentSAM alike
            assert isinstance(opt, SAM)
            loss, out = self._passes(net, x, y, scaler, ascent=opt)
            opt.first_step(zero_grad=True)
            eps_norm = opt.perturbation_norm()
            self._passes(net, x, y, scaler)
            opt.second_step(zero_grad=True, scaler=scaler)
        else:
            base = opt.base_optimizer if isinstance(opt, SAM) else opt
            loss, out = self._passes(net, x, y, scaler)
            if scaler is None:
                base.step()
            else:
                scaler.step(base)
            base.zero_grad(set_to_none=True)
            eps_norm = None
        if scaler is not None:
            scaler.update()
        return loss, out, eps_norm

    def ascent_gradients(self, x: Tensor, y: Tensor) -> Tensor:
        """The ascent pass of the SAM-type optimizer on a batch, as :meth:`step` makes it, without a step: its mean
        loss, the gradients left in each parameter's ``.grad`` (what the benchmarks compare between paths)."""
        if not isinstance(self.optimizer, SAM):
            raise ValueError(f"optimizer: an ascent pass needs a SAM-type optimizer, got {self.config.optimizer!r}")
        loss, _ = self._passes(self.net, x, y, None, ascent=self.optimizer)
        return loss

    def step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """One optimizer step on a batch; returns the first-pass loss and logits."""
        # sam_every: SAM steps at step counts 0, k, 2k, ... (the scheduler's count, restored on resume)
        two_pass = self.is_sam and self.scheduler.last_epoch % self.config.sam_every == 0
        if self.graphs is None:
            loss, out, eps_norm = self._step(self.optimizer, self.net, x, y, two_pass, self.scaler)
        else:  # each kind of step (two-pass, plain) warmed up, captured and replayed on its own
            if two_pass not in self.graphs:
                self.graphs[two_pass] = GraphedStep(
                    lambda x, y, two_pass=two_pass: self._step(self.optimizer, self.net, x, y, two_pass, None),
                    self.optimizer, two_pass)
            loss, out, eps_norm = self.graphs[two_pass](x, y)
        if eps_norm is not None:
            self.eps_norm_sum += eps_norm
        self.scheduler.step()
        return loss, out

    def _reduce(self, totals: Tensor) -> Tensor:
        if self.world > 1:
            dist.all_reduce(totals)
        return totals

    def train_epoch(self, epoch: int, progress: bool) -> dict[str, float]:
        """Train one epoch with the RNG and data order fixed by (seed, epoch)."""
        torch.manual_seed(self.config.seed * 100_003 + epoch)
        self.train_loader.set_epoch(epoch)
        self.model.train()
        totals = torch.zeros(2, dtype=torch.float64, device=self.device)  # loss sum, correct (no host sync)
        start, cpu_start, steps, seen = time.perf_counter(), time.process_time(), 0, 0
        self.eps_norm_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        bar = tqdm(self.train_loader, desc=f"epoch {epoch + 1}/{self.config.epochs}", disable=not progress,
                   leave=False, mininterval=2.0)
        for x, y in bar:
            x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            y = y.to(self.device, non_blocking=True)
            loss, out = self.step(x, y)
            steps, seen = steps + 1, seen + len(y)
            totals += torch.stack([loss.double() * len(y), (out.argmax(1) == y).sum().double()])
        count = torch.tensor([float(seen)], dtype=torch.float64, device=self.device)
        loss_sum, correct, count = self._reduce(torch.cat([totals, count])).tolist()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        return {"train_loss": loss_sum / count, "train_acc": correct / count, "seconds": seconds,
                "images_per_s": count / seconds, "steps": steps, "seconds_per_step": seconds / steps,
                "cpu_seconds_per_step": cpu_seconds / steps,
                "eps_norm": float(self.eps_norm_sum) / steps if self.is_sam else None}

    @torch.no_grad()
    def evaluate(self) -> tuple[dict[str, float], Tensor]:
        """Test loss and accuracy, and whether each test example was classified correctly (in test-set order).

        Everything stays on the device until one copy at the end (no host sync per batch)."""
        self.model.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        hits = []
        for x, y in self.test_loader:
            x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            y = y.to(self.device, non_blocking=True)
            with self.autocast():
                out = self.model(x)
            loss_sum += F.cross_entropy(out.float(), y, reduction="sum").double()
            hits.append(out.argmax(1) == y)
        merged = torch.cat(hits)
        totals = torch.stack([loss_sum, merged.sum().double(), torch.tensor(float(len(merged)), dtype=torch.float64,
                                                                            device=self.device)])
        loss_sum, correct, count = self._reduce(totals).tolist()
        return {"test_loss": loss_sum / count, "test_acc": correct / count}, self._gather_hits(merged.cpu())

    def _gather_hits(self, hits: Tensor) -> Tensor:
        """Per-example correctness over the whole test set: rank r holds examples r, r + world, ..."""
        if self.world == 1:
            return hits
        shards: list[Tensor] = [torch.empty(0)] * self.world
        dist.all_gather_object(shards, hits)
        merged = torch.zeros(sum(len(h) for h in shards), dtype=torch.bool)
        for rank, shard in enumerate(shards):
            merged[rank::self.world] = shard
        return merged

    def mask_density(self) -> float | None:
        mask = getattr(self.optimizer, "mask", None)
        return None if mask is None else mask.density()

    def sparse_step_flops(self) -> float | None:
        """FLOPs of a sparse-ascent step with the current structured mask, per SGD step (cost model)."""
        if self.layers is None:
            return None
        params = self.optimizer.mask.params
        return cost.step_cost(self.layers, "sparse", params, self.optimizer.mask.masks) / cost.step_cost(self.layers)

    def count_flops(self) -> dict[str, int]:
        """FLOPs of one forward and of one whole training step (both passes for SAM), on a copy of the model
        with a fresh optimizer of the same config (the run's model, optimizer and scaler are untouched)."""
        model = copy.deepcopy(self.model)
        copies = dict(zip(map(id, self.model.parameters()), model.parameters()))
        layers = None if self.layers is None else [
            dataclasses.replace(layer, params=[copies[id(p)] for p in layer.params]) for layer in self.layers]
        opt = config_optimizer(self.config, model, copy.deepcopy(self.fisher_data), self.steps_per_epoch, layers)
        mask = getattr(opt, "mask", None)
        if mask is not None and not mask.needs_gradient:
            mask.update(0)  # the mask's own cost is not part of a step
        x, y = next(iter(self.train_loader))
        x, y = x.to(self.device), y.to(self.device)
        rng = torch.get_rng_state()
        with FlopCounterMode(display=False) as forward:
            with torch.no_grad():
                model(x)
        with FlopCounterMode(display=False) as step:
            self._step(opt, model, x, y, self.is_sam, None)
        torch.set_rng_state(rng)
        return {"flops_forward": forward.get_total_flops(), "flops_per_step": step.get_total_flops(),
                "flops_batch_size": len(y)}

    def state(self, epoch: int) -> dict[str, Any]:
        return {"epoch": epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": None if self.scaler is None else self.scaler.state_dict(),
                "fisher_draws": None if self.fisher_data is None else self.fisher_data.draws}

    def load(self, state: dict[str, Any]) -> int:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        if self.fisher_data is not None:
            self.fisher_data.draws = state["fisher_draws"]
        return state["epoch"]


def _distributed(config: TrainConfig) -> tuple[int, int, TrainConfig]:
    """Join the torchrun process group if there is one; returns rank, world size and the config."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, config
    if not dist.is_initialized():
        dist.init_process_group("nccl" if config.device.startswith("cuda") else "gloo")
    rank = dist.get_rank()
    if config.device.startswith("cuda"):
        config = config.replace(device=f"cuda:{os.environ.get('LOCAL_RANK', '0')}")
    return rank, world, config


def train(config: TrainConfig, runs_dir: str | Path | None = None, run_id: str | None = None,
          progress: bool = True, stop_after: int | None = None, *, wait: bool = False, verbose: bool = False,
          data_root: str | Path | None = None, download: bool = False) -> dict[str, Any]:
    """Train (or resume, or return the finished) run of ``config``; returns its summary.

    One writer per run folder: the process (rank 0 under torchrun) holds the folder's lock
    (:func:`sparsam.experiment.store.lock`) while it runs; another live holder raises :class:`sparsam.experiment.store.Locked`,
    or is waited for with ``wait=True``. A finished run with the same config is returned as it is,
    never re-run; a run folder whose config or summary holds a different config is an error.
    ``progress``: tqdm bars when stderr is a terminal. ``verbose``: say on stderr whether the run
    starts, resumes (from which epoch) or is already finished, then one line per epoch.
    ``data_root``/``download``: see :func:`sparsam.experiment.data.load_dataset`. ``stop_after`` ends the process
    after that many epochs without a summary (an interruption, for tests and time-boxed jobs).
    ``runs_dir`` None: the :class:`~sparsam.experiment.store.Workspace`'s (``$SPARSAM_RUNS``, else ``./runs``).
    """
    rank, world, config = _distributed(config)
    run_dir = store.Workspace.resolve(runs=runs_dir).runs / (run_id or config.run_id())
    if config.device.startswith("cuda") and torch.cuda.device_count() <= (torch.device(config.device).index or 0):
        raise ValueError(f"device={config.device!r} but torch sees {torch.cuda.device_count()} CUDA GPU(s) here; "
                         "use device='cpu'")
    # the code this process runs, taken now (a bad $SPARSAM_GIT_COMMIT is an error now, not after the training):
    # a commit or an edit made in the tree while the run trains is not the code that made its record
    code = provenance.code_commit()
    say = _teller(verbose and rank == 0)
    with store.lock(run_dir, wait=wait) if rank == 0 else contextlib.nullcontext():
        return _train_locked(config, run_dir, rank, world, progress, stop_after, say, data_root, download, code)


def _teller(on: bool) -> Any:
    """A function printing one line to stderr (tqdm-safe), or doing nothing."""
    return (lambda text: tqdm.write(text, file=sys.stderr)) if on else (lambda text: None)


def _epoch_line(record: dict[str, Any], epochs: int) -> str:
    test = ("not evaluated" if record["test_acc"] is None
            else f"loss {record['test_loss']:.4f} acc {record['test_acc']:.2%}")  # eval_every skips epochs
    return (f"epoch {record['epoch']}/{epochs}  train loss {record['train_loss']:.4f} acc {record['train_acc']:.2%}  "
            f"test {test}  {record['images_per_s']:.0f} images/s  {record['seconds']:.1f} s")


def _load_checkpoint(checkpoint: Path, device: str) -> dict[str, Any] | None:
    """The checkpoint's state, None if there is none; an unreadable one is an error naming the file."""
    if not checkpoint.exists():
        return None
    try:
        return torch.load(checkpoint, map_location=device, weights_only=False)
    except Exception as error:  # truncated or overwritten: torch raises several kinds
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{checkpoint} is unreadable ({reason}); delete it to restart this run from epoch 0, "
                         f"or delete {checkpoint.parent} to start over") from None


def _train_locked(config: TrainConfig, run_dir: Path, rank: int, world: int, progress: bool,
                  stop_after: int | None, say: Any, data_root: str | Path | None, download: bool,
                  code: tuple[str | None, bool | None]) -> dict[str, Any]:
    """The body of :func:`train`, run while holding the run folder's lock; ``code``: the process's
    :func:`sparsam.experiment.provenance.code_commit` at its start."""
    stored = run_dir / "config.json"
    if stored.exists() and TrainConfig.from_dict(store.read_json(stored)) != config:
        raise FileExistsError(f"{run_dir} holds a run with another config; choose another run id or remove it")
    if (run_dir / "summary.json").exists():
        summary = store.read_json(run_dir / "summary.json")
        if TrainConfig.from_dict(summary["config"]) != config:
            raise FileExistsError(f"{run_dir}/summary.json belongs to another config; choose another run id or "
                                  "remove the folder")
        say(f"{run_dir}: already finished (final test accuracy {summary['final_test_acc']:.2%})")
        return summary
    state = _load_checkpoint(run_dir / "checkpoint.pt", config.device)
    started, wall_start = store.now(), time.perf_counter()
    trainer = Trainer(config, rank, world, data_root, download)
    say(f"{run_dir}: resuming from epoch {state['epoch']}" if state else f"{run_dir}: starting")
    main = rank == 0
    flops = trainer.count_flops()
    first_epoch, metrics = 0, []
    checkpoint = run_dir / "checkpoint.pt"
    if state is not None:
        first_epoch = trainer.load(state)
        metrics = store.read_metrics(run_dir / "metrics.jsonl")[:first_epoch]
    elif main:
        store.atomic_write_json(stored, config.to_dict())
    hits = None
    for epoch in range(first_epoch, config.epochs):
        if stop_after is not None and epoch - first_epoch >= stop_after:
            return {}
        record = {"epoch": epoch + 1, "lr": float(trainer.scheduler.get_last_lr()[0])}
        record.update(trainer.train_epoch(epoch, progress and main and sys.stderr.isatty()))
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
            scores, hits = trainer.evaluate()
        else:
            scores, hits = {"test_loss": None, "test_acc": None}, None
        record.update(scores)
        record["mask_density"] = trainer.mask_density()
        record["sparse_step_flops_vs_sgd"] = trainer.sparse_step_flops()
        metrics.append(record)
        if main:
            store.write_metrics(run_dir / "metrics.jsonl", metrics)
            store.atomic_torch_save(checkpoint, trainer.state(epoch + 1))
        say(_epoch_line(record, config.epochs))
    if hits is None:  # resumed after the last epoch's checkpoint: evaluate the final weights again
        hits = trainer.evaluate()[1]
    summary = {
        "run_id": run_dir.name, "config": config.to_dict(), "weight_decay_used": config.decay,
        "final_test_acc": metrics[-1]["test_acc"], "best_test_acc": max(m["test_acc"] for m in metrics if m["test_acc"] is not None),
        "final_train_loss": metrics[-1]["train_loss"],
        "images_per_s": sum(m["images_per_s"] for m in metrics) / len(metrics),
        "mask_density": metrics[-1]["mask_density"],
        "sparse_step_flops_vs_sgd": metrics[-1].get("sparse_step_flops_vs_sgd"),  # absent in older runs
        "epochs_run": len(metrics), "world_size": world,
        **flops, "data": trainer.source.as_dict(), "seeds": {"seed": config.seed},
        "provenance": provenance.provenance(trainer.device, code), "numerics": optimizers.numerics(config.to_dict()),
        "started": started, "finished": store.now(),
        "wall_seconds_this_process": time.perf_counter() - wall_start,
        "train_seconds": sum(m["seconds"] for m in metrics), "resumed_from_epoch": first_epoch,
        "seconds_per_step": _per_step(metrics, "seconds_per_step"),
        "cpu_seconds_per_step": _per_step(metrics, "cpu_seconds_per_step"),
        "mean_eps_norm": _per_step(metrics, "eps_norm") if trainer.is_sam else None,
        "test_correct": results.pack_bits(hits.numpy()),
    }
    if main:
        store.atomic_write_json(run_dir / "summary.json", summary)
    if world > 1:
        dist.barrier()
    return summary


def epoch_runner(config: TrainConfig, data_root: str | Path | None = None) -> tuple[Callable[[int], None], int]:
    """One configuration's training an epoch per call, as a measurement that interleaves configurations in one
    process needs it (:mod:`sparsam.book.study.cost`): a function that trains the epoch it is given (from 0, in
    order), recording and checkpointing nothing, and the number of steps in an epoch."""
    trainer = Trainer(config, data_root=data_root)

    def run(epoch: int) -> None:
        trainer.train_epoch(epoch, progress=False)

    return run, trainer.steps_per_epoch


def _per_step(metrics: list[dict[str, Any]], field: str) -> float | None:
    """Mean over the run's steps of a per-step time (epochs weighted by their steps); None for older metrics."""
    if not metrics or any(m.get(field) is None for m in metrics):
        return None
    return sum(m[field] * m["steps"] for m in metrics) / sum(m["steps"] for m in metrics)


def is_finished(config: TrainConfig, runs_dir: str | Path | None = None) -> bool:
    return (store.Workspace.resolve(runs=runs_dir).runs / config.run_id() / "summary.json").exists()

