"""Scores of features and classifiers: classification metrics, their summaries over folds,
and cross-subject window retrieval.

Metrics (scikit-learn): accuracy, balanced accuracy, macro-F1, AUROC (more than two
classes: macro one-vs-rest by default, as the original code, or macro one-vs-one; binary:
positive-class score), AUPRC (macro average precision over one-hot labels); per test
subject too (`per_subject_metrics`: the cells of the report's paired bootstrap).

Retrieval (`cross_subject_retrieval`): does a feature find the other subject's same
moment? This is what inter-subject contrastive pre-training optimises, measured outside the
training batch (learning-diagnostics protocol): standardize each subject's features (per
feature, over that subject's windows), L2-normalize, then for every window of subject a,
rank the window of subject b at the same (session, stimulus, start) against
`n_candidates - 1` random other windows of subject b. The score is the top-1 accuracy
over all ordered pairs of distinct subjects and their shared windows; chance is
1 / n_candidates.
"""

import itertools
import warnings

import numpy as np
from sklearn import metrics as skm

from mdjpt_jax import paired_stats

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "auprc")
AUROC_KINDS = ("ovr", "ovo")


def macro_auroc(y_true: np.ndarray, proba: np.ndarray, *, multi_class: str = "ovr") -> float:
    """AUROC of class probabilities proba [N, K] against integer labels y_true [N].

    K == 2: the positive-class score's AUROC. K > 2: the macro average over the classes
    present in y_true of one-vs-rest AUROCs ("ovr"), or over their pairs of Hand & Till's
    one-vs-one AUROCs ("ovo"); with every class present these equal scikit-learn's
    `roc_auc_score(..., multi_class=multi_class, average="macro")`. NaN when fewer than two
    classes are present (e.g. one test subject who saw one class).
    """
    if multi_class not in AUROC_KINDS:
        raise ValueError(f"multi_class={multi_class!r}: choose one of {AUROC_KINDS}")
    present = np.unique(y_true)
    if len(present) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return float(skm.roc_auc_score(y_true, proba[:, 1]))
    if multi_class == "ovr":
        return float(np.mean([skm.roc_auc_score(y_true == c, proba[:, c]) for c in present]))
    pair_scores = []
    for a, b in itertools.combinations(present, 2):
        rows = np.isin(y_true, (a, b))
        pair_scores.append(
            0.5
            * (
                skm.roc_auc_score(y_true[rows] == a, proba[rows, a])
                + skm.roc_auc_score(y_true[rows] == b, proba[rows, b])
            )
        )
    return float(np.mean(pair_scores))


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, *, multi_class="ovr") -> dict:
    """Metrics of class probabilities proba [N, K] against integer labels y_true [N].

    AUROC: `macro_auroc` (multi_class "ovr" or "ovo" for K > 2). AUPRC: macro average
    precision over the classes present in y_true. Macro-F1: over the classes present in
    y_true or predicted. On a subset of windows missing some classes (one test subject),
    the macro metrics thus average over the classes that subset can score; AUROC is NaN
    with fewer than two classes.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, np.float64)
    proba = proba / proba.sum(axis=1, keepdims=True)
    y_pred = proba.argmax(axis=1)
    present = np.unique(y_true)
    return dict(
        accuracy=float(skm.accuracy_score(y_true, y_pred)),
        balanced_accuracy=float(skm.balanced_accuracy_score(y_true, y_pred)),
        macro_f1=float(skm.f1_score(y_true, y_pred, average="macro")),
        auroc=macro_auroc(y_true, proba, multi_class=multi_class),
        auprc=float(
            skm.average_precision_score(
                y_true[:, None] == present[None, :], proba[:, present], average="macro"
            )
        ),
    )


def _json_number(value: float):
    """NaN -> None (JSON has no NaN); other floats unchanged."""
    return None if np.isnan(value) else value


def per_subject_metrics(
    y_true: np.ndarray, proba: np.ndarray, subject: np.ndarray, *, multi_class="ovr"
) -> dict:
    """{str(subject): {metric: value}}: `classification_metrics` of each subject's rows of
    y_true [N] / proba [N, K] / subject [N] alone; undefined values (NaN) are None.
    scikit-learn's warnings about classes a subject lacks are silenced (expected here)."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for s in np.unique(subject):
            rows = subject == s
            metrics = classification_metrics(y_true[rows], proba[rows], multi_class=multi_class)
            out[str(s)] = {m: _json_number(v) for m, v in metrics.items()}
    return out


