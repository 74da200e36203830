"""The one owner of the run directory: its layout and its file formats.

An experiment workdir (`--mode=all`, the demo) holds:

    runs/<method>/seed<k>/            one pre-training run (see below), per method and seed
    features/<method>/seed<k>/<dataset>.npz           per-window features + provenance
    features/<method>/seed<k>/<dataset>.centroids.npz per-subject CDA centroids (report)
    probe/<method>/seed<k>.json       few-shot / zero-shot results of one feature set
    probe/results.json                every probe result
    finetune/<method>/seed<k>.json    fine-tuning beside the frozen head; finetune/results.json
    report/                           results.md, results.json, *.png
    xla_cache/                        XLA's persistent compilation cache (speed only)

A pre-training run directory (`--mode=pretrain`, or one `runs/<method>/seed<k>`) holds
config.json, metrics.jsonl, tb/ (TensorBoard), checkpoints/ (Orbax), encoder/ (the
exported encoder: checkpointing's format) and loss_curve.png.

Every other module asks this one for paths and readers; none spells a file name. Every
file of the package is written by `atomic_write` (temporary file + rename); feature files are numpy archives read with
`allow_pickle=False` (never unpickled).
"""

import contextlib
import json
import os
import secrets
from typing import Callable

import numpy as np

CONFIG_JSON = "config.json"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tb"
CHECKPOINTS_DIR = "checkpoints"
ENCODER_DIR = "encoder"
CURVE_PNG = "loss_curve.png"
WINDOW_FIELDS = ("subject", "session", "trial", "stimulus", "label", "valence")


# ----------------------------------------------------------------------------- paths


def run_dir(workdir: str, method: str, seed: int) -> str:
    """WORKDIR/runs/<method>/seed<k>: one pre-training run of an experiment."""
    return os.path.join(workdir, "runs", method, f"seed{seed}")


def encoder_dir(run: str) -> str:
    return os.path.join(run, ENCODER_DIR)


def checkpoints_dir(run: str) -> str:
    return os.path.join(run, CHECKPOINTS_DIR)


def metrics_path(run: str) -> str:
    return os.path.join(run, METRICS_FILE)


def tensorboard_dir(run: str) -> str:
    return os.path.join(run, TENSORBOARD_DIR)


def config_path(run: str) -> str:
    return os.path.join(run, CONFIG_JSON)


def curve_path(run: str) -> str:
    return os.path.join(run, CURVE_PNG)


def _dataset_file(dataset: str) -> str:
    return dataset.replace("/", "_")


def method_seeds(config, method: str) -> tuple:
    """The pre-training seeds of `method` in an experiment config: `config.seeds`, or
    `config.method_seeds[method]` (a subset starting with the first seed) where an ablation
    runs fewer seeds to fit a budget, or only the first seed for a method of
    `config.deterministic_methods` (its features do not depend on a seed: shown once, n = 1).
    The results table states each method's seed count."""
    seeds = tuple(config.seeds)
    if method in config.get("deterministic_methods", ()):
        return seeds[:1]
    chosen = tuple(config.get("method_seeds", {}).get(method, seeds))
    if not chosen or chosen[0] != seeds[0] or not set(chosen) <= set(seeds):
        raise ValueError(
            f"method_seeds[{method!r}] = {chosen} must be a subset of the seeds "
            f"{seeds} starting with {seeds[0]}"
        )
    return chosen


def feature_path(workdir: str, method: str, seed: int, dataset: str) -> str:
    """WORKDIR/features/<method>/seed<k>/<dataset with '/' -> '_'>.npz"""
    return os.path.join(workdir, "features", method, f"seed{seed}", _dataset_file(dataset) + ".npz")


def centroid_path(workdir: str, method: str, seed: int, dataset: str) -> str:
    """Per-subject CDA centroids beside the dataset's feature file."""
    return feature_path(workdir, method, seed, dataset)[: -len(".npz")] + ".centroids.npz"


def probe_path(workdir: str, method: str, seed: int) -> str:
    return os.path.join(workdir, "probe", method, f"seed{seed}.json")


def probe_results_path(workdir: str) -> str:
    return os.path.join(workdir, "probe", "results.json")


def finetune_path(workdir: str, method: str, seed: int) -> str:
    return os.path.join(workdir, "finetune", method, f"seed{seed}.json")


def finetune_results_path(workdir: str) -> str:
    return os.path.join(workdir, "finetune", "results.json")


def report_dir(workdir: str) -> str:
    return os.path.join(workdir, "report")


REPORT_FILES = dict(
    results_md="results.md",
    results_json="results.json",
    learning_curves="learning_curves.png",
    tsne="tsne.png",
    cda_distances="cda_distances.png",
    confusion="confusion.png",
)


def report_path(workdir: str, item: str) -> str:
    """The report's file `item` (a key of REPORT_FILES)."""
    return os.path.join(report_dir(workdir), REPORT_FILES[item])


def compilation_cache_dir(workdir: str) -> str:
    """XLA's persistent compilation cache of an experiment: the runs of one method differ
    only in their seed, so every seed after the first loads the compiled step."""
    return os.path.join(workdir, "xla_cache")


# ----------------------------------------------------------------------------- JSON


