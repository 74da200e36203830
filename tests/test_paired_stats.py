"""paired_stats.py: pairing by seed and unit, hand-computed cases, invariants of the
two-way bootstrap interval, and its coverage on simulated differences of 0."""

import numpy as np
import pytest

from mdjpt_jax import paired_stats

BOOT = dict(n_samples=2000, confidence=0.95, seed=0)


def grid_cells(values: np.ndarray) -> dict:
    """[S, U] array -> {(str(seed), str(unit)): value}."""
    return {(str(s), str(u)): float(values[s, u]) for s, u in np.ndindex(values.shape)}


def test_sample_std_is_ddof_one_and_none_for_one_value():
    assert paired_stats.sample_std([1.0, 2.0, 4.0]) == pytest.approx(np.sqrt(7 / 3))
    assert paired_stats.sample_std([0.3]) is None


def test_single_seed_side_is_paired_with_every_seed_of_the_other():
    joint = {("0", "s1"): 0.9, ("0", "s2"): 0.8, ("1", "s1"): 0.7, ("1", "s2"): 0.6}
    joint.update({("2", "s1"): 0.5, ("2", "s2"): 1.0})
    de = {("0", "s1"): 0.5, ("0", "s2"): 0.7}  # deterministic: one seed
    differences, pairs, units = paired_stats.paired_differences(joint, de)
    assert pairs == [("0", "0"), ("1", "0"), ("2", "0")] and units == ["s1", "s2"]
    np.testing.assert_allclose(differences, [[0.4, 0.1], [0.2, -0.1], [0.0, 0.3]], atol=1e-12)
    got = paired_stats.paired_bootstrap(joint, de, **BOOT)
    assert got["mean"] == pytest.approx(0.9 / 6)  # (0.4 + 0.1 + 0.2 - 0.1 + 0.0 + 0.3) / 6
    assert (got["n_seeds"], got["n_units"], got["resampled"]) == (3, 2, "seeds x units")
    # The other direction pairs the same cells.
    assert paired_stats.paired_bootstrap(de, joint, **BOOT)["mean"] == pytest.approx(-0.9 / 6)


def test_a_seeded_method_with_one_seed_is_not_broadcast():
    """joint_no_cda run for seed 0 only is not deterministic: paired on seed 0 alone, and the
    interval then resamples the units only."""
    joint = {(str(s), u): 0.5 + 0.1 * s for s in range(3) for u in ("s1", "s2", "s3")}
    no_cda = {("0", "s1"): 0.4, ("0", "s2"): 0.5, ("0", "s3"): 0.3}
    differences, pairs, units = paired_stats.paired_differences(joint, no_cda, broadcast=False)
    assert pairs == [("0", "0")] and units == ["s1", "s2", "s3"]
    np.testing.assert_allclose(differences, [[0.1, 0.0, 0.2]])
    got = paired_stats.paired_bootstrap(joint, no_cda, broadcast=False, **BOOT)
    assert (got["n_seeds"], got["resampled"]) == (1, "units")
    assert got["mean"] == pytest.approx(0.1)


def test_common_seeds_only_and_nan_cells_dropped():
    a = grid_cells(np.arange(12.0).reshape(3, 4))  # seeds 0..2, units 0..3
    b = {(str(s + 1), str(u)): 0.0 for s in range(3) for u in range(4)}  # seeds 1..3
    a[("2", "3")] = float("nan")  # unit 3 lacks seed 2: dropped for every seed
    b[("1", "0")] = None
    differences, pairs, units = paired_stats.paired_differences(a, b)
    assert pairs == [("1", "1"), ("2", "2")] and units == ["1", "2"]
    np.testing.assert_allclose(differences, [[5.0, 6.0], [9.0, 10.0]])
    with pytest.raises(ValueError, match="no seeds to pair"):
        paired_stats.paired_differences(
            {("0", "u"): 1.0, ("1", "u"): 1.0}, {("2", "u"): 1.0, ("3", "u"): 1.0}
        )


