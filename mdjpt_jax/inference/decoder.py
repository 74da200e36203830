"""Online emotion decoding: a causal encoder whose state is carried chunk to chunk
(`StreamDecoder`), and the same pipeline applied once to a whole recording (`offline_pass`).
The LSL runner around it is lsl.py (--mode=stream); the probe file, stream_probe.py; the
encoder's step-by-step forward, models/causal.py.

The causal pipeline, from µV samples at the stream's rate to class probabilities:

1. channels through the contract (contract.map_channels), at connect time;
2. causal_preprocessing.CausalPreprocessor: causal polyphase resampling to the encoder's
   rate, causal Butterworth band-pass (state carried);
3. the encoder in attention="causal" mode (a global encoder is loaded with the same
   parameters in causal mode): `ChannelEncoder.stream` carries the patch remainder, conv
   tails and attention sums, so past samples are never encoded twice; both stratified
   normalizations (tokens, mixed channels) become `running_stratified_norm` (cumulative
   statistics of this stream, then exponential with a `norm_horizon_s` time constant);
   the dynamics model (finite receptive field: `dynamics_context` tokens) runs on its
   carried context plus the new tokens; before the first token the context holds zeros
   (the running mean of the normalized mixer output), which the offline pass prepends too;
4. every hop (an integer number of tokens, `hop_tokens` x patch_stride samples at the
   encoder's rate): the feature = mean of the dynamics maps over the last encoder window
   (n_times samples' worth of tokens, as the offline feature is the mean over a window);
   no output until one window of tokens exists after a (re)start;
5. the probe: features.running_normalize_step (prior = the probe's training features,
   `feature_decay` per output, as downstream/probe.py's post-processing; its LDS smoother
   looks ahead and is not used) then the MLP (heads.predict_proba).

"One offline pass of the same causal pipeline" (`offline_pass`) is that pipeline with
every stage applied once to the whole recording as arrays: the preprocessors on the whole
[C, T] signal, `ChannelEncoder.__call__` (the causal chunked scan from a fresh state) over
all samples, the running normalizations as one `lax.scan` over all tokens, the dynamics
model over all tokens, features at the same hop ends, `features.running_normalize` over
the whole feature sequence. `StreamDecoder.push` fed the same recording in chunks of any
size returns the same outputs (tests/test_streaming.py, <= 1e-4 relative).

Faults (StreamDecoder.push):
- samples with a NaN/Inf in any channel are reported and dropped before anything sees them;
  they then count as missing samples (next point), so they never reach a filter state;
- missing samples are detected from the timestamps (a step of more than 1.5 sample
  periods): up to `bridge_s` seconds are bridged by linear interpolation between the
  last sample before and the first after (printed); a longer gap resets the signal state
  (filters, resampler, channel encoder, dynamics context, feature window; printed) and
  decoding resumes after one encoder window; the running normalization statistics (of
  tokens, mixed channels and features) describe the subject and are kept;
- a stream whose channels cannot satisfy the contract fails at connect time naming them;
- the LSL stream disappearing (no sample for `idle_timeout_s`) ends the run with a summary.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from mdjpt_jax import checkpointing, contract, features, heads
from mdjpt_jax.inference import causal_preprocessing
from mdjpt_jax.inference.stream_probe import (
    GAP_SAMPLES,
    PipelineSettings,
    Probe,
)
from mdjpt_jax.models import Encoder
from mdjpt_jax.models.causal import init_trunk_state, trunk_step, trunk_whole


def hop_tokens(encoder: Encoder, fs: float, hop_s: float) -> int:
    """Tokens per hop nearest to hop_s (at least one patch long, so each hop yields tokens)."""
    stride = encoder.channel_encoder.patch_stride
    least = -(-encoder.channel_encoder.patch_size // stride)
    return max(least, int(round(hop_s * fs / stride)))


def load_causal_encoder(encoder_dir: str) -> tuple:
    """(Encoder in attention='causal' mode, info) of an exported encoder."""
    return checkpointing.load_encoder(os.fspath(encoder_dir), attention="causal")


_normalize_step = jax.jit(features.running_normalize_step, static_argnames=("decay",))


# ----------------------------------------------------------------------------- decoder


@dataclasses.dataclass
class Prediction:
    """One output of the decoder.

    Attributes:
        time: LSL timestamp (s) of the newest input sample included.
        first_time: timestamp of the oldest input sample first included by this output.
        features: [D] mean of the dynamics maps over the last encoder window.
        proba: [K] class probabilities (None without a probe).
        emitted: local LSL clock (s) when the LSL runner sent it (None offline).
    """

    time: float
    first_time: float
    features: np.ndarray
    proba: np.ndarray | None
    emitted: float | None = None


class StreamDecoder:
    """The causal pipeline with carried state; `push` chunks of any size, get predictions.

    Args:
        encoder: causal Encoder (load_causal_encoder); info: its info dict.
        ch_names: the stream's channel labels (mapped through the contract now: raises
            naming the channels when the stream cannot satisfy it).
        fs: the stream's sampling rate, Hz.
        settings: PipelineSettings (a probe's, or built with `hop_tokens`).
        probe_model: a Probe, or None for features only.
        max_missing: contract limit on interpolated channels.
        log: where fault and status messages go (print, or None to keep quiet).
    """

    def __init__(
        self,
        encoder: Encoder,
        info: dict,
        *,
        ch_names,
        fs: float,
        settings: PipelineSettings,
        probe_model: Probe | None = None,
        max_missing: float = contract.MAX_MISSING_FRACTION,
        log=print,
    ):
        if not encoder.channel_encoder.causal:
            raise ValueError(
                "StreamDecoder needs a causal encoder: load it with decoder.load_causal_encoder"
            )
        self.encoder, self.info, self.settings, self.probe = encoder, info, settings, probe_model
        self.fs, self.enc_fs = float(fs), float(info["fs"])
        band = tuple(info["band"])
        if self.fs < 2 * band[1]:
            raise ValueError(
                f"stream rate {self.fs:g} Hz cannot carry the encoder's band "
                f"{band[0]:g}-{band[1]:g} Hz"
            )
        self._names = [str(n) for n in ch_names]
        self.channel_map = contract.map_channels(
            self._names, info["ch_names"], max_missing=max_missing
        )
        self.log = log or (lambda *a, **k: None)
        ce = encoder.channel_encoder
        self.hop = settings.hop_tokens * ce.patch_stride
        self.window_tokens = encoder.n_tokens
        self.horizon = max(1.0, settings.norm_horizon_s * self.enc_fs / ce.patch_stride)
        self.bridge_max = int(round(settings.bridge_s * self.fs))
        self.preprocess = causal_preprocessing.CausalPreprocessor(self.fs, self.enc_fs, band)
        self.state = init_trunk_state(encoder)
        self.moments = (
            None if probe_model is None else features.running_moments(len(probe_model.prior_mean))
        )
        self.stats = dict(
            samples=0,
            predictions=0,
            nan_samples=0,
            nan_events=0,
            gaps_bridged=0,
            samples_bridged=0,
            resets=0,
            compute_s=0.0,
        )
        self._last = None  # (sample [C_in] µV, timestamp) of the last input
        self._begin_segment()

    # -- state

    def _begin_segment(self):
        self.preprocess.reset()
        norms = (self.state.tokens_norm, self.state.mixed_norm)
        self.state = init_trunk_state(self.encoder, norms)
        self._pending = np.zeros((self.encoder.n_chans, 0), np.float32)
        self._maps = np.zeros((self.encoder.feature_dim, 0), np.float32)
        self._samples_done = 0  # encoder-rate samples consumed this segment
        self._times = np.zeros(0)  # timestamps of this segment's inputs from _times_base
        self._times_base = 0
        self._included = -1  # newest input index of the last prediction

    def reset(self, why: str):
        """Starts a new segment (normalization statistics are kept)."""
        self.stats["resets"] += 1
        self.log(
            f"[stream] {why}: state reset; decoding resumes after "
            f"{self.encoder.n_times / self.enc_fs:g} s"
        )
        self._begin_segment()

    # -- input

    def push(self, samples: np.ndarray, timestamps: np.ndarray | None = None) -> list:
        """Feeds [C_in, L] µV samples (stream channel order) with their LSL timestamps [L].

        Returns:
            the Predictions completed by these samples (possibly none).
        """
        x = np.asarray(samples, np.float64)
        if x.ndim != 2 or x.shape[0] != self.channel_map.matrix.shape[1]:
            raise ValueError(
                f"samples of shape {x.shape}: expected [{self.channel_map.matrix.shape[1]}, L]"
            )
        if timestamps is None:
            start = 0.0 if self._last is None else self._last[1] + 1.0 / self.fs
            timestamps = start + np.arange(x.shape[1]) / self.fs
        ts = np.asarray(timestamps, np.float64)
        if ts.shape != (x.shape[1],):
            raise ValueError(f"{ts.shape} timestamps for {x.shape[1]} samples")
        self.stats["samples"] += x.shape[1]
        finite = np.isfinite(x).all(axis=0)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            names = [self._names[c] for c in np.flatnonzero((~np.isfinite(x[:, bad])).any(1))]
            self.stats["nan_samples"] += len(bad)
            self.stats["nan_events"] += 1
            self.log(
                f"[stream] {len(bad)} NaN/Inf samples from t = {ts[bad[0]]:.3f} s "
                f"(channels {', '.join(names[:8])}{'...' if len(names) > 8 else ''}): "
                "skipped"
            )
            x, ts = x[:, finite], ts[finite]
        out = []
        begin = 0
        if x.shape[1]:
            previous = ts[0] - 1.0 / self.fs if self._last is None else self._last[1]
            steps = np.diff(np.concatenate([[previous], ts])) * self.fs
            for i in np.flatnonzero(steps > GAP_SAMPLES):
                out += self._feed(x[:, begin:i], ts[begin:i])
                out += self._gap(int(round(steps[i])) - 1, x[:, i], ts[i])
                begin = i
            out += self._feed(x[:, begin:], ts[begin:])
        return out

    def _gap(self, missing: int, next_sample: np.ndarray, next_time: float) -> list:
        last_sample, last_time = self._last
        if missing <= self.bridge_max:
            fraction = np.arange(1, missing + 1) / (missing + 1)
            bridge = last_sample[:, None] + (next_sample - last_sample)[:, None] * fraction
            self.stats["gaps_bridged"] += 1
            self.stats["samples_bridged"] += missing
            self.log(
                f"[stream] gap of {missing} samples ({missing / self.fs:.3f} s) after "
                f"t = {last_time:.3f} s: bridged by linear interpolation"
            )
            return self._feed(bridge, last_time + (next_time - last_time) * fraction)
        self.reset(
            f"gap of {missing} samples ({missing / self.fs:.3f} s) after t = {last_time:.3f} s"
        )
        return []

    def _feed(self, x: np.ndarray, ts: np.ndarray) -> list:
        if x.shape[1] == 0:
            return []
        self._last = (x[:, -1].copy(), float(ts[-1]))
        self._times = np.concatenate([self._times, ts])
        y = self.preprocess(self.channel_map.matrix.astype(np.float64) @ x)
        self._pending = np.concatenate([self._pending, y.astype(np.float32)], axis=1)
        out = []
        while self._pending.shape[1] >= self.hop:
            out += self._hop(self._pending[:, : self.hop])
            self._pending = self._pending[:, self.hop :]
        return out

    def _hop(self, x: np.ndarray) -> list:
        started = time.perf_counter()
        self.state, maps = trunk_step(
            self.encoder, self.state, jnp.asarray(x), horizon=self.horizon
        )
        self._maps = np.concatenate([self._maps, np.asarray(maps)], axis=1)
        self._maps = self._maps[:, -self.window_tokens :]
        self._samples_done += x.shape[1]
        result = []
        if self._maps.shape[1] == self.window_tokens:
            feature = self._maps.astype(np.float64).mean(axis=1).astype(np.float32)
            proba = None
            if self.probe is not None:
                self.moments, normalized = _normalize_step(
                    self.moments,
                    jnp.asarray(feature),
                    jnp.asarray(self.probe.prior_mean),
                    jnp.asarray(self.probe.prior_var),
                    decay=self.settings.feature_decay,
                )
                proba = heads.predict_proba(self.probe.mlp, np.asarray(normalized)[None])[0]
            newest = self.preprocess.resampler.last_input(self._samples_done - 1)
            newest = min(newest, self._times_base + len(self._times) - 1)
            first = max(self._included + 1, self._times_base)
            result.append(
                Prediction(
                    time=float(self._times[newest - self._times_base]),
                    first_time=float(self._times[min(first, newest) - self._times_base]),
                    features=feature,
                    proba=proba,
                )
            )
            self._included = newest
            self.stats["predictions"] += 1
        # keep the timestamps still needed (from the oldest not yet included)
        keep = max(self._included + 1, self._times_base) - self._times_base
        keep = min(keep, max(0, len(self._times) - 1))
        self._times, self._times_base = self._times[keep:], self._times_base + keep
        self.stats["compute_s"] += time.perf_counter() - started
        return result

    def summary(self) -> dict:
        """Counts: samples, predictions, NaN samples/events, gaps bridged, resets, compute."""
        return dict(self.stats)


# ----------------------------------------------------------------------------- offline pass


def offline_pass(
    encoder: Encoder,
    info: dict,
    eeg: np.ndarray,
    *,
    ch_names,
    fs: float,
    settings: PipelineSettings,
    probe_model: Probe | None = None,
    max_missing: float = contract.MAX_MISSING_FRACTION,
) -> dict:
    """The causal pipeline applied once to a whole recording (see the module docstring).

    Args:
        eeg: [C_in, T] µV, finite, in the order of `ch_names`, at fs Hz.
        Others: as StreamDecoder.

    Returns:
        dict: features [H, D] float32 and proba [H, K] (None without a probe) of the H
        outputs the stream would give, newest [H] index of the newest input sample each
        includes.
    """
    eeg = np.asarray(eeg, np.float64)
    if not np.isfinite(eeg).all():
        raise ValueError("offline_pass needs finite samples (the stream skips NaN/Inf)")
    channel_map = contract.map_channels(list(ch_names), info["ch_names"], max_missing=max_missing)
    band = tuple(info["band"])
    preprocess = causal_preprocessing.CausalPreprocessor(float(fs), float(info["fs"]), band)
    x = preprocess(channel_map.matrix.astype(np.float64) @ eeg)
    ce = encoder.channel_encoder
    hop = settings.hop_tokens * ce.patch_stride
    horizon = max(1.0, settings.norm_horizon_s * float(info["fs"]) / ce.patch_stride)
    ends = np.arange(hop, x.shape[1] + 1, hop)
    ends = ends[ends >= ce.patch_size]
    n_done = (ends - ce.patch_size) // ce.patch_stride + 1  # tokens complete at each end
    keep = n_done >= encoder.n_tokens
    ends, n_done = ends[keep], n_done[keep]
    dim = encoder.feature_dim
    if len(ends) == 0:
        return dict(
            features=np.zeros((0, dim), np.float32),
            newest=np.zeros(0, np.int64),
            proba=None
            if probe_model is None
            else np.zeros((0, len(probe_model.class_names)), np.float32),
        )
    # Causal stages: zeros appended after the last end change no output before it, and
    # lengths rounded up to a power of two hops compile trunk_whole a few times only.
    length = hop * 2 ** math.ceil(math.log2(ends[-1] / hop))
    x = np.pad(x[:, : ends[-1]], ((0, 0), (0, length - ends[-1])))
    maps = np.asarray(trunk_whole(encoder, jnp.asarray(x), horizon=horizon))
    feats = np.stack(
        [maps[:, n - encoder.n_tokens : n].astype(np.float64).mean(axis=1) for n in n_done]
    ).astype(np.float32)
    proba = None
    if probe_model is not None:
        normalized = features.running_normalize(
            jnp.asarray(feats),
            jnp.asarray(probe_model.prior_mean),
            jnp.asarray(probe_model.prior_var),
            settings.feature_decay,
        )
        proba = heads.predict_proba(probe_model.mlp, np.asarray(normalized))
    newest = np.array([preprocess.resampler.last_input(e - 1) for e in ends], np.int64)
    return dict(features=feats, proba=proba, newest=newest)
