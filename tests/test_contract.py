"""contract.py + channels.normalize_name: the channel contract on a real BCI2000 recording."""

import os
import warnings

import mne
import numpy as np
import pytest

from mdjpt_jax import channels, contract

EDF = os.path.join(os.path.dirname(__file__), "data", "eegmmidb_S001R02.edf")
SEED60 = channels.UNIFIED_SETS["seed60"]


@pytest.fixture(scope="module")
def edf_names():
    return mne.io.read_raw_edf(EDF, verbose="error").ch_names


@pytest.mark.parametrize(
    "label, expected",
    [
        ("Fc5.", "FC5"),
        ("Cz..", "CZ"),
        ("T10.", "T10"),
        ("fp1", "FP1"),
        (" Oz ", "OZ"),
        ("EEG Fp1-REF", "FP1"),
        ("EEG C3-LE", "C3"),
        ("Fpz-REF", "FPZ"),
        ("EEG_O2", "O2"),
        ("FP1-F7", "FP1-F7"),
    ],
)  # a bipolar derivation is not a referential suffix
def test_normalize_name(label, expected):
    assert channels.normalize_name(label) == expected


def test_bci2000_recording_maps_onto_seed60(edf_names):
    assert len(edf_names) == 64 and "Fc5." in edf_names and "Cz.." in edf_names
    mapping = contract.map_channels(edf_names, SEED60)
    report = mapping.report
    assert report.interpolated == ["PO5", "PO6"]  # EEGMMIDB has no PO5/PO6
    assert report.matched == [c for c in SEED60 if c not in ("PO5", "PO6")]
    assert list(report.dropped) == ["Af7.", "Afz.", "Af8.", "T9..", "T10.", "Iz.."]
    assert report.renamed["Fc5."] == "FC5" and report.renamed["Cz.."] == "CZ"
    matrix = mapping.matrix
    assert matrix.shape == (60, 64)
    for row, name in enumerate(SEED60):  # identity rows, by hand
        if name in report.matched:
            expected = np.zeros(64)
            expected[[channels.normalize_name(n) for n in edf_names].index(name)] = 1.0
            np.testing.assert_array_equal(matrix[row], expected)
    # Interpolated rows reproduce a constant field and lean on the nearest electrodes.
    for name in ("PO5", "PO6"):
        row = matrix[SEED60.index(name)]
        assert abs(row.sum() - 1.0) < 1e-3
        nearest = edf_names[int(np.argmax(row))]
        assert channels.normalize_name(nearest) in {
            "PO7",
            "PO3",
            "P5",
            "O1",
            "PO4",
            "PO8",
            "P6",
            "O2",
        }
    eeg = np.random.default_rng(0).standard_normal((2, 64, 10))
    np.testing.assert_allclose(
        mapping.apply(eeg), np.einsum("ds,nst->ndt", matrix, eeg), rtol=1e-5, atol=1e-5
    )


def test_builders_unification_uses_the_same_names(edf_names):
    clean = [channels.normalize_name(n) for n in edf_names]
    np.testing.assert_array_equal(
        channels.projection_matrix(edf_names, SEED60), channels.projection_matrix(clean, SEED60)
    )
    np.testing.assert_array_equal(
        contract.map_channels(edf_names, SEED60).matrix, channels.projection_matrix(clean, SEED60)
    )


def test_too_many_missing_channels_raise_naming_them():
    present = SEED60[:25]  # 35 of 60 missing > 30
    with pytest.raises(ValueError, match=r"lacks 35 of .* missing \[.*'O2'\]"):
        contract.map_channels(present, SEED60)
    assert contract.map_channels(SEED60[:30], SEED60).report.interpolated == SEED60[30:]
    assert len(contract.map_channels(present, SEED60, max_missing=1.0).report.matched) == 25


def test_unknown_and_duplicate_names_raise_naming_them():
    with pytest.raises(ValueError, match=r"\['Foo1'\].*[Rr]ename"):
        contract.map_channels(SEED60 + ["Foo1"], SEED60)
    with pytest.raises(ValueError, match="duplicate"):
        contract.map_channels(SEED60 + ["Cz.."], SEED60)


def test_no_position_channels_are_dropped_not_refused():
    report = contract.map_channels(SEED60 + ["CB1"], SEED60).report
    assert report.dropped == {"CB1": "no montage position"} and not report.interpolated


def test_amplitude_plausibility_warns_on_unit_errors():
    uv = 20.0 * np.random.default_rng(1).standard_normal((4, 500))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert 15 < contract.check_amplitude(uv, where="test") < 25
    with pytest.warns(contract.AmplitudeWarning, match="volts"):
        contract.check_amplitude(uv * 1e-6, where="test")
    with pytest.warns(contract.AmplitudeWarning, match="large"):
        contract.check_amplitude(uv * 1e3, where="test")
