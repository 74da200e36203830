"""Writes a fake FACED download (`Processed_data/subNNN.pkl`) from a seed.

Same container, dtype and shape as the official files (latin1-compatible pickle of a
float64 ndarray [28, 32, n_times]; official n_times = 7500, tests use fewer; tests also
store it as float32 and/or in Fortran order). The values are random µV-scale noise, no
real data.

  python -m tfds_builders.faced.make_dummy_data OUT_DIR [--subjects 2] [--n_times 7500]
"""

from __future__ import annotations

import os

import numpy as np

from tfds_builders.faced import faced_dataset_builder as faced
from tfds_builders import dummy_data


def subject_array(rng: np.random.Generator, n_times: int = faced.N_TIMES) -> np.ndarray:
    """One subject's fake Processed_data array [28, 32, n_times] float64 (µV)."""
    shape = (faced.N_VIDEOS, len(faced.CHANNEL_NAMES), n_times)
    return rng.normal(0.0, 20.0, size=shape)


def write(
    root,
    *,
    n_subjects: int = 2,
    n_times: int = faced.N_TIMES,
    seed: int = 0,
    dtype=np.float64,
    order: str = "C",
    protocol: int = 2,
) -> list[str]:
    """Writes `root/Processed_data/sub000.pkl ...`; returns the written paths.

    `dtype` and `order` ("C" or "F") are how the array is stored; the values (drawn as
    float64 from `seed`) are the same for every choice, up to the cast to `dtype`.
    """
    rng = np.random.default_rng(seed)
    paths = []
    for s in range(n_subjects):
        array = np.asarray(subject_array(rng, n_times), dtype=dtype, order=order)
        path = os.path.join(root, "Processed_data", f"sub{s:03d}.pkl")
        paths.append(dummy_data.write_pickle(path, array, protocol=protocol))
    return paths


def main():
    args = dummy_data.dummy_data_args(__doc__, __file__, subjects=2, n_times=faced.N_TIMES, seed=0)
    print(
        "\n".join(
            write(args.out_dir, n_subjects=args.subjects, n_times=args.n_times, seed=args.seed)
        )
    )


if __name__ == "__main__":
    main()
