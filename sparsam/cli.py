"""Command line: ``python -m sparsam train ...`` (one run) and ``python -m sparsam sweep GRID.yaml``."""

from __future__ import annotations

import argparse
import json
import sys
import typing
from dataclasses import MISSING, fields
from typing import Any, Callable, Sequence

import torch

from .config import OPTIMIZERS, TrainConfig


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
        extra = f" (one of {', '.join(OPTIMIZERS)})" if f.name == "optimizer" else ""
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=_parser_for(hints[f.name]),
                            default=default, help=f"default: {default}{extra}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sparsam", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train one configuration (resumes an interrupted run)",
                                description="Train one configuration; TrainConfig documents every option.")
    _add_config_arguments(train)
    train.add_argument("--runs-dir", default="runs", help="where runs/<run_id>/ folders live")
    train.add_argument("--run-id", default=None, help="folder name (default: derived from the config)")
    train.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    sweep = commands.add_parser("sweep", help="run notebooks over a parameter grid with papermill",
                                description="Run notebooks over the parameter sets of a YAML grid.")
    sweep.add_argument("grid", help="YAML file: notebook, parameters (fixed) and grid (lists to combine)")
    sweep.add_argument("--results-dir", default="results/sweeps", help="where executed notebooks and metrics go")
    sweep.add_argument("--dry-run", action="store_true", help="list what would run and what is finished")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
        try:
            config = TrainConfig.from_dict(values)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        from .train import train

        summary = train(config, runs_dir=args.runs_dir, run_id=args.run_id, progress=not args.no_progress)
        keys = ("run_id", "final_test_acc", "best_test_acc", "final_train_loss")
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        # one write per line: the ranks share stdout, and print() writes the text and its newline
        # separately, so another rank's line could land between them
        sys.stdout.write(json.dumps({"rank": rank, **{k: summary[k] for k in keys}}) + "\n")
        sys.stdout.flush()
        return 0
    from .sweep import run_sweep

    return run_sweep(args.grid, results_dir=args.results_dir, dry_run=args.dry_run)
