"""features.py: DE closed form, running_normalize and lds_smooth against naive loops."""

import math

import jax
import numpy as np
import pytest

from mdjpt_jax import features
from tests import naive_features


@pytest.mark.parametrize("freq,band", [(2.0, 0), (6.0, 1), (10.0, 2), (20.5, 3), (40.0, 4)])
def test_de_of_sinusoid_matches_closed_form(freq, band):
    fs, n_times, amplitude = 125.0, 250, 7.0  # 0.5 Hz bins: every freq sits on a bin
    t = np.arange(n_times) / fs
    eeg = amplitude * np.sin(2 * np.pi * freq * t + 0.3)
    eeg = np.stack([eeg, 0.5 * eeg])[None]  # [1, C=2, T]
    de = np.asarray(features.differential_entropy(eeg, fs))
    assert de.shape == (1, 2, 5)
    expected = [0.5 * math.log(2 * math.pi * math.e * (a * amplitude) ** 2 / 2) for a in (1, 0.5)]
    np.testing.assert_allclose(de[0, :, band], expected, rtol=1e-5)
    others = np.delete(de[0], band, axis=1)
    assert np.all(others < -10.0), others  # empty bands: ~log(eps)


def test_de_is_additive_over_bands_for_two_tones():
    fs, n_times = 125.0, 125
    t = np.arange(n_times) / fs
    eeg = (3 * np.sin(2 * np.pi * 5 * t) + 2 * np.sin(2 * np.pi * 35 * t))[None]
    de = np.asarray(features.differential_entropy(eeg, fs))[0]
    closed = lambda a: 0.5 * math.log(2 * math.pi * math.e * a * a / 2)  # noqa: E731
    np.testing.assert_allclose(de[[1, 4]], [closed(3), closed(2)], rtol=1e-5)


def test_running_normalize_matches_loop():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(57, 4)).astype(np.float32)
    mean, var = np.array([0.0, 1.0, 3.0, -2.0]), np.array([1.0, 4.0, 0.5, 2.0])
    got = features.running_normalize(x, mean.astype(np.float32), var.astype(np.float32), decay=0.9)
    np.testing.assert_allclose(
        got, naive_features.running_normalize(x, mean, var, 0.9), rtol=1e-4, atol=1e-5
    )


def test_running_normalize_first_step_uses_prior_only():
    x = np.array([[5.0, -1.0]], np.float32)
    got = features.running_normalize(
        x, np.array([1.0, 1.0], np.float32), np.array([4.0, 1.0], np.float32), eps=0.0
    )
    np.testing.assert_allclose(got, [[2.0, -2.0]], rtol=1e-6)


def test_lds_smooth_matches_loop_kalman_rts():
    rng = np.random.default_rng(1)
    x = (np.cumsum(rng.normal(size=(80, 3)), axis=0) * 0.1 + rng.normal(size=(80, 3))).astype(
        np.float32
    )
    got = jax.jit(features.lds_smooth)(x)
    np.testing.assert_allclose(got, naive_features.lds_smooth(x), rtol=1e-4, atol=1e-5)


def test_lds_smooth_constant_and_single_step():
    const = np.full((20, 2), 4.0, np.float32)
    np.testing.assert_allclose(features.lds_smooth(const), const, rtol=1e-6)
    one = np.array([[2.0, -3.0]], np.float32)
    np.testing.assert_allclose(features.lds_smooth(one), naive_features.lds_smooth(one), rtol=1e-5)


def test_waveform_readout_keeps_the_band_and_subsamples():
    """Tones on FFT bins: the 5 Hz tone (inside 0.5-20 Hz) passes unchanged, the 30 Hz tone
    and the offset are removed; every 5th sample is kept at 125 Hz -> 25 Hz."""
    fs, n = 125.0, 250
    t = np.arange(n) / fs
    inside = 3.0 * np.sin(2 * np.pi * 5.0 * t)
    eeg = np.stack([inside + 2.0 * np.sin(2 * np.pi * 30.0 * t) + 7.0, -inside])[None]
    got = np.asarray(features.waveform_readout(eeg.astype(np.float32), fs))
    assert got.shape == (1, 2, 50)
    np.testing.assert_allclose(got[0, 0], inside[::5], atol=1e-4)
    np.testing.assert_allclose(got[0, 1], -inside[::5], atol=1e-4)


