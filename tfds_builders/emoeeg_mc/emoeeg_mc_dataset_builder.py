"""EmoEEG-MC (OpenNeuro ds005540), from the raw BIDS EDF recordings.

One record per (subject, context, trial): the EEG from a trial's start event (`vid` /
`ima`) to its end (`rating`, or `fade` for an imagery trial ended by button press), all
64 EEG channels in the documented order, µV. Stimulus names come from the dataset
README's per-subject presentation sequences (see bids_layout.py).
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from tfds_builders import eeg_schema
from tfds_builders import file_readers
from tfds_builders import validation
from tfds_builders.emoeeg_mc import bids_layout

RAW_FS = 1200.0  # Hz of the EDFs per the BIDS sidecar (sub-03_task-emotion_eeg.json).
CHANNEL_NAMES = (
    "FP1",
    "FPZ",
    "FP2",
    "AF7",
    "AF3",
    "AF4",
    "AF8",
    "F7",
    "F5",
    "F3",
    "F1",
    "FZ",
    "F2",
    "F4",
    "F6",
    "F8",
    "FT7",
    "FC5",
    "FC3",
    "FC1",
    "FCZ",
    "FC2",
    "FC4",
    "FC6",
    "FT8",
    "T7",
    "C5",
    "C3",
    "C1",
    "CZ",
    "C2",
    "C4",
    "C6",
    "T8",
    "TP7",
    "CP5",
    "CP3",
    "CP1",
    "CPZ",
    "CP2",
    "CP4",
    "CP6",
    "TP8",
    "P7",
    "P5",
    "P3",
    "P1",
    "PZ",
    "P2",
    "P4",
    "P6",
    "P8",
    "PO7",
    "PO3",
    "POZ",
    "PO4",
    "PO8",
    "O1",
    "OZ",
    "O2",
    "F9",
    "F10",
    "TP9",
    "TP10",
)
LABEL_NAMES = ("joy", "inspiration", "tenderness", "fear", "disgust", "sadness", "neutral")
LABEL_TO_VALENCE = {
    "joy": 2,
    "inspiration": 2,
    "tenderness": 2,
    "fear": 0,
    "disgust": 0,
    "sadness": 0,
    "neutral": 1,
}
PREFIX_TO_LABEL = {
    "joy": "joy",
    "ins": "inspiration",
    "ten": "tenderness",
    "fear": "fear",
    "dis": "disgust",
    "sad": "sadness",
    "neu": "neutral",
}
# The README's canonical 21-stimulus order; stimulus id = index (+ 21 for imagery material).
STIMULI = (
    "sad4",
    "sad5",
    "sad8",
    "dis4",
    "dis5",
    "dis8",
    "fear4",
    "fear5",
    "fear8",
    "neu4",
    "neu5",
    "neu8",
    "joy4",
    "joy5",
    "joy8",
    "ten4",
    "ten5",
    "ten8",
    "ins4",
    "ins5",
    "ins8",
)
README_NAMES = ("README", "README.md", "README.txt")


class Builder(tfds.core.GeneratorBasedBuilder):
    """EmoEEG-MC: 60 subjects x (21 video + 21 imagery) trials, 64-channel EEG, 7 emotions."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: raw BIDS EDF, video + imagery contexts."}
    BUILDER_CONFIGS = eeg_schema.standard_configs()
    DEFAULT_CONFIG_NAME = "preprocessed"
    RAW_FS = RAW_FS  # The `raw` config requires every EDF at this rate.
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download OpenNeuro ds005540 (https://openneuro.org/datasets/ds005540, e.g.
  `openneuro-py download --dataset ds005540` or datalad) and point `manual_dir` at the
  dataset root: the folder holding `README`, `participants.tsv` and the `sub-XX/` folders.
  The `derivatives/` and `stimuli/` folders are not read.
  """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=eeg_schema.trial_features(len(CHANNEL_NAMES), LABEL_NAMES),
            homepage="https://openneuro.org/datasets/ds005540",
            metadata=eeg_schema.metadata(
                CHANNEL_NAMES,
                file_readers.output_fs(self.RAW_FS, self.builder_config),
                LABEL_NAMES,
                LABEL_TO_VALENCE,
                session_names=["video", "imagery"],
                stimulus_names=[f"vid_{s}" for s in STIMULI] + [f"ima_{s}" for s in STIMULI],
                trial_window="start event (vid/ima) to rating, or to fade (imagery button press)",
            ),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = os.fspath(dl_manager.manual_dir)
        readme = _find_readme(root)
        participants = bids_layout.read_participants(os.path.join(root, "participants.tsv"))
        participants = [
            participants[i] for i in eeg_schema.selected_subjects(self, len(participants))
        ]
        sources = [_subject_sources(root, p) for p in participants]  # Fail early on missing files.
        sequences = bids_layout.parse_sequences(readme)
        return {"train": self._generate_examples(root, sources, sequences)}

    def _generate_examples(self, root, sources, sequences):
        for participant, edf_path, events_path in sources:
            number = int(participant.split("-")[1])
            windows = _windows(edf_path, events_path)
            for session, context in enumerate(bids_layout.CONTEXTS):
                names = _sequence(
                    sequences, number, context, windows[context], events_path or edf_path
                )
                trials = _read_trials(
                    edf_path, windows[context], context, self.RAW_FS, self.builder_config
                )
                for trial, (name, (eeg, fs)) in enumerate(zip(names, trials)):
                    label = PREFIX_TO_LABEL[name.rstrip("0123456789")]
                    yield (
                        f"{participant}_{context}_{trial:02d}",
                        {
                            "eeg": file_readers.trial_eeg(eeg, fs, self.builder_config),
                            "subject": number - 1,
                            "session": session,
                            "trial": trial,
                            "stimulus": STIMULI.index(name) + session * len(STIMULI),
                            "label": label,
                            "valence": LABEL_TO_VALENCE[label],
                            "source_file": file_readers.relative(edf_path, root),
                            "key": f"{context}_{trial:02d}_{name}",
                        },
                    )


def _find_readme(root) -> str:
    for name in README_NAMES:
        if os.path.isfile(os.path.join(root, name)):
            return os.path.join(root, name)
    validation.fail(
        os.path.join(root, "README"),
        "missing file (the dataset README holds the "
        "per-subject stimulus sequences; see MANUAL_DOWNLOAD_INSTRUCTIONS)",
    )


def _subject_sources(root, participant: str):
    """-> (participant, EDF path, events.tsv path or None to use the EDF annotations)."""
    edf = os.path.join(root, participant, "eeg", f"{participant}_task-emotion_eeg.edf")
    validation.require_file(edf)
    for events in (
        os.path.join(root, participant, "eeg", f"{participant}_task-emotion_events.tsv"),
        os.path.join(root, participant, f"{participant}_events.tsv"),
    ):
        if os.path.exists(events):
            return participant, edf, events
    return participant, edf, None


def _open_edf(path):
    import mne  # Imported lazily: slow, and only this builder needs it.

    try:
        return mne.io.read_raw_edf(path, preload=False, verbose="error")
    except Exception as e:
        validation.fail(path, f"unreadable EDF ({type(e).__name__}: {e}); truncated or corrupt?")


def _windows(edf_path, events_path):
    """Trial windows from events.tsv (BIDS) or, without one, from the EDF annotations."""
    if events_path is not None:
        return bids_layout.trial_windows(bids_layout.events_from_tsv(events_path), events_path)
    raw = _open_edf(edf_path)
    events = sorted(
        (float(a["onset"]), str(a["description"]).strip().lower()) for a in raw.annotations
    )
    return bids_layout.trial_windows(events, edf_path)


def _sequence(sequences, number: int, context: str, windows, path) -> list[str]:
    names = sequences.get((number, context))
    if names is None:
        validation.fail(path, f"README lists no {context} sequence for sub{number:02d}")
    if len(names) != len(windows):
        validation.fail(
            path,
            f"{len(windows)} '{context}' trials in the events but the README "
            f"sequence for sub{number:02d} has {len(names)} stimuli",
        )
    unknown = [n for n in names if n not in STIMULI]
    if unknown:
        validation.fail(path, f"README sequence for sub{number:02d} has unknown stimuli {unknown}")
    return names


def _read_trials(path, windows, context: str, raw_fs: float, config):
    """Yields per window ([64, T] µV as stored, fs), lazily. Checks channels, rate, values."""
    raw = _open_edf(path)
    fs = float(raw.info["sfreq"])
    if not config.preprocess and fs != raw_fs:
        validation.fail(
            path,
            f"sampled at {fs:g} Hz but the `raw` config stores {raw_fs:g} Hz; "
            "use the `preprocessed` config (resamples every file)",
        )
    index = {name.strip().upper(): i for i, name in enumerate(raw.ch_names)}
    missing = [c for c in CHANNEL_NAMES if c not in index]
    if missing:
        validation.fail(path, f"missing EEG channel(s) {missing}; file has {raw.ch_names}")
    picks = [index[c] for c in CHANNEL_NAMES]
    for t, (start_s, end_s) in enumerate(windows):
        start, stop = int(round(start_s * fs)), int(round(end_s * fs))
        if stop > raw.n_times:
            validation.fail(
                path,
                f"{context} trial {t} ends at sample {stop} beyond the recording "
                f"({raw.n_times} samples; truncated?)",
            )
        eeg = raw.get_data(picks=picks, start=start, stop=stop) * 1e6  # V -> µV as stored.
        yield (
            validation.check_eeg(
                eeg, path, f"{context} trial {t}", n_chans=len(CHANNEL_NAMES), min_times=2
            ),
            fs,
        )
