"""The book's scales, largest first: the GPU study, then the CPU study; the label-noise study; and the ImageNet study.

A scale is a study: a file in the format of :func:`sparsam.book.study.load_study` and a store of its records, both
named relative to the book's root (:func:`sparsam.book.layout.book_root`), as in :data:`SCALES` (the CIFAR
studies, largest first, which chapter 3 leads with), :data:`NOISE_SCALES` (the label-noise study of chapter 9: the
CPU study's recipe with noisy training labels, a deviation from the papers chosen so that SAM's gain is large; its
claims are those the book declares for a study of kind "cifar-noise", its own column of the claims table after the
clean-label studies') and :data:`IMAGENET_SCALES` (the
ImageNet study, which chapter 5 leads with; its claims are those the book declares for an ImageNet study,
:func:`sparsam.book.registry.study_claims`).
What a chapter shows of a scale is :mod:`sparsam.book.scale_reports`; the claims table across them is
:mod:`sparsam.book.claims_table`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import deviations, registry
from .layout import (COST_REGISTRATION, GPU_COST_REGISTRATION, GPU_STUDY_FILE, GPU_STUDY_STORE, IMAGENET_STUDY_FILE,
                     IMAGENET_STUDY_STORE, NOISE_FLATNESS_REGISTRATION, NOISE_STUDY_FILE, NOISE_STUDY_STORE,
                     STUDY_FILE, STUDY_STORE)

Time = Literal["cpu_seconds_per_step", "seconds_per_step"]


@dataclass(frozen=True)
class Scale:
    """One scale of the book: its study's file and store (relative to the book's root), the records' time per
    step that is its cost, the axis label of that cost, the registered measurement that decides its cost
    instead of the records (None: the records decide it), the chapter that reports it in full, the papers' setup
    it is set against (:data:`sparsam.book.deviations.PAPERS`; also the kind of study whose claims it decides,
    :func:`sparsam.book.registry.study_claims`), the claims table's column it fills (None: its own, named after
    it) and the registration of its second family, the curvature of some of its networks
    (:func:`sparsam.book.study.load_flatness_registration`; None: it has none)."""

    name: str
    slug: str  # a short name for glue keys: "gpu", "cpu", "noise", "imagenet"
    study_file: Path
    store: Path
    time: Time
    time_label: str
    cost_registration: Path | None = None
    report: str | None = None
    paper: deviations.Paper = "cifar"
    column: str | None = None
    second_family: Path | None = None  # the registration of its curvature family, if it has one

    @property
    def claim_map(self) -> dict[str, tuple[tuple[str, str, str], ...]]:
        """Its claims (those the book declares for a study of its paper): claim key -> the (rule, a, b) comparisons
        the claim needs."""
        return registry.study_claims(self.paper)

    def with_paths(self, study_file: str | Path, store: str | Path) -> "Scale":
        """The same scale with its study file and store elsewhere (relative to the book's root)."""
        return dataclasses.replace(self, study_file=Path(study_file), store=Path(store))


GPU_TIME_LABEL = "GPU time per training step (wall time, synchronised once per epoch), in SGD steps"


SCALES: tuple[Scale, ...] = (
    Scale("GPU study", "gpu", GPU_STUDY_FILE, GPU_STUDY_STORE, "seconds_per_step", GPU_TIME_LABEL,
          cost_registration=GPU_COST_REGISTRATION),
    Scale("CPU study", "cpu", STUDY_FILE, STUDY_STORE, "cpu_seconds_per_step",
          "process-CPU time per training step (one thread, the registered interleaved measurement), in SGD steps",
          cost_registration=COST_REGISTRATION, report="08_cpu_study"),
)


# Chapter 9's study: the records' own process-CPU time is descriptive (it registers no cost comparison).
NOISE_STUDY = Scale("label-noise CPU study", "noise", NOISE_STUDY_FILE, NOISE_STUDY_STORE, "cpu_seconds_per_step",
                    "process-CPU time per training step (one thread, the records' own), in SGD steps",
                    report="09_noise_study", paper="cifar-noise", second_family=NOISE_FLATNESS_REGISTRATION)


NOISE_SCALES: tuple[Scale, ...] = (NOISE_STUDY,)


IMAGENET_STUDY = Scale("ImageNet study", "imagenet", IMAGENET_STUDY_FILE, IMAGENET_STUDY_STORE, "seconds_per_step",
                       GPU_TIME_LABEL, report="05_imagenet", paper="imagenet",
                       column="GPU study")


IMAGENET_SCALES: tuple[Scale, ...] = (IMAGENET_STUDY,)


BOOK_SCALES: tuple[Scale, ...] = SCALES + NOISE_SCALES + IMAGENET_SCALES  # the claims table's scales

