"""SEED-V (BCMI, SJTU), from the official `EEG_raw/` Neuroscan recordings.

`EEG_raw/<subject>_<session>_<YYYYMMDD>.cnt` (16 subjects x sessions 1-3) is one
continuous recording at 1000 Hz with 66 channels: the 62 SEED channels plus M1, M2
(mastoid references) and VEO, HEO (EOG), which are dropped. The 15 trials of a session
are cut at fixed second offsets that every public loader shares (DATASETS.md §3).
"""

from __future__ import annotations

import os
import re
from typing import Iterator

from tfds_builders import seed_family
from tfds_builders import validation

N_SESSIONS = 3
N_TRIALS = 15
LABEL_NAMES = ("disgust", "fear", "sad", "neutral", "happy")  # TorchEEG / LibEER indices.
LABEL_TO_VALENCE = {"disgust": 0, "fear": 0, "sad": 0, "neutral": 1, "happy": 2}
SESSION_LABELS = (
    (4, 1, 3, 2, 0) * 3,
    (2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0),
    (2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0),
)
# (start, end) seconds of each trial per session, from the recording's first sample.
TRIAL_SECONDS = (
    (
        (30, 132, 287, 555, 773, 982, 1271, 1628, 1730, 2025, 2227, 2435, 2667, 2932, 3204),
        (102, 228, 524, 742, 920, 1240, 1568, 1697, 1994, 2166, 2401, 2607, 2901, 3172, 3359),
    ),
    (
        (30, 299, 548, 646, 836, 1000, 1091, 1392, 1657, 1809, 1966, 2186, 2333, 2490, 2741),
        (267, 488, 614, 773, 967, 1059, 1331, 1622, 1777, 1908, 2153, 2302, 2428, 2709, 2817),
    ),
    (
        (30, 353, 478, 674, 825, 908, 1200, 1346, 1451, 1711, 2055, 2307, 2457, 2726, 2888),
        (321, 418, 643, 764, 877, 1147, 1284, 1418, 1679, 1996, 2275, 2425, 2664, 2857, 3066),
    ),
)
FILE_NAME = re.compile(r"(\d+)_(\d+)_(\d{8})\.cnt")  # <subject>_<session>_<YYYYMMDD>.cnt


class Builder(seed_family.SeedFamilyBuilder):
    """SEED-V: 16 subjects x 3 sessions x 15 film clips, 62-channel EEG, 5 emotions."""

    FS = 1000.0
    LABEL_NAMES = LABEL_NAMES
    LABEL_TO_VALENCE = LABEL_TO_VALENCE
    SUBJECTS = tuple(range(1, 17))  # Subject numbers in the file names; tests use fewer.
    TRIAL_SECONDS = TRIAL_SECONDS  # Tests substitute a short table.
    METADATA_NOTES = {
        "stimulus": "0-based clip id = session * 15 + trial",
        "session_order": "the session number in <subject>_<session>_<date>.cnt",
        "dropped_channels": list(seed_family.CNT_NON_EEG),
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Apply for SEED-V at https://bcmi.sjtu.edu.cn/home/seed/seed-v.html (BCMI lab, SJTU;
  signed license agreement). Unzip the download and point `manual_dir` at the `SEED-V/`
  folder, the one that CONTAINS `EEG_raw/` (48 files <subject>_<session>_<YYYYMMDD>.cnt).
  """

    def _recording_files(self, manual_dir):
        folder = os.path.join(manual_dir, "EEG_raw")
        by_subject: dict[int, dict[int, str]] = {}
        for (subject, session, _), path in seed_family.match_files(folder, FILE_NAME).items():
            sessions = by_subject.setdefault(subject, {})
            if session in sessions:
                validation.fail(
                    path,
                    f"second file for subject {subject} session {session} "
                    f"(first: {sessions[session]})",
                )
            sessions[session] = path
        by_subject = self._require_subjects(by_subject, folder, "<sub>_<sess>_<date>.cnt")
        files = []
        for subject_index, subject in self._selected_subjects():
            if sorted(by_subject[subject]) != list(range(1, N_SESSIONS + 1)):
                validation.fail(
                    folder,
                    f"subject {subject}: expected sessions 1..{N_SESSIONS}, found "
                    f"{sorted(by_subject[subject])}",
                )
            for session in range(N_SESSIONS):
                files.append(
                    seed_family.RecordingFile(
                        by_subject[subject][session + 1], subject_index, session
                    )
                )
        return files

    def _read_file(self, file) -> Iterator[seed_family.StoredTrial]:
        data, ch_names, fs = seed_family.read_cnt(file.path)
        if fs != self.FS:
            validation.fail(file.path, f"sampling rate {fs:g} Hz, expected {self.FS:g} Hz")
        eeg = seed_family.select_eeg_channels(data, ch_names, file.path)
        starts, ends = self.TRIAL_SECONDS[file.session]
        for trial, segment in enumerate(seed_family.cut_trials(eeg, fs, starts, ends, file.path)):
            key = f"trial{trial + 1:02d}_{starts[trial]:g}-{ends[trial]:g}s"
            yield seed_family.StoredTrial(
                key=key,
                session=file.session,
                trial=trial,
                stimulus=file.session * N_TRIALS + trial,
                label=SESSION_LABELS[file.session][trial],
                eeg=self._check_trial(segment, file.path, key, n_times=segment.shape[1]),
            )
