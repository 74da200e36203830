"""Simulated emotion-EEG datasets: stimulus-locked latent dynamics seen through different caps.

Generative model of one trial (subject i of dataset d watching stimulus j with emotion e):

  * 8 cortical sources at fixed scalp directions, each oscillating in 4 bands
    (theta 6, alpha 10, beta 20, gamma 38 Hz; narrow-band noise carriers, fresh per trial).
  * Band amplitude of source s, band b: base_b * exp(W_v[s,b] v_e + W_a[s,b] a_e + u_ij[s,b]
    + c_j[s,b] + 0.5 E_j[s,b](t) + o_i[s,b]), where (v_e, a_e) is the emotion's valence and
    arousal and W is one map shared by ALL datasets (so emotions transfer across datasets),
    c_j and the slow envelope E_j(t) belong to the stimulus (shared by every subject who saw
    it: what inter-subject contrastive learning can find), o_i is the subject's offset and
    u_ij a per-trial jitter (SUBJECT_OFFSET_STD, TRIAL_JITTER_STD).
  * Scalp projection through a Gaussian lead field from the sources to the dataset's
    electrodes (colin27_1005 positions), with per-subject jitter of the source directions,
    per-dataset electrode gains and amplitude scale (what covariance alignment can remove).
  * Plus spatially correlated 1/f background and white sensor noise, all in µV.

Configs k0-k3 (the known-answer benchmark) change three things: the emotion is coded only
in a stimulus-locked amplitude modulation of the sources (its rate follows arousal, the
front/back phase lag follows valence; the mean band power does not depend on the emotion),
the sources are mixed by a subject-specific matrix before projection, and each dataset adds
a strong 1/f component through three dataset-specific spatial patterns.

Configs e0-e5 (the evoked-response benchmark, `emotion_code="evoked"`; frozen) repeat the
designs of d0-d5 (caps, rates, subjects, sessions, stimuli, trial lengths, label sets, scale)
with the shared signal of film-viewing EEG, stimulus-locked evoked responses:

  * Background: the band oscillations, 1/f and sensor noise above, but the band amplitudes
    are exp(o_i + u_ij) only: no emotion, no stimulus term, nothing shared between viewers.
  * Events: each stimulus has one event train (scene cuts, sounds), seeded by
    (seed, dataset, "events", stimulus) and shared by every viewer: onsets from -1.5 s to
    the trial's end with gaps 0.3 s + Exponential (1.5 events/s on average), amplitudes
    a_k = exp(0.3 z_k - 0.045), z_k ~ N(0, 1).
  * Response to one event at t = 0, on 13 evoked sources with their own scalp directions:
    early(t) (emotion-independent P1/N1: an odd wavelet in 3.5-14 Hz, +0.95 at 108 ms,
    -0.95 at 162 ms) x 10.5 µV on occipital, occipito-temporal, parietal (visual) and
    temporal, fronto-central (auditory) sources; plus late(t) x 5 µV on centro-parietal
    sources, late(t) = cos(theta) A(t - L) + sin(theta) B(t - L) with A the zero-phase
    wavelet of a sin^2 bump on 0.5-3.5 Hz (peak 1 at 0), B its Hilbert transform,
    theta = pi/2 (1 - valence) and L = 0.30 s + 0.15 s (1 - arousal) / 2 (`evoked_kernels`;
    EMOTIONS gives (valence, arousal), one map for all datasets). A and B have the same
    amplitude spectrum and are orthogonal, and early and late have disjoint spectra, so the
    power spectrum (band power, channel power) of the responses does not depend on the
    emotion: only the waveform's shape (the late wave's polarity/phase and latency) does.
  * Viewer variability: a latency shift per subject (sd 15 ms), a log gain per subject
    (sd 0.25) and per trial (sd 0.2), and per-subject jitter of the evoked sources' scalp
    directions (the lead field's N(0, 0.08), drawn for the evoked sources).

Configs n0-n5 (its null control) are e0-e5 with `shared_events=False`: each trial's event
train is private, seeded by (seed, dataset, "private-events", subject, session, trial), so
nothing is time-locked across viewers. They reuse their e twin's draws (`draws_of`): a null
record equals its evoked twin except for the event train.

Configs c0-c3 (the nuisance family) are e0-e3 plus an ocular-like nuisance whose size and
relation to valence differ by dataset; u0-u3 (its control) carry the same nuisance in every
dataset (`nuisance_uv`, `nuisance_valence`):

  * Blinks at scene cuts: each stimulus has its own blink train, seeded by
    (seed, dataset, "nuisance-events", stimulus) and shared by every viewer (distinct from the
    evoked event train): gaps 0.3 s + Exponential (0.4 blinks/s on average), amplitudes
    lognormal (as the events', mean 1).
  * One blink: a positive Gaussian bump of 0.3 s FWHM peaking at its onset (energy below
    ~3 Hz; what survives the 0.5 Hz high-pass lies in 0.5-3 Hz), of
    nuisance_uv * max(0, 1 + nuisance_valence * valence) µV at FP1, valence that of the
    stimulus's emotion (EMOTIONS), times a per-subject gain (log sd 0.2, mean 1).
  * Projection: sources under FP1 and FP2 through the Gaussian lead field (own per-subject
    direction jitter, the dataset's cap gains and scale), normalised to 1 at FP1: about 0.8
    at AF3/AF4, 0.35 at F7/F8/F3/F4, 0.25 at FZ, ~0 at central and posterior sites. The
    pattern is the same in head coordinates for every dataset; its amplitude and its relation
    to valence are what differ by dataset.

c0-c3 and u0-u3 reuse the draws of e0-e3 (`draws_of`): a record is its e twin's plus the
nuisance, and c_i and u_i share blink trains and subject gains.

Every random draw is seeded by (seed, dataset, role, ids) so a record does not depend on
the order of generation.
"""

