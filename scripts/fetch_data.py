"""Put CIFAR-10 into a folder through torchvision, or check a folder that holds it.

    python scripts/fetch_data.py DIR            # download into DIR unless DIR already holds it intact
    python scripts/fetch_data.py DIR --check    # only read DIR; never downloads

The book's GitHub workflow runs the first where there is internet, then points ``SPARSAM_DATA`` at DIR.
Both read DIR with the package's own loader (:func:`sparsam.experiment.data.load_dataset`: the pack
``cifar10-jpeg.npz`` when DIR holds it, else torchvision's ``cifar-10-batches-py/``, md5-checked) and print
one line per split: its images, classes and source. A download happens only when that check fails, so a
second run downloads nothing. A missing, incomplete or corrupt folder ends in one line ``error: ...``
naming it, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Literal, get_args

from sparsam.experiment import data

Split = Literal["train", "test"]


def describe(folder: Path, split: Split, download: bool) -> str:
    """One line on the ``split`` of CIFAR-10 that the package's loader reads from ``folder``; with ``download``
    torchvision fetches it first where ``folder`` does not hold it intact."""
    try:
        dataset, source = data.load_dataset("cifar10", split, root=folder, download=download)
    except FileNotFoundError as error:  # the loader's message for a missing or corrupt torchvision folder
        raise FileNotFoundError(f"{folder} holds no intact CIFAR-10 (neither cifar10-jpeg.npz nor a complete "
                                f"cifar-10-batches-py/); run `python scripts/fetch_data.py {folder}` where "
                                "there is internet") from error
    return f"{split}: {len(dataset)} images, {source.num_classes} classes in {folder} ({source.note})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the data folder (SPARSAM_DATA of the build)")
    parser.add_argument("--check", action="store_true", help="only check the folder, never download")
    args = parser.parse_args(argv)
    try:
        if args.check and not args.folder.is_dir():
            raise FileNotFoundError(f"{args.folder} is not a folder; run `python scripts/fetch_data.py "
                                    f"{args.folder}` where there is internet")
        for split in get_args(Split):
            print(describe(args.folder, split, download=not args.check), flush=True)
    except (OSError, ValueError) as error:  # missing or corrupt data, a failed download, a wrong pack
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)  # one line, whatever the cause says
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
