"""SEED (BCMI, SJTU), from the official `Preprocessed_EEG/` release.

`Preprocessed_EEG/<subject>_<YYYYMMDD>.mat` holds one variable `<initials>_eeg<k>` per
trial k = 1..15, each [62, N] float64 µV at 200 Hz with N = 200 s + 1; `label.mat`
holds `label` [1, 15] in {-1, 0, 1}, the same for every session and subject. The three
dates of a subject are its three sessions, which replay the same 15 clips in the same
order, so `stimulus` = `trial`.
"""

from __future__ import annotations

import os
import re
from typing import Iterator

import numpy as np

from tfds_builders import seed_family
from tfds_builders import validation

N_TRIALS = 15
N_SESSIONS = 3
LABEL_NAMES = ("negative", "neutral", "positive")  # label.mat value + 1.
LABEL_TO_VALENCE = {"negative": 0, "neutral": 1, "positive": 2}
FILE_NAME = re.compile(r"(\d+)_(\d{8})\.mat")  # <subject>_<YYYYMMDD>.mat


class Builder(seed_family.SeedFamilyBuilder):
    """SEED: 15 subjects x 3 sessions x 15 film clips, 62-channel EEG, 3 emotions."""

    FS = 200.0
    LABEL_NAMES = LABEL_NAMES
    LABEL_TO_VALENCE = LABEL_TO_VALENCE
    SUBJECTS = tuple(range(1, 16))  # Subject numbers in the file names; tests use fewer.
    DROP_FIRST_SAMPLE_WHEN_PREPROCESSING = True
    METADATA_NOTES = {
        "stimulus": "0-based clip index; all three sessions replay the same 15 clips in order",
        "session_order": "a subject's files sorted by the date in the file name",
        "preprocessed_drops_first_sample": True,
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Apply for SEED at https://bcmi.sjtu.edu.cn/home/seed/ (BCMI lab, SJTU; signed license
  agreement). Unzip the download and point `manual_dir` at the `SEED/` folder, the one that
  CONTAINS `Preprocessed_EEG/` (45 files <subject>_<YYYYMMDD>.mat plus label.mat).
  """

    def _recording_files(self, manual_dir):
        folder = os.path.join(manual_dir, "Preprocessed_EEG")
        self._labels = _read_labels(os.path.join(folder, "label.mat"))
        found = seed_family.match_files(folder, FILE_NAME)
        dates: dict[int, list[int]] = {}
        for subject, date in found:
            dates.setdefault(subject, []).append(date)
        dates = self._require_subjects(dates, folder, "<subject>_<date>.mat files")
        files = []
        for subject_index, subject in self._selected_subjects():
            if len(dates[subject]) != N_SESSIONS:
                validation.fail(
                    folder,
                    f"subject {subject}: expected {N_SESSIONS} session files "
                    f"{subject}_<date>.mat, found dates {sorted(dates[subject])}",
                )
            for session, date in enumerate(sorted(dates[subject])):
                files.append(
                    seed_family.RecordingFile(found[subject, date], subject_index, session)
                )
        return files

    def _read_file(self, file) -> Iterator[seed_family.StoredTrial]:
        trials = self._numbered_mat_trials(file.path, seed_family.MAT_TRIAL_KEY, N_TRIALS)
        for trial, key, eeg in trials:
            yield seed_family.StoredTrial(
                key=key,
                session=file.session,
                trial=trial,
                stimulus=trial,
                label=self._labels[trial],
                eeg=eeg,
            )


def _read_labels(path) -> list[int]:
    """`label.mat` -> [15] label indices (file value -1/0/1 + 1)."""
    ((_, values),) = seed_family.MatFile(path).read(["label"])
    values = np.asarray(values)
    if values.size != N_TRIALS or values.dtype.kind not in "fiu":
        validation.fail(
            path,
            f"label: expected {N_TRIALS} numbers, got dtype {values.dtype} shape {values.shape}",
        )
    return [
        validation.check_label(v.item() + 1, len(LABEL_NAMES), path, f"label[{i}] + 1")
        for i, v in enumerate(values.ravel())
    ]
