#!/usr/bin/env bash
# The test command of the README: installs what the tests need (.venv) and runs the whole suite, one
# pytest-xdist worker per CPU core, each test file on one worker (so that a notebook's cells share one
# kernel). Arguments go to pytest: `notebooks` runs nbval over the nine notebooks (the book build in the
# suite executes them too), `-n 0` runs it in one process.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# One thread per worker: torch's default of one thread per core, in each of the workers (one per core),
# oversubscribes the cores: beside two busy processes, tests/book/test_landscape.py took 16.7 s with two
# threads and 6.4 s with one. A test that needs more threads sets them itself.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec python -m pytest -n auto --dist loadfile "$@"
