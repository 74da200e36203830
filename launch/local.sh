#!/usr/bin/env bash
# One machine, any number of devices: runs `python -m mdjpt_jax.main "$@"` from the repo venv.
#
# Usage:
#   bash launch/local.sh [--cpu_devices N] --config=configs/pretrain.py:synthetic --workdir=DIR [...]
#
#   --cpu_devices N   simulate N CPU devices (sets XLA_FLAGS=--xla_force_host_platform_device_count=N
#                     and JAX_PLATFORMS=cpu); data.pairs_per_step must be divisible by N.
#   Without it, JAX uses whatever the machine has (all local GPUs, or the CPU).
#   Every other argument goes to mdjpt_jax.main. Re-running the same command resumes the workdir.
# Example:
#   bash launch/local.sh --cpu_devices 8 --config=configs/pretrain.py:synthetic --workdir=runs/run8
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu_devices) n="$2"; shift 2 ;;
    --cpu_devices=*) n="${1#*=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
if [[ -n "${n:-}" ]]; then
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${n}"
  export JAX_PLATFORMS=cpu
fi
cd "$repo"
bash scripts/ensure_venv.sh
exec .venv/bin/python -m mdjpt_jax.main "${args[@]}"
