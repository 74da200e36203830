#!/usr/bin/env bash
# SLURM GPU cluster: one process per GPU via srun; jax.distributed reads the SLURM env.
#
# Usage (from the repository root, with .venv set up by `bash scripts/ensure_venv.sh`):
#   sbatch --nodes=2 --gpus-per-node=8 --ntasks-per-node=8 launch/slurm_gpu.sh \
#     --config=configs/pretrain.py:paper --workdir=/shared/runs/paper
#
# Every task runs `python -m mdjpt_jax.main "$@"` on one GPU. With more than one task,
# jax.distributed.initialize() (mdjpt_jax/distributed.py) takes the coordinator (the first
# node of the allocation), the process count and this process's id from SLURM_* variables.
# The workdir and data.data_dir must be on a file system shared by all nodes;
# data.pairs_per_step must be divisible by the total number of GPUs. Logs: one file per
# task, slurm-<job>-<task>.log. Re-submitting the same command resumes; on preemption
# (SIGTERM, sent --signal seconds before the end) the run saves its current step first.
#SBATCH --job-name=mdjpt
#SBATCH --nodes=1
#SBATCH --gpus-per-node=8
#SBATCH --ntasks-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@120
#SBATCH --requeue
#SBATCH --output=slurm-%j.out
set -euo pipefail
repo="${SLURM_SUBMIT_DIR:-$(pwd)}"
cd "$repo"
# One GPU per task: srun binds it (--gpus-per-task=1); JAX then sees exactly that device.
srun --gpus-per-task=1 --kill-on-bad-exit=1 --output="slurm-%j-%t.log" \
  .venv/bin/python -m mdjpt_jax.main "$@"
