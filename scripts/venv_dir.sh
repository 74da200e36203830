#!/usr/bin/env bash
# Prints the venv directory the MDJPT_TPU switch selects: .venv, or .venv-tpu when MDJPT_TPU=1.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ "${MDJPT_TPU:-0}" == 1 ]]; then echo "$root/.venv-tpu"; else echo "$root/.venv"; fi
