"""Training configuration: one validated dataclass shared by the CLI, notebooks and sweeps."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields
from typing import Any

from ..masks import patterns
from . import models
from .data import AUGMENTATIONS, check_dataset
from .._checks import check_choice, check_int, check_range

OPTIMIZERS = ("sgd", "sam", "asam", "ssam-f", "ssam-d")
# The allowed values of the other string fields with a fixed set of values (the CLI lists them too).
CHOICES = {"optimizer": OPTIMIZERS, "mask_rule": ("fisher", "cost-aware"), "update_unit": ("steps", "epochs"),
           "form": ("explicit", "implicit"), "normalize": ("full", "masked"),
           "ascent": ("dense", "sparse"), "amp": ("off", "bf16", "fp16")}
# Fields added after records were first stored: they enter the run id's hash only when set to
# something other than their default, so the ids (and the stored records) of older runs stay valid.
_LATER_FIELDS = {"mask_rule": "fisher", "ascent_budget": None, "augment": "crop-flip-cutout", "label_noise": 0.0,
                 "eval_every": 1, "drop_rate": 0.5, "sam_every": 1, "ascent": "dense"}


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults are the papers' CIFAR recipe (ResNet-18, 200 epochs, ρ = 0.1).

    ``weight_decay=None`` means the papers' choice: 5e-4 for SGD, 1e-3 for the SAM family.
    ``n_train``/``n_test`` take seeded, class-balanced subsets (quick profiles).
    ``update_every``/``update_unit`` are SSAM's T_m; ``num_samples`` is SSAM-F's N_F.
    ``amp``: "off", "bf16" (autocast, GPU) or "fp16" (autocast with a GradScaler).
    ``augment``: the CIFAR training augmentation, "crop-flip-cutout" (the papers'), "crop-flip", "flip"
    or "none" (:data:`sparsam.experiment.data.AUGMENTATIONS`). ``label_noise``: fraction of training labels
    replaced by another class (a declared deviation from the papers, 0 by default).
    ``eval_every``: evaluate on the test set every that many epochs and after the last one (the
    other epochs' metrics have no test values); it changes no training step.
    ``drop_rate``: SSAM-D's α at step 0 (0 keeps the random initial mask fixed: a random-mask control).
    ``sam_every``: SAM takes its two-pass step every that many steps and a plain base step otherwise
    (2: an equal-cost baseline at about 1.5 SGD steps). ``ascent``: "dense" (the papers' step) or
    "sparse" (SSAM-F with a "layer" or "filter" mask and ``normalize="masked"``: the ascent pass of
    :class:`sparsam.optim.sparse_ascent.SparseAscentSAM`, which skips what the mask leaves out).
    ``mask_rule`` (SSAM-F with a "layer" or "filter" pattern): "fisher" keeps the tensors or filters
    of largest Fisher mass (the papers' rule); "cost-aware" ranks them by Fisher mass per unit of
    ascent-pass FLOPs (:func:`sparsam.masks.cost.cost_aware_mask`), optionally with an ``ascent_budget``:
    the most FLOPs the ascent pass may cost, as a fraction of an SGD step (None: fill the parameter
    budget, which eventually reaches the bottom of the network and makes the ascent dense again).
    """

    optimizer: str = "sgd"
    model: str = "resnet18"
    width: int | None = None
    dataset: str = "cifar10"
    n_train: int | None = None
    n_test: int | None = None
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float | None = None
    label_smoothing: float = 0.0
    rho: float = 0.1
    sparsity: float = 0.5
    pattern: str = "unstructured"
    mask_rule: str = "fisher"
    ascent_budget: float | None = None
    augment: str = "crop-flip-cutout"
    label_noise: float = 0.0
    eval_every: int = 1
    num_samples: int = 128
    update_every: int = 1
    update_unit: str = "epochs"
    form: str = "explicit"
    normalize: str = "full"
    drop_rate: float = 0.5
    sam_every: int = 1
    ascent: str = "dense"
    seed: int = 0
    device: str = "cpu"
    amp: str = "off"
    gpu_resident: bool = True
    num_workers: int = 0

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
        check_range("lr", self.lr, 0.0, low_open=True)
        check_range("momentum", self.momentum, 0.0, 1.0)
        if self.weight_decay is not None:
            check_range("weight_decay", self.weight_decay, 0.0)
        check_range("label_smoothing", self.label_smoothing, 0.0, 1.0)
        check_range("rho", self.rho, 0.0)
        check_range("sparsity", self.sparsity, 0.0, 1.0)
        patterns.parse_pattern(self.pattern)
        check_choice("mask_rule", self.mask_rule, CHOICES["mask_rule"])
        if self.mask_rule == "cost-aware" and (self.optimizer != "ssam-f" or self.pattern not in ("layer", "filter")):
            raise ValueError("mask_rule='cost-aware' needs optimizer='ssam-f' and pattern 'layer' or 'filter', got "
                             f"optimizer={self.optimizer!r}, pattern={self.pattern!r}")
        if self.ascent_budget is not None:
            check_range("ascent_budget", self.ascent_budget, 0.0, low_open=True)
            if self.mask_rule != "cost-aware":
                raise ValueError("ascent_budget applies to mask_rule='cost-aware' only")
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
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        if self.amp != "off" and self.device == "cpu":
            raise ValueError(f"amp={self.amp!r} needs device='cuda' (mixed precision on a CPU is slow and untested "
                             "here); use amp='off'")

    def _check_combinations(self) -> None:
        """Options that act on some optimizers only, and the implicit and sparse forms' requirements."""
        if self.sam_every != 1 and self.optimizer != "sam":
            raise ValueError(f"sam_every applies to optimizer='sam' only, got optimizer={self.optimizer!r}")
        if self.drop_rate != 0.5 and self.optimizer != "ssam-d":
            raise ValueError(f"drop_rate applies to optimizer='ssam-d' only, got optimizer={self.optimizer!r}")
        kind = patterns.parse_pattern(self.pattern)[0]
        if self.form == "implicit" and (self.optimizer != "ssam-f" or kind == "unstructured"
                                        or self.normalize != "full"):
            raise ValueError("form='implicit' needs optimizer='ssam-f', a 'layer', 'filter' or N:M pattern and "
                             f"normalize='full', got optimizer={self.optimizer!r}, pattern={self.pattern!r}, "
                             f"normalize={self.normalize!r}")
        if self.ascent == "sparse" and (self.optimizer != "ssam-f" or kind not in ("layer", "filter")
                                        or self.normalize != "masked" or self.form != "explicit"
                                        or self.amp == "fp16"):
            raise ValueError("ascent='sparse' needs optimizer='ssam-f', pattern 'layer' or 'filter', "
                             "normalize='masked' (the sparse pass never forms the full gradient), "
                             f"form='explicit' and amp other than 'fp16', got optimizer={self.optimizer!r}, "
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
        if self.optimizer.startswith("ssam"):
            parts.insert(1, f"sp{self.sparsity:g}")
        return "-".join(parts) + "-" + digest
