"""aot.py / --mode=compile: the real sharded train step compiled for named TPU topologies.

The `tpu_compile` tests need libtpu (requirements-tpu.txt; `MDJPT_TPU=1 bash test.sh -m
tpu_compile`, the third CI stage). They are deselected by default and are never skipped:
without libtpu they fail with the install message. Each compiles the synthetic (tiny)
config, ~1 min per topology on 2 CPU cores.
"""

import importlib.util
import json
import os
import subprocess
import sys

import jax
import pytest
from jax.sharding import PartitionSpec

from configs import pretrain
from mdjpt_jax import distributed
from mdjpt_jax.pretrain import aot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _compile_cli(topology, *overrides):
    command = [
        sys.executable,
        "-m",
        "mdjpt_jax.main",
        "--mode=compile",
        "--config=configs/pretrain.py:synthetic",
        f"--topology={topology}",
        *overrides,
    ]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # the test suite's simulated CPU devices play no part
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def _report(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_without_libtpu_compile_mode_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "libtpu" else real_find_spec(name, *a),
    )
    with pytest.raises(SystemExit, match="MDJPT_TPU=1 bash scripts/ensure_venv.sh"):
        aot.topology_devices("v5e:2x2")


@pytest.mark.tpu_compile
@pytest.mark.parametrize("topology, chips, pairs", [("v5e:2x2", 4, 8), ("v5e:16x16", 256, 256)])
def test_compile_mode_reports_a_fitting_step(topology, chips, pairs):
    report = _report(_compile_cli(topology, f"--config.data.pairs_per_step={pairs}"))
    assert report["chips"] == chips and report["chip"] == "v5e"
    assert report["pairs_per_chip"] == pairs // chips
    assert report["batch_per_chip"][1] == pairs // chips
    memory = report["memory_bytes"]
    assert memory["arguments"] > 0 and 0 < memory["total"] <= report["hbm_bytes"]
    assert report["fits"] is True
    assert report["model_flops"] > 0 and report["bytes_accessed"] > 0
    assert report["roofline_step_s"] > 0


@pytest.mark.tpu_compile
def test_step_that_does_not_fit_exits_non_zero_with_the_numbers():
    # 4096 pairs x 64 windows per chip of the tiny model: far beyond 16 GiB.
    result = _compile_cli(
        "v5e:2x2", "--config.data.pairs_per_step=16384", "--config.data.windows_per_pair=64"
    )
    assert result.returncode != 0
    # Either our check of the compiled memory or the TPU compiler's own out-of-memory.
    assert "error: the step does not fit in HBM" in result.stderr


@pytest.mark.tpu_compile
def test_pairs_not_divisible_by_chips_exits_non_zero():
    result = _compile_cli("v5e:16x16")  # synthetic P = 2 over 256 chips
    assert result.returncode != 0
    assert "must be divisible by the number of devices (256)" in result.stderr


@pytest.mark.tpu_compile
def test_compiled_step_splits_the_batch_over_the_data_axis():
    devices = aot.topology_devices("v5e:2x2")
    config = pretrain.get_config("synthetic")
    config.data.pairs_per_step = 8  # two pairs per chip
    compiled, program, _, mesh = aot.compile_step(config, devices)
    state_shardings, batch_shardings, _ = compiled.input_shardings[0]  # key: unused
    # The step reads only batch["eeg"]; jit prunes unused inputs (sharding None).
    eeg = batch_shardings["eeg"]
    assert not eeg.is_fully_replicated
    assert eeg.spec == PartitionSpec(None, distributed.DATA_AXIS)
    assert eeg.shard_shape(program.batch["eeg"].shape)[1] == 8 // len(devices)
    assert all(batch_shardings[name] in (None, eeg) for name in program.batch)
    assert all(s.is_fully_replicated for s in jax.tree.leaves(state_shardings))
    assert mesh.devices.size == 4


@pytest.mark.tpu_compile
@pytest.mark.parametrize(
    "topology, chips, chip",
    [("v5e:2x2", 4, "v5e"), ("v4:2x2x2", 8, "v4"), ("v5p:2x2x2", 8, "v5p"), ("v6e:2x2", 4, "v6e")],
)
def test_topologies_have_one_device_per_chip_and_known_chip_numbers(topology, chips, chip):
    devices = aot.topology_devices(topology)  # v4 / v5p: megacore, as on a real pod
    assert len(devices) == chips
    assert aot.CHIPS[devices[0].device_kind].name == chip


@pytest.mark.tpu_compile
def test_per_chip_memory_does_not_grow_with_the_chip_count():
    """Same per-chip batch (one pair per chip) on 4 and 256 chips: CDA grouped by subject is
    computed from each chip's own pair slices, so nothing of size P_total sits on a chip."""
    small, large = (
        _report(_compile_cli(topology, f"--config.data.pairs_per_step={pairs}"))
        for topology, pairs in (("v5e:2x2", 4), ("v5e:16x16", 256))
    )
    assert small["batch_per_chip"] == large["batch_per_chip"]
    temporaries = [r["memory_bytes"]["temporaries"] for r in (small, large)]
    assert temporaries[1] <= 1.1 * temporaries[0], temporaries


def test_flops_and_bytes_per_step_leave_out_the_diagnostics_branch():
    """The CDA diagnostics run one step in diagnose_every inside a lax.cond whose both
    branches XLA's cost analysis adds: the report's per-step cost is of the step without
    them (checked on CPU devices; the program is the same as for a TPU topology)."""
    import dataclasses

    config = pretrain.get_config("synthetic")
    config.data.windows_per_pair = 4
    compiled, _, settings, mesh = aot.compile_step(config, jax.devices()[:1])
    assert settings.diagnose_every > 0
    steady = aot.steady_step(compiled, settings, mesh)
    real_cost, steady_cost = aot.cost_analysis(compiled), aot.cost_analysis(steady)
    assert 0 < steady_cost["flops"] < 0.8 * real_cost["flops"]
    without = dataclasses.replace(settings, diagnose_every=0)
    assert aot.steady_step(compiled, without, mesh) is compiled
    assert aot.model_flops(settings, 1) == aot.model_flops(without, 1)
    report = aot.analyze(compiled, settings, mesh, None, cost_compiled=steady)
    assert report["flops"] == steady_cost["flops"] and report["remat_policy"] == "full"
    assert report["memory_bytes"]["total"] > 0
