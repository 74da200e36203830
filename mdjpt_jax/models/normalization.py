"""Stratified normalization: standardize features per subject, never across subjects.

As `stratified_layerNorm` of the original mdJPT/CLISA code: within one subject block,
every feature (all axes except windows and time) is standardized with the mean and the
unbiased standard deviation over that block's windows and time steps, then divided by
(std + 1e-3). The batch layout [S, W, ...] makes the blocks explicit: S subject blocks of
W windows each, so statistics can never mix subjects.

`running_stratified_norm` replaces the block statistics by running ones for online
decoding (models/causal.py): one subject's stream, statistics of the past only.
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

STD_EPS = 1e-3  # added to the std, as in the original


def full_precision(x: jax.Array) -> jax.Array:
    """x in float32, or float64 where it already is (the float64 test oracles); never lower:
    bfloat16 activations get float32 statistics, softmax and outputs."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def stratified_norm(x: jax.Array, *, time_axis: int = -1, eps: float = STD_EPS) -> jax.Array:
    """Standardizes each feature within each subject block.

    Args:
        x: [S, W, ...] with a time axis somewhere after W (S subject blocks, W windows).
        time_axis: the time axis (negative or >= 2).
        eps: added to the standard deviation.

    Returns:
        Array like x (same dtype); for every s and feature, mean 0 and std ~1 over
        (W, time). The statistics and the standardization are computed in float32
        whatever x's dtype (bfloat16 activations keep float32 normalization).
    """
    chex.assert_rank(x, {3, 4, 5, 6})
    dtype, x = x.dtype, full_precision(x)
    time_axis = time_axis % x.ndim
    if time_axis < 2:
        raise ValueError(f"time_axis must come after [S, W], got {time_axis} for {x.shape}")
    axes = (1, time_axis)
    count = x.shape[1] * x.shape[time_axis]
    mean = jnp.mean(x, axis=axes, keepdims=True)
    sq = jnp.sum(jnp.square(x - mean), axis=axes, keepdims=True)
    # Unbiased like torch.std; a single sample (W = N = 1) gives std 0, not NaN.
    var = sq / max(count - 1, 1)
    # Double-where: a constant feature (e.g. a dead ReLU map) has std 0 and must get a
    # zero gradient, not d sqrt(0) = inf -> NaN.
    positive = var > 0
    std = jnp.where(positive, jnp.sqrt(jnp.where(positive, var, 1.0)), 0.0)
    return ((x - mean) / (std + eps)).astype(dtype)


class RunningNormState(NamedTuple):
    """Streaming statistics of `running_stratified_norm`: count of steps seen (scalar),
    mean and var [...] per feature (population variance)."""

    count: jax.Array
    mean: jax.Array
    var: jax.Array


def running_norm_state(feature_shape) -> RunningNormState:
    """Statistics before the first step (feature_shape = x's shape without the time axis)."""
    zeros = jnp.zeros(tuple(feature_shape), jnp.float32)
    return RunningNormState(jnp.float32(0.0), zeros, zeros)


def running_stratified_norm(
    state: RunningNormState, x: jax.Array, *, time_axis: int, horizon: float, eps: float = STD_EPS
):
    """The online counterpart of `stratified_norm` for one subject's stream.

    Every step t (in time order along `time_axis`) updates the per-feature mean and
    population variance with weight alpha_t = max(1 / (t + 1), 1 / horizon), then
    standardizes x_t with them (x_t included), as stratified_norm does: (x - mean) /
    (std + eps). For the first `horizon` steps this is exactly the cumulative mean and
    variance of the stream so far (Welford); afterwards an exponential moving average
    with time constant `horizon` steps, so slow drifts (electrode impedance, fatigue)
    are followed instead of averaged over hours.

    Args:
        state: from `running_norm_state` or the previous call.
        x: [..., N, ...] with N steps along `time_axis`; features = the other axes.
        time_axis: the time axis of x.
        horizon: steps after which the weights stop shrinking (>= 1).
        eps: added to the standard deviation.

    Returns:
        (state after the N steps, normalized x of x's shape).
    """
    steps = jnp.moveaxis(x.astype(jnp.float32), time_axis, 0)
    chex.assert_shape(state.mean, steps.shape[1:])

    def step(carry, x_t):
        count, mean, var = carry
        count = count + 1.0
        alpha = jnp.maximum(1.0 / count, 1.0 / horizon)
        delta = x_t - mean
        mean = mean + alpha * delta
        var = (1.0 - alpha) * (var + alpha * jnp.square(delta))
        return RunningNormState(count, mean, var), (x_t - mean) / (jnp.sqrt(var) + eps)

    state, out = jax.lax.scan(step, state, steps)
    return state, jnp.moveaxis(out, 0, time_axis)
