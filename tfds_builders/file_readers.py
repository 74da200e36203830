"""Readers shared by the FACED, DEAP, DREAMER and EmoEEG-MC builders.

Each reader turns a library error (truncated pickle, corrupt MAT, bad EDF) into an
`InvalidDataError` that names the file, so a broken download fails loudly.
Also holds the one place where a builder config turns a stored trial into the
record's `eeg` (raw: stored values as float32; preprocessed: `preprocess_trial`).
"""

from __future__ import annotations

import os
import pickle
from typing import Sequence

import numpy as np

from tfds_builders import eeg_schema
from tfds_builders import preprocessing
from tfds_builders import validation
from tfds_builders.validation import fail


def load_latin1_pickle(path):
  """Loads a (Python-2) pickle with `encoding='latin1'`; raises naming the file."""
  validation.require_file(path)
  try:
    with open(path, "rb") as f:
      return pickle.load(f, encoding="latin1")
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


def check_ratings(values, path, key: str, *, n: int, low: float, high: float,
                  integer: bool = False) -> np.ndarray:
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
