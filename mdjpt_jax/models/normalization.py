"""Stratified normalization: standardize features per subject, never across subjects.

As `stratified_layerNorm` of the original mdJPT/CLISA code: within one subject block,
every feature (all axes except windows and time) is standardized with the mean and the
unbiased standard deviation over that block's windows and time steps, then divided by
(std + 1e-3). The batch layout [S, W, ...] makes the blocks explicit: S subject blocks of
W windows each, so statistics can never mix subjects.
"""

import chex
import jax
import jax.numpy as jnp

STD_EPS = 1e-3  # added to the std, as in the original


def stratified_norm(x: jax.Array, *, time_axis: int = -1, eps: float = STD_EPS) -> jax.Array:
    """Standardizes each feature within each subject block.

    Args:
        x: [S, W, ...] with a time axis somewhere after W (S subject blocks, W windows).
        time_axis: the time axis (negative or >= 2).
        eps: added to the standard deviation.

    Returns:
        Array like x; for every s and feature, mean 0 and std ~1 over (W, time).
    """
    chex.assert_rank(x, {3, 4, 5, 6})
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
    return (x - mean) / (std + eps)
