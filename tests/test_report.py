"""report.py: tables of mean ± sample std across seeds ("(n = 1)" for one seed), skipped
protocols, degenerate flags, paired differences end to end, CDA ratios from files, plots."""

import inspect
import json
import os

import numpy as np
import pytest

from configs import downstream
from mdjpt_jax import learning_curves, scoring, workdir
from mdjpt_jax.downstream import report

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
    # sample std (ddof 1) of the seed means 0.6 and 0.8: 0.2 / sqrt(2)
    assert few["metrics"]["accuracy"] == {
        "mean": pytest.approx(0.7),
        "std": pytest.approx(0.2 / np.sqrt(2)),
        "n": 2,
    }
    assert few["fold_std"]["auroc"] == pytest.approx(0.1 / np.sqrt(2))  # mean of 0.141, 0.0
    assert few["per_fold"]["0"][1]["accuracy"] == 0.7  # every fold value kept
    assert table["joint"]["retrieval"]["d0"]["mean"] == pytest.approx(0.5)
    assert table["joint"]["retrieval"]["d0"]["std"] == pytest.approx(0.2 / np.sqrt(2))
    assert not few["degenerate"]
    text = report.results_markdown(table, target="t/x", k=1, n_folds=2)
    assert "| DE (same windows as the encoders) | 2 | 0.700 ± 0.141 |" in text
    assert "| Joint (mdJPT) | 2 | 0.850 ± 0.071 |" in text
    assert text.count("### ") == 3  # few-shot, zero-shot, retrieval
    assert "| Joint (mdJPT) | 2 | 0.500 ± 0.141 |" in text
    assert "(!)" not in text and "Dataset alignment" not in text
    assert "AUROC: macro one-vs-rest" in text
    json.dumps(table)


def test_one_seed_shows_its_value_and_n_1_and_json_std_null():
    results = {
        "de": {"0": fake_result([0.5, 0.7], retrieval={"d0": 0.3})},
        "joint": {"0": fake_result([0.9]), "1": fake_result([0.8])},
    }
    table = report.results_table(results)
    assert table["de"]["few_shot"]["metrics"]["auroc"] == {
        "mean": pytest.approx(0.6),
        "std": None,
        "n": 1,
    }
    assert table["joint"]["few_shot"]["fold_std"]["auroc"] is None  # one fold per seed
    assert json.loads(json.dumps(table))["de"]["retrieval"]["d0"]["std"] is None
    text = report.results_markdown(table, target="t/x", k=1, n_folds=2, auroc_multi_class="ovo")
    assert "| DE (same windows as the encoders) | 1 | 0.600 (n = 1) | 0.600 (n = 1) |" in text
    assert "| DE (same windows as the encoders) | 1 | 0.300 (n = 1) |" in text  # retrieval
    assert "± 0.000" not in text and "AUROC: macro one-vs-one" in text
    # paired differences without how they were made would print "(0 resamples)"
    with pytest.raises(ValueError, match="confidence and n_samples"):
        report.results_markdown(table, target="t/x", k=1, n_folds=2, paired={"joint-de": {}})
    assert report.format_mean_std(dict(mean=1.0, std=None, n=1), 2) == "1.00 (n = 1)"


def test_method_titles_and_retrieval_chance_from_retrieval_default():
    assert report.METHOD_TITLES["de_paper"] == "DE, paper windows (1 s)"
    assert report.METHOD_TITLES["de_ea"] == "DE, Euclidean-aligned"
    assert report.METHOD_TITLES["waveform"] == "Raw waveform read-out (untrained)"
    assert report._title("my_method") == "my_method"
    default = inspect.signature(scoring.cross_subject_retrieval).parameters["n_candidates"]
    assert report.RETRIEVAL_CANDIDATES == default.default == 16
    table = report.results_table({"waveform": {"0": fake_result([0.5], retrieval={"d0": 0.2})}})
    text = report.retrieval_markdown(table)
    assert (
        "### Cross-subject window retrieval@1 on held-out subjects of the pre-training "
        "datasets (chance 1/16)" in text
    )
    assert "| Raw waveform read-out (untrained) | 1 | 0.200 (n = 1) |" in text


def test_skipped_protocol_shows_its_reason_instead_of_rows():
    reason = "class 'a' has 1 stimulus; the stimulus-held-out split needs >= 2 per class"
    results = {
        m: {
            s: dict(fake_result([0.7]), few_shot_heldout_stimuli={"skipped": reason}) for s in seeds
        }
        for m, seeds in (("de", ["0"]), ("joint", ["0", "1"]))
    }
    table = report.results_table(results)
    assert table["joint"]["few_shot_heldout_stimuli"] == {"skipped": reason}
    text = report.results_markdown(table, target="t/x", k=1, n_folds=1)
    section = text.split("### Few-shot, stimulus-held-out")[1].split("###")[0]
    assert f"Not run: {reason}" in section and "| Joint" not in section


