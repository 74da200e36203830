"""extract.py: windows, per-subject blocks (never mixing subjects), DE wiring, npz cache."""

import jax
import numpy as np
import pytest
from flax import nnx

from mdjpt_jax import features, windows, workdir
from mdjpt_jax.downstream import extract
from mdjpt_jax.models import Encoder
from tests import naive_features

FS, WINDOW, STEP, N_CHANS = 125.0, 125, 50, 4


def make_trials(n_subjects=3, n_trials=2, n_times=400, seed=0):
    rng = np.random.default_rng(seed)
    return [
        dict(
            eeg=rng.normal(size=(N_CHANS, n_times)).astype(np.float32) * 10,
            subject=s,
            session=0,
            trial=t,
            stimulus=t,
            label=t % 2,
            valence=2 * (t % 2),
        )
        for s in range(n_subjects)
        for t in range(n_trials)
    ]


@pytest.fixture(scope="module")
def encoder():
    return Encoder(N_CHANS, WINDOW, variant="tiny", rngs=nnx.Rngs(params=0))


@nnx.jit
def jitted_embed(encoder, x):
    """encoder.embed(x [S, W, C, T]) on the default device, unsharded."""
    return encoder.embed(x)


def test_window_starts_and_table():
    np.testing.assert_array_equal(windows.window_starts(400, 125, 50), [0, 50, 100, 150, 200, 250])
    assert len(windows.window_starts(100, 125, 50)) == 0
    table = windows.window_table(make_trials(n_subjects=2), WINDOW, STEP)
    assert len(table["start"]) == 2 * 2 * 6
    np.testing.assert_array_equal(np.bincount(table["subject"]), [12, 12])
    with pytest.raises(ValueError, match="at least 500"):
        windows.window_table(make_trials(), 500, 50)


@pytest.mark.parametrize("n,size", [(12, 5), (10, 5), (3, 5), (7, 7)])
def test_subject_blocks_cover_each_window_once(n, size):
    blocks = windows.subject_blocks(n, size, seed=3)
    kept = np.concatenate([pos[keep] for pos, keep in blocks])
    np.testing.assert_array_equal(np.sort(kept), np.arange(n))
    assert {len(pos) for pos, _ in blocks} == {min(n, size)}
    assert all(len(set(pos)) == len(pos) for pos, _ in blocks)


def test_learned_features_never_mix_subjects(encoder):
    trials = make_trials()
    table = windows.window_table(trials, WINDOW, STEP)
    kwargs = dict(window=WINDOW, windows_per_block=5, blocks_per_call=2, seed=0)
    before = windows.learned_features(encoder, trials, table, **kwargs)
    fresh = make_trials(seed=1)  # new EEG for subject 1
    changed = [fresh[i] if t["subject"] == 1 else t for i, t in enumerate(trials)]
    after = windows.learned_features(encoder, changed, table, **kwargs)
    others = table["subject"] != 1
    np.testing.assert_array_equal(before[others], after[others])
    change = np.abs(before[~others] - after[~others]).max()
    assert change > 0.05 * np.abs(before[~others]).max(), change


def test_one_block_per_subject_equals_direct_embed(encoder):
    trials = make_trials(n_subjects=2, n_trials=1)  # 6 windows per subject
    table = windows.window_table(trials, WINDOW, STEP)
    got = windows.learned_features(
        encoder, trials, table, window=WINDOW, windows_per_block=8, blocks_per_call=1, seed=0
    )
    for subject in (0, 1):
        rows = np.flatnonzero(table["subject"] == subject)
        x = windows.gather_windows(trials, table, rows, WINDOW)[None]
        direct = jitted_embed(encoder, x)  # the whole subject as one block
        np.testing.assert_allclose(got[rows], np.asarray(direct)[0], rtol=1e-4, atol=1e-5)


def uneven_trials():
    """Subjects 0, 2, 3 with 12 windows, subject 1 with 4 (its blocks are smaller)."""
    trials = make_trials(n_subjects=4)
    return [dict(t, eeg=t["eeg"][:, :175]) if t["subject"] == 1 else t for t in trials]


