"""`python -m mdjpt_jax.main` end to end on synthetic data, then the same command resumes."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _main(workdir, data_dir, steps, cache_dir, *extra):
    command = [sys.executable, "-m", "mdjpt_jax.main", "--config=configs/pretrain.py:synthetic",
               f"--workdir={workdir}", f"--config.data.data_dir={data_dir}",
               f"--config.train.steps={steps}", "--config.train.checkpoint_every=10",
               "--config.train.log_every=5", "--config.optim.warmup_steps=5", *extra]
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(cache_dir),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout + result.stderr


@pytest.mark.slow
def test_cli_pretrains_then_resumes(synthetic_data_dir, tmp_path):
    workdir, cache = tmp_path / "run", tmp_path / "jax_cache"
    first = _main(workdir, synthetic_data_dir, 30, cache)
    assert "windows/s" in first and "resumed" not in first
    assert {"config.json", "metrics.jsonl", "tb", "checkpoints", "encoder",
            "loss_curve.png"} <= set(os.listdir(workdir))
    assert os.listdir(workdir / "tb")
    assert sorted(os.listdir(workdir / "checkpoints")) == ["10", "20", "30"]
    assert (workdir / "encoder" / "encoder.json").exists()

    second = _main(workdir, synthetic_data_dir, 40, cache)
    assert "resumed from step 30" in second and "train.steps: 30 -> 40" in second
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(5, 45, 5))
    losses = [row["loss"] for row in rows]
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses
    encoder = json.loads((workdir / "encoder" / "encoder.json").read_text())
    assert encoder["extra"]["step"] == 40
