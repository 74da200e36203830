"""Unified channel sets and the fixed linear map from a dataset's montage onto one.

Every dataset is projected onto one unified channel set by a matrix W [C_dst, C_src]:
`eeg_dst = W @ eeg_src` (µV in, µV out). Rows of channels present in the source are
one-hot (identity); rows of missing channels are spherical-spline interpolation weights
(Perrin et al. 1989, "Spherical splines for scalp potential and current density
mapping", EEG Clin. Neurophysiol. 72(2):184-7), the method of MNE's
`interpolate_bads`, from electrode positions of MNE's `colin27_1005` template montage.
Source channels without a montage position (SEED's CB1/CB2) get zero weight.
"""

from __future__ import annotations

import functools
import re
from typing import Sequence

import numpy as np
from numpy.polynomial import legendre

# SEED's 62 channels in file order (shared/DATASETS.md §1) without CB1/CB2.
_SEED62 = (
    "FP1 FPZ FP2 AF3 AF4 F7 F5 F3 F1 FZ F2 F4 F6 F8 FT7 FC5 FC3 FC1 FCZ FC2 FC4 FC6 FT8 "
    "T7 C5 C3 C1 CZ C2 C4 C6 T8 TP7 CP5 CP3 CP1 CPZ CP2 CP4 CP6 TP8 P7 P5 P3 P1 PZ P2 P4 "
    "P6 P8 PO7 PO5 PO3 POZ PO4 PO6 PO8 CB1 O1 OZ O2 CB2"
).split()

UNIFIED_SETS: dict[str, list[str]] = {
    "seed60": [c for c in _SEED62 if c not in ("CB1", "CB2")],
    "standard_1020": ("FP1 FP2 F7 F3 FZ F4 F8 T7 C3 CZ C4 T8 P7 P3 PZ P4 P8 O1 O2").split(),
}

# Names real caps use that have no position in colin27_1005 (cerebellar electrodes).
NO_POSITION = frozenset({"CB1", "CB2"})

MONTAGE = "colin27_1005"
STIFFNESS = 4  # Perrin's m: smoothness order of the spline.
N_LEGENDRE_TERMS = 50  # truncation of the Legendre series of g(cos).
ALPHA = 1e-5  # ridge on the diagonal of G, as in MNE.


@functools.lru_cache(maxsize=1)
def montage_positions() -> dict[str, np.ndarray]:
    """Upper-case channel name -> unit vector [3] from the centre of the fitted head sphere."""
    import mne  # Lazy: mne import is slow and only needed when a matrix is built.

    ch_pos = mne.channels.make_standard_montage(MONTAGE).get_positions()["ch_pos"]
    names = [name.upper() for name in ch_pos]
    pos = np.stack([np.asarray(p, np.float64) for p in ch_pos.values()])
    centre = _fit_sphere_centre(pos)
    unit = pos - centre
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    return dict(zip(names, unit))


def _fit_sphere_centre(pos: np.ndarray) -> np.ndarray:
    """Least-squares sphere centre of points [N, 3]: |p|^2 = 2 p.c + (r^2 - |c|^2)."""
    design = np.concatenate([2 * pos, np.ones((len(pos), 1))], axis=1)
    solution, *_ = np.linalg.lstsq(design, np.sum(pos**2, axis=1), rcond=None)
    return solution[:3]


def spline_g(cosang: np.ndarray) -> np.ndarray:
    """Perrin's g(x) = 1/(4 pi) sum_n (2n+1) / (n(n+1))^m P_n(x), truncated; same shape."""
    n = np.arange(1, N_LEGENDRE_TERMS + 1, dtype=np.float64)
    coefs = (2 * n + 1) / ((n * (n + 1)) ** STIFFNESS * 4 * np.pi)
    return legendre.legval(cosang, np.concatenate([[0.0], coefs]))


def spline_interpolation(pos_from: np.ndarray, pos_to: np.ndarray) -> np.ndarray:
    """Spherical-spline weights [N_to, N_from] from unit positions [N_from, 3], [N_to, 3].

    Solves [G + alpha I, 1; 1^T, 0] [c; c0] = [v; 0] for a field v known at `pos_from`,
    so each row sums to 1 up to the ridge (a constant field is reproduced).
    """
    n_from = len(pos_from)
    g_from = spline_g(np.clip(pos_from @ pos_from.T, -1.0, 1.0))
    g_from[np.diag_indices(n_from)] += ALPHA
    system = np.block([[g_from, np.ones((n_from, 1))], [np.ones((1, n_from)), np.zeros((1, 1))]])
    g_to = spline_g(np.clip(pos_to @ pos_from.T, -1.0, 1.0))
    rhs = np.concatenate([g_to, np.ones((len(pos_to), 1))], axis=1)
    return rhs @ np.linalg.pinv(system)[:, :n_from]


