"""Paired differences between two methods with two-way (seeds x units) bootstrap intervals.

A cell is one value of a metric for one (pre-training seed, unit): the unit is a test
subject for the probes (its windows' metric, averaged over the folds where it was tested)
or a dataset for retrieval. Two methods are compared on the cells they share, so every
difference is between the two methods on the same people (and the same seed where both
have it):

- pairing: the seeds present on both sides; when one side is a DETERMINISTIC method (its
  features do not depend on a seed: one value per unit, `broadcast=True`), that value is
  paired with every seed of the other side at the same unit. A seeded method run with one
  seed is NOT broadcast (its seed-to-seed spread is unknown): only the seed it shares
  counts, and the interval then reflects the units alone (`resampled` = "units"). Only units present for every paired seed are kept; NaN cells (an
  undefined per-subject AUROC) are dropped first.
- interval: resample the paired seeds with replacement and, independently, the units with
  replacement; the statistic is the mean of the differences over the resampled
  (seed, unit) grid; the percentile interval of `n_samples` such means. With one paired
  seed only the units are resampled (`resampled` says which).

A difference is "established" when its interval excludes 0. Also here: `sample_std`, the
spread across seeds / folds that the probe and the report state.
"""

import numpy as np


def sample_std(values) -> float | None:
    """Sample standard deviation (ddof=1) of values; None for fewer than two values."""
    values = np.asarray(values, np.float64)
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def _finite_cells(cells: dict) -> dict:
    """{(seed, unit): value} without the NaN / None values."""
    return {key: float(v) for key, v in cells.items() if v is not None and np.isfinite(float(v))}


def _seed_pairs(seeds_a: list, seeds_b: list, broadcast: bool) -> list:
    """[(seed of a, seed of b)]: common seeds, or (broadcast) a single seed paired with every
    seed of the other side."""
    if broadcast and len(seeds_a) == 1:
        return [(seeds_a[0], s) for s in seeds_b]
    if broadcast and len(seeds_b) == 1:
        return [(s, seeds_b[0]) for s in seeds_a]
    return [(s, s) for s in seeds_a if s in set(seeds_b)]


def paired_differences(
    cells_a: dict, cells_b: dict, *, broadcast: bool = True
) -> tuple[np.ndarray, list, list]:
    """The grid of paired differences a - b.

    Args:
        cells_a, cells_b: {(seed, unit): value}; None / NaN values are dropped.
        broadcast: a side with a single seed is deterministic: pair it with every seed of
            the other side (else only common seeds are paired).

    Returns:
        (differences [S, U], seed pairs [(seed of a, seed of b)] * S, units * U): every
        (seed pair, unit) with a value on both sides for every seed pair.

    Raises:
        ValueError: no seed pair, or no unit shared by every seed pair.
    """
    cells_a, cells_b = _finite_cells(cells_a), _finite_cells(cells_b)
    seeds_a = sorted({s for s, _ in cells_a})
    seeds_b = sorted({s for s, _ in cells_b})
    pairs = _seed_pairs(seeds_a, seeds_b, broadcast)
    if not pairs:
        raise ValueError(f"no seeds to pair: a has {seeds_a}, b has {seeds_b}")
    units = sorted(
        set.intersection(
            *(
                {u for s, u in cells_a if s == sa} & {u for s, u in cells_b if s == sb}
                for sa, sb in pairs
            )
        )
    )
    if not units:
        raise ValueError(f"no unit has a value on both sides for every seed pair {pairs}")
    differences = np.array(
        [[cells_a[(sa, u)] - cells_b[(sb, u)] for u in units] for sa, sb in pairs]
    )
    return differences, pairs, units


def bootstrap_means(differences: np.ndarray, *, n_samples: int, seed: int) -> np.ndarray:
    """[n_samples] means of `differences` [S, U] over grids whose rows (seeds) and columns
    (units) are resampled with replacement, independently; a size-1 axis stays fixed."""
    n_seeds, n_units = differences.shape
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n_seeds, size=(n_samples, n_seeds))
    columns = rng.integers(0, n_units, size=(n_samples, n_units))
    return differences[rows[:, :, None], columns[:, None, :]].mean(axis=(1, 2))


def paired_bootstrap(
    cells_a: dict,
    cells_b: dict,
    *,
    n_samples: int,
    confidence: float,
    seed: int,
    broadcast: bool = True,
) -> dict:
    """Mean paired difference a - b and its two-way bootstrap percentile interval.

    Args:
        cells_a, cells_b: {(seed, unit): value} of methods a and b (see the module doc).
        n_samples: bootstrap resamples.
        confidence: interval coverage, e.g. 0.95.
        seed: the resampling's random seed.
        broadcast: see `paired_differences`.

    Returns:
        dict: mean (over the paired grid), low, high, n_seeds (paired seeds), n_units,
        resampled ("seeds x units", "units", "seeds" or "nothing"), established (the
        interval excludes 0).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence} must be in (0, 1)")
    differences, pairs, units = paired_differences(cells_a, cells_b, broadcast=broadcast)
    means = bootstrap_means(differences, n_samples=n_samples, seed=seed)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    axes = [name for name, size in zip(("seeds", "units"), differences.shape) if size > 1]
    return dict(
        mean=float(differences.mean()),
        low=float(low),
        high=float(high),
        n_seeds=len(pairs),
        n_units=len(units),
        resampled=" x ".join(axes) or "nothing",
        established=bool(low > 0.0 or high < 0.0),
    )
