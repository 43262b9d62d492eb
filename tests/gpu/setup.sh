#!/usr/bin/env bash
# Install what the GPU suite needs and this machine's python lacks -- never torch, never an upgrade.
#
# A GPU image brings its own torch (CUDA build), transformers, peft and lightning; this adds only the
# missing packages, each with --no-deps so that pip cannot replace torch or anything else installed.
# Wheels are taken from $WHEELS (default: .whl/ in the repo root) when that folder exists, which is how
# they reach a machine without a package index (fetch them elsewhere with tests/gpu/fetch_wheels.sh);
# otherwise from the package index.
set -euo pipefail
PY=${PYTHON:-python3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WHEELS=${WHEELS:-$ROOT/.whl}

# import name = pip requirement (the ones this project pins in pyproject.toml)
NEEDED=(
  "bitsandbytes=bitsandbytes>=0.45,<1"
  "omegaconf=omegaconf>=2.3,<2.4"
  "antlr4=antlr4-python3-runtime==4.9.3"
  "hydra=hydra-core>=1.3.2,<1.4"
)
torch_before=$($PY -c 'import torch; print(torch.__version__)')
missing=()
for item in "${NEEDED[@]}"; do
  mod=${item%%=*}; req=${item#*=}
  if ! $PY -c "import $mod" >/dev/null 2>&1; then missing+=("$req"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/gpu/setup.sh: installing ${missing[*]} (--no-deps)"
  if [ -d "$WHEELS" ]; then
    $PY -m pip install -q --no-deps --no-index --no-build-isolation --find-links "$WHEELS" "${missing[@]}"
  else
    $PY -m pip install -q --no-deps "${missing[@]}"
  fi
else
  echo "tests/gpu/setup.sh: nothing to install"
fi
torch_after=$($PY -c 'import torch; print(torch.__version__)')
if [ "$torch_before" != "$torch_after" ]; then
  echo "tests/gpu/setup.sh: torch changed from $torch_before to $torch_after: refusing to go on" >&2
  exit 1
fi
for item in "${NEEDED[@]}"; do $PY -c "import ${item%%=*}"; done
echo "tests/gpu/setup.sh: ready (torch $torch_after)"
