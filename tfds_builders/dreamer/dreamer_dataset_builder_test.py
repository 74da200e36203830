"""DREAMER builder: contract on a fake DREAMER.mat, values, labels, ratings and bad inputs."""

import numpy as np
import pytest
from scipy import io as sio

from tfds_builders import preprocessing
from tfds_builders import testing
from tfds_builders.dreamer import dreamer_dataset_builder as dreamer
from tfds_builders.dreamer import make_dummy_data
from tfds_builders.validation import InvalidDataError

N_SUBJECTS = 2


def _by_id(records):
    return {(int(r["subject"]), int(r["trial"])): r for r in records}


def _stored_subject(path, subject):
    """Independent read, the way public loaders index the file."""
    return sio.loadmat(path)["DREAMER"][0, 0]["Data"][0, subject]


def _corrupt(tmp_path, edit):
    top = make_dummy_data.dreamer_struct(np.random.default_rng(0), 1, min_s=1, max_s=1)
    edit(top)
    make_dummy_data.write(tmp_path / "manual", top=top)
    return tmp_path / "manual"


def _set(*keys, value):
    def edit(top):
        node = top
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return edit


def _nan_trial(top):
    top["Data"][0, 0]["EEG"]["stimuli"][3, 0][5, 2] = np.nan


class TestDreamer(testing.BuilderContract):
    DATASET_CLASS = dreamer.Builder
    SPLITS = {"train": N_SUBJECTS * 18}

    @classmethod
    def make_manual_dir(cls, tmp_path):
        make_dummy_data.write(tmp_path, n_subjects=N_SUBJECTS, seed=7)
        return tmp_path

    @pytest.mark.parametrize("config, fs", [("raw", 128.0), ("preprocessed", 125.0)])
    def test_contract(self, contract_builds, config, fs):
        builder, records = contract_builds[config]
        records = _by_id(records)
        assert len(records) == N_SUBJECTS * 18
        assert all(
            r["eeg"].dtype == np.float32 and r["eeg"].shape[0] == 14 for r in records.values()
        )
        meta = builder.info.metadata
        assert meta["channel_names"] == list(dreamer.CHANNEL_NAMES) and meta["sampling_rate"] == fs
        assert meta["ratings_names"] == ["valence", "arousal", "dominance"]

    def test_values_equal_the_file(self, contract_builds, contract_manual_dir):
        path = contract_manual_dir / "DREAMER.mat"
        stimulus = _stored_subject(path, 1)["EEG"][0, 0]["stimuli"][0, 0][4, 0]  # [time, 14]
        raw = _by_id(contract_builds["raw"][1])[(1, 4)]
        pre = _by_id(contract_builds["preprocessed"][1])[(1, 4)]
        np.testing.assert_array_equal(raw["eeg"], stimulus.T.astype(np.float32))
        np.testing.assert_allclose(
            pre["eeg"], preprocessing.preprocess_trial(stimulus.T, 128.0), rtol=1e-5, atol=1e-4
        )
        assert raw["source_file"] == b"DREAMER.mat" and raw["key"] == b"Data{2}.EEG.stimuli{5}"

    def test_ratings_and_threshold_label(self, contract_builds, contract_manual_dir):
        subject = _stored_subject(contract_manual_dir / "DREAMER.mat", 0)
        scores = np.concatenate(
            [subject[f][0, 0] for f in ("ScoreValence", "ScoreArousal", "ScoreDominance")], 1
        )
        records = _by_id(contract_builds["raw"][1])
        for clip in range(18):
            r = records[(0, clip)]
            np.testing.assert_array_equal(r["ratings"], scores[clip].astype(np.float32))
            assert int(r["label"]) == int(scores[clip, 0] >= 3) and int(r["stimulus"]) == clip
        assert int(records[(0, 0)]["label"]) == 1 and int(records[(0, 1)]["label"]) == 0  # 3 vs 2.

    @pytest.mark.parametrize(
        "edit, match",
        [
            (_set("EEG_SamplingRate", value=256.0), "DREAMER.mat: EEG_SamplingRate is 256 Hz"),
            (
                _set(
                    "EEG_Electrodes",
                    value=np.array([["AF3", "F7", "XX9"] + ["O1"] * 11], dtype=object),
                ),
                r"DREAMER.mat: unknown channel name\(s\) \['XX9'\]",
            ),
            (
                _set("noOfSubjects", value=2.0),
                "DREAMER.mat: Data holds 1 subjects but noOfSubjects is 2",
            ),
            (_nan_trial, r"DREAMER.mat: Data\{1\}.EEG.stimuli\{4\}: 1 non-finite"),
            (
                lambda top: top["Data"][0, 0].pop("ScoreArousal"),
                "DREAMER.mat: missing key 'ScoreArousal'",
            ),
            (
                lambda top: top["Data"][0, 0]["ScoreValence"].__setitem__((2, 0), 6.0),
                r"DREAMER.mat: Data\{1\}.ScoreValence: rating\(s\) .* out of range \[1, 5\]",
            ),
        ],
    )
    def test_bad_input_names_file_and_problem(self, tmp_path, edit, match):
        with pytest.raises(InvalidDataError, match=match):
            self.build("raw", _corrupt(tmp_path, edit), tmp_path / "data")

    def test_wrong_orientation_is_reported(self, tmp_path):
        def transpose(top):
            top["Data"][0, 0]["EEG"]["stimuli"][0, 0] = top["Data"][0, 0]["EEG"]["stimuli"][0, 0].T

        with pytest.raises(InvalidDataError, match=r"stimuli\{1\}: expected \[time, 14\]"):
            self.build("raw", _corrupt(tmp_path, transpose), tmp_path / "data")

    def test_truncated_and_missing_file(self, contract_manual_dir, tmp_path):
        manual = tmp_path / "manual"
        manual.mkdir()
        # TFDS rejects an empty dir itself.
        (manual / "DREAMER_readme.pdf").write_bytes(b"not the data")
        with pytest.raises(InvalidDataError, match="DREAMER.mat: missing file"):
            self.build("raw", manual, tmp_path / "data")
        (manual / "DREAMER.mat").write_bytes(
            (contract_manual_dir / "DREAMER.mat").read_bytes()[:5000]
        )
        with pytest.raises(InvalidDataError, match="DREAMER.mat: unreadable MAT file"):
            self.build("raw", manual, tmp_path / "data")
