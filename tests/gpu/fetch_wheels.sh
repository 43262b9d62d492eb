#!/usr/bin/env bash
# Download, on a machine with a package index, the wheels tests/gpu/setup.sh installs on a GPU machine
# without one (Python 3.12, x86-64 Linux by default) into .whl/ at the repo root (git-ignored).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PYVER=${PYVER:-3.12}
OUTDIR=${WHEELS:-$ROOT/.whl}
PIP=${PIP:-python3 -m pip}
$PIP download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$OUTDIR" "bitsandbytes>=0.45,<1" "omegaconf>=2.3,<2.4" "hydra-core>=1.3.2,<1.4"
# antlr4-python3-runtime 4.9.3 (what omegaconf 2.3 needs) is published as a source archive only
$PIP download -q --no-deps --no-binary=:all: -d "$OUTDIR" "antlr4-python3-runtime==4.9.3"
ls -la "$OUTDIR"
