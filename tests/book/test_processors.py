"""Which processor a record came from (sparsam.book.processors), and that every record made since provenance
named the processor names it."""

from __future__ import annotations

import json
import subprocess

import pytest

from sparsam.book import processors
from sparsam.experiment import provenance

from conftest import REPO

INTEL = {"vendor": "GenuineIntel", "model": "Intel(R) Xeon(R) Processor @ 2.60GHz", "capability": "AVX512",
         "mkl": "2024.2-Product", "onednn": "3.12.0"}
ZEN = {"vendor": "AuthenticAMD", "model": "AMD EPYC 9R14", "capability": "AVX512", "mkl": None, "onednn": "3.12.0"}
NAMED_SINCE = "c577ebd"  # the commit at which provenance began to name the processor


def test_a_label_names_model_capability_and_libraries_or_says_none_was_recorded():
    assert processors.processor_label({"processor": INTEL}) == (
        "Intel(R) Xeon(R) Processor @ 2.60GHz (AVX512; MKL 2024.2-Product, oneDNN 3.12.0)")
    assert processors.processor_label({"processor": ZEN}) == "AMD EPYC 9R14 (AVX512; MKL none, oneDNN 3.12.0)"
    assert processors.processor_label({"git_commit": "abc"}) == processors.NOT_RECORDED
    assert processors.processor_label({"processor": None}) == processors.NOT_RECORDED


def test_the_text_counts_each_groups_processors_most_common_first():
    runs = [{"processor": INTEL}, {}, {"processor": INTEL}, {"processor": ZEN}]
    text = processors.processors_text({"the runs": runs, "the cost records": [{}], "the others": []})
    assert text == ("the runs: 2 of 4 on Intel(R) Xeon(R) Processor @ 2.60GHz (AVX512; MKL 2024.2-Product, oneDNN "
                    "3.12.0), 1 of 4 with no processor recorded (made before records named it), 1 of 4 on AMD EPYC "
                    "9R14 (AVX512; MKL none, oneDNN 3.12.0); the cost records: 1 of 1 with no processor recorded "
                    "(made before records named it); the others: none")


def test_this_machines_provenance_names_its_processor():
    made = provenance.provenance(__import__("torch").device("cpu"))
    assert processors.processor_label(made) == processors.processor_label({"processor": provenance.processor()})
    assert processors.processor_label(made) != processors.NOT_RECORDED


def _committed_provenances():
    """Every committed JSON record under results/ that carries a provenance with a commit: (path, provenance)."""
    for path in sorted((REPO / "results").rglob("*.json")):
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            continue
        made = record.get("provenance") or (record.get("summary") or {}).get("provenance")
        if isinstance(made, dict) and made.get("git_commit"):
            yield path, made


def _descends(commit: str, ancestor: str) -> bool | None:
    done = subprocess.run(["git", "merge-base", "--is-ancestor", ancestor, commit], cwd=REPO, capture_output=True)
    return {0: True, 1: False}.get(done.returncode)  # None: a commit this history does not hold


def test_every_record_made_since_provenance_named_the_processor_names_it():
    if subprocess.run(["git", "cat-file", "-e", NAMED_SINCE], cwd=REPO).returncode != 0:
        pytest.skip("no git history to read")
    checked = 0
    for path, made in _committed_provenances():
        if _descends(made["git_commit"], NAMED_SINCE):
            checked += 1
            assert processors.processor_label(made) != processors.NOT_RECORDED, path.relative_to(REPO)
    assert checked >= 6  # the label-noise pilot's records at least
