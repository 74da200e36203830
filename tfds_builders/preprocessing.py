"""The documented preprocessing of the `preprocessed` configs: pure numpy in, numpy out.

Order: remove the per-channel mean; resample to `target_fs` with a polyphase
anti-aliasing filter (`scipy.signal.resample_poly`, rational ratio); then zero-phase
4th-order Butterworth band-pass (`sosfiltfilt`, second-order sections). IIR rather than
a long FIR so that short trials are filtered identically to long ones.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal

TARGET_FS = 125.0  # Hz, rate of the `preprocessed` configs (and of the encoders trained on them).
BAND = (0.5, 47.0)  # Hz, band-pass edges of the `preprocessed` configs.


def describe(target_fs: float = TARGET_FS, band: tuple[float, float] = BAND) -> str:
    """One line stating `preprocess_trial` with these settings (for cards and provenance)."""
    return (
        f"per-channel mean removed; polyphase resampling to {target_fs:g} Hz; zero-phase "
        f"4th-order Butterworth band-pass {band[0]:g}-{band[1]:g} Hz (sosfiltfilt)"
    )


def resample_ratio(fs: float, target_fs: float) -> Fraction:
    """target_fs / fs as the rational up/down factor the polyphase resamplers use."""
    return Fraction(float(target_fs) / float(fs)).limit_denominator(1000)


def resample(eeg: np.ndarray, fs: float, target_fs: float) -> np.ndarray:
    """Resamples [..., T] from fs to target_fs Hz (polyphase); returns float64 [..., T']."""
    ratio = resample_ratio(fs, target_fs)
    x = np.asarray(eeg, np.float64)
    if ratio == 1:
        return x
    return signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)


def bandpass_sos(fs: float, band: tuple[float, float], order: int = 4) -> np.ndarray:
    """Second-order sections of the Butterworth band-pass (upper edge capped at 0.45 fs)."""
    low, high = band
    high = min(high, 0.45 * fs)
    return signal.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")


def bandpass(eeg: np.ndarray, fs: float, band: tuple[float, float], order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band-pass of [..., T] at fs Hz; returns float64 [..., T]."""
    sos = bandpass_sos(fs, band, order)
    x = np.asarray(eeg, np.float64)
    padlen = min(3 * (2 * len(sos) + 1), x.shape[-1] - 1)
    return signal.sosfiltfilt(sos, x, axis=-1, padlen=padlen)


def preprocess_trial(
    eeg: np.ndarray, fs: float, *, target_fs: float = TARGET_FS, band: tuple[float, float] = BAND
) -> np.ndarray:
    """[..., C, T] µV at fs Hz -> [..., C, T'] float32 µV at target_fs Hz, band-passed."""
    x = np.asarray(eeg, np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    x = resample(x, fs, target_fs)
    return bandpass(x, target_fs, band).astype(np.float32)
