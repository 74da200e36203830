"""SEED builder: contract on a fake download, values, labels, session order, bad inputs."""

import os
import shutil

import numpy as np
import pytest
from scipy import io as sio

from tfds_builders import preprocessing
from tfds_builders import testing
from tfds_builders import seed_family
from tfds_builders.seed import make_dummy_data
from tfds_builders.seed import seed_dataset_builder as seed
from tfds_builders.validation import InvalidDataError

SUBJECTS = (1, 2)


def _by_id(records):
    return {(int(r["subject"]), int(r["session"]), int(r["trial"])): r for r in records}


def _corrupt(manual, tmp_path, case):
    """Copy of the fake download with one problem; returns (manual_dir, expected message)."""
    copy = tmp_path / "manual"
    shutil.copytree(manual, copy)
    folder = copy / "Preprocessed_EEG"
    first = folder / "1_20131027.mat"  # The first file read.
    arrays = {k: v for k, v in sio.loadmat(first).items() if not k.startswith("__")}
    if case == "missing_session":
        os.remove(folder / "2_20140413.mat")
        return copy, r"Preprocessed_EEG: subject 2: expected 3 session files"
    if case == "missing_subject":
        shutil.rmtree(folder)
        folder.mkdir()
        shutil.copy(manual / "Preprocessed_EEG" / "label.mat", folder)
        return copy, r"Preprocessed_EEG: .*missing subject\(s\) \[1, 2\]"
    if case == "missing_labels":
        os.remove(folder / "label.mat")
        return copy, "label.mat: missing file"
    if case == "label_out_of_range":
        sio.savemat(folder / "label.mat", {"label": np.array([[2] + [0] * 14])})
        return copy, r"label.mat: label\[0\] \+ 1: label 3(\.0)? out of range"
    if case == "truncated":
        first.write_bytes(first.read_bytes()[:3000])
        return copy, "1_20131027.mat: .*(unreadable|truncated)"
    if case == "missing_trial":
        del arrays["ab_eeg7"]
    elif case == "duplicate_trial":
        arrays["cd_eeg7"] = arrays["ab_eeg7"]
    elif case == "wrong_shape":
        arrays["ab_eeg7"] = arrays["ab_eeg7"][:61]
    elif case == "nan":
        arrays["ab_eeg7"][3, 10] = np.inf
    sio.savemat(first, arrays)
    return copy, {
        "missing_trial": r"1_20131027.mat: expected trial variables .*missing \[7\]",
        "duplicate_trial": r"1_20131027.mat: several variables for the same trial",
        "wrong_shape": r"1_20131027.mat: ab_eeg7: expected 62 channels",
        "nan": r"1_20131027.mat: ab_eeg7: 1 non-finite",
    }[case]


class TestSeed(testing.BuilderContract):
    DATASET_CLASS = seed.Builder
    SPLITS = {"train": len(SUBJECTS) * 3 * 15}
    CLASS_OVERRIDES = {"SUBJECTS": SUBJECTS}

    @classmethod
    def make_manual_dir(cls, tmp_path):
        make_dummy_data.write(tmp_path, subjects=SUBJECTS, seed=1)
        return tmp_path

    @pytest.mark.parametrize("config, fs", [("raw", 200.0), ("preprocessed", 125.0)])
    def test_contract(self, contract_builds, config, fs):
        builder, records = contract_builds[config]
        records = _by_id(records)
        assert len(records) == len(SUBJECTS) * 3 * 15  # Unique (subject, session, trial).
        assert len({r["key"] + r["source_file"] for r in records.values()}) == len(SUBJECTS) * 45
        for (subject, session, trial), r in records.items():
            seconds = make_dummy_data.trial_seconds(subject + 1, session, trial)
            n_times = (
                200 * seconds + 1 if config == "raw" else 125 * seconds
            )  # Extra sample dropped.
            assert r["eeg"].dtype == np.float32 and r["eeg"].shape == (62, n_times)
        meta = builder.info.metadata
        assert meta["channel_names"] == list(seed_family.CHANNEL_NAMES)
        assert meta["channel_names"][57] == "CB1" and meta["channel_names"][61] == "CB2"
        assert meta["sampling_rate"] == fs and meta["native_sampling_rate"] == 200.0
        assert builder.info.features["label"].names == ["negative", "neutral", "positive"]

    def test_values_equal_the_mat_file(self, contract_builds, contract_manual_dir):
        stored = sio.loadmat(contract_manual_dir / "Preprocessed_EEG" / "2_20131107.mat")[
            "xyz_eeg4"
        ]
        raw = _by_id(contract_builds["raw"][1])[(1, 1, 3)]
        pre = _by_id(contract_builds["preprocessed"][1])[(1, 1, 3)]
        assert raw["source_file"] == b"Preprocessed_EEG/2_20131107.mat"
        assert raw["key"] == b"xyz_eeg4"
        np.testing.assert_array_equal(raw["eeg"], stored.astype(np.float32))
        np.testing.assert_allclose(
            pre["eeg"], preprocessing.preprocess_trial(stored[:, 1:], 200.0), rtol=1e-5, atol=1e-5
        )

    def test_labels_sessions_and_stimuli(self, contract_builds, contract_manual_dir):
        labels = sio.loadmat(contract_manual_dir / "Preprocessed_EEG" / "label.mat")[
            "label"
        ].ravel()
        np.testing.assert_array_equal(labels, make_dummy_data.OFFICIAL_LABELS)
        dates = sorted(make_dummy_data._DATES)
        for (subject, session, trial), r in _by_id(contract_builds["raw"][1]).items():
            assert int(r["label"]) == labels[trial] + 1 and int(r["valence"]) == labels[trial] + 1
            assert int(r["stimulus"]) == trial
            assert r["key"].decode().endswith(f"_eeg{trial + 1}")  # Trial number from the key name.
            assert (
                r["source_file"].decode() == f"Preprocessed_EEG/{subject + 1}_{dates[session]}.mat"
            )

    @pytest.mark.parametrize(
        "case",
        [
            "missing_session",
            "missing_subject",
            "missing_labels",
            "label_out_of_range",
            "truncated",
            "missing_trial",
            "duplicate_trial",
            "wrong_shape",
            "nan",
        ],
    )
    def test_bad_input_names_file_and_problem(self, contract_manual_dir, tmp_path, case):
        manual, match = _corrupt(contract_manual_dir, tmp_path, case)
        with pytest.raises(InvalidDataError, match=match):
            self.build("raw", manual, tmp_path / "data")
