"""Few-shot and zero-shot probing of frozen per-window features.

Protocols (DESIGN.md "Downstream"):
- Post-processing of every window sequence: `features.running_normalize` per
  subject-session (time order, prior = mean/var of the TRAINING windows' raw features),
  then `features.lds_smooth` per trial.
- Few-shot: an MLP (hidden 128 -> 64, ReLU, dropout; flax.nnx + optax AdamW) trained for
  a fixed number of epochs on the windows of k labelled subjects of the target dataset,
  tested on all its other subjects; several distinct folds (`subject_folds`: disjoint
  training sets, or distinct k-subsets in a seeded order). Nothing is selected on test
  subjects.
- Few-shot, stimulus-held-out (`few_shot(..., heldout_stimuli=True)`): the same subject
  folds; per fold each class's stimuli are split (seeded) into a training and a test half;
  the MLP trains on the training subjects' windows of training stimuli and is tested on the
  other subjects' windows of the test stimuli, so a clip's identity cannot stand in for its
  emotion. Not run (recorded as skipped, with the reason) when a class has < 2 stimuli.
- Zero-shot: the same MLP trained on the OTHER datasets' negative vs positive windows
  (shared valence space) and applied to the target's negative/positive windows; the
  target's labels are used only to score. Repeated over seeds.
- Retrieval (`retrieval.cross_subject_retrieval`) on the pre-training datasets, on their
  subjects held out of pre-training only (`heldout.heldout_subjects`).
Metrics (scikit-learn): accuracy, balanced accuracy, macro-F1, AUROC (more than two
classes: macro one-vs-rest by default, as the original code, or macro one-vs-one; binary:
positive-class score), AUPRC (macro average precision over one-hot labels). Every fold and
repeat also keeps the metrics of each test subject alone (`per_subject`): the cells of the
report's paired bootstrap.
"""

import functools
import itertools
import math
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn import metrics as skm

from mdjpt_jax import features, heldout, paired_stats, retrieval, workdir

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "auprc")
AUROC_KINDS = ("ovr", "ovo")
FOLD_SCHEMES = ("disjoint", "all")
ENUMERATE_MAX_COMBINATIONS = 100_000  # "all" folds: enumerate C(S, k) up to this many


# ----------------------------------------------------------------------------- metrics


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


# ----------------------------------------------------------------------------- folds


def max_folds(n_subjects: int, k: int, scheme: str) -> int:
    """How many distinct folds of k training subjects `scheme` can make from n_subjects."""
    if scheme not in FOLD_SCHEMES:
        raise ValueError(f"few-shot folds={scheme!r}: choose one of {FOLD_SCHEMES}")
    return n_subjects // k if scheme == "disjoint" else math.comb(n_subjects, k)


def check_folds(n_subjects: int, k: int, n_folds: int, scheme: str) -> None:
    """Raises ValueError (naming the maximum) when `subject_folds` cannot make n_folds
    distinct folds of k training subjects out of n_subjects; needs no data.

    "disjoint": at most n_subjects // k folds; "all": at most C(n_subjects, k).
    """
    if not 0 < k < n_subjects:
        raise ValueError(f"few-shot k={k} needs 0 < k < #subjects={n_subjects}")
    if n_folds < 1:
        raise ValueError(f"few-shot n_folds={n_folds} must be >= 1")
    most = max_folds(n_subjects, k, scheme)
    if n_folds <= most:
        return
    alternatives = (
        f"at most {n_subjects // k} disjoint folds (or folds='all': up to "
        f"{math.comb(n_subjects, k)})"
    )
    if scheme == "disjoint":
        raise ValueError(
            f"few-shot: {n_folds} disjoint folds of k={k} need {n_folds * k} subjects; the "
            f"target has {n_subjects}: {alternatives}"
        )
    raise ValueError(
        f"few-shot: {n_folds} folds of k={k} from {n_subjects} subjects: there are only "
        f"C({n_subjects}, {k}) = {most} distinct ones (folds='all')"
    )


def _combinations_in_seeded_order(n: int, k: int, count: int, rng) -> list:
    """`count` distinct sorted k-subsets of range(n), drawn without replacement."""
    total = math.comb(n, k)
    if total <= ENUMERATE_MAX_COMBINATIONS:
        every = list(itertools.combinations(range(n), k))
        return [every[i] for i in rng.permutation(total)[:count]]
    chosen, seen = [], set()
    while len(chosen) < count:
        subset = tuple(sorted(rng.choice(n, size=k, replace=False).tolist()))
        if subset not in seen:
            seen.add(subset)
            chosen.append(subset)
    return chosen


