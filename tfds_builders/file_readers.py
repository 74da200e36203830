"""Readers shared by the FACED, DEAP, DREAMER and EmoEEG-MC builders.

Each reader turns a library error (truncated pickle, corrupt MAT, bad EDF) into an
`InvalidDataError` that names the file, so a broken download fails loudly.
Also holds the one place where a builder config turns a stored trial into the
record's `eeg` (raw: stored values as float32; preprocessed: `preprocess_trial`).
"""

from __future__ import annotations

import _compat_pickle
import os
import pickle
from typing import Sequence

import numpy as np

from tfds_builders import eeg_schema
from tfds_builders import preprocessing
from tfds_builders import validation
from tfds_builders.validation import fail


def _latin1_bytes(text, encoding):
    """`_codecs.encode(text, 'latin1')`: how a Python-3 protocol 0-2 pickle stores `bytes`."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(
            f"_codecs.encode is only allowed on text with encoding "
            f"'latin1', got {type(text).__name__} and {encoding!r}"
        )
    return text.encode("latin1")


# The only globals a pickle may name, and what each resolves to. The official DEAP (a dict
# of two float ndarrays) and FACED (one float ndarray) files need numpy's array rebuilders:
# `_reconstruct` (protocols 0-4, C or Fortran order) or `_frombuffer` (protocol 5, Python
# 3.14's default), under their numpy 1.x (`numpy.core`) and 2.x (`numpy._core`) names,
# plus `ndarray` and `dtype`; a Python-3 writer at protocol 0-2 (a re-saved DEAP file, the
# tests' fakes) also stores bytes as `_codecs.encode(text, 'latin1')`, allowed for latin1
# only. Dicts, lists, tuples and str are pickle opcodes and need no global.
# The functions are taken from what numpy itself pickles with, not from private modules.
_ARRAY_GLOBALS = {
    **{
        (module, "_reconstruct"): np.zeros(1).__reduce_ex__(4)[0]
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    },
    **{
        (module, "_frombuffer"): np.zeros(1).__reduce_ex__(5)[0]
        for module in ("numpy.core.numeric", "numpy._core.numeric")
    },
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
}


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild numpy arrays and plain containers.

    Unpickling calls whatever callable the file names; `find_class` is where the file names
    it, so refusing every global outside `_ARRAY_GLOBALS` means a downloaded pickle cannot run
    code (`builtins.open`, `os.system`, `subprocess.Popen`, ...): it is refused before any call.
    """

    def __init__(self, file, path):
        super().__init__(file, encoding="latin1")  # Python-2 str (DEAP's arrays) -> latin1 text.
        self.path = path

    def find_class(self, module, name):
        if (module, name) in _ARRAY_GLOBALS:
            return _ARRAY_GLOBALS[(module, name)]
        # Named as Python 3 reads a Python-2 name (`__builtin__.eval` is `builtins.eval`).
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        fail(
            self.path,
            f"refused global {module}.{name} in the pickle: only numpy arrays and "
            f"plain containers are unpickled, nothing in the file was run "
            f"(not the official download?)",
        )


def load_latin1_pickle(path):
    """Loads a (Python-2) pickle of numpy arrays / containers; raises naming the file.

    Uses `ArrayUnpickler` (`encoding='latin1'`): a file that names any other global is refused
    with an `InvalidDataError` and nothing in it is run.
    """
    validation.require_file(path)
    try:
        with open(path, "rb") as f:
            return ArrayUnpickler(f, path).load()
    except validation.InvalidDataError:
        raise
    except Exception as e:  # EOFError, UnpicklingError, ValueError... all mean "broken".
        fail(path, f"unreadable pickle ({type(e).__name__}: {e}); truncated or corrupt download?")


def load_mat(path) -> dict:
    """Loads a MAT v5 file with scipy; raises naming the file (also for v7.3/HDF5)."""
    from scipy import io as sio  # Imported lazily: only MAT builders need it.

    validation.require_file(path)
    try:
        return sio.loadmat(path)
    except NotImplementedError as e:  # scipy's message for MAT v7.3 (HDF5) files.
        fail(path, f"MAT v7.3 (HDF5) file is not the official format; re-download it ({e})")
    except Exception as e:
        fail(path, f"unreadable MAT file ({type(e).__name__}: {e}); truncated or corrupt download?")


def mat_field(struct, name: str, path):
    """Field `name` of a loadmat struct (np.void or [1, 1] record array), unwrapped.

    scipy wraps nested struct/cell values in [1, 1] object arrays; this strips that
    wrapping so callers see the value itself.
    """
    names = getattr(getattr(struct, "dtype", None), "names", None) or ()
    if name not in names:
        fail(path, f"missing key {name!r} in MAT struct (found {list(names)})")
    value = struct[name]
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.flat[0]
    return value


def mat_strings(cell, path, key: str) -> list[str]:
    """A MAT cell array of strings ([1, N] object array of char arrays) -> list of str."""
    try:
        return [str(np.asarray(c).squeeze()) for c in np.asarray(cell).ravel()]
    except Exception as e:
        fail(path, f"{key}: expected a cell array of strings ({e})")


def check_ratings(
    values, path, key: str, *, n: int, low: float, high: float, integer: bool = False
) -> np.ndarray:
    """Checks a self-rating vector: length n, finite, within [low, high] -> float32 [n]."""
    try:
        arr = np.asarray(values, dtype=np.float64).ravel()
    except Exception as e:
        fail(path, f"{key}: ratings are not numeric ({e})")
    if arr.shape != (n,):
        fail(path, f"{key}: expected {n} ratings, got shape {np.shape(values)}")
    if not np.isfinite(arr).all():
        fail(path, f"{key}: non-finite (NaN/Inf) rating(s) {arr.tolist()}")
    if (arr < low).any() or (arr > high).any():
        fail(path, f"{key}: rating(s) {arr.tolist()} out of range [{low:g}, {high:g}]")
    if integer and not np.equal(np.round(arr), arr).all():
        fail(path, f"{key}: rating(s) {arr.tolist()} are not integers")
    return arr.astype(np.float32)


def require_files(paths: Sequence) -> None:
    """Raises naming the first missing or empty file among `paths` (checked before reading)."""
    for path in paths:
        validation.require_file(path)


def binary_valence_label(rating: float, threshold: float) -> str:
    """Self-rated valence -> "positive" if rating >= threshold else "negative".

    `>=` follows TorchEEG's `Binary(threshold)` transform, the most used convention.
    """
    return "positive" if float(rating) >= threshold else "negative"


def output_fs(native_fs: float, config: eeg_schema.EegConfig) -> float:
    """Hz of the stored `eeg`: native for `raw`, `target_fs` for `preprocessed`."""
    return float(config.target_fs) if config.preprocess else float(native_fs)


def trial_eeg(eeg: np.ndarray, fs: float, config: eeg_schema.EegConfig) -> np.ndarray:
    """Stored trial [C, T] µV at fs Hz -> the record's float32 `eeg` for `config`."""
    if config.preprocess:
        return preprocessing.preprocess_trial(eeg, fs, target_fs=config.target_fs, band=config.band)
    return np.asarray(eeg, dtype=np.float32)


def relative(path, root) -> str:
    """`path` relative to the manual dir, with '/' separators (the record's `source_file`)."""
    return os.path.relpath(os.fspath(path), os.fspath(root)).replace(os.sep, "/")
