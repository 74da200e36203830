"""Pairing invariants of the pre-training pipeline on data built by real builders.

SEED, DREAMER and SEED-IV are built (`preprocessed`, 125 Hz) from fake files in their
official formats (each builder's `make_dummy_data`, through `tfds_builders.testing`), then
fed to `make_pretrain_loader`. Every pair of every batch is checked against the records
read straight from the TFDS data source:
  - the two subjects are distinct and share a session with the same stimulus order;
  - for both subjects, window j is their own trial of stimulus[j] in that session at
    [offset[j], offset[j] + T): inside the trial (no window crosses a trial end) and equal
    to the stored samples (exactly for a channel subset, via the projection matrix else).
The fake trials have unequal lengths: SEED (125 or 250 samples) and DREAMER (250, 375 or
500) differ between the two subjects of a pair at the same stimulus; SEED-IV (125-170)
differs across stimuli only. The tests assert that these cases really occur in the batches.
"""

import collections

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mdjpt_jax import channels
from mdjpt_jax.pretrain import input_pipeline
from tests import naive_pipeline
from tfds_builders import testing
from tfds_builders.dreamer import dreamer_dataset_builder as dreamer
from tfds_builders.dreamer import make_dummy_data as dreamer_dummy
from tfds_builders.seed import make_dummy_data as seed_dummy
from tfds_builders.seed import seed_dataset_builder as seed
from tfds_builders.seed_iv import make_dummy_data as seed_iv_dummy
from tfds_builders.seed_iv import seed_iv_dataset_builder as seed_iv

FS = 125.0
DATASETS = ("seed/preprocessed", "dreamer/preprocessed", "seed_iv/preprocessed")
# DREAMER's 14 channels, all among SEED's 62: the projection only selects rows (exact copy).
OWN_CHANNELS = list(dreamer.CHANNEL_NAMES)
PAIRS, WINDOWS, STEPS = 6, 20, 4


class _SeedBuild(testing.BuilderContract):
    DATASET_CLASS = seed.Builder
    CLASS_OVERRIDES = {"SUBJECTS": (1, 2, 3)}


class _DreamerBuild(testing.BuilderContract):
    DATASET_CLASS = dreamer.Builder


class _SeedIVBuild(testing.BuilderContract):
    DATASET_CLASS = seed_iv.Builder
    CLASS_OVERRIDES = {"SUBJECTS": (1, 2)}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A data_dir with the three `preprocessed` builds (a few seconds in all)."""
    root = tmp_path_factory.mktemp("real_builders")
    data = root / "data"
    seed_dummy.write(root / "seed", subjects=(1, 2, 3), seed=3)
    _SeedBuild().build("preprocessed", root / "seed", data)
    dreamer_dummy.write(root / "dreamer", n_subjects=3, seed=4)
    _DreamerBuild().build("preprocessed", root / "dreamer", data)
    seed_iv_dummy.write(root / "seed_iv", subjects=(1, 2), seed=5)
    _SeedIVBuild().build("preprocessed", root / "seed_iv", data)
    return str(data)


@pytest.fixture(scope="module")
def stored(data_dir):
    """dataset -> ({(subject, session, stimulus): record}, {(subject, session): stimulus
    order}, stored channel names), read straight from the TFDS data source."""
    out = {}
    for dataset in DATASETS:
        records = naive_pipeline.naive_trials(dataset, data_dir)
        by_key = {(int(r["subject"]), int(r["session"]), int(r["stimulus"])): r for r in records}
        assert len(by_key) == len(records)  # stimulus ids unique per session
        orders = collections.defaultdict(list)
        for r in sorted(records, key=lambda r: int(r["trial"])):
            orders[int(r["subject"]), int(r["session"])].append(int(r["stimulus"]))
        meta = tfds.builder(dataset, data_dir=data_dir).info.metadata
        ch_names = [channels.normalize_name(c) for c in meta["channel_names"]]
        assert all(r["eeg"].shape[0] == len(ch_names) for r in records)
        out[dataset] = (by_key, dict(orders), ch_names)
    return out


def _window_problems(by_key, matrix, eeg, subjects, session, stimuli, offsets, exact):
    """Mismatches of one pair's windows against its subjects' stored trials in `session`."""
    problems, window = [], eeg.shape[-1]
    for side, subject in enumerate(subjects):
        for j, (stimulus, offset) in enumerate(zip(stimuli, offsets)):
            record = by_key.get((int(subject), session, int(stimulus)))
            where = f"subject {subject} window {j} (stimulus {stimulus}, offset {offset})"
            if record is None:
                problems.append(f"{where}: no such trial")
                continue
            trial = np.asarray(record["eeg"])
            if offset < 0 or offset + window > trial.shape[1]:
                problems.append(f"{where}: crosses the trial end ({trial.shape[1]} samples)")
                continue
            want = matrix @ trial[:, offset : offset + window]
            got = eeg[side, j]
            same = (
                np.array_equal(got, want) if exact else np.allclose(got, want, rtol=1e-5, atol=1e-4)
            )
            if not same:
                problems.append(f"{where}: differs from the stored samples")
    return problems


def _check_pair(by_key, orders, matrix, eeg, subjects, stimuli, offsets, exact) -> int:
    """Asserts one pair's invariants; returns the session its windows come from."""
    assert subjects[0] != subjects[1], subjects
    assert np.all(offsets >= 0), offsets
    shared = [
        session
        for (subject, session), order in orders.items()
        if subject == subjects[0] and orders.get((int(subjects[1]), session)) == order
    ]
    assert shared, f"subjects {subjects} share no session with the same stimulus order"
    problems = {
        session: _window_problems(by_key, matrix, eeg, subjects, session, stimuli, offsets, exact)
        for session in shared
    }
    matches = [session for session, found in problems.items() if not found]
    assert len(matches) == 1, (subjects, {s: p[:4] for s, p in problems.items()})
    return matches[0]


