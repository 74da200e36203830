"""DREAMER, from the single official `DREAMER.mat` (MAT v5, nested structs).

`DREAMER.Data{s}.EEG.stimuli{t}` is [time, 14] at 128 Hz (Emotiv EPOC) and is transposed
to [14, time]; `ScoreValence/ScoreArousal/ScoreDominance` are [18, 1] on 1-5. One record
per (subject, film clip); the 61 s `baseline` recordings are not records.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import eeg_schema
from tfds_builders import file_readers
from tfds_builders import validation

FS = 128.0  # Hz, checked against the file's EEG_SamplingRate.
N_CLIPS = 18
CHANNEL_NAMES = (
    "AF3",
    "F7",
    "F3",
    "FC5",
    "T7",
    "P7",
    "O1",
    "O2",
    "P8",
    "T8",
    "FC6",
    "F4",
    "F8",
    "AF4",
)  # Checked against the file's EEG_Electrodes.
RATING_NAMES = ("valence", "arousal", "dominance")
_SCORE_FIELDS = ("ScoreValence", "ScoreArousal", "ScoreDominance")
RATING_RANGE = (1.0, 5.0)
VALENCE_THRESHOLD = 3.0  # label = "positive" if ScoreValence >= 3 else "negative".
LABEL_NAMES = ("negative", "positive")
LABEL_TO_VALENCE = {"negative": 0, "positive": 2}
FILE_NAME = "DREAMER.mat"


class Builder(tfds.core.GeneratorBasedBuilder):
    """DREAMER: 23 subjects x 18 film clips, 14-channel Emotiv EEG, self-rated 1-5."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: DREAMER.mat stimuli, raw / preprocessed."}
    BUILDER_CONFIGS = eeg_schema.standard_configs()
    DEFAULT_CONFIG_NAME = "preprocessed"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Request DREAMER on Zenodo (https://zenodo.org/record/546113, access on request), download
  `DREAMER.mat`, and point `manual_dir` at the folder that CONTAINS `DREAMER.mat`.
  """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=eeg_schema.trial_features(
                len(CHANNEL_NAMES), LABEL_NAMES, n_ratings=len(RATING_NAMES)
            ),
            homepage="https://zenodo.org/record/546113",
            metadata=eeg_schema.metadata(
                CHANNEL_NAMES,
                file_readers.output_fs(FS, self.builder_config),
                LABEL_NAMES,
                LABEL_TO_VALENCE,
                ratings_names=list(RATING_NAMES),
                ratings_range=list(RATING_RANGE),
                label_rule=f"positive if ScoreValence >= {VALENCE_THRESHOLD:g} else negative",
                native_sampling_rate=FS,
                stimulus="0-based film clip index",
            ),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        path = os.path.join(dl_manager.manual_dir, FILE_NAME)
        validation.require_file(path)
        return {"train": self._generate_examples(path)}

    def _generate_examples(self, path):
        subjects = _read_file(path)
        for subject in eeg_schema.selected_subjects(self, len(subjects)):
            struct = subjects[subject]
            trials = _subject_trials(struct, path, subject)
            ratings = _subject_ratings(struct, path, subject)
            for clip in range(N_CLIPS):
                label = file_readers.binary_valence_label(ratings[clip][0], VALENCE_THRESHOLD)
                yield (
                    f"subject{subject + 1:02d}_clip{clip + 1:02d}",
                    {
                        "eeg": file_readers.trial_eeg(trials[clip], FS, self.builder_config),
                        "subject": subject,
                        "session": 0,
                        "trial": clip,
                        "stimulus": clip,
                        "label": label,
                        "valence": LABEL_TO_VALENCE[label],
                        "source_file": FILE_NAME,
                        "key": f"Data{{{subject + 1}}}.EEG.stimuli{{{clip + 1}}}",
                        "ratings": ratings[clip],
                    },
                )


def _read_file(path) -> list:
    """Loads DREAMER.mat, checks the header fields; returns the per-subject structs."""
    mat = file_readers.load_mat(path)
    validation.check_keys(list(mat), ["DREAMER"], path)
    top = np.asarray(mat["DREAMER"]).ravel()[0]
    fs = float(np.asarray(file_readers.mat_field(top, "EEG_SamplingRate", path)).squeeze())
    if fs != FS:
        validation.fail(path, f"EEG_SamplingRate is {fs:g} Hz, expected {FS:g}")
    names = file_readers.mat_strings(
        file_readers.mat_field(top, "EEG_Electrodes", path), path, "EEG_Electrodes"
    )
    if validation.check_channel_names(names, path) != list(CHANNEL_NAMES):
        validation.fail(
            path, f"EEG_Electrodes {names} differ from the documented {list(CHANNEL_NAMES)}"
        )
    n_subjects = int(np.asarray(file_readers.mat_field(top, "noOfSubjects", path)).squeeze())
    data = np.asarray(file_readers.mat_field(top, "Data", path)).ravel()
    if data.size != n_subjects:
        validation.fail(path, f"Data holds {data.size} subjects but noOfSubjects is {n_subjects}")
    return list(data)


def _subject_trials(struct, path, subject: int) -> list[np.ndarray]:
    """Data{s}.EEG.stimuli -> 18 checked trials [14, time] (values as stored)."""
    eeg = file_readers.mat_field(struct, "EEG", path)
    stimuli = np.asarray(file_readers.mat_field(eeg, "stimuli", path))
    where = f"Data{{{subject + 1}}}.EEG.stimuli"
    if stimuli.dtype != object or stimuli.size != N_CLIPS:
        validation.fail(
            path,
            f"{where}: expected a cell of {N_CLIPS} trials, got "
            f"dtype {stimuli.dtype} shape {stimuli.shape}",
        )
    trials = []
    for clip, samples in enumerate(stimuli.ravel()):
        samples = np.asarray(samples)
        key = f"{where}{{{clip + 1}}}"
        if samples.ndim != 2 or samples.shape[1] != len(CHANNEL_NAMES):
            validation.fail(
                path, f"{key}: expected [time, {len(CHANNEL_NAMES)}], got {samples.shape}"
            )
        trials.append(validation.check_eeg(samples.T, path, key, n_chans=len(CHANNEL_NAMES)))
    return trials


def _subject_ratings(struct, path, subject: int) -> list[np.ndarray]:
    """Data{s}.Score* -> 18 rating vectors [3] = (valence, arousal, dominance)."""
    columns = []
    for field in _SCORE_FIELDS:
        columns.append(
            file_readers.check_ratings(
                file_readers.mat_field(struct, field, path),
                path,
                f"Data{{{subject + 1}}}.{field}",
                n=N_CLIPS,
                low=RATING_RANGE[0],
                high=RATING_RANGE[1],
                integer=True,
            )
        )
    return list(np.stack(columns, axis=1))
