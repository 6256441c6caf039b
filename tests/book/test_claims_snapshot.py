"""The guard of the book layer's redesign (issue 29): the claims table, every scale's decided comparisons, the
quick profile's verdict rows of chapters 3, 5 and 6 and chapter 8's readings, computed from the committed records
by ``scripts/snapshot_claims.py``, equal the snapshot it wrote before the redesign began
(``tests/book/claims_snapshot.json``): the same statuses, numbers (to 10 significant digits) and staleness."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("snapshot_claims", ROOT / "scripts" / "snapshot_claims.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def differences(expected, found, where="snapshot"):
    """Where ``found`` differs from ``expected``: paths of the differing values (floats to 1e-9 relative)."""
    if isinstance(expected, dict) and isinstance(found, dict):
        out = [f"{where}: keys {sorted(set(expected) ^ set(found))} differ"] if set(expected) != set(found) else []
        return out + [d for k in expected if k in found for d in differences(expected[k], found[k], f"{where}.{k}")]
    if isinstance(expected, list) and isinstance(found, list):
        if len(expected) != len(found):
            return [f"{where}: {len(expected)} entries expected, {len(found)} found"]
        return [d for i, (a, b) in enumerate(zip(expected, found)) for d in differences(a, b, f"{where}[{i}]")]
    if isinstance(expected, float) and isinstance(found, (int, float)) and not isinstance(found, bool):
        return [] if math.isclose(expected, found, rel_tol=1e-9, abs_tol=1e-12) else [f"{where}: {expected} != {found}"]
    return [] if expected == found and type(expected) is type(found) else [f"{where}: {expected!r} != {found!r}"]


def test_the_book_shows_the_statuses_and_numbers_of_the_snapshot():
    script = _script()
    expected = json.loads(script.SNAPSHOT.read_text())
    found = json.loads(json.dumps(script.compute(), ensure_ascii=False))  # as the snapshot was written
    assert differences(expected, found) == []
    assert found["scales"]["CPU study"]["records"] == 53
    assert not any(row["stale"] for row in found["scales"]["CPU study"]["comparisons"])  # numerics unchanged
    assert not any(row["stale"] for rows in found["chapters"].values() for row in rows)


def test_differences_finds_a_changed_status_number_or_entry():
    base = {"a": [{"status": "reproduced", "diff": 0.5, "n": 5}]}
    assert differences(base, json.loads(json.dumps(base))) == []
    assert differences(base, {"a": [{"status": "inconclusive", "diff": 0.5, "n": 5}]}) != []
    assert differences(base, {"a": [{"status": "reproduced", "diff": 0.5000001, "n": 5}]}) != []
    assert differences(base, {"a": [{"status": "reproduced", "diff": 0.5, "n": 4}]}) != []
    assert differences(base, {"a": []}) != []
    assert differences({"x": 1.0}, {"x": True}) != []
