"""FACED builder: contract on fake Processed_data, values, labels and bad inputs."""

import os
import pickle
import re

import numpy as np
import pytest

from tfds_builders import file_readers
from tfds_builders import preprocessing
from tfds_builders import testing
from tfds_builders.faced import faced_dataset_builder as faced
from tfds_builders.faced import make_dummy_data
from tfds_builders.validation import InvalidDataError

N_SUBJECTS = 2
N_TIMES = 500  # 2 s at 250 Hz instead of the official 30 s, to keep the test fast.


def _by_id(records):
    return {(int(r["subject"]), int(r["stimulus"])): r for r in records}


def _one_subject(tmp_path, array=None, raw_bytes=None):
    folder = tmp_path / "manual" / "Processed_data"
    folder.mkdir(parents=True)
    path = folder / "sub000.pkl"
    if raw_bytes is not None:
        path.write_bytes(raw_bytes)
    else:
        with open(path, "wb") as f:
            pickle.dump(array, f, protocol=2)
    return tmp_path / "manual"


def _good_array():
    return make_dummy_data.subject_array(np.random.default_rng(0), N_TIMES)


class TestFaced(testing.BuilderContract):
    DATASET_CLASS = faced.Builder
    SPLITS = {"train": N_SUBJECTS * 28}
    CLASS_OVERRIDES = {"N_SUBJECTS": N_SUBJECTS, "N_TIMES": N_TIMES}

    @classmethod
    def make_manual_dir(cls, tmp_path):
        make_dummy_data.write(tmp_path, n_subjects=N_SUBJECTS, n_times=N_TIMES, seed=3)
        return tmp_path

    @pytest.mark.parametrize(
        "config, n_times, fs", [("raw", N_TIMES, 250.0), ("preprocessed", N_TIMES // 2, 125.0)]
    )
    def test_contract(self, contract_builds, config, n_times, fs):
        builder, records = contract_builds[config]
        assert len(records) == N_SUBJECTS * 28
        assert len({(int(r["subject"]), int(r["trial"])) for r in records}) == len(records)
        assert all(
            r["eeg"].dtype == np.float32 and r["eeg"].shape == (32, n_times) for r in records
        )
        meta = builder.info.metadata
        assert meta["channel_names"][16:18] == ["CP1", "CP2"]
        assert meta["channel_names"][-2:] == ["A2", "A1"]
        assert meta["sampling_rate"] == fs and meta["label_names"][4] == "neutral"
        assert builder.info.features["label"].names == list(faced.LABEL_NAMES)

    def test_values_equal_the_pickle(self, contract_builds, contract_manual_dir):
        stored = file_readers.load_latin1_pickle(
            contract_manual_dir / "Processed_data" / "sub001.pkl"
        )
        raw = _by_id(contract_builds["raw"][1])[(1, 16)]
        pre = _by_id(contract_builds["preprocessed"][1])[(1, 16)]
        np.testing.assert_array_equal(raw["eeg"], stored[16].astype(np.float32))
        np.testing.assert_allclose(
            pre["eeg"], preprocessing.preprocess_trial(stored[16], 250.0), rtol=1e-5, atol=1e-5
        )
        assert raw["source_file"] == b"Processed_data/sub001.pkl" and raw["key"] == b"video17"

    def test_labels_follow_video_index(self, contract_builds):
        records = _by_id(contract_builds["raw"][1])
        expected = {
            0: ("anger", 0),
            11: ("sadness", 0),
            12: ("neutral", 1),
            15: ("neutral", 1),
            16: ("amusement", 2),
            22: ("joy", 2),
            27: ("tenderness", 2),
        }
        for video, (name, valence) in expected.items():
            r = records[(0, video)]
            assert faced.LABEL_NAMES[int(r["label"])] == name and int(r["valence"]) == valence

    @pytest.mark.parametrize(
        "case, match",
        [
            ("truncated", "sub000.pkl: unreadable pickle"),
            ("wrong_shape", rf"sub000.pkl: expected shape \(28, 32, {N_TIMES}\)"),
            ("nan", "sub000.pkl: video03: 1 non-finite"),
            ("not_array", "sub000.pkl: expected a pickled ndarray"),
        ],
    )
    def test_bad_input_names_file_and_problem(self, tmp_path, case, match):
        good = _good_array()
        if case == "truncated":
            manual = _one_subject(tmp_path, raw_bytes=pickle.dumps(good, protocol=2)[:1000])
        elif case == "wrong_shape":
            manual = _one_subject(tmp_path, good[:, :30])
        elif case == "nan":
            good[2, 5, 100] = np.nan
            manual = _one_subject(tmp_path, good)
        else:
            manual = _one_subject(tmp_path, {"data": good})
        with pytest.raises(InvalidDataError, match=match):
            self.build("raw", manual, tmp_path / "data", N_SUBJECTS=1)

    def test_missing_subject_file(self, contract_manual_dir, tmp_path):
        with pytest.raises(InvalidDataError, match="sub002.pkl: missing file"):
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
            seed=3,
            dtype=dtype,
            order=order,
        )  # The contract's values.
        array = file_readers.load_latin1_pickle(paths[0])
        assert array.dtype == dtype and array.flags.f_contiguous == (order == "F")
        builder = self.build("raw", tmp_path / "manual", tmp_path / "data")
        testing.assert_same_records(self.read_all(builder), contract_builds["raw"][1])

    @pytest.mark.parametrize("target", testing.PAYLOAD_TARGETS)
    def test_code_in_a_pickle_is_refused_not_run(self, tmp_path, target):
        paths = make_dummy_data.write(tmp_path / "manual", n_subjects=3, n_times=N_TIMES)
        marker = tmp_path / "payload_ran"
        with open(paths[1], "wb") as f:  # sub001.pkl: a call where the array should be.
            f.write(testing.code_running_pickle(target, marker))
        match = rf"sub001\.pkl: refused global {re.escape(target)}\b"
        with pytest.raises(InvalidDataError, match=match):
            self.build("raw", tmp_path / "manual", tmp_path / "data", N_SUBJECTS=3)
        assert os.listdir(tmp_path / "data") == [] and not marker.exists()
