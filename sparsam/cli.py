"""Command line: ``python -m sparsam train ...`` (one run), ``sweep GRID.yaml`` (notebooks over a grid) and
``train-grid GRID.yaml`` (runs over a grid), the grids here, as local processes or as Slurm jobs, or what fits
into a time box (``--budget-minutes``, :mod:`sparsam.experiment.chunk`);
``study STUDY.yaml`` prints a pre-registered study's comparisons, registered and family-wise, and
``register STUDY.yaml`` appends a study's registration written from its pilot.

Each subcommand is a pair of functions registered in :data:`COMMANDS`: ``add(subparsers)`` declares
its parser and ``run(args) -> int`` does the work. A user error (a bad value, missing data, a run
folder in use, a bad grid file) ends in ``error: <message>`` on one line and exit status 2;
``--traceback`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path
from dataclasses import MISSING, fields
from typing import Any, Callable, Sequence

import torch

from .book import curvature
from .experiment import chunk, data, grid
from .masks import patterns
from .experiment import models, store
from .experiment.config import CHOICES, TrainConfig
from .experiment.jobs import add_executor_arguments, options_from_args

# The choices of each TrainConfig field for `train --help` (each field's help line is its metadata["help"]),
# from the modules that check them.
_CHOICES = {**CHOICES, "model": models.MODELS, "dataset": data.DATASETS, "pattern": patterns.PATTERNS,
            "augment": tuple(data.AUGMENTATIONS)}


def _parser_for(hint: Any) -> Callable[[str], Any]:
    """argparse type of a TrainConfig field: int, float, str or bool; 'none' gives None for optionals."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    base = args[0]
    optional = type(None) in typing.get_args(hint)

    def parse(text: str) -> Any:
        if optional and text.lower() == "none":
            return None
        if base is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
            return text.lower() in ("true", "1", "yes")
        return base(text)

    parse.__name__ = getattr(base, "__name__", "value")
    return parse


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        default = None if f.default is MISSING else f.default
        choices = f"one of: {', '.join(_CHOICES[f.name])}; " if f.name in _CHOICES else ""
        text = f"{f.metadata['help']} ({choices}default: {default})".replace("%", "%%")
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=_parser_for(hints[f.name]),
                            default=default, metavar=f.name.upper(), help=text)


def add_train(commands: Any) -> None:
    parser = commands.add_parser("train", help="train one configuration (resumes an interrupted run)",
                                 description="Train one configuration into RUNS_DIR/<run id>/ (config, per-epoch "
                                             "metrics, checkpoint, summary); started again, it resumes.")
    _add_config_arguments(parser)
    parser.add_argument("--runs-dir", default=None, help="where the run folders go (default: $SPARSAM_RUNS, else "
                                                         "runs/ under the current directory)")
    parser.add_argument("--run-id", default=None, help="name of the run folder (default: derived from the config)")
    parser.add_argument("--wait", action="store_true", help="if another process is writing the run folder, wait "
                                                            "for it instead of failing")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="folder with the data packs or torchvision's cifar-10-batches-py/ (default: "
                             "$SPARSAM_DATA)")
    parser.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10/100 into "
                                                                "--data-root (default ~/.cache/sparsam/torchvision)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (shown only on a terminal)")


