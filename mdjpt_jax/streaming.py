"""Online emotion decoding: a causal encoder whose state is carried chunk to chunk.

    python -m mdjpt_jax.main --mode=stream --encoder=DIR --probe=PROBE.npz --stream_name=EEG
    python -m mdjpt_jax.main --mode=stream --encoder=DIR --probe=PROBE.npz --stream_name=demo \\
        --replay=tests/data/eegmmidb_S001R02.edf

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
   `feature_decay` per output, as probe.py's post-processing; the LDS smoother of probe.py
   looks ahead and is not used) then the MLP (probe.predict_proba).

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
import hashlib
import json
import math
import os
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mdjpt_jax import causal_preprocessing, checkpointing, contract, features, probe
from mdjpt_jax.models import Encoder
from mdjpt_jax.models.mlla import StreamState
from mdjpt_jax.models.normalization import (
    RunningNormState,
    running_norm_state,
    running_stratified_norm,
)
from tfds_builders import preprocessing

HOP_S = 1.0  # default output period, s (rounded to whole tokens)
NORM_HORIZON_S = 120.0  # time constant of the running stratified normalization, s
FEATURE_DECAY = 0.99  # prior weight factor per output of the feature normalization
BRIDGE_S = 0.25  # longest gap bridged by interpolation, s; longer gaps reset
GAP_SAMPLES = 1.5  # a timestamp step above this many sample periods is a gap


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
    """The causal pipeline's settings; a probe file stores them and the stream uses them.

    Attributes:
        hop_tokens: tokens per output (hop = hop_tokens x patch_stride encoder samples).
        norm_horizon_s: time constant of running_stratified_norm, s.
        feature_decay: prior weight factor per output of features.running_normalize.
        bridge_s: longest gap (s) bridged by interpolation; longer gaps reset the state.
    """

    hop_tokens: int
    norm_horizon_s: float = NORM_HORIZON_S
    feature_decay: float = FEATURE_DECAY
    bridge_s: float = BRIDGE_S


def hop_tokens(encoder: Encoder, fs: float, hop_s: float) -> int:
    """Tokens per hop nearest to hop_s (at least one patch long, so each hop yields tokens)."""
    stride = encoder.channel_encoder.patch_stride
    least = -(-encoder.channel_encoder.patch_size // stride)
    return max(least, int(round(hop_s * fs / stride)))


def dynamics_context(encoder: Encoder) -> int:
    """Past tokens the dynamics model's output at one token depends on: the widest dilated
    conv, then the attention conv and its average pool (both att_len long)."""
    dyn = encoder.dynamics
    return (dyn.ms_kernel.shape[-1] - 1) * max(dyn.dilations) + 2 * (dyn.att_len - 1)


def load_causal_encoder(encoder_dir: str) -> tuple:
    """(Encoder in attention='causal' mode, info) of an exported encoder."""
    return checkpointing.load_encoder(os.fspath(encoder_dir), attention="causal")


def encoder_fingerprint(encoder: Encoder) -> str:
    """sha256 of the encoder's parameters (the probe file names the encoder it fits)."""
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(nnx.state(encoder, nnx.Param)):
        digest.update(np.ascontiguousarray(np.asarray(leaf, np.float32)).tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- encoder stages


class TrunkState(NamedTuple):
    """Carried state of the causal encoder from samples to dynamics maps.

    Attributes:
        channel: ChannelEncoder stream state (patch remainder, conv tails, attention sums).
        tokens_norm: running statistics of the channel-encoder tokens, per (C, F).
        mixed_norm: running statistics of the spatial mixer's output, per (F, C2).
        context: [F, C2, K] the last K = dynamics_context normalized mixer outputs (zeros,
            their running mean, before the stream's first token).
    """

    channel: StreamState
    tokens_norm: RunningNormState
    mixed_norm: RunningNormState
    context: jax.Array


def init_trunk_state(encoder: Encoder, norms: tuple | None = None) -> TrunkState:
    """A fresh stream's state; `norms` = (tokens_norm, mixed_norm) to keep (after a reset)."""
    ce, c = encoder.channel_encoder, encoder.n_chans
    n_features, n_mixed = ce.read_out.out_features, encoder.mixer.linear.out_features
    if norms is None:
        norms = (running_norm_state((c, n_features)), running_norm_state((n_features, n_mixed)))
    return TrunkState(
        ce.init_stream_state((c,)),
        *norms,
        jnp.zeros((n_features, n_mixed, dynamics_context(encoder)), jnp.float32),
    )


def _normalized_mix(encoder: Encoder, tokens, tokens_norm, mixed_norm, horizon: float):
    """tokens [C, N, F] -> normalized mixer output [F, C2, N] and the updated statistics."""
    tokens_norm, tokens = running_stratified_norm(tokens_norm, tokens, time_axis=1, horizon=horizon)
    mixed = encoder.mixer(tokens[None, None])[0, 0]
    mixed_norm, mixed = running_stratified_norm(mixed_norm, mixed, time_axis=-1, horizon=horizon)
    return mixed, tokens_norm, mixed_norm


@nnx.jit(static_argnames=("horizon",))
def trunk_step(encoder: Encoder, state: TrunkState, x: jax.Array, *, horizon: float):
    """Consumes the next samples of a stream.

    Args:
        encoder: causal Encoder.
        state: from `init_trunk_state` or the previous call.
        x: [C, L] preprocessed samples (µV, encoder rate); L must complete >= 1 token.
        horizon: running normalization horizon in tokens.

    Returns:
        (new state, maps [D, n] of the n tokens completed by x).
    """
    channel, tokens = encoder.channel_encoder.stream(state.channel, x)
    mixed, tokens_norm, mixed_norm = _normalized_mix(
        encoder, tokens, state.tokens_norm, state.mixed_norm, horizon
    )
    sequence = jnp.concatenate([state.context, mixed], axis=-1)
    maps = encoder.dynamics(sequence[None, None])[0, 0][:, -mixed.shape[-1] :]
    context = sequence[..., mixed.shape[-1] :]
    return TrunkState(channel, tokens_norm, mixed_norm, context), maps


@nnx.jit(static_argnames=("horizon",))
def trunk_whole(encoder: Encoder, x: jax.Array, *, horizon: float) -> jax.Array:
    """The same stages on a whole recording x [C, T] at once -> maps [D, N]."""
    state = init_trunk_state(encoder)
    tokens = encoder.channel_encoder(x)
    mixed, _, _ = _normalized_mix(encoder, tokens, state.tokens_norm, state.mixed_norm, horizon)
    sequence = jnp.concatenate([state.context, mixed], axis=-1)
    return encoder.dynamics(sequence[None, None])[0, 0][:, state.context.shape[-1] :]


# ----------------------------------------------------------------------------- probe file


@dataclasses.dataclass
class Probe:
    """A classifier of stream features: MLP + feature-normalization prior + provenance.

    Attributes:
        mlp: probe.MLP over D features.
        class_names: K names, in output order.
        prior_mean, prior_var: [D] statistics of the training features (raw).
        settings: the PipelineSettings the features were produced with.
        meta: hidden sizes, dropout, encoder fingerprint and info, training summary.
    """

    mlp: probe.MLP
    class_names: list
    prior_mean: np.ndarray
    prior_var: np.ndarray
    settings: PipelineSettings
    meta: dict


def _mlp_arrays(mlp: probe.MLP) -> dict:
    flat = jax.tree_util.tree_flatten_with_path(nnx.state(mlp, nnx.Param))[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in flat}


def save_probe(path: str, model: Probe) -> str:
    """npz: the MLP's parameters (param:<path>), prior_mean/var, meta (JSON); atomic."""
    meta = dict(
        model.meta, class_names=list(model.class_names), settings=dataclasses.asdict(model.settings)
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = path + ".tmp.npz"
    np.savez(
        temporary,
        prior_mean=model.prior_mean,
        prior_var=model.prior_var,
        meta=np.asarray(json.dumps(meta, sort_keys=True)),
        **{f"param:{k}": v for k, v in _mlp_arrays(model.mlp).items()},
    )
    os.replace(temporary, path)
    return path


def load_probe(path: str) -> Probe:
    """Reads a probe file written by `save_probe`; errors name the file and the problem."""
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path}: no probe file (export one with --mode=probe --stream_probe=PATH)"
        )
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop("meta")))
        mean, var = arrays.pop("prior_mean"), arrays.pop("prior_var")
        names, hidden = meta["class_names"], meta["hidden"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: not a stream probe file ({error})") from error
    mlp = probe.MLP(
        int(meta["in_dim"]),
        len(names),
        hidden=tuple(hidden),
        dropout=float(meta["dropout"]),
        rngs=nnx.Rngs(params=0),
    )
    expected = _mlp_arrays(mlp)
    params = {k[len("param:") :]: v for k, v in arrays.items() if k.startswith("param:")}
    if set(params) != set(expected) or any(params[k].shape != v.shape for k, v in expected.items()):
        raise ValueError(
            f"{path}: MLP parameters do not match hidden={hidden}, "
            f"in_dim={meta['in_dim']}, {len(names)} classes"
        )
    if not all(np.isfinite(v).all() for v in list(params.values()) + [mean, var]):
        raise ValueError(f"{path}: NaN/Inf in the probe's parameters or prior")
    state = nnx.state(mlp, nnx.Param)
    flat = jax.tree_util.tree_flatten_with_path(state)
    leaves = [jnp.asarray(params[jax.tree_util.keystr(p)]) for p, _ in flat[0]]
    nnx.update(mlp, jax.tree_util.tree_unflatten(flat[1], leaves))
    return Probe(
        mlp,
        list(names),
        mean.astype(np.float32),
        var.astype(np.float32),
        PipelineSettings(**meta["settings"]),
        meta,
    )


def check_probe_fits(model: Probe, encoder: Encoder, info: dict) -> None:
    """Raises if the probe was trained on another encoder's features."""
    fingerprint = encoder_fingerprint(encoder)
    if model.meta.get("encoder_fingerprint") != fingerprint:
        raise ValueError(
            f"the probe was trained on features of encoder "
            f"{model.meta.get('encoder_dir', '?')} (fingerprint "
            f"{str(model.meta.get('encoder_fingerprint'))[:12]}), not this one "
            f"({fingerprint[:12]}); export a probe for this encoder"
        )


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
                "StreamDecoder needs a causal encoder: load it with streaming.load_causal_encoder"
            )
        self.encoder, self.info, self.settings, self.probe = encoder, info, settings, probe_model
        self.fs, self.enc_fs = float(fs), float(info["fs"])
        band = tuple(info.get("band", preprocessing.BAND))
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
                proba = probe.predict_proba(self.probe.mlp, np.asarray(normalized)[None])[0]
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
    band = tuple(info.get("band", preprocessing.BAND))
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
        proba = probe.predict_proba(probe_model.mlp, np.asarray(normalized))
    newest = np.array([preprocess.resampler.last_input(e - 1) for e in ends], np.int64)
    return dict(features=feats, proba=proba, newest=newest)