def test_constant_predictions_and_chance_auroc_are_flagged():
    constant = ((4, 0), (4, 0))  # every window predicted class 0
    results = {"de": {"0": fake_result([0.5, 0.52], confusion=constant)}}
    table = report.results_table(results)
    reasons = table["de"]["few_shot"]["degenerate"]
    assert any("one class predicted" in r and "2 of 2 folds" in r for r in reasons)
    assert any("AUROC at chance" in r for r in reasons)
    text = report.markdown_table(table, "few_shot", "t")
    de = report.METHOD_TITLES["de"]
    assert f"| {de} (!) |" in text and f"- (!) {de}: one class predicted" in text
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
            workdir.centroid_path(str(tmp_path), "joint", 0, dataset),
            covariance=centroids,
            correlation=np.tanh(centroids),
            subjects=np.arange(3),
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
    learning_curves.plot_learning_curves({"joint": rows, "single": rows[:10]}, paths["curves"])
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
        learning_curves.smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0]
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
    assert entry["finetuned"]["balanced_accuracy"]["std"] == pytest.approx(0.2)  # ddof 1
    assert entry["frozen"]["auroc"] == dict(mean=pytest.approx(0.5), std=pytest.approx(0.0), n=3)
    assert entry["improved"] == 2 and entry["seeds"] == ["0", "1", "2"]
    text = report.finetune_markdown(table, k=2)
    assert "| Joint (mdJPT) | 3 | 0.600 ± 0.200 | 0.500 ± 0.000 |" in text and "| 2/3 |" in text


SUBJECTS = range(6)
FOLDS = [([0, 1], [2, 3, 4, 5]), ([2, 3], [0, 1, 4, 5]), ([4, 5], [0, 1, 2, 3])]


def per_subject_result(shift: float, *, fold_noise: float, retrieval: dict, auroc_none=()):
    """One seed's probe result over the 3 disjoint folds of 6 subjects: subject s's metrics
    in fold i are 0.5 + 0.02 s + shift + fold_noise * (i - 1) (AUROC None for auroc_none);
    zero-shot per-subject values do not depend on shift."""

    def metrics(s, value):
        return {m: (None if m == "auroc" and s in auroc_none else value) for m in METRICS}

    folds = [
        dict(
            train_subjects=train,
            test_subjects=test,
            metrics={m: 0.7 + shift for m in METRICS},
            per_subject={
                str(s): metrics(s, 0.5 + 0.02 * s + shift + fold_noise * (i - 1)) for s in test
            },
            confusion=[[3, 1], [1, 3]],
        )
        for i, (train, test) in enumerate(FOLDS)
    ]
    repeats = [
        dict(
            metrics={m: 0.9 for m in METRICS},
            per_subject={str(s): metrics(s, 0.9 - 0.01 * s) for s in SUBJECTS},
            confusion=[[3, 1], [1, 3]],
        )
    ]
    skipped = "class 'a' has 1 stimulus; the stimulus-held-out split needs >= 2 per class"
    return dict(
        few_shot=dict(folds=folds, class_names=["a", "b"]),
        few_shot_heldout_stimuli=dict(skipped=skipped),
        zero_shot=dict(repeats=repeats),
        retrieval=retrieval,
        retrieval_subjects={"d0": [8, 9], "d1": [6, 7]},
    )


def test_subject_cells_average_the_folds_that_tested_each_subject():
    per_seed = {"0": per_subject_result(0.0, fold_noise=0.03, retrieval={})}
    cells = report.subject_cells(per_seed, "few_shot", "balanced_accuracy")
    # subject 0 is tested in folds 1 and 2 (noise 0 and +0.03); subject 4 in folds 0 and 1.
    assert cells[("0", "0")] == pytest.approx(0.5 + 0.015)
    assert cells[("0", "4")] == pytest.approx(0.5 + 0.08 - 0.015)
    assert set(cells) == {("0", str(s)) for s in SUBJECTS}
    assert report.subject_cells(per_seed, "few_shot_heldout_stimuli", "auroc") == {}
    assert report.parse_comparison("joint-joint_no_cda") == ("joint", "joint_no_cda")
    with pytest.raises(ValueError, match="'a-b'"):
        report.parse_comparison("joint")


