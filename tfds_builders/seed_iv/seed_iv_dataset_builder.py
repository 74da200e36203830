"""SEED-IV (BCMI, SJTU), from the official `eeg_raw_data/` release.

`eeg_raw_data/<session>/<subject>_<YYYYMMDD>.mat` for sessions 1, 2, 3 holds one
variable `<initials>_eeg<k>` per trial k = 1..24, each [62, N] µV at 200 Hz. Every
session shows 24 different clips (72 in all); the per-session labels are fixed by the
experiment design (official ReadMe) and hard-coded here.
"""

from __future__ import annotations

import os
import re
from typing import Iterator

from tfds_builders import seed_family
from tfds_builders import validation

N_TRIALS = 24
N_SESSIONS = 3
LABEL_NAMES = ("neutral", "sad", "fear", "happy")  # Index = value in the official ReadMe.
LABEL_TO_VALENCE = {"neutral": 1, "sad": 0, "fear": 0, "happy": 2}
SESSION_LABELS = (  # Official ReadMe / TorchEEG / LibEER / mdJPT (DATASETS.md §2).
    (1, 2, 3, 0, 2, 0, 0, 1, 0, 1, 2, 1, 1, 1, 2, 3, 2, 2, 3, 3, 0, 3, 0, 3),
    (2, 1, 3, 0, 0, 2, 0, 2, 3, 3, 2, 3, 2, 0, 1, 1, 2, 1, 0, 3, 0, 1, 3, 1),
    (1, 2, 2, 1, 3, 3, 3, 1, 1, 2, 1, 0, 2, 3, 3, 0, 2, 3, 0, 0, 2, 0, 1, 0),
)
FILE_NAME = re.compile(r"(\d+)_(\d{8})\.mat")  # <subject>_<YYYYMMDD>.mat


class Builder(seed_family.SeedFamilyBuilder):
    """SEED-IV: 15 subjects x 3 sessions x 24 film clips, 62-channel EEG, 4 emotions."""

    FS = 200.0
    LABEL_NAMES = LABEL_NAMES
    LABEL_TO_VALENCE = LABEL_TO_VALENCE
    SUBJECTS = tuple(range(1, 16))  # Subject numbers in the file names; tests use fewer.
    METADATA_NOTES = {
        "stimulus": "0-based clip id = session * 24 + trial (72 distinct clips)",
        "session_order": "session folders eeg_raw_data/1, 2, 3",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Apply for SEED-IV at https://bcmi.sjtu.edu.cn/home/seed/seed-iv.html (BCMI lab, SJTU;
  signed license agreement). Unzip the download and point `manual_dir` at the `SEED_IV/`
  folder, the one that CONTAINS `eeg_raw_data/1/`, `eeg_raw_data/2/`, `eeg_raw_data/3/`
  (15 files <subject>_<YYYYMMDD>.mat in each).
  """

    def _recording_files(self, manual_dir):
        files = []
        by_session = []
        for session in range(N_SESSIONS):
            folder = os.path.join(manual_dir, "eeg_raw_data", str(session + 1))
            found = seed_family.match_files(folder, FILE_NAME)
            by_subject: dict[int, list[str]] = {}
            for (subject, _), path in found.items():
                by_subject.setdefault(subject, []).append(path)
            by_subject = self._require_subjects(by_subject, folder, "one <subject>_<date>.mat file")
            for subject, paths in by_subject.items():
                if len(paths) != 1:
                    validation.fail(folder, f"subject {subject}: expected one file, found {paths}")
            by_session.append(by_subject)
        for subject_index, subject in self._selected_subjects():
            for session in range(N_SESSIONS):
                files.append(
                    seed_family.RecordingFile(
                        by_session[session][subject][0], subject_index, session
                    )
                )
        return files

    def _read_file(self, file) -> Iterator[seed_family.StoredTrial]:
        trials = self._numbered_mat_trials(file.path, seed_family.MAT_TRIAL_KEY, N_TRIALS)
        for trial, key, eeg in trials:
            yield seed_family.StoredTrial(
                key=key,
                session=file.session,
                trial=trial,
                stimulus=file.session * N_TRIALS + trial,
                label=SESSION_LABELS[file.session][trial],
                eeg=eeg,
            )
