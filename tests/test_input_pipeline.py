"""input_pipeline.py: pair alignment, static shapes, determinism, iterator state, hosts."""

import gc
import json
import os
import pickle

import numpy as np
import pytest

from mdjpt_jax import channels
from mdjpt_jax.pretrain import input_pipeline
from mdjpt_jax.trials import INT_FIELDS, MappedTrials, dataset_info, load_trials
from tests import naive_pipeline

SYNTHETIC = ("synthetic_emotion/d0", "synthetic_emotion/d1", "synthetic_emotion/d2")
TOY = "pipeline_toy/pairs"
SEED60 = channels.UNIFIED_SETS["seed60"]
FS = 125.0


@pytest.fixture(scope="module")
def synthetic_dir(synthetic_data_dir):
    return str(synthetic_data_dir)


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("toy"))
    naive_pipeline.build_toy("pairs", data_dir)
    naive_pipeline.build_toy("lonely", data_dir)
    return data_dir


def _loader(data_dir, datasets=SYNTHETIC, **overrides):
    kwargs = dict(
        pairs_per_step=2,
        windows_per_pair=6,
        window_s=1.0,
        fs=FS,
        ch_names=SEED60,
        seed=0,
        num_threads=0,
    )
    kwargs.update(overrides)
    return input_pipeline.make_pretrain_loader(list(datasets), data_dir, **kwargs)


def _take(loader, n):
    return [next(loader) for _ in range(n)]


def _assert_batches_equal(first, second):
    for a, b in zip(first, second):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_pairs_share_session_stimulus_offset_and_match_stored_trials(synthetic_dir):
    loader = _loader(synthetic_dir, windows_per_pair=5)
    info = [dataset_info(d, synthetic_dir) for d in SYNTHETIC]
    records = [naive_pipeline.naive_trials(d, synthetic_dir) for d in SYNTHETIC]
    for batch in _take(loader, 2):
        for k in range(len(SYNTHETIC)):
            matrix = channels.projection_matrix(info[k]["ch_names"], SEED60)
            for p in range(2):
                subjects = batch["subject"][k, p]
                assert subjects[0] != subjects[1]
                naive_pipeline.check_pair_windows(
                    records[k],
                    matrix,
                    batch["eeg"][k, p],
                    subjects,
                    batch["stimulus"][k, p],
                    batch["offset"][k, p],
                )


def test_static_shapes_for_every_dataset_and_fewer_stimuli_than_windows(synthetic_dir):
    counts = [dataset_info(d, synthetic_dir)["n_stimuli"] for d in SYNTHETIC]
    m = max(counts) + 3  # every dataset has < M stimuli
    ch_names = channels.UNIFIED_SETS["standard_1020"]
    loader = _loader(synthetic_dir, windows_per_pair=m, ch_names=ch_names, pairs_per_step=3)
    k, t = len(SYNTHETIC), int(FS)
    expected = {
        "eeg": ((k, 3, 2, m, len(ch_names), t), np.float32),
        "subject": ((k, 3, 2), np.int32),
        "stimulus": ((k, 3, m), np.int32),
        "offset": ((k, 3, m), np.int32),
    }
    assert loader.batcher.spec == expected
    for batch in _take(loader, 2):
        assert {key: (v.shape, v.dtype) for key, v in batch.items()} == expected
        assert np.isfinite(batch["eeg"]).all()
        for kk in range(k):
            for p in range(3):
                pairs = set(zip(batch["stimulus"][kk, p], batch["offset"][kk, p]))
                assert len(pairs) == m  # repeated stimuli at new offsets


def test_toy_corner_cases(toy_dir):
    """Never pairs subject 3 (other stimulus order); session 1 uses its one usable trial."""
    loader = _loader(
        toy_dir,
        [TOY, TOY],
        pairs_per_step=4,
        windows_per_pair=6,
        window_s=2.0,
        ch_names=["C3", "CZ", "FZ"],
    )
    records = naive_pipeline.naive_trials(TOY, toy_dir)
    matrix = channels.projection_matrix(naive_pipeline.TOY_CH_NAMES, ["C3", "CZ", "FZ"])
    assert np.all(matrix[:, 4] == 0)  # CB1 unused
    sessions = set()
    for batch in _take(loader, 8):
        assert not np.any(batch["subject"] == 3)
        for k in range(2):
            for p in range(4):
                stimuli = batch["stimulus"][k, p]
                session = naive_pipeline.check_pair_windows(
                    records,
                    matrix,
                    batch["eeg"][k, p],
                    batch["subject"][k, p],
                    stimuli,
                    batch["offset"][k, p],
                )
                sessions.add(session)
                if session == 1:
                    assert np.all(stimuli == 5)
                else:  # 4 stimuli, 6 windows: 2+2+1+1
                    assert sorted(np.bincount(stimuli, minlength=4)[:4]) == [1, 1, 2, 2]
    assert sessions == {0, 1}


