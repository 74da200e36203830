"""`python -m mdjpt_jax.main` end to end on synthetic data: resume, and SIGKILL at any time."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from flax import nnx

from mdjpt_jax import checkpointing

REPO = pathlib.Path(__file__).resolve().parents[1]


def _command(workdir, data_dir, steps, checkpoint_every=10, log_every=5):
    return [
        sys.executable,
        "-m",
        "mdjpt_jax.main",
        "--config=configs/pretrain.py:synthetic",
        f"--workdir={workdir}",
        f"--config.data.data_dir={data_dir}",
        f"--config.train.steps={steps}",
        f"--config.train.checkpoint_every={checkpoint_every}",
        f"--config.train.log_every={log_every}",
        "--config.optim.warmup_steps=5",
    ]


def _env(cache_dir):
    """Subprocesses share one persistent XLA cache: only the first compiles the step. Two
    simulated devices: the synthetic preset's P = 2 pairs split one per device."""
    return dict(
        os.environ,
        JAX_COMPILATION_CACHE_DIR=str(cache_dir),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )


def _main(workdir, data_dir, steps, cache_dir, **fields):
    result = subprocess.run(
        _command(workdir, data_dir, steps, **fields),
        cwd=REPO,
        env=_env(cache_dir),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout + result.stderr


def _rows(workdir):
    lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "windows_per_s"} for line in lines]


def _encoder_params(workdir):
    encoder, _ = checkpointing.load_encoder(os.path.join(workdir, "encoder"))
    return jax.tree.leaves(jax.device_get(nnx.state(encoder, nnx.Param)))


@pytest.mark.slow
def test_cli_pretrains_then_resumes(synthetic_data_dir, tmp_path):
    workdir, cache = tmp_path / "run", tmp_path / "jax_cache"
    first = _main(workdir, synthetic_data_dir, 30, cache)
    assert "windows/s" in first and "resumed" not in first
    assert {
        "config.json",
        "metrics.jsonl",
        "tb",
        "checkpoints",
        "encoder",
        "loss_curve.png",
    } <= set(os.listdir(workdir))
    assert os.listdir(workdir / "tb")
    assert sorted(os.listdir(workdir / "checkpoints")) == ["10", "20", "30"]
    assert (workdir / "encoder" / "encoder.json").exists()

    second = _main(workdir, synthetic_data_dir, 40, cache)
    assert "resumed from step 30" in second and "train.steps: 30 -> 40" in second
    rows = _rows(workdir)
    # Step 0 holds the learning-curve evaluation of the initial encoder (no loss yet).
    assert [row["step"] for row in rows] == list(range(0, 45, 5))
    assert "loss" not in rows[0] and "eval/retrieval_features" in rows[0]
    losses = [row["loss"] for row in rows[1:]]
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses
    encoder = json.loads((workdir / "encoder" / "encoder.json").read_text())
    assert encoder["extra"]["step"] == 40
    assert '"steps": 40' in (workdir / "encoder" / "README.md").read_text()  # the run's config


@pytest.mark.slow
def test_sigkill_at_any_time_then_same_command_equals_uninterrupted(synthetic_data_dir, tmp_path):
    """SIGKILL (no handler runs) while checkpoints are being written asynchronously."""
    cache, steps = tmp_path / "jax_cache", 12
    fields = dict(checkpoint_every=2, log_every=1)
    reference = tmp_path / "reference"
    _main(reference, synthetic_data_dir, steps, cache, **fields)

    workdir = tmp_path / "killed"
    process = subprocess.Popen(
        _command(workdir, synthetic_data_dir, steps, **fields),
        cwd=REPO,
        env=_env(cache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = workdir / "checkpoints"
    deadline = time.monotonic() + 600
    # Kill once step 4's checkpoint exists: later saves (6, 8, ...) may be half written.
    while not (checkpoints.exists() and "4" in os.listdir(checkpoints)):
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (workdir / "encoder" / "encoder.json").exists()

    output = _main(workdir, synthetic_data_dir, steps, cache, **fields)
    assert "resumed from step" in output
    assert _rows(workdir) == _rows(reference)  # every step logged once, same numbers
    for a, b in zip(_encoder_params(workdir), _encoder_params(reference)):
        np.testing.assert_array_equal(a, b)
