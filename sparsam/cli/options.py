"""Options shared by the commands that run points of a grid (``sweep``, ``train-grid``): where they run."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..experiment.jobs import ExecutorOptions


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of :class:`sparsam.experiment.jobs.ExecutorOptions`, plus ``--no-wait``, on a command's
    parser."""
    from ..experiment.jobs import EXECUTORS  # the standard library only: no extra needed

    group = parser.add_argument_group("executor", "where the points run (submitit)")
    group.add_argument("--executor", choices=EXECUTORS, default="inline",
                       help="inline: one after the other here (default); local: separate processes; slurm: jobs")
    group.add_argument("--jobs", type=int, default=1,
                       help="local (and train-grid --budget-minutes): most points running at a time (default 1)")
    group.add_argument("--partition", help="slurm: the partition")
    group.add_argument("--gpus-per-job", type=int, default=0,
                       help="GPUs of each job; more than one trains under torchrun, one process per GPU")
    group.add_argument("--cpus-per-job", type=int, help="slurm: CPU cores of each job")
    group.add_argument("--mem", help="slurm: memory of each job, e.g. 64G")
    group.add_argument("--time", help="slurm: time limit of each job (MM, HH:MM:SS or D-HH:MM:SS; required); "
                                      "local: timeout (default 7 days)")
    group.add_argument("--slurm-arg", action="append", default=[], metavar="KEY=VALUE",
                       help="slurm: any other sbatch option, e.g. account=abc or qos=high (repeatable)")
    group.add_argument("--no-wait", action="store_true",
                       help="submit and return; running the same command again collects the finished points")


def executor_options(args: argparse.Namespace) -> ExecutorOptions:
    """The :class:`~sparsam.experiment.jobs.ExecutorOptions` of parsed :func:`add_executor_arguments` options
    (ValueError if bad)."""
    from ..experiment.jobs import ExecutorOptions, parse_slurm_arg

    if args.no_wait and args.executor == "inline":
        raise ValueError("no-wait applies to executors 'local' and 'slurm', not 'inline'")
    return ExecutorOptions(executor=args.executor, jobs=args.jobs, partition=args.partition,
                           gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job, mem=args.mem,
                           time=args.time, slurm_args=tuple(parse_slurm_arg(a) for a in args.slurm_arg))
