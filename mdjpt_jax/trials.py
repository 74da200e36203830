"""Trials of built TFDS datasets: reading records, session groups, whole trials on a channel
set; and making sure the datasets a run needs are built.

A trial (`load_trials`): eeg [C, T] µV on the requested channels at the stored rate, with its
ids (subject, session, trial, stimulus) and label/valence; metadata names the labels.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Sequence

import numpy as np

from mdjpt_jax import channels

SYNTHETIC = "synthetic_emotion"
SPLIT = "train"
INT_FIELDS = ("subject", "session", "trial", "stimulus", "label", "valence")


@dataclasses.dataclass
class DatasetRecords:
    """Every trial record of one dataset split.

    Attributes:
        metadata: dataset, ch_names (file order), fs (Hz), label_names, valence_names, ...
        fields: INT_FIELDS and "n_times" -> int64 arrays [R] (R records, source order).
        eeg: per record float32 [C_src, T_r] µV (a list, or `MappedTrials`), or None (then
            read from `source`).
        source: the TFDS data source, random access by record index (None once `eeg` holds
            every record in a `MappedTrials`).
    """

    metadata: dict
    fields: dict
    eeg: Sequence | None
    source: object

    def trial_eeg(self, record: int) -> np.ndarray:
        """float32 [C_src, T_r] µV of one record."""
        if self.eeg is not None:
            return self.eeg[record]
        return np.asarray(self.source[int(record)]["eeg"], np.float32)


class MappedTrials:
    """Every record's EEG in one float32 .npy file [C_src, sum_r T_r], memory-mapped
    read-only; record r is the view [:, starts[r]:starts[r + 1]] ([C_src, T_r]).

    Pickles as (path, starts), so worker processes map the same file: one copy of the
    trials in the page cache however many processes read them.
    """

    def __init__(self, path: str, starts: np.ndarray):
        self.path, self.starts = path, starts
        self._data = np.load(path, mmap_mode="r")

    @classmethod
    def write(cls, eeg: Sequence[np.ndarray], path: str) -> "MappedTrials":
        """Writes the records `eeg` (float32 [C_src, T_r] each) to `path` and maps it."""
        starts = np.concatenate([[0], np.cumsum([x.shape[1] for x in eeg])]).astype(np.int64)
        try:
            out = np.lib.format.open_memmap(
                path, mode="w+", dtype=np.float32, shape=(eeg[0].shape[0], int(starts[-1]))
            )
            for x, start in zip(eeg, starts):
                out[:, start : start + x.shape[1]] = x
            out.flush()
        except OSError as error:
            raise OSError(
                f"cannot write {4 * eeg[0].shape[0] * int(starts[-1]) / 2**30:.2f} GiB of "
                f"trials to {path}: {error}"
            ) from error
        del out
        return cls(path, starts)

    def __len__(self) -> int:
        return len(self.starts) - 1

    def __getitem__(self, record: int) -> np.ndarray:
        return self._data[:, self.starts[record] : self.starts[record + 1]]

    def __getstate__(self) -> dict:
        return {"path": self.path, "starts": self.starts}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["starts"])


@dataclasses.dataclass(frozen=True)
class SessionGroup:
    """Subjects of one session who saw the same stimuli in the same order.

    Attributes:
        session: session index.
        stimuli: int [N_pos] stimulus id at each presentation position.
        subjects: int [S_g] subject ids.
        records: int [S_g, N_pos] record index of subject s at position j.
        n_times: int [S_g, N_pos] trial lengths in samples.
    """

    session: int
    stimuli: np.ndarray
    subjects: np.ndarray
    records: np.ndarray
    n_times: np.ndarray


def _open_source(dataset: str, data_dir, split: str):
    """(tfds DatasetInfo, data source) of a built dataset, importing its builder module."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import registered

    name = dataset.split("/")[0]
    try:
        registered.imported_builder_cls(name)
    except registered.DatasetNotFoundError:
        import tfds_builders

        tfds_builders.import_builder(name)
    builder = tfds.builder(dataset, data_dir=data_dir)
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"{dataset} is not built in {data_dir}: run `python -m "
            f"tfds_builders.build {name} --config CONFIG --data_dir DIR`"
        )
    if split not in builder.info.splits:
        raise ValueError(
            f"{dataset} in {data_dir} has no split {split!r} (splits: {list(builder.info.splits)})"
        )
    return builder.info, builder.as_data_source(split=split)