def subject_folds(subjects, k: int, n_folds: int, seed: int, *, scheme: str = "disjoint") -> list:
    """Few-shot folds: (train_subjects, test_subjects) with k training subjects each.

    Args:
        subjects: subject ids (any order, repeats allowed).
        k: training subjects per fold; test = every other subject of the dataset.
        n_folds: how many folds; never more than `max_folds` (see `check_folds`).
        seed: the seeded order.
        scheme: "disjoint": fold i trains on positions [i*k, (i+1)*k) of one seeded
            permutation of the subjects (pairwise disjoint training sets); "all": n_folds
            distinct k-subsets drawn without replacement from all C(#subjects, k).

    Returns:
        [(sorted train ids, sorted test ids)] * n_folds, no two folds alike.
    """
    subjects = np.unique(np.asarray(subjects))
    check_folds(len(subjects), k, n_folds, scheme)
    rng = np.random.default_rng(seed)
    if scheme == "disjoint":
        order = rng.permutation(len(subjects))
        positions = [order[i * k : (i + 1) * k] for i in range(n_folds)]
    else:
        positions = _combinations_in_seeded_order(len(subjects), k, n_folds, rng)
    folds = []
    for chosen in positions:
        train = np.sort(subjects[list(chosen)])
        folds.append((train.tolist(), np.setdiff1d(subjects, train).tolist()))
    return folds


# ----------------------------------------------------------------------------- stimuli


def stimulus_split_problem(stimulus: np.ndarray, label: np.ndarray, label_names) -> str | None:
    """Why the stimulus-held-out split cannot be made (None when it can): a stimulus with
    several labels, or a class with fewer than two stimuli. stimulus, label: [N]."""
    for s in np.unique(stimulus):
        labels = np.unique(label[stimulus == s])
        if len(labels) > 1:
            names = [label_names[c] for c in labels]
            return f"the label is not a function of the stimulus (stimulus {s} has {names})"
    for c in np.unique(label):
        count = len(np.unique(stimulus[label == c]))
        if count < 2:
            return (
                f"class {label_names[c]!r} has {count} stimulus; the stimulus-held-out "
                "split needs >= 2 per class"
            )
    return None


