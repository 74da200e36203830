"""Embedding a user's recording with an exported encoder: `mdjpt_jax.embed` and --mode=embed.

    result = mdjpt_jax.embed(raw, "runs/demo/runs/joint/seed0/encoder")
    result.features   # [W, D] float32, one row per window
    result.times      # [W] s, window starts from the first sample given
    print(result.report.summary())

The path from samples to features is the encoder's own, with no second copy of any step:
channels through the contract (contract.map_channels), the builders' preprocessing
(tfds_builders.preprocessing.preprocess_trial: band-pass, resampling to the encoder's
rate), extraction's windowing (windows.window_table) and its stratified-normalization
blocks (windows.learned_features) with ONE subject per block: everything passed in one
call is treated as one subject's data, so embed each subject separately. A long
recording's blocks go `blocks_per_call` at a time (at least one per local device) into
one encoder call split over this process's devices.

The module is named `embedding` (not `embed`) so that `mdjpt_jax.embed` stays the function.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from mdjpt_jax import checkpointing, contract, windows, workdir
from mdjpt_jax.configs.downstream import EXTRACT_DEFAULTS
from tfds_builders import preprocessing

# Extraction's defaults, read from the one table the downstream config's `extract` block is
# built from: windows every step_s, blocks of windows_per_block windows of one subject in a
# seeded order, blocks_per_call blocks per encoder call.
STEP_S = EXTRACT_DEFAULTS["step_s"]
WINDOWS_PER_BLOCK = EXTRACT_DEFAULTS["windows_per_block"]
BLOCKS_PER_CALL = EXTRACT_DEFAULTS["blocks_per_call"]
SEED = EXTRACT_DEFAULTS["seed"]


@dataclasses.dataclass
class Embedding:
    """What `embed` returns.

    Attributes:
        features: [W, D] float32 for a recording, [N, W, D] for N epochs.
        times: [W] float64, window start times in s from the first sample given (the same
            for every epoch).
        report: the channel report (contract.ChannelReport).
        provenance: JSON-serializable description of the encoder and the settings.
    """

    features: np.ndarray
    times: np.ndarray
    report: contract.ChannelReport
    provenance: dict


def load_encoder(path: str) -> tuple:
    """The one public loader: (Encoder, info) of an exported encoder directory."""
    return checkpointing.load_encoder(os.fspath(path))


def _resolve_encoder(encoder) -> tuple:
    if isinstance(encoder, (str, os.PathLike)):
        encoder_dir = os.path.abspath(os.fspath(encoder))
        model, info = load_encoder(encoder_dir)
        return model, dict(info, encoder_dir=encoder_dir)
    if isinstance(encoder, tuple) and len(encoder) == 2 and isinstance(encoder[1], dict):
        return encoder
    raise TypeError(
        "encoder must be an exported encoder directory or the (Encoder, info) "
        f"pair from mdjpt_jax.load_encoder, not {type(encoder).__name__}"
    )


def _mne_input(data, ch_names, fs) -> tuple:
    """(eeg µV [N, C, T], names, fs, excluded) of an mne Raw or Epochs: EEG channels not
    marked bad; the others are listed as excluded."""
    import mne

    if ch_names is not None:
        raise ValueError(
            "ch_names is taken from the mne object; rename channels with "
            "raw.rename_channels instead of passing ch_names"
        )
    sfreq = float(data.info["sfreq"])
    if fs is not None and not np.isclose(float(fs), sfreq):
        raise ValueError(
            f"fs={fs} Hz disagrees with the mne object's sampling rate "
            f"{sfreq} Hz; leave fs unset for mne objects"
        )
    picks = mne.pick_types(data.info, eeg=True, exclude="bads")
    types = data.get_channel_types()
    excluded = {}
    for i, name in enumerate(data.ch_names):
        if name in data.info["bads"]:
            excluded[name] = "marked bad"
        elif i not in picks:
            excluded[name] = f"channel type {types[i]}"
    if len(picks) == 0:
        raise ValueError(f"no good EEG channel in {data.ch_names} (types {types})")
    eeg = data.get_data(picks=picks, units="uV")
    eeg = eeg[None] if isinstance(data, mne.io.BaseRaw) else eeg
    return eeg, [data.ch_names[i] for i in picks], sfreq, excluded


def _as_epochs(data, ch_names, fs) -> tuple:
    """(eeg µV float64 [N, C, T], names, fs Hz, excluded, is_epochs)."""
    import mne

    if isinstance(data, (mne.io.BaseRaw, mne.BaseEpochs)):
        eeg, names, fs, excluded = _mne_input(data, ch_names, fs)
        return eeg, names, fs, excluded, isinstance(data, mne.BaseEpochs)
    eeg = np.asarray(data, np.float64)
    if ch_names is None or fs is None:
        raise ValueError("a numpy array needs ch_names and fs (Hz); its unit must be µV")
    if eeg.ndim not in (2, 3):
        raise ValueError(f"data of shape {eeg.shape}: expected [C, T] or [N, C, T] µV")
    if eeg.shape[-2] != len(ch_names):
        raise ValueError(
            f"data has {eeg.shape[-2]} channels but ch_names has {len(ch_names)} names"
        )
    return (eeg if eeg.ndim == 3 else eeg[None]), list(ch_names), fs, {}, eeg.ndim == 3


def _check_fs(fs, band: tuple) -> float:
    fs = float(fs)
    if not np.isfinite(fs) or fs <= 0:
        raise ValueError(f"sampling rate fs={fs} Hz is not a positive number")
    if fs < 2 * band[1]:
        raise ValueError(
            f"sampling rate fs={fs:g} Hz cannot carry the encoder's band "
            f"{band[0]:g}-{band[1]:g} Hz (needs fs > {2 * band[1]:g} Hz); "
            "is fs the rate of these samples?"
        )
    return fs


def _check_finite(eeg: np.ndarray, names: list, fs: float, is_epochs: bool) -> None:
    """Raises naming the time (s), channel (and epoch) of the first NaN/Inf sample."""
    bad = ~np.isfinite(eeg)
    if not bad.any():
        return
    epoch, channel, sample = min(np.argwhere(bad).tolist(), key=lambda e: (e[0], e[2], e[1]))
    where = f"epoch {epoch}, " if is_epochs else ""
    raise ValueError(
        f"{int(bad.sum())} NaN/Inf samples; the first at t = {sample / fs:.3f} s "
        f"({where}sample {sample}, channel {names[channel]}). Interpolate or "
        "crop them before embedding."
    )


def embed(
    data,
    encoder,
    *,
    ch_names=None,
    fs=None,
    window_s=None,
    step_s=None,
    max_missing: float = contract.MAX_MISSING_FRACTION,
    windows_per_block: int = WINDOWS_PER_BLOCK,
    blocks_per_call: int = BLOCKS_PER_CALL,
    seed: int = SEED,
    verbose: bool = True,
) -> Embedding:
    """Features of one subject's recording under an exported encoder.

    Args:
        data: mne.io.Raw or mne.Epochs (volts, converted), or a numpy array [C, T] or
            [N, C, T] in µV (then `ch_names` and `fs` are required).
        encoder: an exported encoder directory, or the pair from `load_encoder`.
        ch_names: the array's channel labels (any case; BCI2000 dots, `EEG ` prefixes and
            `-REF`/`-LE` suffixes are normalized).
        fs: the array's sampling rate in Hz.
        window_s: window length in s; must be the encoder's (default).
        step_s: hop between windows in s (default STEP_S, as in extraction).
        max_missing: largest fraction of the encoder's channels that may be interpolated.
        windows_per_block, seed: stratified-normalization blocks, see windows.py.
        blocks_per_call: blocks per encoder call, split over the local devices (rounded
            up to a multiple of their count); throughput only, see
            windows.learned_features.
        verbose: print the channel report and show a progress bar.

    Returns:
        Embedding: features [W, D] ([N, W, D] for epochs), times [W] s, report, provenance.

    Raises:
        ValueError: channels outside the contract, NaN/Inf samples (with the first one's
            time), an implausible or inconsistent `fs`, a window other than the encoder's,
            or a recording shorter than one window.
    """
    model, info = _resolve_encoder(encoder)
    enc_fs = float(info["fs"])
    band = tuple(info["band"])
    window = int(model.n_times)
    if window_s is not None and int(round(window_s * enc_fs)) != window:
        raise ValueError(
            f"window_s={window_s} s is not the encoder's window: {window} "
            f"samples at {enc_fs:g} Hz = {window / enc_fs:g} s"
        )
    step_s = STEP_S if step_s is None else float(step_s)
    step = int(round(step_s * enc_fs))
    if step < 1:
        raise ValueError(f"step_s={step_s} s is shorter than one sample at {enc_fs:g} Hz")
    eeg, names, fs, excluded, is_epochs = _as_epochs(data, ch_names, fs)
    fs = _check_fs(fs, band)
    channel_map = contract.map_channels(
        names, info["ch_names"], max_missing=max_missing, excluded=excluded
    )
    if verbose:
        print(channel_map.report.summary())
    _check_finite(eeg, names, fs, is_epochs)
    x = channel_map.apply(preprocessing.preprocess_trial(eeg, fs, target_fs=enc_fs, band=band))
    contract.check_amplitude(x, where="embed")
    if x.shape[-1] < window:
        raise ValueError(
            f"{x.shape[-1] / enc_fs:.2f} s of signal per "
            f"{'epoch' if is_epochs else 'recording'} is shorter than the "
            f"encoder's {window / enc_fs:g} s window"
        )
    trials = [
        dict(eeg=trial, subject=0, session=0, trial=i, stimulus=0, label=0, valence=0)
        for i, trial in enumerate(x)
    ]
    table = windows.window_table(trials, window, step)
    feats = windows.learned_features(
        model,
        trials,
        table,
        window=window,
        windows_per_block=windows_per_block,
        blocks_per_call=blocks_per_call,
        seed=seed,
        progress=verbose,
    )
    n_windows = len(windows.window_starts(x.shape[-1], window, step))
    feats = feats.reshape(len(x), n_windows, -1)
    provenance = dict(
        encoder={k: v for k, v in info.items() if k != "ch_names"},
        fs_in=fs,
        fs=enc_fs,
        band=list(band),
        window_s=window / enc_fs,
        step_s=step / enc_fs,
        windows_per_block=windows_per_block,
        seed=seed,
        units="µV",
        preprocessing=preprocessing.describe(enc_fs, band),
    )
    return Embedding(
        features=feats if is_epochs else feats[0],
        times=table["start"][:n_windows] / enc_fs,
        report=channel_map.report,
        provenance=provenance,
    )


# ----------------------------------------------------------------------------- CLI


def read_recording(
    path: str, *, bids_subject=None, bids_task=None, bids_session=None, bids_run=None
):
    """An mne Raw of any file mne.io.read_raw opens, or of a BIDS root's recording."""
    import mne

    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or directory")
    if bids_subject is None:
        if os.path.isdir(path) and not path.rstrip("/").endswith(".ds"):
            raise ValueError(
                f"{path} is a directory: pass --bids_subject (and --bids_task) "
                "for a BIDS root, or a recording file"
            )
        return mne.io.read_raw(path, preload=True, verbose="error")
    import mne_bids

    bids_path = mne_bids.BIDSPath(
        root=path,
        subject=bids_subject,
        task=bids_task,
        session=bids_session,
        run=bids_run,
        datatype="eeg",
    )
    return mne_bids.read_raw_bids(bids_path, verbose="error")


def save_embedding(path: str, result: Embedding) -> None:
    """npz: features, times (s), channel_report (JSON), provenance (JSON); atomic."""
    workdir.save_npz(
        path,
        features=result.features.astype(np.float32),
        times=result.times,
        channel_report=np.asarray(result.report.to_json()),
        provenance=np.asarray(json.dumps(result.provenance, sort_keys=True)),
    )


def run(*, encoder: str, input_path: str, output: str, **bids) -> str:
    """--mode=embed: reads `input_path`, embeds it with `encoder`, writes `output` (npz)."""
    from mdjpt_jax import encoder_info

    raw = read_recording(input_path, **bids)
    result = embed(raw, encoder)
    result.provenance.update(
        input=os.path.abspath(input_path),
        bids={k: v for k, v in bids.items() if v is not None},
        code_version=encoder_info.code_version(),
    )
    save_embedding(output, result)
    print(
        f"[embed] wrote {output}: {result.features.shape[0]} windows x "
        f"{result.features.shape[-1]} features"
    )
    return output
