"""Writes a fake `DREAMER.mat` (MAT v5, the official nested-struct layout) from a seed.

Layout as read by every public loader: `DREAMER` struct with `Data` = 1 x n cell of 1 x 1
subject structs (`Age`, `Gender`, `EEG`, `ECG`, `ScoreValence/Arousal/Dominance` [18, 1]);
`EEG.stimuli` / `EEG.baseline` = 18 x 1 cells of [time, 14] arrays at 128 Hz. Trials are a
few seconds long (the official ones are ~1-6 min). No real data.

  python -m tfds_builders.dreamer.make_dummy_data OUT_DIR [--subjects 2]
"""

from __future__ import annotations

import os

import numpy as np
from scipy import io as sio

from tfds_builders.dreamer import dreamer_dataset_builder as dreamer
from tfds_builders import dummy_data


def _cell(arrays) -> np.ndarray:
    """A MATLAB N x 1 cell from a list of arrays."""
    cell = np.empty((len(arrays), 1), dtype=object)
    for i, a in enumerate(arrays):
        cell[i, 0] = a
    return cell


def subject_struct(rng: np.random.Generator, min_s: int, max_s: int) -> dict:
    """One fake subject: variable-length stimuli [time, 14] (Emotiv-like µV with DC offset)."""
    fs = int(dreamer.FS)
    n_chans = len(dreamer.CHANNEL_NAMES)
    stimuli = [
        4200.0 + rng.normal(0, 15, size=(fs * int(rng.integers(min_s, max_s + 1)), n_chans))
        for _ in range(dreamer.N_CLIPS)
    ]
    baseline = [4200.0 + rng.normal(0, 15, size=(fs * 2, n_chans)) for _ in range(dreamer.N_CLIPS)]
    ecg = [rng.normal(0, 1, size=(256 * 2, 2)) for _ in range(dreamer.N_CLIPS)]
    scores = {
        f: rng.integers(1, 6, size=(dreamer.N_CLIPS, 1)).astype(np.float64)
        for f in ("ScoreValence", "ScoreArousal", "ScoreDominance")
    }
    scores["ScoreValence"][:2, 0] = [3.0, 2.0]  # Pin both sides of the valence threshold.
    return {
        "Age": "22",
        "Gender": "female",
        "EEG": {"baseline": _cell(baseline), "stimuli": _cell(stimuli)},
        "ECG": {"baseline": _cell(ecg), "stimuli": _cell(ecg)},
        **scores,
    }


def dreamer_struct(
    rng: np.random.Generator, n_subjects: int, min_s: int = 2, max_s: int = 4
) -> dict:
    """The top-level `DREAMER` struct as a dict (scipy writes dicts as MATLAB structs)."""
    data = np.empty((1, n_subjects), dtype=object)
    for s in range(n_subjects):
        data[0, s] = subject_struct(rng, min_s, max_s)
    electrodes = np.empty((1, len(dreamer.CHANNEL_NAMES)), dtype=object)
    for i, name in enumerate(dreamer.CHANNEL_NAMES):
        electrodes[0, i] = name
    return {
        "Data": data,
        "EEG_SamplingRate": dreamer.FS,
        "ECG_SamplingRate": 256.0,
        "EEG_Electrodes": electrodes,
        "noOfSubjects": float(n_subjects),
        "noOfVideoSequences": float(dreamer.N_CLIPS),
        "Disclaimer": "fake data",
        "Provider": "make_dummy_data",
        "Version": "1.0.2",
        "Acknowledgement": "none",
    }


def write(root, *, n_subjects: int = 2, seed: int = 0, top: dict | None = None) -> str:
    """Writes `root/DREAMER.mat` (from `top` if given); returns its path."""
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, dreamer.FILE_NAME)
    if top is None:
        top = dreamer_struct(np.random.default_rng(seed), n_subjects)
    sio.savemat(path, {"DREAMER": top}, format="5")
    return path


def main():
    args = dummy_data.dummy_data_args(__doc__, __file__, subjects=2, seed=0)
    print(write(args.out_dir, n_subjects=args.subjects, seed=args.seed))


if __name__ == "__main__":
    main()
