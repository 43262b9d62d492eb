#!/usr/bin/env bash
# Install the GPU suite's wheelhouse (tests/gpu/wheels.txt) offline: only from $WHEELS (default .whl/
# at the repo root, fetched elsewhere by tests/gpu/fetch_wheels.sh), never from a package index, into
# its own folder $GPU_SITE (default .gpu_site/, git-ignored) that `make test-gpu` puts on PYTHONPATH.
# --no-deps and --target leave the machine's python untouched (its torch, transformers, ...).
# A wheel missing from the wheelhouse stops it with one line naming the wheel.
set -euo pipefail
PY=${PYTHON:-python3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PINS=$ROOT/tests/gpu/wheels.txt
WHEELS=${WHEELS:-$ROOT/.whl}
SITE=${GPU_SITE:-$ROOT/.gpu_site}
me=tests/gpu/setup.sh

files=(); missing=()
while read -r req _; do
  case "$req" in ''|'#'*) continue ;; esac
  name=${req%%==*}; version=${req#*==}
  # a wheel's file name spells the project name with underscores (PEP 427), in any case
  found=$(find "$WHEELS" -maxdepth 1 -iname "${name//-/_}-${version}-*.whl" 2>/dev/null | head -1)
  if [ -n "$found" ]; then files+=("$found"); else missing+=("$req"); fi
done <"$PINS"
if [ ${#missing[@]} -gt 0 ]; then
  echo "$me: missing wheel(s) in $WHEELS: ${missing[*]} (run tests/gpu/fetch_wheels.sh where a package index is reachable)" >&2
  exit 2
fi
rm -rf "$SITE"
PIP_CONFIG_FILE=/dev/null $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --disable-pip-version-check --root-user-action=ignore --target "$SITE" "${files[@]}"
# each pinned package imports from $SITE (bitsandbytes' import-time notes are not wanted here)
PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH} $PY - "$SITE" <<'PY' 2>/dev/null
import importlib, sys
from pathlib import Path
site = Path(sys.argv[1]).resolve()
for mod in ("bitsandbytes", "hydra", "omegaconf", "antlr4"):
    where = Path(importlib.import_module(mod).__file__).resolve()
    if site not in where.parents:
        print(f"tests/gpu/setup.sh: {mod} imports from {where}, not from {site}")  # stdout: stderr is muted
        sys.exit(1)
PY
echo "$me: installed ${#files[@]} wheels from $WHEELS into $SITE"