_PREFIX = re.compile(r"^EEG[\s_]+")  # "EEG Fp1" (EDF labels of many amplifiers)
_SUFFIX = re.compile(r"-(REF|LE|RE|AVG|AR)$")  # referential suffixes: "Fp1-REF", "C3-LE"


def normalize_name(name: str) -> str:
    """A recording's channel label -> the upper-case montage name it stands for.

    Case-insensitive; strips surrounding spaces and dots (BCI2000 pads to 4 characters:
    `Fc5.` -> `FC5`, `Cz..` -> `CZ`), an `EEG ` prefix and a referential suffix
    (`EEG Fp1-REF` -> `FP1`, `C3-LE` -> `C3`). Bipolar labels like `FP1-F7` are kept.
    """
    upper = str(name).strip().strip(".").strip().upper()
    upper = _SUFFIX.sub("", _PREFIX.sub("", upper))
    return upper.strip().strip(".").strip()


def _check_names(names: Sequence[str], role: str) -> list[str]:
    """Normalized names (`normalize_name`); raises on duplicates or names unknown to the montage."""
    upper = [normalize_name(n) for n in names]
    known = montage_positions()
    unknown = [n for n in upper if n not in known and n not in NO_POSITION]
    if unknown:
        raise ValueError(
            f"{role} channel names {unknown} are unknown: not in mne's {MONTAGE} "
            f"montage nor in {sorted(NO_POSITION)}"
        )
    if len(set(upper)) != len(upper):
        dups = sorted({n for n in upper if upper.count(n) > 1})
        raise ValueError(f"duplicate {role} channel names {dups}")
    if not upper:
        raise ValueError(f"empty list of {role} channel names")
    return upper


def projection_matrix(src_names: Sequence[str], dst_names: Sequence[str]) -> np.ndarray:
    """The map from a montage onto a channel set: eeg_dst [C_dst, T] = W @ eeg_src [C_src, T].

    Args:
        src_names: the dataset's channel names (file order); normalized by `normalize_name`.
        dst_names: the unified channel names, e.g. UNIFIED_SETS["seed60"].

    Returns:
        W float32 [len(dst_names), len(src_names)]: one-hot rows for channels present in the
        source, spherical-spline rows for missing ones; zero columns for source channels
        without a montage position. Read-only (cached; copy before modifying).

    Raises:
        ValueError: unknown or duplicate names, or a missing channel that cannot be
        interpolated (no position, or fewer than 3 positioned source channels).
    """
    return _projection_matrix(tuple(src_names), tuple(dst_names))


@functools.lru_cache(maxsize=256)
def _projection_matrix(src_names: tuple, dst_names: tuple) -> np.ndarray:
    src = _check_names(src_names, "source")
    dst = _check_names(dst_names, "destination")
    weights = np.zeros((len(dst), len(src)), np.float64)
    missing = [i for i, name in enumerate(dst) if name not in src]
    for i, name in enumerate(dst):
        if name in src:
            weights[i, src.index(name)] = 1.0
    if missing:
        no_pos = [dst[i] for i in missing if dst[i] in NO_POSITION]
        if no_pos:
            raise ValueError(
                f"cannot interpolate {no_pos}: missing from the source channels "
                f"and without a position in {MONTAGE}"
            )
        positions = montage_positions()
        usable = [j for j, name in enumerate(src) if name not in NO_POSITION]
        if len(usable) < 3:
            raise ValueError(
                f"cannot interpolate {[dst[i] for i in missing]} from only "
                f"{len(usable)} positioned source channels {src}"
            )
        pos_from = np.stack([positions[src[j]] for j in usable])
        pos_to = np.stack([positions[dst[i]] for i in missing])
        weights[np.ix_(missing, usable)] = spline_interpolation(pos_from, pos_to)
    out = weights.astype(np.float32)
    out.setflags(write=False)
    return out
