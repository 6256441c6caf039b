"""``python -m sparsam flatness``: measure the curvature of finished runs into flatness records (notebook 6)."""

from __future__ import annotations

import argparse

HELP = "measure the curvature of finished runs into flatness records (notebook 6)"
DESCRIPTION = ("Measure notebook 6's networks (its profile's configurations, e.g. the CPU study's SGD, SAM, SSAM-F "
               "and SSAM-D) whose run in RUNS_DIR is finished and whose flatness record is missing, was made with "
               "other settings or lacks the scale-free measures (the Hessian in normalised weights); the settings "
               "come from notebooks/profiles.yaml.")
EXTRA = "book"


def shard(text: str) -> tuple[int, int]:
    """``"K/N"`` as ``(K, N)`` with ``0 <= K < N``; anything else is an argparse error naming the option."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be K/N with integers 0 <= K < N, got {text!r}") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"must be K/N with integers 0 <= K < N, got {text!r}")
    return k, n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..book.profiles import PROFILES

    parser.add_argument("--runs-dir", default=None, help="folder of the finished runs (<run id>/checkpoint.pt; "
                                                         "default: $SPARSAM_RUNS, else runs/ under the current "
                                                         "directory)")
    parser.add_argument("--registration", default=None,
                        help="a study's registered curvature family (e.g. results/noise_study/"
                             "flatness_registration.yaml): measure its networks with its settings into its store "
                             "instead of notebook 6's (never trains; --profile and --train-missing do not apply)")
    parser.add_argument("--profile", default="cpu-study", choices=PROFILES,
                        help="notebook 6's profile whose networks and settings are used (default: cpu-study)")
    parser.add_argument("--train-missing", action="store_true",
                        help="train (or resume) into RUNS_DIR each run a missing or incomplete record needs and "
                             "RUNS_DIR lacks, then measure it (the CPU study's: 15-30 CPU-minutes each)")
    parser.add_argument("--store", default=None, help="folder of the flatness records (default: the profile's "
                                                      "`flatness_store`, e.g. results/study/flatness, under the "
                                                      "current directory)")
    parser.add_argument("--shard", default="0/1", type=shard,
                        help="K/N: only the networks K, K+N, K+2N, ... of the profile's list (0 <= K < N), so that N "
                             "processes can share the work (default: 0/1, all of them)")


def run(args: argparse.Namespace) -> int:
    from ..book.curvature import measure_profile

    if args.registration is not None:
        from ..book.study import flatness_family, load_flatness_registration
        from ..experiment.store import Workspace

        if args.train_missing:
            raise SystemExit("error: --train-missing does not apply to --registration (a registered family measures "
                             "finished runs only)")
        registration = load_flatness_registration(args.registration)
        flatness_family.measure(registration, Workspace.resolve(runs=args.runs_dir).runs, records=args.store,
                                shard=args.shard)
        return 0
    measure_profile(args.profile, runs_dir=args.runs_dir, store=args.store, shard=args.shard,
                    train_missing=args.train_missing)
    return 0
