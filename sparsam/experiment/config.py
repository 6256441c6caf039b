"""Training configuration: one validated dataclass shared by the CLI, notebooks and sweeps.

It is also the one place of what the command line, the book and the records need to know about a
configuration: the optimizers and their display names (:data:`OPTIMIZER_NAMES`), which fields act on
which optimizer (:data:`ACTS_ON`) and the help text of every field (its ``metadata["help"]``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, fields
from typing import Any, Literal

from ..masks import patterns
from . import models
from .data import AUGMENTATIONS, check_dataset
from .._checks import check_choice, check_int, check_range

Optimizer = Literal["sgd", "sam", "asam", "ssam-f", "ssam-d", "sam-on"]
OPTIMIZERS: tuple[Optimizer, ...] = typing.get_args(Optimizer)
# How the book, its tables and figures name each optimizer.
OPTIMIZER_NAMES: dict[str, str] = {"sgd": "SGD", "sam": "SAM", "asam": "ASAM", "ssam-f": "SSAM-F", "ssam-d": "SSAM-D",
                                   "sam-on": "SAM-ON"}
_SAM_FAMILY: tuple[Optimizer, ...] = ("sam", "asam", "ssam-f", "ssam-d", "sam-on")
_SSAM: tuple[Optimizer, ...] = ("ssam-f", "ssam-d")
# The fields that act on some optimizers only (every other field acts on all of them). A field not
# acting on an optimizer is, there, either rejected when not at its default (REJECTED_ELSEWHERE: a run
# asking for it would silently not get it) or ignored (any value is accepted and changes nothing but
# the run id, so grids may set it across optimizers); the records ignore it when pairing runs.
ACTS_ON: dict[str, tuple[Optimizer, ...]] = {
    "rho": _SAM_FAMILY, "sam_every": ("sam",),
    **{name: _SSAM for name in ("sparsity", "update_every", "update_unit", "normalize")},
    **{name: ("ssam-f",) for name in ("pattern", "mask_rule", "ascent_budget", "num_samples", "form", "ascent")},
    "drop_rate": ("ssam-d",),
}
REJECTED_ELSEWHERE = ("sam_every", "drop_rate", "mask_rule", "ascent_budget", "form", "ascent")
# The allowed values of the other string fields with a fixed set of values (the CLI lists them too).
CHOICES = {"optimizer": OPTIMIZERS, "mask_rule": ("fisher", "cost-aware"), "update_unit": ("steps", "epochs"),
           "form": ("explicit", "implicit"), "normalize": ("full", "masked"),
           "ascent": ("dense", "sparse"), "amp": ("off", "bf16", "fp16"), "capture": ("off", "cuda-graph", "compile")}
# Fields added after records were first stored: they enter the run id's hash only when set to
# something other than their default, so the ids (and the stored records) of older runs stay valid.
_LATER_FIELDS = {"mask_rule": "fisher", "ascent_budget": None, "augment": "crop-flip-cutout", "label_noise": 0.0,
                 "eval_every": 1, "drop_rate": 0.5, "sam_every": 1, "ascent": "dense", "channels_last": False,
                 "cudnn_benchmark": False, "capture": "off", "eval_batch_size": None,
                 "accumulate": 1}


def acts_on(field: str, optimizer: str) -> bool:
    """Whether the config field ``field`` acts on ``optimizer`` (:data:`ACTS_ON`; other fields act on all)."""
    return optimizer in ACTS_ON.get(field, OPTIMIZERS)


def _field(default: Any, help: str) -> Any:
    """A dataclass field with its help line (shown by ``python -m sparsam train --help``)."""
    return dataclasses.field(default=default, metadata={"help": help})


_N = OPTIMIZER_NAMES


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults are the papers' CIFAR recipe (ResNet-18, 200 epochs, ρ = 0.1).

    Each field's meaning is its help line (``dataclasses.fields(TrainConfig)[i].metadata["help"]``),
    listed below and by ``python -m sparsam train --help``; :data:`ACTS_ON` says which optimizers a
    field acts on.
    """

    optimizer: str = _field("sgd", f"{_N['sgd']}, {_N['sam']}, {_N['asam']} (adaptive SAM), {_N['ssam-f']} "
                                   f"(Fisher mask), {_N['ssam-d']} (dynamic mask) or {_N['sam-on']} (only the "
                                   f"normalisation layers perturbed, Mueller et al. 2023)")
    model: str = _field("resnet18", "network")
    width: int | None = _field(None, "base width of resnet18 / resnet-small (none: the model's default)")
    dataset: str = _field("cifar10", "data set ($SPARSAM_DATA packs or a torchvision root)")
    n_train: int | None = _field(None, "training images, a seeded class-balanced subset (none: all)")
    n_test: int | None = _field(None, "test images, a seeded class-balanced subset (none: all)")
    epochs: int = _field(200, "training epochs")
    batch_size: int = _field(128, "mini-batch size")
    accumulate: int = _field(1, "micro-batches per optimizer step (gradient accumulation): each batch of batch_size "
                                "runs forward and backward in this many parts, which must divide batch_size")
    lr: float = _field(0.05, "initial learning rate (cosine decay to 0)")
    momentum: float = _field(0.9, "SGD momentum")
    weight_decay: float | None = _field(None, "weight decay (none: the papers' choice, 5e-4 for sgd, 1e-3 for the "
                                              "SAM family)")
    label_smoothing: float = _field(0.0, "label smoothing of the cross-entropy")
    rho: float = _field(0.1, "perturbation radius of SAM / SSAM")
    sparsity: float = _field(0.5, "SSAM sparsity: fraction of entries NOT perturbed, in [0, 1)")
    pattern: str = _field("unstructured", "SSAM-F mask pattern")
    mask_rule: str = _field("fisher", "SSAM-F rule for layer/filter masks: 'fisher' keeps the tensors or filters of "
                                      "largest Fisher mass (the papers' rule), 'cost-aware' ranks them by Fisher mass "
                                      "per ascent-pass FLOP (sparsam.masks.cost.cost_aware_mask)")
    ascent_budget: float | None = _field(None, "cost-aware rule: most ascent FLOPs, as a fraction of an SGD step "
                                               "(none: no cap; filling the parameter budget eventually reaches the "
                                               "bottom of the network and makes the ascent dense again)")
    augment: str = _field("crop-flip-cutout", "CIFAR training augmentation (crop-flip-cutout: the papers'; "
                                              "sparsam.experiment.data.AUGMENTATIONS)")
    label_noise: float = _field(0.0, "fraction of training labels replaced by another class (a declared deviation "
                                     "from the papers)")
    eval_every: int = _field(1, "evaluate the test set every N epochs and after the last (the other epochs have no "
                                "test metrics; no training step changes)")
    num_samples: int = _field(128, "SSAM-F: samples of each Fisher estimate (N_F)")
    update_every: int = _field(1, "SSAM: steps or epochs between mask updates (T_m)")
    update_unit: str = _field("epochs", "unit of --update-every")
    form: str = _field("explicit", "SSAM form: explicit masked perturbation or implicit sparse ascent")
    normalize: str = _field("full", "SSAM: normalise the perturbation over all or only the masked entries")
    drop_rate: float = _field(0.5, "SSAM-D: fraction of the mask dropped and regrown at step 0 (alpha; 0: a fixed "
                                   "random mask, a random-mask control)")
    sam_every: int = _field(1, "SAM: the two-pass step every N steps, a plain base step in between (2: an "
                               "equal-cost baseline at about 1.5 SGD steps)")
    ascent: str = _field("dense", "SSAM-F layer/filter mask with normalize=masked: the papers' dense ascent pass, or "
                                  "one skipping what the mask leaves out (sparsam.optim.sparse_ascent.SparseAscentSAM)")
    seed: int = _field(0, "seed of the subset, data order, initialisation and masks")
    device: str = _field("cpu", "cpu, cuda or cuda:N")
    amp: str = _field("off", "mixed precision: bf16 (autocast, on cpu or cuda) or fp16 (autocast with a GradScaler; "
                             "needs cuda)")
    gpu_resident: bool = _field(True, "on cuda, keep CIFAR data on the GPU and augment there")
    channels_last: bool = _field(False, "the network, its inputs and the SSAM masks in channels-last memory format "
                                        "(part of the fast CUDA and CPU paths; same arithmetic)")
    cudnn_benchmark: bool = _field(False, "on cuda, let cuDNN time its convolution algorithms and keep the fastest "
                                          "(torch.backends.cudnn.benchmark)")
    capture: str = _field("off", "cuda-graph: the whole step (both passes and the base step) captured once in a "
                                 "CUDA graph and replayed (sparsam.experiment.graphed); compile: torch.compile of "
                                 "the network; off: eager")
    eval_batch_size: int | None = _field(None, "test-set batch size (none: batch_size); evaluation only, no "
                                               "training step changes")
    num_workers: int = _field(0, "DataLoader worker processes")

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        for field, check in (("model", models.constructor), ("dataset", check_dataset)):
            try:
                check(getattr(self, field))
            except ValueError as error:  # "name must be one of ...": the same list, naming the field
                raise ValueError(field + str(error).removeprefix("name")) from None
        if self.width is not None:
            check_int("width", self.width, 1)
        for name in ("n_train", "n_test"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1)
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("accumulate", self.accumulate, 1)
        if self.batch_size % self.accumulate:
            raise ValueError(f"batch_size={self.batch_size} must be divisible by accumulate={self.accumulate} "
                             "(batch_size is the optimizer step's batch, run in accumulate micro-batches)")
        check_range("lr", self.lr, 0.0, low_open=True)
        check_range("momentum", self.momentum, 0.0, 1.0)
        if self.weight_decay is not None:
            check_range("weight_decay", self.weight_decay, 0.0)
        check_range("label_smoothing", self.label_smoothing, 0.0, 1.0)
        check_range("rho", self.rho, 0.0)
        check_range("sparsity", self.sparsity, 0.0, 1.0)
        patterns.parse_pattern(self.pattern)
        check_choice("mask_rule", self.mask_rule, CHOICES["mask_rule"])
        if self.ascent_budget is not None:
            check_range("ascent_budget", self.ascent_budget, 0.0, low_open=True)
        check_choice("augment", self.augment, tuple(AUGMENTATIONS))
        check_range("label_noise", self.label_noise, 0.0, 1.0)
        check_int("eval_every", self.eval_every, 1)
        check_int("num_samples", self.num_samples, 1)
        check_int("update_every", self.update_every, 1)
        check_choice("update_unit", self.update_unit, CHOICES["update_unit"])
        check_choice("form", self.form, CHOICES["form"])
        check_choice("normalize", self.normalize, CHOICES["normalize"])
        check_range("drop_rate", self.drop_rate, 0.0, 1.0, high_open=False)
        check_int("sam_every", self.sam_every, 1)
        check_choice("ascent", self.ascent, CHOICES["ascent"])
        self._check_combinations()
        check_int("seed", self.seed, 0)
        check_choice("amp", self.amp, CHOICES["amp"])
        check_int("num_workers", self.num_workers, 0)
        check_choice("capture", self.capture, CHOICES["capture"])
        if self.eval_batch_size is not None:
            check_int("eval_batch_size", self.eval_batch_size, 1)
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        if self.capture == "cuda-graph" and (self.device == "cpu" or self.amp == "fp16" or self.form != "explicit"
                                             or self.ascent != "dense"):
            raise ValueError("capture='cuda-graph' needs device='cuda', amp 'off' or 'bf16' (fp16's GradScaler "
                             "decides on the host), form='explicit' and ascent='dense', got "
                             f"device={self.device!r}, amp={self.amp!r}, form={self.form!r}, ascent={self.ascent!r}")
        if self.amp == "fp16" and self.device == "cpu":
            raise ValueError("amp='fp16' needs device='cuda' (a CPU has no fast fp16 kernels); use amp='bf16' or 'off'")

    def _check_combinations(self) -> None:
        """Fields of :data:`REJECTED_ELSEWHERE` away from their default with an optimizer they do not act
        on, and the requirements of the cost-aware rule and of the implicit and sparse forms."""
        for name in REJECTED_ELSEWHERE:
            value = getattr(self, name)
            if value != self.__dataclass_fields__[name].default and not acts_on(name, self.optimizer):
                needed = " or ".join(map(repr, ACTS_ON[name]))
                raise ValueError(f"{name}={value!r} applies to optimizer {needed} only, got "
                                 f"optimizer={self.optimizer!r}")
        kind = patterns.parse_pattern(self.pattern)[0]
        if self.mask_rule == "cost-aware" and kind not in ("layer", "filter"):
            raise ValueError(f"mask_rule='cost-aware' needs pattern 'layer' or 'filter', got pattern={self.pattern!r}")
        if self.ascent_budget is not None and self.mask_rule != "cost-aware":
            raise ValueError("ascent_budget applies to mask_rule='cost-aware' only")
        if self.form == "implicit" and (kind == "unstructured" or self.normalize != "full"):
            raise ValueError("form='implicit' needs a 'layer', 'filter' or N:M pattern and normalize='full', got "
                             f"pattern={self.pattern!r}, normalize={self.normalize!r}")
        if self.ascent == "sparse" and (kind not in ("layer", "filter") or self.normalize != "masked"
                                        or self.form != "explicit" or self.amp == "fp16"):
            raise ValueError("ascent='sparse' needs pattern 'layer' or 'filter', normalize='masked' (the sparse "
                             "pass never forms the full gradient), form='explicit' and amp other than 'fp16', got "
                             f"pattern={self.pattern!r}, normalize={self.normalize!r}, form={self.form!r}, "
                             f"amp={self.amp!r}")

    @property
    def decay(self) -> float:
        """The weight decay in force (the papers' default when ``weight_decay`` is None)."""
        if self.weight_decay is not None:
            return self.weight_decay
        return 5e-4 if self.optimizer == "sgd" else 1e-3

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a mapping, rejecting unknown keys with the list of known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known keys: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def run_id(self) -> str:
        """A readable, deterministic name: optimizer, model, data, key knobs and a config hash."""
        values = {k: v for k, v in self.to_dict().items() if not (k in _LATER_FIELDS and v == _LATER_FIELDS[k])}
        digest = hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]
        parts = [self.optimizer, self.model, self.dataset, f"e{self.epochs}", f"s{self.seed}"]
        if acts_on("sparsity", self.optimizer):
            parts.insert(1, f"sp{self.sparsity:g}")
        return "-".join(parts) + "-" + digest


TrainConfig.__doc__ = (TrainConfig.__doc__ or "") + "\n    Fields:\n\n" + "\n".join(
    f"    * ``{f.name}`` (default ``{f.default!r}``): {f.metadata['help']}." for f in fields(TrainConfig))