def test_one_seed_two_units_interval_by_hand():
    """Resampling 2 units gives means d1, (d1 + d2) / 2, d2 with probabilities 1/4, 1/2, 1/4:
    the 2.5% and 97.5% percentiles are d1 and d2."""
    a = {("0", "x"): 0.3, ("0", "y"): 0.9}
    b = {("0", "x"): 0.1, ("0", "y"): 0.2}
    got = paired_stats.paired_bootstrap(a, b, **BOOT)
    assert got["resampled"] == "units" and (got["n_seeds"], got["n_units"]) == (1, 2)
    assert got["mean"] == pytest.approx(0.45)
    assert (got["low"], got["high"]) == (pytest.approx(0.2), pytest.approx(0.7))
    assert got["established"]


def test_constant_difference_has_zero_width_and_swap_negates():
    rng = np.random.default_rng(1)
    b = rng.normal(size=(3, 6))
    for shift, established in ((0.25, True), (0.0, False)):
        got = paired_stats.paired_bootstrap(grid_cells(b + shift), grid_cells(b), **BOOT)
        for key in ("mean", "low", "high"):
            assert got[key] == pytest.approx(shift, abs=1e-12)
        assert got["established"] is established
    a = b + rng.normal(size=b.shape)
    forward = paired_stats.paired_bootstrap(grid_cells(a), grid_cells(b), **BOOT)
    backward = paired_stats.paired_bootstrap(grid_cells(b), grid_cells(a), **BOOT)
    assert backward["mean"] == pytest.approx(-forward["mean"], abs=1e-12)
    assert backward["low"] == pytest.approx(-forward["high"], abs=1e-12)
    assert backward["high"] == pytest.approx(-forward["low"], abs=1e-12)


def test_bootstrap_means_resample_rows_and_columns_of_the_grid():
    """Every bootstrap mean is the mean of a grid built from the rows and columns of the
    original: with rows 0 and 1 and columns 0 and 10 the possible means are known."""
    differences = np.array([[0.0, 10.0], [1.0, 11.0]])
    means = paired_stats.bootstrap_means(differences, n_samples=500, seed=3)
    # row part in {0, 0.5, 1}, column part in {0, 5, 10}
    possible = {r + c for r in (0.0, 0.5, 1.0) for c in (0.0, 5.0, 10.0)}
    assert set(np.round(means, 9)) <= possible
    assert len(set(np.round(means, 9))) == len(possible)  # both axes are resampled


def test_clear_effect_is_established():
    rng = np.random.default_rng(2)
    b = rng.normal(size=(3, 20))
    clear = paired_stats.paired_bootstrap(
        grid_cells(b + 0.5 + 0.1 * rng.normal(size=b.shape)), grid_cells(b), **BOOT
    )
    assert clear["established"] and clear["low"] > 0.4


@pytest.mark.parametrize(
    "n_seeds, unit_sd, noise_sd", [(1, 1.0, 0.0), (3, 1.0, 0.3)], ids=["units", "seeds_x_units"]
)
def test_interval_covers_a_true_difference_of_zero_about_95_percent(n_seeds, unit_sd, noise_sd):
    """Simulated differences with mean 0 (a per-unit effect plus per-cell noise): the 95%
    interval covers 0 in ~95% of 300 repeats (percentile bootstrap: a little under)."""
    rng = np.random.default_rng(0)
    covered = 0
    for repeat in range(300):
        d = unit_sd * rng.normal(size=(1, 20)) + noise_sd * rng.normal(size=(n_seeds, 20))
        got = paired_stats.paired_bootstrap(
            grid_cells(d), grid_cells(np.zeros_like(d)), n_samples=400, confidence=0.95, seed=repeat
        )
        covered += got["low"] <= 0.0 <= got["high"]
    assert 0.87 <= covered / 300 <= 0.99
