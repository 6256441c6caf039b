#!/usr/bin/env bash
# Download the wheels of scripts/gpu/wheels.txt for the GPU machine (CPython 3.12, manylinux x86-64) into .whl/,
# without their dependencies (the list names every one the machine lacks). Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .whl && mkdir .whl
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_26 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
grep -v '^#' scripts/gpu/wheels.txt | grep . | while read -r requirement; do
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" --dest .whl "$requirement"
done
echo "$(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1), in .whl/"
