#!/usr/bin/env bash
# Multi-host TPU pod slice: runs the same mdjpt_jax.main command on every TPU-VM worker.
#
# Step 1, before a launch (any machine, no TPU): compile the real train step for the pod's
# topology and check it fits in HBM (per-chip memory, FLOPs, roofline; non-zero exit if not):
#   MDJPT_TPU=1 bash scripts/ensure_venv.sh
#   .venv-tpu/bin/python -m mdjpt_jax.main --mode=compile --topology=v5e:16x16 \
#     --config=configs/pretrain.py:paper --config.data.pairs_per_step=256
# (same --config flags as the launch; README "Before you launch on a pod").
#
# Step 2, usage (from your workstation, with gcloud authenticated):
#   TPU_NAME=my-v4-32 ZONE=us-central2-b PROJECT=my-project \
#     bash launch/tpu_pod.sh --config=configs/pretrain.py:paper --workdir=/mnt/shared/runs/paper
#
# Required environment variables:
#   TPU_NAME   name of the TPU VM (pod slice)          ZONE     its zone
#   PROJECT    the GCP project
# Optional:
#   REPO_DIR   where the repository lives on every worker (default: ~/mdjpt-jax; it must
#              already be cloned there and its .venv-tpu set up (jax + libtpu, which a TPU
#              VM needs to see its chips): `MDJPT_TPU=1 bash scripts/ensure_venv.sh`)
#   LOG_DIR    per-host log files, on each worker (default: ~/mdjpt-logs); worker i writes
#              $LOG_DIR/host_<i>.log (i = TPU_WORKER_ID).
#
# jax.distributed.initialize() (mdjpt_jax/distributed.py) discovers the pod from the TPU VM
# metadata, so every worker gets the same command. The workdir must be a POSIX path shared by
# all hosts (Filestore/NFS, or a bucket mounted with gcsfuse: metrics and the exported encoder
# are written with plain file I/O, so a bare gs:// URL is not supported) and data.data_dir
# readable by all of them.
# data.pairs_per_step must be divisible by the total number of TPU chips.
# Re-running the same command resumes from the workdir's last checkpoint; on preemption
# (SIGTERM) the run saves its current step first.
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}" "${PROJECT:?set PROJECT}"
repo_dir="${REPO_DIR:-~/mdjpt-jax}"
log_dir="${LOG_DIR:-~/mdjpt-logs}"
quoted_args="$(printf '%q ' "$@")"
remote="mkdir -p ${log_dir} && cd ${repo_dir} && \
.venv-tpu/bin/python -m mdjpt_jax.main ${quoted_args} \
> ${log_dir}/host_\${TPU_WORKER_ID:-\$(hostname)}.log 2>&1"
exec gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --project="$PROJECT" \
  --worker=all --command="$remote"
