#!/usr/bin/env bash
# The test command of the README: installs what the tests need (.venv) and runs the whole suite, one
# pytest-xdist worker per CPU core, each test file (each notebook: its cells share one kernel) on one
# worker (arguments go to pytest; `-n 0` runs it in one process).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec python -m pytest -n auto --dist loadfile "$@"
