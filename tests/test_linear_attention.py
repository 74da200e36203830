"""Linear attention: global and chunked causal vs an O(N^2) loop; recurrence == scan."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mdjpt_jax.models import init_state, linear_attention, scan, step
from tests import naive_models as naive

TOL = 1e-5
# One compiled program per configuration is cheaper than eager op-by-op dispatch.
attention = jax.jit(linear_attention, static_argnames=("causal", "chunk_size"))
scan_jit = jax.jit(scan, static_argnames=("chunk_size",))


def _qkv(key, shape=(2, 10, 3, 4), value_dim=5):
    kq, kk, kv = jax.random.split(key, 3)
    v_shape = shape[:-1] + (value_dim,)
    return (
        jax.random.normal(kq, shape),
        jax.random.normal(kk, shape),
        jax.random.normal(kv, v_shape),
    )


def test_global_matches_naive_loop():
    q, k, v = _qkv(jax.random.key(0))
    out = attention(q, k, v, causal=False)
    np.testing.assert_allclose(
        out, naive.linear_attention(q, k, v, causal=False), rtol=TOL, atol=TOL
    )


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 7, 10, 64])
def test_causal_matches_naive_loop_for_any_chunk_size(chunk_size):
    # N = 10: 3, 4 and 7 do not divide it; 64 exceeds it.
    q, k, v = _qkv(jax.random.key(1))
    out = attention(q, k, v, causal=True, chunk_size=chunk_size)
    np.testing.assert_allclose(
        out, naive.linear_attention(q, k, v, causal=True), rtol=TOL, atol=TOL
    )


def test_extra_batch_dims_and_single_token():
    q, k, v = _qkv(jax.random.key(2), shape=(2, 3, 1, 2, 4), value_dim=4)
    for causal in (False, True):
        np.testing.assert_allclose(
            attention(q, k, v, causal=causal),
            naive.linear_attention(q, k, v, causal=causal),
            rtol=TOL,
            atol=TOL,
        )


def test_token_by_token_recurrence_equals_causal_scan():
    q, k, v = _qkv(jax.random.key(3))
    state = init_state((2,), 3, 4, 5)
    step_jit = jax.jit(step)
    outs = []
    for t in range(q.shape[1]):
        state, out_t = step_jit(state, q[:, t], k[:, t], v[:, t])
        outs.append(out_t)
    np.testing.assert_allclose(
        jnp.stack(outs, 1), attention(q, k, v, causal=True, chunk_size=4), rtol=TOL, atol=TOL
    )
    # The final state is the plain sum over all tokens (padded keys never leak in).
    end_state, _ = scan_jit(init_state((2,), 3, 4, 5), q, k, v, chunk_size=4)
    np.testing.assert_allclose(end_state.kv, state.kv, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(end_state.k_sum, state.k_sum, rtol=TOL, atol=TOL)


def test_scan_continues_a_stream_across_blocks():
    q, k, v = _qkv(jax.random.key(4))
    state = init_state((2,), 3, 4, 5)
    pieces = []
    for lo, hi in [(0, 3), (3, 3), (3, 9), (9, 10)]:  # includes an empty block
        state, out = scan_jit(state, q[:, lo:hi], k[:, lo:hi], v[:, lo:hi], chunk_size=4)
        pieces.append(out)
    np.testing.assert_allclose(
        jnp.concatenate(pieces, 1), attention(q, k, v, causal=True), rtol=TOL, atol=TOL
    )


def test_causal_output_ignores_future_tokens():
    q, k, v = _qkv(jax.random.key(5))
    out = attention(q, k, v, causal=True, chunk_size=4)
    k2 = k.at[:, 6:].set(7.0)
    v2 = v.at[:, 6:].set(-3.0)
    out2 = attention(q, k2, v2, causal=True, chunk_size=4)
    np.testing.assert_allclose(out[:, :6], out2[:, :6], rtol=TOL, atol=TOL)
    assert not np.allclose(out[:, 6:], out2[:, 6:])


def test_jit_traces_once_and_gradients_are_finite():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss(q, k, v):
        return jnp.sum(linear_attention(q, k, v, causal=True, chunk_size=4) ** 2)

    for seed in (6, 7):
        q, k, v = _qkv(jax.random.key(seed))
        grads = jax.grad(loss, argnums=(0, 1, 2))(q, k, v)
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
