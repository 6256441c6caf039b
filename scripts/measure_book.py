"""Size and coupling of the book layer (issue 29): lines and modules of sparsam/book, the imports between its
modules (read from every module's syntax tree, lazy imports included, as tests/test_layers.py reads them),
private names imported across modules, and where a YAML file is parsed.

    python scripts/measure_book.py          # one line per measure
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_layers import GRAPH, MODULES  # noqa: E402  (the one reading of the package's imports)


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
