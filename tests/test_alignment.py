"""Dataset-alignment measures (mdjpt_jax/downstream/alignment.py) and the report's use of them."""

import numpy as np
import pytest

from mdjpt_jax import workdir
from mdjpt_jax.downstream import alignment, report


def test_dataset_centroid_distance_by_hand():
    eye, zero = np.eye(2), np.zeros((2, 2))
    # Dataset a: subjects [I, 0] and [I, 2I] -> mean [I, I]; dataset b: [0, 0].
    centroids = np.stack(
        [np.stack([eye, zero]), np.stack([eye, 2 * eye]), np.stack([zero, zero])]
    )  # [G=3, F=2, 2, 2]
    groups = np.array(["a", "a", "b"])
    s2 = np.sqrt(2.0)
    assert alignment.dataset_centroid_distance(centroids, groups) == pytest.approx(2 * s2)
    # Three datasets: mean of the three pair distances.
    c3 = np.concatenate([centroids, np.stack([np.stack([3 * eye, zero])])])
    g3 = np.array(["a", "a", "b", "c"])
    expected = (2 * s2 + (2 * s2 + s2) + 3 * s2) / 3  # a-b, a-c, b-c
    assert alignment.dataset_centroid_distance(c3, g3) == pytest.approx(expected)
    with pytest.raises(ValueError, match=">= 2 datasets"):
        alignment.dataset_centroid_distance(centroids, np.array(["a", "a", "a"]))


def test_split_half_floor_of_two_subjects_is_their_distance():
    rng = np.random.default_rng(0)
    centroids = rng.normal(size=(3, 2, 3, 3))
    groups = np.array(["a", "a", "b"])  # b has one subject: no split
    expected = np.sqrt(np.sum((centroids[0] - centroids[1]) ** 2, axis=(-2, -1))).sum()
    floor = alignment.split_half_floor(centroids, groups, n_splits=5, rng=rng)
    assert floor == pytest.approx(expected)
    with pytest.raises(ValueError, match=">= 2 subjects"):
        alignment.split_half_floor(centroids, np.array(["a", "b", "c"]), n_splits=1, rng=rng)


def test_distinct_partitions():
    assert alignment.distinct_partitions(np.repeat(["a", "b", "c"], 2)) == 15  # 6!/(2!^3 3!)
    assert alignment.distinct_partitions(np.array(["a", "a", "b"])) == 3
    assert alignment.distinct_partitions(np.array(["a", "a", "b", "b", "c"])) == 15  # 5!/8/2


def test_permutation_test_separates_shifted_datasets_and_not_equal_ones():
    rng = np.random.default_rng(1)
    groups = np.repeat(["a", "b", "c"], 4)
    noise = rng.normal(size=(12, 2, 4, 4))
    shifted = noise + np.repeat(np.arange(3), 4)[:, None, None, None] * 3.0
    strong = alignment.permutation_test(shifted, groups, n_permutations=199, rng=rng)
    assert strong["p_value"] == pytest.approx(1 / 200)
    assert strong["distance"] > strong["null_mean"] + 3 * strong["null_std"]
    same = alignment.permutation_test(noise, groups, n_permutations=199, rng=rng)
    assert same["p_value"] > 0.05
    assert same["distance"] < same["null_mean"] + 3 * same["null_std"]
    # The split-half floor of equal datasets is of the order of the between distance.
    result = alignment.centroid_alignment(noise, groups, n_permutations=50, n_splits=20, seed=0)
    assert 0.5 < result["split_half_floor"] / result["distance"] < 3.0


def _windows(rng, dataset_shift, subject_shift, n_per_subject=30):
    feats, datasets, subjects = [], [], []
    for d in range(3):
        for s in range(3):
            offset = dataset_shift * d + subject_shift * rng.normal(size=4)
            feats.append(offset + rng.normal(size=(n_per_subject, 4)))
            datasets += [f"d{d}"] * n_per_subject
            subjects += [f"d{d}:{s}"] * n_per_subject
    return np.concatenate(feats), np.array(datasets), np.array(subjects)


