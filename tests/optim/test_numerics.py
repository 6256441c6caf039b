"""The numerics versions of the algorithms, guarded: each algorithm declares the version of what it computes
(``NUMERICS``: a class attribute of SAM, SSAM, SparseAscentSAM and the mask strategies, a module constant of the
implicit form, the mask patterns, the Fisher scores and the cost model), every run record stores the versions its
configuration ran (:func:`sparsam.experiment.optimizers.numerics`), and a record is stale when one differs
(:func:`sparsam.book.records.stale_reason`).

What keeps a version honest is here: a fingerprint of what each algorithm computes on a small fixed problem in
float64 (weights after a few steps, masks, scores, costs; each number to 9 significant digits), stored for the
versions of every algorithm that computation runs. A change that alters any of those numbers fails its test until
the algorithm's version is raised (records made with the old one then read stale) and the new fingerprint is added
(``python tests/optim/test_numerics.py`` prints them); a change that keeps them (moving code, a rewrite, a new
option) passes and leaves every record current.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nets import FixedMask, batches, make  # noqa: E402
from sparsam.masks import cost, fisher, patterns  # noqa: E402
from sparsam.masks.strategies import DynamicMask, FisherMask, NormMask  # noqa: E402
from sparsam.optim import implicit  # noqa: E402
from sparsam.optim.sam import SAM  # noqa: E402
from sparsam.optim.sparse_ascent import SparseAscentSAM, run_stages  # noqa: E402
from sparsam.optim.ssam import SSAM  # noqa: E402

VERSIONS: dict[str, Callable[[], int]] = {
    "sam": lambda: SAM.NUMERICS, "ssam": lambda: SSAM.NUMERICS, "implicit": lambda: implicit.NUMERICS,
    "sparse_ascent": lambda: SparseAscentSAM.NUMERICS, "fisher_mask": lambda: FisherMask.NUMERICS,
    "dynamic_mask": lambda: DynamicMask.NUMERICS, "norm_mask": lambda: NormMask.NUMERICS,
    "patterns": lambda: patterns.NUMERICS, "fisher_scores": lambda: fisher.NUMERICS,
    "cost_model": lambda: cost.NUMERICS}


def fingerprint(tensors: list[torch.Tensor]) -> str:
    """The first 16 hex digits of the SHA-256 of every number, in order, to 9 significant digits."""
    values = np.concatenate([t.detach().to(torch.float64).flatten().numpy() for t in tensors])
    return hashlib.sha256(" ".join(f"{v:.8e}" for v in values).encode()).hexdigest()[:16]


def _steps(opt, model, n: int = 3) -> list[torch.Tensor]:
    for x, y in batches(n, seed=5):
        with opt.ascent_pass():
            F.cross_entropy(model(x), y).backward()
        opt.first_step(zero_grad=True)
        F.cross_entropy(model(x), y).backward()
        opt.second_step(zero_grad=True)
    return [p.detach().clone() for p in model.parameters()]


def _fixed_masks(model, seed: int = 3, pattern: str = "unstructured") -> list[torch.Tensor]:
    """Seeded masks drawn here (not by sparsam.masks: the optimizers' cases run no mask pattern): entries kept at
    random, or with ``pattern="filter"`` whole output rows."""
    g = torch.Generator().manual_seed(seed)
    if pattern == "unstructured":
        return [torch.rand(p.shape, generator=g) < 0.5 for p in model.parameters()]
    return [(torch.rand(p.shape[0] if p.dim() > 1 else 1, generator=g) < 0.5).reshape(-1, *[1] * (p.dim() - 1))
            .expand(p.shape).clone() for p in model.parameters()]  # whole rows; a vector whole


def sam_case() -> list[torch.Tensor]:
    out = []
    for adaptive in (False, True):
        model = make()
        out += _steps(SAM(model.parameters(), torch.optim.SGD, rho=0.2, adaptive=adaptive, lr=0.1, momentum=0.9,
                          weight_decay=1e-3), model)
    return out


def ssam_case() -> list[torch.Tensor]:
    out = []
    for normalize in ("full", "masked"):
        model = make()
        out += _steps(SSAM(model.parameters(), torch.optim.SGD, rho=0.2, mask=FixedMask(_fixed_masks(model)),
                           normalize=normalize, lr=0.1, momentum=0.9, weight_decay=1e-3), model)
    return out


def implicit_case() -> list[torch.Tensor]:
    model = make()
    opt = SSAM(model.parameters(), torch.optim.SGD, rho=0.2, mask=FixedMask(_fixed_masks(model, pattern="filter"),
                                                                            "filter"),
               form="implicit", model=model, lr=0.1, momentum=0.9)
    return _steps(opt, model)


def _stages(seed: int = 0) -> list[torch.nn.Module]:
    torch.manual_seed(seed)
    nn = torch.nn
    return [nn.Sequential(nn.Conv2d(2, 4, 3, 1, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU()).double(),
            nn.Sequential(nn.Conv2d(4, 4, 3, 1, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU()).double(),
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).double()]


def sparse_ascent_case() -> list[torch.Tensor]:
    stages = _stages()
    params = [p for s in stages for p in s.parameters()]
    masks = [torch.full(p.shape, k >= 3, dtype=torch.bool) for k, p in enumerate(params)]  # the top stages only
    opt = SparseAscentSAM(stages, torch.optim.SGD, rho=0.2, mask=masks, lr=0.1, momentum=0.9)
    for x, y in batches(3, seed=5):
        def closure():
            loss = F.cross_entropy(run_stages(stages, x), y)
            loss.backward()
            return loss
        opt.step(closure)
    return [p.detach().clone() for p in params]


def fisher_scores_case() -> list[torch.Tensor]:
    model = make()
    params = list(model.parameters())
    data = batches(2, seed=9)
    return [*fisher.fisher_scores(model, params, data, 12, method="per_layer"),
            *fisher.fisher_scores(model, params, data, 12, method="vmap")]


def patterns_case() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    scores = [torch.rand(shape, generator=g, dtype=torch.float64) for shape in ((4, 2, 3, 3), (4,), (3, 8), (3,))]
    costs = [(4.0 - k, 1.0 + k) for k in range(len(scores))]
    masks = [*patterns.unstructured(scores, 0.6), *patterns.structured(scores, 0.5, "layer"),
             *patterns.structured(scores, 0.5, "filter"), *patterns.n_m(scores, 2, 4, "in"),
             *patterns.n_m(scores, 2, 4, "out"), *patterns.cost_aware(scores, costs, 0.5, "layer"),
             *patterns.norm_only([False, True, False, True], scores),
             patterns.top_k(torch.tensor([3.0, 1.0, 3.0, 2.0]), 2)]
    return [m.to(torch.float64) for m in masks]


def fisher_mask_case() -> list[torch.Tensor]:
    out = []
    for pattern in ("unstructured", "filter", "2:4"):
        model = make()
        mask = FisherMask(model, batches(2, seed=9), sparsity=None if pattern == "2:4" else 0.5, num_samples=12,
                          update_every=1, update_unit="steps", pattern=pattern)
        mask.bind(list(model.parameters()))
        mask.update(0)
        out += [m.to(torch.float64) for m in mask.masks]
    return out


def dynamic_mask_case() -> list[torch.Tensor]:
    model = make()
    mask = DynamicMask(0.5, update_every=1, update_unit="steps", total_steps=3, seed=3)
    _steps(SSAM(model.parameters(), torch.optim.SGD, rho=0.2, mask=mask, lr=0.1), model)
    return [m.to(torch.float64) for m in mask.masks]


def norm_mask_case() -> list[torch.Tensor]:
    model = make()
    mask = NormMask(model)
    mask.bind(list(model.parameters()))
    mask.update(0)
    return [m.to(torch.float64) for m in mask.masks]


def cost_model_case() -> list[torch.Tensor]:
    stages = _stages()
    params = [p for s in stages for p in s.parameters()]
    x = batches(1, seed=5, size=4)[0][0]
    layers = cost.layer_costs(stages, x, unit="flops")
    masks = [torch.full(p.shape, k >= 3, dtype=torch.bool) for k, p in enumerate(params)]
    numbers = [float(v) for pair in cost.tensor_costs(layers, params) for v in pair]
    numbers += [cost.step_cost(layers, "sgd"), cost.step_cost(layers, "sam"),
                cost.step_cost(layers, "sparse", params, masks)]
    return [torch.tensor(numbers, dtype=torch.float64)]


# name -> (the computation, the algorithms whose versions it runs)
CASES: dict[str, tuple[Callable[[], list[torch.Tensor]], tuple[str, ...]]] = {
    "sam": (sam_case, ("sam",)),
    "ssam": (ssam_case, ("sam", "ssam")),
    "implicit": (implicit_case, ("sam", "ssam", "implicit")),
    "sparse_ascent": (sparse_ascent_case, ("sam", "sparse_ascent", "cost_model")),
    "fisher_scores": (fisher_scores_case, ("fisher_scores",)),
    "patterns": (patterns_case, ("patterns",)),
    "fisher_mask": (fisher_mask_case, ("fisher_mask", "fisher_scores", "patterns")),
    "dynamic_mask": (dynamic_mask_case, ("sam", "ssam", "dynamic_mask", "patterns")),
    "norm_mask": (norm_mask_case, ("norm_mask", "patterns")),
    "cost_model": (cost_model_case, ("cost_model",)),
}
# The fingerprint of each case for the versions it ran ("sam=1,ssam=1"): add a line when a version is raised.
EXPECTED: dict[str, dict[str, str]] = {
    "sam": {"sam=1": "2c73bd849ac2f6b1"},
    "ssam": {"sam=1,ssam=1": "cbbf9d6e38c525f2"},
    "implicit": {"sam=1,ssam=1,implicit=1": "04d71dc6cc5cd144"},
    "sparse_ascent": {"sam=1,sparse_ascent=1,cost_model=1": "ef61e77067624bdf"},
    "fisher_scores": {"fisher_scores=1": "91a285273f577d92"},
    "patterns": {"patterns=1": "cf40668998b9765f"},
    "fisher_mask": {"fisher_mask=1,fisher_scores=1,patterns=1": "7485f33bbed0acef"},
    "dynamic_mask": {"sam=1,ssam=1,dynamic_mask=1,patterns=1": "b6589b5002648008"},
    "norm_mask": {"norm_mask=1,patterns=1": "8f6efc173d2b24a1"},
    "cost_model": {"cost_model=1": "0bae52b6377f09f7"},
}


def versions_key(depends: tuple[str, ...]) -> str:
    return ",".join(f"{name}={VERSIONS[name]()}" for name in depends)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(CASES))
def test_each_algorithm_computes_what_its_version_fingerprinted(name):
    case, depends = CASES[name]
    key = versions_key(depends)
    found = fingerprint(case())
    assert found == EXPECTED[name].get(key), (
        f"{name} ({key}) now computes {found}: if a change altered its numbers, raise the NUMERICS of the algorithm "
        f"that changed (records made with the old version then read stale) and add its fingerprint to EXPECTED")


def test_every_algorithm_a_record_names_is_guarded():
    """Each name that sparsam.experiment.optimizers.numerics stores has a version here and a fingerprint case."""
    from sparsam.experiment.config import OPTIMIZERS
    from sparsam.experiment.optimizers import numerics

    named = set()
    for optimizer in OPTIMIZERS:
        for extra in ({}, {"form": "implicit"}, {"ascent": "sparse"}, {"mask_rule": "cost-aware"}):
            named |= set(numerics({"optimizer": optimizer, **extra}))
    assert named == set(VERSIONS) == set(CASES)
    assert all(numerics({"optimizer": "ssam-f", "form": "implicit"})[name] == VERSIONS[name]() for name in
               numerics({"optimizer": "ssam-f", "form": "implicit"}))


def test_the_fingerprint_sees_a_change_in_the_ninth_digit():
    base = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    assert fingerprint([base]) == fingerprint([base.clone()])
    assert fingerprint([base]) != fingerprint([base * (1 + 1e-8)])
    assert fingerprint([base]) != fingerprint([base.flip(0)])


if __name__ == "__main__":  # the fingerprints at today's versions, to add to EXPECTED
    torch.set_num_threads(1)
    for name, (case, depends) in CASES.items():
        print(f'    "{name}": {{"{versions_key(depends)}": "{fingerprint(case())}"}},')
