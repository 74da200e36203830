"""The encoder's step-by-step causal forward and its carried state (samples -> dynamics maps).

`trunk_step` consumes a stream chunk by chunk; `trunk_whole` runs the same stages on a whole
recording at once and gives the same maps (tests/test_streaming.py). The running stratified
normalizations replace the offline per-window ones (models/normalization.py).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from mdjpt_jax.models.mdjpt import Encoder
from mdjpt_jax.models.mlla import StreamState
from mdjpt_jax.models.normalization import (
    RunningNormState,
    running_norm_state,
    running_stratified_norm,
)


def dynamics_context(encoder: Encoder) -> int:
    """Past tokens the dynamics model's output at one token depends on: the widest dilated
    conv, then the attention conv and its average pool (both att_len long)."""
    dyn = encoder.dynamics
    return (dyn.ms_kernel.shape[-1] - 1) * max(dyn.dilations) + 2 * (dyn.att_len - 1)


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