def test_lazy_reads_equal_cached_trials(toy_dir):
    kwargs = dict(pairs_per_step=2, windows_per_pair=5, window_s=2.0, ch_names=["C3", "FZ"])
    cached = _take(_loader(toy_dir, [TOY], **kwargs), 3)
    lazy = _take(_loader(toy_dir, [TOY], cache_trials=False, num_threads=2, **kwargs), 3)
    _assert_batches_equal(cached, lazy)


def test_sample_windows_spreads_evenly():
    rng = np.random.default_rng(0)
    positions, offsets = input_pipeline.sample_windows(rng, np.array([300, 260, 400]), 8, 250)
    assert sorted(np.bincount(positions, minlength=3)) == [2, 3, 3]
    assert np.all(offsets + 250 <= np.array([300, 260, 400])[positions])
    assert len(set(zip(positions, offsets))) == 8
    positions, _ = input_pipeline.sample_windows(rng, np.full(10, 300), 4, 250)
    assert len(set(positions)) == 4


def test_same_seed_same_batches_other_seed_differs(synthetic_dir):
    first = _take(_loader(synthetic_dir), 2)
    _assert_batches_equal(first, _take(_loader(synthetic_dir, num_threads=2), 2))
    other = _take(_loader(synthetic_dir, seed=1), 2)
    assert not np.array_equal(first[0]["offset"], other[0]["offset"])
    assert not np.array_equal(first[1]["eeg"], other[1]["eeg"])
    assert not np.array_equal(first[0]["offset"], first[1]["offset"])


def test_state_round_trip_resumes_identical_stream(synthetic_dir):
    loader = _loader(synthetic_dir, num_threads=1, prefetch=2)
    _take(loader, 3)
    state = json.loads(json.dumps(loader.get_state()))
    assert state == {"step": 3, "seed": 0}
    expected = _take(loader, 2)
    resumed = _loader(synthetic_dir)
    resumed.set_state(state)
    _assert_batches_equal(expected, _take(resumed, 2))
    assert resumed.get_state()["step"] == 5
    with pytest.raises(ValueError, match="seed"):
        _loader(synthetic_dir, seed=4).set_state(state)


def test_host_slices_concatenate_to_single_host_batch(synthetic_dir):
    single = _take(_loader(synthetic_dir, pairs_per_step=4), 2)
    hosts = [
        _take(_loader(synthetic_dir, pairs_per_step=4, process_index=i, process_count=2), 2)
        for i in range(2)
    ]
    for step in range(2):
        for key in single[step]:
            assert hosts[0][step][key].shape[1] == 2
            np.testing.assert_array_equal(
                np.concatenate([h[step][key] for h in hosts], axis=1), single[step][key]
            )
    with pytest.raises(ValueError, match="divisible"):
        _loader(synthetic_dir, pairs_per_step=3, process_count=2)


def test_sampling_rate_mismatch_and_unpairable_dataset_raise(synthetic_dir, toy_dir):
    with pytest.raises(ValueError, match="sampling_rate"):
        _loader(synthetic_dir, fs=250.0)
    with pytest.raises(ValueError, match="sampling_rate"):
        load_trials(SYNTHETIC[0], synthetic_dir, SEED60, fs=200.0)
    with pytest.raises(ValueError, match="cannot form pre-training pairs"):
        dataset_info("pipeline_toy/lonely", toy_dir)
    with pytest.raises(ValueError, match="cannot form pre-training pairs"):
        _loader(toy_dir, ["pipeline_toy/lonely"])
    with pytest.raises(ValueError, match="cannot form pre-training pairs"):
        _loader(toy_dir, [TOY], window_s=10.0)  # every trial shorter than T
    with pytest.raises(FileNotFoundError, match="not built"):
        _loader(str(toy_dir) + "/empty", [TOY])


