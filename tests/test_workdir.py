"""workdir.atomic_write, the one atomic write: unique temporary names per process and call,
and a failed write leaves the old file and no temporary file behind."""

import os
import re

import numpy as np
import pytest

from mdjpt_jax import workdir


def test_two_writers_of_one_destination_never_share_a_temporary_name(tmp_path):
    path = str(tmp_path / "out.json")
    seen = []

    def remember(temporary):
        seen.append(temporary)
        with open(temporary, "w") as f:
            f.write("x")

    workdir.atomic_write(path, remember)
    workdir.atomic_write(path, remember)
    assert len(set(seen)) == 2
    for temporary in seen:
        assert os.path.dirname(temporary) == str(tmp_path)  # same folder: rename is atomic
        assert re.fullmatch(re.escape(path) + rf"\.tmp{os.getpid()}-[0-9a-f]+", temporary)
    assert sorted(os.listdir(tmp_path)) == ["out.json"]


def test_an_exception_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "out.json")
    workdir.write_json(path, {"old": 1})

    def fail_halfway(temporary):
        with open(temporary, "w") as f:
            f.write('{"new": ')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="mid-write"):
        workdir.atomic_write(path, fail_halfway)
    assert workdir.read_json(path) == {"old": 1}
    assert sorted(os.listdir(tmp_path)) == ["out.json"]


def test_npz_writes_keep_their_extension_and_land_whole(tmp_path):
    path = str(tmp_path / "a.npz")
    workdir.save_npz(path, x=np.arange(3))
    with np.load(path) as f:
        np.testing.assert_array_equal(f["x"], np.arange(3))
    assert sorted(os.listdir(tmp_path)) == ["a.npz"]
