"""[slow] Two JAX processes on localhost (2 CPU devices each) == one process (4 devices).

Each process runs tests/multiprocess_worker.py: jax.distributed.initialize with a
127.0.0.1 coordinator (CPU collectives: gloo, jax's default), feeds only its own half of
the pairs through `distributed.host_batch_to_global`, and takes two train steps. The loss
history and the updated parameters must equal those of one process holding the whole
batch on 4 devices.
"""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multiprocess_worker.py")
TIMEOUT_S = 420
TOL = 1e-5
ATOL = 1e-10  # float64 run: floor for mathematically-zero gradients (see worker)
# Parameters: Adam moves a parameter whose gradient is mathematically zero (a bias before a
# normalization) by lr x g / eps per step, with g of float64 rounding size (<= 1e-14) that
# depends on the collectives' summation order: 2 steps x 1e-3 x 1e-14 / 1e-8.
PARAM_ATOL = 2 * 1e-3 * 1e-14 / 1e-8


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(out, process_id, num_processes, local_devices, port):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    command = [
        sys.executable,
        WORKER,
        f"--process_id={process_id}",
        f"--num_processes={num_processes}",
        f"--port={port}",
        f"--local_devices={local_devices}",
        f"--out={out}",
    ]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_all(processes):
    logs = []
    try:
        for process in processes:
            logs.append(process.communicate(timeout=TIMEOUT_S)[0])
    finally:
        for process in processes:  # only ours, by handle: never leave a worker behind
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log[-4000:]


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_equal_one_process(tmp_path):
    port = _free_port()
    multi, single = tmp_path / "two_processes.npz", tmp_path / "one_process.npz"
    _wait_all([_start(multi, 0, 2, 2, port), _start(multi, 1, 2, 2, port)])
    _wait_all([_start(single, 0, 1, 4, 0)])
    got, want = np.load(multi, allow_pickle=False), np.load(single, allow_pickle=False)
    assert sorted(got.files) == sorted(want.files)
    assert got["metric_loss"].shape == (2,) and np.all(got["metric_finite"])
    for name in want.files:
        atol = PARAM_ATOL if name.startswith("param") else ATOL
        np.testing.assert_allclose(got[name], want[name], rtol=TOL, atol=atol, err_msg=name)
