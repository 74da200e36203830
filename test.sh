#!/usr/bin/env bash
# The README's test command: sets up the venv if needed, then runs the fast test suite.
# Extra arguments go to pytest (e.g. `bash test.sh -m slow`, `bash test.sh tests/test_losses.py`).
# MDJPT_TPU=1 uses .venv-tpu (requirements + libtpu), e.g. `MDJPT_TPU=1 bash test.sh -m tpu_compile`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash scripts/ensure_venv.sh
exec "$(bash scripts/venv_dir.sh)/bin/python" -m pytest "$@"
