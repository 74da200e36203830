"""Reader checks. Each raises `InvalidDataError` naming the file and the problem.

Never skip a bad record: a silently smaller dataset is worse than a failed build.
"""

from __future__ import annotations

import functools
import os
from typing import Iterable, Sequence

import numpy as np

# Channels that appear in real caps but have no position in the colin27_1005 montage.
EXTRA_CHANNELS = frozenset({"CB1", "CB2"})


class InvalidDataError(ValueError):
    """A raw file is missing, unreadable or inconsistent with its documented format."""


def fail(path, problem: str):
    raise InvalidDataError(f"{os.fspath(path)}: {problem}")


def require_file(path) -> None:
    """Raises if `path` is not an existing, non-empty file."""
    if not os.path.isfile(path):
        fail(
            path, "missing file (expected by the official layout; see MANUAL_DOWNLOAD_INSTRUCTIONS)"
        )
    if os.path.getsize(path) == 0:
        fail(path, "empty file (truncated download?)")


@functools.lru_cache(maxsize=1)
def known_channel_names() -> frozenset[str]:
    """Upper-case names of the 10-05 montage shipped with mne, plus EXTRA_CHANNELS."""
    import mne  # Imported lazily: slow, and only builders need it.

    montage = mne.channels.make_standard_montage("colin27_1005")
    return frozenset(c.upper() for c in montage.ch_names) | EXTRA_CHANNELS


def check_channel_names(names: Iterable[str], path) -> list[str]:
    """Upper-cases `names`; raises on unknown or duplicate names. Returns the list."""
    upper = [str(n).strip().upper() for n in names]
    unknown = [n for n in upper if n not in known_channel_names()]
    if unknown:
        fail(path, f"unknown channel name(s) {unknown} (not in the 10-05 system)")
    if len(set(upper)) != len(upper):
        fail(path, f"duplicate channel names in {upper}")
    return upper


def check_eeg(
    eeg, path, key: str, *, n_chans: int, min_times: int = 1, n_times: int | None = None
) -> np.ndarray:
    """Checks a [n_chans, T] trial: numeric 2-D, channel count, length, finite values.

    Returns the array unchanged (same dtype and values).
    """
    try:
        arr = np.asarray(eeg)
    except Exception as e:  # Object arrays from broken files.
        fail(path, f"{key}: not an array ({e})")
    if arr.dtype.kind not in "fiu" or arr.ndim != 2:
        fail(
            path,
            f"{key}: expected a 2-D numeric array [channels, time], got "
            f"dtype {arr.dtype} shape {arr.shape}",
        )
    if arr.shape[0] != n_chans:
        fail(path, f"{key}: expected {n_chans} channels, got shape {arr.shape}")
    if n_times is not None and arr.shape[1] != n_times:
        fail(path, f"{key}: expected {n_times} samples, got {arr.shape[1]} (truncated?)")
    if arr.shape[1] < min_times:
        fail(path, f"{key}: only {arr.shape[1]} samples, need at least {min_times} (truncated?)")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))
        fail(
            path,
            f"{key}: {len(bad)} non-finite (NaN/Inf) samples, first at "
            f"[channel {bad[0][0]}, sample {bad[0][1]}]",
        )
    return arr


def check_label(label, n_labels: int, path, key: str) -> int:
    """Checks an integer label in [0, n_labels); returns it as int."""
    if not float(label).is_integer() or not 0 <= int(label) < n_labels:
        fail(path, f"{key}: label {label!r} out of range [0, {n_labels})")
    return int(label)


def check_keys(found: Sequence[str], expected: Sequence[str], path) -> None:
    """Raises naming the expected keys that `found` lacks."""
    missing = [k for k in expected if k not in set(found)]
    if missing:
        fail(path, f"missing key(s) {missing}")
