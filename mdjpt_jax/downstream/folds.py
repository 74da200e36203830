"""Few-shot folds: which labelled subjects train each fold (`subject_folds`: disjoint
training sets, or distinct k-subsets in a seeded order); nothing is selected on test
subjects.
"""

import itertools
import math

import numpy as np

FOLD_SCHEMES = ("disjoint", "all")
ENUMERATE_MAX_COMBINATIONS = 100_000  # "all" folds: enumerate C(S, k) up to this many


def max_folds(n_subjects: int, k: int, scheme: str) -> int:
    """How many distinct folds of k training subjects `scheme` can make from n_subjects."""
    if scheme not in FOLD_SCHEMES:
        raise ValueError(f"few-shot folds={scheme!r}: choose one of {FOLD_SCHEMES}")
    return n_subjects // k if scheme == "disjoint" else math.comb(n_subjects, k)


def check_folds(n_subjects: int, k: int, n_folds: int, scheme: str) -> None:
    """Raises ValueError (naming the maximum) when `subject_folds` cannot make n_folds
    distinct folds of k training subjects out of n_subjects; needs no data.

    "disjoint": at most n_subjects // k folds; "all": at most C(n_subjects, k).
    """
    if not 0 < k < n_subjects:
        raise ValueError(f"few-shot k={k} needs 0 < k < #subjects={n_subjects}")
    if n_folds < 1:
        raise ValueError(f"few-shot n_folds={n_folds} must be >= 1")
    most = max_folds(n_subjects, k, scheme)
    if n_folds <= most:
        return
    alternatives = (
        f"at most {n_subjects // k} disjoint folds (or folds='all': up to "
        f"{math.comb(n_subjects, k)})"
    )
    if scheme == "disjoint":
        raise ValueError(
            f"few-shot: {n_folds} disjoint folds of k={k} need {n_folds * k} subjects; the "
            f"target has {n_subjects}: {alternatives}"
        )
    raise ValueError(
        f"few-shot: {n_folds} folds of k={k} from {n_subjects} subjects: there are only "
        f"C({n_subjects}, {k}) = {most} distinct ones (folds='all')"
    )


def _combinations_in_seeded_order(n: int, k: int, count: int, rng) -> list:
    """`count` distinct sorted k-subsets of range(n), drawn without replacement."""
    total = math.comb(n, k)
    if total <= ENUMERATE_MAX_COMBINATIONS:
        every = list(itertools.combinations(range(n), k))
        return [every[i] for i in rng.permutation(total)[:count]]
    chosen, seen = [], set()
    while len(chosen) < count:
        subset = tuple(sorted(rng.choice(n, size=k, replace=False).tolist()))
        if subset not in seen:
            seen.add(subset)
            chosen.append(subset)
    return chosen


def subject_folds(subjects, k: int, n_folds: int, seed: int, *, scheme: str = "disjoint") -> list:
    """Few-shot folds: (train_subjects, test_subjects) with k training subjects each.

    Args:
        subjects: subject ids (any order, repeats allowed).
        k: training subjects per fold; test = every other subject of the dataset.
        n_folds: how many folds; never more than `max_folds` (see `check_folds`).
        seed: the seeded order.
        scheme: "disjoint": fold i trains on positions [i*k, (i+1)*k) of one seeded
            permutation of the subjects (pairwise disjoint training sets); "all": n_folds
            distinct k-subsets drawn without replacement from all C(#subjects, k).

    Returns:
        [(sorted train ids, sorted test ids)] * n_folds, no two folds alike.
    """
    subjects = np.unique(np.asarray(subjects))
    check_folds(len(subjects), k, n_folds, scheme)
    rng = np.random.default_rng(seed)
    if scheme == "disjoint":
        order = rng.permutation(len(subjects))
        positions = [order[i * k : (i + 1) * k] for i in range(n_folds)]
    else:
        positions = _combinations_in_seeded_order(len(subjects), k, n_folds, rng)
    folds = []
    for chosen in positions:
        train = np.sort(subjects[list(chosen)])
        folds.append((train.tolist(), np.setdiff1d(subjects, train).tolist()))
    return folds