def test_load_trials_projects_every_trial(toy_dir):
    ch_names = channels.UNIFIED_SETS["standard_1020"]
    trials, metadata = load_trials(TOY, toy_dir, ch_names)
    records = naive_pipeline.naive_trials(TOY, toy_dir)
    assert len(trials) == len(records) == len(naive_pipeline.toy_trials("pairs"))
    matrix = channels.projection_matrix(naive_pipeline.TOY_CH_NAMES, ch_names)
    for trial, record in zip(trials, records):
        for key in INT_FIELDS:
            assert trial[key] == int(record[key])
        assert trial["eeg"].shape == (len(ch_names), record["eeg"].shape[1])
        np.testing.assert_allclose(trial["eeg"], matrix @ record["eeg"], rtol=1e-5, atol=1e-4)
    assert metadata["ch_names"] == list(naive_pipeline.TOY_CH_NAMES)
    assert metadata["fs"] == FS and metadata["label_names"] == ["sad", "happy"]
    info = dataset_info(TOY, toy_dir)
    assert (
        info["n_subjects"],
        info["n_sessions"],
        info["n_stimuli"],
        info["n_trials"],
        info["n_pair_groups"],
    ) == (4, 2, 6, 20, 2)


def test_heldout_subjects_are_never_sampled(synthetic_dir):
    """Over 300 steps x 3 datasets x 4 pairs (7200 subject draws) no held-out subject
    appears, while every training subject does (the exclusion is exact, not a
    thinning); the held-out ones are the highest ids, or the ids listed per dataset."""
    explicit = {SYNTHETIC[1]: (0, 3)}
    loader = _loader(
        synthetic_dir,
        pairs_per_step=4,
        windows_per_pair=2,
        heldout_subjects=2,
        heldout_subject_ids=explicit,
    )
    seen = [set() for _ in SYNTHETIC]
    for step in range(300):
        batch = loader.batcher(step)  # the loader's pure step -> batch function
        for k in range(len(SYNTHETIC)):
            seen[k] |= set(batch["subject"][k].reshape(-1).tolist())
    for k, dataset in enumerate(SYNTHETIC):
        subjects = set(range(dataset_info(dataset, synthetic_dir)["n_subjects"]))
        held = set(explicit.get(dataset, sorted(subjects)[-2:]))
        assert seen[k] == subjects - held, (dataset, seen[k], held)


def test_heldout_subjects_leaving_no_pairs_are_refused(synthetic_dir):
    with pytest.raises(ValueError, match=r"synthetic_emotion/d2: heldout_subjects=5 leaves 1"):
        _loader(synthetic_dir, heldout_subjects=5)
    with pytest.raises(ValueError, match=r"held-out subjects \[99\] are not in the dataset"):
        _loader(synthetic_dir, heldout_subject_ids={SYNTHETIC[0]: [99]})


def test_worker_processes_give_the_same_stream_and_resume(synthetic_dir):
    """Batches from 2 or 3 grain worker processes (trials in a shared memory-mapped file,
    or re-read per step) equal the in-process ones bit for bit, and get_state / set_state
    resume the same stream; the shared trial files go with the loader."""
    expected = _take(_loader(synthetic_dir, pairs_per_step=4), 6)
    loader = _loader(synthetic_dir, pairs_per_step=4, num_workers=2)
    (mapped_dir,) = {os.path.dirname(s.records.eeg.path) for s in loader.batcher.samplers}
    _assert_batches_equal(expected[:4], _take(loader, 4))
    assert loader.get_state() == {"step": 4, "seed": 0}
    loader.set_state({"step": 1, "seed": 0})
    _assert_batches_equal(expected[1:6], _take(loader, 5))
    loader.close()
    del loader
    gc.collect()
    assert not os.path.exists(mapped_dir)
    lazy = _loader(synthetic_dir, pairs_per_step=4, num_workers=3, cache_trials=False)
    _assert_batches_equal(expected, _take(lazy, 6))
    lazy.close()
    with pytest.raises(ValueError, match="num_workers"):
        _loader(synthetic_dir, num_workers=-1)


def test_mapped_trials_are_the_records_and_pickle_as_their_path(tmp_path):
    rng = np.random.default_rng(0)
    eeg = [rng.standard_normal((3, n)).astype(np.float32) for n in (5, 1, 7)]
    mapped = MappedTrials.write(eeg, str(tmp_path / "trials.npy"))
    assert len(mapped) == 3
    restored = pickle.loads(pickle.dumps(mapped))
    assert len(pickle.dumps(mapped)) < 1000  # the path and offsets, not the samples
    for r, x in enumerate(eeg):
        np.testing.assert_array_equal(mapped[r], x)
        np.testing.assert_array_equal(restored[r], x)
    with pytest.raises(OSError, match=r"cannot write .* GiB of trials to .*missing"):
        MappedTrials.write(eeg, str(tmp_path / "missing" / "trials.npy"))
