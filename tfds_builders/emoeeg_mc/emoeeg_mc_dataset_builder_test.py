"""EmoEEG-MC builder: contract on a fake BIDS download (EDF + events), values, labels, errors."""

import os
import shutil

import mne
import numpy as np
import pytest

from tfds_builders import preprocessing
from tfds_builders import testing
from tfds_builders.emoeeg_mc import bids_layout
from tfds_builders.emoeeg_mc import emoeeg_mc_dataset_builder as emo
from tfds_builders.emoeeg_mc import make_dummy_data
from tfds_builders.validation import InvalidDataError


def _by_id(records):
    return {(int(r["subject"]), int(r["session"]), int(r["trial"])): r for r in records}


def _edf_window(manual, sub, start_s, end_s):
    """Independent read: mne on the EDF, channels by name, seconds -> samples at 1200 Hz."""
    raw = mne.io.read_raw_edf(manual / sub / "eeg" / f"{sub}_task-emotion_eeg.edf", verbose="error")
    upper = {c.upper(): c for c in raw.ch_names}
    picks = [upper[c] for c in emo.CHANNEL_NAMES]
    return raw.get_data(picks=picks, start=int(start_s * 1200), stop=int(end_s * 1200)) * 1e6


def _copy(manual_dir, tmp_path):
    manual = tmp_path / "manual"
    shutil.copytree(manual_dir, manual)
    return manual


def _edit_text(path, old, new):
    path.write_text(path.read_text().replace(old, new))


