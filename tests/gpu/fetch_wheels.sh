#!/usr/bin/env bash
# Fetch the GPU suite's wheelhouse (tests/gpu/wheels.txt) into .whl/ at the repo root (git-ignored; the
# device tool carries it with `carry: [".whl"]`). Run it where a package index is reachable: the GPU
# machine reaches none, and tests/gpu/setup.sh installs there from this folder alone.
# Wheels for Python $PYVER (default 3.12, the GPU image's) on x86-64 Linux; source-only releases
# (marked "build") are built to a wheel here. Stops if the wheelhouse outgrows $MAX_MIB (default 60).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PINS=$ROOT/tests/gpu/wheels.txt
OUTDIR=${WHEELS:-$ROOT/.whl}
PYVER=${PYVER:-3.12}
MAX_MIB=${MAX_MIB:-60}
PIP=${PIP:-python3 -m pip}
mkdir -p "$OUTDIR"
binary=(); build=()
while read -r req mark _; do
  case "$req" in ''|'#'*) continue ;; esac
  if [ "${mark:-}" = build ]; then build+=("$req"); else binary+=("$req"); fi
done <"$PINS"
$PIP download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$OUTDIR" "${binary[@]}"
if [ ${#build[@]} -gt 0 ]; then
  $PIP wheel -q --no-deps --no-binary=:all: -w "$OUTDIR" "${build[@]}"  # pure Python: any 3.x runs it
fi
# bitsandbytes must bring the CUDA 13.0 library the image's torch (cu130) loads
if ! unzip -l "$OUTDIR"/bitsandbytes-*.whl | grep -q 'libbitsandbytes_cuda130\.so'; then
  echo "tests/gpu/fetch_wheels.sh: the bitsandbytes wheel in $OUTDIR has no libbitsandbytes_cuda130.so" >&2
  exit 1
fi
total=$(du -cb "$OUTDIR"/*.whl | tail -1 | cut -f1)
echo "tests/gpu/fetch_wheels.sh: $(ls "$OUTDIR"/*.whl | wc -l) wheels in $OUTDIR, $((total / 1048576)) MiB"
if [ "$total" -gt $((MAX_MIB * 1048576)) ]; then
  echo "tests/gpu/fetch_wheels.sh: the wheelhouse is over $MAX_MIB MiB" >&2
  exit 1
fi