def _lengths(by_key, subjects, session, stimuli) -> np.ndarray:
    """[2, M] stored trial lengths of both subjects at each window's stimulus."""
    return np.array(
        [[by_key[int(s), session, int(st)]["eeg"].shape[1] for st in stimuli] for s in subjects]
    )


def test_fakes_have_unequal_lengths_across_subjects(stored):
    """Premise of the pairing test: at the same (session, stimulus), two subjects' trials
    differ in length in SEED and DREAMER; in SEED-IV they never do."""
    for dataset, differ in [(DATASETS[0], True), (DATASETS[1], True), (DATASETS[2], False)]:
        by_key, orders, _ = stored[dataset]
        unequal = 0
        for (subject, session), order in orders.items():
            for (other, other_session), other_order in orders.items():
                if other > subject and other_session == session and other_order == order:
                    unequal += sum(
                        by_key[subject, session, st]["eeg"].shape[1]
                        != by_key[other, session, st]["eeg"].shape[1]
                        for st in order
                    )
        assert (unequal > 0) == differ, (dataset, unequal)


@pytest.mark.parametrize(
    "window_s, ch_set, cache_trials",
    [
        (0.4, "own", True),  # T = 50: many offsets, exact copies
        (1.0, "own", False),  # T = 125 = SEED's short trials: offset 0 only; lazy reads
        (0.4, "seed60", True),  # DREAMER interpolated onto SEED's montage
    ],
)
def test_pairs_share_stimulus_offset_and_stay_inside_both_trials(
    data_dir, stored, window_s, ch_set, cache_trials
):
    """Every window of both subjects is their own stored trial at (stimulus, offset), inside it.

    Also asserts that the cases that make this non-trivial occur: pairs whose trials at the
    same stimulus differ in length (SEED, DREAMER), windows of one pair over trials of
    different lengths (SEED-IV), windows ending exactly at the shorter trial's end (T = 125),
    and every subject pair and session of the fakes.
    """
    ch_names = OWN_CHANNELS if ch_set == "own" else channels.UNIFIED_SETS[ch_set]
    loader = input_pipeline.make_pretrain_loader(
        list(DATASETS),
        data_dir,
        pairs_per_step=PAIRS,
        windows_per_pair=WINDOWS,
        window_s=window_s,
        fs=FS,
        ch_names=ch_names,
        seed=11,
        num_threads=0,
        cache_trials=cache_trials,
    )
    window = int(round(window_s * FS))
    seen = {d: collections.Counter() for d in DATASETS}
    for _ in range(STEPS):
        batch = next(loader)
        assert batch["eeg"].shape == (len(DATASETS), PAIRS, 2, WINDOWS, len(ch_names), window)
        for k, dataset in enumerate(DATASETS):
            by_key, orders, src = stored[dataset]
            matrix = channels.projection_matrix(src, list(ch_names))
            for p in range(PAIRS):
                subjects, stimuli = batch["subject"][k, p], batch["stimulus"][k, p]
                offsets = batch["offset"][k, p]
                session = _check_pair(
                    by_key,
                    orders,
                    matrix,
                    batch["eeg"][k, p],
                    subjects,
                    stimuli,
                    offsets,
                    exact=ch_set == "own",
                )
                lengths = _lengths(by_key, subjects, session, stimuli)
                ends = offsets + window
                seen[dataset].update(
                    {
                        "pairs": 1,
                        "windows": WINDOWS,
                        "unequal_subjects": int(np.sum(lengths[0] != lengths[1])),
                        "unequal_trials": int(len(np.unique(lengths[0])) > 1),
                        "at_shorter_end": int(np.sum(ends == lengths.min(axis=0))),
                        f"subjects {sorted(subjects.tolist())}": 1,
                        f"session {session}": 1,
                    }
                )
    seed_seen, dreamer_seen, seed_iv_seen = (seen[d] for d in DATASETS)
    for counts in (seed_seen, dreamer_seen):  # same stimulus, unequal lengths
        assert counts["unequal_subjects"] >= counts["windows"] // 4, counts
    assert seed_iv_seen["unequal_subjects"] == 0 and seed_iv_seen["unequal_trials"], seed_iv_seen
    if window == 125:  # SEED's short trials: offset 0 only
        assert seed_seen["at_shorter_end"] >= seed_seen["unequal_subjects"], seed_seen
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert seed_seen[f"subjects [{a}, {b}]"] and dreamer_seen[f"subjects [{a}, {b}]"]
    assert all(seed_seen[f"session {s}"] and seed_iv_seen[f"session {s}"] for s in range(3))
