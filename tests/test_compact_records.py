"""scripts/compact_records.py: run records written as rows are rewritten as columns and read back the same."""

from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import REPO
from sparsam.experiment.record_schema import read_record

spec = importlib.util.spec_from_file_location("compact_records", REPO / "scripts" / "compact_records.py")
compact_records = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compact_records)


def test_rows_become_columns_that_read_back_the_same_and_a_second_pass_changes_nothing(tmp_path, capsys):
    source = sorted((REPO / "results" / "runs").glob("*.json"))[0]
    record = read_record(source, "run")
    rows = tmp_path / source.name
    rows.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")  # the layout records had before
    assert compact_records.main([str(tmp_path)]) == 0
    assert "1 records rewritten as columns" in capsys.readouterr().out
    assert isinstance(json.loads(rows.read_text())["metrics"], dict)
    assert read_record(rows, "run") == record
    before = rows.read_bytes()
    compact_records.main([str(tmp_path)])
    assert "0 records rewritten" in capsys.readouterr().out and rows.read_bytes() == before


def test_a_folder_that_is_not_there_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        compact_records.main([str(tmp_path / "absent")])
    assert f"folders: {tmp_path / 'absent'} is not a folder of run records" in capsys.readouterr().err
