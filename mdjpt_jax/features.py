"""Stable pure signal functions for downstream features (the paper's evaluation; README).

- `differential_entropy`: the classic DE baseline in 5 bands per channel.
- `waveform_readout`: the untrained read-out of the raw band-passed waveform (the
  yardstick for stimulus-locked signal shared by subjects).
- `running_normalize`: causal per-session standardization with a prior (decay 0.99).
- `lds_smooth`: Kalman filter + Rauch-Tung-Striebel smoother (linear dynamical system).
- `euclidean_alignment` (and its parts `window_covariance_sum`, `alignment_matrix`):
  per-subject whitening of the signal before DE (the "de_ea" baseline).

All but the alignment are pure JAX functions (jit/vmap-able); the sequential ones use
`jax.lax.scan`. The alignment is numpy float64: its ridge (1e-6 of the mean channel power)
is below float32 resolution of the eigenvalues of a 60-channel covariance.
"""

import math
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

# (low, high) Hz of the delta, theta, alpha, beta and gamma bands; low <= f < high.
DE_BANDS = ((1.0, 4.0), (4.0, 8.0), (8.0, 14.0), (14.0, 30.0), (30.0, 47.0))
# LDS constants of the original SEED/CLISA post-processing.
LDS_Q, LDS_R, LDS_V0 = 1e-4, 1.0, 0.01


def band_masks(n_times: int, fs: float, bands=DE_BANDS) -> jax.Array:
    """Boolean rFFT masks [len(bands), n_times // 2 + 1]: bin frequency f in [low, high)."""
    freqs = jnp.fft.rfftfreq(n_times, d=1.0 / fs)
    return jnp.stack([(freqs >= low) & (freqs < high) for low, high in bands])


def differential_entropy(
    eeg: jax.Array, fs: float, *, bands=DE_BANDS, eps: float = 1e-12
) -> jax.Array:
    """Differential entropy of each channel in each frequency band.

    The band-pass is ideal FFT-domain masking: the window's rFFT is zeroed outside
    [low, high) Hz and transformed back (zero phase; the window is treated as periodic).
    DE assumes a Gaussian band signal: 0.5 * log(2 pi e var), var = population variance
    (ddof=0) over the window. A sinusoid of amplitude A on an FFT bin inside a band has
    var = A^2 / 2 in that band and 0 (-> log(eps)) elsewhere.

    Args:
        eeg: [..., C, T] µV.
        fs: sampling rate in Hz.
        bands: sequence of (low, high) Hz.
        eps: µV^2 floor added to the variance (keeps empty bands finite).

    Returns:
        [..., C, len(bands)] DE in nats (of µV-valued signals).
    """
    chex.assert_rank(eeg, {2, 3, 4, 5})
    n_times = eeg.shape[-1]
    spectrum = jnp.fft.rfft(eeg.astype(jnp.float32), axis=-1)  # [..., C, K]
    masks = band_masks(n_times, fs, bands)  # [B, K]
    banded = jnp.fft.irfft(spectrum[..., None, :] * masks, n=n_times, axis=-1)  # [..., C, B, T]
    var = jnp.var(banded, axis=-1)
    return 0.5 * jnp.log(2.0 * math.pi * math.e * (var + eps))


WAVEFORM_BAND = (0.5, 20.0)  # Hz: evoked responses live here
WAVEFORM_RATE_HZ = 25.0  # samples per second kept by the read-out


def waveform_readout(
    eeg: jax.Array, fs: float, *, band=WAVEFORM_BAND, rate_hz: float = WAVEFORM_RATE_HZ
) -> jax.Array:
    """The window's waveform band-passed to `band` and subsampled to ~`rate_hz`.

    A fixed, untrained read-out: ideal FFT-domain band-pass (as `differential_entropy`),
    then every round(fs / rate_hz)-th sample. Compared across subjects (cosine after
    per-subject standardization, `retrieval`), it measures how much stimulus-locked
    waveform two subjects share at the same moment, which band power cannot see.

    Args:
        eeg: [..., C, T] µV.
        fs: sampling rate in Hz.
        band: (low, high) Hz kept.
        rate_hz: approximate output rate.

    Returns:
        [..., C, ceil(T / round(fs / rate_hz))] µV.
    """
    n_times = eeg.shape[-1]
    mask = band_masks(n_times, fs, (band,))[0]
    banded = jnp.fft.irfft(jnp.fft.rfft(eeg.astype(jnp.float32), axis=-1) * mask, n=n_times)
    return banded[..., :: max(1, int(round(fs / rate_hz)))]


