"""Writes a fake SEED-V download (`EEG_raw/<subject>_<session>_<YYYYMMDD>.cnt`) from a seed.

mne can read Neuroscan CNT but not write it, so each fake `.cnt` holds a small JSON
description (seed, length, channel names) instead of CNT bytes, and `read_raw_cnt` below
stands in for `mne.io.read_raw_cnt` in tests: it synthesizes the described recording as
an `mne.io.RawArray` (66 channels in volts at 1000 Hz: the 62 SEED channels with M1, M2,
VEO, HEO among them), so the builder's code after the read is the real one. Trials are
cut with SHORT_TRIAL_SECONDS (about 1 s each) instead of the official minutes-long table.

  python -m tfds_builders.seed_v.make_dummy_data OUT_DIR [--subjects 2] [--seed 0]
"""

from __future__ import annotations

import json
import os

import numpy as np

from tfds_builders import seed_family
from tfds_builders.seed_v import seed_v_dataset_builder as seed_v
from tfds_builders import dummy_data

FS = 1000.0
# The CNT's 66 channels: SEED order with the mastoids and EOG channels interleaved.
CNT_CHANNELS = (
    seed_family.CHANNEL_NAMES[:32]
    + ("M1",)
    + seed_family.CHANNEL_NAMES[32:41]
    + ("M2",)
    + seed_family.CHANNEL_NAMES[41:]
    + ("VEO", "HEO")
)


def _short_table(session: int):
    starts = tuple(round(0.2 + 1.2 * i, 3) for i in range(seed_v.N_TRIALS))
    ends = tuple(
        round(s + 1.0 + 0.01 * (session * seed_v.N_TRIALS + i), 3) for i, s in enumerate(starts)
    )
    return starts, ends


# Same structure as seed_v.TRIAL_SECONDS; durations 1.00-1.44 s, distinct per (session, trial).
SHORT_TRIAL_SECONDS = tuple(_short_table(s) for s in range(seed_v.N_SESSIONS))


def write(root, *, subjects=(1, 2), seed: int = 0) -> list[str]:
    """Writes `root/EEG_raw/*.cnt` (fake, JSON) long enough for SHORT_TRIAL_SECONDS."""
    paths = []
    for subject in subjects:
        for session in range(seed_v.N_SESSIONS):
            date = f"2018{session + 4:02d}{subject + 10:02d}"
            path = os.path.join(root, "EEG_raw", f"{subject}_{session + 1}_{date}.cnt")
            last_end = SHORT_TRIAL_SECONDS[session][1][-1]
            write_recording(
                path, seed=seed * 1000 + subject * 10 + session, n_times=int((last_end + 0.5) * FS)
            )
            paths.append(path)
    return paths


def write_recording(
    path,
    *,
    seed: int,
    n_times: int,
    ch_names=CNT_CHANNELS,
    fs: float = FS,
    nan_at: tuple[int, int] | None = None,
) -> None:
    """Writes one fake `.cnt` description (see the module docstring)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(
            {
                "format": "fake Neuroscan CNT",
                "seed": seed,
                "n_times": n_times,
                "ch_names": list(ch_names),
                "fs": fs,
                "nan_at": nan_at,
            },
            f,
        )


def recording_uv(path) -> tuple[np.ndarray, list[str], float]:
    """The fake recording `path` describes: float64 [C, T] µV, channel names, fs in Hz."""
    with open(path) as f:
        spec = json.load(f)
    rng = np.random.default_rng(spec["seed"])
    data = rng.normal(0.0, 20.0, (len(spec["ch_names"]), spec["n_times"]))
    if spec["nan_at"]:
        data[tuple(spec["nan_at"])] = np.nan
    return data, spec["ch_names"], float(spec["fs"])


def read_raw_cnt(input_fname, **kwargs):
    """Test stand-in for `mne.io.read_raw_cnt` reading the fake files (volts, like mne)."""
    import mne

    data, ch_names, fs = recording_uv(input_fname)
    info = mne.create_info(list(ch_names), fs, ch_types="eeg")
    return mne.io.RawArray(data * 1e-6, info, verbose="error")


def main():
    args = dummy_data.dummy_data_args(__doc__, __file__, subjects=2, seed=0)
    print("\n".join(write(args.out_dir, subjects=range(1, args.subjects + 1), seed=args.seed)))


if __name__ == "__main__":
    main()