class TestEmoEegMc(testing.BuilderContract):
    DATASET_CLASS = emo.Builder
    SPLITS = {"train": 2 * 2 * 3}

    @classmethod
    def make_manual_dir(cls, tmp_path):
        make_dummy_data.write(tmp_path, seed=11)
        return tmp_path

    @pytest.mark.parametrize(
        "config, fs, n_times", [("raw", 1200.0, 1200), ("preprocessed", 125.0, 125)]
    )
    def test_contract(self, contract_builds, config, fs, n_times):
        builder, records = contract_builds[config]
        records = _by_id(records)
        assert sorted(records) == [(s, c, t) for s in range(2) for c in range(2) for t in range(3)]
        assert all(
            r["eeg"].dtype == np.float32 and r["eeg"].shape == (64, n_times)
            for r in records.values()
        )
        meta = builder.info.metadata
        assert meta["channel_names"][:3] == ["FP1", "FPZ", "FP2"]
        assert meta["channel_names"][-1] == "TP10"
        assert meta["sampling_rate"] == fs and meta["session_names"] == ["video", "imagery"]
        assert meta["label_to_valence"]["fear"] == 0 and meta["label_to_valence"]["neutral"] == 1

    def test_values_equal_the_edf(self, contract_builds, contract_manual_dir):
        # sub-01 (events.tsv): video trial 1 starts at 0.5 + 1.5 s and ends at the rating 1 s later.
        expected = _edf_window(contract_manual_dir, "sub-01", 2.0, 3.0)
        raw = _by_id(contract_builds["raw"][1])[(0, 0, 1)]
        pre = _by_id(contract_builds["preprocessed"][1])[(0, 0, 1)]
        np.testing.assert_allclose(raw["eeg"], expected.astype(np.float32), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(
            pre["eeg"], preprocessing.preprocess_trial(expected, 1200.0), rtol=1e-5, atol=1e-4
        )
        assert raw["source_file"] == b"sub-01/eeg/sub-01_task-emotion_eeg.edf"
        assert raw["key"] == b"vid_01_sad4"

    def test_annotation_fallback_and_early_fade(self, contract_builds, contract_manual_dir):
        records = _by_id(contract_builds["raw"][1])
        # sub-02 has no events.tsv: trials come from EDF annotations. Imagery trial 1 ends at its
        # `fade` (1 s after the start), not at the rating 0.2 s later.
        np.testing.assert_allclose(
            records[(1, 1, 1)]["eeg"],
            _edf_window(contract_manual_dir, "sub-02", 6.5, 7.5).astype(np.float32),
            rtol=1e-6,
            atol=1e-6,
        )

    def test_labels_stimuli_and_valence(self, contract_builds):
        records = _by_id(contract_builds["raw"][1])
        expected = {
            (1, 0, 1): ("ins4", "inspiration", 2),
            (1, 0, 0): ("fear8", "fear", 0),
            (1, 1, 0): ("dis5", "disgust", 0),
            (0, 1, 2): ("neu8", "neutral", 1),
        }
        for (subject, session, trial), (stimulus, label, valence) in expected.items():
            r = records[(subject, session, trial)]
            assert int(r["stimulus"]) == emo.STIMULI.index(stimulus) + 21 * session
            assert emo.LABEL_NAMES[int(r["label"])] == label and int(r["valence"]) == valence

    def test_missing_edf(self, contract_manual_dir, tmp_path):
        manual = _copy(contract_manual_dir, tmp_path)
        os.remove(manual / "sub-02" / "eeg" / "sub-02_task-emotion_eeg.edf")
        with pytest.raises(InvalidDataError, match="sub-02_task-emotion_eeg.edf: missing file"):
            self.build("raw", manual, tmp_path / "data")

    def test_truncated_edf(self, contract_manual_dir, tmp_path):
        manual = _copy(contract_manual_dir, tmp_path)
        edf = manual / "sub-01" / "eeg" / "sub-01_task-emotion_eeg.edf"
        edf.write_bytes(edf.read_bytes()[:3000])
        with pytest.raises(InvalidDataError, match="sub-01_task-emotion_eeg.edf: "):
            self.build("raw", manual, tmp_path / "data")

    def test_trial_count_differs_from_readme(self, contract_manual_dir, tmp_path):
        manual = _copy(contract_manual_dir, tmp_path)
        _edit_text(manual / "README", "1. `['joy5', 'sad4', 'neu8']`", "1. `['joy5', 'sad4']`")
        with pytest.raises(
            InvalidDataError,
            match="sub-01_events.tsv: 3 'vid' trials in the events "
            "but the README sequence for sub01 has 2",
        ):
            self.build("raw", manual, tmp_path / "data")

    def test_unknown_stimulus_and_missing_column(self, contract_manual_dir, tmp_path):
        manual = _copy(contract_manual_dir, tmp_path)
        _edit_text(manual / "README", "'neu8'", "'xyz8'")
        with pytest.raises(
            InvalidDataError,
            match=r"sub-01_events.tsv: README sequence for sub01 has "
            r"unknown stimuli \['xyz8'\]",
        ):
            self.build("raw", manual, tmp_path / "data")
        _edit_text(manual / "sub-01" / "sub-01_events.tsv", "trial_type", "kind")
        with pytest.raises(
            InvalidDataError, match=r"sub-01_events.tsv: missing key\(s\) \['trial_type'\]"
        ):
            self.build("raw", manual, tmp_path / "data2")

    def test_missing_channel_and_raw_rate(self, contract_manual_dir, tmp_path):
        manual = _copy(contract_manual_dir, tmp_path)
        edf = manual / "sub-02" / "eeg" / "sub-02_task-emotion_eeg.edf"
        raw = mne.io.read_raw_edf(edf, preload=True, verbose="error").rename_channels({"Oz": "O9"})
        mne.export.export_raw(edf, raw, fmt="edf", overwrite=True, verbose="error")
        with pytest.raises(
            InvalidDataError,
            match=r"sub-02_task-emotion_eeg.edf: missing EEG channel\(s\) \['OZ'\]",
        ):
            self.build("preprocessed", manual, tmp_path / "data")
        with pytest.raises(
            InvalidDataError,
            match="sub-01_task-emotion_eeg.edf: sampled at 1200 Hz "
            "but the `raw` config stores 600 Hz",
        ):
            self.build("raw", manual, tmp_path / "data2", RAW_FS=600.0)


def test_readme_sequence_forms(tmp_path):
    readme = tmp_path / "README"
    readme.write_text(
        "\n".join(
            [
                "- **sub55**: Missing 3 imagery trials",
                "`reorder = ['sad4', 'sad5']`",
                "1. `['joy5', 'ins5']`",
                "- **sub54 Imagery sequence**:  ",
                "  `['ten8']`",
                "- **sub54 Video sequence**:  ",
                "  `['joy8']`",
                "- **sub55**: The sequence for imagery and video trials is:  ",
                "  `['dis5', 'sad4']`",
            ]
        )
    )
    assert bids_layout.parse_sequences(readme) == {
        (1, "vid"): ["joy5", "ins5"],
        (1, "ima"): ["joy5", "ins5"],
        (54, "ima"): ["ten8"],
        (54, "vid"): ["joy8"],
        (55, "vid"): ["dis5", "sad4"],
        (55, "ima"): ["dis5", "sad4"],
    }
