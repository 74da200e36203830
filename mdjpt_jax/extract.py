"""Feature extraction: sliding windows over every trial -> per-window features on disk.

Two kinds of features per window:
- learned: `Encoder.embed` of an exported encoder (`checkpointing.load_encoder`) or of a
  randomly initialised one of the same architecture (the report's baseline);
- signal baselines (SIGNAL_FEATURES, no parameters): "de" = `features.differential_entropy`
  per channel and band, flattened to [C * 5]; "waveform" = `features.waveform_readout`, the
  band-passed raw waveform flattened to [C * T'].

Every method of a comparison is scored on the same windows: the learned encoders' window
and hop (`extract.window_s`, `step_s`) serve "de", "de_ea" and "waveform" too; "de_paper"
is DE on the paper's own 1 s windows, a separately labelled row. "de_ea" is DE after
per-subject Euclidean alignment (`features.euclidean_alignment`): the non-learned
cross-subject alignment that a learned one must beat (SIGNAL_METHODS).

Stratified normalization inside the encoder standardizes over the windows of one block,
so a block must hold ONE subject's windows, and enough of them to be representative.
Decision: each subject's windows are put in a seeded random order and cut into blocks of
exactly W windows (W = `windows_per_block`, or all of the subject's windows if fewer);
the last block is the subject's last W windows in that order (it overlaps the previous
block; only its new windows are kept). So every block is a random sample of W windows of
one subject (not one stimulus, whose emotion-specific mean a block of consecutive windows
would normalize away), and shapes stay static. A call carries `blocks_per_call` blocks of
the SAME subject (padded by repeating a block whose outputs are dropped).

Output: one feature file per (method, seed, dataset) in the format of
`workdir.save_features` (features [N, D], per-window ids and start, label and valence names,
provenance: inputs, checkpoint step and encoder info), plus per-subject CDA centroids for
the report's methods. A file whose provenance equals the requested one is re-used.
"""

import functools
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm import tqdm

from mdjpt_jax import channels, checkpointing, features, input_pipeline, losses, workdir
from mdjpt_jax.models import Encoder

WINDOW_FIELDS = workdir.WINDOW_FIELDS
MODEL_KWARGS = ("n_chans", "n_times", "variant", "attention", "chunk_size")  # Encoder args


# ----------------------------------------------------------------------------- windows


def window_starts(n_times: int, window: int, step: int) -> np.ndarray:
    """Start samples of the windows [start, start + window) fully inside n_times."""
    if n_times < window:
        return np.zeros(0, np.int64)
    return np.arange(0, n_times - window + 1, step, dtype=np.int64)


def window_table(trials: list, window: int, step: int) -> dict:
    """Per-window index table over trials: `trial_index`, `start` and WINDOW_FIELDS, [N] each."""
    rows = {key: [] for key in ("trial_index", "start") + WINDOW_FIELDS}
    for i, trial in enumerate(trials):
        starts = window_starts(trial["eeg"].shape[-1], window, step)
        rows["trial_index"].append(np.full(len(starts), i))
        rows["start"].append(starts)
        for key in WINDOW_FIELDS:
            rows[key].append(np.full(len(starts), int(trial[key])))
    table = {key: np.concatenate(v).astype(np.int64) for key, v in rows.items()}
    if len(table["start"]) == 0:
        raise ValueError(f"no trial is at least {window} samples long; nothing to extract")
    return table


def gather_windows(trials: list, table: dict, rows: np.ndarray, window: int) -> np.ndarray:
    """[len(rows), C, window] float32 EEG of the given window-table rows."""
    return np.stack(
        [
            trials[table["trial_index"][r]]["eeg"][:, s : s + window]
            for r, s in zip(rows, table["start"][rows])
        ]
    ).astype(np.float32)


# ----------------------------------------------------------------------------- DE