def test_report_end_to_end_with_a_deterministic_method_and_paired_differences(tmp_path, capsys):
    """ "de" has one seed (deterministic), "joint" three: joint is 0.1 + 0.01 seed above de on
    every test subject few-shot (fold noise averaging to 0 over subjects), equal zero-shot."""
    results = {
        "de": {
            "0": per_subject_result(
                0.0, fold_noise=0.0, retrieval={"d0": 0.6, "d1": 0.5}, auroc_none=(3,)
            )
        },
        "joint": {
            str(seed): per_subject_result(
                0.1 + 0.01 * seed,
                fold_noise=0.03,
                retrieval={"d0": 0.4 + 0.01 * seed, "d1": 0.3},
            )
            for seed in range(3)
        },
    }
    workdir.write_json(workdir.probe_results_path(str(tmp_path)), results)
    config = downstream.get_config("synthetic")
    config.target, config.methods, config.seeds = "t/x", ("de", "joint"), (0, 1, 2)
    config.pretrain_methods, config.report.tsne_methods, config.report.cda_methods = (), (), ()
    config.report.alignment_methods = ()  # no feature files here
    config.report.comparisons = ("joint-de", "joint-random")  # no "random": left out
    config.report.bootstrap_samples = 500
    summary = report.run(config, str(tmp_path))
    capsys.readouterr()

    paired = summary["paired_differences"]
    assert set(paired) == {"joint-de"}
    assert set(paired["joint-de"]) == {"few_shot", "zero_shot", "retrieval"}  # held-out skipped
    few = paired["joint-de"]["few_shot"]["balanced_accuracy"]
    assert few["mean"] == pytest.approx(0.11)  # 0.1 + mean(0, 0.01, 0.02); noise averages out
    assert (few["n_seeds"], few["n_units"], few["resampled"]) == (3, 6, "seeds x units")
    assert few["established"] and few["low"] > 0.05
    assert paired["joint-de"]["few_shot"]["auroc"]["n_units"] == 5  # de's subject 3: no AUROC
    zero = paired["joint-de"]["zero_shot"]["balanced_accuracy"]
    assert zero["mean"] == zero["low"] == zero["high"] == 0.0 and not zero["established"]
    ret = paired["joint-de"]["retrieval"]["retrieval@1"]
    assert ret["mean"] == pytest.approx(((-0.2 - 0.19 - 0.18) / 3 - 0.2) / 2)
    assert (ret["n_seeds"], ret["n_units"]) == (3, 2)

    written = json.loads((tmp_path / "report" / "results.json").read_text())
    assert written["paired_differences"]["joint-de"]["few_shot"]["balanced_accuracy"] == few
    assert written["methods"]["de"]["few_shot"]["metrics"]["auroc"]["std"] is None
    text = (tmp_path / "report" / "results.md").read_text()
    assert "### Paired differences (a − b), mean [95% interval] over seeds x test subjects" in text
    row = next(
        line
        for line in text.splitlines()
        if line.startswith(
            "| Joint (mdJPT) − DE (same windows as the encoders) | few-shot | Bal. acc"
        )
    )
    assert "+0.110 [" in row and "| 3 x 6 | seeds x units | yes |" in row
    assert "Established (the 95% interval excludes 0): Joint (mdJPT) − DE" in text
    not_established = text.split("Not established: ")[1]
    assert "zero-shot, Bal. acc: +0.000" in not_established
    assert "Not run: class 'a' has 1 stimulus" in text
    assert "| DE (same windows as the encoders) | 1 | 0.700 (n = 1) |" in text
    assert "Held-out subjects: `d0` 8, 9; `d1` 6, 7" in text
    assert (tmp_path / "report" / "confusion.png").exists()


def test_training_cda_summarises_first_and_last_diagnostic_steps():
    """Hand-computed: two seeds, diagnostics at steps 0 and 20 (step 10 logs none)."""

    def row(step, cda, mixer, ratio=0.001, radial=0.9):
        return {
            "step": step,
            "loss": 1.0,
            "cda_diagnostics/cda": cda,
            "cda_diagnostics/mixer_norm": mixer,
            "cda_diagnostics/cda_over_contrastive": ratio,
            "cda_diagnostics/cda_radial_share_mixer": radial,
        }

    rows = {
        0: [row(0, 2.0, 10.0), {"step": 10, "loss": 0.5}, row(20, 3.0, 11.0, radial=0.5)],
        1: [row(0, 4.0, 20.0), row(20, 4.0, 22.0, radial=0.7)],
    }
    s = report.training_cda(rows)
    assert s["steps"] == [(0, 20)]
    assert s["first"]["cda"]["mean"] == pytest.approx(3.0)
    assert s["last"]["cda"]["mean"] == pytest.approx(3.5)
    assert s["cda_change"]["mean"] == pytest.approx((0.5 + 0.0) / 2)
    assert s["mixer_norm_change"]["mean"] == pytest.approx(0.1)
    assert s["last"]["cda_radial_share_mixer"]["mean"] == pytest.approx(0.6)
    assert s["per_seed"]["1"]["last"] == {
        "step": 20,
        "cda": 4.0,
        "mixer_norm": 22.0,
        "cda_over_contrastive": 0.001,
        "cda_radial_share_mixer": 0.7,
    }
    assert report.training_cda({0: [{"step": 0, "loss": 1.0}]}) is None
    text = report.training_cda_markdown({"joint": s, "joint_no_cda": None})
    assert "Joint (mdJPT) | 2 | 0-20 | 3.0000 ± 1.4142 | 3.5000 ± 0.7071 | 0.250 ± 0.354" in text
    assert "without CDA" not in text.split("|---")[-1]
    assert report.training_cda_markdown({"joint": None}) == ""
