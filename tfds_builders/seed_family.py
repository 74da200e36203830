"""Shared reading code of the SEED-family builders (SEED, SEED-IV, SEED-V, SEED-VII; BCMI, SJTU).

All four releases use the same 62-channel ESI NeuroScan cap and differ only in how trials
are packaged: MAT files with one variable per trial (SEED `<initials>_eeg<k>`, SEED-IV the
same, SEED-VII `'1'..'80'`) or continuous Neuroscan CNT recordings cut at documented
second offsets (SEED-V). This module holds those readers and `SeedFamilyBuilder`, the base
class whose `_generate_examples` turns the trials of every file into records; each
dataset's `Builder` only says which files to expect and how a file maps to trials.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import re
from typing import Iterator, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import eeg_schema
from tfds_builders import file_readers
from tfds_builders import validation
from tfds_builders.validation import fail

# Cap order of every SEED-family EEG array (TorchEEG SEED_CHANNEL_LIST, DATASETS.md §1).
CHANNEL_NAMES = (
    "FP1",
    "FPZ",
    "FP2",
    "AF3",
    "AF4",
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
    "PO5",
    "PO3",
    "POZ",
    "PO4",
    "PO6",
    "PO8",
    "CB1",
    "O1",
    "OZ",
    "O2",
    "CB2",
)
N_CHANS = len(CHANNEL_NAMES)
# Reference (mastoids) and EOG channels of the CNT recordings; not EEG records.
CNT_NON_EEG = ("M1", "M2", "VEO", "HEO")
HOMEPAGE = "https://bcmi.sjtu.edu.cn/home/seed/"
MAT_TRIAL_KEY = re.compile(r".*_eeg(\d+)$")  # SEED / SEED-IV: `<initials>_eeg<k>`, k 1-based.


# ----------------------------------------------------------------------------- MAT files


class MatFile:
    """Lazy reader of the named arrays of a MAT file, v5 (scipy) or v7.3 (HDF5, h5py).

    The official files are v5; v7.3 is accepted because users re-save files in MATLAB.
    Any library error becomes an `InvalidDataError` naming the file.
    """

    def __init__(self, path):
        validation.require_file(path)
        import h5py  # Imported lazily, like scipy: only MAT builders need them.

        self.path = os.fspath(path)
        self.is_hdf5 = bool(h5py.is_hdf5(self.path))
        try:
            if self.is_hdf5:
                with h5py.File(self.path, "r") as f:
                    self.names = [n for n in f.keys() if not n.startswith("#")]  # `#refs#` etc.
            else:
                from scipy import io as sio

                self.names = [name for name, _, _ in sio.whosmat(self.path)]
        except Exception as e:
            fail(self.path, f"unreadable MAT file ({type(e).__name__}: {e}); truncated or corrupt?")

    def read(self, names: Sequence[str], batch_size: int = 10) -> Iterator[tuple[str, np.ndarray]]:
        """Yields (name, array) in the order of `names`, values as stored.

        Arrays have MATLAB's orientation (e.g. [channels, time]) for v5 and v7.3 alike.

        Loads `batch_size` variables per pass over the file: one pass per variable would
        cost O(n^2) header reads, one pass for all would hold the whole file in memory.
        """
        validation.check_keys(self.names, names, self.path)
        for start in range(0, len(names), batch_size):
            batch = list(names[start : start + batch_size])
            arrays = self._load(batch)
            for name in batch:
                yield name, arrays[name]

    def _load(self, names: list[str]) -> dict[str, np.ndarray]:
        try:
            if self.is_hdf5:
                import h5py

                with h5py.File(self.path, "r") as f:
                    # HDF5 stores MATLAB's column-major arrays with reversed axes.
                    return {name: np.asarray(f[name][()]).T for name in names}
            from scipy import io as sio

            arrays = sio.loadmat(self.path, variable_names=names)
        except Exception as e:
            fail(
                self.path,
                f"{names}: unreadable MAT variable(s) ({type(e).__name__}: {e}); "
                "truncated or corrupt?",
            )
        validation.check_keys(list(arrays), names, self.path)  # A truncated file can end early.
        return arrays


def numbered_keys(names: Sequence[str], pattern: re.Pattern, n: int, path) -> list[str]:
    """Variable names ordered by the trial number parsed from them (never by file order).

    Args:
      names: variable names of one file.
      pattern: regex whose group 1 is the 1-based trial number; other names are ignored.
      n: expected trials; numbers 1..n must each appear exactly once.
      path: the file, for error messages.

    Returns:
      [n] names; element i holds trial i + 1.
    """
    by_number: dict[int, list[str]] = {}
    for name in names:
        match = pattern.fullmatch(name)
        if match:
            by_number.setdefault(int(match.group(1)), []).append(name)
    doubled = {k: v for k, v in by_number.items() if len(v) > 1}
    if doubled:
        fail(path, f"several variables for the same trial number: {doubled}")
    missing = [k for k in range(1, n + 1) if k not in by_number]
    extra = sorted(k for k in by_number if not 1 <= k <= n)
    if missing or extra:
        fail(
            path,
            f"expected trial variables numbered 1..{n} (pattern {pattern.pattern!r}); "
            f"missing {missing}, unexpected {extra} (truncated file?)",
        )
    return [by_number[k][0] for k in range(1, n + 1)]


def match_files(folder, pattern: re.Pattern) -> dict[tuple[int, ...], str]:
    """Files of `folder` whose name fully matches `pattern` -> {integer groups: path}.

    Raises if the folder is missing or two files give the same groups.
    """
    if not os.path.isdir(folder):
        fail(
            folder,
            "missing folder (expected by the official layout; see MANUAL_DOWNLOAD_INSTRUCTIONS)",
        )
    found: dict[tuple[int, ...], str] = {}
    for name in sorted(os.listdir(folder)):
        match = pattern.fullmatch(name)
        if not match:
            continue
        ids = tuple(int(g) for g in match.groups())
        if ids in found:
            fail(os.path.join(folder, name), f"same ids {ids} as {found[ids]}")
        found[ids] = os.path.join(folder, name)
    return found


def require_subjects(
    found: Mapping[int, object], expected: Sequence[int], folder, what: str
) -> None:
    """Raises naming the missing and unexpected subject numbers of a folder."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        fail(
            folder,
            f"expected {what} for subjects {list(expected)}; missing subject(s) {missing}"
            f", unexpected subject(s) {extra}",
        )