def score(
    y_true: np.ndarray, proba: np.ndarray, subject: np.ndarray, *, n_classes: int, multi_class
) -> dict:
    """A fold's (or repeat's) scores: pooled metrics, per-subject metrics, confusion matrix
    (rows true, columns predicted) of y_true [N] against proba [N, n_classes]."""
    return dict(
        metrics=classification_metrics(y_true, proba, multi_class=multi_class),
        per_subject=per_subject_metrics(y_true, proba, subject, multi_class=multi_class),
        confusion=skm.confusion_matrix(
            y_true, proba.argmax(1), labels=np.arange(n_classes)
        ).tolist(),
    )


def summarize(per_fold: list) -> dict:
    """[{metric: value}] -> {metric: {"mean", "std"}} (sample std over folds; None for one)."""
    return {
        m: dict(
            mean=float(np.mean([f[m] for f in per_fold])),
            std=paired_stats.sample_std([f[m] for f in per_fold]),
        )
        for m in METRICS
    }


def standardize_per_subject(features: np.ndarray, subject: np.ndarray) -> np.ndarray:
    """[N, D] features standardized per feature over each subject's windows, then L2-normalized."""
    x = np.asarray(features, np.float64).copy()
    for s in np.unique(subject):
        rows = subject == s
        x[rows] = (x[rows] - x[rows].mean(0)) / (x[rows].std(0) + 1e-8)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cross_subject_retrieval(
    features: np.ndarray,
    subject: np.ndarray,
    moment: np.ndarray,
    *,
    n_candidates: int = 16,
    seed: int = 0,
) -> float:
    """Top-1 retrieval accuracy of the other subject's window at the same moment.

    Args:
        features: [N, D] one row per window.
        subject: [N] subject id of each window.
        moment: [N, K] ints identifying the moment a window shows, e.g. columns
            (session, stimulus, start); two subjects' windows match when their rows are equal.
        n_candidates: the positive plus n_candidates - 1 random other windows of subject b.
        seed: the draw of the negatives.

    Returns:
        Fraction of queries whose positive scores strictly above every negative (NaN when
        no two subjects share a moment or a subject has fewer than n_candidates windows).
    """
    x = standardize_per_subject(features, subject)
    moment = np.asarray(moment).reshape(len(x), -1)
    _, moment_id = np.unique(moment, axis=0, return_inverse=True)
    moment_id = moment_id.reshape(-1)
    rng = np.random.default_rng(seed)
    rows_of = {s: np.flatnonzero(subject == s) for s in np.unique(subject)}
    hits, total = 0, 0
    for a, rows_a in rows_of.items():
        for b, rows_b in rows_of.items():
            if a == b or len(rows_b) < n_candidates:
                continue
            where_b = {m: i for i, m in enumerate(moment_id[rows_b])}
            query = [(ra, where_b[m]) for ra, m in zip(rows_a, moment_id[rows_a]) if m in where_b]
            if not query:
                continue
            rows_q = np.array([q for q, _ in query])
            positive = np.array([p for _, p in query])
            # n_candidates - 1 distinct negatives per query, never the positive itself.
            draws = np.argsort(rng.random((len(query), len(rows_b) - 1)), axis=1)
            negatives = draws[:, : n_candidates - 1]
            negatives = negatives + (negatives >= positive[:, None])
            sims = x[rows_q] @ x[rows_b].T  # [Q, N_b]
            pos = sims[np.arange(len(query)), positive]
            neg = np.take_along_axis(sims, negatives, axis=1).max(axis=1)
            hits += int(np.sum(pos > neg))
            total += len(query)
    return hits / total if total else float("nan")
