"""Rewrite the run records under the given folders with their metrics as columns (one line per field), the
layout every store now writes (:func:`sparsam.experiment.record_schema.run_record_text`).

Each record is read, rewritten only if that changes its bytes, and read back: a record whose rewritten
form does not read back to the same record is left as it was and named. Nothing in a record changes but
its layout, so its provenance, its staleness and every number drawn from it stay as they were::

    python scripts/compact_records.py results/study/runs results/noise_study/pilot
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from sparsam.experiment.record_schema import read_record, run_record_text
from sparsam.experiment.results import write_record


def compact(path: Path) -> bool:
    """Rewrite the run record ``path`` as columns; whether its bytes changed. ``ValueError`` (nothing written)
    where the new layout would not read back to the same record."""
    record = read_record(path, "run")
    text = run_record_text(record)
    if text == path.read_text():
        return False
    with tempfile.TemporaryDirectory() as scratch:
        trial = Path(scratch) / path.name
        trial.write_text(text)
        if read_record(trial, "run") != record:
            raise ValueError(f"{path}: its columns would not read back to the same record; left as it was")
    write_record(path, record)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders of run records (<run id>.json)")
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not folder.is_dir():
            parser.error(f"folders: {folder} is not a folder of run records")
    changed = [p for folder in args.folders for p in sorted(folder.glob("*.json")) if compact(p)]
    print(f"{len(changed)} records rewritten as columns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
