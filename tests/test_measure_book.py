"""scripts/measure_book.py, issue 29's measure of the book layer: the trail of a claim (the files a new claim has to
change) on a made-up tree where every file's answer is known, and the measures of this checkout against
independent counts."""

from __future__ import annotations

import importlib.util
import json
import subprocess

from conftest import REPO

spec = importlib.util.spec_from_file_location("measure_book", REPO / "scripts" / "measure_book.py")
measure_book = importlib.util.module_from_spec(spec)
spec.loader.exec_module(measure_book)


def _notebook(*cells: tuple[str, str]) -> str:
    return json.dumps({"cells": [{"cell_type": kind, "source": [source], "outputs": []} for kind, source in cells]})


# a made-up tree: path -> (text, whether it names the claim "fresh" decided by the row "accuracy_fresh_vs_sam")
TREE = {
    "book/margins.yaml": ("book_claims:\n  fresh:\n    name: a fresh claim\n", True),  # a YAML mapping key
    "book/rules.yaml": ("rules:\n  accuracy_fresh_vs_sam: {margin: 1}\n", True),  # its row
    "book/other.yaml": ("rules:\n  accuracy_fresh_vs_sam_ema: {margin: 1}\nfreshness: 2\n", False),  # longer names
    "sparsam/book/claims.py": ("KEYS = ('acc', 'fresh')\n", True),  # a quoted key
    "sparsam/book/words.py": ("# a fresh start, refresh, fresh_mask(), 'fresh-0.5'\n", False),  # the word, not the key
    "sparsam/cli/show.py": ('print("fresh")\n', True),  # any layer above the book may name it
    "notebooks/04_chapter.ipynb": (_notebook(("markdown", "{glue:text}`claim_fresh_status`")), True),  # a glue name
    "notebooks/05_chapter.ipynb": (_notebook(("code", "x = 1")), False),
    "book/reproduction.md": ("| {glue:text}`../notebooks/07_claims.ipynb::status_gpu_fresh:s` |\n", True),
    "book/method.md": ("status_gpu_freshness, claim_freshness\n", False),
    "tests/book/test_claims.py": ('assert keys == ["acc", "fresh"]\n', True),
    "sparsam/masks/patterns.py": ('__all__ = ["fresh"]\n', False),  # below the book: a mask, never a claim
    "tests/experiment/test_x.py": ('"fresh"\n', False),
    "results/runs/r.json": ('{"claim": "fresh"}\n', False),  # a record
    "tests/book/claims_snapshot.json": ('{"fresh": 1}\n', False),  # written by scripts/snapshot_claims.py
    "notebooks/data.bin": ('"fresh"\n', False),  # not a text file of the book
}


def test_the_trail_of_a_claim_is_every_file_naming_its_key_or_its_rows_above_the_book(tmp_path):
    for path, (text, _) in TREE.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    expected = sorted(path for path, (_, named) in TREE.items() if named)
    assert measure_book.claim_trail(tmp_path, "fresh", ("accuracy_fresh_vs_sam",)) == expected
    assert measure_book._commit(tmp_path) == (None, None)  # not a git tree: no commit to name


def test_the_measures_of_this_checkout():
    m = measure_book.measure(REPO)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert m["commit"] == head and isinstance(m["dirty"], bool)
    book = sorted((REPO / "sparsam" / "book").rglob("*.py"))
    assert m["book_modules"] == len(book)
    assert m["book_lines"] == sum(p.read_bytes().count(b"\n") for p in book)  # every file ends with a newline
    key, rows = measure_book.FOLLOWED
    assert key in (REPO / "book" / "margins.yaml").read_text() and all(
        row in (REPO / "book" / "margins.yaml").read_text() for row in rows)
    # the claim's declaration, its chapter, the claims table's glue in the text, the test listing every claim
    assert {"book/margins.yaml", "notebooks/04_efficiency.ipynb", "book/reproduction.md",
            "tests/book/test_registry.py"} <= set(m["claim_trail"])
    assert "sparsam/masks/patterns.py" not in m["claim_trail"]  # the mask rule cost_aware, not the claim
    assert m["claim_trail_files"] == len(m["claim_trail"]) and m["claim_trail_code"] == len(
        [t for t in m["claim_trail"] if not t.startswith("tests/")])
    assert m["study_parse_sites"] == [site for site in m["yaml_parse_sites"] if site.startswith("sparsam.book")
                                      and not site.startswith(measure_book.SETTINGS_READERS)]
    assert m["private_imports"] == []  # what tests/test_layers.py checks, read again


def test_json_output_is_the_measures(capsys):
    measure_book.main([str(REPO), "--json"])
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(measure_book.measure(REPO)))