def train_probe(
    encoder: Encoder,
    info: dict,
    recordings: list,
    class_names,
    *,
    settings: PipelineSettings,
    mlp: dict,
    seed: int,
    encoder_dir: str | None = None,
) -> Probe:
    """Trains the MLP probe on features of the causal pipeline (`offline_pass`).

    Decision: every recording is one stream from a fresh decoder state (as a live session
    starts), labelled windows = its outputs; the prior of the feature normalization is
    the mean/variance of all training outputs' raw features (as probe.py's prior of the
    training windows), and each recording's features are normalized with
    features.running_normalize from that prior, exactly as the stream does online.

    Args:
        recordings: dicts with eeg [C, T] µV, ch_names, fs (Hz), label (int class index).
        class_names: K names.
        settings: the pipeline settings (stored in the probe).
        mlp: probe.train_mlp keyword arguments (hidden, dropout, learning_rate,
            weight_decay, epochs, batch_size).
        seed: MLP initialisation and minibatch order.
    """
    raw, labels = [], []
    for rec in recordings:
        if not 0 <= int(rec["label"]) < len(class_names):
            raise ValueError(f"label {rec['label']} out of range for {len(class_names)} classes")
        out = offline_pass(
            encoder, info, rec["eeg"], ch_names=rec["ch_names"], fs=rec["fs"], settings=settings
        )
        raw.append(out["features"])
        labels.append(np.full(len(out["features"]), int(rec["label"])))
    if sum(len(f) for f in raw) == 0:
        raise ValueError(
            f"no recording is longer than one encoder window "
            f"({encoder.n_times / float(info['fs']):g} s): nothing to train on"
        )
    pooled = np.concatenate(raw)
    mean, var = pooled.mean(axis=0), pooled.var(axis=0)
    normalized = [
        np.asarray(
            features.running_normalize(
                jnp.asarray(f), jnp.asarray(mean), jnp.asarray(var), settings.feature_decay
            )
        )
        for f in raw
        if len(f)
    ]
    x, y = np.concatenate(normalized), np.concatenate(labels)
    model = probe.train_mlp(x, y, len(class_names), seed=seed, **mlp)
    train_acc = float((probe.predict_proba(model, x).argmax(1) == y).mean())
    meta = dict(
        in_dim=int(x.shape[1]),
        hidden=list(mlp["hidden"]),
        dropout=mlp["dropout"],
        mlp=dict(mlp),
        seed=seed,
        encoder_fingerprint=encoder_fingerprint(encoder),
        encoder_dir=encoder_dir,
        encoder={k: v for k, v in info.items() if k != "ch_names"},
        ch_names=list(info["ch_names"]),
        n_recordings=len(recordings),
        n_outputs=len(x),
        train_accuracy=train_acc,
        preprocessing=causal_preprocessing.describe(
            float(recordings[0]["fs"]),
            float(info["fs"]),
            tuple(info.get("band", preprocessing.BAND)),
        ),
    )
    return Probe(
        model, list(class_names), mean.astype(np.float32), var.astype(np.float32), settings, meta
    )