class RunningMoments(NamedTuple):
    """Welford moments of the features seen so far: count (= the next time index t),
    mean [F] and m2 [F] (sum of squared deviations)."""

    count: jax.Array
    mean: jax.Array
    m2: jax.Array


def running_moments(n_features: int) -> RunningMoments:
    """Moments before the first step."""
    zeros = jnp.zeros(n_features, jnp.float32)
    return RunningMoments(jnp.float32(0.0), zeros, zeros)


def running_normalize_step(
    moments: RunningMoments,
    x_t: jax.Array,
    mean: jax.Array,
    var: jax.Array,
    decay: float = 0.99,
    *,
    eps: float = 1e-6,
):
    """One step of `running_normalize`: (moments including x_t [F], normalized x_t [F])."""
    t = moments.count
    count = t + 1.0
    delta = x_t - moments.mean
    run_mean = moments.mean + delta / count
    run_m2 = moments.m2 + delta * (x_t - run_mean)
    weight = decay**t
    mu = weight * mean + (1.0 - weight) * run_mean
    sigma2 = weight * var + (1.0 - weight) * run_m2 / count
    return RunningMoments(count, run_mean, run_m2), (x_t - mu) / jnp.sqrt(sigma2 + eps)


def running_normalize(
    x: jax.Array, mean: jax.Array, var: jax.Array, decay: float = 0.99, *, eps: float = 1e-6
) -> jax.Array:
    """Causal standardization blending prior statistics with the running ones.

    With w_t = decay^t (t = 0, 1, ... is the time index), m_t and v_t the mean and the
    population variance (ddof=0) of x[:t+1] per feature:

        mu_t  = w_t * mean + (1 - w_t) * m_t
        var_t = w_t * var  + (1 - w_t) * v_t
        out_t = (x_t - mu_t) / sqrt(var_t + eps)

    so at t = 0 only the prior is used and it fades out geometrically. Running moments
    are Welford updates (`running_normalize_step`, which an online decoder calls one
    step at a time) inside `jax.lax.scan` (stable in float32).

    Args:
        x: [T, F] features in time order (one subject-session).
        mean: [F] prior mean (e.g. of the training subjects' features).
        var: [F] prior variance.
        decay: prior weight factor per step.
        eps: added to the variance.

    Returns:
        [T, F] normalized features.
    """
    chex.assert_rank(x, 2)
    chex.assert_shape([mean, var], (x.shape[1],))

    def step(moments, x_t):
        return running_normalize_step(moments, x_t, mean, var, decay, eps=eps)

    _, out = jax.lax.scan(step, running_moments(x.shape[1]), x.astype(jnp.float32))
    return out


def lds_smooth(
    x: jax.Array, *, q: float = LDS_Q, r: float = LDS_R, v0: float = LDS_V0
) -> jax.Array:
    """Kalman filter + RTS smoother of each feature as a 1-D linear dynamical system.

    Model (per feature, A = C = 1): z_0 ~ N(mu0, v0) with mu0 = mean over T of x,
    z_t = z_{t-1} + N(0, q), x_t = z_t + N(0, r). Filter: predicted (m^-_t, P^-_t) with
    m^-_0 = mu0, P^-_0 = v0, m^-_t = m_{t-1}, P^-_t = P_{t-1} + q; gain K_t = P^-_t /
    (P^-_t + r); m_t = m^-_t + K_t (x_t - m^-_t); P_t = (1 - K_t) P^-_t. RTS smoother
    backwards: J_t = P_t / P^-_{t+1}; s_t = m_t + J_t (s_{t+1} - m^-_{t+1}), s_{T-1} = m_{T-1}.

    Args:
        x: [T, F] observations in time order (one trial).
        q, r, v0: process noise, observation noise, initial state variance.

    Returns:
        [T, F] smoothed means s_t.
    """
    chex.assert_rank(x, 2)
    x = x.astype(jnp.float32)
    mu0 = jnp.mean(x, axis=0)
    p0 = jnp.full_like(mu0, v0)

    def forward(carry, x_t):
        m_pred, p_pred = carry
        gain = p_pred / (p_pred + r)
        m = m_pred + gain * (x_t - m_pred)
        p = (1.0 - gain) * p_pred
        return (m, p + q), (m, p, m_pred, p_pred)

    _, (m, p, m_pred, p_pred) = jax.lax.scan(forward, (mu0, p0), x)

    def backward(s_next, inputs):
        m_t, p_t, m_pred_next, p_pred_next = inputs
        s_t = m_t + p_t / p_pred_next * (s_next - m_pred_next)
        return s_t, s_t

    _, smoothed = jax.lax.scan(
        backward, m[-1], (m[:-1], p[:-1], m_pred[1:], p_pred[1:]), reverse=True
    )
    return jnp.concatenate([smoothed, m[-1:]], axis=0)


