"""SEED-VII (BCMI, SJTU), from the official `EEG_preprocessed/` release.

`EEG_preprocessed/<subject>.mat` (subjects 1..20) holds one variable per trial named
'1'..'80', each [62, N] µV at 200 Hz. Trials 1-20 are session 1, 21-40 session 2, and
so on; each of the 80 trials is a different video. Labels follow the per-session
emotion order of the experiment (DATASETS.md §4), indexed as in mdJPT.
"""

from __future__ import annotations

import os
import re
from typing import Iterator

from tfds_builders import seed_family

N_TRIALS = 80
TRIALS_PER_SESSION = 20
# Pinned index scheme = mdJPT's (the model-side reference): 0 happy ... 5 surprise, 6 fear.
LABEL_NAMES = ("happy", "neutral", "disgust", "sad", "anger", "surprise", "fear")
# Surprise can be pleasant or unpleasant, so it gets no valence (excluded from valence tasks).
LABEL_TO_VALENCE = {
    "happy": 2,
    "neutral": 1,
    "disgust": 0,
    "sad": 0,
    "anger": 0,
    "surprise": -1,
    "fear": 0,
}
_H, _N, _D, _S, _A, _SU, _F = range(7)
_BLOCKS = (  # One 10-trial palindromic block per session; each session plays it twice.
    (_H, _N, _D, _S, _A, _A, _S, _D, _N, _H),
    (_A, _S, _F, _N, _SU, _SU, _N, _F, _S, _A),
    (_H, _SU, _D, _F, _A, _A, _F, _D, _SU, _H),
    (_D, _S, _F, _SU, _H, _H, _SU, _F, _S, _D),
)
TRIAL_LABELS = tuple(label for block in _BLOCKS for label in block * 2)  # [80], by trial key.
FILE_NAME = re.compile(r"(\d+)\.mat")  # <subject>.mat
TRIAL_KEY = re.compile(r"(\d+)")  # '1' .. '80'


class Builder(seed_family.SeedFamilyBuilder):
    """SEED-VII: 20 subjects x 4 sessions x 20 videos, 62-channel EEG, 7 emotions."""

    FS = 200.0
    LABEL_NAMES = LABEL_NAMES
    LABEL_TO_VALENCE = LABEL_TO_VALENCE
    SUBJECTS = tuple(range(1, 21))  # File numbers; tests use fewer.
    METADATA_NOTES = {
        "stimulus": "0-based video id = trial key - 1 (80 distinct videos)",
        "session_order": "trial keys 1-20 = session 0, 21-40 = session 1, ...",
        "label_index_scheme": "mdJPT (0 happy, 1 neutral, 2 disgust, 3 sad, 4 anger, "
        "5 surprise, 6 fear)",
        "surprise_valence": "none (-1): surprise is neither clearly positive nor negative",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Apply for SEED-VII at https://bcmi.sjtu.edu.cn/home/seed/seed-vii.html (BCMI lab, SJTU;
  signed license agreement). Unzip `SEED-VII.zip` and point `manual_dir` at the `SEED-VII/`
  folder, the one that CONTAINS `EEG_preprocessed/` (1.mat ... 20.mat).
  """

    def _recording_files(self, manual_dir):
        folder = os.path.join(manual_dir, "EEG_preprocessed")
        found = {ids[0]: path for ids, path in seed_family.match_files(folder, FILE_NAME).items()}
        found = self._require_subjects(found, folder, "<subject>.mat files")
        return [
            seed_family.RecordingFile(found[subject], subject_index)
            for subject_index, subject in self._selected_subjects()
        ]

    def _read_file(self, file) -> Iterator[seed_family.StoredTrial]:
        for index, key, eeg in self._numbered_mat_trials(file.path, TRIAL_KEY, N_TRIALS):
            yield seed_family.StoredTrial(
                key=key,
                session=index // TRIALS_PER_SESSION,
                trial=index % TRIALS_PER_SESSION,
                stimulus=index,
                label=TRIAL_LABELS[index],
                eeg=eeg,
            )
