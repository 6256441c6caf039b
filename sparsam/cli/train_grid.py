"""``python -m sparsam train-grid GRID.yaml``: train a grid of configurations (or a study's pre-registration) into
the results store, here, as local processes or as Slurm jobs (:mod:`sparsam.experiment.grid`), or, with
``--budget-minutes``, what fits into a time box (:mod:`sparsam.experiment.chunk`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .options import add_executor_arguments, executor_options

HELP = "train a grid of configurations into the results store (no notebook)"
DESCRIPTION = ("Train every configuration of a YAML grid that has no record in the store yet, here, as local "
               "processes or as Slurm jobs, or, with --budget-minutes, what fits into a time box; the notebooks then "
               "read the records.")
EXTRA = "experiment"
# The executor options a time-boxed chunk does not take, at their defaults (it trains plain processes here).
NOT_IN_A_CHUNK: dict[str, Any] = {"executor": "inline", "partition": None, "gpus_per_job": 0, "cpus_per_job": None,
                                  "mem": None, "time": None, "slurm_arg": [], "no_wait": False}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..experiment.chunk import STARTUP_SECONDS

    parser.add_argument("grid", help="YAML file: parameters (TrainConfig values fixed for every point) and grid "
                                     "(lists of values, combined as a product)")
    parser.add_argument("--store", default=None,
                        help="where the records go (default: $SPARSAM_STORE, else results/runs/ under the current "
                             "directory; the book reads results/runs/ at its root)")
    parser.add_argument("--runs-dir", default=None,
                        help="where the run folders (checkpoints, job status and logs) go (default: $SPARSAM_RUNS, "
                             "else runs/ under the current directory); on a cluster, a folder every node sees")
    parser.add_argument("--dry-run", action="store_true",
                        help="list each configuration's status; with --executor slurm, show the sbatch script")
    add_executor_arguments(parser)
    group = parser.add_argument_group(
        "time-boxed chunk", "train what fits into a few minutes, e.g. on a borrowed GPU machine (plain processes, "
                            "no submitit; --jobs N at a time, all sharing CUDA_VISIBLE_DEVICES). Sent to a machine "
                            "whose copy of the code has no .git: SPARSAM_GIT_COMMIT=<hash> SPARSAM_DATA=shared/data "
                            "python -m sparsam train-grid STUDY.yaml --store results/gpu_study/runs --runs-dir "
                            "/tmp/runs --budget-minutes 9 --jobs 2 --pack $OUT/records.tar.gz")
    group.add_argument("--budget-minutes", type=float, default=None, metavar="M",
                       help="train the configurations without a record, in grid order, and start each only if its "
                            "estimated wall time fits into what is left of M minutes from the command's start; runs "
                            "still going at the end are stopped (resumable). The estimate: the largest "
                            "wall_seconds_this_process among the store's records of the same configuration with "
                            "another seed, else --run-minutes, plus %g s to start a process; a run without one is "
                            "not started. With --jobs N, a record's time is the one measured beside the runs of its "
                            "own chunk: use records made N at a time" % STARTUP_SECONDS)
    group.add_argument("--run-minutes", type=float, default=None, metavar="X",
                       help="with --budget-minutes: the wall time of a run whose configuration has no record with "
                            "another seed in the store (an explicit estimate, e.g. from a pilot)")
    group.add_argument("--pack", default=None, metavar="PATH.tar.gz",
                       help="with --budget-minutes: write the records this chunk finished into one gzip'd tar, named "
                            "relative to the store (tar xzf PATH.tar.gz -C STORE restores them), and a summary of "
                            "the chunk (budget, runs, device, torch, commit) beside it as PATH.chunk.json")


def run(args: argparse.Namespace) -> int:
    """A grid file, or a study's pre-registration read by the book (:func:`sparsam.book.study.load_study`, its runs
    seed by seed: every configuration at its first seed, then at the next); with ``--budget-minutes``, a time-boxed
    chunk of it."""
    started = time.monotonic()
    from ..experiment import chunk, grid, yaml_text

    path = Path(args.grid)
    if not path.is_file():
        raise ValueError(f"grid: no file {path}")
    configs = None
    if grid.is_study_file(yaml_text.read(path)):
        from ..book.study import load_study

        configs = load_study(path).configs(order="seed")  # seed by seed: a study stopped part-way holds whole seeds
    if args.budget_minutes is not None:
        given = [name for name, default in NOT_IN_A_CHUNK.items() if getattr(args, name) != default]
        if given:
            options = ", ".join("--" + name.replace("_", "-") for name in given)
            raise ValueError(f"budget-minutes trains plain processes on this machine, --jobs N at a time; not with "
                             f"{options}")
        configs = grid.load_train_grid(path) if configs is None else configs
        return chunk.run_chunk(configs, args.budget_minutes, store=args.store, runs_dir=args.runs_dir, jobs=args.jobs,
                               run_minutes=args.run_minutes, archive=args.pack, dry_run=args.dry_run, started=started)
    given = [f"--{name.replace('_', '-')}" for name in ("run_minutes", "pack") if getattr(args, name) is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: for --budget-minutes only (a time-boxed chunk)")
    return grid.run_train_grid(path, executor_options(args), store=args.store, runs_dir=args.runs_dir,
                               dry_run=args.dry_run, wait=not args.no_wait, configs=configs)
