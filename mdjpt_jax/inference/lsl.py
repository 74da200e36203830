"""--mode=stream: the LSL runner around `decoder.StreamDecoder` (connect, decode, emit).

python -m mdjpt_jax.main --mode=stream --encoder=DIR --probe=PROBE.npz --stream_name=EEG
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np

from mdjpt_jax.inference.decoder import Prediction, StreamDecoder, hop_tokens, load_causal_encoder
from mdjpt_jax.inference.stream_probe import (
    HOP_S,
    PipelineSettings,
    Probe,
    check_probe_fits,
    load_probe,
)
from mdjpt_jax.models import Encoder


def warm_up(
    encoder: Encoder, info: dict, settings: PipelineSettings, probe_model: Probe | None
) -> None:
    """Compiles the decoder's steps (first hop, later hops, probe) on noise, so a live
    stream does not queue up behind the compiler."""
    fs = float(info["fs"])
    decoder = StreamDecoder(
        encoder,
        info,
        ch_names=info["ch_names"],
        fs=fs,
        settings=settings,
        probe_model=probe_model,
        log=None,
    )
    n = encoder.n_times + 3 * settings.hop_tokens * encoder.channel_encoder.patch_stride
    decoder.push(np.random.default_rng(0).normal(0.0, 10.0, (len(info["ch_names"]), n)))


def _microvolt_scale(stream, picks) -> np.ndarray:
    """Per-channel factor to µV from the stream's FIFF units (volts x 10^unit_mul); channels
    without a voltage unit are assumed to be in µV already (the LSL convention)."""
    from mne.io.constants import FIFF

    scale = np.ones(len(picks))
    units = stream.get_channel_units(picks=picks)
    for i, (unit, unit_mul) in enumerate(units):
        if int(unit) == FIFF.FIFF_UNIT_V:
            scale[i] = 1e6 * 10.0 ** int(unit_mul)
    return scale


def _live_line(prediction: Prediction, class_names, now: float, t0: float) -> str:
    latency_ms = (now - prediction.time) * 1e3
    if prediction.proba is None:
        return f"t={prediction.time - t0:8.2f}s  features  latency {latency_ms:5.0f} ms"
    top = int(np.argmax(prediction.proba))
    probs = " ".join(f"{n}={p:.2f}" for n, p in zip(class_names, prediction.proba))
    return (
        f"t={prediction.time - t0:8.2f}s  {class_names[top]:>10s}  {probs}  "
        f"latency {latency_ms:5.0f} ms"
    )


def _outlet(name: str, class_names, feature_dim: int | None):
    from mne_lsl.lsl import StreamInfo, StreamOutlet

    names = list(class_names) + [f"feature{i}" for i in range(feature_dim or 0)]
    sinfo = StreamInfo(f"{name}-mdjpt", "mdjpt", len(names), 0.0, "float32", f"{name}-mdjpt")
    sinfo.set_channel_names(names)
    return StreamOutlet(sinfo)


def run(
    *,
    encoder: str,
    probe_path: str | None,
    stream_name: str,
    replay: str | None = None,
    hop_s: float | None = None,
    emit_features: bool = False,
    idle_timeout_s: float = 3.0,
    connect_timeout_s: float = 10.0,
    max_duration_s: float | None = None,
    replay_chunk: int = 1,
    keep_input: bool = False,
    verbose: bool = True,
) -> dict:
    """--mode=stream: decodes the LSL stream `stream_name` until it disappears.

    Args:
        encoder: exported encoder directory (loaded in causal mode).
        probe_path: a probe file (save_probe / --mode=stream_probe), or None for
            features only.
        stream_name: LSL name of the EEG stream; the outputs go to `<stream_name>-mdjpt`
            (K class probabilities, then the D features with `emit_features`).
        replay: a file mne.io.read_raw opens, played as `stream_name` by mne_lsl's
            PlayerLSL (once) in this process.
        hop_s: output period (s), rounded to whole tokens; default the probe's. Another
            hop than the probe's keeps the feature normalization's time constant
            (decay ** (hop / probe hop) per output).
        idle_timeout_s: no sample for this long = the stream is gone: end with a summary.
        max_duration_s: stop after this long (None = until the stream ends).
        replay_chunk: samples per LSL chunk of the replay (PlayerLSL stamps a chunk's
            last sample with the end of its play period, up to one chunk ahead of the
            push; single samples keep the timestamps, hence the latencies, honest).
        keep_input: return the received samples (µV, stream channel order) and timestamps.

    Returns:
        dict: predictions (list of Prediction), summary (dict), class_names, and with
        keep_input: input [C_in, T], timestamps [T].
    """
    from mne_lsl.lsl import local_clock
    from mne_lsl.stream import StreamLSL

    say = print if verbose else (lambda *a, **k: None)
    model, info = load_causal_encoder(encoder)
    probe_model = load_probe(probe_path) if probe_path else None
    settings = (
        probe_model.settings
        if probe_model
        else PipelineSettings(
            hop_tokens(model, float(info["fs"]), HOP_S if hop_s is None else hop_s)
        )
    )
    if probe_model is not None:
        check_probe_fits(probe_model, model)
        if hop_s is not None:
            tokens = hop_tokens(model, float(info["fs"]), hop_s)
            decay = settings.feature_decay ** (tokens / settings.hop_tokens)
            settings = dataclasses.replace(settings, hop_tokens=tokens, feature_decay=decay)
    class_names = probe_model.class_names if probe_model else []
    warm_up(model, info, settings, probe_model)
    player = None
    if replay is not None:
        from mne_lsl.player import PlayerLSL

        from mdjpt_jax.inference import embedding

        raw = embedding.read_recording(replay)
        player = PlayerLSL(
            raw,
            chunk_size=replay_chunk,
            n_repeat=1,
            name=stream_name,
            source_id=f"{stream_name}-replay",
        ).start()
    stream = StreamLSL(bufsize=max(10.0, 4 * idle_timeout_s), name=stream_name)
    predictions, received, stamps = [], [], []
    decoder, outlet = None, None
    try:
        try:
            stream.connect(acquisition_delay=None, timeout=connect_timeout_s)
        except RuntimeError as error:
            raise RuntimeError(
                f"no LSL stream named {stream_name!r} found within "
                f"{connect_timeout_s:g} s ({error})"
            ) from error
        types = stream.get_channel_types()
        picks = [i for i, t in enumerate(types) if t == "eeg"] or list(range(len(types)))
        names = [stream.ch_names[i] for i in picks]
        scale = _microvolt_scale(stream, picks)
        fs = float(stream.info["sfreq"])
        if fs <= 0:
            raise ValueError(
                f"stream {stream_name!r} has an irregular rate; EEG needs a nominal sampling rate"
            )
        decoder = StreamDecoder(
            model, info, ch_names=names, fs=fs, settings=settings, probe_model=probe_model, log=say
        )
        say(
            f"[stream] {stream_name}: {len(names)} channels at {fs:g} Hz -> "
            f"{stream_name}-mdjpt every {decoder.hop / decoder.enc_fs:.3f} s"
        )
        say(decoder.channel_map.report.summary())
        outlet = _outlet(
            stream_name,
            class_names,
            model.feature_dim if emit_features or not class_names else None,
        )
        t0, last_data, started = None, time.monotonic(), time.monotonic()
        while True:
            stream.acquire()
            n_new = stream.n_new_samples
            if n_new:
                data, ts = stream.get_data(picks=picks)
                data, ts = data[:, -n_new:] * scale[:, None], ts[-n_new:].copy()
                last_data = time.monotonic()
                t0 = ts[0] if t0 is None else t0
                if keep_input:
                    received.append(data.copy())
                    stamps.append(ts)
                for prediction in decoder.push(data, ts):
                    now = local_clock()
                    values = [] if prediction.proba is None else list(prediction.proba)
                    if emit_features or prediction.proba is None:
                        values += list(prediction.features)
                    outlet.push_sample(np.asarray(values, np.float32), timestamp=prediction.time)
                    prediction.emitted = now
                    predictions.append(prediction)
                    say(_live_line(prediction, class_names, now, t0))
            elif time.monotonic() - last_data > idle_timeout_s:
                say(
                    f"[stream] no sample from {stream_name!r} for {idle_timeout_s:g} s: "
                    "the stream is gone"
                )
                break
            else:
                time.sleep(0.002)
            if max_duration_s is not None and time.monotonic() - started > max_duration_s:
                break
    finally:
        if stream.connected:
            stream.disconnect()
        if player is not None and player.running:
            player.stop()
        del outlet
    summary = decoder.summary()
    latencies = [p.emitted - p.time for p in predictions]
    summary.update(
        fs=decoder.fs,
        hop_s=decoder.hop / decoder.enc_fs,
        signal_s=summary.get("samples", 0) / decoder.fs,
        latency_ms_median=float(np.median(latencies)) * 1e3 if latencies else None,
        latency_ms_max=float(np.max(latencies)) * 1e3 if latencies else None,
    )
    say("[stream] summary: " + json.dumps(summary, default=float))
    result = dict(predictions=predictions, summary=summary, class_names=class_names)
    if keep_input:
        result.update(
            input=np.concatenate(received, axis=1) if received else None,
            timestamps=np.concatenate(stamps) if stamps else None,
        )
    return result
