"""Size and coupling of the book layer (issue 29): lines and modules of sparsam/book, the imports between its
modules (read from every module's syntax tree, lazy imports included, as tests/test_layers.py reads them),
private names imported across modules, where a YAML file is parsed (and where a study file is: every parse site
of sparsam/book but those of the book's own settings, book/margins.yaml and book/profiles.yaml), the files that
name a claim of the book's table, and the trail of one claim (:data:`FOLLOWED`): every file outside the layers
below the book and the records that names it, i.e. the files a new claim like it has to change.

    python scripts/measure_book.py               # one line per measure, of this checkout
    python scripts/measure_book.py ROOT          # of another tree (e.g. `git worktree add /tmp/past b2789d7`)
    python scripts/measure_book.py ROOT --json   # the measures as one JSON object
    python scripts/measure_book.py /tmp/before . --json > results/measure_book.json   # several trees: a list
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

# the modules that parse the book's own settings files (book/margins.yaml, book/profiles.yaml), not a study file
SETTINGS_READERS = ("sparsam.book.stats", "sparsam.book.profiles", "sparsam.book.registry")
# the claims of the book's table (the claims table of chapter 7), by key
CLAIM_KEYS = ("acc", "sam_sgd", "radius", "patterns", "forms", "imagenet", "convergence", "flat", "cost",
              "cost_aware")
# the claim whose trail is followed: its key and the rows (comparisons) that decide it; a key and rows whose names
# are used for nothing else, so that every file naming them names the claim
FOLLOWED = ("cost_aware", ("cost_time_cost_aware_vs_sam",))
# where no claim can be named: the layers below the book (tests/test_layers.py) and their tests, the run records,
# build outputs; the claims snapshot is written by scripts/snapshot_claims.py, not by hand; this measure's own files
NOT_A_TRAIL = ("sparsam/optim/", "sparsam/masks/", "sparsam/experiment/", "tests/optim/", "tests/masks/",
               "tests/experiment/", "results/", "_build/", ".venv/", ".git/", "tests/book/claims_snapshot.json",
               "scripts/measure_book.py", "tests/test_measure_book.py")
TEXT_SUFFIXES = (".py", ".ipynb", ".md", ".yaml", ".yml", ".toml", ".json", ".cfg", ".sh", ".txt")


def _layers(root: Path) -> ModuleType:
    """``root``'s tests/test_layers.py (its MODULES and import GRAPH of ``root``'s package), loaded by path."""
    spec = importlib.util.spec_from_file_location(f"test_layers_of_{abs(hash(str(root)))}",
                                                  root / "tests" / "test_layers.py")
    assert spec is not None and spec.loader is not None, root
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _texts(root: Path, paths: list[Path]) -> dict[str, str]:
    """Text of each file by its path relative to ``root``; a notebook's as its cells' sources (no outputs)."""
    texts = {}
    for path in paths:
        name = path.relative_to(root).as_posix()
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            texts[name] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] in ("code", "markdown"))
        else:
            texts[name] = path.read_text(errors="replace")
    return texts


def claim_files(root: Path) -> dict[str, list[str]]:
    """Per claim key, the modules of sparsam/book, the notebooks and the book settings that name it (as a quoted key, a
    mapping key of a YAML file or in a glued name ``claim_<key>_...``): where a claim is defined."""
    texts = {p.relative_to(root).as_posix(): p.read_text() for p in (root / "sparsam" / "book").rglob("*.py")}
    for p in (root / "notebooks").glob("*.ipynb"):
        cells = json.loads(p.read_text())["cells"]
        texts[p.relative_to(root).as_posix()] = "\n".join("".join(c["source"]) for c in cells
                                                           if c["cell_type"] == "code")
    for p in (root / "book").glob("*.yaml"):
        texts[p.relative_to(root).as_posix()] = p.read_text()
    out = {}
    for key in CLAIM_KEYS:
        pattern = re.compile(rf"[\"']{key}[\"']|^\s*{key}:|claim_{key}_", re.M)
        out[key] = sorted(name for name, text in texts.items() if pattern.search(text))
    return out


def claim_trail(root: Path, key: str, rows: tuple[str, ...]) -> list[str]:
    """The files of ``root`` (outside :data:`NOT_A_TRAIL`) that name the claim ``key`` or a row deciding it: the key
    quoted, as a YAML mapping key or in a glued name (``claim_<key>_...``, ``status_<scale>_<key>``), a row as a
    whole word. Sorted paths relative to ``root``."""
    pattern = re.compile(rf"[\"']{key}[\"']|^\s*{key}:|\bclaim_{key}_|\bstatus_[a-z0-9]+_{key}\b|"
                         + "|".join(rf"(?<![\w-]){re.escape(row)}(?![\w-])" for row in rows), re.M)
    paths = [p for p in root.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES
             and not p.relative_to(root).as_posix().startswith(NOT_A_TRAIL)]
    return sorted(name for name, text in _texts(root, paths).items() if pattern.search(text))


def _commit(root: Path) -> tuple[str | None, bool | None]:
    """The commit checked out at ``root`` and whether its tracked files differ from it; None, None outside git."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if head.returncode != 0:
        return None, None
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                            text=True)
    return head.stdout.strip(), bool(status.stdout.strip())


