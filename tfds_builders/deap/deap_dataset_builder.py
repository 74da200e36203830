"""DEAP, from the official `data_preprocessed_python/sNN.dat` release.

Each file is a Python-2 cPickle (load with latin1) of a dict: `data` [40 trials, 40
channels, 8064] at 128 Hz (3 s pre-trial baseline + 60 s video) and `labels` [40, 4] =
valence, arousal, dominance, liking self-ratings on 1-9. Rows 0-31 of `data` are EEG in
Geneva order; rows 32-39 are peripheral signals and are not stored.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import eeg_schema
from tfds_builders import file_readers
from tfds_builders import validation

FS = 128.0  # Hz of data_preprocessed_python.
N_TRIALS = 40
N_FILE_CHANNELS = 40  # 32 EEG + 8 peripheral.
N_TIMES = 8064  # 63 s at 128 Hz.
BASELINE_SAMPLES = 384  # The 3 s pre-trial baseline, dropped by `preprocessed`.
# Geneva order of rows 0-31 (NOT the Twente order of raw s01-s22 / mdJPT's DEAP.yaml).
CHANNEL_NAMES = (
    "FP1",
    "AF3",
    "F3",
    "F7",
    "FC5",
    "FC1",
    "C3",
    "T7",
    "CP5",
    "CP1",
    "P3",
    "P7",
    "PO3",
    "O1",
    "OZ",
    "PZ",
    "FP2",
    "AF4",
    "FZ",
    "F4",
    "F8",
    "FC6",
    "FC2",
    "CZ",
    "C4",
    "T8",
    "CP6",
    "CP2",
    "P4",
    "P8",
    "PO4",
    "O2",
)
RATING_NAMES = ("valence", "arousal", "dominance", "liking")
RATING_RANGE = (1.0, 9.0)
VALENCE_THRESHOLD = 5.0  # label = "positive" if valence rating >= 5 else "negative".
LABEL_NAMES = ("negative", "positive")
LABEL_TO_VALENCE = {"negative": 0, "positive": 2}


class Builder(tfds.core.GeneratorBasedBuilder):
    """DEAP: 32 subjects x 40 music videos, 32-channel EEG, self-rated valence/arousal."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: data_preprocessed_python, raw / preprocessed."}
    BUILDER_CONFIGS = eeg_schema.standard_configs()
    DEFAULT_CONFIG_NAME = "preprocessed"
    N_SUBJECTS = 32  # s01 ... s32; every one must be present.
    N_TIMES = N_TIMES  # Samples per trial; tests shrink it to keep fake files small.
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Request access to DEAP at https://www.eecs.qmul.ac.uk/mmv/datasets/deap/ (EULA), download
  `data_preprocessed_python.zip`, unzip it, and point `manual_dir` at the folder that
  CONTAINS `data_preprocessed_python/` (it must hold s01.dat ... s32.dat).
  """

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        return self.dataset_info_from_configs(
            features=eeg_schema.trial_features(
                len(CHANNEL_NAMES), LABEL_NAMES, n_ratings=len(RATING_NAMES)
            ),
            homepage="https://www.eecs.qmul.ac.uk/mmv/datasets/deap/",
            metadata=eeg_schema.metadata(
                CHANNEL_NAMES,
                file_readers.output_fs(FS, config),
                LABEL_NAMES,
                LABEL_TO_VALENCE,
                ratings_names=list(RATING_NAMES),
                ratings_range=list(RATING_RANGE),
                label_rule=f"positive if valence rating >= {VALENCE_THRESHOLD:g} else negative",
                native_sampling_rate=FS,
                baseline_removed_samples=BASELINE_SAMPLES if config.preprocess else 0,
                stimulus="0-based video index (Experiment_id - 1); files are in video order",
            ),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual_dir = dl_manager.manual_dir
        subjects = eeg_schema.selected_subjects(self, self.N_SUBJECTS)
        paths = [
            os.path.join(manual_dir, "data_preprocessed_python", f"s{s + 1:02d}.dat")
            for s in subjects
        ]
        file_readers.require_files(paths)
        return {"train": self._generate_examples(manual_dir, subjects, paths)}

    def _generate_examples(self, manual_dir, subjects, paths):
        config = self.builder_config
        start = BASELINE_SAMPLES if config.preprocess else 0
        for subject, path in zip(subjects, paths):
            trials, ratings = _read_subject(path, self.N_TIMES)
            source = file_readers.relative(path, manual_dir)
            for t in range(N_TRIALS):
                label = file_readers.binary_valence_label(ratings[t][0], VALENCE_THRESHOLD)
                yield (
                    f"s{subject + 1:02d}_trial{t + 1:02d}",
                    {
                        "eeg": file_readers.trial_eeg(trials[t][:, start:], FS, config),
                        "subject": subject,
                        "session": 0,
                        "trial": t,  # The preprocessed release is in video order, not presentation order.
                        "stimulus": t,
                        "label": label,
                        "valence": LABEL_TO_VALENCE[label],
                        "source_file": source,
                        "key": f"trial{t + 1:02d}",
                        "ratings": ratings[t],
                    },
                )


def _read_subject(path, n_times: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One sNN.dat -> 40 EEG trials [32, n_times] (as stored) and 40 rating vectors [4]."""
    content = file_readers.load_latin1_pickle(path)
    if not isinstance(content, dict):
        validation.fail(path, f"expected a pickled dict, got {type(content).__name__}")
    validation.check_keys(list(content), ["data", "labels"], path)
    data, labels = np.asarray(content["data"]), np.asarray(content["labels"])
    if data.shape != (N_TRIALS, N_FILE_CHANNELS, n_times):
        validation.fail(
            path,
            f"data: expected shape {(N_TRIALS, N_FILE_CHANNELS, n_times)} "
            f"(trials, channels, samples), got {data.shape}",
        )
    if labels.shape != (N_TRIALS, len(RATING_NAMES)):
        validation.fail(
            path, f"labels: expected shape {(N_TRIALS, len(RATING_NAMES))}, got {labels.shape}"
        )
    eeg = [
        validation.check_eeg(
            data[t, : len(CHANNEL_NAMES)],
            path,
            f"data[{t}]",
            n_chans=len(CHANNEL_NAMES),
            n_times=n_times,
        )
        for t in range(N_TRIALS)
    ]
    ratings = [
        file_readers.check_ratings(
            labels[t],
            path,
            f"labels[{t}]",
            n=len(RATING_NAMES),
            low=RATING_RANGE[0],
            high=RATING_RANGE[1],
        )
        for t in range(N_TRIALS)
    ]
    return eeg, ratings
