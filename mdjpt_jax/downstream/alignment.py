"""Are the pre-training datasets aligned? Two measures on subjects held out of pre-training.

1. Centroid distance in CDA's own scale-free space. Each held-out subject has a centroid:
   the mean zero-diagonal channel CORRELATION matrix of the spatial mixer's output over one
   block of its windows ([F, C2, C2], `windows.subject_centroids`). A dataset's centroid is
   the mean of its subjects' centroids; the between-dataset distance is the mean over
   dataset pairs of sum_f ||D_a,f - D_b,f||_F (the terms of the CDA loss). Correlations,
   not covariances: the per-subject normalization after the mixer undoes any rescaling of
   the mixer, so a covariance distance can fall without anything being aligned.
   It is read against
   - a split-half floor: each dataset's subjects split at random into two halves, the
     distance between the halves' centroids, averaged over datasets and splits: the
     distance that drawing subjects alone produces inside ONE dataset (with half the
     subjects per side, so a generous floor);
   - a permutation test: dataset labels permuted over subjects (group sizes kept); the
     null's mean is the distance expected if datasets did not differ at these group
     sizes, and p = (1 + #{null >= observed}) / (1 + permutations). With few held-out
     subjects the smallest attainable p is large (2 subjects in each of 3 datasets: 15
     distinct partitions, p >= ~1/15); `distinct_partitions` says how many exist.
2. Dataset-ID decodability of the extracted features: a logistic regression predicts the
   dataset of a window, trained leave-one-subject-out (the test subject is never in the
   training set, so it cannot rely on who the subject is); balanced accuracy, chance
   1 / number of datasets.
"""

import math

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def centroid_distance_matrix(centroids: np.ndarray) -> np.ndarray:
    """[G, F, C, C] -> [G, G]: sum over F of ||centroid_a,f - centroid_b,f||_F (CDA's terms)."""
    diff = centroids[:, None] - centroids[None, :]
    return np.sqrt(np.sum(diff**2, axis=(-2, -1))).sum(-1)


def dataset_centroid_distance(centroids: np.ndarray, groups: np.ndarray) -> float:
    """Mean over dataset pairs of sum_f ||mean_a,f - mean_b,f||_F.

    Args:
        centroids: [G, F, C, C] per-subject centroids.
        groups: [G] dataset label of each subject (>= 2 distinct labels).
    """
    labels = np.unique(groups)
    if len(labels) < 2:
        raise ValueError(f"a between-dataset distance needs >= 2 datasets, got {labels}")
    means = np.stack([centroids[groups == g].mean(0) for g in labels])  # [K, F, C, C]
    dist = centroid_distance_matrix(means)  # [K, K]
    return float(dist[np.triu_indices(len(labels), k=1)].mean())


def split_half_floor(
    centroids: np.ndarray, groups: np.ndarray, *, n_splits: int, rng: np.random.Generator
) -> float:
    """Mean distance between random halves of one dataset's subjects (datasets with >= 2
    subjects; an odd count leaves one subject out of each split)."""
    distances = []
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        half = len(members) // 2
        if half == 0:
            continue
        for _ in range(n_splits):
            order = rng.permutation(members)
            pair = np.array([0] * half + [1] * half)
            distances.append(dataset_centroid_distance(centroids[order[: 2 * half]], pair))
    if not distances:
        raise ValueError("a split-half floor needs a dataset with >= 2 subjects")
    return float(np.mean(distances))


def distinct_partitions(groups: np.ndarray) -> int:
    """How many different splits of the subjects into groups of these sizes exist (the
    distance does not depend on the groups' names, so renaming equal-sized groups is
    the same split): the permutation test's p cannot fall below about 1 / this."""
    sizes = np.unique(groups, return_counts=True)[1]
    count = math.factorial(int(sizes.sum())) // math.prod(math.factorial(int(s)) for s in sizes)
    for repeats in np.unique(sizes, return_counts=True)[1]:
        count //= math.factorial(int(repeats))
    return count


def permutation_test(
    centroids: np.ndarray, groups: np.ndarray, *, n_permutations: int, rng: np.random.Generator
) -> dict:
    """Between-dataset distance against dataset labels permuted over subjects.

    Returns:
        dict(distance, null_mean, null_std, p_value, n_permutations, distinct_partitions).
    """
    observed = dataset_centroid_distance(centroids, groups)
    null = np.array(
        [
            dataset_centroid_distance(centroids, rng.permutation(groups))
            for _ in range(n_permutations)
        ]
    )
    return dict(
        distance=observed,
        null_mean=float(null.mean()),
        null_std=float(null.std(ddof=1)) if n_permutations > 1 else 0.0,
        p_value=float((1 + np.sum(null >= observed)) / (1 + n_permutations)),
        n_permutations=n_permutations,
        distinct_partitions=distinct_partitions(groups),
    )


def centroid_alignment(
    centroids: np.ndarray,
    groups: np.ndarray,
    *,
    n_permutations: int = 1000,
    n_splits: int = 100,
    seed: int = 0,
) -> dict:
    """`permutation_test` plus `split_half_floor` (key `split_half_floor`) of [G, F, C, C]
    per-subject centroids with dataset labels [G]."""
    rng = np.random.default_rng(seed)
    result = permutation_test(centroids, groups, n_permutations=n_permutations, rng=rng)
    result["split_half_floor"] = split_half_floor(centroids, groups, n_splits=n_splits, rng=rng)
    return result


def dataset_decodability(
    features: np.ndarray,
    datasets: np.ndarray,
    subjects: np.ndarray,
    *,
    windows_per_subject: int,
    seed: int = 0,
) -> dict:
    """Leave-one-subject-out balanced accuracy of predicting the dataset from features.

    Args:
        features: [N, D] window features.
        datasets: [N] dataset label of each window (>= 2 distinct).
        subjects: [N] subject key of each window, unique across datasets (e.g. "name:id").
        windows_per_subject: at most this many windows per subject (seeded sample).

    Returns:
        dict(balanced_accuracy, chance, n_subjects, n_windows).
    """
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [
            rng.permutation(np.flatnonzero(subjects == s))[:windows_per_subject]
            for s in np.unique(subjects)
        ]
    )
    x, y, g = features[keep], datasets[keep], subjects[keep]
    if len(np.unique(y)) < 2:
        raise ValueError("dataset decodability needs >= 2 datasets")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    predicted = cross_val_predict(model, x, y, groups=g, cv=LeaveOneGroupOut())
    return dict(
        balanced_accuracy=float(balanced_accuracy_score(y, predicted)),
        chance=1.0 / len(np.unique(y)),
        n_subjects=int(len(np.unique(g))),
        n_windows=int(len(keep)),
    )
