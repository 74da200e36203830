"""Writes a fake SEED-IV download (`eeg_raw_data/{1,2,3}/`) from a seed.

Same containers, names, keys, dtype and orientation as the official files: MAT v5
`eeg_raw_data/<session>/<subject>_<YYYYMMDD>.mat` with variables `<initials>_eeg1..24`
(written in shuffled order), each float64 [62, T] µV at 200 Hz. Values are random
µV-scale noise; trials last just over 1 s instead of minutes.

  python -m tfds_builders.seed_iv.make_dummy_data OUT_DIR [--subjects 2] [--seed 0]
"""

from __future__ import annotations

import os

import numpy as np

from tfds_builders import seed_family
from tfds_builders.seed_iv import seed_iv_dataset_builder as seed_iv
from tfds_builders import dummy_data


def trial_samples(session: int, trial: int) -> int:
    """Fake length of a trial (200-271 samples); distinct per (session, trial)."""
    return 200 + session * seed_iv.N_TRIALS + trial


def write(root, *, subjects=(1, 2), seed: int = 0, version: str = "5") -> list[str]:
    """Writes `root/eeg_raw_data/<session>/<subject>_<date>.mat`; returns the paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for subject in subjects:
        initials = "cz" if subject % 2 else "tyc"
        for session in range(seed_iv.N_SESSIONS):
            arrays = {}
            for trial in rng.permutation(seed_iv.N_TRIALS):
                shape = (seed_family.N_CHANS, trial_samples(session, trial))
                arrays[f"{initials}_eeg{trial + 1}"] = rng.normal(0.0, 20.0, shape)
            date = f"2016{session + 5:02d}{subject + 10:02d}"
            paths.append(
                os.path.join(root, "eeg_raw_data", str(session + 1), f"{subject}_{date}.mat")
            )
            dummy_data.write_mat(paths[-1], arrays, version=version)
    return paths


def main():
    args = dummy_data.dummy_data_args(__doc__, __file__, subjects=2, seed=0)
    print("\n".join(write(args.out_dir, subjects=range(1, args.subjects + 1), seed=args.seed)))


if __name__ == "__main__":
    main()
