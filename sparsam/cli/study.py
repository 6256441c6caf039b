"""``python -m sparsam study STUDY.yaml``: a pre-registered study's comparisons decided from its own files
(:func:`sparsam.book.audit.audit`), from any folder."""

from __future__ import annotations

import argparse
import sys

HELP = "decide a pre-registered study's comparisons from its records (each rule's provenance, both readings)"
DESCRIPTION = ("Print every comparison of a pre-registered study (e.g. results/study/cpu_study.yaml) decided from its "
               "records: mean paired difference, 95% t-interval, simultaneous (Bonferroni) interval, one-sided "
               "p-value against the margin, the status and the family-wise status (Holm's step-down at 5%, premise "
               "rule), the provenance of each comparison's rule (registered, or added after the runs with its date "
               "and reason, and beside a rule that replaced a registered one, the registered rule's reading) and the "
               "scale of the records that decided it. Everything is read from the study's folder, so it runs "
               "anywhere: its records, its cost registration and the margins the file holds.")
EXTRA = "book"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_file", metavar="STUDY.yaml", help="the pre-registration")
    parser.add_argument("--store", default=None, metavar="DIR",
                        help="folder of the study's records (default: runs/ beside the study file)")
    parser.add_argument("--margins", default=None, metavar="FILE",
                        help="the margins to decide by, e.g. the book's book/margins.yaml, against which the study's "
                             "pinned margins are checked (default: the margins the study file holds)")
    parser.add_argument("--csv", action="store_true", help="print the table as CSV (numbers unrounded) on stdout")


def run(args: argparse.Namespace) -> int:
    from ..book.audit import audit

    found = audit(args.study_file, store=args.store, margins=args.margins)
    if args.csv:
        found.table.to_csv(sys.stdout, index=False)
    else:
        print("\n".join(found.lines()))
    return 0
