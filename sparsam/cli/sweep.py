"""``python -m sparsam sweep GRID.yaml``: run a notebook over a parameter grid with papermill."""

from __future__ import annotations

import argparse

from .options import add_executor_arguments, executor_options

HELP = "run a notebook over a parameter grid with papermill"
DESCRIPTION = ("Run a notebook over the parameter sets of a YAML grid (needs the book extra); finished points are "
               "skipped, failed ones run again.")
EXTRA = "book"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("grid", help="YAML file: notebook, parameters (fixed) and grid (lists to combine)")
    parser.add_argument("--results-dir", default="results/sweeps",
                        help="where executed notebooks and point records go (default: results/sweeps/ under the "
                             "current directory, from which a relative notebook path of the grid is read too)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check every point and list its status (to run, finished, failed, running, interrupted)")
    add_executor_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..experiment.sweep import run_sweep

    return run_sweep(args.grid, results_dir=args.results_dir, dry_run=args.dry_run, options=executor_options(args),
                     wait=not args.no_wait)
