"""The tables of sparsam.experiment.config that decide for the rest of the package: the optimizers, their
display names and factories, which fields act on which optimizer, and the help line of every field."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import nets
from sparsam.experiment import optimizers, train
from sparsam.experiment.config import (ACTS_ON, CHOICES, OPTIMIZER_NAMES, OPTIMIZERS, REJECTED_ELSEWHERE,
                                       TrainConfig, acts_on)
from sparsam.masks.strategies import DynamicMask, FisherMask, NormMask
from sparsam.optim.sam import SAM
from sparsam.optim.sparse_ascent import SparseAscentSAM
from sparsam.optim.ssam import SSAM

DEFAULTS = TrainConfig()
# A value other than the default of every field of ACTS_ON, and the other fields it needs where it acts.
SAMPLES = {"rho": (0.3, {}), "sam_every": (2, {}), "sparsity": (0.9, {}), "update_every": (3, {}),
           "update_unit": ("steps", {}), "normalize": ("masked", {}), "pattern": ("layer", {}),
           "mask_rule": ("cost-aware", {"pattern": "layer"}),
           "ascent_budget": (0.25, {"pattern": "layer", "mask_rule": "cost-aware"}), "num_samples": (7, {}),
           "form": ("implicit", {"pattern": "2:4"}), "ascent": ("sparse", {"pattern": "filter", "normalize": "masked"}),
           "drop_rate": (0.0, {})}


def test_acts_on_names_real_fields_and_some_optimizers_only():
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(ACTS_ON) <= names and set(REJECTED_ELSEWHERE) <= set(ACTS_ON)
    for field, acting in ACTS_ON.items():
        assert acting and set(acting) < set(OPTIMIZERS), field  # a field acting on all is not in the table
    assert set(SAMPLES) == set(ACTS_ON)  # a new entry needs its sample here
    for field, (value, _) in SAMPLES.items():
        assert value != getattr(DEFAULTS, field), field
    assert acts_on("model", "sgd") and acts_on("rho", "sam") and not acts_on("rho", "sgd")


def _trained(config: TrainConfig, steps: int = 4) -> list[Tensor]:
    """The parameters of nets.Net after ``steps`` steps of the optimizer that train.config_optimizer makes of
    ``config`` (two batches an epoch, Fisher samples of ``config.num_samples`` of 128 examples)."""
    model = nets.make(0)
    data = nets.batches(steps, seed=1, size=4)
    pool = torch.utils.data.TensorDataset(*nets.batches(1, seed=2, size=DEFAULTS.num_samples)[0])
    fisher = train.FisherBatches(pool, config.num_samples, 32, seed=0)
    opt = train.config_optimizer(config, model, fisher, steps_per_epoch=2)
    for x, y in data:
        def closure() -> Tensor:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        if isinstance(opt, SAM):
            opt.step(closure)
        else:
            closure()
            opt.step()
        opt.zero_grad()
    return [p.detach().clone() for p in model.parameters()]


def _same(a: list[Tensor], b: list[Tensor]) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize("field", sorted(ACTS_ON))
def test_a_field_acts_where_the_table_says_and_elsewhere_is_rejected_or_changes_nothing(field):
    """Where ACTS_ON says a field acts, its value is accepted (and, for the fields other optimizers
    ignore, changes the training); elsewhere it is rejected (REJECTED_ELSEWHERE) or the optimizer
    trains exactly as with the default."""
    value, context = SAMPLES[field]
    for optimizer in OPTIMIZERS:
        values = dict(optimizer=optimizer, **context, **{field: value})
        if acts_on(field, optimizer):
            config = TrainConfig(**values)
            if field not in REJECTED_ELSEWHERE:  # these need models with stages and costs: see test_train
                assert not _same(_trained(config), _trained(TrainConfig(optimizer=optimizer))), (field, optimizer)
        elif field in REJECTED_ELSEWHERE:  # on its own: the context may be rejected there too
            with pytest.raises(ValueError, match=f"{field}={value!r} applies to optimizer .*got optimizer="):
                TrainConfig(optimizer=optimizer, **{field: value})
        else:
            assert not context
            same = _same(_trained(TrainConfig(**values)), _trained(TrainConfig(optimizer=optimizer)))
            assert same, (field, optimizer)


def _mask(name: str, model: torch.nn.Module) -> FisherMask | DynamicMask | NormMask | None:
    if name == "ssam-f":
        return FisherMask(model, nets.batches(1, size=4), sparsity=0.5, num_samples=4, update_unit="steps")
    if name == "ssam-d":
        return DynamicMask(0.5, total_steps=10)
    if name == "sam-on":
        return NormMask(model)
    return None


def test_every_optimizer_has_a_display_name_and_a_factory():
    assert CHOICES["optimizer"] == OPTIMIZERS and set(OPTIMIZER_NAMES) == set(OPTIMIZERS)
    assert len(set(OPTIMIZER_NAMES.values())) == len(OPTIMIZERS)
    # the masked optimizers: those sparsity acts on, and SAM-ON, whose fixed mask sets its own density
    assert set(optimizers.MASKS) == set(ACTS_ON["sparsity"]) | {"sam-on"}
    for name in OPTIMIZERS:
        model = nets.make(0)
        mask = _mask(name, model)
        assert type(mask) is optimizers.MASKS.get(name, type(None))
        opt = optimizers.build_optimizer(name, model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3, rho=0.2,
                                         mask=mask)
        base = opt.base_optimizer if isinstance(opt, SAM) else opt
        assert type(base) is torch.optim.SGD
        group = opt.param_groups[0]
        assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.1, 0.9, 1e-3)
        assert [id(p) for p in group["params"]] == [id(p) for p in model.parameters()]
        assert isinstance(opt, SAM) == acts_on("rho", name), name  # the radius acts on the two-pass steps
        if isinstance(opt, SAM):
            assert group["rho"] == 0.2 and group["adaptive"] == (name == "asam")
        assert isinstance(opt, SSAM) == (mask is not None) and getattr(opt, "mask", None) is mask


def test_the_factory_builds_the_sparse_ascent_pass_and_rejects_what_does_not_fit():
    model = nets.make(0)
    fixed = [torch.ones_like(p) for p in model.parameters()]
    sparse = optimizers.build_optimizer("ssam-f", model.parameters(), lr=0.1, rho=0.2, mask=fixed,
                                        normalize="masked", ascent="sparse", stages=[model])
    assert isinstance(sparse, SparseAscentSAM) and sparse.param_groups[0]["rho"] == 0.2
    build = optimizers.build_optimizer
    params = list(model.parameters())
    for kwargs, message in [
            (dict(name="adam"), "name must be one of"),
            (dict(name="sam", mask=_mask("ssam-d", model)), "mask applies to optimizer 'ssam-f' or 'ssam-d' or 'sam-on' only"),
            (dict(name="ssam-f"), "optimizer 'ssam-f' needs mask=<a FisherMask>, got NoneType"),
            (dict(name="ssam-f", mask=_mask("ssam-d", model)), "needs mask=<a FisherMask>, got DynamicMask"),
            (dict(name="ssam-d", mask=_mask("ssam-f", model)), "needs mask=<a DynamicMask>, got FisherMask"),
            (dict(name="ssam-f", mask=fixed), "needs mask=<a FisherMask>, got list"),  # fixed: sparse ascent only
            (dict(name="sam", form="implicit"), "form='implicit' applies to optimizer 'ssam-f' only"),
            (dict(name="ssam-d", mask=_mask("ssam-d", model), ascent="sparse", stages=[model]),
             "ascent='sparse' applies to optimizer 'ssam-f' only"),
            (dict(name="ssam-f", mask=fixed, ascent="sparse", normalize="masked"), "needs stages"),
            (dict(name="ssam-f", mask=fixed, ascent="sparse", stages=[model]), "needs normalize='masked'"),
            (dict(name="sgd", stages=[model]), "stages applies to ascent='sparse' only"),
            (dict(name="sgd", ascent="half"), "ascent must be one of")]:
        name = kwargs.pop("name")
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            build(name, params, lr=0.1, **kwargs)


def test_every_field_has_a_help_line_in_its_metadata_and_the_docstring_lists_them():
    doc = TrainConfig.__doc__
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata["help"].strip(), f.name
        assert f"``{f.name}`` (default ``{f.default!r}``): {f.metadata['help']}." in doc, f.name
    assert OPTIMIZER_NAMES["ssam-f"] in dataclasses.fields(TrainConfig)[0].metadata["help"]