# Signal baselines: name -> [B, C, T] µV, fs -> [B, C, ...] features (flattened per window).
SIGNAL_FEATURES = {
    "de": features.differential_entropy,
    "waveform": features.waveform_readout,
}


@functools.partial(jax.jit, static_argnums=(0, 2))
def _signal_flat(signal: str, eeg, fs):
    feats = SIGNAL_FEATURES[signal](eeg, fs)
    return feats.reshape(feats.shape[0], -1)


def subject_alignment_matrices(
    trials: list, table: dict, *, window: int, batch_windows: int
) -> tuple:
    """Per-subject Euclidean-alignment transforms (`features.alignment_matrix`) from each
    subject's own windows, accumulated `batch_windows` at a time.

    Returns:
        (matrices [G, C, C] float64, subjects [G] the sorted subject ids).
    """
    matrices, subjects = [], np.unique(table["subject"])
    for subject in tqdm(subjects, desc="alignment", unit="subject"):
        rows = np.flatnonzero(table["subject"] == subject)
        cov_sum = sum(
            features.window_covariance_sum(
                gather_windows(trials, table, rows[begin : begin + batch_windows], window)
            )
            for begin in range(0, len(rows), batch_windows)
        )
        matrices.append(features.alignment_matrix(cov_sum / len(rows)))
    return np.stack(matrices), subjects


def signal_features(
    trials: list,
    table: dict,
    *,
    signal: str,
    fs: float,
    window: int,
    batch_windows: int,
    euclidean_alignment: bool = False,
) -> np.ndarray:
    """[N, F] features of the signal baseline `signal` (a key of SIGNAL_FEATURES) of every
    window, flattened channel-major (DE: [N, C * 5], channel then band).

    With `euclidean_alignment`, each window is first multiplied by its subject's alignment
    transform (`subject_alignment_matrices`; `features.euclidean_alignment` in batches).
    """
    n = len(table["start"])
    if euclidean_alignment:
        matrices, subjects = subject_alignment_matrices(
            trials, table, window=window, batch_windows=batch_windows
        )
        matrix_of_window = np.searchsorted(subjects, table["subject"])  # [N]
    out = []
    for begin in tqdm(range(0, n, batch_windows), desc=signal, unit="batch"):
        rows = np.arange(begin, begin + batch_windows) % n  # static shape: wrap
        eeg = gather_windows(trials, table, rows, window)
        if euclidean_alignment:
            eeg = np.matmul(matrices[matrix_of_window[rows]], eeg.astype(np.float64))
            eeg = eeg.astype(np.float32)
        feats = np.asarray(_signal_flat(signal, eeg, fs))
        out.append(feats[: min(batch_windows, n - begin)])
    return np.concatenate(out)


# ----------------------------------------------------------------------------- learned


def subject_blocks(n_windows: int, block_size: int, seed: int) -> list:
    """One subject's windows as blocks of exactly min(block_size, n_windows) positions.

    Returns:
        list of (positions [W] into the subject's windows, keep [W] bool): every position
        is kept exactly once over all blocks.
    """
    size = min(block_size, n_windows)
    order = np.random.default_rng(seed).permutation(n_windows)
    blocks = []
    for begin in range(0, n_windows, size):
        if begin + size <= n_windows:
            blocks.append((order[begin : begin + size], np.ones(size, bool)))
        else:  # overlap the previous block; keep only the new windows
            tail = np.arange(n_windows - size, n_windows)
            blocks.append((order[tail], tail >= begin))
    return blocks


@nnx.jit
def _embed(encoder: Encoder, x: jax.Array) -> jax.Array:
    return encoder.embed(x)


