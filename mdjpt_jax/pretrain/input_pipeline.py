"""Grain input pipeline for joint pre-training (the records it reads: `trials`).

One pre-training step reads, for each of K datasets, P pairs of distinct subjects who
share a session (the same stimuli in the same order) and, per pair, M windows at
identical (stimulus, offset) for both subjects. Batches have static shapes:

    eeg      float32 [K, P_host, 2, M, C, T]  µV, projected onto `ch_names`
    subject  int32   [K, P_host, 2]           dataset-local subject ids
    stimulus int32   [K, P_host, M]           stimulus id of each window
    offset   int32   [K, P_host, M]           window start in samples within its trial

Subjects held out of pre-training (`heldout.heldout_subjects`) are removed from every
session group before sampling: no batch ever holds one of their windows.

Step i's sampling depends only on (seed, i, dataset, pair): the iterator state is the step
counter, and host h of H computes exactly its slice of the P pairs. Trial EEG is read once
from the TFDS data source and kept in memory (`cache_trials=False`: re-read per step); with
grain worker processes (`num_workers`) in one memory-mapped file per dataset they all share.
Nothing is normalized or rescaled here (the model's stratified normalization is).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import weakref
from typing import Sequence

import grain
import numpy as np
from absl import flags
from grain.python import SharedMemoryArray

from mdjpt_jax import channels, heldout
from mdjpt_jax.trials import (
    SPLIT,
    DatasetRecords,
    MappedTrials,
    SessionGroup,
    check_fs,
    read_dataset,
    session_groups,
)


SHM_DIR = "/dev/shm"  # Where worker processes' shared trial files go (RAM), when it exists.
# True in grain worker processes (`_mark_worker`): batches are then built directly in shared
# memory, which grain hands to the training process without a copy.
_IN_WORKER = False


def _mark_worker(worker_index: int, worker_count: int) -> None:
    """grain `mp_prefetch` worker_init_fn: this process builds batches for the training one."""
    del worker_index, worker_count
    global _IN_WORKER
    _IN_WORKER = True


def sample_windows(
    rng: np.random.Generator, lengths: np.ndarray, n_windows: int, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Spreads `n_windows` windows evenly over trials of `lengths` [N_pos] samples (>= window).

    Returns:
        (positions [n_windows] indices into lengths, offsets [n_windows] in samples): every
        position gets n_windows // N_pos windows, a random n_windows % N_pos of them one
        more, at distinct offsets (where the trial is long enough).
    """
    n_pos = len(lengths)
    counts = np.full(n_pos, n_windows // n_pos)
    counts[rng.choice(n_pos, n_windows % n_pos, replace=False)] += 1
    positions, offsets = [], []
    for pos in np.flatnonzero(counts):
        span, count = int(lengths[pos]) - window + 1, int(counts[pos])
        offsets.append(np.sort(rng.choice(span, count, replace=count > span)))
        positions.append(np.full(count, pos))
    return np.concatenate(positions), np.concatenate(offsets)


class _Projector:
    """Projects windows with a matrix [C, C_src]: copies identity rows, mixes spline rows.

    Identity rows go as contiguous (dst, src, length) slice runs when there are few (fast).
    """

    MAX_RUNS = 8

    def __init__(self, matrix: np.ndarray):
        one_hot = (np.count_nonzero(matrix, axis=1) == 1) & (matrix.max(axis=1) == 1.0)
        self.copy_rows, self.copy_src = np.flatnonzero(one_hot), matrix[one_hot].argmax(axis=1)
        self.mix_rows, self.mix = np.flatnonzero(~one_hot), np.ascontiguousarray(matrix[~one_hot])
        breaks = np.flatnonzero((np.diff(self.copy_rows) != 1) | (np.diff(self.copy_src) != 1))
        starts = np.concatenate([[0], breaks + 1]).astype(int)
        stops = np.concatenate([breaks + 1, [len(self.copy_rows)]]).astype(int)
        self.runs = [
            (int(self.copy_rows[a]), int(self.copy_src[a]), int(b - a))
            for a, b in zip(starts, stops)
            if b > a
        ]

    def __call__(self, trial: np.ndarray, start: int, out: np.ndarray) -> None:
        """Writes the window trial[:, start:start + T] ([C_src, T_r]) projected into out [C, T]."""
        stop = start + out.shape[-1]
        if len(self.runs) <= self.MAX_RUNS:
            for dst, src, n in self.runs:
                out[dst : dst + n] = trial[src : src + n, start:stop]
        else:
            out[self.copy_rows] = trial[self.copy_src, start:stop]
        if len(self.mix_rows):
            out[self.mix_rows] = self.mix @ trial[:, start:stop]


def without_subjects(group: SessionGroup, excluded) -> SessionGroup:
    """`group` with the subjects in `excluded` removed (rows of subjects/records/n_times)."""
    keep = ~np.isin(group.subjects, np.asarray(excluded, np.int64))
    return dataclasses.replace(
        group,
        subjects=group.subjects[keep],
        records=group.records[keep],
        n_times=group.n_times[keep],
    )


class _DatasetSampler:
    """Pairs and windows of one dataset's training subjects; usable = positions long enough
    for every subject of the group."""

    def __init__(
        self, records: DatasetRecords, ch_names: Sequence[str], window: int, heldout_ids=()
    ):
        self.records, self.window = records, window
        self.heldout_ids = np.asarray(heldout_ids, np.int64)
        self.project = _Projector(
            channels.projection_matrix(records.metadata["ch_names"], list(ch_names))
        )
        self.groups, self.usable = [], []
        for group in session_groups(records.fields):
            group = without_subjects(group, self.heldout_ids)
            usable = np.flatnonzero((group.n_times >= window).all(axis=0))
            if len(group.subjects) >= 2 and len(usable):
                self.groups.append(group)
                self.usable.append(usable)
        if not self.groups:
            raise ValueError(
                f"{records.metadata['dataset']}: no session shared by >= 2 training "
                f"subjects (held out: {self.heldout_ids.tolist()}) has a trial of >= {window} "
                f"samples in each of them, so it cannot form pre-training pairs"
            )
        n_subjects = np.array([len(g.subjects) for g in self.groups], np.float64)
        self.group_p = n_subjects * (n_subjects - 1) / np.sum(n_subjects * (n_subjects - 1))

    def pairs(self, rng: np.random.Generator, n_pairs: int) -> list[tuple[int, int, int]]:
        """n_pairs (group, a, b) uniform over unordered pairs of distinct subjects."""
        chosen = rng.choice(len(self.groups), n_pairs, p=self.group_p)
        return [
            (int(g), *rng.choice(len(self.groups[g].subjects), 2, replace=False).tolist())
            for g in chosen
        ]

    def fill(
        self,
        seed: int,
        step: int,
        k: int,
        n_pairs: int,
        pair_slice: range,
        n_windows: int,
        batch: dict,
    ) -> None:
        """Writes pairs `pair_slice` of step `step` into batch[...][k] in place."""
        pairs = self.pairs(np.random.default_rng([seed, step, k, 0]), n_pairs)
        for row, p in enumerate(pair_slice):
            g, a, b = pairs[p]
            group, usable = self.groups[g], self.usable[g]
            lengths = np.minimum(group.n_times[a, usable], group.n_times[b, usable])
            rng = np.random.default_rng([seed, step, k, 1 + p])
            positions, offsets = sample_windows(rng, lengths, n_windows, self.window)
            positions = usable[positions]
            for side, subject in enumerate((a, b)):
                trials = {}
                for j, (pos, start) in enumerate(zip(positions, offsets)):
                    record = int(group.records[subject, pos])
                    if record not in trials:
                        trials[record] = self.records.trial_eeg(record)
                    self.project(trials[record], int(start), batch["eeg"][k, row, side, j])
            batch["subject"][k, row] = group.subjects[[a, b]]
            batch["stimulus"][k, row] = group.stimuli[positions]
            batch["offset"][k, row] = offsets


def batch_spec(
    num_datasets: int, pairs: int, windows_per_pair: int, n_chans: int, window: int
) -> dict:
    """name -> (shape, numpy dtype) of every entry of a batch of `pairs` pairs (module
    docstring): a host's batch (P_host) or, with the global P, the step's global batch."""
    k, p, m = num_datasets, pairs, windows_per_pair
    return {
        "eeg": ((k, p, 2, m, n_chans, window), np.float32),
        "subject": ((k, p, 2), np.int32),
        "stimulus": ((k, p, m), np.int32),
        "offset": ((k, p, m), np.int32),
    }


class PretrainBatcher:
    """step -> batch dict (see module docstring); a pure function of (seed, step)."""

    def __init__(
        self,
        samplers: list,
        *,
        pairs_per_step: int,
        windows_per_pair: int,
        n_chans: int,
        window: int,
        seed: int,
        process_index: int,
        process_count: int,
    ):
        self.samplers, self.seed = samplers, seed
        self.pairs_per_step, self.windows_per_pair = pairs_per_step, windows_per_pair
        pairs_per_host = pairs_per_step // process_count
        self.pair_slice = range(
            process_index * pairs_per_host, (process_index + 1) * pairs_per_host
        )
        self.spec = batch_spec(len(samplers), pairs_per_host, windows_per_pair, n_chans, window)

    def __call__(self, step: int) -> dict:
        allocate = SharedMemoryArray if _IN_WORKER else np.empty
        batch = {key: allocate(shape, dtype) for key, (shape, dtype) in self.spec.items()}
        for k, sampler in enumerate(self.samplers):
            sampler.fill(
                self.seed,
                int(step),
                k,
                self.pairs_per_step,
                self.pair_slice,
                self.windows_per_pair,
                batch,
            )
        return batch


class PretrainLoader:
    """Checkpointable iterator of pre-training batches (grain MapDataset over step indices).

    `get_state()` -> {"step": next step, "seed": seed} (JSON-serializable);
    `set_state(state)` resumes the identical stream from that step;
    `batcher.spec`: name -> (shape, numpy dtype) of every batch;
    `close()` stops the worker processes (if any; else also done when collected).

    The batches are computed by `num_threads` grain threads in this process (`prefetch`
    batches ahead), or, with `num_workers` > 0, in that many spawned processes (grain
    `mp_prefetch`: worker w computes steps w, w + W, ... one at a time, into shared memory
    handed over without a copy; `prefetch` batches ahead in all, at least one per worker),
    which takes the batches' Python work off this process's GIL. A batch is a pure function
    of (seed, step), so the stream and its state are the same for every thread and worker
    count.
    """

    def __init__(
        self, batcher: PretrainBatcher, *, num_threads: int, prefetch: int, num_workers: int = 0
    ):
        self.batcher = batcher
        threads = 0 if num_workers else num_threads  # A worker builds its batches in turn.
        self._read_options = grain.ReadOptions(
            num_threads=threads, prefetch_buffer_size=prefetch if threads else 0
        )
        per_worker = -(-prefetch // max(num_workers, 1))  # ceil: `prefetch` in all
        self._workers = grain.MultiprocessingOptions(
            num_workers=num_workers, per_worker_buffer_size=max(per_worker, 1)
        )
        self._step, self._iterator = 0, None

    def _batches_from(self, step: int):
        """A fresh grain iterator over the batches of steps step, step + 1, ..."""
        dataset = (
            grain.MapDataset.range(step, sys.maxsize)
            .map(self.batcher)
            .to_iter_dataset(self._read_options)
        )
        if self._workers.num_workers:
            if not flags.FLAGS.is_parsed():  # grain's mp_prefetch reads its absl flags.
                flags.FLAGS.mark_as_parsed()
            dataset = dataset.mp_prefetch(self._workers, worker_init_fn=_mark_worker)
        return iter(dataset)

    def __iter__(self) -> "PretrainLoader":
        return self

    def __next__(self) -> dict:
        if self._iterator is None:
            self._iterator = self._batches_from(self._step)
        batch = next(self._iterator)
        self._step += 1
        return batch

    def get_state(self) -> dict:  # Same on every host: elastic across process counts.
        return {"step": self._step, "seed": self.batcher.seed}

    def set_state(self, state: dict) -> None:
        if int(state["seed"]) != self.batcher.seed:
            raise ValueError(
                f"iterator state was saved with seed {state['seed']}, this loader "
                f"has seed {self.batcher.seed}"
            )
        self.close()
        self._step = int(state["step"])

    def close(self) -> None:
        """Stops the current grain iterator (its threads or worker processes)."""
        iterator, self._iterator = self._iterator, None
        if hasattr(iterator, "close"):
            iterator.close()


def make_pretrain_loader(
    datasets: Sequence[str],
    data_dir,
    *,
    pairs_per_step: int,
    windows_per_pair: int,
    window_s: float,
    fs: float = 125.0,
    ch_names: Sequence[str],
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    split: str = SPLIT,
    cache_trials: bool = True,
    num_threads: int = 1,
    prefetch: int = 2,
    num_workers: int = 0,
    heldout_subjects: int = 0,
    heldout_subject_ids: dict | None = None,
) -> PretrainLoader:
    """The pre-training loader over K datasets (see module docstring for the batch).

    Args:
        datasets: TFDS names "<dataset>/<config>", K of them, built into `data_dir`.
        pairs_per_step: P, pairs per dataset per step over all hosts.
        windows_per_pair: M windows per pair.
        window_s: window length in seconds; T = round(window_s * fs) samples.
        fs: Hz; every dataset's stored sampling_rate must equal it.
        ch_names: the unified channel set (C names); see channels.UNIFIED_SETS.
        seed: non-negative int; batches depend only on (seed, step).
        process_index, process_count: this host's slice of the P pairs.
        cache_trials: keep all trial EEG in memory (else re-read records per step).
        num_threads, prefetch: grain worker threads and buffered batches (0 = synchronous).
        num_workers: grain worker processes computing the batches (0 = in this process,
            else `num_threads` is not used and `prefetch` is shared among the workers);
            with `cache_trials`, the trials are then written once to a memory-mapped file
            per dataset (`MappedTrials`, under /dev/shm when it exists) that every worker
            maps, removed when the loader is collected or the process exits.
        heldout_subjects, heldout_subject_ids: subjects never sampled
            (`heldout.heldout_subjects` per dataset: a count, or ids per dataset name).
    """
    window = int(round(window_s * fs))
    if not datasets or min(pairs_per_step, windows_per_pair, window, process_count) < 1 or seed < 0:
        raise ValueError(
            f"need datasets ({datasets}), pairs_per_step ({pairs_per_step}), "
            f"windows_per_pair ({windows_per_pair}), window samples ({window}), "
            f"process_count ({process_count}) >= 1 and seed ({seed}) >= 0"
        )
    if pairs_per_step % process_count or not 0 <= process_index < process_count:
        raise ValueError(
            f"pairs_per_step ({pairs_per_step}) must be divisible by process_count "
            f"({process_count}) and 0 <= process_index ({process_index}) < it"
        )
    if num_workers < 0:
        raise ValueError(f"num_workers ({num_workers}) must be >= 0")
    channels.projection_matrix(list(ch_names), list(ch_names))  # Validates names early.
    mapped_dir = (
        tempfile.mkdtemp(prefix="mdjpt_trials_", dir=SHM_DIR if os.path.isdir(SHM_DIR) else None)
        if num_workers and cache_trials
        else None
    )
    samplers = []
    try:
        for k, dataset in enumerate(datasets):
            records = read_dataset(dataset, data_dir, split=split, keep_eeg=cache_trials)
            check_fs(records.metadata, fs)
            if mapped_dir:
                path = os.path.join(mapped_dir, f"{k}.npy")
                records = dataclasses.replace(
                    records, eeg=MappedTrials.write(records.eeg, path), source=None
                )
            excluded = heldout.heldout_subjects(
                dataset,
                records.fields["subject"],
                count=heldout_subjects,
                explicit=heldout_subject_ids,
            )
            samplers.append(_DatasetSampler(records, ch_names, window, excluded))
    except BaseException:
        if mapped_dir:
            shutil.rmtree(mapped_dir, ignore_errors=True)
        raise
    batcher = PretrainBatcher(
        samplers,
        pairs_per_step=pairs_per_step,
        windows_per_pair=windows_per_pair,
        n_chans=len(ch_names),
        window=window,
        seed=seed,
        process_index=process_index,
        process_count=process_count,
    )
    loader = PretrainLoader(
        batcher, num_threads=num_threads, prefetch=prefetch, num_workers=num_workers
    )
    if mapped_dir:
        weakref.finalize(loader, shutil.rmtree, mapped_dir, ignore_errors=True)
    return loader
