"""``python -m sparsam register STUDY.yaml --store PILOT``: append a study's pre-registration, written from its
pilot by the rules its file declared (:mod:`sparsam.book.study.registering`)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "append a study's pre-registration, written from its pilot by the file's declared rules"
DESCRIPTION = ("Append to a candidates file (e.g. results/gpu_study/gpu_study.yaml) its registration: the regime its "
               "declared rule chooses from the pilot's records, the seeds its power rule gives, the planned "
               "configurations and comparisons unchanged, the margins of book/margins.yaml and correction: holm "
               "(sparsam.book.study.registering). Refused, with nothing written, if the file is already registered or the "
               "result is not a valid study. Commit it before any SSAM run.")
EXTRA = "book"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_file", metavar="STUDY.yaml", help="the candidates file, not yet a registration")
    parser.add_argument("--store", required=True, metavar="DIR", help="folder of the pilot's records")
    parser.add_argument("--fast-path", default=None, metavar="FILE",
                        help="the fast-path rule's outcome (fast_path.json): the settings it turned off")
    parser.add_argument("--dry-run", action="store_true", help="print the registration, write nothing")


def run(args: argparse.Namespace) -> int:
    from ..book.study.registering import register_command

    if not Path(args.study_file).is_file():
        raise ValueError(f"study file {args.study_file} not found (a candidates file such as "
                         "results/gpu_study/gpu_study.yaml)")
    print(register_command(args.study_file, args.store, args.fast_path, dry_run=args.dry_run), end="")
    if not args.dry_run:
        print(f"appended to {args.study_file}: commit it before any SSAM run of the study")
    return 0