def test_block_calls_pack_subjects_and_pad_only_at_the_end():
    table = windows.window_table(uneven_trials(), WINDOW, STEP)
    calls = windows.block_calls(table, windows_per_block=5, blocks_per_call=4, seed=0)
    assert all(len(call) == 4 for call in calls)
    kept = np.concatenate([rows[keep] for call in calls for rows, keep in call])
    np.testing.assert_array_equal(np.sort(kept), np.arange(len(table["start"])))
    for call in calls:
        assert len({len(rows) for rows, _ in call}) == 1  # one shape per call
        for rows, _ in call:
            assert len(np.unique(table["subject"][rows])) == 1  # one subject per block
    # 3 subjects x 3 blocks of 5 = 9 blocks -> 3 calls; subject 1: 1 block of 4 -> 1 call
    assert [len(call[0][0]) for call in calls] == [5, 5, 5, 4]
    padding = [[not keep.any() for _, keep in call] for call in calls]
    assert padding == [[False] * 4, [False] * 4, [False, True, True, True], [False] + [True] * 3]
    mixed = {tuple(np.unique(table["subject"][np.concatenate([r for r, _ in c])])) for c in calls}
    assert (0, 2) in mixed  # the first call holds subject 0's 3 blocks and subject 2's first


@pytest.fixture(scope="module")
def uneven_reference(encoder):
    """(trials, table, [N, D] features from `encoder.embed` of every block of 5 windows
    alone, [1, 5, C, T])."""
    trials = uneven_trials()
    table = windows.window_table(trials, WINDOW, STEP)
    out = np.full((len(table["start"]), encoder.feature_dim), np.nan, np.float32)
    for subject in np.unique(table["subject"]):
        rows = np.flatnonzero(table["subject"] == subject)
        for pos, keep in windows.subject_blocks(len(rows), 5, seed=subject):
            x = windows.gather_windows(trials, table, rows[pos], WINDOW)[None]
            out[rows[pos[keep]]] = np.asarray(jitted_embed(encoder, x))[0][keep]
    return trials, table, out


@pytest.mark.parametrize("num_devices,blocks_per_call", [(1, 1), (1, 3), (2, 3), (8, 1)])
def test_packed_sharded_features_equal_per_block_embedding(
    encoder, uneven_reference, num_devices, blocks_per_call
):
    """Blocks of several subjects in one call, split over 1, 2 or 8 simulated devices: every
    window's feature is its block's alone: bit-identical with the reference's shape (one
    block on one device), else up to float rounding of other shapes."""
    assert jax.device_count() == 8  # tests/conftest.py
    trials, table, expected = uneven_reference
    got = windows.learned_features(
        encoder,
        trials,
        table,
        window=WINDOW,
        windows_per_block=5,
        blocks_per_call=blocks_per_call,
        seed=0,
        num_devices=num_devices,
        progress=False,
    )
    if (num_devices, blocks_per_call) == (1, 1):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-8)


def test_learned_features_refuses_more_devices_than_local():
    with pytest.raises(ValueError, match="num_devices=9"):
        windows.local_mesh(9)


@pytest.mark.parametrize(
    "signal,reference",
    [("de", features.differential_entropy), ("waveform", features.waveform_readout)],
)
def test_signal_features_are_the_per_window_function(signal, reference):
    trials = make_trials(n_subjects=1)
    table = windows.window_table(trials, WINDOW, STEP)  # 12 windows
    got = windows.signal_features(
        trials, table, signal=signal, fs=FS, window=WINDOW, batch_windows=5
    )
    assert got.shape[0] == 12
    for row in (0, 7, 11):
        eeg = windows.gather_windows(trials, table, np.array([row]), WINDOW)
        np.testing.assert_allclose(
            got[row], np.asarray(reference(eeg, FS)).reshape(-1), rtol=1e-5, atol=1e-5
        )


def test_baselines_are_scored_on_the_encoders_windows():
    from configs import demo

    config = demo.get_config()
    ex = config.extract
    for method in ("de", "de_ea", "waveform"):
        inputs = extract.method_inputs(method, 0, config, "unused")
        assert (inputs["window_s"], inputs["step_s"]) == (ex.window_s, ex.step_s) == (2.0, 1.0)
        assert inputs["encoder"] is None and inputs["signal"] == extract.SIGNAL_METHODS[method][0]
        assert inputs["euclidean_alignment"] == (method == "de_ea")
    paper = extract.method_inputs("de_paper", 0, config, "unused")
    assert (paper["signal"], paper["window_s"], paper["step_s"]) == ("de", 1.0, 1.0)
    assert "de_ea" in config.methods and "de_ea" in config.deterministic_methods