def _metadata(dataset: str, info) -> dict:
    """info.metadata with the project's names (ch_names, fs) and the dataset name."""
    meta = dict(info.metadata or {})
    missing = [k for k in ("channel_names", "sampling_rate", "label_names") if k not in meta]
    if missing:
        raise ValueError(f"{dataset} ({info.data_dir}): info.metadata lacks {missing}")
    return dict(
        dataset=dataset,
        ch_names=[channels.normalize_name(c) for c in meta["channel_names"]],
        fs=float(meta["sampling_rate"]),
        label_names=list(meta["label_names"]),
        valence_names=list(meta.get("valence_names", [])),
        label_to_valence=dict(meta.get("label_to_valence", {})),
    )


def read_dataset(
    dataset: str, data_dir, *, split: str = SPLIT, keep_eeg: bool = True
) -> DatasetRecords:
    """Reads every record of `dataset` once (labels, lengths, and the EEG if `keep_eeg`)."""
    info, source = _open_source(dataset, data_dir, split)
    metadata = _metadata(dataset, info)
    n_chans = len(metadata["ch_names"])
    fields = {key: [] for key in INT_FIELDS + ("n_times",)}
    eeg = []
    for index in range(len(source)):
        record = source[index]
        x = np.asarray(record["eeg"], np.float32)
        if x.ndim != 2 or x.shape[0] != n_chans:
            raise ValueError(
                f"{dataset} ({info.data_dir}) record {index} "
                f"({record.get('key')!r}): eeg shape {x.shape}, expected "
                f"[{n_chans} channels, T]"
            )
        for key, value in [(key, record[key]) for key in INT_FIELDS] + [("n_times", x.shape[1])]:
            fields[key].append(int(value))
        if keep_eeg:
            eeg.append(x)
    if not fields["n_times"]:
        raise ValueError(f"{dataset} ({info.data_dir}): split {split!r} has no records")
    fields = {key: np.asarray(values, np.int64) for key, values in fields.items()}
    return DatasetRecords(metadata, fields, eeg if keep_eeg else None, source)


def session_groups(fields: dict) -> list[SessionGroup]:
    """Groups (subject, session) trial sequences by (session, stimulus order), sorted."""
    by_key: dict = {}
    keys = np.stack([fields["subject"], fields["session"]], axis=1)
    for subject, session in np.unique(keys, axis=0):
        rows = np.flatnonzero((fields["subject"] == subject) & (fields["session"] == session))
        rows = rows[np.argsort(fields["trial"][rows], kind="stable")]
        key = (int(session), tuple(fields["stimulus"][rows].tolist()))
        by_key.setdefault(key, []).append((int(subject), rows))
    groups = []
    for (session, stimuli), members in sorted(by_key.items()):
        records = np.stack([rows for _, rows in members])
        groups.append(
            SessionGroup(
                session,
                np.asarray(stimuli, np.int64),
                np.asarray([s for s, _ in members], np.int64),
                records,
                fields["n_times"][records],
            )
        )
    return groups


def check_fs(metadata: dict, fs: float) -> None:
    """Raises if the stored sampling rate is not the pipeline's fs (no resampling here)."""
    if abs(metadata["fs"] - float(fs)) > 1e-6:
        raise ValueError(
            f"{metadata['dataset']}: stored sampling_rate {metadata['fs']:g} Hz != "
            f"the pipeline's fs {float(fs):g} Hz (build a config at {float(fs):g} "
            f"Hz or change fs)"
        )


