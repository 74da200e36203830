"""SEED-V builder: trial cutting, labels, contract and bad inputs on fake CNT recordings.

mne cannot write CNT, so `mne.io.read_raw_cnt` is replaced by make_dummy_data's reader,
which returns an `mne.io.RawArray`; everything after the read is the builder's real code.
"""

import collections
import json
import os
import shutil

import mne
import numpy as np
import pytest

from tfds_builders import preprocessing
from tfds_builders import testing
from tfds_builders import seed_family
from tfds_builders.seed_v import make_dummy_data
from tfds_builders.seed_v import seed_v_dataset_builder as seed_v
from tfds_builders.validation import InvalidDataError

SUBJECTS = (1, 2)


def _by_id(records):
    return {(int(r["subject"]), int(r["session"]), int(r["trial"])): r for r in records}


def _trial_samples(session, trial):
    starts, ends = make_dummy_data.SHORT_TRIAL_SECONDS[session]
    return round(ends[trial] * 1000) - round(starts[trial] * 1000)


class TestSeedV(testing.BuilderContract):
    DATASET_CLASS = seed_v.Builder
    SPLITS = {"train": len(SUBJECTS) * 3 * 15}
    CLASS_OVERRIDES = {"SUBJECTS": SUBJECTS, "TRIAL_SECONDS": make_dummy_data.SHORT_TRIAL_SECONDS}

    @classmethod
    def make_manual_dir(cls, tmp_path):
        make_dummy_data.write(tmp_path, subjects=SUBJECTS, seed=4)
        return tmp_path

    @classmethod
    def patches(cls, **overrides):
        return super().patches(**overrides) + [
            (mne.io, "read_raw_cnt", make_dummy_data.read_raw_cnt)
        ]

    @pytest.mark.parametrize("config, fs", [("raw", 1000.0), ("preprocessed", 125.0)])
    def test_contract(self, contract_builds, config, fs):
        builder, records = contract_builds[config]
        records = _by_id(records)
        assert len(records) == len(SUBJECTS) * 3 * 15  # Unique (subject, session, trial).
        for (_, session, trial), r in records.items():
            n_raw = _trial_samples(session, trial)
            n_times = n_raw if config == "raw" else -(-n_raw // 8)  # ceil(N * 125 / 1000).
            assert r["eeg"].dtype == np.float32 and r["eeg"].shape == (62, n_times)
        meta = builder.info.metadata
        assert meta["channel_names"] == list(seed_family.CHANNEL_NAMES)
        assert meta["sampling_rate"] == fs and meta["native_sampling_rate"] == 1000.0
        assert meta["label_names"] == ["disgust", "fear", "sad", "neutral", "happy"]

    def test_values_are_the_cut_recording(self, contract_builds, contract_manual_dir):
        path = contract_manual_dir / "EEG_raw" / "2_3_20180612.cnt"
        data, ch_names, _ = make_dummy_data.recording_uv(path)  # Independent of the builder.
        rows = [ch_names.index(c) for c in seed_family.CHANNEL_NAMES]
        starts, ends = make_dummy_data.SHORT_TRIAL_SECONDS[2]
        expected = data[rows, round(starts[6] * 1000) : round(ends[6] * 1000)]
        raw = _by_id(contract_builds["raw"][1])[(1, 2, 6)]
        pre = _by_id(contract_builds["preprocessed"][1])[(1, 2, 6)]
        assert raw["source_file"] == b"EEG_raw/2_3_20180612.cnt"
        np.testing.assert_allclose(raw["eeg"], expected, rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(
            pre["eeg"], preprocessing.preprocess_trial(expected, 1000.0), rtol=1e-5, atol=1e-4
        )

    def test_labels_sessions_and_stimuli(self, contract_builds):
        records = _by_id(contract_builds["raw"][1])
        names = seed_v.LABEL_NAMES
        assert [names[int(records[0, 0, t]["label"])] for t in range(5)] == [
            "happy",
            "fear",
            "neutral",
            "sad",
            "disgust",
        ]
        assert [names[int(records[1, 1, t]["label"])] for t in range(5)] == [
            "sad",
            "fear",
            "neutral",
            "disgust",
            "happy",
        ]
        for (subject, session, trial), r in records.items():
            assert int(r["label"]) == seed_v.SESSION_LABELS[session][trial]
            assert int(r["stimulus"]) == session * 15 + trial
            assert r["key"].decode().startswith(f"trial{trial + 1:02d}_")
            assert r["source_file"].decode().startswith(f"EEG_raw/{subject + 1}_{session + 1}_")
            assert int(r["valence"]) == seed_v.LABEL_TO_VALENCE[names[int(r["label"])]]

    @pytest.mark.parametrize(
        "case, match",
        [
            ("missing_session", r"EEG_raw: subject 2: expected sessions 1..3, found \[1, 2\]"),
            ("truncated", r"1_1_20180411.cnt: recording is 5 s .* trial 5 ends at 6.04 s"),
            ("unreadable", r"1_1_20180411.cnt: unreadable Neuroscan CNT file"),
            ("wrong_rate", r"1_1_20180411.cnt: sampling rate 500 Hz, expected 1000 Hz"),
            ("missing_channel", r"1_1_20180411.cnt: .*missing \['OZ'\]"),
            ("nan", r"1_1_20180411.cnt: trial02_1.4-2.41s: 1 non-finite"),
        ],
    )
    def test_bad_input_names_file_and_problem(self, contract_manual_dir, tmp_path, case, match):
        manual = tmp_path / "manual"
        shutil.copytree(contract_manual_dir, manual)
        first = manual / "EEG_raw" / "1_1_20180411.cnt"
        spec = json.loads(first.read_text())
        if case == "missing_session":
            os.remove(manual / "EEG_raw" / "2_3_20180612.cnt")
        elif case == "unreadable":
            first.write_text(first.read_text()[:40])
        else:
            kwargs = {"seed": 0, "n_times": spec["n_times"]}
            if case == "truncated":
                kwargs["n_times"] = 5000
            elif case == "wrong_rate":
                kwargs["fs"] = 500.0
            elif case == "missing_channel":
                kwargs["ch_names"] = [c for c in make_dummy_data.CNT_CHANNELS if c != "OZ"]
            else:
                kwargs["nan_at"] = (0, 1500)
            make_dummy_data.write_recording(first, **kwargs)
        with pytest.raises(InvalidDataError, match=match):
            self.build("raw", manual, tmp_path / "data")


def test_official_trial_table():
    for session, (starts, ends) in enumerate(seed_v.TRIAL_SECONDS):
        durations = np.subtract(ends, starts)
        assert (
            len(starts) == len(ends) == 15 and (durations >= 52).all() and (durations <= 297).all()
        )
        assert (np.asarray(starts[1:]) >= np.asarray(ends[:-1])).all()  # Trials do not overlap.
        assert collections.Counter(seed_v.SESSION_LABELS[session]) == {k: 3 for k in range(5)}
    totals = [int(np.subtract(e, s).sum()) for s, e in seed_v.TRIAL_SECONDS]
    assert totals == [2743, 2191, 2425]  # DATASETS.md §3.


def test_select_eeg_channels_picks_by_name():
    names = ["VEO"] + list(reversed(seed_family.CHANNEL_NAMES)) + ["M1", "M2", "HEO"]
    data = np.arange(len(names))[:, None] * np.ones((1, 4))
    out = seed_family.select_eeg_channels(data, names, "x.cnt")
    np.testing.assert_array_equal(out[:, 0], [names.index(c) for c in seed_family.CHANNEL_NAMES])
    with pytest.raises(InvalidDataError, match=r"x.cnt: .*missing \['CZ'\]"):
        seed_family.select_eeg_channels(data[1:], [n for n in names if n != "CZ"], "x.cnt")
