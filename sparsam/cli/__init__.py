"""Command line: ``python -m sparsam train ...`` (one run), ``sweep GRID.yaml`` (notebooks over a grid) and
``train-grid GRID.yaml`` (runs over a grid), the grids here, as local processes or as Slurm jobs, or what fits
into a time box (``--budget-minutes``, :mod:`sparsam.experiment.chunk`); ``flatness`` measures finished runs'
curvature into records; ``study STUDY.yaml`` prints a pre-registered study's comparisons, registered and
family-wise, and ``register STUDY.yaml`` appends a study's registration written from its pilot.

One module per command (:data:`COMMANDS`), each with ``HELP``, ``DESCRIPTION``, ``EXTRA`` (the extra it needs),
``add_arguments(parser)``, ``run(args) -> int`` and, optionally, ``hint(error) -> str`` (words added to an error); the library functions they call take plain arguments, and
no module outside this package parses a command line. A command module imports its layer only inside those
two functions, so ``python -m sparsam --help`` runs with torch and numpy alone, and only the chosen command's
options are built: a command whose extra is not installed ends in one line naming it
(``error: 'sparsam train' needs the experiment extra: pip install 'sparsam[experiment]'``). A user error (a bad
value, missing data, a run folder in use, a bad grid file) ends in ``error: <message>`` on one line and exit
status 2; ``--traceback`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType
from typing import Sequence

from ..experiment.store import Locked  # torch and the standard library only

COMMANDS = {"train": "train", "sweep": "sweep", "train-grid": "train_grid", "flatness": "flatness",
            "study": "study", "register": "register"}  # command -> its module in this package
# The third-party modules each extra brings (pyproject.toml's optional dependencies, as imported), so that a
# missing one is named by its extra.
EXTRA_MODULES = {
    "experiment": ("torchvision", "tqdm", "yaml", "pandas", "PIL"),
    "book": ("scipy", "matplotlib", "sympy", "papermill", "statsmodels", "nbformat", "nbclient", "myst_nb",
             "IPython", "ipykernel"),
    "cluster": ("submitit",),
}
INCLUDES = {"experiment": {"experiment"}, "book": {"experiment", "book"}, "cluster": {"cluster"}}  # pyproject.toml
# A person's mistake, not a bug: shown as one line. ImportError: a missing optional extra.
USER_ERRORS = (ValueError, OSError, Locked, ImportError)
LAYERS = """the package, in layers (imports only point down):
  sparsam.optim, sparsam.masks   the optimizers and their masks (torch and numpy only)
  sparsam.experiment             configurations, data, models, training, run store, grids, sweeps
  sparsam.book                   statistics, records, claims, figures, the chapters' measurements
  sparsam.cli                    this command line, the only part that imports every layer
runs and records go where --runs-dir / --store say, else $SPARSAM_RUNS / $SPARSAM_STORE, else runs/ and
results/runs/ under the current directory"""


class MissingExtra(Exception):
    """A command needs an extra that is not installed (the module it could not import names which)."""

    def __init__(self, command: str, error: ModuleNotFoundError, extra: str):
        self.command, self.module, self.extra = command, error.name, extra
        super().__init__(f"'sparsam {command}' needs the {extra} extra: pip install 'sparsam[{extra}]'")


def command_module(name: str) -> ModuleType:
    """The module of command ``name`` (one of :data:`COMMANDS`)."""
    return importlib.import_module(f"{__name__}.{COMMANDS[name]}")


def extra_of(error: ModuleNotFoundError, command_extra: str) -> str | None:
    """The extra to install for a command that needs ``command_extra`` and could not import ``error``'s module:
    the command's own where it brings that module (the book extra brings the experiment extra's) or the module
    is of no extra, else the extra that brings it (e.g. cluster's submitit for ``--executor local``); None when
    the missing module is part of sparsam itself (a bug, not an extra)."""
    top = (error.name or "").split(".")[0]
    if top == "sparsam":
        return None
    found = next((extra for extra, modules in EXTRA_MODULES.items() if top in modules), command_extra)
    return command_extra if found in INCLUDES[command_extra] else found


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of ``python -m sparsam``, with the options of ``commands`` (default: every command); the
    others are listed with their help line only. Building a command's options may need its extra
    (:class:`MissingExtra`)."""
    parser = argparse.ArgumentParser(prog="python -m sparsam", description=__doc__.split("\n\n")[0],
                                     epilog=LAYERS, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = command_module(name)
        sub = subparsers.add_parser(name, help=module.HELP, description=module.DESCRIPTION)
        if commands is None or name in commands:
            with _extras(name, module.EXTRA):
                module.add_arguments(sub)
    return parser


class _extras:
    """Turns a missing third-party module inside the block (a ``ModuleNotFoundError``, or an ``ImportError`` it
    caused) into :class:`MissingExtra` for ``command``."""

    def __init__(self, command: str, extra: str):
        self.command, self.extra = command, extra

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, error: BaseException | None, _: object) -> bool:
        missing = error
        while missing is not None and not isinstance(missing, ModuleNotFoundError):  # a library's own ImportError
            missing = missing.__cause__ if isinstance(missing, ImportError) else None  # naming its extra
        if missing is not None:
            extra = extra_of(missing, self.extra)
            if extra is not None:
                raise MissingExtra(self.command, missing, extra) from error
        return False


def _chosen(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first word that is one (the options before it are the parser's own)."""
    return next((word for word in argv if word in COMMANDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = _chosen(argv)
    try:
        parser = build_parser([] if chosen is None else [chosen])
    except MissingExtra as error:
        if "--traceback" in argv[: argv.index(chosen)]:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    module = command_module(args.command)
    try:
        with _extras(args.command, module.EXTRA):
            return module.run(args)
    except (*USER_ERRORS, MissingExtra) as error:
        if args.traceback:
            raise
        hint = getattr(module, "hint", lambda error: "")(error)
        print(f"error: {' '.join(str(error).split())}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