# ----------------------------------------------------------------------------- CNT files


def read_cnt(path) -> tuple[np.ndarray, list[str], float]:
    """Reads a whole Neuroscan CNT recording with mne.

    Returns:
      data: float64 [C, T] in µV (mne's calibration), every channel of the file.
      ch_names: [C] upper-case names in file order.
      fs: sampling rate in Hz.
    """
    validation.require_file(path)
    import mne  # Imported lazily: slow, and only CNT builders need it.

    try:
        raw = mne.io.read_raw_cnt(os.fspath(path), preload=True, verbose="error")
        data = raw.get_data(units="uV")
    except Exception as e:
        fail(
            path, f"unreadable Neuroscan CNT file ({type(e).__name__}: {e}); truncated or corrupt?"
        )
    return data, [str(n).strip().upper() for n in raw.ch_names], float(raw.info["sfreq"])


def select_eeg_channels(data: np.ndarray, ch_names: Sequence[str], path) -> np.ndarray:
    """[C_file, T] with the CNT's channels -> [62, T] rows in CHANNEL_NAMES order.

    Drops CNT_NON_EEG; the remaining names must be exactly the 62 SEED channels (rows are
    picked by name, so a different file order cannot mis-map channels).
    """
    names = [n for n in ch_names if n not in CNT_NON_EEG]
    if sorted(names) != sorted(CHANNEL_NAMES):
        fail(
            path,
            f"after dropping {list(CNT_NON_EEG)} expected the 62 SEED channels; missing "
            f"{sorted(set(CHANNEL_NAMES) - set(names))}, unexpected "
            f"{sorted(set(names) - set(CHANNEL_NAMES))}",
        )
    index = {n: i for i, n in enumerate(ch_names)}
    return data[[index[n] for n in CHANNEL_NAMES]]


def cut_trials(
    data: np.ndarray, fs: float, starts_s: Sequence[float], ends_s: Sequence[float], path
) -> list[np.ndarray]:
    """Cuts [C, T] at fs Hz into trials [start_s * fs, end_s * fs) (sample index rounded).

    Raises if the recording ends before the last trial does (truncated file).
    """
    n_times = data.shape[-1]
    trials = []
    for i, (start, end) in enumerate(zip(starts_s, ends_s)):
        a, b = int(round(start * fs)), int(round(end * fs))
        if not 0 <= a < b:
            fail(path, f"trial {i + 1}: bad time window [{start}, {end}) s")
        if b > n_times:
            fail(
                path,
                f"recording is {n_times / fs:g} s ({n_times} samples at {fs:g} Hz) but trial "
                f"{i + 1} ends at {end:g} s (truncated?)",
            )
        trials.append(data[:, a:b])
    return trials


# ----------------------------------------------------------------------------- builder base


@dataclasses.dataclass(frozen=True)
class RecordingFile:
    """One file of the download: the (0-based) subject it holds, and its session if fixed."""

    path: str
    subject: int
    session: int | None = None


@dataclasses.dataclass(frozen=True)
class StoredTrial:
    """One trial as stored: eeg [62, T] µV at the builder's FS; all ids 0-based."""

    key: str
    session: int
    trial: int
    stimulus: int
    label: int
    eeg: np.ndarray


class SeedFamilyBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the four SEED-family builders: one `train` split, one record per trial.

    Subclasses set FS, LABEL_NAMES, LABEL_TO_VALENCE, METADATA_NOTES and implement
    `_recording_files` (check the expected file set, order subjects and sessions) and
    `_read_file` (one file -> its checked trials in presentation order).
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: raw / preprocessed configs."}
    BUILDER_CONFIGS = eeg_schema.standard_configs()
    DEFAULT_CONFIG_NAME = "preprocessed"
    FS: float = 200.0  # Hz of the stored trials (the `raw` config's rate).
    LABEL_NAMES: tuple[str, ...] = ()
    LABEL_TO_VALENCE: Mapping[str, int] = {}
    METADATA_NOTES: Mapping[str, object] = {}  # Extra JSON facts for info.metadata.
    # SEED stores N = 200 s + 1 samples; `preprocessed` drops the first (LibEER) -> whole seconds.
    DROP_FIRST_SAMPLE_WHEN_PREPROCESSING = False

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=eeg_schema.trial_features(N_CHANS, self.LABEL_NAMES),
            homepage=HOMEPAGE,
            metadata=eeg_schema.metadata(
                CHANNEL_NAMES,
                file_readers.output_fs(self.FS, self.builder_config),
                self.LABEL_NAMES,
                self.LABEL_TO_VALENCE,
                native_sampling_rate=float(self.FS),
                **self.METADATA_NOTES,
            ),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual_dir = os.fspath(dl_manager.manual_dir)
        files = self._recording_files(manual_dir)
        return {"train": self._generate_examples(manual_dir, files)}

    def _generate_examples(self, manual_dir, files: Sequence[RecordingFile]):
        for file in files:
            source = file_readers.relative(file.path, manual_dir)
            for stored in self._read_file(file):
                name = self.LABEL_NAMES[stored.label]
                yield (
                    f"{source}:{stored.key}",
                    {
                        "eeg": self._record_eeg(stored.eeg),
                        "subject": file.subject,
                        "session": stored.session,
                        "trial": stored.trial,
                        "stimulus": stored.stimulus,
                        "label": stored.label,
                        "valence": self.LABEL_TO_VALENCE[name],
                        "source_file": source,
                        "key": stored.key,
                    },
                )

    def _record_eeg(self, eeg: np.ndarray) -> np.ndarray:
        """Stored [62, T] at FS -> the record's float32 `eeg` for this config."""
        if self.builder_config.preprocess and self.DROP_FIRST_SAMPLE_WHEN_PREPROCESSING:
            eeg = eeg[:, 1:]
        return file_readers.trial_eeg(eeg, self.FS, self.builder_config)

    def _check_trial(self, eeg, path, key: str, n_times: int | None = None) -> np.ndarray:
        """A stored trial must be [62, T >= 1 s] (or exactly n_times) and finite."""
        return validation.check_eeg(
            eeg, path, key, n_chans=N_CHANS, min_times=int(self.FS), n_times=n_times
        )

    def _numbered_mat_trials(
        self, path, pattern: re.Pattern, n: int
    ) -> Iterator[tuple[int, str, np.ndarray]]:
        """Yields (0-based trial number, variable name, checked eeg [62, T]) of a MAT file
        whose variables are numbered 1..n by `pattern` (see `numbered_keys`)."""
        mat = MatFile(path)
        keys = numbered_keys(mat.names, pattern, n, path)
        for index, (key, eeg) in enumerate(mat.read(keys)):
            yield index, key, self._check_trial(eeg, path, key)

    def _selected_subjects(self) -> list[tuple[int, int]]:
        """(0-based subject index, subject number) of the subjects to build, in SUBJECTS order."""
        numbers = sorted(self.SUBJECTS)
        return [(i, numbers[i]) for i in eeg_schema.selected_subjects(self, len(numbers))]

    def _require_subjects(self, found: Mapping[int, object], folder, what: str) -> dict:
        """`require_subjects` over the selected subjects; returns `found` restricted to them
        (files of unselected subjects are ignored by a partial build)."""
        numbers = [number for _, number in self._selected_subjects()]
        selected = {k: v for k, v in found.items() if k in numbers}
        require_subjects(
            found if len(numbers) == len(self.SUBJECTS) else selected, numbers, folder, what
        )
        return selected

    @abc.abstractmethod
    def _recording_files(self, manual_dir: str) -> list[RecordingFile]:
        """Checks the expected file set; returns files in (subject, session) order."""

    @abc.abstractmethod
    def _read_file(self, file: RecordingFile) -> Iterator[StoredTrial]:
        """Yields the checked trials of one file in (session, trial) order."""
