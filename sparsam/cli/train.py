"""``python -m sparsam train``: train one configuration (resumes an interrupted run)."""

from __future__ import annotations

import argparse
import json
import sys
import typing
from dataclasses import MISSING, fields
from typing import Any, Callable

HELP = "train one configuration (resumes an interrupted run)"
DESCRIPTION = ("Train one configuration into RUNS_DIR/<run id>/ (config, per-epoch metrics, checkpoint, summary); "
               "started again, it resumes.")
EXTRA = "experiment"


def choices() -> dict[str, tuple[str, ...]]:
    """The choices of each :class:`~sparsam.experiment.config.TrainConfig` field for ``train --help``, from the
    modules that check them."""
    from ..experiment import data, models
    from ..experiment.config import CHOICES
    from ..masks import patterns

    return {**CHOICES, "model": models.MODELS, "dataset": data.DATASETS, "pattern": patterns.PATTERNS,
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


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`~sparsam.experiment.config.TrainConfig` field, its help line the field's
    ``metadata["help"]`` with its choices and default."""
    from ..experiment.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    named = choices()
    for f in fields(TrainConfig):
        default = None if f.default is MISSING else f.default
        listed = f"one of: {', '.join(named[f.name])}; " if f.name in named else ""
        text = f"{f.metadata['help']} ({listed}default: {default})".replace("%", "%%")
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=_parser_for(hints[f.name]),
                            default=default, metavar=f.name.upper(), help=text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
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


def config_of(args: argparse.Namespace) -> Any:
    """The :class:`~sparsam.experiment.config.TrainConfig` of parsed ``train`` options."""
    from ..experiment.config import TrainConfig

    return TrainConfig.from_dict({f.name: getattr(args, f.name) for f in fields(TrainConfig)})


def run(args: argparse.Namespace) -> int:
    import torch

    from ..experiment.train import train

    config = config_of(args)
    summary = train(config, runs_dir=args.runs_dir, run_id=args.run_id, progress=not args.no_progress,
                    wait=args.wait, verbose=True, data_root=args.data_root, download=args.download)
    keys = ("run_id", "final_test_acc", "best_test_acc", "final_train_loss")
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    # one write per line: the ranks share stdout, and print() writes the text and its newline
    # separately, so another rank's line could land between them
    sys.stdout.write(json.dumps({"rank": rank, **{k: summary[k] for k in keys}}) + "\n")
    sys.stdout.flush()
    return 0


def hint(error: BaseException) -> str:
    """``--wait`` for a run folder another process holds."""
    from ..experiment.store import Locked

    return " (--wait waits for it)" if isinstance(error, Locked) else ""
