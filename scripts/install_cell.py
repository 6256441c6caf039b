"""The first code cell of every chapter notebook: what a Colab launch (or a notebook downloaded alone) needs.

    python scripts/install_cell.py            # write the cell into notebooks/[0-9][0-9]_*.ipynb
    python scripts/install_cell.py --check    # only compare; exit 1 naming the notebooks that differ

Colab opens a notebook from GitHub without the rest of the repository and without the package. Where the
notebook does not run in a checkout's ``notebooks/`` folder (no ``profiles.yaml`` beside it), the cell clones
the repository that ``_config.yml`` names (its full history, which the pages read), installs the package from
the clone with the ``experiment`` and ``book`` extras where ``sparsam`` does not import, fetches CIFAR-10 into
the clone's ``data/`` (``scripts/fetch_data.py``, as Binder's ``postBuild`` does) and continues in the clone's
``notebooks/``. Started again (a new runtime, a restarted kernel) it reuses the clone. In a checkout, the
book's build and Binder it does nothing. The cell is hidden in the built book (``remove-cell``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
FIRST_LINE = "# Colab, or this notebook without its repository:"
TAGS = ["remove-cell"]
CELL_ID = "install-sparsam"  # nbformat 4.5 cell id, the same in every chapter
TEMPLATE = FIRST_LINE + """ clone the repository, install sparsam from it and fetch
# CIFAR-10 (as Binder's postBuild does), then run from the clone's notebooks/ folder. In a checkout it does nothing.
import os

if not os.path.isfile("profiles.yaml"):  # not in the notebooks/ folder of a checkout of the book
    import importlib.util
    import subprocess
    import sys

    _checkout = os.path.abspath("sparsam-repository")  # a second run, or a restarted kernel, reuses the clone
    if not os.path.isdir(_checkout):
        subprocess.run(["git", "clone", "--branch", "{branch}", "{url}", _checkout], check=True)
    if importlib.util.find_spec("sparsam") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", _checkout + "[experiment,book]"],
                       check=True)
        sys.path.insert(0, _checkout)  # the running kernel does not read the new install's path entry
        importlib.invalidate_caches()
    os.environ["SPARSAM_DATA"] = os.path.join(_checkout, "data")
    subprocess.run([sys.executable, os.path.join(_checkout, "scripts", "fetch_data.py"), os.environ["SPARSAM_DATA"]],
                   check=True)
    os.chdir(os.path.join(_checkout, "notebooks"))"""


def source(config: dict[str, Any]) -> str:
    """The cell's code for the repository that ``config`` (_config.yml) names."""
    repository = config["repository"]
    return TEMPLATE.replace("{url}", repository["url"]).replace("{branch}", repository["branch"])


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def with_cell(notebook: dict[str, Any], code: str) -> dict[str, Any]:
    """``notebook`` with ``code`` as its first code cell: the one it has replaced, else inserted before the first
    code cell."""
    cells = notebook["cells"]
    at = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    cell = {"cell_type": "code", "execution_count": None, "id": CELL_ID, "metadata": {"tags": TAGS}, "outputs": [],
            "source": code.splitlines(keepends=True)}
    present = "".join(cells[at]["source"]).startswith(FIRST_LINE)
    return {**notebook, "cells": [*cells[:at], cell, *cells[at + present:]]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, never write")
    args = parser.parse_args(argv)
    code = source(yaml.safe_load((ROOT / "_config.yml").read_text()))
    differ = []
    for path in notebooks():
        notebook = json.loads(path.read_text())
        wanted = with_cell(notebook, code)
        if wanted != notebook:
            differ.append(path.name)
            if not args.check:
                path.write_text(json.dumps(wanted, indent=1, ensure_ascii=False) + "\n")
    if args.check and differ:
        print(f"error: the install cell differs in {', '.join(differ)}: run python scripts/install_cell.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
