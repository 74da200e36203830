"""FACED (Finer-grained Affective Computing EEG Dataset), from `Processed_data/subNNN.pkl`.

Each file is a latin1 pickle of an ndarray [28 videos, 32 channels, 7500] at 250 Hz
(the last 30 s of every clip), in video-index order. One record per (subject, video).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import eeg_schema
from tfds_builders import file_readers
from tfds_builders import validation

FS = 250.0  # Hz of Processed_data.
N_VIDEOS = 28
N_TIMES = 7500  # 30 s at 250 Hz.
# Pinned order of the 32 rows (see README.md "Channel order"): the 30 scalp channels of
# TorchEEG's FACED_CHANNEL_LIST, then the mastoids A2, A1 (the second-cohort layout).
CHANNEL_NAMES = (
    "FP1",
    "FP2",
    "FZ",
    "F3",
    "F4",
    "F7",
    "F8",
    "FC1",
    "FC2",
    "FC5",
    "FC6",
    "CZ",
    "C3",
    "C4",
    "T7",
    "T8",
    "CP1",
    "CP2",
    "CP5",
    "CP6",
    "PZ",
    "P3",
    "P4",
    "P7",
    "P8",
    "PO3",
    "PO4",
    "OZ",
    "O1",
    "O2",
    "A2",
    "A1",
)
LABEL_NAMES = (
    "anger",
    "disgust",
    "fear",
    "sadness",
    "neutral",
    "amusement",
    "inspiration",
    "joy",
    "tenderness",
)
# Videos per category in video-index order: 1-3 anger ... 13-16 neutral ... 26-28 tenderness.
_VIDEOS_PER_LABEL = (3, 3, 3, 3, 4, 3, 3, 3, 3)
VIDEO_LABEL = tuple(np.repeat(np.arange(len(LABEL_NAMES)), _VIDEOS_PER_LABEL).tolist())
LABEL_TO_VALENCE = {
    name: (0 if i < 4 else 1 if i == 4 else 2) for i, name in enumerate(LABEL_NAMES)
}


class Builder(tfds.core.GeneratorBasedBuilder):
    """FACED: 123 subjects x 28 video clips, 32-channel EEG, 9 emotion categories."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: Processed_data pickles, raw / preprocessed."}
    BUILDER_CONFIGS = eeg_schema.standard_configs()
    DEFAULT_CONFIG_NAME = "preprocessed"
    N_SUBJECTS = 123  # sub000 ... sub122; every one must be present.
    N_TIMES = N_TIMES  # Samples per trial; tests shrink it to keep fake files small.
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download FACED from Synapse (https://www.synapse.org/#!Synapse:syn50614194, free
  account and data-use terms), unzip `Processed_data.zip`, and point `manual_dir` at the
  folder that CONTAINS `Processed_data/` (it must hold sub000.pkl ... sub122.pkl).
  """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=eeg_schema.trial_features(len(CHANNEL_NAMES), LABEL_NAMES),
            homepage="https://doi.org/10.7303/syn50614194",
            metadata=eeg_schema.metadata(
                CHANNEL_NAMES,
                file_readers.output_fs(FS, self.builder_config),
                LABEL_NAMES,
                LABEL_TO_VALENCE,
                native_sampling_rate=FS,
                stimulus="0-based video index (video v+1 of the FACED stimulus list)",
                channel_order_note="A1/A2 position is pinned, not documented upstream; see README",
            ),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual_dir = dl_manager.manual_dir
        subjects = eeg_schema.selected_subjects(self, self.N_SUBJECTS)
        paths = [os.path.join(manual_dir, "Processed_data", f"sub{s:03d}.pkl") for s in subjects]
        file_readers.require_files(paths)
        return {"train": self._generate_examples(manual_dir, subjects, paths)}

    def _generate_examples(self, manual_dir, subjects, paths):
        for subject, path in zip(subjects, paths):
            trials = _read_subject(path, self.N_TIMES)
            source = file_readers.relative(path, manual_dir)
            for video in range(N_VIDEOS):
                key = f"sub{subject:03d}_video{video + 1:02d}"
                label = VIDEO_LABEL[video]
                yield (
                    key,
                    {
                        "eeg": file_readers.trial_eeg(trials[video], FS, self.builder_config),
                        "subject": subject,
                        "session": 0,
                        "trial": video,  # Processed_data is in video order, not presentation order.
                        "stimulus": video,
                        "label": label,
                        "valence": LABEL_TO_VALENCE[LABEL_NAMES[label]],
                        "source_file": source,
                        "key": f"video{video + 1:02d}",
                    },
                )


def _read_subject(path, n_times: int) -> list[np.ndarray]:
    """One FACED pickle -> 28 checked trials [32, n_times] (values as stored)."""
    data = file_readers.load_latin1_pickle(path)
    if not isinstance(data, np.ndarray):
        validation.fail(path, f"expected a pickled ndarray, got {type(data).__name__}")
    expected = (N_VIDEOS, len(CHANNEL_NAMES), n_times)
    if data.shape != expected:
        validation.fail(
            path, f"expected shape {expected} (videos, channels, samples), got {data.shape}"
        )
    return [
        validation.check_eeg(
            data[v], path, f"video{v + 1:02d}", n_chans=len(CHANNEL_NAMES), n_times=n_times
        )
        for v in range(N_VIDEOS)
    ]
