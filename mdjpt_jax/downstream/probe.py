"""Few-shot and zero-shot probing of frozen per-window features.

Protocols (the paper's downstream evaluation; README "Evaluation"):
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
- Retrieval (`scoring.cross_subject_retrieval`) on the pre-training datasets, on their
  subjects held out of pre-training only (`heldout.heldout_subjects`).
Metrics: `scoring` (pooled and per test subject: the cells of the report's paired
bootstrap); the MLP: `heads`; the folds: `folds`.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from mdjpt_jax import features, heads, heldout, scoring, workdir
from mdjpt_jax.downstream.folds import check_folds, subject_folds

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
        mlp: keyword arguments of `heads.train_mlp` except x, y, n_classes and seed.
        mlp_seed: fold i's MLP trains with mlp_seed + i (default: `seed`).
        heldout_stimuli: the stimulus-held-out variant: fold i also splits each class's
            stimuli (`split_stimuli`, seed (seed, i)); training = the training subjects'
            windows of training stimuli, test = the other subjects' windows of test stimuli.
        multi_class: AUROC of more than two classes (see `scoring.macro_auroc`).

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
        model = heads.train_mlp(x[train], data["label"][train], n_classes, seed=mlp_seed + i, **mlp)
        fold.update(
            scoring.score(
                data["label"][test],
                heads.predict_proba(model, x[test]),
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
        summary=scoring.summarize([f["metrics"] for f in folds]),
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
        model = heads.train_mlp(
            np.concatenate(train_x), np.concatenate(train_y), 2, seed=seed + i, **mlp
        )
        proba = heads.predict_proba(model, target_x)
        repeats.append(
            dict(
                seed=seed + i,
                **scoring.score(
                    target_y, proba, target_subject, n_classes=2, multi_class=multi_class
                ),
            )
        )
    return dict(
        class_names=["negative", "positive"],
        repeats=repeats,
        summary=scoring.summarize([r["metrics"] for r in repeats]),
    )


# ----------------------------------------------------------------------------- entry


def heldout_retrieval(data: dict, subjects, *, seed: int) -> float:
    """`scoring.cross_subject_retrieval` of a window table restricted to `subjects`.

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
    return scoring.cross_subject_retrieval(
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
        mlp=heads.train_kwargs(config.mlp),
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
