"""heldout.py: which subjects are kept out of pre-training."""

import numpy as np
import pytest

from mdjpt_jax import heldout


def test_count_takes_the_highest_ids_and_explicit_ids_override_it():
    subjects = [5, 1, 9, 3, 9, 7]  # any order, repeats
    np.testing.assert_array_equal(heldout.heldout_subjects("a/b", subjects, count=2), [7, 9])
    assert heldout.heldout_subjects("a/b", subjects, count=0).size == 0
    got = heldout.heldout_subjects("a/b", subjects, count=2, explicit={"a/b": [3, 1]})
    np.testing.assert_array_equal(got, [1, 3])
    other = heldout.heldout_subjects("a/c", subjects, count=1, explicit={"a/b": [3]})
    np.testing.assert_array_equal(other, [9])


def test_refusals_name_the_dataset_and_the_limit():
    with pytest.raises(ValueError, match=r"a/b: heldout_subjects=4 leaves 1 .* at most 3"):
        heldout.heldout_subjects("a/b", [1, 2, 3, 4, 5], count=4)
    with pytest.raises(ValueError, match=r"a/b: held-out subjects \[6\] are not in the dataset"):
        heldout.heldout_subjects("a/b", [1, 2, 3], count=0, explicit={"a/b": [1, 6]})
    with pytest.raises(ValueError, match="must be >= 0"):
        heldout.heldout_subjects("a/b", [1, 2, 3], count=-1)
    # nothing held out: a dataset too small to pair is the sampler's error, not this one's
    assert heldout.heldout_subjects("a/b", [1], count=0).size == 0
