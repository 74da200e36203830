"""Test-only oracles for the input pipeline, and a tiny TFDS builder with corner cases.

`PipelineToy` (TFDS name "pipeline_toy") writes a few trials whose structure the tests
know exactly: config `pairs` has
  - session 0: subjects 0, 1, 2 saw stimuli [3, 1, 0, 2] in that order; subject 3 saw the
    same stimuli in another order (so it may never be paired);
  - session 1: subjects 0 and 1 saw stimuli [5, 4]; subject 1's second trial is 200
    samples long (shorter than a 2 s window at 125 Hz), so only stimulus 5 is usable there;
  - channels C3 CZ C4 PZ CB1 (CB1 has no montage position);
config `lonely` has one subject only (no pairs possible).
"""

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import eeg_schema

TOY_CH_NAMES = ("C3", "CZ", "C4", "PZ", "CB1")
TOY_FS = 125.0
SESSION0_ORDER = (3, 1, 0, 2)


def toy_trials(config: str):
    """(subject, session, trial, stimulus, n_times) rows of a toy config."""
    rows = []
    subjects = (0,) if config == "lonely" else (0, 1, 2, 3)
    for subject in subjects:
        order = SESSION0_ORDER if subject != 3 else (1, 3, 0, 2)
        rows += [(subject, 0, t, s, 300 + 40 * subject + 25 * t) for t, s in enumerate(order)]
    if config == "pairs":
        rows += [(0, 1, 0, 5, 400), (0, 1, 1, 4, 380), (1, 1, 0, 5, 330), (1, 1, 1, 4, 200)]
    return rows


class PipelineToy(tfds.core.GeneratorBasedBuilder):
    """A tiny emotion-EEG dataset with known pairing structure (tests only)."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="pairs"),
        tfds.core.BuilderConfig(name="lonely"),
    ]

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=eeg_schema.trial_features(len(TOY_CH_NAMES), ["sad", "happy"]),
            metadata=eeg_schema.metadata(
                TOY_CH_NAMES, TOY_FS, ["sad", "happy"], {"sad": 0, "happy": 2}
            ),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        rng = np.random.default_rng(0)
        for subject, session, trial, stimulus, n_times in toy_trials(self.builder_config.name):
            yield (
                f"s{subject}_{session}_{trial}",
                dict(
                    eeg=(rng.normal(size=(len(TOY_CH_NAMES), n_times)) * 20).astype(np.float32),
                    subject=subject,
                    session=session,
                    trial=trial,
                    stimulus=stimulus,
                    label=stimulus % 2,
                    valence=2 * (stimulus % 2),
                    source_file="toy",
                    key=f"{subject}/{session}/{trial}",
                ),
            )


def build_toy(config: str, data_dir: str) -> None:
    """Builds pipeline_toy/<config> as array_record into data_dir."""
    tfds.builder(f"pipeline_toy/{config}", data_dir=data_dir).download_and_prepare(
        file_format="array_record"
    )


def naive_trials(dataset: str, data_dir: str) -> list:
    """Every record read straight from the TFDS data source (no pipeline code involved)."""
    source = tfds.builder(dataset, data_dir=data_dir).as_data_source(split="train")
    return [source[i] for i in range(len(source))]


def check_pair_windows(records, matrix, eeg, subjects, stimuli, offsets) -> int:
    """Asserts a pair's windows are stored-trial slices of one session both subjects share.

    Args:
        records: from `naive_trials`; matrix: projection [C, C_src].
        eeg [2, M, C, T], subjects [2], stimuli [M], offsets [M]: one pair of a batch.

    Returns:
        the session whose trials reproduce every window of both subjects.
    """
    window = eeg.shape[-1]
    by_key = {(int(r["subject"]), int(r["session"]), int(r["stimulus"])): r for r in records}
    orders = {}
    for r in sorted(records, key=lambda r: int(r["trial"])):
        orders.setdefault((int(r["subject"]), int(r["session"])), []).append(int(r["stimulus"]))
    sessions = sorted({s for (_, s, _) in by_key})
    for session in sessions:
        keys = [(int(sub), session) for sub in subjects]
        if not all(k in orders for k in keys) or orders[keys[0]] != orders[keys[1]]:
            continue
        try:
            for side, subject in enumerate(subjects):
                for j, (stimulus, offset) in enumerate(zip(stimuli, offsets)):
                    trial = np.asarray(by_key[(int(subject), session, int(stimulus))]["eeg"])
                    assert offset + window <= trial.shape[1]
                    np.testing.assert_allclose(
                        eeg[side, j],
                        matrix @ trial[:, offset : offset + window],
                        rtol=1e-5,
                        atol=1e-4,
                    )
            return session
        except (AssertionError, KeyError):
            continue
    raise AssertionError(f"no shared session reproduces the windows of subjects {subjects}")
