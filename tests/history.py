"""Earlier versions of the package's code, read from the repository's git history, for the tests that prove a
change kept what the code computes (tests/optim/test_code_equivalences.py, tests/experiment/test_data_split.py).

They need the full history (CI runs in a full clone); :data:`SHALLOW` tells them to skip in a shallow clone."""

from __future__ import annotations

import subprocess
import sys
import types

from conftest import REPO


def git(*args: str) -> subprocess.CompletedProcess:
    """``git *args`` in the repository, its output as text."""
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)


SHALLOW = git("rev-parse", "--is-shallow-repository").stdout.strip() != "false"


def module_at(commit: str, module: str) -> types.ModuleType:
    """``module`` (e.g. ``sparsam.optim.ssam``, a single file at ``commit``) as it was at ``commit``, its relative
    imports resolved in today's package."""
    path = module.replace(".", "/") + ".py"
    shown = git("show", f"{commit}:{path}")
    assert shown.returncode == 0, shown.stderr
    old = types.ModuleType(f"{module}_at_{commit[:7]}")
    old.__package__ = module.rsplit(".", 1)[0]
    sys.modules[old.__name__] = old  # a dataclass in it looks its module up while it is defined
    exec(compile(shown.stdout, f"{path}@{commit[:7]}", "exec"), old.__dict__)
    return old
