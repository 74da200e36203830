"""Causal (online) preprocessing with carried state: resampling, then band-pass.

The counterpart of `tfds_builders.preprocessing.preprocess_trial` for a live stream, same
order, same rate ratio and band (that module's `resample_ratio`, `bandpass_sos`, BAND),
but without look-ahead, so every output sample depends only on input samples already
received and a recording pushed in chunks of any size gives the same samples as pushed
whole:

1. Resampling fs -> target_fs by the rational factor up/down: the polyphase FIR of
   `scipy.signal.resample_poly` (Kaiser-windowed sinc, beta 5, 2 * 10 * max(up, down) + 1
   taps at the upsampled rate, cutoff at the lower Nyquist rate), applied causally:
   output m is sum_n h[m * down - n * up] x[n] over received inputs n. The zero-phase
   version centres the filter; the causal one is delayed by its half length, 10 *
   max(up, down) / (up * fs) s (80 ms for 160 -> 125 Hz; none when fs = target_fs).
   Inputs before the first sample are taken equal to it (no step at the start).
2. Band-pass: the same 4th-order Butterworth second-order sections, run forward once
   (`scipy.signal.sosfilt` with the filter state zi carried) instead of forward-backward;
   zi starts at the steady state of a constant signal equal to the first sample
   (`sosfilt_zi`), so a DC offset produces no start transient. The per-channel mean
   removal of the offline path needs the whole trial; the high-pass removes DC instead.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from tfds_builders import preprocessing


class Resampler:
    """Stateful causal polyphase resampler of [C, L] chunks (float64)."""

    def __init__(self, fs: float, target_fs: float):
        ratio = preprocessing.resample_ratio(fs, target_fs)
        self.up, self.down = ratio.numerator, ratio.denominator
        self.delay_s = 0.0
        self.reset()
        if ratio == 1:
            return
        max_rate = max(self.up, self.down)
        half_len = 10 * max_rate
        self.delay_s = half_len / (self.up * fs)
        taps = signal.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0))
        taps = taps * self.up
        self.n_taps = -(-len(taps) // self.up)  # input samples per output sample
        padded = np.zeros(self.n_taps * self.up)
        padded[: len(taps)] = taps
        # phases[p, j] = h[p + j * up]: weight of input n0 - j for an output of phase p.
        self.phases = padded.reshape(self.n_taps, self.up).T

    def reset(self) -> None:
        """Forgets the past: the next chunk starts a new signal."""
        self.history = None  # [C, K] inputs from index `base` on
        self.base = 0  # absolute input index of history[:, 0]
        self.n_in = 0  # inputs received
        self.n_out = 0  # outputs produced

    def last_input(self, m: int) -> int:
        """Index of the newest input sample output m depends on."""
        return m * self.down // self.up

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """[C, L] new inputs -> [C, L'] new outputs at target_fs (L' may be 0)."""
        x = np.asarray(x, np.float64)
        if self.up == self.down:
            self.n_in += x.shape[-1]
            self.n_out += x.shape[-1]
            return x
        if self.history is None:
            if x.shape[-1] == 0:
                return x
            self.history = np.repeat(x[:, :1], self.n_taps - 1, axis=1)
            self.base = -(self.n_taps - 1)
        self.history = np.concatenate([self.history, x], axis=1)
        self.n_in += x.shape[-1]
        stop = (self.n_in * self.up - 1) // self.down + 1  # outputs now computable
        m = np.arange(self.n_out, stop)
        newest = m * self.down // self.up
        phase = m * self.down - newest * self.up
        index = newest[:, None] - np.arange(self.n_taps)[None, :] - self.base  # [M, K]
        y = np.einsum("cmk,mk->cm", self.history[:, index], self.phases[phase])
        self.n_out = stop
        keep_from = stop * self.down // self.up - (self.n_taps - 1)  # next output's oldest
        cut = max(0, keep_from - self.base)
        self.history, self.base = self.history[:, cut:], self.base + cut
        return y


class Bandpass:
    """Stateful causal Butterworth band-pass of [C, L] chunks (sosfilt, zi carried)."""

    def __init__(self, fs: float, band=preprocessing.BAND, order: int = 4):
        self.sos = preprocessing.bandpass_sos(fs, tuple(band), order)
        self._zi_unit = signal.sosfilt_zi(self.sos)  # [sections, 2]
        self.reset()

    def reset(self) -> None:
        self.zi = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if x.shape[-1] == 0:
            return x
        if self.zi is None:
            self.zi = self._zi_unit[:, None, :] * x[None, :, :1]  # [sections, C, 2]
        y, self.zi = signal.sosfilt(self.sos, x, axis=-1, zi=self.zi)
        return y


class CausalPreprocessor:
    """Resampler then Bandpass: [C, L] µV at fs -> [C, L'] float32 µV at target_fs."""

    def __init__(self, fs: float, target_fs: float, band=preprocessing.BAND):
        self.resampler = Resampler(fs, target_fs)
        self.bandpass = Bandpass(target_fs, band)

    def reset(self) -> None:
        self.resampler.reset()
        self.bandpass.reset()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.bandpass(self.resampler(x)).astype(np.float32)


def describe(fs: float, target_fs: float, band=preprocessing.BAND) -> str:
    """One line stating the causal preprocessing (for the probe file and the terminal)."""
    delay = Resampler(fs, target_fs).delay_s
    return (
        f"causal polyphase resampling {fs:g} -> {target_fs:g} Hz (resample_poly's FIR, "
        f"delay {delay * 1e3:.0f} ms); causal 4th-order Butterworth band-pass "
        f"{band[0]:g}-{band[1]:g} Hz (sosfilt, state carried)"
    )
