#!/usr/bin/env bash
# CI: the install path a user takes. Builds a wheel of the working tree, installs it with the
# [stream] extra into a clean venv outside the checkout (dependencies from PyPI or pip's
# cache), then, from an empty directory and with no repository file importable, runs
# `mdjpt --help`, `mdjpt --version`, pre-trains a tiny encoder for 2 steps with the installed
# package (its shipped config by name, its own synthetic data builder), embeds the shipped EDF
# with it, and checks that a missing extra ([bids]) is reported by name.
# Usage: bash scripts/check_install.sh   (PYTHON=python3.X to choose the interpreter)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/mdjpt-install.XXXXXX")"
trap 'rm -rf "$work"' EXIT
step() { echo "[check_install] $(date +%T) $*" >&2; }

step "copying the package files (tracked and untracked, not ignored) to $work/src"
# A build inside the checkout would leave build/ and *.egg-info there, and a stale build/
# can put deleted modules into the wheel.
mkdir "$work/src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard -- \
  pyproject.toml README.md mdjpt_jax tfds_builders |
  tar --null --files-from=- --ignore-failed-read -cf -) | tar -xf - -C "$work/src"

step "creating a clean venv and building the wheel"
"$python" -m venv "$work/venv"
bin="$work/venv/bin"
"$bin/python" -m pip wheel -q --no-deps -w "$work/dist" "$work/src"
wheel="$(ls "$work"/dist/mdjpt_jax-*.whl)"

step "installing ${wheel##*/}[stream]"
"$bin/python" -m pip install -q "$wheel[stream]"

step "running the installed command from an empty directory"
mkdir "$work/run"
cd "$work/run"
unset PYTHONPATH
export JAX_PLATFORMS=cpu TFDS_DISABLE_GCS=1
"$bin/python" - "$root" <<'EOF'
import os, sys

import mdjpt_jax

root = os.path.realpath(sys.argv[1])
assert not os.path.realpath(mdjpt_jax.__file__).startswith(root + os.sep), mdjpt_jax.__file__
print(f"[check_install] mdjpt_jax {mdjpt_jax.__version__} from {mdjpt_jax.__file__}")
EOF
"$bin/mdjpt" --help
version="$("$bin/mdjpt" --version)"
wheel_version="${wheel##*/mdjpt_jax-}"
[[ "$version" == "mdjpt-jax ${wheel_version%%-*}" ]] || {
  echo "mdjpt --version says '$version', the wheel is ${wheel##*/}" >&2
  exit 1
}
[[ "$("$bin/python" -m mdjpt_jax --version)" == "$version" ]]

step "pre-training a tiny encoder for 2 steps (builds synthetic_emotion d0-d2)"
"$bin/mdjpt" pretrain --config=pretrain:synthetic --workdir=pretrain \
  --config.data.data_dir="$work/tfds" --config.data.windows_per_pair=4 \
  --config.train.steps=2 --config.optim.warmup_steps=1 --config.train.checkpoint_every=2 \
  --config.train.log_every=1 --config.train.eval_every=0 --config.train.diagnose_every=0

step "embedding the shipped EDF"
"$bin/mdjpt" embed --encoder=pretrain/encoder --input="$root/tests/data/eegmmidb_S001R02.edf" \
  --output=features.npz
"$bin/python" - <<'EOF'
import numpy as np

with np.load("features.npz") as f:
    features = f["features"]
assert features.ndim == 2 and features.shape[0] > 0 and np.isfinite(features).all()
print(f"[check_install] features.npz: {features.shape[0]} windows x {features.shape[1]}")
EOF

step "a missing extra is named: BIDS input without [bids]"
status=0
"$bin/mdjpt" embed --encoder=pretrain/encoder --input=. --bids_subject=01 --output=bids.npz \
  2>bids.err || status=$?
if [[ $status != 2 ]] || ! grep -q "pip install 'mdjpt-jax\[bids\]'" bids.err ||
  grep -q Traceback bids.err; then
  echo "mdjpt embed on a BIDS root without [bids]: exit $status, expected 2 and the extra:" >&2
  cat bids.err >&2
  exit 1
fi
step "ok"
