"""SEED-VII builder: contract on a fake download, values, labels, MAT v5 + v7.3, bad inputs."""

import collections
import os
import re
import shutil

import numpy as np
import pytest
from scipy import io as sio

from tfds_builders import dummy_data
from tfds_builders import preprocessing
from tfds_builders import testing
from tfds_builders import seed_family
from tfds_builders.seed_vii import make_dummy_data
from tfds_builders.seed_vii import seed_vii_dataset_builder as seed_vii
from tfds_builders.validation import InvalidDataError

SUBJECTS = (1, 2)


def _by_id(records):
    return {(int(r["subject"]), int(r["stimulus"])): r for r in records}


class TestSeedVII(testing.BuilderContract):
    DATASET_CLASS = seed_vii.Builder
    SPLITS = {"train": len(SUBJECTS) * 80}
    CLASS_OVERRIDES = {"SUBJECTS": SUBJECTS}

    @classmethod
    def make_manual_dir(cls, tmp_path):
        make_dummy_data.write(tmp_path, subjects=SUBJECTS, seed=3)
        return tmp_path

    @pytest.mark.parametrize("config, fs", [("raw", 200.0), ("preprocessed", 125.0)])
    def test_contract(self, contract_builds, config, fs):
        builder, records = contract_builds[config]
        records = _by_id(records)
        assert len(records) == len(SUBJECTS) * 80
        assert (
            len({(s, int(r["session"]), int(r["trial"])) for (s, _), r in records.items()})
            == len(SUBJECTS) * 80
        )
        for (_, stimulus), r in records.items():
            n_raw = make_dummy_data.trial_samples(stimulus)
            n_times = n_raw if config == "raw" else -(-n_raw * 5 // 8)  # ceil(N * 125 / 200).
            assert r["eeg"].dtype == np.float32 and r["eeg"].shape == (62, n_times)
        meta = builder.info.metadata
        assert meta["channel_names"] == list(seed_family.CHANNEL_NAMES)
        assert meta["sampling_rate"] == fs
        assert meta["label_names"] == [
            "happy",
            "neutral",
            "disgust",
            "sad",
            "anger",
            "surprise",
            "fear",
        ]
        assert meta["label_to_valence"]["surprise"] == -1

    def test_values_equal_the_mat_file(self, contract_builds, contract_manual_dir):
        stored = sio.loadmat(contract_manual_dir / "EEG_preprocessed" / "2.mat")["47"]
        raw = _by_id(contract_builds["raw"][1])[(1, 46)]
        pre = _by_id(contract_builds["preprocessed"][1])[(1, 46)]
        assert raw["source_file"] == b"EEG_preprocessed/2.mat" and raw["key"] == b"47"
        np.testing.assert_array_equal(raw["eeg"], stored.astype(np.float32))
        np.testing.assert_allclose(
            pre["eeg"], preprocessing.preprocess_trial(stored, 200.0), rtol=1e-5, atol=1e-5
        )

    def test_labels_sessions_and_stimuli(self, contract_builds):
        records = _by_id(contract_builds["raw"][1])
        names = seed_vii.LABEL_NAMES
        # DATASETS.md §4, session 2 = keys 21-40: Anger, Sad, Fear, Neutral, Surprise, ... (x2).
        s2 = [names[int(records[0, k]["label"])] for k in range(20, 30)]
        assert s2 == [
            "anger",
            "sad",
            "fear",
            "neutral",
            "surprise",
            "surprise",
            "neutral",
            "fear",
            "sad",
            "anger",
        ]
        assert [names[int(records[0, k]["label"])] for k in (0, 39, 40, 79)] == [
            "happy",
            "anger",
            "happy",
            "disgust",
        ]
        counts = collections.Counter(names[label] for label in seed_vii.TRIAL_LABELS)
        assert counts == {"neutral": 8, **{n: 12 for n in names if n != "neutral"}}
        for (subject, stimulus), r in records.items():
            assert int(r["session"]) == stimulus // 20 and int(r["trial"]) == stimulus % 20
            assert r["key"].decode() == str(stimulus + 1)
            assert r["source_file"].decode() == f"EEG_preprocessed/{subject + 1}.mat"
            assert int(r["valence"]) == seed_vii.LABEL_TO_VALENCE[names[int(r["label"])]]

    @pytest.mark.parametrize(
        "case, match",
        [
            ("missing_subject", r"EEG_preprocessed: .*missing subject\(s\) \[2\]"),
            ("missing_trial", r"EEG_preprocessed/1.mat: expected trial variables .*missing \[80\]"),
            ("garbage", r"EEG_preprocessed/1.mat: unreadable MAT file"),
            ("v73_wrong_shape", r"EEG_preprocessed/1.mat: 5: expected 62 channels"),
        ],
    )
    def test_bad_input_names_file_and_problem(self, contract_manual_dir, tmp_path, case, match):
        manual = tmp_path / "manual"
        shutil.copytree(contract_manual_dir, manual)
        first = manual / "EEG_preprocessed" / "1.mat"
        if case == "missing_subject":
            os.remove(manual / "EEG_preprocessed" / "2.mat")
        elif case == "garbage":
            first.write_bytes(b"not a MAT file" * 20)
        else:
            arrays = {k: v for k, v in sio.loadmat(first).items() if not k.startswith("__")}
            if case == "missing_trial":
                del arrays["80"]
            else:
                arrays["5"] = arrays["5"][:61]
            dummy_data.write_mat(first, arrays, version="5" if case == "missing_trial" else "7.3")
        with pytest.raises(InvalidDataError, match=match):
            self.build("raw", manual, tmp_path / "data")


def test_mat_v73_reads_like_v5(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "3": rng.normal(size=(62, 210)),
        "1": rng.normal(size=(62, 205)),
        "x": np.ones((2, 3)),
    }
    dummy_data.write_mat(tmp_path / "a.mat", arrays, version="5")
    dummy_data.write_mat(tmp_path / "b.mat", arrays, version="7.3")
    with pytest.raises(NotImplementedError):  # scipy alone cannot read the v7.3 file.
        sio.loadmat(tmp_path / "b.mat")
    v5, v73 = seed_family.MatFile(tmp_path / "a.mat"), seed_family.MatFile(tmp_path / "b.mat")
    assert (v5.is_hdf5, v73.is_hdf5) == (False, True)
    assert sorted(v5.names) == sorted(v73.names) == ["1", "3", "x"]
    for (name5, a5), (name73, a73) in zip(
        v5.read(["3", "1", "x"], batch_size=2), v73.read(["3", "1", "x"])
    ):
        assert name5 == name73
        np.testing.assert_array_equal(a5, arrays[name5])
        np.testing.assert_array_equal(a73, arrays[name5])


def test_numbered_keys_orders_by_number_not_file_order():
    names = ["10", "2", "__header__", "1", "x3"] + [str(k) for k in range(3, 10)]
    assert seed_family.numbered_keys(names, seed_vii.TRIAL_KEY, 10, "f.mat") == [
        str(k) for k in range(1, 11)
    ]
    keys = seed_family.numbered_keys(
        ["ab_eeg2", "ab_eeg10", "ab_eeg1"] + [f"ab_eeg{k}" for k in range(3, 10)],
        seed_family.MAT_TRIAL_KEY,
        10,
        "f.mat",
    )
    assert keys[1] == "ab_eeg2" and keys[9] == "ab_eeg10"
    with pytest.raises(InvalidDataError, match=re.escape("f.mat: expected trial variables")):
        seed_family.numbered_keys(["1", "2", "4"], seed_vii.TRIAL_KEY, 3, "f.mat")
