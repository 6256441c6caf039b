"""The runs the training chapters ask for under a profile's parameters (:func:`sparsam.book.profiles.parameters`):
notebook 3's CIFAR configurations (:func:`cifar_runs`) and notebook 5's ImageNet ones (:func:`imagenet_runs`);
notebook 6's networks are :func:`sparsam.book.curvature.networks`. Fields an optimizer does not use keep their
defaults, so that one SGD run serves every radius and equal values share runs between the chapters. The notebooks and
``scripts/snapshot_claims.py`` read the same configurations from here."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from ..experiment.config import TrainConfig


@dataclass(frozen=True)
class CifarRuns:
    """Notebook 3's configurations, every seed of the profile: ``main`` (SGD, SAM, SSAM-F and SSAM-D at each
    sparsity), ``radius`` (SSAM-F at s = 0.5 with the masked normalisation), ``cost`` (SSAM-F with the layer pattern
    at each cost sparsity, the papers' mask rule and the cost-aware one), ``tpami`` (the patterns and forms of the
    journal extension that are not among the others)."""

    main: tuple[TrainConfig, ...]
    radius: tuple[TrainConfig, ...]
    cost: tuple[TrainConfig, ...]
    tpami: tuple[TrainConfig, ...]

    @property
    def configs(self) -> list[TrainConfig]:
        """``main``, ``radius`` and ``cost``, each configuration once (the runs trained with the chapter)."""
        return list(dict.fromkeys(self.main + self.radius + self.cost))


def cifar_runs(p: SimpleNamespace) -> CifarRuns:
    """Notebook 3's configurations under its parameters ``p``."""
    base = TrainConfig(model=p.model, width=p.width, dataset=p.dataset, n_train=p.n_train, n_test=p.n_test,
                       epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, weight_decay=p.weight_decay,
                       device=p.device, amp=p.amp, channels_last=p.channels_last, eval_every=p.eval_every)
    ssam_f = dict(optimizer="ssam-f", rho=p.rho, num_samples=p.num_samples, update_every=p.update_every,
                  update_unit="epochs")
    ssam_d = dict(optimizer="ssam-d", rho=p.rho, update_every=p.update_every, update_unit="epochs")
    main = [base.replace(optimizer="sgd", seed=seed) for seed in p.seeds]
    main += [base.replace(optimizer="sam", rho=p.rho, seed=seed) for seed in p.seeds]
    main += [base.replace(**kind, sparsity=s, seed=seed) for seed in p.seeds for s in p.sparsities
             for kind in (ssam_f, ssam_d)]
    radius = [base.replace(**ssam_f, sparsity=0.5, normalize="masked", seed=seed) for seed in p.seeds]
    cost = [base.replace(**ssam_f, sparsity=s, pattern="layer", seed=seed, **rule) for seed in p.seeds
            for s in p.cost_sparsities for rule in ({}, {"mask_rule": "cost-aware", "ascent_budget": p.ascent_budget})]
    trained = set(main + radius + cost)
    tpami = [base.replace(**ssam_f, sparsity=0.5, pattern=pattern, seed=seed) for seed in p.seeds
             for pattern in p.patterns]
    tpami += [base.replace(**ssam_f, sparsity=0.5, pattern=p.implicit_pattern, form=form, seed=seed)
              for seed in p.seeds for form in ("explicit", "implicit")]
    tpami = [c for c in dict.fromkeys(tpami) if c not in trained]
    return CifarRuns(tuple(main), tuple(radius), tuple(cost), tuple(tpami))


def imagenet_runs(p: SimpleNamespace) -> list[TrainConfig]:
    """Notebook 5's configurations under its parameters ``p``: SGD, SAM and SSAM-F at its sparsity, seed by seed."""
    base = TrainConfig(model=p.model, dataset=p.dataset, n_train=p.n_train, n_test=p.n_test, epochs=p.epochs,
                       batch_size=p.batch_size, lr=p.lr, weight_decay=p.weight_decay, device=p.device, amp=p.amp,
                       channels_last=p.channels_last, eval_every=p.eval_every)
    configs = []
    for seed in p.seeds:
        configs.append(base.replace(optimizer="sgd", seed=seed))
        configs.append(base.replace(optimizer="sam", rho=p.rho, seed=seed))
        configs.append(base.replace(optimizer="ssam-f", rho=p.rho, sparsity=p.sparsity, num_samples=p.num_samples,
                                    update_every=p.update_every, update_unit="epochs", seed=seed))
    return configs
