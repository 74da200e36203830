"""Few-shot and zero-shot probing of frozen per-window features.

Protocols (DESIGN.md "Downstream"):
- Post-processing of every window sequence: `features.running_normalize` per
  subject-session (time order, prior = mean/var of the TRAINING windows' raw features),
  then `features.lds_smooth` per trial.
- Few-shot: an MLP (hidden 128 -> 64, ReLU, dropout; flax.nnx + optax AdamW) trained for
  a fixed number of epochs on the windows of k labelled subjects of the target dataset,
  tested on all its other subjects; several folds whose training subjects come from one
  seeded permutation of the subjects. Nothing is selected on test subjects.
- Zero-shot: the same MLP trained on the OTHER datasets' negative vs positive windows
  (shared valence space) and applied to the target's negative/positive windows; the
  target's labels are used only to score. Repeated over seeds (std over seeds).
Metrics (scikit-learn): accuracy, balanced accuracy, macro-F1, AUROC (one-vs-one macro;
binary: positive-class score), AUPRC (macro average precision over one-hot labels).
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn import metrics as skm

from mdjpt_jax import features, retrieval, workdir

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "auprc")


# ----------------------------------------------------------------------------- metrics


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict:
    """Metrics of class probabilities proba [N, K] against integer labels y_true [N]."""
    n_classes = proba.shape[1]
    proba = np.asarray(proba, np.float64)
    proba = proba / proba.sum(axis=1, keepdims=True)
    y_pred = proba.argmax(axis=1)
    labels = np.arange(n_classes)
    if n_classes == 2:
        auroc = skm.roc_auc_score(y_true, proba[:, 1])
    else:
        auroc = skm.roc_auc_score(y_true, proba, multi_class="ovo", average="macro", labels=labels)
    return dict(
        accuracy=float(skm.accuracy_score(y_true, y_pred)),
        balanced_accuracy=float(skm.balanced_accuracy_score(y_true, y_pred)),
        macro_f1=float(skm.f1_score(y_true, y_pred, average="macro", labels=labels)),
        auroc=float(auroc),
        auprc=float(skm.average_precision_score(np.eye(n_classes)[y_true], proba, average="macro")),
    )


def summarize(per_fold: list) -> dict:
    """[{metric: value}] -> {metric: {"mean", "std"}} (population std over folds)."""
    return {
        m: dict(
            mean=float(np.mean([f[m] for f in per_fold])),
            std=float(np.std([f[m] for f in per_fold])),
        )
        for m in METRICS
    }


# ----------------------------------------------------------------------------- folds


def subject_folds(subjects, k: int, n_folds: int, seed: int) -> list:
    """Few-shot folds: (train_subjects, test_subjects) with k training subjects each.

    Training subjects of fold i are positions [i*k, (i+1)*k) of a seeded permutation of
    the subjects, extended cyclically, so training sets differ between folds (and are
    disjoint while n_folds * k <= #subjects). Test = every other subject of the dataset.
    """
    subjects = np.unique(np.asarray(subjects))
    if not 0 < k < len(subjects):
        raise ValueError(f"few-shot k={k} needs 0 < k < #subjects={len(subjects)}")
    order = np.random.default_rng(seed).permutation(subjects)
    folds = []
    for i in range(n_folds):
        train = np.sort(order[(np.arange(k) + i * k) % len(subjects)])
        folds.append((train.tolist(), np.setdiff1d(subjects, train).tolist()))
    return folds


# ----------------------------------------------------------------------------- post-processing


def _apply_by_segment(fn, x: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
    """Applies fn [L, F] -> [L, F] to each segment (rows sharing an id, kept in row order);
    segments of equal length are stacked and vmapped (one compile per length)."""
    out = np.empty_like(x)
    _, inverse = np.unique(segment_ids, return_inverse=True)
    segments = [np.flatnonzero(inverse == s) for s in range(inverse.max() + 1)]
    for length in sorted({len(s) for s in segments}):
        group = np.stack([s for s in segments if len(s) == length])  # [G, L]
        out[group] = np.asarray(jax.vmap(fn)(jnp.asarray(x[group])))
    return out


def postprocess(data: dict, prior: np.ndarray, *, decay: float, smooth: bool) -> np.ndarray:
    """Running normalization per subject-session then LDS per trial.

    Args:
        data: window table from `workdir.load_features`, sorted in time order.
        prior: [M, D] raw features of the TRAINING windows; their mean/var start the
            running statistics of every session.
        decay: prior weight factor per window.
        smooth: apply `lds_smooth` per trial.

    Returns:
        [N, D] float32 post-processed features.
    """
    x = np.asarray(data["features"], np.float32)
    mean, var = prior.mean(axis=0), prior.var(axis=0)
    session_ids = _segment_ids(data, ("subject", "session"))
    normalize = jax.jit(lambda seq: features.running_normalize(seq, mean, var, decay))
    x = _apply_by_segment(normalize, x, session_ids)
    if smooth:
        x = _apply_by_segment(
            jax.jit(features.lds_smooth), x, _segment_ids(data, ("subject", "session", "trial"))
        )
    return x


def _segment_ids(data: dict, keys) -> np.ndarray:
    """[N] one id per distinct combination of the integer columns `keys` (no packing)."""
    _, ids = np.unique(np.stack([data[k] for k in keys], axis=1), axis=0, return_inverse=True)
    return ids.reshape(-1)


# ----------------------------------------------------------------------------- MLP probe


class MLP(nnx.Module):
    """in_dim -> hidden... (ReLU, dropout) -> n_classes logits."""

    def __init__(
        self, in_dim: int, n_classes: int, *, hidden=(128, 64), dropout: float = 0.5, rngs: nnx.Rngs
    ):
        dims = (in_dim,) + tuple(hidden)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims, dims[1:])])
        self.dropout = nnx.Dropout(dropout)
        self.head = nnx.Linear(dims[-1], n_classes, rngs=rngs)

    def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        """x [B, in_dim] -> logits [B, n_classes]; dropout only when a key is given."""
        for i, layer in enumerate(self.layers):
            x = jax.nn.relu(layer(x))
            if key is not None:
                x = self.dropout(x, deterministic=False, rngs=jax.random.fold_in(key, i))
        return self.head(x)


def _batch_indices(n: int, batch_size: int, epochs: int, rng) -> np.ndarray:
    """[epochs * batches_per_epoch, B] row indices: a fresh permutation per epoch, the last
    partial batch dropped (B = min(batch_size, n))."""
    size = min(batch_size, n)
    per_epoch = n // size
    return np.concatenate(
        [rng.permutation(n)[: per_epoch * size].reshape(per_epoch, size) for _ in range(epochs)]
    )


@functools.partial(jax.jit, static_argnames=("graphdef", "learning_rate", "weight_decay"))
def _fit(params, x, y, steps, key, *, graphdef, learning_rate, weight_decay):
    """AdamW on softmax cross-entropy over the minibatch index rows `steps` [S, B]."""
    tx = optax.adamw(learning_rate, weight_decay=weight_decay)

    def loss_fn(p, idx, step_key):
        logits = nnx.merge(graphdef, p)(x[idx], key=step_key)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y[idx]).mean()

    def step(carry, inputs):
        p, opt_state = carry
        idx, i = inputs
        grads = jax.grad(loss_fn)(p, idx, jax.random.fold_in(key, i))
        updates, opt_state = tx.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), None

    (params, _), _ = jax.lax.scan(
        step, (params, tx.init(params)), (steps, jnp.arange(steps.shape[0]))
    )
    return params


def train_mlp(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    hidden,
    dropout: float,
    learning_rate: float,
    weight_decay: float,
    epochs: int,
    batch_size: int,
    seed: int,
) -> MLP:
    """Trains an MLP probe for a fixed number of epochs (no early stopping, no selection).

    Args:
        x: [N, D] features; y: [N] int labels in [0, n_classes).
        hidden, dropout: MLP sizes and dropout rate.
        learning_rate, weight_decay: AdamW.
        epochs, batch_size: passes over x and windows per step.
        seed: initialisation, dropout and minibatch order.
    """
    model = MLP(
        x.shape[1], n_classes, hidden=tuple(hidden), dropout=dropout, rngs=nnx.Rngs(params=seed)
    )
    graphdef, params = nnx.split(model)
    steps = _batch_indices(len(x), batch_size, epochs, np.random.default_rng(seed))
    params = _fit(
        params,
        jnp.asarray(x, jnp.float32),
        jnp.asarray(y, jnp.int32),
        jnp.asarray(steps),
        jax.random.key(seed),
        graphdef=graphdef,
        learning_rate=float(learning_rate),
        weight_decay=float(weight_decay),
    )
    return nnx.merge(graphdef, params)


@nnx.jit
def _logits(model: MLP, x: jax.Array) -> jax.Array:
    return model(x)


def predict_proba(model: MLP, x: np.ndarray) -> np.ndarray:
    """[N, D] -> [N, K] softmax probabilities (no dropout)."""
    return np.asarray(jax.nn.softmax(_logits(model, jnp.asarray(x, jnp.float32))))


# ----------------------------------------------------------------------------- protocols


def few_shot(
    data: dict,
    *,
    k: int,
    n_folds: int,
    seed: int,
    decay: float,
    smooth: bool,
    mlp: dict,
    mlp_seed: int | None = None,
) -> dict:
    """Few-shot protocol on one dataset's window table; returns per-fold results + summary.

    Args:
        data: `workdir.load_features` output of the target dataset.
        k, n_folds, seed: see `subject_folds`.
        decay, smooth: see `postprocess`.
        mlp: keyword arguments of `train_mlp` except x, y, n_classes and seed.
        mlp_seed: fold i's MLP trains with mlp_seed + i (default: `seed`).
    """
    mlp_seed = seed if mlp_seed is None else mlp_seed
    n_classes = len(data["label_names"])
    folds = []
    for i, (train_subj, test_subj) in enumerate(subject_folds(data["subject"], k, n_folds, seed)):
        train = np.isin(data["subject"], train_subj)
        x = postprocess(data, data["features"][train], decay=decay, smooth=smooth)
        model = train_mlp(x[train], data["label"][train], n_classes, seed=mlp_seed + i, **mlp)
        proba = predict_proba(model, x[~train])
        y_test = data["label"][~train]
        folds.append(
            dict(
                train_subjects=train_subj,
                test_subjects=test_subj,
                metrics=classification_metrics(y_test, proba),
                confusion=skm.confusion_matrix(
                    y_test, proba.argmax(1), labels=np.arange(n_classes)
                ).tolist(),
            )
        )
    return dict(
        k=k,
        seed=seed,
        class_names=list(data["label_names"]),
        folds=folds,
        summary=summarize([f["metrics"] for f in folds]),
    )


def _valence_windows(data: dict, x: np.ndarray):
    """The negative and positive windows of x and their binary labels (1 = positive), by
    the valence names the feature file carries."""
    names = list(data["valence_names"])
    negative, positive = names.index("negative"), names.index("positive")
    keep = np.isin(data["valence"], (negative, positive))
    return x[keep], (data["valence"][keep] == positive).astype(np.int32)


def zero_shot(
    sources: list, target: dict, *, n_repeats: int, seed: int, decay: float, smooth: bool, mlp: dict
) -> dict:
    """Zero-shot protocol: negative-vs-positive MLP on the source datasets, scored on target.

    Every dataset is post-processed with the prior of the pooled SOURCE features; the
    target's labels/valence only select and score its negative/positive windows.
    """
    prior = np.concatenate([s["features"] for s in sources])
    train_x, train_y = [], []
    for source in sources:
        xs, ys = _valence_windows(source, postprocess(source, prior, decay=decay, smooth=smooth))
        train_x.append(xs)
        train_y.append(ys)
    target_x, target_y = _valence_windows(
        target, postprocess(target, prior, decay=decay, smooth=smooth)
    )
    repeats = []
    for i in range(n_repeats):
        model = train_mlp(np.concatenate(train_x), np.concatenate(train_y), 2, seed=seed + i, **mlp)
        proba = predict_proba(model, target_x)
        repeats.append(
            dict(
                seed=seed + i,
                metrics=classification_metrics(target_y, proba),
                confusion=skm.confusion_matrix(target_y, proba.argmax(1), labels=[0, 1]).tolist(),
            )
        )
    return dict(
        class_names=["negative", "positive"],
        repeats=repeats,
        summary=summarize([r["metrics"] for r in repeats]),
    )


# ----------------------------------------------------------------------------- entry


def probe_features(
    root: str, method: str, seed: int, *, target: str, sources, retrieval_datasets, protocol: dict
) -> dict:
    """Few-shot (+ zero-shot when sources are given) results of one feature set, and the
    cross-subject retrieval of its features on `retrieval_datasets`.

    The MLPs of pre-training seed s use probe seed protocol["seed"] + 1000 s; the few-shot
    folds (which subjects are labelled) are the same for every seed.
    """
    fseed = workdir.feature_seed(method, seed)
    data = workdir.load_features(workdir.feature_path(root, method, fseed, target))
    mlp_seed = protocol["seed"] + 1000 * seed
    result = dict(
        method=method, seed=seed, target=target, protocol=protocol, provenance=data["provenance"]
    )
    common = dict(decay=protocol["decay"], smooth=protocol["lds"], mlp=protocol["mlp"])
    result["few_shot"] = few_shot(
        data,
        k=protocol["k"],
        n_folds=protocol["n_folds"],
        seed=protocol["seed"],
        mlp_seed=mlp_seed,
        **common,
    )
    if sources:
        source_data = [
            workdir.load_features(workdir.feature_path(root, method, fseed, s)) for s in sources
        ]
        result["zero_shot"] = zero_shot(
            source_data, data, n_repeats=protocol["n_repeats"], seed=mlp_seed, **common
        )
    result["retrieval"] = {}
    for dataset in retrieval_datasets:
        d = workdir.load_features(workdir.feature_path(root, method, fseed, dataset))
        moment = np.stack([d["session"], d["stimulus"], d["start"]], axis=1)
        result["retrieval"][dataset] = retrieval.cross_subject_retrieval(
            d["features"], d["subject"], moment, seed=protocol["seed"]
        )
    return result


def run(config, root: str) -> dict:
    """Probes every (method, seed) feature set; writes ROOT/probe/<method>/seed<k>.json and
    ROOT/probe/results.json ({method: {seed: result}}).

    A result file is re-used when its protocol and feature provenance are unchanged.
    """
    protocol = dict(
        k=config.fewshot.k,
        n_folds=config.fewshot.n_folds,
        seed=config.probe_seed,
        n_repeats=config.zeroshot.n_repeats,
        decay=config.postprocess.decay,
        lds=config.postprocess.lds,
        mlp=dict(
            hidden=list(config.mlp.hidden),
            dropout=config.mlp.dropout,
            learning_rate=config.mlp.learning_rate,
            weight_decay=config.mlp.weight_decay,
            epochs=config.mlp.epochs,
            batch_size=config.mlp.batch_size,
        ),
    )
    sources = list(config.sources) if config.zeroshot.enabled else []
    results = {}
    for method in config.methods:
        results[method] = {}
        for seed in workdir.method_seeds(config, method):
            path = workdir.probe_path(root, method, seed)
            fseed = workdir.feature_seed(method, seed)
            provenance = workdir.feature_provenance(
                workdir.feature_path(root, method, fseed, config.target)
            )
            if os.path.exists(path):
                cached = workdir.read_json(path)
                if (
                    cached["protocol"] == workdir.canonical(protocol)
                    and cached["provenance"] == provenance
                    and ("zero_shot" in cached) == bool(sources)
                ):
                    results[method][str(seed)] = cached
                    print(f"[probe] cached {path}")
                    continue
            result = probe_features(
                root,
                method,
                seed,
                target=config.target,
                sources=sources,
                retrieval_datasets=list(config.sources),
                protocol=protocol,
            )
            workdir.write_json(path, result)
            results[method][str(seed)] = workdir.canonical(result)
            print(
                f"[probe] {method} seed {seed}: few-shot acc "
                f"{result['few_shot']['summary']['accuracy']['mean']:.3f}, retrieval "
                + ", ".join(f"{d} {v:.3f}" for d, v in result["retrieval"].items())
            )
    workdir.write_json(workdir.probe_results_path(root), results)
    return results
