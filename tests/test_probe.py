"""probe.py: folds are distinct and never see test subjects, impossible fold requests are
refused with the maximum, metrics match hand computations and naive references (AUROC
one-vs-rest and one-vs-one), per-subject metrics, the stimulus-held-out split, MLP and
post-processing wiring, zero-shot never reads the target's labels, retrieval on held-out
subjects only."""

import itertools
import json
import math

import numpy as np
import pytest

from configs import downstream
from mdjpt_jax import features, heads, scoring, workdir
from mdjpt_jax.downstream import probe
from mdjpt_jax.downstream.folds import ENUMERATE_MAX_COMBINATIONS, check_folds, subject_folds
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


def naive_auroc_ovr(y, proba):
    """Mean over the classes present of the binary AUROC of class c against the rest."""
    return float(
        np.mean(
            [naive_features.auc_pairs(proba[y == c, c], proba[y != c, c]) for c in np.unique(y)]
        )
    )


def test_subject_folds_disjoint_and_deterministic():
    subjects = np.repeat(np.arange(7), 5)
    folds = subject_folds(subjects, k=2, n_folds=3, seed=4)
    assert folds == subject_folds(subjects, k=2, n_folds=3, seed=4)
    for train, test in folds:
        assert len(train) == 2 and not set(train) & set(test)
        assert sorted(train + test) == list(range(7))
    trained = [s for train, _ in folds for s in train]
    assert len(set(trained)) == 6  # 3 folds x 2, disjoint
    with pytest.raises(ValueError, match="k=7"):
        subject_folds(subjects, k=7, n_folds=1, seed=0)
    with pytest.raises(ValueError, match=r"at most 3 disjoint folds \(or folds='all': up to 21\)"):
        subject_folds(subjects, k=2, n_folds=4, seed=0)  # no cyclic reuse


def test_subject_folds_all_are_distinct_combinations_in_a_seeded_order():
    subjects = np.array([3, 5, 8, 13, 21])
    every = subject_folds(subjects, k=2, n_folds=10, seed=1, scheme="all")
    assert sorted(tuple(train) for train, _ in every) == list(itertools.combinations(subjects, 2))
    for train, test in every:
        assert sorted(train + test) == subjects.tolist() and not set(train) & set(test)
    some = subject_folds(subjects, k=2, n_folds=4, seed=1, scheme="all")
    assert some == subject_folds(subjects, k=2, n_folds=4, seed=1, scheme="all")
    assert len({tuple(train) for train, _ in some}) == 4
    orders = {
        tuple(tuple(t) for t, _ in subject_folds(subjects, 2, 4, seed, scheme="all"))
        for seed in range(5)
    }
    assert len(orders) > 1  # the seed changes which combinations come first
    with pytest.raises(ValueError, match=r"C\(5, 2\) = 10"):
        subject_folds(subjects, k=2, n_folds=11, seed=1, scheme="all")


def test_subject_folds_all_draws_distinct_subsets_when_too_many_to_enumerate():
    subjects = np.arange(30)
    assert math.comb(30, 5) > ENUMERATE_MAX_COMBINATIONS
    folds = subject_folds(subjects, k=5, n_folds=40, seed=0, scheme="all")
    trains = [tuple(train) for train, _ in folds]
    assert len(set(trains)) == 40
    assert all(len(set(t)) == 5 and list(t) == sorted(t) for t in trains)


def test_check_folds_refuses_without_data_naming_the_maximum():
    with pytest.raises(ValueError) as error:
        check_folds(8, 2, 5, "disjoint")
    assert str(error.value) == (
        "few-shot: 5 disjoint folds of k=2 need 10 subjects; the target has 8: at most 4 "
        "disjoint folds (or folds='all': up to 28)"
    )
    check_folds(8, 2, 4, "disjoint")
    check_folds(8, 2, 28, "all")
    with pytest.raises(ValueError, match="28"):
        check_folds(8, 2, 29, "all")
    with pytest.raises(ValueError, match="choose one of"):
        check_folds(8, 2, 1, "cyclic")
    with pytest.raises(ValueError, match="n_folds=0"):
        check_folds(8, 2, 0, "all")


