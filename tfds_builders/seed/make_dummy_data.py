"""Writes a fake SEED download (`Preprocessed_EEG/`) from a seed.

Same containers, names, keys, dtype and orientation as the official files: MAT v5
`<subject>_<YYYYMMDD>.mat` with variables `<initials>_eeg1..15` (written in shuffled
order, so readers must parse the numbers), each float64 [62, 200 s + 1] µV, and
`label.mat` with the official label vector. Values are random µV-scale noise; trials
last 1-2 s instead of ~4 min.

  python -m tfds_builders.seed.make_dummy_data OUT_DIR [--subjects 2] [--seed 0]
"""

from __future__ import annotations

import os

import numpy as np

from tfds_builders import seed_family
from tfds_builders.seed import seed_dataset_builder as seed_builder
from tfds_builders import dummy_data

OFFICIAL_LABELS = (1, 0, -1, -1, 0, 1, -1, 0, 1, 1, 0, -1, 0, 1, -1)  # label.mat, all sessions.
# Three recording dates per subject; session order = date order.
_DATES = ("20140413", "20131027", "20131107")


def trial_seconds(subject: int, session: int, trial: int) -> int:
    """Fake duration (1 or 2 s) of a trial; varies so that mis-ordered trials are caught."""
    return 1 + (subject + session + trial) % 2


def write(root, *, subjects=(1, 2), seed: int = 0, version: str = "5") -> list[str]:
    """Writes `root/Preprocessed_EEG/*.mat`; returns the written paths."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "Preprocessed_EEG")
    paths = [os.path.join(folder, "label.mat")]
    dummy_data.write_mat(paths[0], {"label": np.array([OFFICIAL_LABELS], float)}, version=version)
    for subject in subjects:
        initials = "ab" if subject % 2 else "xyz"
        for session, date in enumerate(sorted(_DATES)):
            arrays = {}
            for trial in rng.permutation(seed_builder.N_TRIALS):
                n_times = 200 * trial_seconds(subject, session, trial) + 1
                arrays[f"{initials}_eeg{trial + 1}"] = rng.normal(
                    0.0, 20.0, (seed_family.N_CHANS, n_times)
                )
            paths.append(os.path.join(folder, f"{subject}_{date}.mat"))
            dummy_data.write_mat(paths[-1], arrays, version=version)
    with open(os.path.join(folder, "readme.txt"), "w") as f:
        f.write("Fake SEED download for tests.\n")
    return paths


def main():
    args = dummy_data.dummy_data_args(__doc__, __file__, subjects=2, seed=0)
    print("\n".join(write(args.out_dir, subjects=range(1, args.subjects + 1), seed=args.seed)))


if __name__ == "__main__":
    main()