def export_probe_from_dataset(
    config, encoder_dir: str, output: str, *, hop_s: float = HOP_S
) -> str:
    """--mode=probe --stream_probe=OUT: the probe trained on `config.target`'s trials.

    Every trial of the target dataset (read as extraction reads it, on the encoder's
    channels) is one labelled recording of `train_probe`; the MLP settings and seed are
    the probe protocol's (config.mlp, config.probe_seed).
    """
    from mdjpt_jax import input_pipeline

    encoder, info = load_causal_encoder(encoder_dir)
    trials, metadata = input_pipeline.load_trials(
        config.target, config.data_dir, list(info["ch_names"])
    )
    recordings = [
        dict(eeg=t["eeg"], ch_names=list(info["ch_names"]), fs=metadata["fs"], label=t["label"])
        for t in trials
    ]
    mlp = dict(
        hidden=list(config.mlp.hidden),
        dropout=config.mlp.dropout,
        learning_rate=config.mlp.learning_rate,
        weight_decay=config.mlp.weight_decay,
        epochs=config.mlp.epochs,
        batch_size=config.mlp.batch_size,
    )
    settings = PipelineSettings(hop_tokens(encoder, float(info["fs"]), hop_s))
    model = train_probe(
        encoder,
        info,
        recordings,
        metadata["label_names"],
        settings=settings,
        mlp=mlp,
        seed=config.probe_seed,
        encoder_dir=os.path.abspath(encoder_dir),
    )
    model.meta["dataset"] = config.target
    save_probe(output, model)
    print(
        f"[probe] wrote stream probe {output}: {len(model.class_names)} classes, "
        f"{model.meta['n_outputs']} outputs of {len(recordings)} trials, train accuracy "
        f"{model.meta['train_accuracy']:.3f}"
    )
    return output


# ----------------------------------------------------------------------------- LSL


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
        probe_path: a probe file (save_probe / --mode=probe --stream_probe), or None for
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
        check_probe_fits(probe_model, model, info)
        if hop_s is not None:
            tokens = hop_tokens(model, float(info["fs"]), hop_s)
            decay = settings.feature_decay ** (tokens / settings.hop_tokens)
            settings = dataclasses.replace(settings, hop_tokens=tokens, feature_decay=decay)
    class_names = probe_model.class_names if probe_model else []
    warm_up(model, info, settings, probe_model)
    player = None
    if replay is not None:
        from mne_lsl.player import PlayerLSL

        from mdjpt_jax import embedding

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
    summary = decoder.summary() if decoder else {}
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