from __future__ import annotations

import dataclasses
import functools
import zlib

import numpy as np

BANDS_HZ = ((6.0, 1.5), (10.0, 1.5), (20.0, 3.0), (38.0, 5.0))  # (centre, half-width)
BAND_AMPLITUDE_UV = np.array([5.0, 8.0, 3.0, 1.5])
SOURCE_SITES = ("F3", "F4", "T7", "T8", "P3", "P4", "O1", "O2")
LEAD_FIELD_WIDTH = 0.45  # on the unit sphere
SHARED_SEED = 20251022  # seeds the emotion -> source-spectrum map shared by all datasets
# Log-amplitude standard deviations. The subject and trial terms are what keeps a
# cross-subject linear probe on band power well below 100% (as on real data).
SUBJECT_OFFSET_STD = 0.5
TRIAL_JITTER_STD = 0.5

# Emotion -> (valence, arousal) in [-1, 1]; the valence class follows the sign of valence.
EMOTIONS = {
    "negative": (-0.9, 0.3),
    "neutral": (0.0, -0.3),
    "positive": (0.9, 0.3),
    "sad": (-0.8, -0.6),
    "fear": (-0.8, 0.9),
    "happy": (0.9, 0.6),
    "anger": (-0.9, 0.8),
    "sadness": (-0.8, -0.6),
    "joy": (0.9, 0.4),
    "disgust": (-0.7, 0.2),
    "amusement": (0.8, 0.6),
    "tenderness": (0.7, -0.4),
    "calm": (0.5, -0.8),
}

