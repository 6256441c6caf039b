"""Size and coupling of the book layer (issue 29): lines and modules of sparsam/book, the imports between its
modules (read from every module's syntax tree, lazy imports included, as tests/test_layers.py reads them),
private names imported across modules, where a YAML file is parsed (and where a study file is: every parse site
of sparsam/book but those of the book's own settings, book/margins.yaml and book/profiles.yaml), and the files that
name a claim of the book's table (the modules, notebooks and settings a new claim would have to touch).

    python scripts/measure_book.py          # one line per measure, of this checkout
    python scripts/measure_book.py ROOT     # of another tree (e.g. `git archive b2789d7 | tar -x -C ROOT`)
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

ROOT = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_layers import GRAPH, MODULES  # noqa: E402  (the one reading of the package's imports)

# the modules that parse the book's own settings files (book/margins.yaml, book/profiles.yaml), not a study file
SETTINGS_READERS = ("sparsam.book.stats", "sparsam.book.profiles", "sparsam.book.registry")
# the claims of the book's table (the claims table of chapter 7), by key
CLAIM_KEYS = ("acc", "sam_sgd", "radius", "patterns", "forms", "imagenet", "convergence", "flat", "cost",
              "cost_aware")


def claim_files(root: Path) -> dict[str, list[str]]:
    """Per claim key, the modules of sparsam/book, the notebooks and the book settings that name it (as a quoted key, a mapping
    key of a YAML file or in a glued name ``claim_<key>_...``): where a claim is defined."""
    texts = {p.relative_to(root).as_posix(): p.read_text() for p in (root / "sparsam" / "book").rglob("*.py")}
    for p in (root / "notebooks").glob("*.ipynb"):
        cells = json.loads(p.read_text())["cells"]
        texts[p.relative_to(root).as_posix()] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    for p in (root / "book").glob("*.yaml"):
        texts[p.relative_to(root).as_posix()] = p.read_text()
    out = {}
    for key in CLAIM_KEYS:
        pattern = re.compile(rf"[\"']{key}[\"']|^\s*{key}:|claim_{key}_", re.M)
        out[key] = sorted(name for name, text in texts.items() if pattern.search(text))
    return out


def main() -> None:
    book = {name: path for name, path in MODULES.items() if name.startswith("sparsam.book")}
    lines = sum(len(path.read_text().splitlines()) for path in book.values())
    edges = sorted((a, b) for a in book for b in GRAPH[a] if b in book and not a.startswith(b + "."))
    print(f"sparsam/book: {len(book)} modules, {lines} lines")
    print(f"imports between modules of sparsam/book: {len(edges)}")
    total = sum(len(path.read_text().splitlines()) for path in MODULES.values())
    print(f"sparsam: {len(MODULES)} modules, {total} lines")
    parsed = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("yaml.safe_load", "yaml.load"):
                parsed.append(f"{name}:{node.lineno}")
    print(f"YAML parse sites in sparsam ({len(parsed)}): {', '.join(parsed)}")
    study = [p for p in parsed if p.startswith("sparsam.book") and not p.startswith(SETTINGS_READERS)]
    print(f"study-file parse sites in sparsam/book ({len(study)}, in {len({p.split(':')[0] for p in study})} "
          f"modules): {', '.join(study)}")
    files = claim_files(ROOT)
    counts = {key: len(found) for key, found in files.items()}
    print(f"files naming a claim of the table (min {min(counts.values())}, max {max(counts.values())}): {counts}")
    print(f"  e.g. cost_aware: {', '.join(files['cost_aware'])}")
    private = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("sparsam")):
                private += [f"{name} <- {a.name}" for a in node.names if a.name.startswith("_")]
    print(f"private names imported from other sparsam modules ({len(private)}): {', '.join(private)}")
    argparse_users = sorted(name for name, path in MODULES.items()
                            if any(isinstance(n, (ast.Import, ast.ImportFrom)) and "argparse" in ast.unparse(n)
                                   for n in ast.walk(ast.parse(path.read_text()))))
    print(f"modules importing argparse ({len(argparse_users)}): {', '.join(argparse_users)}")


if __name__ == "__main__":
    main()
