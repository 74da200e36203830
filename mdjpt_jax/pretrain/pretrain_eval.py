"""Learning curves of pre-training: the encoder evaluated outside the training batch.

Every `train.eval_every` steps the current parameters embed a fixed set of windows of the
SUBJECTS HELD OUT of the pre-training datasets (`heldout`: the sampler never draws them;
never a downstream target), one block of W windows per subject as extraction does
(stratified normalization never mixes subjects), and these numbers are logged per dataset
and averaged:

- `retrieval_projection` / `retrieval_features`: cross-subject window retrieval
  (`scoring.cross_subject_retrieval`, chance 1/16) on the projector output (what the
  NT-Xent trains) and on the D-dim features that extraction and the probes use;
  `retrieval_waveform` / `retrieval_de`: the same for the signal baselines of the same
  windows (`windows.SIGNAL_FEATURES`, no parameters, constant over training): the untrained
  read-out of the raw waveform is the yardstick of how much stimulus-locked signal the
  subjects share, DE (band power) the paper's baseline;
- `probe_auroc`: a cheap linear probe (logistic regression on per-subject standardized
  features) trained on the first half of the held-out subjects and scored on the others.

The windows of every subject are drawn from one seeded order of the dataset's moments
(session, stimulus, start), so subjects who saw the same session share their moments and
retrieval has positives.
"""

import dataclasses
import functools

import jax
import numpy as np
from flax import nnx
from sklearn.linear_model import LogisticRegression

from mdjpt_jax import heldout, scoring, windows
from mdjpt_jax.trials import load_trials

MOMENT_FIELDS = ("session", "stimulus", "start")
SIGNALS = ("waveform", "de")  # signal baselines logged beside the encoder (eval/retrieval_*)
EVAL_NAMES = ("retrieval_projection", "retrieval_features", "probe_auroc") + tuple(
    f"retrieval_{name}" for name in SIGNALS
)


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """Fixed evaluation windows of one dataset.

    Attributes:
        dataset: TFDS name.
        eeg: float32 [S, W, C, T] µV, block s = W windows of one subject.
        subject, label: int [S, W].
        moment: int [S, W, 3] (session, stimulus, start sample).
        n_classes: number of label classes of the dataset.
        signals: {name of windows.SIGNAL_FEATURES: float32 [S, W, F]}, the signal
            baselines of the same windows (flattened per window): "waveform" (the untrained
            read-out of the raw waveform, the yardstick of retrieval) and "de".
    """

    dataset: str
    eeg: np.ndarray
    subject: np.ndarray
    label: np.ndarray
    moment: np.ndarray
    n_classes: int
    signals: dict


def select_windows(table: dict, windows_per_subject: int, seed: int) -> np.ndarray:
    """[S, W] rows of `table` (windows.window_table): per subject, the first W of its
    windows in one seeded order of the moments shared by the whole dataset."""
    moments = np.stack([table[k] for k in MOMENT_FIELDS], axis=1)
    _, moment_id = np.unique(moments, axis=0, return_inverse=True)
    rank = np.random.default_rng(seed).permutation(moment_id.max() + 1)[moment_id.reshape(-1)]
    blocks = []
    for subject in np.unique(table["subject"]):
        rows = np.flatnonzero(table["subject"] == subject)
        if len(rows) < windows_per_subject:
            raise ValueError(
                f"subject {subject} has {len(rows)} windows < "
                f"eval windows_per_subject={windows_per_subject}"
            )
        blocks.append(rows[np.argsort(rank[rows], kind="stable")[:windows_per_subject]])
    return np.stack(blocks)


