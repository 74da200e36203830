"""report.py: tables across seeds, degenerate flags, CDA ratios from files, plots."""

import json
import os

import numpy as np
import pytest

from mdjpt_jax import metrics_writer, report, workdir

METRICS = report.METRICS


def fake_result(values, *, confusion=((3, 1), (0, 4)), retrieval=None):
    """One seed's probe result whose folds have every metric equal to values[i]."""
    folds = [
        dict(metrics={m: v for m in METRICS}, confusion=[list(r) for r in confusion])
        for v in values
    ]
    return dict(
        few_shot=dict(folds=folds, class_names=["a", "b"]),
        zero_shot=dict(repeats=folds),
        retrieval=retrieval or {},
    )


def test_table_is_mean_and_std_across_seeds_of_fold_means():
    results = {
        "de": {"0": fake_result([0.5, 0.7]), "1": fake_result([0.8, 0.8])},
        "joint": {
            "0": fake_result([0.9, 0.9], retrieval={"d0": 0.4}),
            "1": fake_result([0.7, 0.9], retrieval={"d0": 0.6}),
        },
    }
    table = report.results_table(results)
    few = table["de"]["few_shot"]
    assert few["per_seed"] == {
        "0": {m: pytest.approx(0.6) for m in METRICS},
        "1": {m: pytest.approx(0.8) for m in METRICS},
    }
    assert few["metrics"]["accuracy"] == {"mean": pytest.approx(0.7), "std": pytest.approx(0.1)}
    assert few["fold_std"]["auroc"] == pytest.approx(0.05)  # mean of 0.1 and 0.0
    assert few["per_fold"]["0"][1]["accuracy"] == 0.7  # every fold value kept
    assert table["joint"]["retrieval"]["d0"]["mean"] == pytest.approx(0.5)
    assert table["joint"]["retrieval"]["d0"]["std"] == pytest.approx(0.1)
    assert not few["degenerate"]
    text = report.results_markdown(
        table, target="t/x", k=1, n_folds=2, cda_ratios={"joint": dict(mean=1.5, std=0.25)}
    )
    assert "| DE baseline | 2 | 0.700 ± 0.100 |" in text
    assert "| Joint (mdJPT) | 2 | 0.850 ± 0.050 |" in text
    assert text.count("### ") == 3  # few-shot, zero-shot, retrieval
    assert "| Joint (mdJPT) | 0.500 ± 0.100 |" in text
    assert "Joint (mdJPT) 1.50 ± 0.25" in text and "(!)" not in text
    json.dumps(table)


def test_constant_predictions_and_chance_auroc_are_flagged():
    constant = ((4, 0), (4, 0))  # every window predicted class 0
    results = {"de": {"0": fake_result([0.5, 0.52], confusion=constant)}}
    table = report.results_table(results)
    reasons = table["de"]["few_shot"]["degenerate"]
    assert any("one class predicted" in r and "2 of 2 folds" in r for r in reasons)
    assert any("AUROC at chance" in r for r in reasons)
    text = report.markdown_table(table, "few_shot", "t")
    assert "| DE baseline (!) |" in text and "- (!) DE baseline: one class predicted" in text
    assert report.is_constant([[0, 3], [0, 5]]) and not report.is_constant([[1, 3], [0, 5]])


def test_centroid_distances_by_hand():
    eye, zero = np.eye(2), np.zeros((2, 2))
    centroids = np.stack(
        [np.stack([eye, zero]), np.stack([zero, zero]), np.stack([eye, 3 * eye])]
    )  # [G=3, F=2, 2, 2]
    dist = report.centroid_distance_matrix(centroids)
    s2 = np.sqrt(2.0)
    expected = np.array([[0, s2, 3 * s2], [s2, 0, s2 + 3 * s2], [3 * s2, 4 * s2, 0]])
    np.testing.assert_allclose(dist, expected, rtol=1e-12)
    groups = np.array(["d0", "d0", "d1"])
    assert report.between_within_ratio(dist, groups) == pytest.approx((3 + 4) / 2)
    with pytest.raises(ValueError, match=">= 2 datasets"):
        report.between_within_ratio(dist, np.array(["a", "a", "a"]))


