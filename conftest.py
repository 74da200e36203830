"""Test-wide settings: 8 simulated CPU devices, set before JAX is imported."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TFDS_DISABLE_GCS", "1")

import pytest

SYNTHETIC_DATASETS = ("d0", "d1", "d2", "d3")


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory):
    """A TFDS data_dir with synthetic_emotion d0..d3 (demo: d0-d2 pre-train, d3 target).

    Built once per test session (about 20 s on 2 cores).
    """
    from tfds_builders import build

    data_dir = tmp_path_factory.mktemp("tfds")
    for config in SYNTHETIC_DATASETS:
        build.build_dataset("synthetic_emotion", config, data_dir)
    return data_dir
