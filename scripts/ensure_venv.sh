#!/usr/bin/env bash
# Creates the repo's venv and installs its requirements into it when the venv is missing or
# the requirements changed since the last install (stamp = sha256 of the requirement files).
#   default        .venv      requirements.txt
#   MDJPT_TPU=1    .venv-tpu  requirements-tpu.txt (= requirements.txt + libtpu, for
#                             `--mode=compile` and TPU VMs)
# Prints nothing on stdout; `scripts/venv_dir.sh` names the venv the same switch selects.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/venv_dir.sh")"
if [[ "${MDJPT_TPU:-0}" == 1 ]]; then
  requirements=("$root/requirements.txt" "$root/requirements-tpu.txt")
else
  requirements=("$root/requirements.txt")
fi
stamp="$venv/.requirements.sha256"
want="$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" ]] || [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "[setup] installing ${requirements[-1]##*/} into $venv (first run: about a minute)" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q -r "${requirements[-1]}" >&2
  echo "$want" > "$stamp"
fi
