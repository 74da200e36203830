"""Slow, obvious numpy (float64) oracles for the model and loss tests. Test-only."""

import numpy as np
from scipy.special import erf, logsumexp


def elu_plus_one(x):
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def linear_attention(q, k, v, causal, eps=1e-5):
    """O(N^2) loop: out_t = sum_s phi(q_t).phi(k_s) v_s / (sum_s phi(q_t).phi(k_s) + eps)."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    n, h = q.shape[-3], q.shape[-2]
    lead = q.shape[:-3]
    qf = elu_plus_one(q).reshape((-1, n, h, q.shape[-1]))
    kf = elu_plus_one(k).reshape((-1, n, h, k.shape[-1]))
    vf = v.reshape((-1, n, h, v.shape[-1]))
    out = np.zeros(vf.shape)
    for b in range(qf.shape[0]):
        for head in range(h):
            for t in range(n):
                last = t + 1 if causal else n
                weights = np.array([qf[b, t, head] @ kf[b, s, head] for s in range(last)])
                out[b, t, head] = weights @ vf[b, :last, head] / (weights.sum() + eps)
    return out.reshape(lead + out.shape[1:])


def extract_patches(x, patch_size, stride):
    """[..., T] -> [..., N, P] by slicing each patch."""
    x = np.asarray(x)
    n = (x.shape[-1] - patch_size) // stride + 1
    return np.stack([x[..., i * stride : i * stride + patch_size] for i in range(n)], axis=-2)


def stratified_norm(x, time_axis=-1, eps=1e-3):
    """Per subject block s and feature: (x - mean) / (std_unbiased + eps) over (W, time)."""
    x = np.asarray(x, np.float64)
    moved = np.moveaxis(x, time_axis, 2)  # [S, W, N, ...]
    out = np.empty_like(moved)
    for s in range(moved.shape[0]):
        block = moved[s].reshape((-1,) + moved.shape[3:])  # [W*N, features...]
        out[s] = ((block - block.mean(0)) / (block.std(0, ddof=1) + eps)).reshape(moved.shape[1:])
    return np.moveaxis(out, 2, time_axis)


def _layer_norm(x, scale, bias, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale + bias


def _dwconv(x, kernel, bias, causal):
    """Depthwise conv over axis -2 of [B, N, D]; kernel [3, D]; torch cross-correlation."""
    n = x.shape[-2]
    left = 2 if causal else 1
    padded = np.concatenate([np.zeros_like(x[:, :left]), x, np.zeros_like(x[:, : 2 - left])], 1)
    return sum(padded[:, j : j + n] * kernel[j] for j in range(3)) + bias


def mlla_block(x, p, num_heads, causal):
    """One MLLA block on [B, N, D] with params dict p (numpy), written out step by step."""
    silu = lambda a: a / (1.0 + np.exp(-a))
    gelu = lambda a: 0.5 * a * (1.0 + erf(a / np.sqrt(2.0)))
    lin = lambda a, name: a @ p[name + ".kernel"] + p[name + ".bias"]
    x = np.asarray(x, np.float64)
    x = x + _dwconv(x, p["cpe1.kernel"], p["cpe1.bias"], causal)
    y = _layer_norm(x, p["norm1.scale"], p["norm1.bias"])
    gate = silu(lin(y, "gate_proj"))
    z = silu(_dwconv(lin(y, "in_proj"), p["dwc.kernel"], p["dwc.bias"], causal))
    b, n, d = z.shape
    q, k, v = np.split(lin(z, "qkv"), 3, axis=-1)
    heads = lambda a: a.reshape(b, n, num_heads, d // num_heads)
    attn = linear_attention(heads(q), heads(k), heads(v), causal).reshape(b, n, d)
    x = x + lin(lin(attn, "attn_out") * gate, "out_proj")
    x = x + _dwconv(x, p["cpe2.kernel"], p["cpe2.bias"], causal)
    hidden = gelu(lin(_layer_norm(x, p["norm2.scale"], p["norm2.bias"]), "ffn_in"))
    return x + lin(hidden, "ffn_out")


def nt_xent(z, temperature=0.07):
    """Loop over the 2M anchors: -log softmax of the positive among the other 2M-1."""
    z = np.asarray(z, np.float64)
    m = z.shape[1]
    flat = z.reshape(2 * m, -1)
    losses = []
    for i in range(2 * m):
        others = [j for j in range(2 * m) if j != i]
        logits = np.array([flat[i] @ flat[j] for j in others]) / temperature
        positive = others.index((i + m) % (2 * m))
        losses.append(logsumexp(logits) - logits[positive])
    return float(np.mean(losses))


def original_cda_covariance(data):
    """A numpy transcription of the original code's `CDALoss.cov_mat` (src/loss/CDA_loss.py)
    before it zeroes the diagonal: data [B, dim, C, T] -> [B, dim, C, C]."""
    data = np.asarray(data, np.float64)
    b, dim, c, t = data.shape
    centered = data - data.mean(axis=-1, keepdims=True)
    centered = np.transpose(centered, (0, 1, 3, 2))  # permute(0, 1, 3, 2): [B, dim, T, C]
    centered = centered.reshape(b * dim, c, t)  # .reshape(B * dim, C, T), no transpose
    cov = np.stack([m @ m.T for m in centered]) / (t - 1)  # torch.bmm(x, x.permute(0, 2, 1))
    return cov.reshape(b, dim, c, c)


def cda(x, group_ids, num_groups, covariance=None):
    """Arithmetic-centroid CDA with np.cov per window and feature (or `covariance`: a
    function of one window [F, C, N] -> [F, C, C]); loops everywhere."""
    x = np.asarray(x, np.float64)
    n_windows, n_features = x.shape[:2]
    centroids = {}
    for g in range(num_groups):
        members = [b for b in range(n_windows) if group_ids[b] == g]
        if not members:
            continue
        covs = []
        for b in members:
            if covariance is None:
                per_feature = [np.cov(x[b, f]) for f in range(n_features)]  # rows = channels
            else:
                per_feature = list(covariance(x[b]))
            covs.append([c - np.diag(np.diag(c)) for c in per_feature])
        centroids[g] = np.mean(np.array(covs), axis=0)
    groups = sorted(centroids)
    total = 0.0
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            for f in range(n_features):
                total += np.sqrt(np.sum((centroids[a][f] - centroids[b][f]) ** 2))
    return float(np.log(1.0 + total))


def multiscale_conv(x, kernel, bias, dilations, causal):
    """torch Conv2d(F, F*M, (C, 3), dilation=(1, d), groups=F) per dilation, by loops.

    x [B, F, C, N]; kernel [G, F*M, 1, C, K]; bias [G, F*M] -> [B, G*F*M, N] (zero padded
    along N: centered, or all on the left when causal).
    """
    x, kernel, bias = (np.asarray(a, np.float64) for a in (x, kernel, bias))
    n_batch, n_feat, _, n = x.shape
    n_out, size = kernel.shape[1], kernel.shape[-1]
    per_feature = n_out // n_feat
    out = np.zeros((n_batch, len(dilations) * n_out, n))
    for g, dil in enumerate(dilations):
        pad = (size - 1) * dil
        left = pad if causal else pad // 2
        xp = np.pad(x, [(0, 0)] * 3 + [(left, pad - left)])
        for o in range(n_out):
            f = o // per_feature
            for t in range(n):
                window = xp[:, f, :, t : t + pad + 1 : dil]  # [B, C, K]
                out[:, g * n_out + o, t] = bias[g, o] + np.einsum(
                    "bck,ck->b", window, kernel[g, o, 0]
                )
    return out