def test_few_shot_trains_only_on_train_subjects(monkeypatch):
    data = fake_table()
    data["features"][:, 0] = data["subject"]  # tag rows by subject
    seen = {"train": [], "test": [], "prior": []}
    real_train, real_predict = heads.train_mlp, heads.predict_proba

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
    monkeypatch.setattr(heads, "train_mlp", spy_train)
    monkeypatch.setattr(heads, "predict_proba", spy_predict)
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
    got = scoring.classification_metrics(y, proba)
    # predictions 0 1 1 1 0 2: 4/6 right; recalls 1/2, 1, 1/2; F1 per class 1/2, 4/5, 2/3.
    assert got["accuracy"] == pytest.approx(4 / 6, abs=1e-12)
    assert got["balanced_accuracy"] == pytest.approx(2 / 3, abs=1e-12)
    assert got["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3, abs=1e-12)
    assert got["auroc"] == pytest.approx(naive_auroc_ovr(y, proba), abs=1e-12)  # default
    auprc = np.mean([naive_features.average_precision(y == c, proba[:, c]) for c in range(3)])
    assert got["auprc"] == pytest.approx(auprc, abs=1e-12)


def test_auroc_one_vs_rest_and_one_vs_one_match_naive_and_differ():
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    proba = np.array(
        [
            [0.6, 0.3, 0.1],
            [0.5, 0.1, 0.4],
            [0.2, 0.5, 0.3],
            [0.4, 0.4, 0.2],
            [0.3, 0.6, 0.1],
            [0.5, 0.2, 0.3],
            [0.1, 0.2, 0.7],
            [0.3, 0.3, 0.4],
        ]
    )
    ovr = scoring.classification_metrics(y, proba, multi_class="ovr")["auroc"]
    ovo = scoring.classification_metrics(y, proba, multi_class="ovo")["auroc"]
    assert ovr == pytest.approx(naive_auroc_ovr(y, proba), abs=1e-12)
    assert ovo == pytest.approx(naive_features.auroc_ovo_macro(y, proba), abs=1e-12)
    assert abs(ovr - ovo) > 1e-3
    # A subset missing class 2 averages over the classes it has; one class: undefined.
    rows = y < 2
    assert scoring.macro_auroc(y[rows], proba[rows]) == pytest.approx(
        naive_auroc_ovr(y[rows], proba[rows]), abs=1e-12
    )
    assert np.isnan(scoring.macro_auroc(y[:4], proba[:4]))
    with pytest.raises(ValueError, match="multi_class"):
        scoring.macro_auroc(y, proba, multi_class="micro")


def test_per_subject_metrics_are_the_metrics_of_each_subjects_rows():
    rng = np.random.default_rng(0)
    subject = np.repeat([4, 7, 9], 12)
    y = np.tile(np.arange(3), 12)
    y[subject == 9] = 1  # subject 9 saw one class: its AUROC is undefined
    proba = rng.dirichlet(np.ones(3), size=len(y))
    got = scoring.score(y, proba, subject, n_classes=3, multi_class="ovr")
    assert set(got["per_subject"]) == {"4", "7", "9"}
    for s in (4, 7):
        expected = scoring.classification_metrics(y[subject == s], proba[subject == s])
        assert got["per_subject"][str(s)] == pytest.approx(expected, abs=1e-12)
    assert got["per_subject"]["9"]["auroc"] is None
    assert got["metrics"] == scoring.classification_metrics(y, proba)
    assert np.sum(got["confusion"]) == len(y)
    json.dumps(got, allow_nan=False)  # no NaN reaches the JSON


def test_binary_metrics_use_positive_score():
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    got = scoring.classification_metrics(y, proba)
    assert got["auroc"] == pytest.approx(naive_features.auc_pairs([0.8, 0.4], [0.1, 0.7]))


def test_mlp_learns_and_is_deterministic():
    data = fake_table(n_subjects=2)
    x, y = data["features"], data["label"]
    model = heads.train_mlp(x, y, 3, seed=1, **MLP)
    proba = heads.predict_proba(model, x)
    assert scoring.classification_metrics(y, proba)["accuracy"] > 0.95
    again = heads.predict_proba(heads.train_mlp(x, y, 3, seed=1, **MLP), x)
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
    for repeat in result["repeats"]:
        assert set(repeat["per_subject"]) == {"0", "1"}  # the target's subjects


def stub_mlp(monkeypatch, seen: dict):
    """Replaces post-processing by the identity (the tags stay readable) and the MLP by a
    recorder: the priors go to seen["prior"], training rows' features and labels to
    seen["train"], test rows' features and the random probabilities returned for them to
    seen["test"]."""
    rng = np.random.default_rng(0)
    seen.update(train=[], test=[], prior=[])

    def spy_postprocess(d, prior, **kwargs):
        seen["prior"].append(prior.copy())
        return d["features"]

    def stub_train(x, y, n_classes, **kwargs):
        seen["train"].append((x.copy(), y.copy()))
        return n_classes

    def stub_predict(n_classes, x):
        proba = rng.dirichlet(np.ones(n_classes), size=len(x))
        seen["test"].append((x.copy(), proba))
        return proba

    monkeypatch.setattr(probe, "postprocess", spy_postprocess)
    monkeypatch.setattr(heads, "train_mlp", stub_train)
    monkeypatch.setattr(heads, "predict_proba", stub_predict)


def tagged_table(**kwargs):
    """fake_table whose feature columns 0 and 1 are each row's subject and stimulus."""
    data = fake_table(**kwargs)
    data["features"][:, 0] = data["subject"]
    data["features"][:, 1] = data["stimulus"]
    return data


def test_few_shot_per_subject_metrics_are_each_test_subjects_windows(monkeypatch):
    seen = {}
    stub_mlp(monkeypatch, seen)
    data = tagged_table(n_subjects=5)
    result = probe.few_shot(
        data, k=2, n_folds=2, seed=0, decay=0.99, smooth=False, mlp={}, scheme="all"
    )
    assert result["scheme"] == "all" and len(result["folds"]) == 2
    for fold, (x, proba) in zip(result["folds"], seen["test"]):
        subject = x[:, 0].astype(int)
        test = ~np.isin(data["subject"], fold["train_subjects"])
        np.testing.assert_array_equal(subject, data["subject"][test])
        assert set(fold["per_subject"]) == {str(s) for s in fold["test_subjects"]}
        for s in fold["test_subjects"]:
            rows = subject == s
            expected = scoring.classification_metrics(data["label"][test][rows], proba[rows])
            assert fold["per_subject"][str(s)] == pytest.approx(expected, abs=1e-12)


def test_stimulus_held_out_split_keeps_stimuli_and_subjects_apart(monkeypatch):
    seen = {}
    stub_mlp(monkeypatch, seen)
    # 7 trials, label = trial % 3: class 0 has stimuli {0, 3, 6}, class 1 {1, 4}, class 2 {2, 5}
    data = tagged_table(n_subjects=4, n_trials=7)
    result = probe.few_shot(
        data, k=1, n_folds=3, seed=0, decay=0.99, smooth=False, mlp={}, heldout_stimuli=True
    )
    plain = probe.few_shot(data, k=1, n_folds=3, seed=0, decay=0.99, smooth=False, mlp={})
    assert [(f["train_subjects"], f["test_subjects"]) for f in result["folds"]] == [
        (f["train_subjects"], f["test_subjects"]) for f in plain["folds"]
    ]  # the same subject folds as few-shot
    splits = set()
    for i, fold in enumerate(result["folds"]):
        train_stim, test_stim = fold["train_stimuli"], fold["test_stimuli"]
        assert not set(train_stim) & set(test_stim)
        assert sorted(train_stim + test_stim) == list(range(7))
        # per class: floor(n / 2) test stimuli, the odd one out goes to training
        assert sorted(s % 3 for s in test_stim) == [0, 1, 2]
        assert sorted(s % 3 for s in train_stim) == [0, 0, 1, 2]
        (train_x, train_y), (test_x, _), prior = seen["train"][i], seen["test"][i], seen["prior"][i]
        assert set(train_x[:, 0].astype(int)) == set(fold["train_subjects"])
        assert set(train_x[:, 1].astype(int)) == set(train_stim)
        np.testing.assert_array_equal(train_y, train_x[:, 1].astype(int) % 3)
        assert set(test_x[:, 0].astype(int)) == set(fold["test_subjects"])
        assert set(test_x[:, 1].astype(int)) == set(test_stim)
        np.testing.assert_array_equal(prior, train_x)  # prior = the training windows
        splits.add(tuple(test_stim))
    assert len(splits) > 1  # each fold draws its own split
    assert probe.split_stimuli(data["stimulus"], data["label"], seed=(0, 1)) == (
        result["folds"][1]["train_stimuli"],
        result["folds"][1]["test_stimuli"],
    )


def test_stimulus_held_out_is_skipped_with_the_reason(monkeypatch):
    seen = {}
    stub_mlp(monkeypatch, seen)
    data = tagged_table(n_trials=4)  # class c1 has one stimulus (1), c2 one (2)
    result = probe.few_shot(
        data, k=1, n_folds=2, seed=0, decay=0.99, smooth=False, mlp={}, heldout_stimuli=True
    )
    assert result == {
        "skipped": "class 'c1' has 1 stimulus; the stimulus-held-out split needs >= 2 per class"
    }
    assert not seen["train"]
    mixed = tagged_table(n_trials=6)
    mixed["stimulus"] = mixed["trial"] % 2  # stimulus 0 shows classes 0, 1 and 2
    reason = probe.stimulus_split_problem(mixed["stimulus"], mixed["label"], mixed["label_names"])
    assert "not a function of the stimulus" in reason


def write_features(root, method, seed, dataset, data):
    workdir.save_features(
        workdir.feature_path(str(root), method, seed, dataset),
        data,
        data["features"],
        label_names=data["label_names"],
        valence_names=data["valence_names"],
        provenance={"dataset": dataset},
    )


def test_retrieval_runs_on_the_held_out_subjects_only(tmp_path, monkeypatch):
    write_features(tmp_path, "joint", 0, "t/x", fake_table(n_subjects=3))
    write_features(tmp_path, "joint", 0, "s/a", fake_table(n_subjects=5, n_windows=20, seed=1))
    seen = []
    real = scoring.cross_subject_retrieval

    def spy(feats, subject, moment, **kwargs):
        seen.append(np.unique(subject).tolist())
        return real(feats, subject, moment, **kwargs)

    monkeypatch.setattr(scoring, "cross_subject_retrieval", spy)
    monkeypatch.setattr(probe, "few_shot", lambda *a, **k: {})
    protocol = dict(
        seed=0, decay=0.99, lds=False, mlp={}, auroc_multi_class="ovr", k=1, n_folds=1,
        folds="disjoint", heldout_stimuli=False, n_repeats=1,
    )  # fmt: skip
    result = probe.probe_features(
        str(tmp_path), "joint", 0, target="t/x", sources=[], retrieval_subjects={"s/a": [2, 4]},
        protocol=protocol,
    )  # fmt: skip
    assert seen == [[2, 4]] and result["retrieval_subjects"] == {"s/a": [2, 4]}
    d = workdir.load_features(workdir.feature_path(str(tmp_path), "joint", 0, "s/a"))
    rows = np.isin(d["subject"], [2, 4])
    moment = np.stack([d["session"], d["stimulus"], d["start"]], axis=1)[rows]
    assert result["retrieval"]["s/a"] == real(d["features"][rows], d["subject"][rows], moment)
    with pytest.raises(ValueError, match="needs >= 2"):
        probe.heldout_retrieval(d, [4, 99], seed=0)


def small_config(**fewshot):
    config = downstream.get_config("synthetic")
    config.target, config.sources = "t/x", ("s/a",)
    config.methods, config.seeds = ("joint",), (0,)
    for key, value in fewshot.items():
        config.fewshot[key] = value
    return config


def test_run_checks_folds_and_held_out_subjects_before_probing(tmp_path):
    write_features(tmp_path, "joint", 0, "t/x", fake_table(n_subjects=4))
    write_features(tmp_path, "joint", 0, "s/a", fake_table(n_subjects=5, seed=1))
    config = small_config(k=2, n_folds=3, folds="disjoint")
    with pytest.raises(ValueError, match=r"at most 2 disjoint folds \(or folds='all': up to 6\)"):
        probe.run(config, str(tmp_path))
    assert not (tmp_path / "probe").exists()
    config = small_config(n_folds=2)
    assert probe.retrieval_subject_ids(config, str(tmp_path)) == {"s/a": [3, 4]}  # highest ids
    config.heldout_subjects = 1
    with pytest.raises(ValueError, match="needs >= 2"):
        probe.run(config, str(tmp_path))
    with config.unlocked():
        config.heldout_subject_ids = {"s/a": (0, 2)}
    assert probe.retrieval_subject_ids(config, str(tmp_path)) == {"s/a": [0, 2]}
    assert not (tmp_path / "probe").exists()
