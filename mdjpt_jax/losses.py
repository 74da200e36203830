"""Pre-training losses: inter-subject contrastive (NT-Xent) and covariance alignment (CDA).

Both are pure functions of arrays. The CDA loss is split into per-group sufficient
statistics (sums of per-window covariances and window counts) and the loss computed from
them, so a sharded step can `psum` the statistics: the psum of shard statistics equals the
statistics of the full batch, hence every device computes the full-batch loss.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

CENTROIDS = ("arithmetic", "log_euclidean")
# "true": the covariance between channels over time; "scrambled": the original code's
# statistic (src/loss/CDA_loss.py reshapes the centered [T, C] tensor to [C, T] without a
# transpose, so its "channels" are consecutive chunks of the time-major flattening).
COVARIANCES = ("true", "scrambled")
# Shrinkage added to each covariance before its matrix log: SHRINK * mean variance + FLOOR.
SHRINK, FLOOR = 1e-3, 1e-6


def contrastive_loss(z: jax.Array, temperature: float = 0.07) -> jax.Array:
    """NT-Xent of two subjects at the same M windows (CLISA / SimCLR loss).

    Args:
        z: [2, M, E] L2-normalized embeddings; z[0, i] and z[1, i] are the two subjects'
            windows at the same stimulus and offset (the positive pair).
        temperature: softmax temperature.

    Returns:
        Scalar: cross-entropy averaged over the 2M anchors, each with its positive among
        the other 2M - 1 embeddings as candidates.
    """
    chex.assert_rank(z, 3)
    chex.assert_axis_dimension(z, 0, 2)
    m = z.shape[1]
    flat = z.reshape(2 * m, z.shape[2])
    logits = (flat @ flat.T) / temperature
    self_mask = jnp.eye(2 * m, dtype=bool)
    logits = jnp.where(self_mask, -jnp.inf, logits)
    positive = (jnp.arange(2 * m) + m) % (2 * m)
    pos_logit = jnp.take_along_axis(logits, positive[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - pos_logit)


def similarity_statistics(z: jax.Array) -> dict:
    """How NT-Xent sees one pair's embeddings (diagnostics; no gradient flows through them).

    Args:
        z: [2, M, E] L2-normalized embeddings, as `contrastive_loss`.

    Returns:
        dict of scalars over the 2M x 2M cosine similarities without the diagonal:
        positive_minus_negative (mean similarity of the M positive pairs minus the mean of
        the other off-diagonal entries: > 0 once the other subject's window at the same
        moment is closer than the rest) and spread (their standard deviation: near 0, every
        candidate looks alike and the softmax is flat whatever the temperature).
    """
    chex.assert_rank(z, 3)
    z = jax.lax.stop_gradient(z)
    m = z.shape[1]
    flat = z.reshape(2 * m, z.shape[2])
    similarity = flat @ flat.T
    positive = jnp.roll(jnp.eye(2 * m, dtype=bool), m, axis=1)
    off_diagonal = ~jnp.eye(2 * m, dtype=bool)
    negative = off_diagonal & ~positive
    mean_positive = jnp.sum(jnp.where(positive, similarity, 0.0)) / (2 * m)
    mean_negative = jnp.sum(jnp.where(negative, similarity, 0.0)) / jnp.sum(negative)
    count = jnp.sum(off_diagonal)
    mean = jnp.sum(jnp.where(off_diagonal, similarity, 0.0)) / count
    variance = jnp.sum(jnp.where(off_diagonal, (similarity - mean) ** 2, 0.0)) / count
    return dict(positive_minus_negative=mean_positive - mean_negative, spread=jnp.sqrt(variance))


def channel_covariance(x: jax.Array) -> jax.Array:
    """Unbiased covariance between channels over time.

    Args:
        x: [..., C, N] (channels x time steps).

    Returns:
        [..., C, C] with entry (a, b) = sum_t (x_a,t - mean_a)(x_b,t - mean_b) / (N - 1).
    """
    centered = x - jnp.mean(x, axis=-1, keepdims=True)
    return jnp.einsum("...an,...bn->...ab", centered, centered) / (x.shape[-1] - 1)


def scrambled_channel_covariance(x: jax.Array) -> jax.Array:
    """The original code's CDA "covariance": center each channel over time, lay the tensor
    out time-major ([..., N, C]), read it back as [..., C, N] without a transpose, and take
    the Gram matrix / (N - 1) (no re-centering).

    Args:
        x: [..., C, N] (channels x time steps).

    Returns:
        [..., C, C], positive semi-definite; equal to `channel_covariance` only by chance.
    """
    centered = x - jnp.mean(x, axis=-1, keepdims=True)
    rows = jnp.swapaxes(centered, -1, -2).reshape(x.shape)
    return jnp.einsum("...an,...bn->...ab", rows, rows) / (x.shape[-1] - 1)


def correlation(cov: jax.Array) -> jax.Array:
    """cov [..., C, C] -> correlation matrices (scale-free: unchanged when the signals are
    rescaled); the variances get a floor of SHRINK x their mean + FLOOR, so a silent
    channel gives zeros instead of NaN."""
    var = jnp.diagonal(cov, axis1=-2, axis2=-1)
    var = var + (SHRINK * jnp.mean(var, axis=-1, keepdims=True) + FLOOR)
    inv_std = jax.lax.rsqrt(var)
    return cov * inv_std[..., :, None] * inv_std[..., None, :]


def _zero_diagonal(m):
    return m * (1.0 - jnp.eye(m.shape[-1], dtype=m.dtype))


def _symmetric_function(fn, dfn):
    """f(A) = V f(w) V^T for symmetric A, with a gradient that stays finite when
    eigenvalues repeat (Daleckii-Krein: divided differences, f' on the diagonal)."""

    @jax.custom_jvp
    def apply(a):
        w, v = jnp.linalg.eigh(a)
        return jnp.einsum("...ij,...j,...kj->...ik", v, fn(w), v)

    @apply.defjvp
    def apply_jvp(primals, tangents):
        (a,), (da,) = primals, tangents
        w, v = jnp.linalg.eigh(a)
        fw = fn(w)
        diff = w[..., :, None] - w[..., None, :]
        scale = jnp.abs(w[..., :, None]) + jnp.abs(w[..., None, :])
        close = jnp.abs(diff) <= 1e-6 * scale + 1e-30
        mid = 0.5 * (w[..., :, None] + w[..., None, :])
        divided = jnp.where(
            close, dfn(mid), (fw[..., :, None] - fw[..., None, :]) / jnp.where(close, 1.0, diff)
        )
        da = 0.5 * (da + jnp.swapaxes(da, -1, -2))
        inner = jnp.einsum("...ji,...jk,...kl->...il", v, da, v) * divided
        out = jnp.einsum("...ij,...jk,...lk->...il", v, inner, v)
        return jnp.einsum("...ij,...j,...kj->...ik", v, fw, v), out

    return apply


_logm = _symmetric_function(jnp.log, lambda w: 1.0 / w)
_expm = _symmetric_function(jnp.exp, jnp.exp)


def _window_statistic(x, centroid, covariance="true", scale_free=False):
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
    cov = (channel_covariance if covariance == "true" else scrambled_channel_covariance)(x)
    if scale_free:
        cov = correlation(cov)  # [B, F, C, C]
    if centroid == "arithmetic":
        return _zero_diagonal(cov)
    mean_var = jnp.mean(jnp.diagonal(cov, axis1=-2, axis2=-1), axis=-1)
    ridge = (SHRINK * mean_var + FLOOR)[..., None, None] * jnp.eye(cov.shape[-1], dtype=cov.dtype)
    return _logm(cov + ridge)


def cda_group_statistics(
    x: jax.Array,
    group_ids: jax.Array,
    num_groups: int,
    *,
    centroid: str = "arithmetic",
    covariance: str = "true",
    scale_free: bool = False,
):
    """Per-group sums of per-window statistics for the CDA loss.

    Args:
        x: [B, F, C, N] mixer output (B windows, F features, C mixed channels, N steps).
        group_ids: [B] ints in [0, num_groups).
        num_groups: G (static).
        centroid: "arithmetic" sums zero-diagonal covariances; "log_euclidean" sums
            matrix logs of the full covariances regularized to SPD
            (cov + (1e-3 * mean variance + 1e-6) I).
        covariance: "true" (`channel_covariance`) or "scrambled" (the original code's
            statistic, `scrambled_channel_covariance`).
        scale_free: use correlation matrices instead of covariances: CDA then cannot be
            lowered by shrinking x, which the per-subject normalization after the spatial
            mixer would undo anyway.

    Returns:
        (sums [G, F, C, C], counts [G] float32). Add them over shards (psum) before
        `cda_from_statistics`.
    """
    if centroid not in CENTROIDS:
        raise ValueError(f"centroid must be one of {CENTROIDS}, got {centroid!r}")
    chex.assert_rank([x, group_ids], [4, 1])
    chex.assert_equal_shape_prefix([x, group_ids], 1)
    one_hot = jax.nn.one_hot(group_ids, num_groups, dtype=x.dtype)  # [B, G]
    statistic = _window_statistic(x, centroid, covariance, scale_free)
    sums = jnp.einsum("bg,bfij->gfij", one_hot, statistic)
    return sums, jnp.sum(one_hot, axis=0).astype(jnp.float32)


def _safe_frobenius(d):
    # Double-where: the norm is exactly 0 with gradient 0 (not NaN) where d == 0.
    sq = jnp.sum(jnp.square(d), axis=(-2, -1))
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def cda_from_statistics(
    sums: jax.Array, counts: jax.Array, *, centroid: str = "arithmetic"
) -> jax.Array:
    """CDA = log(1 + sum_f sum_{a<b} ||centroid_a,f - centroid_b,f||_F) over non-empty groups.

    Args:
        sums: [..., G, F, C, C] from `cda_group_statistics` (psum-ed over shards); leading
            axes are independent slices of groups.
        counts: [..., G] windows per group.
        centroid: must match the one the statistics were made with; "log_euclidean"
            maps the mean log back with expm and zeroes the diagonal.

    Returns:
        Scalar loss: the CDA of the G groups, or the mean over slices of each slice's CDA
        (groups of different slices are never compared).
    """
    if centroid not in CENTROIDS:
        raise ValueError(f"centroid must be one of {CENTROIDS}, got {centroid!r}")
    if sums.ndim > 4:
        per_slice = functools.partial(cda_from_statistics, centroid=centroid)
        return jnp.mean(
            jax.vmap(per_slice)(
                sums.reshape((-1,) + sums.shape[-4:]), counts.reshape(-1, counts.shape[-1])
            )
        )
    chex.assert_rank([sums, counts], [4, 1])
    num_groups = counts.shape[0]
    centroids = sums / jnp.maximum(counts, 1.0).astype(sums.dtype)[:, None, None, None]
    if centroid == "log_euclidean":
        centroids = _zero_diagonal(_expm(centroids))

    # One row of distances at a time, recomputed in the backward pass: memory stays
    # O(G F C^2) instead of O(G^2 F C^2) for many groups.
    row = jax.checkpoint(lambda a: _safe_frobenius(centroids[a] - centroids))
    distances = jax.lax.map(row, jnp.arange(num_groups))  # [G, G, F]
    present = counts > 0
    upper = np.triu(np.ones((num_groups, num_groups), bool), k=1)
    pair_mask = upper & present[:, None] & present[None, :]
    total = jnp.sum(jnp.where(pair_mask[..., None], distances, 0.0))
    return jnp.log1p(total)


def covariance_alignment_loss(
    x: jax.Array,
    group_ids: jax.Array,
    num_groups: int,
    *,
    centroid: str = "arithmetic",
    **statistic_options,
) -> jax.Array:
    """CDA loss of one (unsharded) batch; see `cda_group_statistics` for the arguments
    (statistic_options: covariance, scale_free)."""
    sums, counts = cda_group_statistics(
        x, group_ids, num_groups, centroid=centroid, **statistic_options
    )
    return cda_from_statistics(sums, counts, centroid=centroid)