def dataset_info(dataset: str, data_dir, *, split: str = SPLIT, require_pairs: bool = True) -> dict:
    """Metadata plus counts of a built dataset (reads every record once, keeps no EEG).

    Returns:
        dict: dataset, ch_names, fs (Hz), label_names, valence_names, label_to_valence,
        n_subjects, n_sessions, n_stimuli, n_trials, n_pair_groups (sessions shared by
        >= 2 subjects with the same stimulus order), min_n_times / max_n_times (samples).

    Raises:
        ValueError: if `require_pairs` and no two subjects share a session.
    """
    fields = (records := read_dataset(dataset, data_dir, split=split, keep_eeg=False)).fields
    info = dict(
        records.metadata,
        n_subjects=len(np.unique(fields["subject"])),
        n_sessions=len(np.unique(fields["session"])),
        n_stimuli=len(np.unique(fields["stimulus"])),
        n_trials=len(fields["subject"]),
        n_pair_groups=sum(len(g.subjects) >= 2 for g in session_groups(fields)),
        min_n_times=int(fields["n_times"].min()),
        max_n_times=int(fields["n_times"].max()),
    )
    if require_pairs and not info["n_pair_groups"]:
        raise ValueError(
            f"{dataset} ({data_dir}): no session is shared by two subjects with "
            f"the same stimulus order, so it cannot form pre-training pairs"
        )
    return info


def load_trials(
    dataset: str, data_dir, ch_names: Sequence[str], *, fs: float | None = None, split: str = SPLIT
) -> tuple[list[dict], dict]:
    """Every trial of `dataset` projected onto `ch_names`, for extraction and probing.

    Args:
        dataset, data_dir: TFDS name "<dataset>/<config>" and the dir it was built into.
        ch_names: unified channel names (C); fs: if given, the expected stored rate (Hz).

    Returns:
        (trials, metadata): trials in record order, each a dict with "eeg" float32 [C, T_r]
        µV at the stored rate and int "subject", "session", "trial", "stimulus", "label",
        "valence"; metadata as in `dataset_info` (without pair validation).
    """
    records = read_dataset(dataset, data_dir, split=split, keep_eeg=True)
    if fs is not None:
        check_fs(records.metadata, fs)
    matrix = channels.projection_matrix(records.metadata["ch_names"], list(ch_names))
    trials = [
        dict({key: int(records.fields[key][i]) for key in INT_FIELDS}, eeg=matrix @ eeg)
        for i, eeg in enumerate(records.eeg)
    ]
    return trials, dict(records.metadata)


def is_built(data_dir: str, dataset: str) -> bool:
    """Whether the TFDS dataset "<name>/<config>" has a finished build in data_dir (TFDS
    writes dataset_info.json last)."""
    return bool(glob.glob(os.path.join(data_dir, dataset, "*", "dataset_info.json")))


def ensure_datasets(datasets: list, data_dir: str) -> None:
    """Builds missing synthetic datasets (process 0); a missing real one is an error."""
    import jax
    from jax.experimental import multihost_utils

    missing = [d for d in datasets if not is_built(data_dir, d)]
    real = [d for d in missing if d.split("/")[0] != SYNTHETIC]
    if real:
        commands = "\n  ".join(
            f"python -m tfds_builders.build {d.split('/')[0]} --config {d.split('/')[-1]} "
            f"--manual_dir RAW_DIR --data_dir {data_dir}"
            for d in real
        )
        raise FileNotFoundError(
            f"datasets {real} are not built in {data_dir}; build them "
            f"from the official downloads with:\n  {commands}"
        )
    if missing and jax.process_index() == 0:
        from tfds_builders import build  # The builders are not part of the library.

        for dataset in missing:
            print(f"[data] building {dataset} into {data_dir}", flush=True)
            build.build_dataset(SYNTHETIC, dataset.split("/")[1], data_dir)
    if missing and jax.process_count() > 1:
        multihost_utils.sync_global_devices("synthetic datasets built")