CAP_30 = (
    "FP1 FPZ FP2 F7 F3 FZ F4 F8 FT7 FC3 FCZ FC4 FT8 T7 C3 CZ C4 T8 TP7 CP3 CPZ CP4 "
    "TP8 P7 P3 PZ P4 P8 O1 O2"
).split()
CAP_1020 = "FP1 FP2 F7 F3 FZ F4 F8 T7 C3 CZ C4 T8 P7 P3 PZ P4 P8 O1 O2".split()
CAP_EMOTIV = "AF3 F7 F3 FC5 T7 P7 O1 O2 P8 T8 FC6 F4 F8 AF4".split()
CAP_24 = ("FP1 FP2 AF3 AF4 F7 F3 FZ F4 F8 FC5 FC6 T7 C3 CZ C4 T8 CP5 CP6 P3 PZ P4 O1 OZ O2").split()
CAP_GENEVA = (
    "FP1 AF3 F3 F7 FC5 FC1 C3 T7 CP5 CP1 P3 P7 PO3 O1 OZ PZ FP2 AF4 FZ F4 F8 FC6 "
    "FC2 CZ C4 T8 CP6 CP2 P4 P8 PO4 O2"
).split()
CAP_16 = "FP1 FP2 F3 F4 C3 C4 P3 P4 O1 O2 F7 F8 T7 T8 P7 P8".split()


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One simulated dataset (a BuilderConfig of `synthetic_emotion`)."""

    channels: tuple[str, ...]
    fs: float  # native rate, Hz
    n_subjects: int
    n_sessions: int
    stimuli_per_session: int
    trial_s: float
    labels: tuple[str, ...]
    scale: float  # amplifier/cap amplitude scale
    emotion_gain: float = 1.0  # how strongly the stimuli elicit their emotion
    # "band_power": the emotion shifts the sources' mean band power (d0-d5);
    # "modulation": the emotion sets the rate and the front/back phase of a stimulus-locked
    # amplitude modulation, with the mean band power independent of the emotion (k0-k3).
    emotion_code: str = "band_power"
    subject_mixing: float = 0.0  # strength of the subject-specific mixing of the sources
    dataset_shift: float = 0.0  # amplitude of the dataset-specific covariance component (x 8 µV)
    # "evoked" code only: True = one event train per stimulus, shared by every viewer (e0-e5);
    # False = a private event train per subject, session and trial (the null control n0-n5).
    shared_events: bool = True
    # Seed every draw with this config name instead of the config's own (n0-n5 reuse the draws
    # of e0-e5, so a null record differs from its evoked twin only in the event train).
    draws_of: str | None = None
    # Stimulus-locked blinks (c0-c3, u0-u3; 0 = none): peak µV at FP1 of a mean blink of a
    # neutral stimulus (before scale, cap and subject gains), and the relative change of that
    # amplitude per unit of valence (nuisance_amplitude_uv).
    nuisance_uv: float = 0.0
    nuisance_valence: float = 0.0


DATASETS = {
    "d0": DatasetSpec(
        tuple(CAP_30), 200.0, 8, 2, 6, 16.0, ("negative", "neutral", "positive"), 1.0
    ),
    "d1": DatasetSpec(
        tuple(CAP_1020), 128.0, 8, 1, 8, 16.0, ("neutral", "sad", "fear", "happy"), 0.7
    ),
    "d2": DatasetSpec(
        tuple(CAP_EMOTIV), 256.0, 6, 1, 8, 16.0, ("negative", "positive"), 1.5, emotion_gain=0.4
    ),
    "d3": DatasetSpec(
        tuple(CAP_24), 250.0, 8, 1, 8, 20.0, ("anger", "sadness", "neutral", "joy"), 1.2
    ),
    "d4": DatasetSpec(
        tuple(CAP_GENEVA),
        128.0,
        6,
        1,
        10,
        16.0,
        ("disgust", "fear", "neutral", "amusement", "tenderness"),
        0.8,
    ),
    "d5": DatasetSpec(tuple(CAP_16), 500.0, 6, 2, 6, 12.0, ("sad", "calm", "happy"), 1.0),
}
# The known-answer benchmark (README "Known-answer benchmark"): the designs of d0-d3, but
# the emotion lives only in stimulus-locked dynamics, the sources are mixed per subject and
# every dataset adds its own spatial covariance. k3 is the held-out target.
_KNOWN_ANSWER = dict(emotion_code="modulation", subject_mixing=0.6, dataset_shift=1.0)
DATASETS.update(
    {
        f"k{i}": dataclasses.replace(DATASETS[f"d{i}"], emotion_gain=1.0, **_KNOWN_ANSWER)
        for i in range(4)
    }
)
# The evoked-response benchmark (README "Evoked-response benchmark"): the designs of d0-d5,
# the emotion only in the shape of stimulus-locked evoked responses; and its null control,
# whose event trains are private to each viewer (same draws as its e twin otherwise).
_EVOKED = dict(emotion_code="evoked", emotion_gain=1.0)
DATASETS.update({f"e{i}": dataclasses.replace(DATASETS[f"d{i}"], **_EVOKED) for i in range(6)})
DATASETS.update(
    {
        f"n{i}": dataclasses.replace(DATASETS[f"e{i}"], shared_events=False, draws_of=f"e{i}")
        for i in range(6)
    }
)
# The nuisance family (README "The nuisance family"): e0-e3 plus stimulus-locked blinks whose
# size and relation to valence differ by dataset, c3 the held-out target; its control u0-u3
# has the same blinks in every dataset. Both reuse the draws of e0-e3.
NUISANCE_DESIGNS = {
    "c0": (30.0, 0.6),
    "c1": (8.0, -0.6),
    "c2": (18.0, 0.3),
    "c3": (12.0, -0.6),
    **{f"u{i}": (17.0, 0.3) for i in range(4)},
}
DATASETS.update(
    {
        name: dataclasses.replace(
            DATASETS[f"e{name[1]}"],
            draws_of=f"e{name[1]}",
            nuisance_uv=uv,
            nuisance_valence=per_valence,
        )
        for name, (uv, per_valence) in NUISANCE_DESIGNS.items()
    }
)
EMOTION_CODES = ("band_power", "modulation", "evoked")
# Modulation code: log-amplitude depth, and rate (Hz) = MOD_RATE_HZ[0] + MOD_RATE_HZ[1] *
# (arousal + 1); the posterior sources lag the frontal ones by pi * (1 - valence) / 2.
MOD_DEPTH, MOD_RATE_HZ = 0.6, (1.0, 1.0)
FRONTAL = np.array([site in ("F3", "F4", "T7", "T8") for site in SOURCE_SITES])

# Evoked code (e0-e5, n0-n5), frozen with the benchmark. Event trains: gaps EVENT_MIN_GAP_S +
# exponential, EVENT_RATE_HZ events per second on average, from EVENT_LEAD_S before the trial
# onset (the trial starts mid-film); amplitudes exp(EVENT_AMPLITUDE_STD z - STD^2 / 2).
EVENT_RATE_HZ, EVENT_MIN_GAP_S, EVENT_LEAD_S, EVENT_AMPLITUDE_STD = 1.5, 0.3, 1.5, 0.3
# Response to one event: two wavelets with disjoint spectra (sin^2 bumps on (lo, hi) Hz), each
# scaled so that its analytic envelope peaks at 1, times EVOKED_UV and a gain per source.
EARLY_BAND_HZ, EARLY_LATENCY_S, EARLY_PHASE = (3.5, 14.0), 0.135, -np.pi / 2  # P1 then N1
LATE_BAND_HZ = (0.5, 3.5)  # LPP-like slow wave
LATE_LATENCY_S = (0.30, 0.15)  # centre = [0] + [1] * (1 - arousal) / 2: 0.30-0.45 s
EVOKED_UV = {"early": 10.5, "late": 5.0}  # envelope peak at a gain-1 source, µV
# Early: visual (occipital, occipito-temporal, parietal) and auditory (temporal, fronto-central).
EARLY_SOURCE_GAIN = {
    **{"O1": 1.0, "O2": 1.0, "PO7": 0.7, "PO8": 0.7, "P3": 0.5, "P4": 0.5},
    **{"T7": 0.8, "T8": 0.8, "FC3": 0.6, "FC4": 0.6},
}
LATE_SOURCE_GAIN = {"CP3": 1.0, "CP4": 1.0, "CPZ": 0.4}  # centro-parietal
# The evoked sources: scalp directions of their own, projected by the same Gaussian lead field
# as the background sources (with its own per-subject direction jitter).
EVOKED_SITES = tuple(dict.fromkeys([*EARLY_SOURCE_GAIN, *LATE_SOURCE_GAIN]))
# Viewer variability: latency shift (s, per subject), log gain per subject and per trial.
SUBJECT_LATENCY_STD_S, SUBJECT_GAIN_STD, TRIAL_GAIN_STD = 0.015, 0.25, 0.2
EVOKED_PAD_S = 4.0  # circular-grid guard: > EVENT_LEAD_S + the response's tails (~0.3 + 1 s)

# Nuisance (c0-c3, u0-u3): blink trains (event_train at NUISANCE_RATE_HZ), Gaussian blinks of
# NUISANCE_FWHM_S, sources under NUISANCE_SITES, log gain per subject NUISANCE_SUBJECT_GAIN_STD.
NUISANCE_RATE_HZ, NUISANCE_FWHM_S = 0.4, 0.3
NUISANCE_SITES = ("FP1", "FP2")
NUISANCE_SUBJECT_GAIN_STD = 0.2


def valence_class(label: str) -> int:
    """0 negative, 1 neutral, 2 positive (eeg_schema.VALENCE_NAMES) from the emotion's valence."""
    v = EMOTIONS[label][0]
    return 0 if v < -0.3 else (2 if v > 0.3 else 1)


