"""Writes a fake DEAP download (`data_preprocessed_python/sNN.dat`) from a seed.

Same container as the official files: a protocol-2 (Python-2 compatible) pickle of a dict
{'data': float64 [40, 40, n_times], 'labels': float64 [40, 4]} with ratings on 1-9
(tests also store them as float32 and/or in Fortran order).
The official trials have 8064 samples; tests use fewer to stay small. No real data.

  python -m tfds_builders.deap.make_dummy_data OUT_DIR [--subjects 2] [--n_times 8064]
"""

from __future__ import annotations

import os

import numpy as np

from tfds_builders.deap import deap_dataset_builder as deap
from tfds_builders import dummy_data


def subject_content(rng: np.random.Generator, n_times: int) -> dict:
    """One subject's fake dict: EEG-like noise (µV), peripheral rows, 1-9 ratings."""
    data = rng.normal(0.0, 10.0, size=(deap.N_TRIALS, deap.N_FILE_CHANNELS, n_times))
    labels = np.round(rng.uniform(1.0, 9.0, size=(deap.N_TRIALS, len(deap.RATING_NAMES))), 2)
    labels[0, 0], labels[1, 0] = 5.0, 4.99  # Pin both sides of the valence threshold.
    return {"data": data, "labels": labels}


def write(
    root,
    *,
    n_subjects: int = 2,
    n_times: int = deap.N_TIMES,
    seed: int = 0,
    dtype=np.float64,
    order: str = "C",
    protocol: int = 2,
) -> list[str]:
    """Writes `root/data_preprocessed_python/s01.dat ...`; returns the written paths.

    `dtype` and `order` ("C" or "F") are how both arrays are stored; the values (drawn as
    float64 from `seed`) are the same for every choice, up to the cast to `dtype`.
    """
    rng = np.random.default_rng(seed)
    paths = []
    for s in range(n_subjects):
        content = {
            k: np.asarray(v, dtype=dtype, order=order)
            for k, v in subject_content(rng, n_times).items()
        }
        path = os.path.join(root, "data_preprocessed_python", f"s{s + 1:02d}.dat")
        paths.append(dummy_data.write_pickle(path, content, protocol=protocol))
    return paths


def main():
    args = dummy_data.dummy_data_args(__doc__, __file__, subjects=2, n_times=deap.N_TIMES, seed=0)
    print(
        "\n".join(
            write(args.out_dir, n_subjects=args.subjects, n_times=args.n_times, seed=args.seed)
        )
    )


if __name__ == "__main__":
    main()
