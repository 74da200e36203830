"""probe.py: folds never see test subjects, metrics match hand computations, MLP and
post-processing wiring, zero-shot never reads the target's labels."""

import numpy as np
import pytest

from mdjpt_jax import features, probe
from tests import naive_features

MLP = dict(
    hidden=(16, 8), dropout=0.1, learning_rate=3e-3, weight_decay=1e-4, epochs=20, batch_size=32
)


def fake_table(
    n_subjects=4, n_sessions=1, n_trials=4, n_windows=12, dim=6, n_classes=3, seed=0, separable=True
):
    """Window table like workdir.load_features: label = trial % n_classes, valence 0/1/2."""
    rng = np.random.default_rng(seed)
    rows = [
        (s, se, t, w)
        for s in range(n_subjects)
        for se in range(n_sessions)
        for t in range(n_trials)
        for w in range(n_windows)
    ]
    subject, session, trial, start = (np.array(c, np.int64) for c in zip(*rows))
    label = trial % n_classes
    centers = rng.normal(size=(n_classes, dim)) * (3.0 if separable else 0.0)
    feats = centers[label] + rng.normal(size=(len(rows), dim)) + subject[:, None]
    return dict(
        features=feats.astype(np.float32),
        subject=subject,
        session=session,
        trial=trial,
        start=start * 10,
        stimulus=trial,
        label=label,
        valence=label.copy(),
        label_names=[f"c{i}" for i in range(n_classes)],
        valence_names=["negative", "neutral", "positive"],
        provenance={},
    )


def test_subject_folds_disjoint_and_deterministic():
    subjects = np.repeat(np.arange(7), 5)
    folds = probe.subject_folds(subjects, k=2, n_folds=3, seed=4)
    assert folds == probe.subject_folds(subjects, k=2, n_folds=3, seed=4)
    for train, test in folds:
        assert len(train) == 2 and not set(train) & set(test)
        assert sorted(train + test) == list(range(7))
    trained = [s for train, _ in folds for s in train]
    assert len(set(trained)) == 6  # 3 folds x 2, disjoint
    with pytest.raises(ValueError, match="k=7"):
        probe.subject_folds(subjects, k=7, n_folds=1, seed=0)


def test_few_shot_trains_only_on_train_subjects(monkeypatch):
    data = fake_table()
    data["features"][:, 0] = data["subject"]  # tag rows by subject
    seen = {"train": [], "test": [], "prior": []}
    real_train, real_predict = probe.train_mlp, probe.predict_proba

    def fake_postprocess(d, prior, **kwargs):
        seen["prior"].append(set(prior[:, 0].astype(int)))
        return d["features"]

    def spy_train(x, y, n_classes, **kwargs):
        seen["train"].append(set(x[:, 0].astype(int)))
        return real_train(x, y, n_classes, **kwargs)

    def spy_predict(model, x):
        seen["test"].append(set(x[:, 0].astype(int)))
        return real_predict(model, x)

    monkeypatch.setattr(probe, "postprocess", fake_postprocess)
    monkeypatch.setattr(probe, "train_mlp", spy_train)
    monkeypatch.setattr(probe, "predict_proba", spy_predict)
    result = probe.few_shot(data, k=1, n_folds=3, seed=0, decay=0.99, smooth=True, mlp=MLP)
    for fold, train, test, prior in zip(
        result["folds"], seen["train"], seen["test"], seen["prior"]
    ):
        assert train == prior == set(fold["train_subjects"])
        assert test == set(fold["test_subjects"]) and not train & test