def learned_features(
    encoder: Encoder,
    trials: list,
    table: dict,
    *,
    window: int,
    windows_per_block: int,
    blocks_per_call: int,
    seed: int,
    progress: bool = True,
) -> np.ndarray:
    """[N, D] encoder features; each call holds [S, W] windows of one subject only.

    Args:
        encoder: model with `.embed(x [S, W, C, T]) -> [S, W, D]`.
        trials, table: from `input_pipeline.load_trials` and `window_table`.
        window: T samples (must equal encoder.n_times).
        windows_per_block, blocks_per_call: W and S of a call.
        seed: the per-subject window order (seed + subject).
        progress: show a progress bar.
    """
    n = len(table["start"])
    out = np.full((n, encoder.feature_dim), np.nan, np.float32)
    calls = []
    for subject in np.unique(table["subject"]):
        rows = np.flatnonzero(table["subject"] == subject)
        blocks = subject_blocks(len(rows), windows_per_block, seed + int(subject))
        for begin in range(0, len(blocks), blocks_per_call):
            chunk = blocks[begin : begin + blocks_per_call]
            padding = (chunk[0][0], np.zeros_like(chunk[0][1]))  # computed, never kept
            chunk = chunk + [padding] * (blocks_per_call - len(chunk))
            calls.append([(rows[pos], keep) for pos, keep in chunk])
    for call in tqdm(calls, desc="embed", unit="call", disable=not progress):
        x = np.stack([gather_windows(trials, table, r, window) for r, _ in call])
        feats = np.asarray(_embed(encoder, jnp.asarray(x)))  # [S, W, D]
        for (r, keep), f in zip(call, feats):
            out[r[keep]] = f[keep]
    assert not np.isnan(out).any(), "some windows were not embedded"
    return out


def random_encoder(model_kwargs: dict, seed: int) -> Encoder:
    """Same architecture as an exported encoder, parameters from `seed`."""
    return Encoder(**model_kwargs, rngs=nnx.Rngs(params=seed))


@nnx.jit
def _mixed(encoder: Encoder, x: jax.Array) -> jax.Array:
    return encoder(x)["mixed"]


def subject_centroids(
    encoder: Encoder, trials: list, table: dict, *, window: int, windows_per_block: int, seed: int
) -> dict:
    """Per-subject CDA centroids of the mixer output (the quantity the CDA loss aligns).

    For each subject, one block of W of its windows (the first block of `subject_blocks`)
    goes through the encoder; its centroids are the means over the block of the
    zero-diagonal channel covariance ("covariance") and correlation ("correlation", CDA's
    scale-free statistic) of `mixed` (`losses.cda_group_statistics` with one group).

    Returns:
        dict(covariance [G, F, C2, C2], correlation [G, F, C2, C2] float32, subjects [G]).
    """
    stats = {name: [] for name in workdir.CENTROID_STATISTICS}
    subjects = np.unique(table["subject"])
    for subject in subjects:
        rows = np.flatnonzero(table["subject"] == subject)
        positions, _ = subject_blocks(len(rows), windows_per_block, seed + int(subject))[0]
        x = gather_windows(trials, table, rows[positions], window)[None]
        mixed = _mixed(encoder, jnp.asarray(x))[0]  # [W, F, C2, N]
        one_group = jnp.zeros(len(positions), jnp.int32)
        for name in workdir.CENTROID_STATISTICS:
            sums, counts = losses.cda_group_statistics(
                mixed, one_group, 1, scale_free=name == "correlation"
            )
            stats[name].append(np.asarray(sums[0] / counts[0]))
    return dict({name: np.stack(v) for name, v in stats.items()}, subjects=subjects)


# ----------------------------------------------------------------------------- files


class TrialReader:
    """`input_pipeline.load_trials` that keeps the last (dataset, ch_names, fs) read in memory,
    so consecutive extractions of one dataset read it once."""

    def __init__(self, data_dir: str):
        self.data_dir = os.path.abspath(os.path.expanduser(data_dir))
        self._key, self._value = None, None

    def __call__(self, dataset: str, ch_names, fs: float) -> tuple:
        """-> (trials: list of dicts with eeg [C, T] on ch_names at fs Hz, metadata dict);
        raises if the dataset is stored at another rate."""
        key = (dataset, tuple(ch_names), float(fs))
        if key != self._key:
            self._key, self._value = None, None  # free the previous dataset first
            self._value = input_pipeline.load_trials(dataset, self.data_dir, list(ch_names), fs=fs)
            self._key = key
        return self._value


