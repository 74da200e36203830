"""The inference wing's stream (decoder, stream_probe, probe_training, lsl): causal
preprocessing, chunked decoding == one offline pass, faults, LSL."""

import os
import threading
import time
import uuid

import mne
import numpy as np
import pytest
from flax import nnx
from scipy import signal

from mdjpt_jax import channels, checkpointing
from mdjpt_jax.inference import causal_preprocessing, lsl, probe_training, stream_probe
from mdjpt_jax.inference.decoder import StreamDecoder, hop_tokens, load_causal_encoder, offline_pass
from mdjpt_jax.models import Encoder
from mdjpt_jax.models.normalization import running_norm_state, running_stratified_norm
from mdjpt_jax.trials import load_trials

EDF = os.path.join(os.path.dirname(__file__), "data", "eegmmidb_S001R02.edf")
SEED60 = channels.UNIFIED_SETS["seed60"]
# A randomly initialised tiny causal encoder: 1 s windows (16 tokens) at 125 Hz on seed60.
MODEL_KWARGS = dict(n_chans=60, n_times=125, variant="tiny", attention="causal")
EXTRA = dict(ch_names=SEED60, fs=125.0, window_s=1.0, step=0, datasets=["none"])
HOP_S = 0.5
MLP = dict(hidden=[16], dropout=0.0, learning_rate=1e-2, weight_decay=0.0, epochs=3, batch_size=8)


@pytest.fixture(scope="module")
def raw():
    return mne.io.read_raw_edf(EDF, preload=True, verbose="error")


@pytest.fixture(scope="module")
def recording(raw):
    """6 s of the real recording: µV [64, 960] at 160 Hz and its BCI2000 labels."""
    return raw.get_data()[:, :960] * 1e6, list(raw.ch_names)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("encoder"))
    model = Encoder(**MODEL_KWARGS, rngs=nnx.Rngs(params=0))
    checkpointing.export_encoder(path, model, model_kwargs=MODEL_KWARGS, extra=EXTRA)
    return path


@pytest.fixture(scope="module")
def encoder(encoder_dir):
    return load_causal_encoder(encoder_dir)


@pytest.fixture(scope="module")
def probe_path(encoder, encoder_dir, raw, tmp_path_factory):
    """A probe trained on two labelled stretches of the recording ('rest-a' / 'rest-b')."""
    model, info = encoder
    eeg = raw.get_data() * 1e6
    recordings = [
        dict(eeg=eeg[:, i * 960 : (i + 1) * 960], ch_names=raw.ch_names, fs=160.0, label=i % 2)
        for i in range(4)
    ]
    settings = stream_probe.PipelineSettings(hop_tokens(model, 125.0, HOP_S))
    trained = probe_training.train_probe(
        model,
        info,
        recordings,
        ["rest-a", "rest-b"],
        settings=settings,
        mlp=MLP,
        seed=0,
        encoder_dir=encoder_dir,
    )
    return stream_probe.save_probe(str(tmp_path_factory.mktemp("probe") / "probe.npz"), trained)


def decode_in_chunks(decoder, eeg, chunk, timestamps=None):
    out = []
    for i in range(0, eeg.shape[1], chunk):
        out += decoder.push(
            eeg[:, i : i + chunk], None if timestamps is None else timestamps[i : i + chunk]
        )
    return out


