# Sourced by the scripts: create .venv (once) with sparsam and what the book and the tests need,
# and point SPARSAM_DATA at ../shared/data when that folder exists and nothing else was set.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=.venv/.sparsam-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
    .venv/bin/python -m pip install --quiet -e ".[experiment,book,cluster,test]"
    .venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
    touch "$stamp"
fi
if [ -z "${SPARSAM_DATA:-}" ] && [ -d ../shared/data ]; then
    export SPARSAM_DATA="$(cd ../shared/data && pwd)"
fi
export PATH="$root/.venv/bin:$PATH"