def measure(root: Path) -> dict[str, Any]:
    """Every measure of the tree ``root``, by name, with the commit it holds (``commit``, ``dirty``)."""
    commit, dirty = _commit(root)
    layers = _layers(root)
    modules: dict[str, Path] = layers.MODULES
    book = {name: path for name, path in modules.items() if name.startswith("sparsam.book")}
    edges = sorted((a, b) for a in book for b in layers.GRAPH[a] if b in book and not a.startswith(b + "."))
    parsed, private, argparse_users = [], [], []
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("yaml.safe_load", "yaml.load"):
                parsed.append(f"{name}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("sparsam")):
                private += [f"{name} <- {a.name}" for a in node.names if a.name.startswith("_")]
        if any(isinstance(n, (ast.Import, ast.ImportFrom)) and "argparse" in ast.unparse(n) for n in ast.walk(tree)):
            argparse_users.append(name)
    study = [p for p in parsed if p.startswith("sparsam.book") and not p.startswith(SETTINGS_READERS)]
    key, rows = FOLLOWED
    trail = claim_trail(root, key, rows)
    return {"commit": commit, "dirty": dirty,
            "book_modules": len(book), "book_lines": sum(len(p.read_text().splitlines()) for p in book.values()),
            "book_imports": len(edges),
            "package_modules": len(modules),
            "package_lines": sum(len(p.read_text().splitlines()) for p in modules.values()),
            "yaml_parse_sites": parsed, "study_parse_sites": study,
            "study_parse_modules": len({p.split(":")[0] for p in study}),
            "claim_files": claim_files(root), "followed_claim": {"key": key, "rows": list(rows)},
            "claim_trail": trail, "claim_trail_files": len(trail),
            "claim_trail_code": len([t for t in trail if not t.startswith("tests/")]),
            "private_imports": private, "argparse_modules": sorted(argparse_users)}


def report(m: dict[str, Any]) -> str:
    """The measures ``m`` as lines of text."""
    counts = {key: len(found) for key, found in m["claim_files"].items()}
    return "\n".join([
        f"tree at {m['commit'] or 'an unknown commit'}{' (dirty)' if m['dirty'] else ''}",
        f"sparsam/book: {m['book_modules']} modules, {m['book_lines']} lines",
        f"imports between modules of sparsam/book: {m['book_imports']}",
        f"sparsam: {m['package_modules']} modules, {m['package_lines']} lines",
        f"YAML parse sites in sparsam ({len(m['yaml_parse_sites'])}): {', '.join(m['yaml_parse_sites'])}",
        f"study-file parse sites in sparsam/book ({len(m['study_parse_sites'])}, in {m['study_parse_modules']} "
        f"modules): {', '.join(m['study_parse_sites'])}",
        f"files naming a claim of the table (min {min(counts.values())}, max {max(counts.values())}): {counts}",
        f"  e.g. cost_aware: {', '.join(m['claim_files']['cost_aware'])}",
        f"files a new claim touches (the trail of {m['followed_claim']['key']}: {m['claim_trail_files']}, "
        f"{m['claim_trail_code']} outside tests/): {', '.join(m['claim_trail'])}",
        f"private names imported from other sparsam modules ({len(m['private_imports'])}): "
        f"{', '.join(m['private_imports'])}",
        f"modules importing argparse ({len(m['argparse_modules'])}): {', '.join(m['argparse_modules'])}"])


def main(argv: list[str]) -> None:
    as_json = "--json" in argv
    roots = [a for a in argv if a != "--json"]
    if any(a.startswith("-") for a in roots):
        raise SystemExit("usage: measure_book.py [ROOT ...] [--json]")
    found = [measure(Path(root).resolve()) for root in roots or [Path(__file__).resolve().parents[1]]]
    if as_json:
        print(json.dumps(found[0] if len(found) == 1 else found, indent=1))
    else:
        print("\n\n".join(report(m) for m in found))


if __name__ == "__main__":
    main(sys.argv[1:])
