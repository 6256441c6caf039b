#!/usr/bin/env bash
# The book command of the README: executes every notebook in its quick profile, writes _build/html.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec jupyter-book build . -W --keep-going "$@"
