"""Feature extraction: sliding windows over every trial -> per-window features on disk.

Two kinds of features per window:
- learned: `Encoder.embed` of an exported encoder (`checkpointing.load_encoder`) or of a
  randomly initialised one of the same architecture (the report's baseline);
- signal baselines (`windows.SIGNAL_FEATURES`, no parameters): "de" =
  `features.differential_entropy` per channel and band, flattened to [C * 5]; "waveform" =
  `features.waveform_readout`, the band-passed raw waveform flattened to [C * T'].

Every method of a comparison is scored on the same windows: the learned encoders' window
and hop (`extract.window_s`, `step_s`) serve "de", "de_ea" and "waveform" too; "de_paper"
is DE on the paper's own 1 s windows, a separately labelled row. "de_ea" is DE after
per-subject Euclidean alignment (`features.euclidean_alignment`): the non-learned
cross-subject alignment that a learned one must beat (SIGNAL_METHODS).

Windows, blocks and the features of windows: `windows` (shared with fine-tuning, embedding
and the pre-training evaluation).

Output: one feature file per (method, seed, dataset) in the format of
`workdir.save_features` (features [N, D], per-window ids and start, label and valence names,
provenance: inputs, checkpoint step and encoder info), plus per-subject CDA centroids for
the report's methods. A file whose provenance equals the requested one is re-used.
"""

import os
from typing import NamedTuple

from mdjpt_jax import channels, checkpointing, features, windows, workdir
from mdjpt_jax.trials import load_trials

# ----------------------------------------------------------------------------- files


class TrialReader:
    """`trials.load_trials` that keeps the last (dataset, ch_names, fs) read in memory,
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
            self._value = load_trials(dataset, self.data_dir, list(ch_names), fs=fs)
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
        signal: the signal baseline (a key of windows.SIGNAL_FEATURES) when encoder is None.
        euclidean_alignment: align each subject's windows before `signal` (see
            `windows.signal_features`); recorded in the provenance when set.
        info: JSON-serializable description of the encoder (checkpoint step, kwargs...).
        ch_names: the unified channels trials are projected to; fs: Hz of the trials.
        window_s, step_s: window length and hop in seconds.
        windows_per_block, blocks_per_call, seed: see `windows.learned_features`.
        batch_windows: windows per signal-baseline call.
        centroids_to: if given (learned features only), also write the per-subject CDA
            centroids (`windows.subject_centroids`, one block of `centroid_windows` windows per
            subject) to this path.
    """
    if (encoder is None) == (signal is None) or (signal and signal not in windows.SIGNAL_FEATURES):
        raise ValueError(
            f"extract_to_file: give an encoder or a signal baseline in "
            f"{sorted(windows.SIGNAL_FEATURES)}, not both (encoder {type(encoder).__name__}, "
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
    table = windows.window_table(trials, window, step)
    if encoder is None:
        feats = windows.signal_features(
            trials,
            table,
            signal=signal,
            fs=fs,
            window=window,
            batch_windows=batch_windows,
            euclidean_alignment=euclidean_alignment,
        )
    else:
        feats = windows.learned_features(
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
                **windows.subject_centroids(
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
    kwargs = {k: info[k] for k in windows.MODEL_KWARGS if k in info}
    info = dict(
        kwargs, ch_names=list(info["ch_names"]), fs=float(info["fs"]), kind="random", seed=seed
    )
    return windows.random_encoder(kwargs, seed), info


class SignalMethod(NamedTuple):
    """A signal-baseline method: its feature, windowing and per-subject alignment."""

    signal: str  # a key of windows.SIGNAL_FEATURES
    windowing: tuple  # the config's (window, hop) fields
    euclidean_alignment: bool = False  # see `windows.signal_features`


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
