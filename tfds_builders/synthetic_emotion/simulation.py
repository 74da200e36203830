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
EMOTION_CODES = ("band_power", "modulation")
# Modulation code: log-amplitude depth, and rate (Hz) = MOD_RATE_HZ[0] + MOD_RATE_HZ[1] *
# (arousal + 1); the posterior sources lag the frontal ones by pi * (1 - valence) / 2.
MOD_DEPTH, MOD_RATE_HZ = 0.6, (1.0, 1.0)
FRONTAL = np.array([site in ("F3", "F4", "T7", "T8") for site in SOURCE_SITES])


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


def session_stimuli(spec: DatasetSpec, seed: int, name: str, session: int) -> list[int]:
    """Stimulus ids of one session in presentation order (the same for every subject)."""
    first = session * spec.stimuli_per_session
    order = _rng(seed, name, "order", session).permutation(spec.stimuli_per_session)
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


def _source_mixing(spec, seed, name, subject) -> np.ndarray:
    """[sources, sources]: identity plus the subject's own mixing (strength subject_mixing)."""
    n = len(SOURCE_SITES)
    rng = _rng(seed, name, "subject-mixing", subject)
    return np.eye(n) + spec.subject_mixing * rng.standard_normal((n, n)) / np.sqrt(n)


def _lead_field(spec, seed, name, subject) -> np.ndarray:
    """[channels, sources] gains for one subject on this dataset's cap."""
    rng = _rng(seed, name, "subject-lead", subject)
    pos = _unit_positions()
    elec = np.stack([pos[c] for c in spec.channels])
    src = np.stack([pos[s] for s in SOURCE_SITES]) + rng.normal(0, 0.08, (len(SOURCE_SITES), 3))
    src /= np.linalg.norm(src, axis=1, keepdims=True)
    d2 = ((elec[:, None, :] - src[None, :, :]) ** 2).sum(-1)
    cap_gain = _rng(seed, name, "cap").uniform(0.8, 1.2, len(spec.channels))
    return spec.scale * cap_gain[:, None] * np.exp(-d2 / (2 * LEAD_FIELD_WIDTH**2))


def simulate_trial(
    spec: DatasetSpec, seed: int, name: str, subject: int, session: int, trial: int, stimulus: int
) -> np.ndarray:
    """EEG [channels, trial_s * fs] in µV at the native rate."""
    n_times = int(round(spec.trial_s * spec.fs))
    rng = _rng(seed, name, "trial", subject, session, trial)
    shape = (len(SOURCE_SITES), len(BANDS_HZ))
    offsets = _rng(seed, name, "subject-offset", subject).normal(0, SUBJECT_OFFSET_STD, shape)
    jitter = rng.normal(0, TRIAL_JITTER_STD, shape)
    log_amp = _stimulus_drive(spec, seed, name, stimulus, n_times) + (offsets + jitter)[..., None]
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