def test_dataset_decodability():
    rng = np.random.default_rng(2)
    shifted = alignment.dataset_decodability(
        *_windows(rng, 4.0, 0.0), windows_per_subject=20, seed=0
    )
    assert shifted["balanced_accuracy"] > 0.95 and shifted["chance"] == pytest.approx(1 / 3)
    assert shifted["n_subjects"] == 9 and shifted["n_windows"] == 9 * 20
    # Subject identity alone (large subject offsets, no dataset effect) is not decodable as
    # the dataset: the test subject is never in the training set.
    subject_only = alignment.dataset_decodability(
        *_windows(rng, 0.0, 3.0), windows_per_subject=20, seed=0
    )
    assert subject_only["balanced_accuracy"] < 0.6


def _write_method(root, method, rng, shift):
    """Feature and centroid files of 3 datasets x 3 subjects; dataset d shifted by d * shift."""
    for d, dataset in enumerate(["s0/x", "s1/x", "s2/x"]):
        table = {
            "subject": np.repeat(np.arange(3), 10),
            "session": np.zeros(30, int),
            "trial": np.tile(np.arange(10), 3),
            "start": np.zeros(30, int),
            "label": np.zeros(30, int),
            "valence": np.zeros(30, int),
            "stimulus": np.tile(np.arange(10), 3),
        }
        table = {k: np.asarray(v, np.int64) for k, v in table.items()}
        feats = (shift * d + rng.normal(size=(30, 4))).astype(np.float32)
        workdir.save_features(
            workdir.feature_path(root, method, 0, dataset),
            table,
            feats,
            label_names=["a"],
            valence_names=["negative", "neutral", "positive"],
            provenance={},
        )
        workdir.save_centroids(
            workdir.centroid_path(root, method, 0, dataset),
            covariance=rng.normal(size=(3, 1, 2, 2)),
            correlation=shift * d + rng.normal(size=(3, 1, 2, 2)),
            subjects=np.arange(3),
        )


def test_method_alignment_from_files_and_markdown(tmp_path):
    rng = np.random.default_rng(3)
    root = str(tmp_path)
    _write_method(root, "joint", rng, 5.0)
    _write_method(root, "random", rng, 0.0)
    heldout = {"s0/x": [1, 2], "s1/x": [1, 2], "s2/x": [1, 2]}
    summary = {}
    for method in ("joint", "random"):
        result = report.method_alignment(
            root,
            method,
            0,
            heldout,
            with_centroids=True,
            windows_per_subject=8,
            n_permutations=89,
            seed_of_tests=0,
        )
        assert result["decodability"]["n_subjects"] == 6
        assert result["decodability"]["n_windows"] == 6 * 8
        summary[method] = report.alignment_summary({"0": result})
    joint, rand = summary["joint"], summary["random"]
    assert joint["distance"]["mean"] > 3 * rand["distance"]["mean"]
    assert joint["dataset_accuracy"]["mean"] > 0.9 > rand["dataset_accuracy"]["mean"]
    # 15 partitions: the smallest attainable p is about 1/15.
    assert joint["distinct_partitions"] == 15 and joint["p_value"]["mean"] < 0.15
    assert rand["p_value"]["mean"] > 0.15
    text = report.alignment_markdown(summary)
    assert "| Joint" in text and "15 distinct partitions" in text and "chance 0.33" in text


def test_old_centroid_files_are_refused_and_rewritten(tmp_path):
    path = str(tmp_path / "x.centroids.npz")
    assert not workdir.centroids_complete(path)
    np.savez(path, centroids=np.zeros((1, 1, 2, 2)), subjects=np.arange(1))
    assert not workdir.centroids_complete(path)
    with pytest.raises(ValueError, match="older version"):
        workdir.load_centroids(path, "correlation")
    with pytest.raises(ValueError, match="statistic must be"):
        workdir.load_centroids(path, "cov")