def read_metrics(path: str) -> list[dict]:
    """The JSON objects of a metrics.jsonl file, in file order ([] if it does not exist).

    A last line without its newline is the write a killed run did not finish: it is
    skipped. Any other malformed line is an error naming the file and the line.
    """
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = f.readlines()
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not a JSON metrics line ({error})") from None
    return rows


def atomic_write(path: str, write: Callable[[str], None], *, suffix: str = "") -> str:
    """Runs `write(temporary)`, then renames the temporary file to `path`: a reader sees the
    old file or the new one, never half of one.

    The temporary file lies in path's folder (the rename stays on one file system) under a
    name unique to this process and call: `<path>.tmp<pid>-<random hex><suffix>` (`suffix`
    keeps an extension a writer insists on, e.g. numpy's ".npz"). If `write` raises, the
    temporary file is removed and `path` is left as it was. Returns path.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = f"{path}.tmp{os.getpid()}-{secrets.token_hex(4)}{suffix}"
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    return path


def write_text(path: str, text: str) -> None:
    """Writes a text file (UTF-8) atomically."""

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)


def write_json(path: str, value) -> None:
    """Writes `value` as JSON atomically (temporary file in the same folder, then rename)."""
    write_text(path, json.dumps(value, indent=1, sort_keys=True))


def read_json(path: str, *, missing_hint: str = ""):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found{': ' + missing_hint if missing_hint else ''}")
    with open(path) as f:
        return json.load(f)


def canonical(value):
    """`value` as it reads back from JSON (tuples -> lists, sorted keys): for comparisons."""
    return json.loads(json.dumps(value, sort_keys=True))


# ----------------------------------------------------------------------------- npz


def save_npz(path: str, **arrays) -> None:
    """Writes a numpy archive of `arrays` atomically."""
    atomic_write(path, lambda temporary: np.savez(temporary, **arrays), suffix=".npz")


def save_features(
    path: str, table: dict, feats: np.ndarray, *, label_names, valence_names, provenance: dict
) -> None:
    """Writes one feature file atomically.

    Args:
        table: per-window int arrays [N]: WINDOW_FIELDS and "start" (sample offset).
        feats: [N, D] features.
        label_names, valence_names: the dataset's class names (label / valence index ->
            name); they travel with the features.
        provenance: JSON-serializable description of the inputs (dataset, encoder, ...).
    """
    save_npz(
        path,
        features=np.asarray(feats, np.float32),
        start=table["start"],
        label_names=np.asarray(list(label_names), dtype=str),
        valence_names=np.asarray(list(valence_names), dtype=str),
        provenance=np.asarray(json.dumps(provenance, sort_keys=True)),
        **{key: table[key] for key in WINDOW_FIELDS},
    )


def feature_provenance(path: str):
    """The provenance dict of a feature file, or None if there is none."""
    if not os.path.exists(path):
        return None
    with np.load(path, allow_pickle=False) as f:
        return json.loads(str(f["provenance"]))


def load_features(path: str) -> dict:
    """Window table of one feature file, rows sorted by (subject, session, trial, start).

    Returns:
        dict: features [N, D] float32, WINDOW_FIELDS + start [N] int64, label_names and
        valence_names (lists), provenance (dict).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no feature file (run --mode=extract first)")
    with np.load(path, allow_pickle=False) as f:
        data = {key: f[key] for key in f.files}
    order = np.lexsort((data["start"], data["trial"], data["session"], data["subject"]))
    for key in WINDOW_FIELDS + ("start", "features"):
        data[key] = data[key][order]
    data["label_names"] = data["label_names"].tolist()
    data["valence_names"] = data["valence_names"].tolist()
    data["provenance"] = json.loads(str(data["provenance"]))
    return data


def feature_subjects(path: str) -> np.ndarray:
    """Sorted unique subject ids of one feature file (reads the subject column only)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no feature file (run --mode=extract first)")
    with np.load(path, allow_pickle=False) as f:
        return np.unique(f["subject"])


CENTROID_STATISTICS = ("covariance", "correlation")  # windows.subject_centroids


def save_centroids(
    path: str, *, covariance: np.ndarray, correlation: np.ndarray, subjects: np.ndarray
) -> None:
    """Per-subject CDA centroids [G, F, C2, C2] of both statistics and their subject ids [G]."""
    save_npz(
        path,
        covariance=np.asarray(covariance, np.float32),
        correlation=np.asarray(correlation, np.float32),
        subjects=subjects,
    )


def centroids_complete(path: str) -> bool:
    """True when `path` holds every statistic of CENTROID_STATISTICS (older files do not)."""
    if not os.path.exists(path):
        return False
    with np.load(path, allow_pickle=False) as f:
        return set(CENTROID_STATISTICS) <= set(f.files)


def load_centroids(path: str, statistic: str = "covariance") -> tuple[np.ndarray, np.ndarray]:
    """(centroids [G, F, C2, C2] of `statistic` (a CENTROID_STATISTICS name), subjects [G])."""
    if statistic not in CENTROID_STATISTICS:
        raise ValueError(f"statistic must be one of {CENTROID_STATISTICS}, got {statistic!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no centroid file (run --mode=extract first)")
    with np.load(path, allow_pickle=False) as f:
        if statistic not in f.files:
            raise ValueError(
                f"{path}: no {statistic!r} centroids (written by an older version; run "
                f"--mode=extract again to rewrite it)"
            )
        return f[statistic], f["subjects"]
