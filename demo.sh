#!/usr/bin/env bash
# The README's main command: end-to-end synthetic demo (build data, pre-train, extract,
# probe, report). Usage: bash demo.sh [WORKDIR]   (default runs/demo; re-running resumes)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash scripts/ensure_venv.sh
workdir="${1:-runs/demo}"
exec .venv/bin/python -m mdjpt_jax.main --mode=all --config=configs/demo.py --workdir="$workdir"