def extract_to_file(
    path: str,
    dataset: str,
    read_trials: TrialReader,
    *,
    encoder,
    signal: str | None = None,
    euclidean_alignment: bool = False,
    info: dict,
    ch_names,
    fs: float,
    window_s: float,
    step_s: float,
    windows_per_block: int,
    blocks_per_call: int,
    batch_windows: int,
    seed: int,
    centroids_to: str | None = None,
    centroid_windows: int = 32,
) -> str:
    """Extracts one dataset's features to `path` unless an identical extraction is there.

    Args:
        read_trials: a TrialReader of the data directory.
        encoder: an Encoder (learned features), or None with `signal` set.
        signal: the signal baseline (a key of SIGNAL_FEATURES) when encoder is None.
        euclidean_alignment: align each subject's windows before `signal` (see
            `signal_features`); recorded in the provenance when set.
        info: JSON-serializable description of the encoder (checkpoint step, kwargs...).
        ch_names: the unified channels trials are projected to; fs: Hz of the trials.
        window_s, step_s: window length and hop in seconds.
        windows_per_block, blocks_per_call, seed: see `learned_features`.
        batch_windows: windows per signal-baseline call.
        centroids_to: if given (learned features only), also write the per-subject CDA
            centroids (`subject_centroids`, one block of `centroid_windows` windows per
            subject) to this path.
    """
    if (encoder is None) == (signal is None) or (signal and signal not in SIGNAL_FEATURES):
        raise ValueError(
            f"extract_to_file: give an encoder or a signal baseline in "
            f"{sorted(SIGNAL_FEATURES)}, not both (encoder {type(encoder).__name__}, "
            f"signal {signal!r})"
        )
    if euclidean_alignment and signal is None:
        raise ValueError("extract_to_file: euclidean_alignment applies to a signal baseline")
    window, step = int(round(window_s * fs)), int(round(step_s * fs))
    provenance = dict(
        dataset=dataset,
        data_dir=read_trials.data_dir,
        encoder=info,
        ch_names=list(ch_names),
        fs=fs,
        window=window,
        step=step,
        windows_per_block=windows_per_block,
        seed=seed,
    )
    if euclidean_alignment:  # only when set: files extracted before the option stay valid
        provenance["alignment"] = dict(kind="euclidean", per="subject", ridge=features.EA_RIDGE)
    done = workdir.feature_provenance(path) == workdir.canonical(provenance)
    if done and (centroids_to is None or workdir.centroids_complete(centroids_to)):
        print(f"[extract] cached {path}")
        return path
    trials, metadata = read_trials(dataset, ch_names, fs)
    table = window_table(trials, window, step)
    if encoder is None:
        feats = signal_features(
            trials,
            table,
            signal=signal,
            fs=fs,
            window=window,
            batch_windows=batch_windows,
            euclidean_alignment=euclidean_alignment,
        )
    else:
        feats = learned_features(
            encoder,
            trials,
            table,
            window=window,
            windows_per_block=windows_per_block,
            blocks_per_call=blocks_per_call,
            seed=seed,
        )
        if centroids_to is not None:
            workdir.save_centroids(
                centroids_to,
                **subject_centroids(
                    encoder,
                    trials,
                    table,
                    window=window,
                    windows_per_block=centroid_windows,
                    seed=seed,
                ),
            )
    workdir.save_features(
        path,
        table,
        feats,
        label_names=metadata["label_names"],
        valence_names=metadata["valence_names"],
        provenance=provenance,
    )
    print(f"[extract] wrote {path}: {feats.shape[0]} windows x {feats.shape[1]} features")
    return path


