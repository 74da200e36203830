"""tfds_builders.build --subjects: explicit subsets, strict default, metadata, missing files."""

import numpy as np
import pytest

from tfds_builders import build, testing
from tfds_builders.faced import faced_dataset_builder as faced
from tfds_builders.faced import make_dummy_data as faced_dummy
from tfds_builders.seed_vii import make_dummy_data as seed_vii_dummy
from tfds_builders.validation import InvalidDataError


def test_parse_subjects():
    assert build.parse_subjects("1-5,8") == (1, 2, 3, 4, 5, 8)
    assert build.parse_subjects(" 3 , 1-2,2") == (1, 2, 3)
    assert build.parse_subjects(None) is None and build.parse_subjects("") is None
    for bad in ("0-2", "5-3", "a", "1-b"):
        with pytest.raises(ValueError, match="--subjects"):
            build.parse_subjects(bad)


def _subjects(builder):
    return sorted({int(r["subject"]) for r in testing.read_records(builder)})


def test_synthetic_subset_equals_those_subjects_of_the_full_build(synthetic_data_dir, tmp_path):
    subset = build.build_dataset("synthetic_emotion", "d0", tmp_path, subjects=(1, 3))
    assert subset.info.metadata["subjects"] == [1, 3]
    assert _subjects(subset) == [0, 2]  # full-dataset indices kept
    full = build.build_dataset("synthetic_emotion", "d0", synthetic_data_dir)
    assert "subjects" not in full.info.metadata  # a strict build records none
    full_records = {r["key"]: r for r in testing.read_records(full)}
    subset_records = testing.read_records(subset)
    assert len(subset_records) == sum(int(r["subject"]) in (0, 2) for r in full_records.values())
    for record in subset_records:
        np.testing.assert_array_equal(record["eeg"], full_records[record["key"]]["eeg"])
    with pytest.raises(ValueError, match=r"holds subjects \[1, 3\], not all"):
        build.build_dataset("synthetic_emotion", "d0", tmp_path)  # no silent reuse
    with pytest.raises(ValueError, match=r"\[99\] outside"):
        build.build_dataset("synthetic_emotion", "d1", tmp_path, subjects=(1, 99))


def test_faced_subset_of_a_partial_download(tmp_path, monkeypatch):
    monkeypatch.setattr(faced.Builder, "N_TIMES", 500)
    faced_dummy.write(tmp_path / "manual", n_subjects=3, n_times=500, seed=1)  # 3 of 123
    build.main(
        [
            "faced",
            "--data_dir",
            str(tmp_path / "data"),
            "--manual_dir",
            str(tmp_path / "manual"),
            "--config",
            "raw",
            "--subjects",
            "1,3",
        ]
    )
    built = faced.Builder(config="raw", data_dir=str(tmp_path / "data"))
    assert built.info.metadata["subjects"] == [1, 3] and _subjects(built) == [0, 2]
    with pytest.raises(InvalidDataError, match="sub004.pkl"):  # absent inside the subset
        build.build_dataset(
            "faced", "raw", tmp_path / "other", tmp_path / "manual", subjects=(2, 5)
        )
    with pytest.raises(InvalidDataError, match="sub003.pkl"):  # default stays strict
        build.build_dataset("faced", "raw", tmp_path / "strict", tmp_path / "manual")


def test_seed_family_subset_ignores_other_subjects_but_requires_its_own(tmp_path):
    seed_vii_dummy.write(tmp_path / "manual", subjects=(1, 3, 4), seed=2)
    built = build.build_dataset(
        "seed_vii", "raw", tmp_path / "data", tmp_path / "manual", subjects=(1, 3)
    )
    assert built.info.metadata["subjects"] == [1, 3] and _subjects(built) == [0, 2]
    with pytest.raises(InvalidDataError, match=r"missing subject\(s\) \[2\]"):
        build.build_dataset(
            "seed_vii", "raw", tmp_path / "other", tmp_path / "manual", subjects=(1, 2)
        )