@functools.lru_cache(maxsize=None)
def _unit_positions() -> dict[str, np.ndarray]:
    import mne  # Lazy: slow import.

    pos = mne.channels.make_standard_montage("colin27_1005").get_positions()["ch_pos"]
    xyz = np.array(list(pos.values()))
    centre = xyz.mean(0)
    return {k.upper(): (p - centre) / np.linalg.norm(p - centre) for k, p in pos.items()}


def _rng(seed: int, *ids) -> np.random.Generator:
    # crc32, not hash(): str hashes are salted per process.
    return np.random.default_rng(
        [seed, *[zlib.crc32(i.encode()) if isinstance(i, str) else i for i in ids]]
    )


def _spectral_noise(rng, shape, fs, gain_fn) -> np.ndarray:
    """Real noise [..., T] whose amplitude spectrum is gain_fn(freqs), unit variance."""
    n = shape[-1]
    spec = np.fft.rfft(rng.standard_normal(shape), axis=-1) * gain_fn(np.fft.rfftfreq(n, 1 / fs))
    x = np.fft.irfft(spec, n=n, axis=-1)
    return x / (x.std(axis=-1, keepdims=True) + 1e-12)


def emotion_map() -> tuple[np.ndarray, np.ndarray]:
    """(W_valence, W_arousal) [sources, bands], shared by every dataset."""
    rng = np.random.default_rng(SHARED_SEED)
    shape = (len(SOURCE_SITES), len(BANDS_HZ))
    return rng.normal(0, 0.6, shape), rng.normal(0, 0.4, shape)