def test_ratio_from_files_keeps_full_dataset_names(tmp_path):
    """Datasets named NAME/preprocessed stay distinct (their config parts are equal)."""
    rng = np.random.default_rng(0)
    for shift, dataset in ((0.0, "a/preprocessed"), (5.0, "b/preprocessed")):
        centroids = shift + rng.normal(size=(3, 2, 4, 4))
        workdir.save_centroids(
            workdir.centroid_path(str(tmp_path), "joint", 0, dataset), centroids, np.arange(3)
        )
    dist, groups = report.cda_distances(
        str(tmp_path), "joint", 0, ["a/preprocessed", "b/preprocessed"]
    )
    ratio = report.between_within_ratio(dist, groups)
    assert np.isfinite(ratio) and ratio > 2.0
    assert list(groups) == ["a/preprocessed"] * 3 + ["b/preprocessed"] * 3


def test_plots_are_written(tmp_path):
    rows = [dict(step=0, **{"eval/retrieval_features": 0.2, "eval/probe_auroc": 0.7})]
    rows += [
        dict(step=s, loss=1.0 / s, cda=0.1, contrastive_over_chance=1.0 - 0.01 * s)
        for s in range(1, 30)
    ]
    rows.append(
        dict(
            step=30,
            cda=0.1,
            contrastive_over_chance=0.7,
            **{"eval/retrieval_features": 0.4, "eval/probe_auroc": 0.8},
        )
    )
    paths = {
        name: str(tmp_path / f"{name}.png") for name in ("curves", "tsne", "distances", "confusion")
    }
    metrics_writer.plot_learning_curves({"joint": rows, "single": rows[:10]}, paths["curves"])
    rng = np.random.default_rng(0)
    panel = (
        rng.normal(size=(40, 5)),
        np.repeat(["d0", "d1"], 20),
        np.tile(["negative", "positive"], 20),
    )
    report.plot_tsne({"Random": panel}, paths["tsne"], seed=0)
    dist = np.abs(rng.normal(size=(4, 4)))
    report.plot_distance_matrices(
        {"Random": dist + dist.T, "Joint": dist + dist.T},
        np.array(["d0", "d0", "d1", "d1"]),
        paths["distances"],
    )
    report.plot_confusion(np.array([[3, 1], [0, 4]]), ["a", "b"], "joint", paths["confusion"])
    for path in paths.values():
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", path
        assert os.path.getsize(path) > 5000


def test_smooth_is_a_trailing_mean():
    np.testing.assert_allclose(
        metrics_writer.smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0]
    )


def test_finetune_table_is_mean_and_std_across_seeds():
    def result(finetuned, frozen):
        summary = {
            name: {m: dict(mean=value, std=0.0) for m in report.METRICS}
            for name, value in (("finetuned", finetuned), ("frozen", frozen))
        }
        return dict(summary=summary, improved_over_frozen=finetuned > frozen)

    table = report.finetune_table(
        {"joint": {"0": result(0.6, 0.5), "1": result(0.4, 0.5), "2": result(0.8, 0.5)}}
    )
    entry = table["joint"]
    assert entry["finetuned"]["balanced_accuracy"]["mean"] == pytest.approx(0.6)
    assert entry["finetuned"]["balanced_accuracy"]["std"] == pytest.approx(np.std([0.6, 0.4, 0.8]))
    assert entry["frozen"]["auroc"] == dict(mean=pytest.approx(0.5), std=pytest.approx(0.0))
    assert entry["improved"] == 2 and entry["seeds"] == ["0", "1", "2"]
    text = report.finetune_markdown(table, k=2)
    assert "| Joint (mdJPT) | 3 | 0.600 ± 0.163 | 0.500 ± 0.000 |" in text and "| 2/3 |" in text
