"""Provenance of what the code makes: the git commit of the running code, whether its tree was dirty, and the
machine (software and hardware) it ran on. Every layer above reads it from here: run summaries
(:func:`provenance`), the staleness of records and the commit a file was added at (:func:`git`).

The code's own work tree is found at the first call (:func:`code_root`), never at import. A copy of the code
without git (a working tree sent to a borrowed machine without ``.git``) names its commit in
``$SPARSAM_GIT_COMMIT`` (:data:`COMMIT_VARIABLE`) and cannot tell whether it is dirty.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import torch

# The commit of a copy of the code without git (e.g. a working tree sent to a borrowed machine without .git)
COMMIT_VARIABLE = "SPARSAM_GIT_COMMIT"


def run_git(cwd: str | Path, *args: str) -> str | None:
    """The stripped output of ``git args`` run in ``cwd``, or None when git fails or is not installed."""
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def code_root() -> Path | None:
    """The git work tree whose tracked files are the running ``sparsam`` source (an editable install or
    a checkout on ``sys.path``), or None (an installed wheel: no commit to name). Found at the first call."""
    package = Path(__file__).resolve().parents[1]
    if run_git(package, "ls-files", "--error-unmatch", "__init__.py") is None:  # e.g. a wheel in a venv in a checkout
        return None
    top = run_git(package, "rev-parse", "--show-toplevel")
    return None if top is None else Path(top)


def git(*args: str, cwd: str | Path | None = None) -> str | None:
    """The output of ``git args`` run in ``cwd`` (default: :func:`code_root`, the code's own work tree), or
    None when git fails or there is no work tree."""
    where = code_root() if cwd is None else Path(cwd)
    return None if where is None else run_git(where, *args)


def code_commit() -> tuple[str | None, bool | None]:
    """The commit of the running code and whether its tracked files other than ``results/`` (which runs
    themselves write) differ from it, from git; without git (no work tree, or no git program), the commit
    ``$SPARSAM_GIT_COMMIT`` names, with None for dirty (nothing can tell); (None, None) when neither says.
    A ``$SPARSAM_GIT_COMMIT`` that is not 7 to 40 hexadecimal digits raises ``ValueError``."""
    commit = git("rev-parse", "HEAD")
    if commit is not None:
        status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
        return commit, None if status is None else bool(status)
    given = os.environ.get(COMMIT_VARIABLE, "").strip()
    if not given:
        return None, None
    if not re.fullmatch(r"[0-9a-fA-F]{7,40}", given):
        raise ValueError(f"{COMMIT_VARIABLE} must be a git commit hash (7 to 40 hexadecimal digits), got {given!r}")
    return given.lower(), None


def machine(device: torch.device) -> dict[str, Any]:
    """The software and hardware of this process on ``device``: library versions, the device's name, the
    CPU threads, the host and the :func:`processor`."""
    import torchvision

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": name,
        "cpu_threads": torch.get_num_threads(),
        "host": platform.node(),
        "processor": processor(),
    }


# The instruction-set extensions that decide which CPU kernels torch runs (and so its floating-point results).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")


def processor() -> dict[str, Any]:
    """The CPU a run's numbers came from: vendor, model, the extensions that choose torch's kernels
    (:data:`CPU_FLAGS`), ``torch.backends.cpu.get_cpu_capability()`` and the MKL and oneDNN versions.

    Retraining reproduces a network bit for bit only on the same kind of processor: its kernels differ."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:  # not Linux
        pass
    built = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([^\s]+)", built)
    onednn = re.search(r"MKL-DNN v([^\s]+)", built)
    return {"vendor": info.get("vendor_id", platform.processor() or "unknown"),
            "model": info.get("model name", platform.machine()),
            "flags": [f for f in CPU_FLAGS if f in info.get("flags", "").split()],
            "capability": torch.backends.cpu.get_cpu_capability(),
            "mkl": mkl.group(1) if mkl else None, "onednn": onednn.group(1) if onednn else None}


def provenance(device: torch.device, code: tuple[str | None, bool | None] | None = None) -> dict[str, Any]:
    """Code, software and hardware a run was made with: ``git_commit`` and ``git_dirty`` (``code``, the
    :func:`code_commit` taken when the run's process started; default: now), then :func:`machine`."""
    commit, dirty = code_commit() if code is None else code
    return {"git_commit": commit, "git_dirty": dirty, **machine(device)}