def draw_name(spec: DatasetSpec, name: str) -> str:
    """The name that seeds the draws of config `name`: its `draws_of` twin, else itself."""
    return spec.draws_of or name


def session_stimuli(spec: DatasetSpec, seed: int, name: str, session: int) -> list[int]:
    """Stimulus ids of one session in presentation order (the same for every subject)."""
    first = session * spec.stimuli_per_session
    order = _rng(seed, draw_name(spec, name), "order", session).permutation(
        spec.stimuli_per_session
    )
    return [first + int(k) for k in order]


def stimulus_label(spec: DatasetSpec, stimulus: int) -> int:
    """Label index of a stimulus: balanced over the label set."""
    return stimulus % len(spec.labels)


def _stimulus_drive(spec, seed, name, stimulus, n_times):
    """Log-amplitude drive [sources, bands, T] of a stimulus, shared by all its viewers."""
    rng = _rng(seed, name, "stimulus", stimulus)
    w_val, w_aro = emotion_map()
    valence, arousal = EMOTIONS[spec.labels[stimulus_label(spec, stimulus)]]
    content = rng.normal(0, 0.2, w_val.shape)
    envelope = _spectral_noise(
        rng, w_val.shape + (n_times,), spec.fs, lambda f: (f < 0.25).astype(float)
    )
    if spec.emotion_code == "band_power":
        emotion = spec.emotion_gain * (w_val * valence + w_aro * arousal)
        return (emotion + content)[..., None] + 0.5 * envelope
    if spec.emotion_code != "modulation":
        raise ValueError(f"emotion_code {spec.emotion_code!r} not in {EMOTION_CODES}")
    rate = MOD_RATE_HZ[0] + MOD_RATE_HZ[1] * (arousal + 1.0)
    lag = np.where(FRONTAL, 0.0, np.pi * (1.0 - valence) / 2.0)  # [sources]
    phase = rng.uniform(0, 2 * np.pi)  # stimulus-locked
    t = np.arange(n_times) / spec.fs
    modulation = np.sin(2 * np.pi * rate * t[None, :] + phase - lag[:, None])  # [sources, T]
    depth = spec.emotion_gain * MOD_DEPTH
    return content[..., None] + 0.5 * envelope + depth * modulation[:, None, :]


def event_train(
    rng: np.random.Generator, duration_s: float, rate_hz: float = EVENT_RATE_HZ
) -> tuple[np.ndarray, np.ndarray]:
    """A film's events (scene cuts, sounds): onsets [K] s in [-EVENT_LEAD_S, duration_s) and
    amplitudes [K] (lognormal, mean 1). Gaps: EVENT_MIN_GAP_S + exponential, mean
    1 / rate_hz."""
    n_max = int(np.ceil((duration_s + EVENT_LEAD_S) / EVENT_MIN_GAP_S)) + 1
    gaps = EVENT_MIN_GAP_S + rng.exponential(1.0 / rate_hz - EVENT_MIN_GAP_S, n_max)
    log_amp = EVENT_AMPLITUDE_STD * rng.standard_normal(n_max) - EVENT_AMPLITUDE_STD**2 / 2
    onsets = np.cumsum(gaps) - EVENT_LEAD_S
    keep = onsets < duration_s
    return onsets[keep], np.exp(log_amp[keep])