# Ridge of the alignment reference, relative to its mean diagonal (the mean channel power).
EA_RIDGE = 1e-6


def window_covariance_sum(eeg) -> np.ndarray:
    """Sum over windows of X X^T / T, float64 [C, C], of windows eeg [N, C, T]. No mean is
    removed, as in He & Wu: the `preprocessed` signal is already band-passed (0.5-47 Hz)."""
    x = np.asarray(eeg, np.float64)
    return np.einsum("nct,ndt->cd", x, x) / x.shape[-1]


def alignment_matrix(reference, *, ridge: float = EA_RIDGE) -> np.ndarray:
    """The Euclidean-alignment transform (R + eps I)^{-1/2}, float64 [C, C], of a subject's
    reference R [C, C] (the mean over its windows of X X^T / T).

    Symmetric inverse square root by `eigh`. eps = ridge * mean(diag R) keeps it finite
    when R is singular: channels interpolated from the others (`channels.projection_matrix`)
    are linear combinations of them, so R has rank <= the recorded channel count. Those
    null directions carry no signal and stay ~0; the aligned windows' mean covariance is
    then the projector onto the recorded signal's span (eigenvalues l / (l + eps)), I when
    R has full rank. Channels with zero power in every window (diag R == 0) carry no signal
    at all: they are left out of R (and of the mean diagonal) and passed through (they
    stay zero, so their DE is the floor of "de" on a zero channel).
    """
    reference = np.asarray(reference, np.float64)
    matrix = np.eye(len(reference))
    live = np.flatnonzero(np.diag(reference) > 0)
    if len(live):
        block = reference[np.ix_(live, live)]
        block = block + ridge * np.trace(block) / len(live) * np.eye(len(live))
        values, vectors = np.linalg.eigh(block)
        matrix[np.ix_(live, live)] = (vectors / np.sqrt(values)) @ vectors.T
    return matrix


def euclidean_alignment(eeg, *, ridge: float = EA_RIDGE) -> np.ndarray:
    """One subject's windows aligned with their own reference (He & Wu 2019, "Transfer
    learning for brain-computer interfaces: a Euclidean space data alignment approach").

    R = mean over the windows of X X^T / T; every window becomes (R + eps I)^{-1/2} X
    (`alignment_matrix`: ridge, zero channels). The aligned windows' mean covariance is I,
    so each subject's spatial covariance is whitened the same way. R needs no labels, so a
    test subject may be aligned with all its own (unlabelled) windows. A channel mixing
    X -> A X (A invertible) changes the output only by an orthogonal matrix
    (R_A^{-1/2} A R^{1/2}); A = s Q (Q orthogonal, s > 0) gives Q times the output.

    Args:
        eeg: [N, C, T] windows of ONE subject (all its sessions), µV.
        ridge: eps relative to the mean channel power.

    Returns:
        [N, C, T] float64 aligned windows (unitless).
    """
    x = np.asarray(eeg, np.float64)
    matrix = alignment_matrix(window_covariance_sum(x) / len(x), ridge=ridge)
    return np.einsum("cd,ndt->nct", matrix, x)
