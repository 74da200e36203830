#!/usr/bin/env bash
# The README's test command: sets up .venv if needed, then runs the fast test suite.
# Extra arguments go to pytest (e.g. `bash test.sh -m slow`, `bash test.sh tests/test_losses.py`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash scripts/ensure_venv.sh
exec .venv/bin/python -m pytest "$@"
