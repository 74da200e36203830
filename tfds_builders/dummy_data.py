"""Helpers of the `make_dummy_data.py` scripts that write fake official files.

Pytest-free, so a dataset folder's script imports no test machinery. Only fake downloads
use these writers; the builders only read.
"""

from __future__ import annotations

import argparse
import os
import pickle
from collections.abc import Mapping

import numpy as np


def dummy_data_args(doc: str, script: str, **options) -> argparse.Namespace:
    """Parses the command line of a `make_dummy_data.py`.

    Args:
      doc: the script's docstring (the --help text).
      script: the script's `__file__`; `out_dir` defaults to `dummy_data/` beside it.
      **options: `--NAME` flags with their defaults (the flag takes the default's type).

    Returns:
      The parsed arguments: `out_dir` and one attribute per option.
    """
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument(
        "out_dir",
        nargs="?",
        default=os.path.join(os.path.dirname(os.path.abspath(script)), "dummy_data"),
    )
    for name, default in options.items():
        parser.add_argument(f"--{name}", type=type(default), default=default)
    return parser.parse_args()


def write_pickle(path, obj, *, protocol: int = 2) -> str:
    """Pickles `obj` to `path` (folders created); protocol 2 is what Python 2 can read.

    Returns:
      `path` as a str.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


def write_mat(path, arrays: Mapping[str, np.ndarray], *, version: str = "5") -> None:
    """Writes `arrays` as MAT v5 (scipy, compressed) or v7.3 (HDF5 + MATLAB header)."""
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    if version == "5":
        from scipy import io as sio

        sio.savemat(path, dict(arrays), do_compression=True, oned_as="row")
        return
    if version != "7.3":
        raise ValueError(f"version must be '5' or '7.3', got {version!r}")
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        for name, array in arrays.items():
            f.create_dataset(name, data=np.asarray(array).T)
            f[name].attrs["MATLAB_class"] = np.bytes_("double")
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: fake. HDF5 schema 1.00 ."
    header = text.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as f:
        f.write(header.ljust(512, b"\0"))
