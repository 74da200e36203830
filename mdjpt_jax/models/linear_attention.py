"""Linear attention with the ELU+1 feature map: global, chunked causal, and recurrent.

For queries q_t, keys k_s and values v_s (per head) with phi(x) = ELU(x) + 1:

    out_t = phi(q_t) S / (phi(q_t) . z + eps),   S = sum_s phi(k_s) v_s^T,  z = sum_s phi(k_s)

`causal=False` sums over the whole sequence (as in the paper); `causal=True` sums over
s <= t. The causal form runs as a `jax.lax.scan` over chunks of tokens: inside a chunk the
masked quadratic form, across chunks the state (S, z) is carried. The same state drives
`step` (one token) and `scan` (a block of tokens continuing a stream), so an online
decoder reproduces the causal output exactly.
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

# Denominator guard of the original mdJPT `_LinearAttention` (eps = 1e-5).
EPS = 1e-5


class AttentionState(NamedTuple):
    """Running sums of a causal linear attention.

    Attributes:
        kv: [..., H, D, Dv] sum over past tokens of phi(k) v^T.
        k_sum: [..., H, D] sum over past tokens of phi(k).
    """

    kv: jax.Array
    k_sum: jax.Array


def feature_map(x: jax.Array) -> jax.Array:
    """phi(x) = ELU(x) + 1 > 0, the kernel feature map of linear attention."""
    return jax.nn.elu(x) + 1.0


def init_state(
    batch_shape, num_heads: int, head_dim: int, value_dim: int, dtype=jnp.float32
) -> AttentionState:
    """Empty state (no tokens seen yet).

    Args:
        batch_shape: leading batch dimensions `...` of the queries.
        num_heads: H.
        head_dim: D, the query/key size per head.
        value_dim: Dv, the value size per head.
        dtype: dtype of the sums.

    Returns:
        AttentionState with kv [..., H, D, Dv] and k_sum [..., H, D] zeros.
    """
    batch_shape = tuple(batch_shape)
    return AttentionState(
        kv=jnp.zeros(batch_shape + (num_heads, head_dim, value_dim), dtype),
        k_sum=jnp.zeros(batch_shape + (num_heads, head_dim), dtype),
    )


def step(
    state: AttentionState, q_t: jax.Array, k_t: jax.Array, v_t: jax.Array, *, eps: float = EPS
):
    """One-token recurrent update of the causal form.

    Args:
        state: sums over the tokens before t.
        q_t, k_t: [..., H, D] projections of token t before the feature map.
        v_t: [..., H, Dv] value of token t.
        eps: denominator guard.

    Returns:
        (state including token t, out_t [..., H, Dv]).
    """
    phi_q, phi_k = feature_map(q_t), feature_map(k_t)
    kv = state.kv + phi_k[..., :, None] * v_t[..., None, :]
    k_sum = state.k_sum + phi_k
    num = jnp.einsum("...hd,...hde->...he", phi_q, kv)
    den = jnp.einsum("...hd,...hd->...h", phi_q, k_sum)
    return AttentionState(kv, k_sum), num / (den[..., None] + eps)


def _global(phi_q, phi_k, v, eps):
    kv = jnp.einsum("...nhd,...nhe->...hde", phi_k, v)
    k_sum = jnp.sum(phi_k, axis=-3)
    num = jnp.einsum("...nhd,...hde->...nhe", phi_q, kv)
    den = jnp.einsum("...nhd,...hd->...nh", phi_q, k_sum)
    return num / (den[..., None] + eps)


def _chunk_body(eps):
    def body(state, chunk):
        phi_q, phi_k, v = chunk  # [..., L, H, D], [..., L, H, D], [..., L, H, Dv]
        length = phi_q.shape[-3]
        causal_mask = jnp.tril(jnp.ones((length, length), phi_q.dtype))
        scores = jnp.einsum("...lhd,...mhd->...hlm", phi_q, phi_k) * causal_mask
        num = jnp.einsum("...hlm,...mhe->...lhe", scores, v) + jnp.einsum(
            "...lhd,...hde->...lhe", phi_q, state.kv
        )
        den = jnp.swapaxes(jnp.sum(scores, axis=-1), -1, -2) + jnp.einsum(
            "...lhd,...hd->...lh", phi_q, state.k_sum
        )
        new_state = AttentionState(
            state.kv + jnp.einsum("...mhd,...mhe->...hde", phi_k, v),
            state.k_sum + jnp.sum(phi_k, axis=-3),
        )
        return new_state, num / (den[..., None] + eps)

    return body


def scan(
    state: AttentionState,
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    *,
    chunk_size: int = 64,
    eps: float = EPS,
):
    """Causal linear attention over a block of tokens, continuing from `state`.

    N need not be a multiple of `chunk_size`: the tokens are zero-padded to whole chunks
    and the padded keys are masked out of the carried state, then the output is sliced.

    Args:
        state: sums over the tokens before this block (`init_state` for a fresh stream).
        q, k: [..., N, H, D] projections before the feature map.
        v: [..., N, H, Dv] values.
        chunk_size: tokens per scan step (parallel inside a chunk).
        eps: denominator guard.

    Returns:
        (state after the block, out [..., N, H, Dv]).
    """
    n_tokens = q.shape[-3]
    if n_tokens == 0:
        return state, jnp.zeros(v.shape, v.dtype)
    length = min(chunk_size, n_tokens)
    n_chunks = -(-n_tokens // length)
    n_pad = n_chunks * length - n_tokens

    def to_chunks(x):
        pad = [(0, 0)] * (x.ndim - 3) + [(0, n_pad), (0, 0), (0, 0)]
        x = jnp.pad(x, pad).reshape(x.shape[:-3] + (n_chunks, length) + x.shape[-2:])
        return jnp.moveaxis(x, -4, 0)

    # Padding after the feature map gives padded keys phi = 0, so they never reach the
    # carried state (phi(0) would be 1).
    chunks = (to_chunks(feature_map(q)), to_chunks(feature_map(k)), to_chunks(v))
    state, out = jax.lax.scan(_chunk_body(eps), state, chunks)
    out = jnp.moveaxis(out, 0, -4)
    out = out.reshape(out.shape[:-4] + (n_chunks * length,) + out.shape[-2:])
    return state, out[..., :n_tokens, :, :]


def linear_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    *,
    causal: bool,
    chunk_size: int = 64,
    eps: float = EPS,
) -> jax.Array:
    """Multi-head linear attention with phi = ELU + 1 (stable public function).

    Args:
        q, k: [..., N, H, D] projections before the feature map.
        v: [..., N, H, Dv] values.
        causal: False for sums over the whole window (the paper); True for sums over
            past and current tokens only (computed with a chunked `jax.lax.scan`).
        chunk_size: tokens per scan step in the causal form.
        eps: denominator guard.

    Returns:
        out [..., N, H, Dv].
    """
    chex.assert_rank([q, k, v], q.ndim)
    chex.assert_equal_shape([q, k])
    chex.assert_equal_shape_prefix([q, v], q.ndim - 1)
    if not causal:
        return _global(feature_map(q), feature_map(k), v, eps)
    state = init_state(q.shape[:-3], q.shape[-2], q.shape[-1], v.shape[-1], q.dtype)
    return scan(state, q, k, v, chunk_size=chunk_size, eps=eps)[1]