def rel_err(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


# ----------------------------------------------------------------------------- preprocessing


def test_causal_resampler_is_resample_polys_filter_applied_causally_in_any_chunks():
    x = np.random.default_rng(0).normal(size=(3, 700))
    x[:, 0] = 0.0  # history before the start = first sample = 0 here
    taps = signal.firwin(2 * 320 + 1, 1 / 32, window=("kaiser", 5.0)) * 25  # 160 -> 125 Hz
    reference = signal.upfirdn(taps, x, 25, 32)
    whole = causal_preprocessing.Resampler(160.0, 125.0)(x)
    assert whole.shape == (3, (700 * 25 - 1) // 32 + 1)
    np.testing.assert_allclose(whole, reference[:, : whole.shape[1]], atol=1e-12)
    for chunk in (1, 7, 32, 160):
        resampler = causal_preprocessing.Resampler(160.0, 125.0)
        pieces = [resampler(x[:, i : i + chunk]) for i in range(0, 700, chunk)]
        np.testing.assert_array_equal(np.concatenate(pieces, axis=1), whole)


def test_causal_bandpass_is_one_forward_sosfilt_from_the_first_samples_steady_state():
    x = 40.0 + np.random.default_rng(1).normal(size=(2, 500))  # DC offset: no transient
    sos = signal.butter(4, [0.5, 47.0], btype="bandpass", fs=125.0, output="sos")
    zi = signal.sosfilt_zi(sos)[:, None, :] * x[None, :, :1]
    reference = signal.sosfilt(sos, x, axis=-1, zi=zi)[0]
    bandpass = causal_preprocessing.Bandpass(125.0)
    got = np.concatenate([bandpass(x[:, i : i + 7]) for i in range(0, 500, 7)], axis=1)
    np.testing.assert_allclose(got, reference, atol=1e-9)
    assert abs(got[:, :5]).max() < 5.0  # a zero-state filter would start near 40


def test_running_stratified_norm_is_cumulative_then_exponential():
    x = np.random.default_rng(2).normal(3.0, 2.0, size=(4, 30)).astype(np.float32)
    _, out = running_stratified_norm(running_norm_state((4,)), x, time_axis=1, horizon=10)
    mean, var = np.zeros(4), np.zeros(4)
    for t in range(30):  # naive loop
        if t < 10:
            mean, var = x[:, : t + 1].mean(1), x[:, : t + 1].var(1)  # exactly cumulative
        else:
            delta = x[:, t] - mean
            mean = mean + delta / 10
            var = 0.9 * (var + np.square(delta) / 10)
        np.testing.assert_allclose(
            out[:, t], (x[:, t] - mean) / (np.sqrt(var) + 1e-3), rtol=1e-4, atol=1e-4
        )
    halves = running_stratified_norm(running_norm_state((4,)), x[:, :13], time_axis=1, horizon=10)
    rest = running_stratified_norm(halves[0], x[:, 13:], time_axis=1, horizon=10)[1]
    np.testing.assert_allclose(np.concatenate([halves[1], rest], 1), out, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- decoder


def test_chunked_stream_equals_one_offline_pass(encoder, probe_path, recording):
    model, info = encoder
    eeg, names = recording
    trained = stream_probe.load_probe(probe_path)
    offline = offline_pass(
        model, info, eeg, ch_names=names, fs=160.0, settings=trained.settings, probe_model=trained
    )
    # By hand: 960 samples at 160 Hz -> 750 at 125 Hz; hop = 10 tokens x 6 = 60 samples;
    # hop ends 60, 120, ..., 720; the first with a window's 16 tokens ((e - 32) // 6 + 1)
    # is 180: outputs at 180, 240, ..., 720 = 10, the newest input of each = (e-1)*32//25.
    assert trained.settings.hop_tokens == 10
    assert len(offline["features"]) == 10
    np.testing.assert_array_equal(offline["newest"], (np.arange(180, 721, 60) - 1) * 32 // 25)
    for chunk in (1, 7, 32, 160):
        decoder = StreamDecoder(
            model, info, ch_names=names, fs=160.0, settings=trained.settings, probe_model=trained
        )
        out = decode_in_chunks(decoder, eeg, chunk)
        assert len(out) == len(offline["features"]), chunk
        assert rel_err([o.features for o in out], offline["features"]) <= 1e-4, chunk
        assert rel_err([o.proba for o in out], offline["proba"]) <= 1e-4, chunk
        np.testing.assert_allclose([o.time for o in out], offline["newest"] / 160.0)
    other = Encoder(**MODEL_KWARGS, rngs=nnx.Rngs(params=1))  # the check can fail
    assert (
        rel_err(
            offline_pass(other, info, eeg, ch_names=names, fs=160.0, settings=trained.settings)[
                "features"
            ],
            offline["features"],
        )
        > 1e-2
    )


def test_nan_burst_is_reported_skipped_and_bridged(encoder, recording):
    model, info = encoder
    eeg, names = recording
    settings = stream_probe.PipelineSettings(hop_tokens(model, 125.0, HOP_S))
    burst = eeg.copy()
    burst[5, 400:410] = np.nan  # one channel: the whole samples go
    interpolated = eeg.copy()
    weights = np.arange(1, 11) / 11
    interpolated[:, 400:410] = eeg[:, 399:400] + (eeg[:, 410:411] - eeg[:, 399:400]) * weights
    messages = []
    decoder = StreamDecoder(
        model, info, ch_names=names, fs=160.0, settings=settings, log=messages.append
    )
    out = decode_in_chunks(decoder, burst, 32)
    reference = offline_pass(model, info, interpolated, ch_names=names, fs=160.0, settings=settings)
    assert rel_err([o.features for o in out], reference["features"]) <= 1e-4
    summary = decoder.summary()
    assert summary["nan_samples"] == 10 and summary["gaps_bridged"] == 1
    assert summary["resets"] == 0
    assert any("NaN" in m and names[5] in m for m in messages)
    assert any("bridged" in m for m in messages)


def test_long_gap_resets_the_state_and_decoding_resumes_after_a_window(encoder, recording):
    model, info = encoder
    eeg, names = recording
    settings = stream_probe.PipelineSettings(hop_tokens(model, 125.0, HOP_S))
    keep = np.r_[0:400, 720:960]  # 2 s of samples never arrive
    times = np.arange(960) / 160.0
    messages = []
    decoder = StreamDecoder(
        model, info, ch_names=names, fs=160.0, settings=settings, log=messages.append
    )
    out = decode_in_chunks(decoder, eeg[:, keep], 16, timestamps=times[keep])
    assert decoder.summary()["resets"] == 1
    assert any("gap of 320 samples" in m and "reset" in m for m in messages)
    after = [o.time for o in out if o.time > times[400]]
    assert after and min(after) >= times[720] + 1.0 - 1.0 / 160  # one window after the gap
    assert len(out) > len(after) > 0
    assert all(np.isfinite(o.features).all() for o in out)


def test_channels_that_cannot_satisfy_the_contract_fail_at_connect_time(encoder):
    model, info = encoder
    settings = stream_probe.PipelineSettings(hop_tokens(model, 125.0, HOP_S))
    with pytest.raises(ValueError, match=r"lacks 57 of the encoder's 60.*'FP1'"):
        StreamDecoder(model, info, ch_names=["Cz", "Pz", "Oz"], fs=160.0, settings=settings)
    with pytest.raises(ValueError, match="Xyz"):
        StreamDecoder(model, info, ch_names=list(SEED60) + ["Xyz"], fs=160.0, settings=settings)


def test_probe_file_round_trip_and_refusals(encoder, probe_path, tmp_path):
    model, info = encoder
    loaded = stream_probe.load_probe(probe_path)
    assert loaded.class_names == ["rest-a", "rest-b"]
    assert loaded.meta["encoder_fingerprint"] == stream_probe.encoder_fingerprint(model)
    assert loaded.settings.hop_tokens == hop_tokens(model, 125.0, HOP_S)
    stream_probe.check_probe_fits(loaded, model)
    with pytest.raises(ValueError, match="trained on features of encoder"):
        stream_probe.check_probe_fits(loaded, Encoder(**MODEL_KWARGS, rngs=nnx.Rngs(params=3)))
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.npz"):
        stream_probe.load_probe(str(broken))
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        stream_probe.load_probe(str(tmp_path / "absent.npz"))


# ----------------------------------------------------------------------------- LSL (loopback)


def unique_name(tag: str) -> str:
    return f"mdjpt-test-{tag}-{uuid.uuid4().hex[:8]}"


def test_lsl_stream_with_too_few_channels_fails_at_connect(encoder_dir, probe_path):
    from mne_lsl.lsl import StreamInfo, StreamOutlet

    name = unique_name("few")
    sinfo = StreamInfo(name, "EEG", 3, 160.0, "float32", name)
    sinfo.set_channel_names(["Cz", "Pz", "Oz"])
    sinfo.set_channel_types("eeg")
    outlet = StreamOutlet(sinfo)
    try:
        with pytest.raises(ValueError, match="missing.*'FP1'"):
            lsl.run(
                encoder=encoder_dir,
                probe_path=probe_path,
                stream_name=name,
                connect_timeout_s=5.0,
                verbose=False,
            )
    finally:
        del outlet


@pytest.mark.slow
def test_replay_of_the_real_edf_over_lsl_equals_the_offline_pass(
    encoder_dir, encoder, probe_path, raw, tmp_path
):
    short = tmp_path / "short_raw.fif"
    raw.copy().crop(0, 8, include_tmax=False).save(short, verbose="error")
    result = lsl.run(
        encoder=encoder_dir,
        probe_path=probe_path,
        stream_name=unique_name("replay"),
        replay=str(short),
        keep_input=True,
        idle_timeout_s=2.0,
        verbose=False,
    )
    model, info = encoder
    trained = stream_probe.load_probe(probe_path)
    received = result["input"]
    assert received.shape[1] >= 8 * 160 - 64  # at most the first chunks before connect
    offline = offline_pass(
        model,
        info,
        received,
        ch_names=raw.ch_names,
        fs=160.0,
        settings=trained.settings,
        probe_model=trained,
    )
    predictions = result["predictions"]
    assert len(predictions) == len(offline["proba"]) >= 10
    assert rel_err([p.proba for p in predictions], offline["proba"]) <= 1e-4
    emitted = np.array([p.emitted for p in predictions])
    hop_s = result["summary"]["hop_s"]
    # outputs arrive at the hop rate (the replay runs in real time)
    assert abs(np.median(np.diff(emitted)) - hop_s) < 0.1
    assert result["summary"]["latency_ms_median"] < 1000


@pytest.mark.slow
def test_lsl_stream_survives_a_nan_burst_and_a_gap_then_ends_with_a_summary(
    encoder_dir, probe_path, raw
):
    from mne_lsl.lsl import StreamInfo, StreamOutlet, local_clock

    name = unique_name("faults")
    eeg = raw.get_data()[:, : 160 * 8].astype(np.float32)  # volts, as mne streams them
    eeg[3, 300:310] = np.nan
    sinfo = StreamInfo(name, "EEG", 64, 160.0, "float32", name)
    sinfo.set_channel_info(raw.info)
    outlet = StreamOutlet(sinfo, chunk_size=16)
    missing = range(640, 960)  # 2 s never sent

    def push():
        assert outlet.wait_for_consumers(60.0)  # the decoder connected
        start = local_clock()
        for begin in range(0, eeg.shape[1], 16):
            idx = [i for i in range(begin, begin + 16) if i not in missing]
            if idx:
                chunk = np.ascontiguousarray(eeg[:, idx].T)
                ts = start + np.asarray(idx) / 160.0
                outlet.push_chunk(chunk, timestamp=ts)
            time.sleep(16 / 160.0)

    pusher = threading.Thread(target=push)
    pusher.start()
    try:
        # the 2 s gap passes in real time: the idle timeout (stream gone) must be longer
        result = lsl.run(
            encoder=encoder_dir,
            probe_path=probe_path,
            stream_name=name,
            idle_timeout_s=4.0,
            connect_timeout_s=5.0,
            verbose=False,
        )
    finally:
        pusher.join()
    summary = result["summary"]
    assert summary["nan_samples"] == 10 and summary["gaps_bridged"] == 1
    assert summary["resets"] == 1
    times = np.array([p.time for p in result["predictions"]])
    assert (np.diff(times) > 0).all() and summary["predictions"] == len(times)
    assert (times > times[0] + 6.0 - 1.0).any()  # resumed after the gap
    assert all(np.isfinite(p.proba).all() for p in result["predictions"])


@pytest.mark.slow
def test_stream_probe_mode_exports_a_probe_from_the_target_dataset(
    synthetic_data_dir, encoder_dir, tmp_path
):
    from configs import downstream

    config = downstream.get_config("synthetic")
    with config.unlocked():
        config.data_dir = str(synthetic_data_dir)
        config.mlp.epochs = 2
    output = probe_training.export_probe_from_dataset(
        config, encoder_dir, str(tmp_path / "p.npz"), hop_s=HOP_S
    )
    trained = stream_probe.load_probe(output)

    trials, metadata = load_trials(config.target, config.data_dir, SEED60)
    assert trained.class_names == list(metadata["label_names"])
    assert trained.meta["dataset"] == config.target
    assert trained.meta["n_recordings"] == len(trials)
    assert trained.settings.hop_tokens == 10 and trained.meta["n_outputs"] > len(trials)
