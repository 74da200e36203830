#!/usr/bin/env bash
# Lint and format check, as CI runs them; run before committing. `bash scripts/lint.sh --fix`
# rewrites the files instead (ruff format + the safe lint fixes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure_venv.sh
ruff=.venv/bin/ruff
if [[ "${1:-}" == "--fix" ]]; then
  "$ruff" check --fix .
  "$ruff" format .
else
  "$ruff" check .
  "$ruff" format --check .
fi