def mixed_trials(seed=0, **kwargs):
    """make_trials with a spatial mixing of its own per subject (EA has work to do)."""
    rng = np.random.default_rng(seed + 100)
    mixings = {}
    trials = make_trials(seed=seed, **kwargs)
    for trial in trials:
        mixing = mixings.setdefault(
            trial["subject"], np.eye(N_CHANS) + rng.normal(size=(N_CHANS, N_CHANS))
        )
        trial["eeg"] = (mixing @ trial["eeg"]).astype(np.float32)
    return trials


def de_ea(trials, table, batch_windows=5):
    return windows.signal_features(
        trials,
        table,
        signal="de",
        fs=FS,
        window=WINDOW,
        batch_windows=batch_windows,
        euclidean_alignment=True,
    )


def test_de_ea_aligns_each_subject_with_its_own_windows():
    """Batches of 5 straddle the subjects (12 windows each); every subject's rows equal DE
    of the naive alignment of that subject's windows alone, and changing one subject's
    EEG leaves the others' features unchanged."""
    trials = mixed_trials()
    table = windows.window_table(trials, WINDOW, STEP)
    got = de_ea(trials, table)
    assert got.shape == (36, N_CHANS * 5) and np.isfinite(got).all()
    for subject in range(3):
        rows = np.flatnonzero(table["subject"] == subject)
        aligned = naive_features.euclidean_alignment(
            windows.gather_windows(trials, table, rows, WINDOW)
        )
        expected = np.asarray(features.differential_entropy(aligned.astype(np.float32), FS))
        np.testing.assert_allclose(got[rows], expected.reshape(len(rows), -1), atol=1e-4)
    fresh = mixed_trials(seed=1)  # new EEG and mixing for subject 1
    changed = [fresh[i] if t["subject"] == 1 else t for i, t in enumerate(trials)]
    after = de_ea(changed, table)
    others = table["subject"] != 1
    np.testing.assert_array_equal(got[others], after[others])
    assert np.abs(got[~others] - after[~others]).max() > 0.1


def test_de_ea_removes_a_subject_gain_that_de_keeps():
    """EA of s X equals EA of X (the ridge scales with s^2): a subject recorded with 3x the
    amplifier gain has the same de_ea features, while its plain DE shifts by log 3."""
    trials = mixed_trials()
    table = windows.window_table(trials, WINDOW, STEP)
    louder = [dict(t, eeg=3 * t["eeg"]) if t["subject"] == 2 else t for t in trials]
    np.testing.assert_allclose(de_ea(louder, table), de_ea(trials, table), atol=1e-4)
    kwargs = dict(signal="de", fs=FS, window=WINDOW, batch_windows=5)
    shift = windows.signal_features(louder, table, **kwargs) - windows.signal_features(
        trials, table, **kwargs
    )
    rows = table["subject"] == 2
    np.testing.assert_allclose(shift[rows], np.log(3.0), atol=1e-4)