def test_classification_metrics_hand_case():
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.3, 0.4, 0.3],
            [0.1, 0.8, 0.1],
            [0.2, 0.5, 0.3],
            [0.5, 0.1, 0.4],
            [0.1, 0.2, 0.7],
        ]
    )
    got = probe.classification_metrics(y, proba)
    # predictions 0 1 1 1 0 2: 4/6 right; recalls 1/2, 1, 1/2; F1 per class 1/2, 4/5, 2/3.
    assert got["accuracy"] == pytest.approx(4 / 6, abs=1e-12)
    assert got["balanced_accuracy"] == pytest.approx(2 / 3, abs=1e-12)
    assert got["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3, abs=1e-12)
    assert got["auroc"] == pytest.approx(naive_features.auroc_ovo_macro(y, proba), abs=1e-12)
    auprc = np.mean([naive_features.average_precision(y == c, proba[:, c]) for c in range(3)])
    assert got["auprc"] == pytest.approx(auprc, abs=1e-12)


def test_binary_metrics_use_positive_score():
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    got = probe.classification_metrics(y, proba)
    assert got["auroc"] == pytest.approx(naive_features.auc_pairs([0.8, 0.4], [0.1, 0.7]))


def test_mlp_learns_and_is_deterministic():
    data = fake_table(n_subjects=2)
    x, y = data["features"], data["label"]
    model = probe.train_mlp(x, y, 3, seed=1, **MLP)
    proba = probe.predict_proba(model, x)
    assert probe.classification_metrics(y, proba)["accuracy"] > 0.95
    again = probe.predict_proba(probe.train_mlp(x, y, 3, seed=1, **MLP), x)
    np.testing.assert_array_equal(proba, again)


def test_postprocess_is_running_normalize_per_session_then_lds_per_trial():
    data = fake_table(n_subjects=2, n_sessions=2, n_trials=2, n_windows=5, dim=3)
    prior = data["features"][:7]
    got = probe.postprocess(data, prior, decay=0.9, smooth=True)
    mean, var = prior.mean(0), prior.var(0)
    for s in range(2):
        for se in range(2):
            rows = np.flatnonzero((data["subject"] == s) & (data["session"] == se))
            normed = naive_features.running_normalize(data["features"][rows], mean, var, 0.9)
            for t in range(2):
                in_trial = data["trial"][rows] == t
                np.testing.assert_allclose(
                    got[rows[in_trial]],
                    naive_features.lds_smooth(normed[in_trial]),
                    rtol=1e-4,
                    atol=1e-4,
                )
    unsmoothed = probe.postprocess(data, prior, decay=0.9, smooth=False)
    np.testing.assert_allclose(
        unsmoothed[:10],
        features.running_normalize(data["features"][:10], mean, var, 0.9),
        rtol=1e-5,
        atol=1e-5,
    )


def test_postprocess_segments_do_not_collide_for_large_ids():
    """Sessions and trials are segmented by their id tuples, not by packed integers: a
    1000th trial is not confused with the next session (the old packing's collision)."""
    data = fake_table(n_subjects=1, n_sessions=2, n_trials=2, n_windows=6, dim=3)
    prior = data["features"]
    expected = probe.postprocess(data, prior, decay=0.9, smooth=True)
    large = dict(data, session=data["session"] * 1, trial=data["trial"] * 1000)
    np.testing.assert_allclose(
        probe.postprocess(large, prior, decay=0.9, smooth=True), expected, rtol=1e-6
    )
    clash = dict(data, trial=np.where(data["session"] == 0, data["trial"] + 1000, data["trial"]))
    np.testing.assert_allclose(
        probe.postprocess(clash, prior, decay=0.9, smooth=True), expected, rtol=1e-6
    )


def test_zero_shot_never_reads_target_labels():
    sources = [fake_table(seed=s) for s in (1, 2)]
    target = fake_table(seed=1, n_subjects=2)
    result = probe.zero_shot(
        sources, target, n_repeats=2, seed=0, decay=0.99, smooth=False, mlp=MLP
    )
    assert len(result["repeats"]) == 2
    assert result["summary"]["accuracy"]["mean"] > 0.9
    scrambled = dict(target, label=np.full_like(target["label"], 7))
    again = probe.zero_shot(
        sources, scrambled, n_repeats=2, seed=0, decay=0.99, smooth=False, mlp=MLP
    )
    assert again["summary"] == result["summary"]
