"""SEED-IV builder: contract on a fake download, values, labels, sessions, bad inputs."""

import collections
import os
import shutil

import numpy as np
import pytest
from scipy import io as sio

from tfds_builders import preprocessing
from tfds_builders import testing
from tfds_builders import seed_family
from tfds_builders.seed_iv import make_dummy_data
from tfds_builders.seed_iv import seed_iv_dataset_builder as seed_iv
from tfds_builders.validation import InvalidDataError

SUBJECTS = (1, 2)


def _by_id(records):
    return {(int(r["subject"]), int(r["session"]), int(r["trial"])): r for r in records}


class TestSeedIV(testing.BuilderContract):
    DATASET_CLASS = seed_iv.Builder
    SPLITS = {"train": len(SUBJECTS) * 3 * 24}
    CLASS_OVERRIDES = {"SUBJECTS": SUBJECTS}

    @classmethod
    def make_manual_dir(cls, tmp_path):
        make_dummy_data.write(tmp_path, subjects=SUBJECTS, seed=2)
        return tmp_path

    @pytest.mark.parametrize("config, fs", [("raw", 200.0), ("preprocessed", 125.0)])
    def test_contract(self, contract_builds, config, fs):
        builder, records = contract_builds[config]
        records = _by_id(records)
        assert len(records) == len(SUBJECTS) * 3 * 24  # Unique (subject, session, trial).
        for (_, session, trial), r in records.items():
            n_raw = make_dummy_data.trial_samples(session, trial)
            n_times = n_raw if config == "raw" else -(-n_raw * 5 // 8)  # ceil(N * 125 / 200).
            assert r["eeg"].dtype == np.float32 and r["eeg"].shape == (62, n_times)
        meta = builder.info.metadata
        assert meta["channel_names"] == list(seed_family.CHANNEL_NAMES)
        assert meta["sampling_rate"] == fs
        assert meta["label_names"] == ["neutral", "sad", "fear", "happy"]
        assert meta["label_to_valence"] == {"neutral": 1, "sad": 0, "fear": 0, "happy": 2}

    def test_values_equal_the_mat_file(self, contract_builds, contract_manual_dir):
        stored = sio.loadmat(contract_manual_dir / "eeg_raw_data" / "3" / "2_20160712.mat")[
            "tyc_eeg9"
        ]
        raw = _by_id(contract_builds["raw"][1])[(1, 2, 8)]
        pre = _by_id(contract_builds["preprocessed"][1])[(1, 2, 8)]
        assert raw["source_file"] == b"eeg_raw_data/3/2_20160712.mat" and raw["key"] == b"tyc_eeg9"
        np.testing.assert_array_equal(raw["eeg"], stored.astype(np.float32))
        np.testing.assert_allclose(
            pre["eeg"], preprocessing.preprocess_trial(stored, 200.0), rtol=1e-5, atol=1e-5
        )

    def test_labels_sessions_and_stimuli(self, contract_builds):
        records = _by_id(contract_builds["raw"][1])
        names = seed_iv.LABEL_NAMES
        # Hand-checked against DATASETS.md §2: session 1 starts sad, fear, happy, neutral.
        assert [names[int(records[0, 0, t]["label"])] for t in range(4)] == [
            "sad",
            "fear",
            "happy",
            "neutral",
        ]
        assert names[int(records[1, 2, 23]["label"])] == "neutral"  # Last of session 3.
        for session in range(3):
            assert collections.Counter(seed_iv.SESSION_LABELS[session]) == {0: 6, 1: 6, 2: 6, 3: 6}
        for (subject, session, trial), r in records.items():
            assert int(r["label"]) == seed_iv.SESSION_LABELS[session][trial]
            assert int(r["valence"]) == seed_iv.LABEL_TO_VALENCE[names[int(r["label"])]]
            assert int(r["stimulus"]) == session * 24 + trial
            assert r["key"].decode().endswith(f"_eeg{trial + 1}")
            assert (
                r["source_file"].decode().startswith(f"eeg_raw_data/{session + 1}/{subject + 1}_")
            )

    @pytest.mark.parametrize(
        "case, match",
        [
            ("missing_session_file", r"eeg_raw_data/2: .*missing subject\(s\) \[2\]"),
            ("missing_session_folder", r"eeg_raw_data/3: missing folder"),
            ("second_file", r"eeg_raw_data/1: subject 1: expected one file"),
            ("nan", r"1/1_20160511.mat: cz_eeg24: 1 non-finite"),
        ],
    )
    def test_bad_input_names_file_and_problem(self, contract_manual_dir, tmp_path, case, match):
        manual = tmp_path / "manual"
        shutil.copytree(contract_manual_dir, manual)
        first = manual / "eeg_raw_data" / "1" / "1_20160511.mat"
        if case == "missing_session_file":
            os.remove(manual / "eeg_raw_data" / "2" / "2_20160612.mat")
        elif case == "missing_session_folder":
            shutil.rmtree(manual / "eeg_raw_data" / "3")
        elif case == "second_file":
            shutil.copy(first, manual / "eeg_raw_data" / "1" / "1_20170101.mat")
        else:
            arrays = {k: v for k, v in sio.loadmat(first).items() if not k.startswith("__")}
            arrays["cz_eeg24"][0, -1] = np.nan
            sio.savemat(first, arrays)
        with pytest.raises(InvalidDataError, match=match):
            self.build("raw", manual, tmp_path / "data")
