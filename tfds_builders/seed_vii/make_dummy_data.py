"""Writes a fake SEED-VII download (`EEG_preprocessed/`) from a seed.

Same container, names, keys, dtype and orientation as the official files:
`EEG_preprocessed/<subject>.mat` with variables '1'..'80' (written in shuffled order),
each float64 [62, T] µV at 200 Hz. MAT v5 by default (scipy writes names that start with
a digit); `version="7.3"` writes the HDF5 form a MATLAB re-save would give. Values are
random µV-scale noise; trials last just over 1 s instead of minutes.

  python -m tfds_builders.seed_vii.make_dummy_data OUT_DIR [--subjects 2] [--seed 0]
"""

from __future__ import annotations

import os

import numpy as np

from tfds_builders import seed_family
from tfds_builders.seed_vii import seed_vii_dataset_builder as seed_vii
from tfds_builders import dummy_data


def trial_samples(index: int) -> int:
    """Fake length of the trial with key index + 1 (200-279 samples)."""
    return 200 + index


def write(root, *, subjects=(1, 2), seed: int = 0, version: str = "5") -> list[str]:
    """Writes `root/EEG_preprocessed/<subject>.mat`; returns the written paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for subject in subjects:
        arrays = {
            str(i + 1): rng.normal(0.0, 20.0, (seed_family.N_CHANS, trial_samples(i)))
            for i in rng.permutation(seed_vii.N_TRIALS)
        }
        paths.append(os.path.join(root, "EEG_preprocessed", f"{subject}.mat"))
        dummy_data.write_mat(paths[-1], arrays, version=version)
    return paths


def main():
    args = dummy_data.dummy_data_args(__doc__, __file__, subjects=2, seed=0, version="5")
    print(
        "\n".join(
            write(
                args.out_dir,
                subjects=range(1, args.subjects + 1),
                seed=args.seed,
                version=args.version,
            )
        )
    )


if __name__ == "__main__":
    main()
