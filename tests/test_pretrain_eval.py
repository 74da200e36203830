"""pretrain_eval.py: the learning curves are measured on held-out subjects only."""

import numpy as np
import pytest

from mdjpt_jax import channels, features, trials
from mdjpt_jax.pretrain import pretrain_eval

DATASET = "synthetic_emotion/d0"


def _eval_set(data_dir, **heldout):
    return pretrain_eval.make_eval_set(
        DATASET,
        str(data_dir),
        channels.UNIFIED_SETS["standard_1020"],
        fs=125.0,
        window=250,
        step=125,
        windows_per_subject=16,
        seed=0,
        **heldout,
    )


def test_eval_windows_come_from_heldout_subjects_only(synthetic_data_dir):
    n = trials.dataset_info(DATASET, str(synthetic_data_dir))["n_subjects"]
    es = _eval_set(synthetic_data_dir, heldout_subjects=3)
    assert es.eeg.shape[:2] == (3, 16)
    np.testing.assert_array_equal(np.unique(es.subject), np.arange(n - 3, n))
    # every held-out subject is shown the same moments (retrieval has positives)
    for block in es.moment[1:]:
        np.testing.assert_array_equal(np.sort(block, axis=0), np.sort(es.moment[0], axis=0))
    np.testing.assert_allclose(
        es.signals["waveform"][1, 3],
        np.asarray(features.waveform_readout(es.eeg[1, 3], 125.0)).reshape(-1),
        rtol=1e-5,
        atol=1e-4,
    )
    np.testing.assert_allclose(
        es.signals["de"][2, 5],
        np.asarray(features.differential_entropy(es.eeg[2, 5:6], 125.0)).reshape(-1),
        rtol=1e-5,
        atol=1e-4,
    )
    listed = _eval_set(
        synthetic_data_dir, heldout_subjects=3, heldout_subject_ids={DATASET: [1, 4]}
    )
    np.testing.assert_array_equal(np.unique(listed.subject), [1, 4])


def test_fewer_than_two_heldout_subjects_is_refused(synthetic_data_dir):
    with pytest.raises(ValueError, match="need >= 2 held-out subjects"):
        _eval_set(synthetic_data_dir, heldout_subjects=1)