def test_de_ea_extracts_interpolated_channels_end_to_end(synthetic_data_dir, tmp_path):
    """The demo's "de_ea" inputs on synthetic d2 (14 Emotiv channels -> 19 standard 10-20
    ones, 9 of them spline-interpolated: every subject's reference is singular): [N, 19 * 5]
    finite features with the alignment in the provenance, different from "de"."""
    from configs import demo

    config = demo.get_config("family=synthetic")
    with config.unlocked():
        config.data_dir = str(synthetic_data_dir)
    reader = extract.TrialReader(config.data_dir)
    paths = {}
    for method in ("de", "de_ea"):
        paths[method] = extract.extract_to_file(
            str(tmp_path / f"{method}.npz"),
            "synthetic_emotion/d2",
            reader,
            windows_per_block=config.extract.windows_per_block,
            blocks_per_call=config.extract.blocks_per_call,
            batch_windows=config.extract.baseline_batch_windows,
            seed=config.extract.seed,
            **extract.method_inputs(method, 0, config, str(tmp_path)),
        )
    data, plain = (workdir.load_features(paths[m]) for m in ("de_ea", "de"))
    n_windows = len(data["start"])
    assert data["features"].shape == (n_windows, 19 * 5) and n_windows > 100
    assert np.isfinite(data["features"]).all()
    assert data["provenance"]["alignment"]["kind"] == "euclidean"
    assert data["provenance"]["encoder"] == {"kind": "de_ea"}
    assert "alignment" not in plain["provenance"]
    assert np.abs(data["features"] - plain["features"]).max() > 1.0
    # the documented rank-deficient case: a subject's aligned mean covariance is the
    # projector onto the 14 recorded channels' span (eigenvalues 5 x 0, 14 x 1)
    inputs = extract.method_inputs("de_ea", 0, config, str(tmp_path))
    trials, _ = reader("synthetic_emotion/d2", inputs["ch_names"], inputs["fs"])
    window = int(round(inputs["window_s"] * inputs["fs"]))
    table = windows.window_table(trials, window, int(round(inputs["step_s"] * inputs["fs"])))
    rows = np.flatnonzero(table["subject"] == table["subject"][0])
    aligned = features.euclidean_alignment(windows.gather_windows(trials, table, rows, window))
    eigenvalues = np.linalg.eigvalsh(features.window_covariance_sum(aligned) / len(rows))
    np.testing.assert_allclose(eigenvalues, [0.0] * 5 + [1.0] * 14, atol=1e-3)


def test_feature_files_are_never_unpickled(tmp_path):
    path = str(tmp_path / "evil.npz")
    np.savez(path, features=np.zeros((1, 2)), provenance=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        workdir.feature_provenance(path)


def test_extract_to_file_caches_and_loads_sorted(tmp_path, monkeypatch):
    trials = make_trials(n_subjects=2)[::-1]  # unsorted on purpose
    calls = []

    def fake_load_trials(dataset, data_dir, ch_names, *, fs):
        calls.append(dataset)
        return trials, {
            "label_names": ["sad", "happy"],
            "fs": fs,
            "valence_names": ["negative", "neutral", "positive"],
        }

    monkeypatch.setattr(extract, "load_trials", fake_load_trials)
    reader = extract.TrialReader(str(tmp_path))
    path = str(tmp_path / "f.npz")
    kwargs = dict(
        encoder=None,
        signal="de",
        info={"kind": "de"},
        ch_names=["C3", "C4", "CZ", "PZ"],
        fs=FS,
        window_s=1.0,
        step_s=0.4,
        windows_per_block=8,
        blocks_per_call=1,
        batch_windows=16,
        seed=0,
    )
    extract.extract_to_file(path, "fake/d0", reader, **kwargs)
    extract.extract_to_file(path, "fake/d0", reader, **kwargs)
    assert calls == ["fake/d0"]  # second call: cached
    extract.extract_to_file(path, "fake/d0", reader, **dict(kwargs, step_s=0.8))
    assert len(calls) == 1  # new inputs: recomputed from the reader's memory
    assert workdir.load_features(path)["provenance"]["step"] == 100
    extract.extract_to_file(path, "fake/d1", reader, **kwargs)
    assert calls == ["fake/d0", "fake/d1"]
    data = workdir.load_features(path)
    keys = np.stack([data["subject"], data["trial"], data["start"]], 1)
    assert [tuple(k) for k in keys] == sorted(tuple(k) for k in keys)
    assert data["label_names"] == ["sad", "happy"]
    assert data["valence_names"] == ["negative", "neutral", "positive"]
    assert data["provenance"]["step"] == 50 and data["features"].shape[1] == 20
    first = windows.gather_windows(
        trials, windows.window_table(trials, 125, 100), np.array([0]), 125
    )  # subject 1, trial 1
    row = np.flatnonzero((data["subject"] == 1) & (data["trial"] == 1) & (data["start"] == 0))
    np.testing.assert_allclose(
        data["features"][row[0]],
        np.asarray(features.differential_entropy(first, FS)).ravel(),
        rtol=1e-5,
    )