def make_eval_set(
    dataset: str,
    data_dir: str,
    ch_names,
    *,
    fs: float,
    window: int,
    step: int,
    windows_per_subject: int,
    seed: int,
    heldout_subjects: int,
    heldout_subject_ids: dict | None = None,
) -> EvalSet:
    """Reads `dataset` and fixes its evaluation windows (window / step in samples at fs) on
    its held-out subjects (`heldout.heldout_subjects` of the count / ids given)."""
    trials, metadata = load_trials(dataset, data_dir, list(ch_names), fs=fs)
    subjects = heldout.heldout_subjects(
        dataset,
        [t["subject"] for t in trials],
        count=heldout_subjects,
        explicit=heldout_subject_ids,
    )
    if len(subjects) < 2:
        raise ValueError(
            f"{dataset}: the learning curves need >= 2 held-out subjects, got "
            f"{subjects.tolist()} (set data.heldout_subjects >= 2, or train.eval_every = 0)"
        )
    trials = [t for t in trials if t["subject"] in set(subjects.tolist())]
    table = windows.window_table(trials, window, step)
    rows = select_windows(table, windows_per_subject, seed)
    eeg = np.stack([windows.gather_windows(trials, table, r, window) for r in rows])
    return EvalSet(
        dataset=dataset,
        eeg=eeg,
        subject=table["subject"][rows],
        label=table["label"][rows],
        moment=np.stack([table[k][rows] for k in MOMENT_FIELDS], axis=-1),
        n_classes=len(metadata["label_names"]),
        signals={
            name: np.asarray(
                windows.SIGNAL_FEATURES[name](eeg.reshape((-1,) + eeg.shape[2:]), fs)
            ).reshape(eeg.shape[:2] + (-1,))
            for name in SIGNALS
        },
    )


def linear_probe_auroc(
    features: np.ndarray, subject: np.ndarray, label: np.ndarray, n_classes: int
) -> float:
    """AUROC of a logistic regression trained on the first half of the subjects (sorted)
    and scored on the others; features standardized per subject (NaN if a split lacks a
    class)."""
    x = scoring.standardize_per_subject(features, subject)
    subjects = np.unique(subject)
    train = np.isin(subject, subjects[: max(1, len(subjects) // 2)])
    if len(np.unique(label[train])) < n_classes or len(np.unique(label[~train])) < 2:
        return float("nan")
    model = LogisticRegression(max_iter=500).fit(x[train], label[train])
    proba = np.zeros((int((~train).sum()), n_classes))
    proba[:, model.classes_] = model.predict_proba(x[~train])
    return scoring.classification_metrics(label[~train], proba)["auroc"]


@functools.partial(jax.jit, static_argnums=0)
def _encode(graphdef, params, eeg):
    out = nnx.merge(graphdef, params)(eeg)
    return out["projection"], out["features"]


def _local_copy(params):
    """The replicated parameters as arrays on one local device (works on every process)."""
    return jax.tree.map(lambda a: a.addressable_data(0) if isinstance(a, jax.Array) else a, params)


def evaluate(graphdef: nnx.GraphDef, params, eval_sets: list, *, seed: int = 0) -> dict:
    """Retrieval (projection, features, and the untrained waveform read-out as the
    yardstick) and probe AUROC per dataset and their means.

    Returns:
        {"eval/retrieval_projection": float, "eval/retrieval_features": float,
         "eval/retrieval_waveform": float, "eval/retrieval_de": float,
         "eval/probe_auroc": float, and the same keys
         suffixed "/<dataset>"}.
    """
    params = _local_copy(params)
    rows = {}
    for es in eval_sets:
        projection, feats = jax.device_get(_encode(graphdef, params, es.eeg))
        subject, moment = es.subject.reshape(-1), es.moment.reshape(-1, 3)
        values = {
            "retrieval_projection": scoring.cross_subject_retrieval(
                projection.reshape(len(subject), -1), subject, moment, seed=seed
            ),
            "retrieval_features": scoring.cross_subject_retrieval(
                feats.reshape(len(subject), -1), subject, moment, seed=seed
            ),
            "probe_auroc": linear_probe_auroc(
                feats.reshape(len(subject), -1), subject, es.label.reshape(-1), es.n_classes
            ),
        }
        for name, signal in es.signals.items():
            values[f"retrieval_{name}"] = scoring.cross_subject_retrieval(
                signal.reshape(len(subject), -1), subject, moment, seed=seed
            )
        for name, value in values.items():
            rows[f"eval/{name}/{es.dataset}"] = float(value)
    for name in EVAL_NAMES:
        per_dataset = [rows[f"eval/{name}/{es.dataset}"] for es in eval_sets]
        rows[f"eval/{name}"] = float(np.nanmean(per_dataset)) if per_dataset else float("nan")
    return rows
