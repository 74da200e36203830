"""synthetic_emotion: contract, determinism, and that the simulated emotion signal is real."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tfds_builders import eeg_schema, preprocessing, testing
from tfds_builders.synthetic_emotion import simulation
from tfds_builders.synthetic_emotion import synthetic_emotion_dataset_builder

CONFIGS = ("d0", "d1", "d2", "d3")  # the ones the session fixture `synthetic_data_dir` built


def _records(data_dir, config):
    return testing.read_records(tfds.builder(f"synthetic_emotion/{config}", data_dir=data_dir))


class TestContract(testing.BuilderContract):
    """The builder contract, read from the session-wide build (no extra build cost)."""

    DATASET_CLASS = synthetic_emotion_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = CONFIGS

    @classmethod
    def make_manual_dir(cls, tmp_path):
        return None  # Simulated: no download.

    @classmethod
    def expected_splits(cls, config):
        spec = simulation.DATASETS[config]
        return {"train": spec.n_subjects * spec.n_sessions * spec.stimuli_per_session}

    @pytest.fixture(scope="class")
    def contract_builds(self, synthetic_data_dir):
        builders = {
            c: tfds.builder(f"synthetic_emotion/{c}", data_dir=synthetic_data_dir)
            for c in self.config_names()
        }
        return {c: (b, self.read_all(b)) for c, b in builders.items()}

    def test_records_follow_the_dataset_table(self, contract_builds):
        for config, (builder, records) in contract_builds.items():
            spec = simulation.DATASETS[config]
            meta = builder.info.metadata
            assert meta["channel_names"] == list(spec.channels)
            assert meta["sampling_rate"] == eeg_schema.TARGET_FS
            assert builder.info.features["label"].names == list(spec.labels)
            for r in records:
                assert r["eeg"].shape == (
                    len(spec.channels),
                    int(spec.trial_s * eeg_schema.TARGET_FS),
                )
                assert r["label"] == simulation.stimulus_label(spec, r["stimulus"])
                assert r["valence"] == meta["label_to_valence"][spec.labels[r["label"]]]
            # Zero-shot valence transfer needs both negative and positive trials.
            assert {0, 2} <= {r["valence"] for r in records}, config

    def test_subjects_of_a_session_see_the_same_stimulus_order(self, contract_builds):
        for config, (_, records) in contract_builds.items():
            spec = simulation.DATASETS[config]
            for session in range(spec.n_sessions):
                orders = {
                    tuple(
                        r["stimulus"]
                        for r in sorted(
                            (r for r in records if r["subject"] == s and r["session"] == session),
                            key=lambda r: r["trial"],
                        )
                    )
                    for s in range(spec.n_subjects)
                }
                assert len(orders) == 1, (config, session, orders)


def test_every_dataset_has_negative_and_positive_labels_and_distinct_design():
    designs = {code: set() for code in simulation.EMOTION_CODES}
    for name, spec in simulation.DATASETS.items():
        assert {0, 2} <= {simulation.valence_class(label) for label in spec.labels}, name
        designs[spec.emotion_code].add((spec.channels, spec.fs, spec.labels))
    assert len(designs["band_power"]) == 6 and len(designs["modulation"]) == 4
    assert len(simulation.DATASETS) == 10
    for i in range(4):  # the known-answer configs repeat d0-d3's designs, coded differently
        d, k = simulation.DATASETS[f"d{i}"], simulation.DATASETS[f"k{i}"]
        assert (d.channels, d.fs, d.labels) == (k.channels, k.fs, k.labels)
        assert (k.emotion_code, k.subject_mixing > 0, k.dataset_shift > 0) == (
            "modulation",
            True,
            True,
        )


def test_records_equal_documented_simulation_and_preprocessing(synthetic_data_dir):
    spec = simulation.DATASETS["d1"]
    record = next(
        r for r in _records(synthetic_data_dir, "d1") if r["subject"] == 3 and r["trial"] == 2
    )
    raw = simulation.simulate_trial(spec, 0, "d1", 3, 0, 2, int(record["stimulus"]))
    expected = preprocessing.preprocess_trial(raw, spec.fs)
    np.testing.assert_allclose(record["eeg"], expected, rtol=1e-5, atol=1e-4)


def test_simulation_is_deterministic_and_seed_dependent():
    spec = simulation.DATASETS["d2"]
    a = simulation.simulate_trial(spec, 0, "d2", 1, 0, 0, 3)
    b = simulation.simulate_trial(spec, 0, "d2", 1, 0, 0, 3)
    c = simulation.simulate_trial(spec, 1, "d2", 1, 0, 0, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert 3.0 < a.std() < 100.0  # µV scale


def _band_envelope(eeg, fs=125.0, band=(8.0, 12.0), seconds=1.0):
    """Log alpha power per 1 s of the channel mean [n_seconds]."""
    x = preprocessing.bandpass(eeg, fs, band)
    step = int(fs * seconds)
    n = x.shape[-1] // step
    return np.log((x[:, : n * step] ** 2).reshape(x.shape[0], n, step).mean((0, 2)))


def test_dynamics_are_stimulus_locked_across_subjects(synthetic_data_dir):
    records = _records(synthetic_data_dir, "d0")
    env = {(r["subject"], r["session"], r["stimulus"]): _band_envelope(r["eeg"]) for r in records}
    same, different = [], []
    for (s, sess, stim), e in env.items():
        if s != 0:
            continue
        for (s2, sess2, stim2), e2 in env.items():
            if s2 == 1 and sess2 == sess:
                (same if stim2 == stim else different).append(np.corrcoef(e, e2)[0, 1])
    assert np.mean(same) > np.mean(different) + 0.2  # 0.38 vs -0.03 at seed 0


def test_emotions_are_decodable_across_subjects_but_not_trivially(synthetic_data_dir):
    records = _records(synthetic_data_dir, "d0")
    feats = np.stack(
        [np.log(preprocessing.bandpass(r["eeg"], 125.0, (8, 12)).var(-1)) for r in records]
    )
    labels = np.array([r["label"] for r in records])
    subjects = np.array([r["subject"] for r in records])
    train = subjects < 5
    clf = make_pipeline(StandardScaler(), LogisticRegression()).fit(feats[train], labels[train])
    accuracy = clf.score(feats[~train], labels[~train])
    # Chance is 1/3; subject offsets and trial jitter keep it off 100% (0.81 at seed 0).
    assert 0.55 < accuracy < 0.95