def _mixed_windows(n_windows=20, n_chans=6, n_times=100, seed=0):
    """[N, C, T] float32 µV with a strong, subject-like spatial covariance (not I)."""
    rng = np.random.default_rng(seed)
    mixing = np.eye(n_chans) + 0.8 * rng.normal(size=(n_chans, n_chans))
    sources = rng.normal(size=(n_windows, n_chans, n_times)) * rng.uniform(1, 20, (n_chans, 1))
    return np.einsum("cd,ndt->nct", mixing, sources).astype(np.float32)


def _mean_covariance(windows):
    return np.mean([x @ x.T / x.shape[-1] for x in np.asarray(windows, np.float64)], axis=0)


def test_euclidean_alignment_whitens_the_mean_covariance():
    x = _mixed_windows()
    reference = _mean_covariance(x)
    assert np.abs(reference - np.eye(6)).max() > 10  # far from aligned before
    np.testing.assert_allclose(
        _mean_covariance(features.euclidean_alignment(x, ridge=0.0)), np.eye(6), atol=1e-9
    )
    # the default ridge moves eigenvalue l to l / (l + eps): off by at most eps / l_min
    bound = features.EA_RIDGE * np.trace(reference) / 6 / np.linalg.eigvalsh(reference)[0]
    aligned = _mean_covariance(features.euclidean_alignment(x))
    np.testing.assert_allclose(aligned, np.eye(6), atol=1.01 * bound)


def test_euclidean_alignment_matches_naive_sqrtm():
    x = _mixed_windows(seed=1)
    np.testing.assert_allclose(
        features.euclidean_alignment(x), naive_features.euclidean_alignment(x), rtol=1e-7, atol=1e-9
    )


def test_euclidean_alignment_under_channel_mixing():
    """X -> A X: the aligned windows change by the orthogonal R_A^{-1/2} A R^{1/2} only
    (ridge 0: exact); A = s Q (Q orthogonal) gives exactly Q times the aligned windows
    (the ridge scales with s^2 too)."""
    rng = np.random.default_rng(2)
    x = _mixed_windows(seed=2).astype(np.float64)
    aligned = features.euclidean_alignment(x, ridge=0.0)
    mixing = np.eye(6) + 0.5 * rng.normal(size=(6, 6))
    mixed = features.euclidean_alignment(np.einsum("cd,ndt->nct", mixing, x), ridge=0.0)
    flat, flat_mixed = (a.transpose(1, 0, 2).reshape(6, -1) for a in (aligned, mixed))
    rotation = flat_mixed @ np.linalg.pinv(flat)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(6), atol=1e-8)
    np.testing.assert_allclose(rotation @ flat, flat_mixed, atol=1e-8)
    assert np.abs(rotation - np.eye(6)).max() > 0.1  # a real rotation, not the identity
    orthogonal, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    scaled = features.euclidean_alignment(np.einsum("cd,ndt->nct", 7.0 * orthogonal, x))
    np.testing.assert_allclose(
        scaled,
        np.einsum("cd,ndt->nct", orthogonal, features.euclidean_alignment(x)),
        rtol=1e-7,
        atol=1e-8,
    )


def test_euclidean_alignment_passes_a_zero_channel_through():
    """A channel that is zero in every window stays exactly zero; the others are aligned
    as if it were absent."""
    x = _mixed_windows(seed=3)
    x[:, 2] = 0.0
    got = features.euclidean_alignment(x)
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got[:, 2], 0.0)
    np.testing.assert_allclose(
        np.delete(got, 2, axis=1),
        features.euclidean_alignment(np.delete(x, 2, axis=1)),
        rtol=1e-10,
        atol=1e-12,
    )
    np.testing.assert_array_equal(features.alignment_matrix(np.zeros((3, 3))), np.eye(3))


def test_euclidean_alignment_of_an_interpolated_channel():
    """A channel that is a float32 combination of two others (as a spline-interpolated
    unified channel): R is singular; the ridge keeps the output finite and the aligned
    mean covariance is the projector onto the recorded span, (I - n n^T) with n the unit
    null vector of the combination."""
    x = _mixed_windows(seed=4)
    x[:, 5] = (np.float32(0.4) * x[:, 0] + np.float32(0.6) * x[:, 1]).astype(np.float32)
    got = features.euclidean_alignment(x)
    assert np.isfinite(got).all() and np.abs(got).max() < 10  # unit-scale, nothing blown up
    null = np.array([0.4, 0.6, 0, 0, 0, -1.0])
    null /= np.linalg.norm(null)
    np.testing.assert_allclose(_mean_covariance(got), np.eye(6) - np.outer(null, null), atol=1e-3)