def split_stimuli(stimulus: np.ndarray, label: np.ndarray, *, seed) -> tuple[list, list]:
    """Each class's stimuli split into a training and a test half, at random.

    Args:
        stimulus, label: [N] per-window stimulus ids and labels (label a function of the
            stimulus; every class with >= 2 stimuli, see `stimulus_split_problem`).
        seed: anything `np.random.default_rng` takes.

    Returns:
        (sorted training stimuli, sorted test stimuli): per class floor(n/2) >= 1 test
        stimuli, the rest (>= 1; the extra one of an odd count) training.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(label):
        shuffled = rng.permutation(np.unique(stimulus[label == c]))
        n_test = len(shuffled) // 2
        if n_test < 1:
            raise ValueError(f"class {c} has {len(shuffled)} stimulus; need >= 2 to split")
        test += shuffled[:n_test].tolist()
        train += shuffled[n_test:].tolist()
    return sorted(train), sorted(test)


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
    scheme: str = "disjoint",
    heldout_stimuli: bool = False,
    multi_class: str = "ovr",
) -> dict:
    """Few-shot protocol on one dataset's window table; returns per-fold results + summary.

    Args:
        data: `workdir.load_features` output of the target dataset.
        k, n_folds, seed, scheme: see `subject_folds`.
        decay, smooth: see `postprocess`.
        mlp: keyword arguments of `train_mlp` except x, y, n_classes and seed.
        mlp_seed: fold i's MLP trains with mlp_seed + i (default: `seed`).
        heldout_stimuli: the stimulus-held-out variant: fold i also splits each class's
            stimuli (`split_stimuli`, seed (seed, i)); training = the training subjects'
            windows of training stimuli, test = the other subjects' windows of test stimuli.
        multi_class: AUROC of more than two classes (see `macro_auroc`).

    Returns:
        dict(k, seed, scheme, class_names, folds, summary); each fold holds train_subjects,
        test_subjects, metrics, per_subject, confusion (+ train_stimuli, test_stimuli).
        With heldout_stimuli and a split that cannot be made: {"skipped": reason}.
    """
    if heldout_stimuli:
        problem = stimulus_split_problem(data["stimulus"], data["label"], data["label_names"])
        if problem:
            return dict(skipped=problem)
    mlp_seed = seed if mlp_seed is None else mlp_seed
    n_classes = len(data["label_names"])
    folds = []
    for i, (train_subj, test_subj) in enumerate(
        subject_folds(data["subject"], k, n_folds, seed, scheme=scheme)
    ):
        train = np.isin(data["subject"], train_subj)
        test = ~train
        fold = dict(train_subjects=train_subj, test_subjects=test_subj)
        if heldout_stimuli:
            train_stim, test_stim = split_stimuli(data["stimulus"], data["label"], seed=(seed, i))
            train &= np.isin(data["stimulus"], train_stim)
            test &= np.isin(data["stimulus"], test_stim)
            fold.update(train_stimuli=train_stim, test_stimuli=test_stim)
        x = postprocess(data, data["features"][train], decay=decay, smooth=smooth)
        model = train_mlp(x[train], data["label"][train], n_classes, seed=mlp_seed + i, **mlp)
        fold.update(
            score(
                data["label"][test],
                predict_proba(model, x[test]),
                data["subject"][test],
                n_classes=n_classes,
                multi_class=multi_class,
            )
        )
        folds.append(fold)
    return dict(
        k=k,
        seed=seed,
        scheme=scheme,
        class_names=list(data["label_names"]),
        folds=folds,
        summary=summarize([f["metrics"] for f in folds]),
    )


def _valence_windows(data: dict, x: np.ndarray):
    """The negative and positive windows of x, their binary labels (1 = positive) and their
    subjects, by the valence names the feature file carries."""
    names = list(data["valence_names"])
    negative, positive = names.index("negative"), names.index("positive")
    keep = np.isin(data["valence"], (negative, positive))
    return x[keep], (data["valence"][keep] == positive).astype(np.int32), data["subject"][keep]


def zero_shot(
    sources: list,
    target: dict,
    *,
    n_repeats: int,
    seed: int,
    decay: float,
    smooth: bool,
    mlp: dict,
    multi_class: str = "ovr",
) -> dict:
    """Zero-shot protocol: negative-vs-positive MLP on the source datasets, scored on target.

    Every dataset is post-processed with the prior of the pooled SOURCE features; the
    target's labels/valence only select and score its negative/positive windows. Repeat i
    trains with seed + i; each holds metrics, per_subject (the target's subjects) and
    confusion.
    """
    prior = np.concatenate([s["features"] for s in sources])
    train_x, train_y = [], []
    for source in sources:
        xs, ys, _ = _valence_windows(source, postprocess(source, prior, decay=decay, smooth=smooth))
        train_x.append(xs)
        train_y.append(ys)
    target_x, target_y, target_subject = _valence_windows(
        target, postprocess(target, prior, decay=decay, smooth=smooth)
    )
    repeats = []
    for i in range(n_repeats):
        model = train_mlp(np.concatenate(train_x), np.concatenate(train_y), 2, seed=seed + i, **mlp)
        proba = predict_proba(model, target_x)
        repeats.append(
            dict(
                seed=seed + i,
                **score(target_y, proba, target_subject, n_classes=2, multi_class=multi_class),
            )
        )
    return dict(
        class_names=["negative", "positive"],
        repeats=repeats,
        summary=summarize([r["metrics"] for r in repeats]),
    )


# ----------------------------------------------------------------------------- entry


def heldout_retrieval(data: dict, subjects, *, seed: int) -> float:
    """`retrieval.cross_subject_retrieval` of a window table restricted to `subjects`.

    Raises:
        ValueError: fewer than two of `subjects` have windows in the table.
    """
    rows = np.isin(data["subject"], np.asarray(list(subjects), np.int64))
    found = np.unique(data["subject"][rows]).tolist()
    if len(found) < 2:
        raise ValueError(
            f"retrieval on held-out subjects needs >= 2 of them with windows; asked for "
            f"{list(subjects)}, found {found} (hold out more subjects: heldout_subjects or "
            "heldout_subject_ids)"
        )
    moment = np.stack([data["session"], data["stimulus"], data["start"]], axis=1)[rows]
    return retrieval.cross_subject_retrieval(
        data["features"][rows], data["subject"][rows], moment, seed=seed
    )


def probe_features(
    root: str, method: str, seed: int, *, target: str, sources, retrieval_subjects, protocol: dict
) -> dict:
    """Few-shot (+ stimulus-held-out few-shot when protocol["heldout_stimuli"], + zero-shot
    when sources are given) results of one feature set, and the cross-subject retrieval of
    its features on the held-out subjects of each pre-training dataset.

    Args:
        root: experiment workdir.
        method, seed: the feature set.
        target: the few-/zero-shot dataset; sources: zero-shot training datasets ([] none).
        retrieval_subjects: {dataset: held-out subject ids} (see `retrieval_subject_ids`).
        protocol: the `run` protocol dict.

    The MLPs of pre-training seed s use probe seed protocol["seed"] + 1000 s; the few-shot
    folds (which subjects are labelled) are the same for every seed.
    """
    data = workdir.load_features(workdir.feature_path(root, method, seed, target))
    mlp_seed = protocol["seed"] + 1000 * seed
    result = dict(
        method=method, seed=seed, target=target, protocol=protocol, provenance=data["provenance"]
    )
    common = dict(
        decay=protocol["decay"],
        smooth=protocol["lds"],
        mlp=protocol["mlp"],
        multi_class=protocol["auroc_multi_class"],
    )
    folds = dict(
        k=protocol["k"],
        n_folds=protocol["n_folds"],
        seed=protocol["seed"],
        scheme=protocol["folds"],
        mlp_seed=mlp_seed,
    )
    result["few_shot"] = few_shot(data, **folds, **common)
    if protocol["heldout_stimuli"]:
        result["few_shot_heldout_stimuli"] = few_shot(data, **folds, heldout_stimuli=True, **common)
    if sources:
        source_data = [
            workdir.load_features(workdir.feature_path(root, method, seed, s)) for s in sources
        ]
        result["zero_shot"] = zero_shot(
            source_data, data, n_repeats=protocol["n_repeats"], seed=mlp_seed, **common
        )
    result["retrieval"] = {
        dataset: heldout_retrieval(
            workdir.load_features(workdir.feature_path(root, method, seed, dataset)),
            subjects,
            seed=protocol["seed"],
        )
        for dataset, subjects in retrieval_subjects.items()
    }
    result["retrieval_subjects"] = {d: list(s) for d, s in retrieval_subjects.items()}
    return result


def _feature_subjects(config, root: str, dataset: str) -> np.ndarray:
    """The subject ids in `dataset`'s feature file of the first method's first seed."""
    method = config.methods[0]
    seed = workdir.method_seeds(config, method)[0]
    return workdir.feature_subjects(workdir.feature_path(root, method, seed, dataset))


def retrieval_subject_ids(config, root: str) -> dict:
    """{dataset: held-out subject ids (ints)} of every pre-training dataset (config.sources):
    `heldout.heldout_subjects` over the dataset's feature-file subjects.

    Raises:
        ValueError: a dataset with fewer than two held-out subjects (retrieval needs two).
    """
    explicit = {d: list(ids) for d, ids in config.heldout_subject_ids.items()}
    chosen = {}
    for dataset in config.sources:
        ids = heldout.heldout_subjects(
            dataset,
            _feature_subjects(config, root, dataset),
            count=config.heldout_subjects,
            explicit=explicit,
        ).tolist()
        if len(ids) < 2:
            raise ValueError(
                f"{dataset}: cross-subject retrieval runs on the subjects held out of "
                f"pre-training and needs >= 2 of them; got {ids} (heldout_subjects="
                f"{config.heldout_subjects}, heldout_subject_ids)"
            )
        chosen[dataset] = ids
    return chosen


def run(config, root: str) -> dict:
    """Probes every (method, seed) feature set; writes ROOT/probe/<method>/seed<k>.json and
    ROOT/probe/results.json ({method: {seed: result}}).

    Before probing anything, the few-shot folds are checked against the target's subject
    count (`check_folds`) and the held-out retrieval subjects are resolved. A result file is
    re-used when its protocol (folds, AUROC kind, retrieval subjects included) and feature
    provenance are unchanged.
    """
    check_folds(
        len(_feature_subjects(config, root, config.target)),
        config.fewshot.k,
        config.fewshot.n_folds,
        config.fewshot.folds,
    )
    retrieval_subjects = retrieval_subject_ids(config, root)
    protocol = dict(
        k=config.fewshot.k,
        n_folds=config.fewshot.n_folds,
        folds=config.fewshot.folds,
        heldout_stimuli=bool(config.fewshot.heldout_stimuli),
        auroc_multi_class=config.auroc_multi_class,
        retrieval_subjects=retrieval_subjects,
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
            provenance = workdir.feature_provenance(
                workdir.feature_path(root, method, seed, config.target)
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
                retrieval_subjects=retrieval_subjects,
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
