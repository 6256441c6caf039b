#!/usr/bin/env bash
# The test command of the README: installs what the tests need (.venv) and runs the whole suite.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec python -m pytest "$@"
