"""report.py: table and plots from small fake results; centroid distances by hand."""

import json
import os

import numpy as np
import pytest

from mdjpt_jax import probe, report


def fake_result(acc_values):
    folds = [dict(metrics={m: a for m in probe.METRICS}, confusion=[[3, 1], [0, 4]])
             for a in acc_values]
    summary = probe.summarize([f["metrics"] for f in folds])
    return dict(few_shot=dict(folds=folds, summary=summary, class_names=["a", "b"]),
                zero_shot=dict(repeats=folds, summary=summary))


def test_results_table_and_markdown():
    results = {"de": fake_result([0.5, 0.7]), "joint": fake_result([0.8, 0.8])}
    table = report.results_table(results)
    assert table["de"]["few_shot"]["accuracy"] == {"mean": pytest.approx(0.6),
                                                   "std": pytest.approx(0.1)}
    text = report.results_markdown(table, target="synthetic_emotion/d3", k=1, n_folds=2)
    assert "| DE baseline | 0.600 ± 0.100 |" in text
    assert "| Joint (mdJPT) | 0.800 ± 0.000 |" in text
    assert text.count("### ") == 2                                   # few-shot + zero-shot
    json.dumps(table)


def test_centroid_distances_by_hand():
    eye, zero = np.eye(2), np.zeros((2, 2))
    centroids = np.stack([np.stack([eye, zero]), np.stack([zero, zero]),
                          np.stack([eye, 3 * eye])])                 # [G=3, F=2, 2, 2]
    dist = report.centroid_distance_matrix(centroids)
    s2 = np.sqrt(2.0)
    expected = np.array([[0, s2, 3 * s2], [s2, 0, s2 + 3 * s2], [3 * s2, 4 * s2, 0]])
    np.testing.assert_allclose(dist, expected, rtol=1e-12)
    groups = np.array(["d0", "d0", "d1"])
    assert report.between_within_ratio(dist, groups) == pytest.approx((3 + 4) / 2)


def test_plots_are_written(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(dict(step=s, loss=1.0 / s, cda_loss=0.1, lr=1e-3))
                                 for s in range(1, 6)))
    paths = {name: str(tmp_path / f"{name}.png")
             for name in ("loss", "tsne", "distances", "confusion")}
    report.plot_loss_curves({"joint": str(metrics)}, paths["loss"])
    rng = np.random.default_rng(0)
    panel = (rng.normal(size=(40, 5)), np.repeat(["d0", "d1"], 20),
             np.tile(["negative", "positive"], 20))
    report.plot_tsne({"Random": panel}, paths["tsne"], seed=0)
    dist = np.abs(rng.normal(size=(4, 4)))
    report.plot_distance_matrices({"Random": dist + dist.T, "Joint": dist + dist.T},
                                  np.array(["d0", "d0", "d1", "d1"]), paths["distances"])
    report.plot_confusion(np.array([[3, 1], [0, 4]]), ["a", "b"], "joint", paths["confusion"])
    for path in paths.values():
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", path
        assert os.path.getsize(path) > 5000
