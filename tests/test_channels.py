"""channels.py: identity rows, spherical-spline rows (Perrin et al. 1989), CB1/CB2, errors."""

import numpy as np
import pytest

from mdjpt_jax import channels

SEED62 = channels._SEED62
SEED60 = channels.UNIFIED_SETS["seed60"]
HELD_OUT = ("FZ", "C3", "PZ", "O1", "FT8", "TP7")


def _positions(names):
    pos = channels.montage_positions()
    return np.stack([pos[n] if n in pos else np.zeros(3) for n in names])


def test_unified_sets():
    assert len(SEED62) == 62 and len(SEED60) == 60
    assert "CB1" not in SEED60 and "CB2" not in SEED60
    assert SEED60[:3] == ["FP1", "FPZ", "FP2"] and SEED60[-3:] == ["O1", "OZ", "O2"]
    assert channels.UNIFIED_SETS["standard_1020"] == (
        "FP1 FP2 F7 F3 FZ F4 F8 T7 C3 CZ C4 T8 P7 P3 PZ P4 P8 O1 O2".split()
    )


def test_identity_on_present_channels():
    src = SEED62[::-1]  # any order, CB1/CB2 included
    matrix = channels.projection_matrix(src, SEED60)
    assert matrix.shape == (60, 62) and matrix.dtype == np.float32
    expected = np.zeros((60, 62), np.float32)
    expected[np.arange(60), [src.index(n) for n in SEED60]] = 1.0
    np.testing.assert_array_equal(matrix, expected)


def test_interpolated_rows_sum_to_one_and_cb_columns_zero():
    src = [n for n in SEED62 if n not in HELD_OUT]  # still holds CB1, CB2
    matrix = channels.projection_matrix(src, SEED60)
    missing = [SEED60.index(n) for n in HELD_OUT]
    np.testing.assert_allclose(matrix[missing].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(matrix[:, [src.index("CB1"), src.index("CB2")]], 0.0)
    present = [i for i in range(60) if i not in missing]
    np.testing.assert_array_equal(matrix[present].max(axis=1), 1.0)
    assert np.all(np.count_nonzero(matrix[missing], axis=1) == len(src) - 2)


def test_spline_matches_mne_reference():
    from mne.channels.interpolation import _make_interpolation_matrix

    src = [n for n in SEED60 if n not in HELD_OUT]
    matrix = channels.projection_matrix(src, SEED60)
    expected = _make_interpolation_matrix(_positions(src), _positions(HELD_OUT))
    np.testing.assert_allclose(matrix[[SEED60.index(n) for n in HELD_OUT]], expected, atol=1e-5)


@pytest.mark.parametrize(
    "field,tolerance",
    [
        (lambda p: p @ np.array([1.0, 2.0, -0.5]) + 3.0, 5e-4),  # linear: degree-1 harmonics
        (lambda p: p[:, 0] * p[:, 1], 1e-2),  # degree-2 harmonic xy
        (lambda p: 3 * p[:, 2] ** 2 - 1, 2e-2),  # degree-2 zonal harmonic
    ],
)
def test_spline_reproduces_smooth_fields_at_held_out_channels(field, tolerance):
    src = [n for n in SEED62 if n not in HELD_OUT]
    matrix = channels.projection_matrix(src, SEED60)
    values = field(_positions(src))
    values[[src.index("CB1"), src.index("CB2")]] = 1e6  # must not leak in
    got = matrix @ values
    want = field(_positions(SEED60))
    missing = [SEED60.index(n) for n in HELD_OUT]
    error = np.abs(got[missing] - want[missing]).max()
    assert error < tolerance * np.ptp(want), (error, np.ptp(want))
    np.testing.assert_allclose(np.delete(got, missing), np.delete(want, missing), rtol=1e-6)


def test_small_montage_to_seed60():
    src = ["AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4"]
    matrix = channels.projection_matrix(src, SEED60)
    assert matrix.shape == (60, 14)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-5)


def test_case_insensitive_and_cached():
    first = channels.projection_matrix(["c3", "Cz", "C4", "PZ"], ["FZ", "CZ"])
    again = channels.projection_matrix(("c3", "Cz", "C4", "PZ"), ("FZ", "CZ"))
    assert first is again
    np.testing.assert_array_equal(first[1], [0, 1, 0, 0])
    with pytest.raises(ValueError):
        first[0, 0] = 2.0  # read-only: cache stays correct


@pytest.mark.parametrize(
    "src,dst,match",
    [
        (["C3", "XX9"], ["C3"], "unknown"),
        (["C3", "CZ"], ["C3", "NOPE"], "unknown"),
        (["C3", "C3", "CZ"], ["C3"], "duplicate"),
        (["C3", "CZ", "C4", "PZ"], ["CB1"], "cannot interpolate"),
        (["C3", "CB1"], ["CZ"], "cannot interpolate"),
        (["C3"], [], "empty"),
    ],
)
def test_errors(src, dst, match):
    with pytest.raises(ValueError, match=match):
        channels.projection_matrix(src, dst)
