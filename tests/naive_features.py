"""Slow, obvious numpy (float64) oracles for the downstream feature tests. Test-only."""

import numpy as np
import scipy.linalg


def running_normalize(x, mean, var, decay=0.99, eps=1e-6):
    """Loop: recompute mean/var of x[:t+1] from scratch at every step."""
    x = np.asarray(x, np.float64)
    out = np.zeros_like(x)
    for t in range(x.shape[0]):
        weight = decay**t
        seen = x[: t + 1]
        mu = weight * mean + (1 - weight) * seen.mean(axis=0)
        sigma2 = weight * var + (1 - weight) * seen.var(axis=0)
        out[t] = (x[t] - mu) / np.sqrt(sigma2 + eps)
    return out


def euclidean_alignment(windows, ridge=1e-6):
    """He & Wu 2019 by the formula: R = mean_n X_n X_n^T / T (a loop), eps = ridge *
    trace(R) / C, every window -> inv(sqrtm(R + eps I)) X_n (scipy's Schur-based sqrtm)."""
    windows = np.asarray(windows, np.float64)
    n_chans, n_times = windows.shape[1:]
    reference = np.zeros((n_chans, n_chans))
    for x in windows:
        reference += x @ x.T / n_times
    reference /= len(windows)
    reference += ridge * np.trace(reference) / n_chans * np.eye(n_chans)
    transform = np.linalg.inv(np.real(scipy.linalg.sqrtm(reference)))
    return np.stack([transform @ x for x in windows])


def kalman_rts_1d(y, q=1e-4, r=1.0, v0=0.01):
    """Textbook scalar Kalman filter + RTS smoother, A = C = 1, mu0 = mean(y)."""
    n = len(y)
    m_pred, p_pred = np.zeros(n), np.zeros(n)
    m_filt, p_filt = np.zeros(n), np.zeros(n)
    for t in range(n):
        if t == 0:
            m_pred[t], p_pred[t] = np.mean(y), v0
        else:
            m_pred[t], p_pred[t] = m_filt[t - 1], p_filt[t - 1] + q
        gain = p_pred[t] / (p_pred[t] + r)
        m_filt[t] = m_pred[t] + gain * (y[t] - m_pred[t])
        p_filt[t] = (1 - gain) * p_pred[t]
    smoothed = m_filt.copy()
    for t in range(n - 2, -1, -1):
        j = p_filt[t] / p_pred[t + 1]
        smoothed[t] = m_filt[t] + j * (smoothed[t + 1] - m_pred[t + 1])
    return smoothed


def lds_smooth(x, **kwargs):
    x = np.asarray(x, np.float64)
    return np.stack([kalman_rts_1d(x[:, f], **kwargs) for f in range(x.shape[1])], axis=1)


def auc_pairs(pos_scores, neg_scores):
    """Mann-Whitney AUC: P(score_pos > score_neg) + 0.5 P(tie), by counting all pairs."""
    wins = sum((p > n) + 0.5 * (p == n) for p in pos_scores for n in neg_scores)
    return wins / (len(pos_scores) * len(neg_scores))


def auroc_ovo_macro(y, proba):
    """Hand & Till one-vs-one AUROC: mean over class pairs of the two directed AUCs."""
    classes = np.unique(y)
    values = []
    for i, a in enumerate(classes):
        for b in classes[i + 1 :]:
            auc_ab = auc_pairs(proba[y == a, a], proba[y == b, a])
            auc_ba = auc_pairs(proba[y == b, b], proba[y == a, b])
            values.append(0.5 * (auc_ab + auc_ba))
    return float(np.mean(values))


def average_precision(is_positive, scores):
    """AP = sum over positives (ranked by score) of precision at that rank / #positives."""
    order = np.argsort(-scores, kind="stable")
    hits = np.asarray(is_positive)[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(np.sum(precision * hits) / hits.sum())