# ----------------------------------------------------------------------------- entry


def method_encoder(method: str, run: str, seed: int) -> tuple:
    """(Encoder, info) of a learned method from its pre-training run directory `run`;
    for "random", `run` is the run whose architecture is copied, initialised from `seed`."""
    encoder, info = checkpointing.load_encoder(workdir.encoder_dir(run))
    if method != "random":
        return encoder, dict(info, kind="pretrained")
    kwargs = {k: info[k] for k in MODEL_KWARGS if k in info}
    info = dict(
        kwargs, ch_names=list(info["ch_names"]), fs=float(info["fs"]), kind="random", seed=seed
    )
    return random_encoder(kwargs, seed), info


class SignalMethod(NamedTuple):
    """A signal-baseline method: its feature, windowing and per-subject alignment."""

    signal: str  # a key of SIGNAL_FEATURES
    windowing: tuple  # the config's (window, hop) fields
    euclidean_alignment: bool = False  # see `signal_features`


SIGNAL_METHODS = {
    "de": SignalMethod("de", ("window_s", "step_s")),  # the learned encoders' windows
    "waveform": SignalMethod("waveform", ("window_s", "step_s")),
    "de_paper": SignalMethod("de", ("de_paper_window_s", "de_paper_step_s")),  # paper's 1 s
    "de_ea": SignalMethod("de", ("window_s", "step_s"), euclidean_alignment=True),
}


def method_inputs(method: str, seed: int, config, root: str) -> dict:
    """Encoder (None for a signal baseline) or signal name, provenance info, channels, rate
    and windowing of a method."""
    ex = config.extract
    if method in SIGNAL_METHODS:
        signal, (window_field, step_field), aligned = SIGNAL_METHODS[method]
        return dict(
            encoder=None,
            signal=signal,
            euclidean_alignment=aligned,
            info=dict(kind=method),
            ch_names=channels.UNIFIED_SETS[ex.baseline_ch_set],
            fs=ex.baseline_fs,
            window_s=ex[window_field],
            step_s=ex[step_field],
        )
    # The random encoder copies the architecture of the first seed's run of `random_like`
    # (every seed has the same architecture), so it needs no run of its own seed.
    run = (
        workdir.run_dir(root, ex.random_like, workdir.method_seeds(config, ex.random_like)[0])
        if method == "random"
        else workdir.run_dir(root, method, seed)
    )
    encoder, info = method_encoder(method, run, seed + ex.random_seed_offset)
    fs = float(info["fs"])
    if int(round(ex.window_s * fs)) != encoder.n_times:
        raise ValueError(
            f"{method}: extract.window_s={ex.window_s} s at {fs} Hz != the "
            f"encoder's n_times={encoder.n_times}"
        )
    return dict(
        encoder=encoder,
        info=info,
        ch_names=info["ch_names"],
        fs=fs,
        window_s=ex.window_s,
        step_s=ex.step_s,
    )


def run(config, root: str):
    """Extracts every (method, seed, dataset) of the downstream config into ROOT/features/,
    with per-subject CDA centroids for `report.cda_methods`."""
    ex = config.extract
    read_trials = TrialReader(config.data_dir)
    for method in config.methods:
        for seed in workdir.method_seeds(config, method):
            inputs = method_inputs(method, seed, config, root)
            for dataset in [config.target] + list(config.sources):
                centroids = (
                    workdir.centroid_path(root, method, seed, dataset)
                    if method in config.report.cda_methods
                    else None
                )
                extract_to_file(
                    workdir.feature_path(root, method, seed, dataset),
                    dataset,
                    read_trials,
                    windows_per_block=ex.windows_per_block,
                    blocks_per_call=ex.blocks_per_call,
                    batch_windows=ex.baseline_batch_windows,
                    seed=ex.seed,
                    centroids_to=centroids,
                    centroid_windows=config.report.cda_windows_per_subject,
                    **inputs,
                )
