"""NT-Xent and CDA: numpy oracles, hand-computed cases, invariants, sharded statistics."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from mdjpt_jax import losses
from tests import naive_models as naive

TOL = 1e-5
RNG = np.random.default_rng(0)


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


cda = jax.jit(losses.covariance_alignment_loss, static_argnames=("num_groups", "centroid"))


def test_contrastive_matches_numpy_loop():
    z = _unit(RNG.standard_normal((2, 6, 16))).astype(np.float32)
    np.testing.assert_allclose(losses.contrastive_loss(z), naive.nt_xent(z), rtol=TOL)
    np.testing.assert_allclose(
        losses.contrastive_loss(z, temperature=0.5), naive.nt_xent(z, 0.5), rtol=TOL
    )


def test_contrastive_hand_computed_cases():
    # M = 1: the positive is the only candidate, so the softmax is certain.
    z = _unit(RNG.standard_normal((2, 1, 4))).astype(np.float32)
    np.testing.assert_allclose(losses.contrastive_loss(z), 0.0, atol=TOL)
    # M = 2, orthonormal: every anchor sees logits (0, 0, 0) -> loss = log 3;
    # identical positives: logits (1/t for the positive, 0, 0).
    e = np.eye(4, dtype=np.float32)
    orth = np.stack([e[:2], e[2:]])
    np.testing.assert_allclose(losses.contrastive_loss(orth, 1.0), np.log(3.0), rtol=TOL)
    same = np.stack([e[:2], e[:2]])
    t = 0.5
    expected = np.log(np.exp(1 / t) + 2.0) - 1 / t
    np.testing.assert_allclose(losses.contrastive_loss(same, t), expected, rtol=TOL)


def test_similarity_statistics_match_a_loop_and_a_hand_case():
    z = _unit(RNG.standard_normal((2, 5, 8))).astype(np.float32)
    flat = z.reshape(10, 8)
    positives, negatives, off = [], [], []
    for i in range(10):
        for j in range(10):
            if i == j:
                continue
            s = float(flat[i] @ flat[j])
            off.append(s)
            (positives if abs(i - j) == 5 else negatives).append(s)
    stats = losses.similarity_statistics(z)
    np.testing.assert_allclose(
        stats["positive_minus_negative"], np.mean(positives) - np.mean(negatives), atol=TOL
    )
    np.testing.assert_allclose(stats["spread"], np.std(off), atol=TOL)
    # Identical positives, orthogonal otherwise: gap 1, similarities 1 (2M of 2M(2M-1)) and 0.
    e = np.eye(2, dtype=np.float32)
    stats = losses.similarity_statistics(np.stack([e, e]))
    np.testing.assert_allclose(stats["positive_minus_negative"], 1.0, atol=TOL)
    np.testing.assert_allclose(stats["spread"], np.std([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]))


def test_cda_matches_numpy_loop_with_an_empty_group():
    x = RNG.standard_normal((7, 3, 5, 11)).astype(np.float32)
    groups = np.array([0, 0, 1, 3, 3, 3, 1])  # group 2 is empty
    np.testing.assert_allclose(cda(x, groups, num_groups=4), naive.cda(x, groups, 4), rtol=TOL)


def test_scrambled_covariance_is_the_original_codes_statistic():
    x = RNG.standard_normal((3, 2, 4, 7)).astype(np.float32)
    scrambled = np.asarray(losses.scrambled_channel_covariance(x))
    np.testing.assert_allclose(scrambled, naive.original_cda_covariance(x), rtol=TOL, atol=TOL)
    true = np.asarray(losses.channel_covariance(x))
    assert np.max(np.abs(scrambled - true)) > 0.1  # not the channel covariance
    groups = np.array([0, 1, 1])
    loss = losses.covariance_alignment_loss(x, groups, 2, covariance="scrambled")
    expected = naive.cda(
        x, groups, 2, covariance=lambda w: naive.original_cda_covariance(w[None])[0]
    )
    np.testing.assert_allclose(loss, expected, rtol=TOL)
    with pytest.raises(ValueError, match="covariance must be one of"):
        losses.covariance_alignment_loss(x, groups, 2, covariance="raw")


def test_scale_free_cda_ignores_the_scale_of_its_input():
    x = (RNG.standard_normal((4, 2, 3, 20)) + 0.5 * RNG.standard_normal((4, 2, 3, 1))).astype(
        np.float32
    )
    groups = np.array([0, 0, 1, 1])
    for covariance in losses.COVARIANCES:
        scaled = [
            float(
                losses.covariance_alignment_loss(
                    s * x, groups, 2, covariance=covariance, scale_free=True
                )
            )
            for s in (1.0, 7.0)
        ]
        np.testing.assert_allclose(scaled[0], scaled[1], rtol=TOL)
        raw = [
            float(losses.covariance_alignment_loss(s * x, groups, 2, covariance=covariance))
            for s in (1.0, 7.0)
        ]
        assert raw[1] > raw[0] + 1.0  # the covariance CDA grows with the input's scale
    corr = np.asarray(losses.correlation(losses.channel_covariance(x)))
    np.testing.assert_allclose(corr[0, 1], np.corrcoef(x[0, 1]), rtol=2e-3)  # variance floor 1e-3


def test_cda_covariance_is_between_channels_over_time():
    t = np.arange(9, dtype=np.float32)
    signal = np.sin(t) + t / 4
    x = np.stack([signal, signal, np.cos(3 * t)])[None, None]  # [1, 1, 3 channels, 9 steps]
    cov = losses.channel_covariance(x)[0, 0]
    np.testing.assert_allclose(cov[0, 1], np.var(signal, ddof=1), rtol=TOL)
    np.testing.assert_allclose(cov, np.cov(x[0, 0]), rtol=TOL, atol=TOL)
    sums, counts = losses.cda_group_statistics(x, np.array([0]), 1)
    np.testing.assert_allclose(np.diag(sums[0, 0]), 0.0)
    np.testing.assert_allclose(sums[0, 0, 0, 1], np.var(signal, ddof=1), rtol=TOL)
    np.testing.assert_allclose(counts, [1.0])


@pytest.mark.parametrize("centroid", losses.CENTROIDS)
def test_cda_is_zero_when_all_centroids_are_equal(centroid):
    one = RNG.standard_normal((1, 2, 4, 10)).astype(np.float32)
    x = np.repeat(one, 6, axis=0)
    groups = np.array([0, 1, 2, 0, 1, 2])
    np.testing.assert_allclose(cda(x, groups, num_groups=3, centroid=centroid), 0.0, atol=TOL)
    # A single group has no pairs.
    np.testing.assert_allclose(
        cda(
            x * np.arange(1, 7)[:, None, None, None],
            np.zeros(6, int),
            num_groups=1,
            centroid=centroid,
        ),
        0.0,
        atol=TOL,
    )


@pytest.mark.parametrize("centroid", losses.CENTROIDS)
def test_cda_invariant_to_relabelling_groups(centroid):
    x = RNG.standard_normal((8, 2, 4, 12)).astype(np.float32)
    groups = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    relabel = np.array([2, 4, 0, 1, 3])  # also moves one to an unused id
    a = cda(x, groups, num_groups=4, centroid=centroid)
    b = cda(x, relabel[groups], num_groups=5, centroid=centroid)
    np.testing.assert_allclose(a, b, rtol=TOL)


@pytest.mark.parametrize("centroid", losses.CENTROIDS)
def test_cda_gradient_finite_at_coincident_centroids(centroid):
    one = RNG.standard_normal((1, 2, 4, 10)).astype(np.float32)
    other = RNG.standard_normal((1, 2, 4, 10)).astype(np.float32)
    x = np.concatenate([one, one, other])  # groups 0 and 1 coincide
    x[..., 0, :] = 0.0  # and a zero channel (repeated eigenvalues)
    grad = jax.grad(lambda x: cda(x, np.array([0, 1, 2]), num_groups=3, centroid=centroid))(x)
    assert np.all(np.isfinite(grad))
    assert np.any(grad != 0.0)


def test_log_euclidean_equals_arithmetic_for_single_window_groups():
    # One window per group: expm(logm(C + ridge)) = C + ridge and the ridge sits on the
    # zeroed diagonal, so both centroids coincide.
    x = RNG.standard_normal((3, 2, 4, 30)).astype(np.float32)
    groups = np.array([0, 1, 2])
    np.testing.assert_allclose(
        cda(x, groups, num_groups=3, centroid="log_euclidean"),
        cda(x, groups, num_groups=3),
        rtol=1e-4,
    )


@pytest.mark.parametrize("centroid", losses.CENTROIDS)
def test_psum_of_shard_statistics_equals_full_batch(centroid):
    devices = jax.devices()[:4]
    mesh = jax.make_mesh((len(devices),), ("data",), devices=devices)
    x = RNG.standard_normal((8, 2, 4, 10)).astype(np.float32)
    groups = np.array([0, 1, 2, 3, 0, 1, 2, 3])

    @functools.partial(jax.shard_map, mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P())
    def sharded(x, g):
        sums, counts = losses.cda_group_statistics(x, g, 4, centroid=centroid)
        sums, counts = jax.lax.psum((sums, counts), "data")
        return losses.cda_from_statistics(sums, counts, centroid=centroid)

    expected = cda(x, groups, num_groups=4, centroid=centroid)
    shard = jax.sharding.NamedSharding(mesh, P("data"))
    x_sharded, groups_sharded = jax.device_put(x, shard), jax.device_put(groups, shard)
    np.testing.assert_allclose(jax.jit(sharded)(x_sharded, groups_sharded), expected, rtol=1e-4)


def test_rejects_unknown_centroid():
    with pytest.raises(ValueError, match="centroid"):
        losses.cda_group_statistics(np.zeros((1, 1, 2, 3)), np.zeros(1, int), 1, centroid="geo")


def test_matrix_log_gradient_matches_finite_differences():
    a = RNG.standard_normal((4, 4))
    spd = jnp.asarray(a @ a.T + np.diag([0.5, 0.5, 1.0, 2.0]))  # one repeated pair nearby
    direction = jnp.asarray(RNG.standard_normal((4, 4)))
    direction = direction + direction.T
    f = lambda t: jnp.sum(losses._logm(spd + t * direction) * direction)
    h = 1e-2
    numeric = (f(h) - f(-h)) / (2 * h)
    np.testing.assert_allclose(jax.grad(f)(0.0), numeric, rtol=1e-3)


def test_cda_of_slices_is_the_mean_of_each_slice_cda():
    """Leading slice axes: groups of different slices are never compared; the loss is the
    mean over slices of each slice's CDA (the train step's P pair slices)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(24, 2, 3, 6))  # 24 windows
    ids = np.repeat(np.arange(6), 4)  # 6 groups = 2 slices x 3
    sums, counts = losses.cda_group_statistics(jnp.asarray(x), jnp.asarray(ids), 6)
    sliced = losses.cda_from_statistics(sums.reshape(2, 3, *sums.shape[1:]), counts.reshape(2, 3))
    per_slice = [naive.cda(x[ids // 3 == s], ids[ids // 3 == s] % 3, 3) for s in range(2)]
    np.testing.assert_allclose(sliced, np.mean(per_slice), rtol=1e-5)
    assert not np.isclose(float(sliced), naive.cda(x, ids, 6), rtol=1e-2)
