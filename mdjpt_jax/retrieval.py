"""Cross-subject window retrieval: does a feature find the other subject's same moment?

This is what inter-subject contrastive pre-training optimises, measured outside the
training batch (learning-diagnostics protocol): standardize each subject's features (per
feature, over that subject's windows), L2-normalize, then for every window of subject a,
rank the window of subject b at the same (session, stimulus, start) against
`n_candidates - 1` random other windows of subject b. The score is the top-1 accuracy
over all ordered pairs of distinct subjects and their shared windows; chance is
1 / n_candidates.
"""

import numpy as np


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