def trial_events(
    spec: DatasetSpec, seed: int, name: str, subject: int, session: int, trial: int, stimulus: int
) -> tuple[np.ndarray, np.ndarray]:
    """(onsets [K] s, amplitudes [K]) a viewer's trial responds to: the stimulus's own train,
    shared by every viewer (`shared_events`), or a train private to this subject and trial."""
    name = draw_name(spec, name)
    if spec.shared_events:
        rng = _rng(seed, name, "events", stimulus)
    else:
        rng = _rng(seed, name, "private-events", subject, session, trial)
    return event_train(rng, spec.trial_s)


def _hann_bump(freqs: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """sin^2 bump [F] on the open band (lo, hi) Hz, 0 outside, integral 1/2 (so the zero-phase
    wavelet 2 Re int bump e^{2 pi i f t} df peaks at 1 at t = 0)."""
    lo, hi = band
    x = np.clip((freqs - lo) / (hi - lo), 0.0, 1.0)
    return np.sin(np.pi * x) ** 2 / (hi - lo)


def late_latency(arousal: float) -> float:
    """Latency (s) of the late component's centre: 0.30 s at arousal +1, 0.45 s at -1."""
    return LATE_LATENCY_S[0] + LATE_LATENCY_S[1] * (1.0 - arousal) / 2.0


def evoked_kernels(freqs: np.ndarray, valence: float, arousal: float):
    """Fourier transforms (positive freqs [F], 1/Hz) of the response to one event at t = 0.

    early(t) = -B_E(t - 0.135 s): an odd wavelet in 3.5-14 Hz, positive (P1) then negative
        (N1), the same for every emotion.
    late(t) = cos(theta) A(t - L) + sin(theta) B(t - L), theta = pi/2 (1 - valence),
        L = late_latency(arousal); A is the zero-phase wavelet of a Hann bump on 0.5-3.5 Hz
        and B its Hilbert transform (spectrum of B = -i sgn(f) x spectrum of A). B is odd, A
        even, |FT B| = |FT A|: |FT late| does not depend on the emotion, and the supports of
        early and late are disjoint, so neither does the power spectrum of their sum.

    Returns:
        (early [F], late [F]) complex; a real signal is 2 Re int_0^inf X(f) e^{2 pi i f t} df.
    """
    theta = np.pi / 2 * (1.0 - valence)
    early = _hann_bump(freqs, EARLY_BAND_HZ) * np.exp(
        -1j * (EARLY_PHASE + 2 * np.pi * freqs * EARLY_LATENCY_S)
    )
    late = _hann_bump(freqs, LATE_BAND_HZ) * np.exp(
        -1j * (theta + 2 * np.pi * freqs * late_latency(arousal))
    )
    return early, late


def evoked_response(
    onsets_s: np.ndarray,
    amplitudes: np.ndarray,
    valence: float,
    arousal: float,
    fs: float,
    n_times: int,
    *,
    latency_shift_s: float = 0.0,
    pad_s: float = EVOKED_PAD_S,
) -> np.ndarray:
    """Noiseless evoked source activity [EVOKED_SITES, n_times] µV at fs Hz.

    sum_k amplitudes[k] * (EVOKED_UV early x EARLY_SOURCE_GAIN + EVOKED_UV late x
    LATE_SOURCE_GAIN)(t - onsets_s[k] - latency_shift_s), built in the frequency domain on a
    circular grid of n_times + pad_s * fs samples (the pad holds the tails, and the events
    before t = 0) and cut to the first n_times. Band-limited below 14 Hz, so exact at any fs
    above 28 Hz.
    """
    n_grid = n_times + int(round(pad_s * fs))
    freqs = np.fft.rfftfreq(n_grid, 1.0 / fs)
    used = freqs < max(EARLY_BAND_HZ[1], LATE_BAND_HZ[1])
    train = np.exp(-2j * np.pi * np.outer(freqs[used], onsets_s + latency_shift_s)) @ amplitudes
    early, late = evoked_kernels(freqs[used], valence, arousal)
    gains = {
        part: EVOKED_UV[part] * np.array([table.get(site, 0.0) for site in EVOKED_SITES])
        for part, table in (("early", EARLY_SOURCE_GAIN), ("late", LATE_SOURCE_GAIN))
    }
    spectrum = np.zeros((len(EVOKED_SITES), len(freqs)), complex)
    spectrum[:, used] = train * (gains["early"][:, None] * early + gains["late"][:, None] * late)
    # irfft(fs X(f_k)) samples the real signal 2 Re int_0^inf X e^{2 pi i f t} df (X(0) = 0).
    return np.fft.irfft(fs * spectrum, n=n_grid, axis=-1)[:, :n_times]


def _evoked_sources(spec, seed, name, subject, session, trial, stimulus, n_times):
    """[EVOKED_SITES, n_times] µV: the viewer's evoked responses to the trial's events."""
    onsets, amplitudes = trial_events(spec, seed, name, subject, session, trial, stimulus)
    valence, arousal = EMOTIONS[spec.labels[stimulus_label(spec, stimulus)]]
    name = draw_name(spec, name)
    viewer = _rng(seed, name, "evoked-subject", subject)
    shift = viewer.normal(0.0, SUBJECT_LATENCY_STD_S)
    log_gain = viewer.normal(0.0, SUBJECT_GAIN_STD)
    log_gain += _rng(seed, name, "evoked-trial", subject, session, trial).normal(0, TRIAL_GAIN_STD)
    response = evoked_response(
        onsets, amplitudes, valence, arousal, spec.fs, n_times, latency_shift_s=shift
    )
    return np.exp(log_gain) * response


def _source_mixing(spec, seed, name, subject) -> np.ndarray:
    """[sources, sources]: identity plus the subject's own mixing (strength subject_mixing)."""
    n = len(SOURCE_SITES)
    rng = _rng(seed, name, "subject-mixing", subject)
    return np.eye(n) + spec.subject_mixing * rng.standard_normal((n, n)) / np.sqrt(n)


def _lead_field(spec, seed, name, subject, sites=SOURCE_SITES, role="subject-lead") -> np.ndarray:
    """[channels, len(sites)] gains for one subject on this dataset's cap (the subject's
    source directions jittered by N(0, 0.08) per coordinate, drawn from `role`)."""
    rng = _rng(seed, name, role, subject)
    pos = _unit_positions()
    elec = np.stack([pos[c] for c in spec.channels])
    src = np.stack([pos[s] for s in sites]) + rng.normal(0, 0.08, (len(sites), 3))
    src /= np.linalg.norm(src, axis=1, keepdims=True)
    d2 = ((elec[:, None, :] - src[None, :, :]) ** 2).sum(-1)
    cap_gain = _rng(seed, name, "cap").uniform(0.8, 1.2, len(spec.channels))
    return spec.scale * cap_gain[:, None] * np.exp(-d2 / (2 * LEAD_FIELD_WIDTH**2))


def nuisance_amplitude_uv(spec: DatasetSpec, label: str) -> float:
    """Peak µV at FP1 of a mean blink (before scale, cap and subject gains) for a stimulus of
    emotion `label`: nuisance_uv * max(0, 1 + nuisance_valence * valence)."""
    valence = EMOTIONS[label][0]
    return spec.nuisance_uv * max(0.0, 1.0 + spec.nuisance_valence * valence)


def nuisance_events(
    spec: DatasetSpec, seed: int, name: str, stimulus: int
) -> tuple[np.ndarray, np.ndarray]:
    """(onsets [K] s, amplitudes [K]) of the blinks at a stimulus's scene cuts, shared by
    every viewer; a train of its own, not the evoked responses' events."""
    rng = _rng(seed, draw_name(spec, name), "nuisance-events", stimulus)
    return event_train(rng, spec.trial_s, rate_hz=NUISANCE_RATE_HZ)


def blink_train(
    onsets_s: np.ndarray, amplitudes: np.ndarray, fs: float, n_times: int
) -> np.ndarray:
    """[n_times]: sum_k amplitudes[k] exp(-(t - onsets_s[k])^2 / (2 sigma^2)), Gaussian blinks
    of NUISANCE_FWHM_S full width at half maximum, each peaking at its onset."""
    sigma = NUISANCE_FWHM_S / np.sqrt(8.0 * np.log(2.0))
    t = np.arange(n_times) / fs
    bumps = np.exp(-0.5 * ((t[:, None] - onsets_s[None, :]) / sigma) ** 2)  # [T, K]
    return np.einsum("tk,k->t", bumps, amplitudes)


@functools.lru_cache(maxsize=None)
def _nuisance_gain_at_fp1() -> float:
    """The summed lead-field gain of NUISANCE_SITES at FP1 (no jitter, cap gain 1)."""
    pos = _unit_positions()
    d2 = np.array([((pos["FP1"] - pos[s]) ** 2).sum() for s in NUISANCE_SITES])
    return float(np.exp(-d2 / (2 * LEAD_FIELD_WIDTH**2)).sum())


def nuisance_pattern(spec: DatasetSpec, seed: int, name: str, subject: int) -> np.ndarray:
    """[channels] the subject's blink topography on this dataset's cap: sources under
    NUISANCE_SITES through the lead field (scale and cap gains included), 1 at an
    unjittered FP1 with cap gain 1."""
    lead = _lead_field(
        spec, seed, draw_name(spec, name), subject, NUISANCE_SITES, "subject-nuisance-lead"
    )
    return lead.sum(1) / _nuisance_gain_at_fp1()


def _nuisance(spec, seed, name, subject, stimulus, n_times) -> np.ndarray:
    """[channels, n_times] µV: the viewer's blinks at the stimulus's scene cuts."""
    onsets, amplitudes = nuisance_events(spec, seed, name, stimulus)
    amplitude = nuisance_amplitude_uv(spec, spec.labels[stimulus_label(spec, stimulus)])
    subject_gain = np.exp(
        _rng(seed, draw_name(spec, name), "nuisance-subject", subject).normal(
            -(NUISANCE_SUBJECT_GAIN_STD**2) / 2, NUISANCE_SUBJECT_GAIN_STD
        )
    )
    blinks = amplitude * subject_gain * blink_train(onsets, amplitudes, spec.fs, n_times)
    return np.outer(nuisance_pattern(spec, seed, name, subject), blinks)


def simulate_trial(
    spec: DatasetSpec, seed: int, name: str, subject: int, session: int, trial: int, stimulus: int
) -> np.ndarray:
    """EEG [channels, trial_s * fs] in µV at the native rate."""
    n_times = int(round(spec.trial_s * spec.fs))
    config, name = name, draw_name(spec, name)
    rng = _rng(seed, name, "trial", subject, session, trial)
    shape = (len(SOURCE_SITES), len(BANDS_HZ))
    offsets = _rng(seed, name, "subject-offset", subject).normal(0, SUBJECT_OFFSET_STD, shape)
    jitter = rng.normal(0, TRIAL_JITTER_STD, shape)
    if spec.emotion_code == "evoked":  # band power: the viewer's offsets and trial jitter only
        drive = np.zeros(shape + (1,))
    else:
        drive = _stimulus_drive(spec, seed, name, stimulus, n_times)
    log_amp = drive + (offsets + jitter)[..., None]
    sources = np.zeros((len(SOURCE_SITES), n_times))
    for b, (centre, width) in enumerate(BANDS_HZ):
        carrier = _spectral_noise(
            rng,
            (len(SOURCE_SITES), n_times),
            spec.fs,
            lambda f: np.exp(-0.5 * ((f - centre) / width) ** 2),
        )
        sources += BAND_AMPLITUDE_UV[b] * np.exp(log_amp[:, b]) * carrier
    # einsum, not `@`: BLAS threads on these small products only spin on a busy machine.
    if spec.subject_mixing:
        sources = np.einsum("rs,st->rt", _source_mixing(spec, seed, name, subject), sources)
    eeg = np.einsum("cs,st->ct", _lead_field(spec, seed, name, subject), sources)
    if spec.emotion_code == "evoked":
        evoked = _evoked_sources(spec, seed, config, subject, session, trial, stimulus, n_times)
        lead = _lead_field(spec, seed, name, subject, EVOKED_SITES, "subject-evoked-lead")
        eeg += np.einsum("cs,st->ct", lead, evoked)
    if spec.nuisance_uv:
        eeg += _nuisance(spec, seed, config, subject, stimulus, n_times)
    n_chans = len(spec.channels)
    if spec.dataset_shift:
        # A dataset-specific spatial covariance (e.g. its reference and amplifier): 3 fixed
        # spatial patterns of the dataset carrying 1/f activity.
        patterns = _rng(seed, name, "dataset-patterns").standard_normal((n_chans, 3))
        shift = _spectral_noise(
            rng, (3, n_times), spec.fs, lambda f: 1.0 / np.sqrt(np.maximum(f, 0.5))
        )
        eeg += 8.0 * spec.dataset_shift * spec.scale * np.einsum("ck,kt->ct", patterns, shift)
    pink = _spectral_noise(
        rng, (n_chans, n_times), spec.fs, lambda f: 1.0 / np.sqrt(np.maximum(f, 0.5))
    )
    spatial = np.eye(n_chans) + 0.3 * _rng(seed, name, "cap-mix").standard_normal(
        (n_chans, n_chans)
    )
    eeg += 6.0 * spec.scale * np.einsum("cd,dt->ct", spatial, pink) / np.sqrt(1 + 0.09 * n_chans)
    eeg += 1.5 * rng.standard_normal((n_chans, n_times))
    return eeg
