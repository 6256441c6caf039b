"""Where the book keeps its files: every path is relative to the book's root (:func:`book_root`, the folder that
holds ``_toc.yml`` and ``notebooks/profiles.yaml``), found when a function runs, never at import.

The paths a reader may pass instead (a study file, a store, ...) go through the functions that read them; these
are the book's own defaults, named once here.
"""

from __future__ import annotations

from pathlib import Path

PROFILES_FILE = Path("notebooks/profiles.yaml")  # the notebooks' profiles (sparsam.book.profiles)
MARGINS = Path("book/margins.yaml")  # the claims' declared margins (sparsam.book.stats.margins)
RUNS_STORE = Path("results/runs")  # the profiles' committed run records (notebooks/profiles.yaml's store)
CLAIMS_DIR = Path("results/claims")  # the chapters' saved verdicts (a build output, sparsam.book.claims)
# The CPU study: its pre-registration, records, pilot's records, and its interleaved cost measurement's
# unregistered look (which sized the registration) and registration (sparsam.book.study.cost).
STUDY_FILE = Path("results/study/cpu_study.yaml")
STUDY_STORE = Path("results/study/runs")
PILOT_STORE = Path("results/study/pilot")
COST_PILOT = Path("results/study/cost_side_by_side.json")
COST_REGISTRATION = Path("results/study/cost_registration.yaml")
# The GPU study: its file (a registration once it has configurations), records and cost registration (the study's
# cost comparisons are not decided until that file and its record exist).
GPU_STUDY_FILE = Path("results/gpu_study/gpu_study.yaml")
GPU_STUDY_STORE = Path("results/gpu_study/runs")
GPU_COST_REGISTRATION = Path("results/gpu_study/cost_registration.yaml")
# The ImageNet study, the same way.
IMAGENET_STUDY_FILE = Path("results/imagenet_study/imagenet_study.yaml")
IMAGENET_STUDY_STORE = Path("results/imagenet_study/runs")
# The label-noise study (chapter 9): its candidates file with its registration appended, and its records.
NOISE_STUDY_FILE = Path("results/noise_study/noise_study.yaml")
NOISE_STUDY_STORE = Path("results/noise_study/runs")
# Its second family, the curvature of its core networks: the registration (its records go to the `store` it names).
NOISE_FLATNESS_REGISTRATION = Path("results/noise_study/flatness_registration.yaml")
MARKERS = (Path("_toc.yml"), PROFILES_FILE)  # what makes a folder the book's root


def book_root(start: str | Path | None = None) -> Path:
    """The book's root: the nearest of ``start`` (default: the current directory) and its parents that holds
    ``_toc.yml`` and ``notebooks/profiles.yaml`` (a notebook runs in ``notebooks/``, a script at the root)."""
    here = (Path.cwd() if start is None else Path(start)).absolute()
    for folder in (here, *here.parents):
        if all((folder / marker).is_file() for marker in MARKERS):
            return folder
    raise FileNotFoundError(f"no book root (a folder with _toc.yml and {PROFILES_FILE}) at or above {here}; "
                            "run from inside the book's checkout or pass the paths")
