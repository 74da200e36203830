"""DEAP builder: contract on fake sNN.dat files, values, labels, ratings and bad inputs."""

import os
import pickle
import re

import numpy as np
import pytest

from tfds_builders import file_readers
from tfds_builders import preprocessing
from tfds_builders import testing
from tfds_builders.deap import deap_dataset_builder as deap
from tfds_builders.deap import make_dummy_data
from tfds_builders.validation import InvalidDataError

N_SUBJECTS = 2
N_TIMES = 384 + 256  # 3 s baseline + 2 s "video" instead of the official 3 s + 60 s.


def _by_id(records):
    return {(int(r["subject"]), int(r["trial"])): r for r in records}


def _stored(manual, subject):
    path = manual / "data_preprocessed_python" / f"s{subject + 1:02d}.dat"
    return file_readers.load_latin1_pickle(path)


def _one_subject(tmp_path, content=None, raw_bytes=None):
    folder = tmp_path / "manual" / "data_preprocessed_python"
    folder.mkdir(parents=True)
    path = folder / "s01.dat"
    path.write_bytes(raw_bytes if raw_bytes is not None else pickle.dumps(content, protocol=2))
    return tmp_path / "manual"


class TestDeap(testing.BuilderContract):
    DATASET_CLASS = deap.Builder
    SPLITS = {"train": N_SUBJECTS * 40}
    CLASS_OVERRIDES = {"N_SUBJECTS": N_SUBJECTS, "N_TIMES": N_TIMES}

    @classmethod
    def make_manual_dir(cls, tmp_path):
        make_dummy_data.write(tmp_path, n_subjects=N_SUBJECTS, n_times=N_TIMES, seed=5)
        return tmp_path

    @pytest.mark.parametrize(
        "config, n_times, fs", [("raw", N_TIMES, 128.0), ("preprocessed", 250, 125.0)]
    )
    def test_contract(self, contract_builds, config, n_times, fs):
        builder, records = contract_builds[config]
        records = _by_id(records)
        assert len(records) == N_SUBJECTS * 40
        assert all(
            r["eeg"].dtype == np.float32 and r["eeg"].shape == (32, n_times)
            for r in records.values()
        )
        assert all(r["ratings"].shape == (4,) for r in records.values())
        meta = builder.info.metadata
        assert meta["channel_names"][:4] == ["FP1", "AF3", "F3", "F7"]
        assert meta["channel_names"][16] == "FP2"
        assert meta["sampling_rate"] == fs
        assert meta["ratings_names"] == ["valence", "arousal", "dominance", "liking"]
        assert meta["label_to_valence"] == {"negative": 0, "positive": 2}

    def test_values_equal_the_file(self, contract_builds, contract_manual_dir):
        stored = _stored(contract_manual_dir, 1)["data"][7]
        raw = _by_id(contract_builds["raw"][1])[(1, 7)]
        pre = _by_id(contract_builds["preprocessed"][1])[(1, 7)]
        # Peripheral rows dropped.
        np.testing.assert_array_equal(raw["eeg"], stored[:32].astype(np.float32))
        expected = preprocessing.preprocess_trial(stored[:32, 384:], 128.0)  # Baseline dropped.
        np.testing.assert_allclose(pre["eeg"], expected, rtol=1e-5, atol=1e-5)
        assert (
            raw["source_file"] == b"data_preprocessed_python/s02.dat" and raw["key"] == b"trial08"
        )

    def test_ratings_and_threshold_label(self, contract_builds, contract_manual_dir):
        records = _by_id(contract_builds["preprocessed"][1])
        labels = _stored(contract_manual_dir, 0)["labels"]
        for t in range(40):
            r = records[(0, t)]
            np.testing.assert_array_equal(r["ratings"], labels[t].astype(np.float32))
            assert int(r["label"]) == int(labels[t, 0] >= 5.0) and int(r["stimulus"]) == t
            assert int(r["valence"]) == (2 if labels[t, 0] >= 5.0 else 0)
        # 5.0 vs 4.99.
        assert int(records[(0, 0)]["label"]) == 1 and int(records[(0, 1)]["label"]) == 0

    @pytest.mark.parametrize(
        "case, match",
        [
            ("truncated", "s01.dat: unreadable pickle"),
            ("missing_key", r"s01.dat: missing key\(s\) \['labels'\]"),
            ("wrong_shape", r"s01.dat: data: expected shape \(40, 40, 640\)"),
            ("inf", r"s01.dat: data\[3\]: 1 non-finite"),
            ("rating_range", r"s01.dat: labels\[2\]: rating\(s\) .* out of range \[1, 9\]"),
        ],
    )
    def test_bad_input_names_file_and_problem(self, tmp_path, case, match):
        content = make_dummy_data.subject_content(np.random.default_rng(0), N_TIMES)
        raw_bytes = None
        if case == "truncated":
            raw_bytes = pickle.dumps(content, protocol=2)[:2000]
        elif case == "missing_key":
            del content["labels"]
        elif case == "wrong_shape":
            content["data"] = content["data"][:, :, :-1]
        elif case == "inf":
            content["data"][3, 10, 5] = np.inf
        else:
            content["labels"][2, 1] = 9.5
        with pytest.raises(InvalidDataError, match=match):
            self.build(
                "raw", _one_subject(tmp_path, content, raw_bytes), tmp_path / "data", N_SUBJECTS=1
            )

    def test_missing_subject_file(self, contract_manual_dir, tmp_path):
        with pytest.raises(InvalidDataError, match="s03.dat: missing file"):
            self.build("raw", contract_manual_dir, tmp_path / "data", N_SUBJECTS=N_SUBJECTS + 1)

    @pytest.mark.parametrize(
        "dtype, order", [(np.float64, "F"), (np.float32, "C"), (np.float32, "F")]
    )
    def test_array_dtype_and_order_give_identical_records(
        self, contract_builds, tmp_path, dtype, order
    ):
        paths = make_dummy_data.write(
            tmp_path / "manual",
            n_subjects=N_SUBJECTS,
            n_times=N_TIMES,
            seed=5,
            dtype=dtype,
            order=order,
        )  # The contract's values.
        for name, array in file_readers.load_latin1_pickle(paths[0]).items():
            assert array.dtype == dtype and array.flags.f_contiguous == (order == "F"), name
        builder = self.build("raw", tmp_path / "manual", tmp_path / "data")
        testing.assert_same_records(self.read_all(builder), contract_builds["raw"][1])

    @pytest.mark.parametrize("target", testing.PAYLOAD_TARGETS)
    def test_code_in_a_pickle_is_refused_not_run(self, tmp_path, target):
        paths = make_dummy_data.write(tmp_path / "manual", n_subjects=3, n_times=N_TIMES)
        marker = tmp_path / "payload_ran"
        labels = make_dummy_data.subject_content(np.random.default_rng(0), N_TIMES)["labels"]
        hidden = testing.code_running_pickle(
            target, marker, lambda call: {"labels": labels, "data": call}
        )
        with open(
            paths[1], "wb"
        ) as f:  # s02.dat: valid labels, then a call where `data` should be.
            f.write(hidden)
        with pytest.raises(
            InvalidDataError, match=rf"s02\.dat: refused global {re.escape(target)}\b"
        ):
            self.build("raw", tmp_path / "manual", tmp_path / "data", N_SUBJECTS=3)
        assert os.listdir(tmp_path / "data") == [] and not marker.exists()
