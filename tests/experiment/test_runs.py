"""The run store's folder lock: one writer at a time, the holder named, stale locks taken over."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO
from sparsam.experiment import store as runs

HOLD = """
import sys, time
from sparsam.experiment import store as runs
with runs.lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder_process(folder, seconds: float) -> subprocess.Popen:
    """Another process holding ``folder``'s lock for ``seconds``; returns once it holds it."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert process.stdout.readline().strip() == "locked"
    return process


def test_second_writer_fails_naming_the_folder_and_the_holder(tmp_path):
    with runs.lock(tmp_path / "run") as path:
        assert path == tmp_path / "run" / ".lock"
        assert runs.holder(tmp_path / "run") == {**json.loads(path.read_text())}
        assert runs.holder(tmp_path / "run")["pid"] == os.getpid()
        with pytest.raises(runs.Locked) as error:
            with runs.lock(tmp_path / "run"):
                pytest.fail("a second holder got the lock")
        message = str(error.value)
        assert str(tmp_path / "run") in message and f"process {os.getpid()} on {platform.node()}" in message
        assert error.value.holder["pid"] == os.getpid()
    assert not path.exists() and runs.holder(tmp_path / "run") is None
    with runs.lock(tmp_path / "run"):  # free again
        pass


def test_named_locks_of_one_folder_are_independent(tmp_path):
    with runs.lock(tmp_path, name=".a.lock"), runs.lock(tmp_path, name=".b.lock"):
        assert runs.holder(tmp_path, ".a.lock") is not None and runs.holder(tmp_path, ".c.lock") is None
        with pytest.raises(runs.Locked):
            with runs.lock(tmp_path, name=".a.lock"):
                pass


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    process = _holder_process(tmp_path, 60)
    assert runs.holder(tmp_path)["pid"] == process.pid
    with pytest.raises(runs.Locked, match=f"process {process.pid}"):
        with runs.lock(tmp_path):
            pass
    process.send_signal(signal.SIGKILL)
    process.wait()
    stale = tmp_path / ".lock"
    assert json.loads(stale.read_text())["pid"] == process.pid  # the dead process's file is still there
    assert runs.holder(tmp_path) is None
    with runs.lock(tmp_path):
        assert runs.holder(tmp_path)["pid"] == os.getpid()


def test_wait_waits_for_the_holder(tmp_path):
    process = _holder_process(tmp_path, 1.5)
    start = time.monotonic()
    with runs.lock(tmp_path, wait=True, poll=0.05):
        waited = time.monotonic() - start
    assert process.wait(timeout=30) == 0
    assert waited > 0.5  # it held the lock for 1.5 s after telling us so


def test_only_one_of_many_threads_holds_the_lock(tmp_path):
    inside, overlaps, failures = [], [], []

    def writer() -> None:
        try:
            with runs.lock(tmp_path, wait=True, poll=0.01):
                inside.append(1)
                overlaps.append(len(inside))
                time.sleep(0.02)
                inside.pop()
        except Exception as error:  # pragma: no cover - reported below
            failures.append(error)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures and len(overlaps) == 8 and max(overlaps) == 1


def test_atomic_writes_are_readable_by_others(tmp_path):
    runs.atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert runs.read_json(tmp_path / "a.json") == {"x": 1}
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