def run_train(args: argparse.Namespace) -> int:
    config = TrainConfig.from_dict({f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    from .experiment.train import train

    summary = train(config, runs_dir=args.runs_dir, run_id=args.run_id, progress=not args.no_progress,
                    wait=args.wait, verbose=True, data_root=args.data_root, download=args.download)
    keys = ("run_id", "final_test_acc", "best_test_acc", "final_train_loss")
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    # one write per line: the ranks share stdout, and print() writes the text and its newline
    # separately, so another rank's line could land between them
    sys.stdout.write(json.dumps({"rank": rank, **{k: summary[k] for k in keys}}) + "\n")
    sys.stdout.flush()
    return 0


def add_sweep(commands: Any) -> None:
    parser = commands.add_parser("sweep", help="run a notebook over a parameter grid with papermill",
                                 description="Run a notebook over the parameter sets of a YAML grid (needs the "
                                             "book extra); finished points are skipped, failed ones run again.")
    parser.add_argument("grid", help="YAML file: notebook, parameters (fixed) and grid (lists to combine)")
    parser.add_argument("--results-dir", default="results/sweeps",
                        help="where executed notebooks and point records go (default: results/sweeps/ under the "
                             "current directory, from which a relative notebook path of the grid is read too)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check every point and list its status (to run, finished, failed, running, interrupted)")
    add_executor_arguments(parser)


def run_sweep(args: argparse.Namespace) -> int:
    from .experiment.sweep import run_sweep

    return run_sweep(args.grid, results_dir=args.results_dir, dry_run=args.dry_run, options=options_from_args(args),
                     wait=not args.no_wait)


def add_study(commands: Any) -> None:
    parser = commands.add_parser(
        "study", help="decide a pre-registered study's comparisons from its records (registered and family-wise)",
        description="Print every comparison of a pre-registered study (e.g. results/study/cpu_study.yaml) decided "
                    "from its records: mean paired difference, 95%% t-interval, simultaneous (Bonferroni) "
                    "interval, one-sided p-value against the margin, the registered status and the family-wise "
                    "status (Holm's step-down at 5%%, premise rule).")
    parser.add_argument("study_file", metavar="STUDY.yaml", help="the pre-registration")
    parser.add_argument("--store", default=None, metavar="DIR",
                        help="folder of the study's records (default: results/study/runs)")
    parser.add_argument("--csv", action="store_true", help="print the table as CSV (numbers unrounded) on stdout")


def _cost_registration_file(path: Path) -> Path:
    """Where the registration of the interleaved cost measurement of the study at ``path`` lives: beside it."""
    from .book.layout import COST_REGISTRATION

    return path.parent / COST_REGISTRATION.name


def _registered_cost(path: Path, registered: Any) -> Any:
    """The claims rows of the registered interleaved cost measurement of the study at ``path``: the
    ``cost_registration.yaml`` beside it (as ``results/study/`` and ``results/gpu_study/`` hold them) when it
    names this study and its record exists; else None, and the cost comparisons are then inconclusive
    (:func:`sparsam.book.study_cost.unmeasured_rows`)."""
    from .book import study_cost

    file = _cost_registration_file(path)
    if not file.is_file():
        return None
    registration = study_cost.load_registration(file, study=registered)
    if registration.study_path.resolve() != path.resolve() or not registration.record.is_file():
        return None
    return study_cost.cost_rows(registration, study_cost.read(registration.record))


def run_study(args: argparse.Namespace) -> int:
    from .book import study
    from .book.layout import STUDY_STORE, book_root
    from .book.study_cost import unmeasured_rows
    from .experiment.results import load_all

    path = Path(args.study_file)
    if not path.is_file():
        raise ValueError(f"study file {path} not found (a pre-registration such as results/study/cpu_study.yaml)")
    registered = study.load_study(path)
    store = Path(args.store) if args.store is not None else book_root(path.parent) / STUDY_STORE
    if not store.is_dir():
        raise ValueError(f"--store {store} is not a folder of records")
    records = load_all(store)
    frame = study.study_frame(registered, records)
    cost = _registered_cost(path, registered)
    decided = study.decide_comparisons(registered, frame, records, resamples=0,
                                       cost=cost if cost is not None else unmeasured_rows(registered))
    table = study.audit_frame(registered, decided)
    if args.csv:
        table.to_csv(sys.stdout, index=False)
        return 0
    m, alpha = len(table), 1 - float(registered.margins["level"])
    when = ("registered" if registered.correction == "holm" else
            f"{study.ADDED}: the registration named no correction")
    print(f"{path}: {m} comparisons from {len(records)} records in {store}")
    file = _cost_registration_file(path).resolve()
    root = book_root(path.parent).resolve()
    shown = file.relative_to(root).as_posix() if file.is_relative_to(root) else file.as_posix()
    print("cost: " + (f"the registered interleaved measurement ({shown})" if cost is not None
                      else "not decided: no registered interleaved measurement names this study (the records' "
                           "own timings are descriptive)"))
    print(f"family-wise status: Holm's step-down at family-wise {alpha:.0%} over the {m} comparisons and the "
          f"premise rule ({when}); one-sided p: of the claim against its margin (near 1: the data point the "
          "other way)")
    shown = table.assign(
        mean=[_number(v, u) for v, u in zip(table["mean"], table["unit"])],
        interval=[_interval(lo, hi, u) for lo, hi, u in zip(table["low"], table["high"], table["unit"])],
        simultaneous=[_interval(lo, hi, u) for lo, hi, u in zip(table["sim_low"], table["sim_high"], table["unit"])],
        p_value=[f"{p:.4f}" if p == p else "–" for p in table["p_value"]])
    columns = {"comparison": "comparison", "registration": "registration", "n": "n", "mean": "mean",
               "interval": f"{1 - alpha:.0%} interval", "simultaneous": f"simultaneous ({1 - alpha / m:.4f})",
               "p_value": "one-sided p", "status": "registered status", "family_status": "family-wise status"}
    left = {name: f"{{:<{shown[name].str.len().max()}}}".format for name in ("comparison", "registration")}
    print(shown[list(columns)].to_string(index=False, header=list(columns.values()), formatters=left,
                                          justify="left"))
    return 0


def _number(value: float, unit: str) -> str:
    if value != value:
        return "–"
    return f"×{value:.3f}" if unit == "ratio" else f"{value:+.2f}"


def _interval(low: float, high: float, unit: str) -> str:
    return "–" if low != low else f"[{_number(low, unit)}, {_number(high, unit)}]"


def add_register(commands: Any) -> None:
    parser = commands.add_parser(
        "register", help="append a study's pre-registration, written from its pilot by the file's declared rules",
        description="Append to a candidates file (e.g. results/gpu_study/gpu_study.yaml) its registration: the "
                    "regime its declared rule chooses from the pilot's records, the seeds its power rule gives, "
                    "the planned configurations and comparisons unchanged, the margins of book/margins.yaml and "
                    "correction: holm (sparsam.book.registration). Refused, with nothing written, if the file is "
                    "already registered or the result is not a valid study. Commit it before any SSAM run.")
    parser.add_argument("study_file", metavar="STUDY.yaml", help="the candidates file, not yet a registration")
    parser.add_argument("--store", required=True, metavar="DIR", help="folder of the pilot's records")
    parser.add_argument("--fast-path", default=None, metavar="FILE",
                        help="the fast-path rule's outcome (fast_path.json): the settings it turned off")
    parser.add_argument("--dry-run", action="store_true", help="print the registration, write nothing")


def run_register(args: argparse.Namespace) -> int:
    from .book.registration import register_command

    if not Path(args.study_file).is_file():
        raise ValueError(f"study file {args.study_file} not found (a candidates file such as "
                         "results/gpu_study/gpu_study.yaml)")
    print(register_command(args.study_file, args.store, args.fast_path, dry_run=args.dry_run), end="")
    if not args.dry_run:
        print(f"appended to {args.study_file}: commit it before any SSAM run of the study")
    return 0


def add_train_grid(commands: Any) -> None:
    """``train-grid``: the grid's options (:func:`sparsam.experiment.grid.add_command`) and a time-boxed chunk's
    (:func:`sparsam.experiment.chunk.add_arguments`)."""
    chunk.add_arguments(grid.add_command(commands))


def run_train_grid(args: argparse.Namespace) -> int:
    """``train-grid``: a grid file, or a study's pre-registration read by the book (:mod:`sparsam.book.study`);
    with ``--budget-minutes``, a time-boxed chunk of it (:mod:`sparsam.experiment.chunk`)."""
    import yaml

    path = Path(args.grid)
    if not path.is_file():
        raise ValueError(f"grid: no file {path}")
    configs = None
    if grid.is_study_file(yaml.safe_load(path.read_text())):
        from .book.study import load_study

        configs = load_study(path).configs()
    if args.budget_minutes is not None:
        return chunk.run_command(args, configs=configs)
    chunk.check_no_chunk_options(args)
    return grid.run_command(args, configs=configs)


COMMANDS: dict[str, tuple[Callable[[Any], None], Callable[[argparse.Namespace], int]]] = {
    "train": (add_train, run_train),
    "sweep": (add_sweep, run_sweep),
    "train-grid": (add_train_grid, run_train_grid),
    "flatness": (curvature.add_command, curvature.run_command),
    "study": (add_study, run_study),
    "register": (add_register, run_register),
}
# A person's mistake, not a bug: shown as one line. ImportError: a missing optional extra.
USER_ERRORS = (ValueError, OSError, store.Locked, ImportError)


LAYERS = """the package, in layers (imports only point down):
  sparsam.optim, sparsam.masks   the optimizers and their masks (torch and numpy only)
  sparsam.experiment             configurations, data, models, training, run store, grids, sweeps
  sparsam.book                   statistics, records, claims, plots, the chapters' measurements
  sparsam.cli                    this command line, the only part that imports every layer
runs and records go where --runs-dir / --store say, else $SPARSAM_RUNS / $SPARSAM_STORE, else runs/ and
results/runs/ under the current directory"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sparsam", description=__doc__.split("\n\n")[0],
                                     epilog=LAYERS, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except USER_ERRORS as error:
        if args.traceback:
            raise
        hint = " (--wait waits for it)" if isinstance(error, store.Locked) and args.command == "train" else ""
        print(f"error: {' '.join(str(error).split())}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
