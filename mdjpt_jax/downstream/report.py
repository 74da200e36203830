"""Report: renders the files of the earlier stages into a results table and plots.

A pure renderer: it reads probe/results.json (probe.run), the feature and centroid files
(extract.run) and the pre-training runs' metrics.jsonl, all through `workdir`, and writes
into ROOT/report/: results.md, results.json (every per-seed and per-fold value),
learning_curves.png, tsne.png, cda_distances.png, confusion.png. It runs no encoder (the
dataset-ID decodability of `alignment` fits a logistic regression on extracted features).

Numbers: for each method and protocol (few-shot, stimulus-held-out few-shot, zero-shot),
each pre-training seed gives the mean over folds (few-shot) or repeats (zero-shot) of each
metric; the table shows mean ± SAMPLE std (ddof 1) ACROSS SEEDS, or the value and
"(n = 1)" for a method with one seed (std null in results.json); results.json keeps the
fold-level values too. A result is marked degenerate when a classifier predicted one class
for every window of a fold, or when its AUROC is at chance (mean <= 0.55): such a number
is a finding to explain, not a score. A protocol the probe could not run (e.g. too few
stimuli per class to hold some out) shows its reason instead of rows.

Comparisons "a-b" (config.report.comparisons): paired differences of balanced accuracy and
AUROC per (seed, test subject), and of retrieval per (seed, pre-training dataset), with
two-way bootstrap intervals over seeds x units (`paired_stats`); a difference is
"established" when its interval excludes 0.
"""

import inspect
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from mdjpt_jax import learning_curves, paired_stats, scoring, workdir  # noqa: E402
from mdjpt_jax.downstream import alignment  # noqa: E402

METHOD_TITLES = {
    "de": "DE (same windows as the encoders)",
    "de_paper": "DE, paper windows (1 s)",
    "de_ea": "DE, Euclidean-aligned",
    "waveform": "Raw waveform read-out (untrained)",
    "random": "Random encoder",
    "single": "Pre-trained on one dataset",
    "joint": "Joint (mdJPT)",
    "joint_no_cda": "Joint without CDA",
}
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "auprc")
METRIC_TITLES = {
    "accuracy": "Acc",
    "balanced_accuracy": "Bal. acc",
    "macro_f1": "Macro-F1",
    "auroc": "AUROC",
    "auprc": "AUPRC",
    "retrieval@1": "Retrieval@1",
}
# Protocol -> the list of runs inside a probe result.
PROTOCOLS = {"few_shot": "folds", "few_shot_heldout_stimuli": "folds", "zero_shot": "repeats"}
PROTOCOL_TITLES = {
    "few_shot": "few-shot",
    "few_shot_heldout_stimuli": "few-shot, stimulus-held-out",
    "zero_shot": "zero-shot",
    "retrieval": "retrieval (held-out subjects)",
}
AUROC_TITLES = {"ovr": "macro one-vs-rest", "ovo": "macro one-vs-one"}
PAIRED_METRICS = ("balanced_accuracy", "auroc")
RETRIEVAL_METRIC = "retrieval@1"
RETRIEVAL_CANDIDATES = (
    inspect.signature(scoring.cross_subject_retrieval).parameters["n_candidates"].default
)
CHANCE_AUROC_MAX = 0.55


def _title(method: str) -> str:
    return METHOD_TITLES.get(method, method)


def _mean_std(values) -> dict:
    """{mean, std (sample, ddof 1; None for one value), n} of values."""
    values = np.asarray(values, np.float64)
    return dict(mean=float(np.mean(values)), std=paired_stats.sample_std(values), n=len(values))


def format_mean_std(stat: dict, digits: int = 3) -> str:
    """ "mean ± std", or "mean (n = 1)" when there is no spread (one seed)."""
    if stat.get("std") is None:
        return f"{stat['mean']:.{digits}f} (n = {stat.get('n', 1)})"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


# ----------------------------------------------------------------------------- table


def is_constant(confusion) -> bool:
    """True when every prediction of a confusion matrix (rows true, columns predicted)
    falls in one column."""
    return int(np.count_nonzero(np.asarray(confusion).sum(axis=0))) <= 1


def _mean_fold_std(per_fold: dict, metric: str) -> float | None:
    """Mean over seeds of the sample std over folds (None with a single fold)."""
    stds = [paired_stats.sample_std([f[metric] for f in folds]) for folds in per_fold.values()]
    return None if any(s is None for s in stds) else float(np.mean(stds))


def summarize_protocol(per_seed: dict, protocol: str) -> dict:
    """{seed: probe result} -> across-seed summary of one protocol.

    Returns:
        dict: metrics {metric: {mean, std, n}} over the seeds' fold means; fold_std {metric:
        mean over seeds of the sample std over folds, None for one fold}; per_seed {seed:
        {metric: fold mean}}; per_fold {seed: [{metric: value}]}; constant_folds / n_folds;
        degenerate (list of reasons, empty when none). {"skipped": reason} when no seed
        ran the protocol.
    """
    unit = PROTOCOLS[protocol]
    ran = {seed: r[protocol] for seed, r in per_seed.items() if protocol in r}
    runs = {seed: p[unit] for seed, p in ran.items() if "skipped" not in p}
    if not runs:
        return dict(skipped="; ".join(sorted({p["skipped"] for p in ran.values()})))
    per_fold = {seed: [f["metrics"] for f in folds] for seed, folds in runs.items()}
    per_seed_means = {
        seed: {m: float(np.mean([f[m] for f in folds])) for m in METRICS}
        for seed, folds in per_fold.items()
    }
    constant = sum(is_constant(f["confusion"]) for folds in runs.values() for f in folds)
    n_folds = sum(len(folds) for folds in runs.values())
    metrics = {m: _mean_std([v[m] for v in per_seed_means.values()]) for m in METRICS}
    degenerate = []
    if constant:
        degenerate.append(f"one class predicted for every window in {constant} of {n_folds} {unit}")
    if metrics["auroc"]["mean"] <= CHANCE_AUROC_MAX:
        degenerate.append(f"AUROC at chance ({metrics['auroc']['mean']:.3f} <= {CHANCE_AUROC_MAX})")
    return dict(
        metrics=metrics,
        fold_std={m: _mean_fold_std(per_fold, m) for m in METRICS},
        per_seed=per_seed_means,
        per_fold=per_fold,
        constant_folds=constant,
        n_folds=n_folds,
        degenerate=degenerate,
    )


def results_table(results: dict) -> dict:
    """{method: {seed: probe result}} -> {method: {protocol: summary, "retrieval": {dataset:
    {mean, std, n, per_seed}}, "retrieval_subjects": {dataset: ids}, "seeds": [...]}}."""
    table = {}
    for method, per_seed in results.items():
        entry = {
            p: summarize_protocol(per_seed, p)
            for p in PROTOCOLS
            if any(p in r for r in per_seed.values())
        }
        datasets = sorted({d for r in per_seed.values() for d in r.get("retrieval", {})})
        entry["retrieval"] = {
            d: dict(
                _mean_std([r["retrieval"][d] for r in per_seed.values()]),
                per_seed={s: r["retrieval"][d] for s, r in per_seed.items()},
            )
            for d in datasets
        }
        entry["retrieval_subjects"] = {
            d: ids for r in per_seed.values() for d, ids in r.get("retrieval_subjects", {}).items()
        }
        entry["seeds"] = sorted(per_seed, key=int)
        table[method] = entry
    return table


def markdown_table(table: dict, protocol: str, title: str) -> str:
    """One markdown table (methods x metrics, mean ± std over seeds) for one protocol;
    degenerate results are marked with "(!)" and explained below the table; a protocol
    that was not run shows its reason instead of rows."""
    header = "| Method | seeds | " + " | ".join(METRIC_TITLES[m] for m in METRICS) + " |"
    rows, notes, skipped = [], [], {}
    for method, entry in table.items():
        if protocol not in entry:
            continue
        summary = entry[protocol]
        if "skipped" in summary:
            skipped.setdefault(summary["skipped"], []).append(_title(method))
            continue
        cells = [format_mean_std(summary["metrics"][m]) for m in METRICS]
        flag = " (!)" if summary["degenerate"] else ""
        rows.append(
            f"| {_title(method)}{flag} | {len(entry['seeds'])} | " + " | ".join(cells) + " |"
        )
        notes += [f"- (!) {_title(method)}: {reason}" for reason in summary["degenerate"]]
    lines = [f"### {title}", ""]
    if rows:
        lines += [header, "|---" * (len(METRICS) + 2) + "|"] + rows
    if skipped and not rows:
        lines += [f"Not run: {reason}" for reason in skipped]
    else:
        notes += [f"- {', '.join(m)}: not run ({reason})" for reason, m in skipped.items()]
    return "\n".join(lines + ([""] + notes if notes else []))


def retrieval_markdown(table: dict) -> str:
    """Cross-subject retrieval@1 of the extracted features on the held-out subjects of each
    pre-training dataset (chance 1 / `scoring.cross_subject_retrieval`'s n_candidates)."""
    datasets = sorted({d for entry in table.values() for d in entry["retrieval"]})
    if not datasets:
        return ""
    lines = [
        "### Cross-subject window retrieval@1 on held-out subjects of the pre-training "
        f"datasets (chance 1/{RETRIEVAL_CANDIDATES})",
        "",
        "| Method | seeds | " + " | ".join(f"`{d}`" for d in datasets) + " |",
        "|---" * (len(datasets) + 2) + "|",
    ]
    for method, entry in table.items():
        cells = [
            format_mean_std(entry["retrieval"][d]) if d in entry["retrieval"] else "-"
            for d in datasets
        ]
        lines.append(f"| {_title(method)} | {len(entry['seeds'])} | " + " | ".join(cells) + " |")
    subjects = {
        d: ids for entry in table.values() for d, ids in entry["retrieval_subjects"].items()
    }
    if subjects:
        lines += [
            "",
            "Held-out subjects: "
            + "; ".join(f"`{d}` {', '.join(map(str, ids))}" for d, ids in sorted(subjects.items())),
        ]
    return "\n".join(lines)


def finetune_table(results: dict) -> dict:
    """{method: {seed: finetune result}} -> {method: {finetuned, frozen: {metric: {mean, std,
    n}} across seeds of the fold means, improved: seeds where fine-tuning beat the frozen
    head, seeds}}."""
    table = {}
    for method, per_seed in results.items():
        entry = {
            name: {
                m: _mean_std([r["summary"][name][m]["mean"] for r in per_seed.values()])
                for m in METRICS
            }
            for name in ("finetuned", "frozen")
        }
        entry["improved"] = sum(bool(r["improved_over_frozen"]) for r in per_seed.values())
        entry["seeds"] = sorted(per_seed, key=int)
        table[method] = entry
    return table


def finetune_markdown(table: dict, *, k: int) -> str:
    """Fine-tuned encoder + head against the same head on the frozen encoder (same folds)."""
    lines = [
        f"### Fine-tuning on {k} labelled subject(s) vs the frozen encoder (same folds, same head)",
        "",
        "| Method | seeds | Balanced acc. fine-tuned | frozen | "
        "AUROC fine-tuned | frozen | seeds improved |",
        "|---" * 7 + "|",
    ]
    for method, entry in table.items():
        cells = [
            format_mean_std(entry[name][m])
            for m in ("balanced_accuracy", "auroc")
            for name in ("finetuned", "frozen")
        ]
        lines.append(
            f"| {_title(method)} | {len(entry['seeds'])} | "
            + " | ".join(cells)
            + f" | {entry['improved']}/{len(entry['seeds'])} |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- paired


def parse_comparison(comparison: str) -> tuple[str, str]:
    """ "a-b" -> ("a", "b")."""
    parts = comparison.split("-")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"comparison {comparison!r} must read 'a-b' (two method names)")
    return parts[0], parts[1]


def subject_cells(per_seed: dict, protocol: str, metric: str) -> dict:
    """{(seed, subject): value}: per pre-training seed and test subject, the mean of that
    subject's own `metric` over the folds (repeats) that tested it; undefined values (None)
    are left out. Empty when the protocol was not run or has no per-subject metrics."""
    cells = {}
    for seed, result in per_seed.items():
        values = {}
        for run in result.get(protocol, {}).get(PROTOCOLS[protocol], []):
            for subject, metrics in run.get("per_subject", {}).items():
                if metrics.get(metric) is not None:
                    values.setdefault(subject, []).append(metrics[metric])
        cells.update({(seed, subject): float(np.mean(v)) for subject, v in values.items()})
    return cells


def retrieval_cells(per_seed: dict) -> dict:
    """{(seed, dataset): retrieval@1} of one method."""
    return {
        (seed, dataset): value
        for seed, result in per_seed.items()
        for dataset, value in result.get("retrieval", {}).items()
    }


def paired_comparisons(
    results: dict,
    comparisons,
    *,
    n_samples: int,
    confidence: float,
    seed: int,
    deterministic_methods=(),
) -> dict:
    """Paired bootstrap differences of every comparison whose two methods are in results.

    Args:
        results: {method: {seed: probe result}}.
        comparisons: ["a-b"]: a minus b.
        n_samples, confidence, seed: see `paired_stats.paired_bootstrap`.
        deterministic_methods: methods whose one value is paired with every seed of the
            other side; any other pairing uses the seeds both sides have.

    Returns:
        {comparison: {protocol: {metric: paired_stats.paired_bootstrap result}}}:
        balanced_accuracy and auroc per (seed, test subject) for every protocol both methods
        ran, retrieval@1 per (seed, dataset) under "retrieval". A pairing that is
        impossible (no shared seeds or units) gives {"unavailable": reason}.
    """
    out = {}
    for comparison in comparisons:
        a, b = parse_comparison(comparison)
        if a not in results or b not in results:
            continue
        pairs = {
            (protocol, metric): (
                subject_cells(results[a], protocol, metric),
                subject_cells(results[b], protocol, metric),
            )
            for protocol in PROTOCOLS
            for metric in PAIRED_METRICS
        }
        pairs["retrieval", RETRIEVAL_METRIC] = (
            retrieval_cells(results[a]),
            retrieval_cells(results[b]),
        )
        entry = {}
        for (protocol, metric), (cells_a, cells_b) in pairs.items():
            if not (cells_a and cells_b):
                continue
            try:
                value = paired_stats.paired_bootstrap(
                    cells_a,
                    cells_b,
                    n_samples=n_samples,
                    confidence=confidence,
                    seed=seed,
                    broadcast=bool({a, b} & set(deterministic_methods)),
                )
            except ValueError as error:
                value = dict(unavailable=str(error))
            entry.setdefault(protocol, {})[metric] = value
        out[comparison] = entry
    return out


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def paired_markdown(paired: dict, *, confidence: float, n_samples: int) -> str:
    """The paired-differences table and a sentence listing the established differences."""
    level = f"{confidence:.0%}"
    lines = [
        f"### Paired differences (a − b), mean [{level} interval] over seeds x test subjects",
        "",
        "Each cell pairs a and b on one pre-training seed and one test subject (retrieval: one "
        "pre-training dataset); a deterministic baseline (one value) is paired with every "
        "seed of the other method, otherwise only the seeds both have are paired (with one "
        "such seed the interval covers test subjects only, not seed-to-seed variation). "
        f"Interval: percentile bootstrap ({n_samples} resamples) of the mean difference, "
        "resampling seeds and units independently.",
        "",
        "| a − b | Protocol | Metric | Mean [interval] | seeds x units | resampled "
        "| established? |",
        "|---" * 7 + "|",
    ]
    established, not_established = [], []
    for comparison, entry in paired.items():
        a, b = parse_comparison(comparison)
        name = f"{_title(a)} − {_title(b)}"
        for protocol, per_metric in entry.items():
            for metric, d in per_metric.items():
                what = f"{PROTOCOL_TITLES[protocol]} | {METRIC_TITLES[metric]}"
                if "unavailable" in d:
                    lines.append(f"| {name} | {what} | not paired: {d['unavailable']} | | | |")
                    continue
                lines.append(
                    f"| {name} | {what} | {_signed(d['mean'])} [{_signed(d['low'])}, "
                    f"{_signed(d['high'])}] | {d['n_seeds']} x {d['n_units']} | "
                    f"{d['resampled']} | {'yes' if d['established'] else 'no'} |"
                )
                phrase = (
                    f"{name} ({PROTOCOL_TITLES[protocol]}, {METRIC_TITLES[metric]}: "
                    f"{_signed(d['mean'])})"
                )
                (established if d["established"] else not_established).append(phrase)
    lines += [
        "",
        f"Established (the {level} interval excludes 0): "
        + ("; ".join(established) or "none")
        + ". Not established: "
        + ("; ".join(not_established) or "none")
        + ".",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- markdown


def results_markdown(
    table: dict,
    *,
    target: str,
    k: int,
    n_folds: int,
    scheme: str = "disjoint",
    auroc_multi_class: str = "ovr",
    alignment: dict | None = None,
    finetune: dict | None = None,
    paired: dict | None = None,
    confidence: float | None = None,
    n_samples: int | None = None,
    pretraining_cda: dict | None = None,
) -> str:
    """Every protocol's table, retrieval, fine-tuning, paired differences, dataset
    alignment (`alignment_markdown`) and CDA during pre-training (`training_cda_markdown`),
    with a line describing each. `confidence` and `n_samples` describe how `paired` was
    computed (`paired_comparisons`) and are required with it."""
    if paired and (confidence is None or not n_samples):
        raise ValueError("paired differences need the confidence and n_samples they were made with")
    parts = [
        f"## Downstream results on `{target}`",
        "",
        "Mean ± sample std (ddof 1) across pre-training seeds (each seed: mean over folds); "
        "a method with one seed (the deterministic baselines) shows its value and (n = 1). "
        f"AUROC: {AUROC_TITLES[auroc_multi_class]} (two classes: positive-class score).",
    ]
    titles = {
        "few_shot": f"Few-shot: {k} labelled subject(s), {n_folds} {scheme} folds "
        "(own emotion categories; test = all other subjects)",
        "few_shot_heldout_stimuli": f"Few-shot, stimulus-held-out: {k} labelled subject(s) "
        "on half of each class's stimuli; test = the other subjects on the other stimuli",
        "zero_shot": "Zero-shot: negative vs positive, classifier trained on the other datasets",
    }
    for protocol, title in titles.items():
        if protocol == "few_shot" or any(protocol in entry for entry in table.values()):
            parts += ["", markdown_table(table, protocol, title)]
    if finetune:
        parts += ["", finetune_markdown(finetune, k=k)]
    retrieval_text = retrieval_markdown(table)
    if retrieval_text:
        parts += ["", retrieval_text]
    if paired:
        parts += ["", paired_markdown(paired, confidence=confidence, n_samples=n_samples)]
    if alignment:
        parts += ["", alignment_markdown(alignment)]
    cda_text = training_cda_markdown(pretraining_cda or {})
    if cda_text:
        parts += ["", cda_text]
    return "\n".join(parts) + "\n"


# What pre-training logs every train.diagnose_every steps as cda_diagnostics/<key>
# (pretrain/train_step.CDA_DIAGNOSTICS), summarised at a run's first and last such step.
TRAINING_CDA_KEYS = ("cda", "mixer_norm", "cda_over_contrastive", "cda_radial_share_mixer")


def training_cda(rows_by_seed: dict) -> dict | None:
    """CDA as pre-training logged it, at the first and the last diagnostic step of each seed:
    its stop-gradient value (logged also when the loss has no CDA term), the spatial mixer's
    norm, CDA's weighted gradient norm over the contrastive one, and the radial share.

    Args:
        rows_by_seed: {seed: rows of the run's metrics.jsonl}.

    Returns:
        None when no seed logged diagnostics; else {first, last: {key: mean/std over seeds},
        cda_change, mixer_norm_change: last / first - 1 (mean/std over seeds), steps: [first,
        last] step of every seed, per_seed: {seed: {first, last: {step, key: value}}}}.
    """
    per_seed = {}
    for seed, rows in rows_by_seed.items():
        logged = [r for r in rows if "cda_diagnostics/cda" in r]
        if logged:
            per_seed[str(seed)] = {
                end: dict(
                    step=r["step"], **{k: r[f"cda_diagnostics/{k}"] for k in TRAINING_CDA_KEYS}
                )
                for end, r in (("first", logged[0]), ("last", logged[-1]))
            }
    if not per_seed:
        return None
    runs = list(per_seed.values())
    summary = {
        end: {k: _mean_std([r[end][k] for r in runs]) for k in TRAINING_CDA_KEYS}
        for end in ("first", "last")
    }
    for key in ("cda", "mixer_norm"):
        summary[f"{key}_change"] = _mean_std([r["last"][key] / r["first"][key] - 1 for r in runs])
    summary["steps"] = sorted({(r["first"]["step"], r["last"]["step"]) for r in runs})
    return dict(summary, per_seed=per_seed)


def training_cda_markdown(summaries: dict) -> str:
    """Table of {method: `training_cda`} (methods without diagnostics are skipped)."""
    rows = {m: s for m, s in summaries.items() if s}
    if not rows:
        return ""
    lines = [
        "### CDA during pre-training (its stop-gradient value, logged also without a CDA term)",
        "",
        "At the first and the last diagnostic step of each seed (`cda_diagnostics/*` in "
        "metrics.jsonl). CDA grows with the spatial mixer's scale, which the per-subject "
        "normalization after the mixer removes: compare the change of CDA with the mixer "
        "norm's, and a CDA run with its no-CDA twin. Gradient ratio: CDA's weighted gradient "
        "norm over the contrastive one; radial share: the part of CDA's gradient on the mixer "
        "that only rescales it.",
        "",
        "| Method | seeds | steps | CDA first | CDA last | CDA change | mixer norm change "
        "| gradient ratio (last) | radial share (last) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method, s in rows.items():
        steps = ", ".join(f"{a}-{b}" for a, b in s["steps"])
        cells = [
            format_mean_std(s["first"]["cda"], 4),
            format_mean_std(s["last"]["cda"], 4),
            format_mean_std(s["cda_change"], 3),
            format_mean_std(s["mixer_norm_change"], 3),
            format_mean_std(s["last"]["cda_over_contrastive"], 4),
            format_mean_std(s["last"]["cda_radial_share_mixer"], 3),
        ]
        lines.append(
            f"| {_title(method)} | {len(s['per_seed'])} | {steps} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CDA


centroid_distance_matrix = alignment.centroid_distance_matrix


def between_within_ratio(distances: np.ndarray, groups: np.ndarray) -> float:
    """Mean distance between subjects of different datasets / same dataset (off-diagonal).

    Raises:
        ValueError: fewer than two datasets, or no dataset with two subjects.
    """
    groups = np.asarray(groups)
    same = groups[:, None] == groups[None, :]
    off = ~np.eye(len(groups), dtype=bool)
    if not (~same).any() or not (same & off).any():
        raise ValueError(
            f"between/within ratio needs >= 2 datasets and a dataset with >= 2 "
            f"subjects; got groups {sorted(set(groups.tolist()))}"
        )
    return float(distances[~same].mean() / distances[same & off].mean())


def cda_distances(root: str, method: str, seed: int, datasets) -> tuple:
    """Per-subject centroid distances over `datasets` (full TFDS names): ([G, G], [G] names)."""
    parts, names = [], []
    for dataset in datasets:
        centroids, subjects = workdir.load_centroids(
            workdir.centroid_path(root, method, seed, dataset)
        )
        parts.append(centroids)
        names += [dataset] * len(subjects)
    return centroid_distance_matrix(np.concatenate(parts)), np.array(names)


def method_alignment(
    root: str,
    method: str,
    seed: int,
    heldout: dict,
    *,
    with_centroids: bool,
    windows_per_subject: int,
    n_permutations: int,
    seed_of_tests: int,
) -> dict:
    """`alignment` measures of one (method, seed) on the held-out subjects `heldout`
    ({dataset: subject ids}, the pre-training datasets only): dataset-ID decodability of
    its features, and (`with_centroids`) the correlation-centroid distance with its
    permutation test and split-half floor."""
    feats, names, keys, centroids, groups = [], [], [], [], []
    for dataset, ids in heldout.items():
        data = workdir.load_features(workdir.feature_path(root, method, seed, dataset))
        rows = np.isin(data["subject"], ids)
        feats.append(data["features"][rows])
        names += [dataset] * int(rows.sum())
        keys += [f"{dataset}:{s}" for s in data["subject"][rows]]
        if with_centroids:
            stats, subjects = workdir.load_centroids(
                workdir.centroid_path(root, method, seed, dataset), "correlation"
            )
            chosen = np.isin(subjects, ids)
            centroids.append(stats[chosen])
            groups += [dataset] * int(chosen.sum())
    result = dict(
        decodability=alignment.dataset_decodability(
            np.concatenate(feats),
            np.array(names),
            np.array(keys),
            windows_per_subject=windows_per_subject,
            seed=seed_of_tests,
        )
    )
    if with_centroids:
        result["centroids"] = alignment.centroid_alignment(
            np.concatenate(centroids),
            np.array(groups),
            n_permutations=n_permutations,
            seed=seed_of_tests,
        )
    return result


ALIGNMENT_STATISTICS = {  # summary name -> path in a `method_alignment` result
    "distance": ("centroids", "distance"),
    "null_mean": ("centroids", "null_mean"),
    "split_half_floor": ("centroids", "split_half_floor"),
    "p_value": ("centroids", "p_value"),
    "dataset_accuracy": ("decodability", "balanced_accuracy"),
}


def alignment_summary(per_seed: dict) -> dict:
    """{seed: `method_alignment` result} -> per statistic `_mean_std` over seeds, plus
    per_seed and the decodability chance."""
    summary = dict(per_seed=per_seed)
    first = next(iter(per_seed.values()))
    summary["chance"] = first["decodability"]["chance"]
    for name, (part, key) in ALIGNMENT_STATISTICS.items():
        if part in first:
            summary[name] = _mean_std([r[part][key] for r in per_seed.values()])
    if "centroids" in first:
        summary["distinct_partitions"] = first["centroids"]["distinct_partitions"]
    return summary


def alignment_markdown(alignment: dict) -> str:
    """Table of {method: `alignment_summary`}."""

    def cell(stat, digits=3):
        return format_mean_std(stat, digits) if stat else "-"

    chance = next(iter(alignment.values()))["chance"]
    partitions = [
        a["distinct_partitions"] for a in alignment.values() if "distinct_partitions" in a
    ]
    lines = [
        "Dataset alignment on the subjects held out of pre-training (pre-training datasets "
        "only; `mdjpt_jax/downstream/alignment.py`). Distance: mean over dataset pairs of the distance "
        "between dataset centroids of the mixer output's channel correlations (CDA's "
        "scale-free space); null: its mean under permuted dataset labels; split-half: the "
        "distance between random halves of one dataset's subjects; p: permutation p-value "
        "per seed"
        + (f" ({partitions[0]} distinct partitions exist)" if partitions else "")
        + f"; dataset ID: leave-one-subject-out balanced accuracy of a logistic regression "
        f"predicting the dataset from the features (chance {chance:.2f}).",
        "",
        "| Method | Distance | Null | Split-half | p | Dataset ID |",
        "|---|---|---|---|---|---|",
    ]
    for method, a in alignment.items():
        p_values = ", ".join(
            f"{r['centroids']['p_value']:.2f}" for r in a["per_seed"].values() if "centroids" in r
        )
        lines.append(
            f"| {_title(method)} | {cell(a.get('distance'))} | {cell(a.get('null_mean'))} | "
            f"{cell(a.get('split_half_floor'))} | {p_values or '-'} | "
            f"{cell(a['dataset_accuracy'], 2)} |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots


def tsne_embedding(x: np.ndarray, seed: int) -> np.ndarray:
    """[N, D] -> [N, 2] t-SNE of standardized features (PCA init, seeded)."""
    x = StandardScaler().fit_transform(x)
    perplexity = min(30.0, (len(x) - 1) / 3.0)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def plot_tsne(panels: dict, path: str, seed: int):
    """panels: {title: (x [N, D], dataset names [N], valence [N])}; one row per title,
    coloured by dataset (left) and by valence (right)."""
    fig, axes = plt.subplots(len(panels), 2, squeeze=False, figsize=(9, 4 * len(panels)))
    for row, (title, (x, dataset, valence)) in zip(axes, panels.items()):
        xy = tsne_embedding(x, seed)
        for ax, colour, kind in ((row[0], dataset, "dataset"), (row[1], valence, "valence")):
            for value in np.unique(colour):
                sel = colour == value
                ax.scatter(xy[sel, 0], xy[sel, 1], s=4, label=str(value))
            ax.set(title=f"{title}: by {kind}", xticks=[], yticks=[])
            ax.legend(fontsize=7, markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_distance_matrices(panels: dict, groups: np.ndarray, path: str):
    """panels: {title: [G, G] distances}; subjects ordered by dataset (`groups` [G])."""
    fig, axes = plt.subplots(1, len(panels), squeeze=False, figsize=(4.8 * len(panels), 4))
    for ax, (title, dist) in zip(axes[0], panels.items()):
        image = ax.imshow(dist, cmap="viridis")
        for e in np.flatnonzero(groups[1:] != groups[:-1]) + 0.5:
            ax.axhline(e, color="w", lw=0.8)
            ax.axvline(e, color="w", lw=0.8)
        ratio = between_within_ratio(dist, groups)
        ax.set(
            title=f"{title}\nbetween/within dataset = {ratio:.2f}",
            xlabel="subject",
            ylabel="subject",
        )
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(confusion: np.ndarray, class_names, title: str, path: str):
    """Row-normalized confusion matrix (rows = true class)."""
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2.5, 1.2 * len(class_names) + 2))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(rates):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
    ax.set(
        xticks=range(len(class_names)),
        yticks=range(len(class_names)),
        xticklabels=class_names,
        yticklabels=class_names,
        xlabel="predicted",
        ylabel="true",
        title=title,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------- entry


def _tsne_panels(root: str, methods, seed: int, datasets, *, windows_per_dataset: int):
    panels = {}
    for method in methods:
        xs, names, valences = [], [], []
        for dataset in datasets:
            data = workdir.load_features(workdir.feature_path(root, method, seed, dataset))
            rows = np.random.default_rng(seed).permutation(len(data["features"]))
            rows = rows[:windows_per_dataset]
            xs.append(data["features"][rows])
            names += [dataset] * len(rows)
            valence_names = np.array(["unknown"] + list(data["valence_names"]))
            valences.append(valence_names[data["valence"][rows] + 1])
        panels[_title(method)] = (np.concatenate(xs), np.array(names), np.concatenate(valences))
    return panels


def run(config, root: str) -> dict:
    """Writes ROOT/report/{results.md, results.json, *.png}; prints the markdown.

    results.json: target, seeds, auroc_multi_class, methods (`results_table`),
    paired_differences (`paired_comparisons`), cda_between_within (the covariance-centroid
    ratio of earlier reports, kept for continuity), alignment (`alignment_summary` per
    method), finetune.
    """
    os.makedirs(workdir.report_dir(root), exist_ok=True)
    results = workdir.read_json(
        workdir.probe_results_path(root), missing_hint="run --mode=probe first"
    )
    results = {m: results[m] for m in config.methods}
    table = results_table(results)
    datasets = [config.target] + list(config.sources)
    first_seed = config.seeds[0]

    ratios, panels = {}, {}
    for method in config.report.cda_methods:
        per_seed = {}
        for seed in workdir.method_seeds(config, method):
            dist, groups = cda_distances(root, method, seed, datasets)
            per_seed[str(seed)] = between_within_ratio(dist, groups)
            if seed == first_seed:
                panels[_title(method)] = dist
        ratios[method] = dict(_mean_std(list(per_seed.values())), per_seed=per_seed)
    if panels:
        plot_distance_matrices(panels, groups, workdir.report_path(root, "cda_distances"))

    aligned = {}
    for method in config.report.alignment_methods:
        if method not in results:
            continue
        aligned[method] = alignment_summary(
            {
                seed: method_alignment(
                    root,
                    method,
                    int(seed),
                    result["retrieval_subjects"],
                    with_centroids=method in config.report.cda_methods,
                    windows_per_subject=config.report.alignment_windows_per_subject,
                    n_permutations=config.report.alignment_permutations,
                    seed_of_tests=config.report.seed,
                )
                for seed, result in sorted(results[method].items(), key=lambda kv: int(kv[0]))
            }
        )

    curves, pretraining_cda = {}, {}
    for method in config.pretrain_methods:
        rows_by_seed = {
            seed: workdir.read_metrics(workdir.metrics_path(workdir.run_dir(root, method, seed)))
            for seed in workdir.method_seeds(config, method)
        }
        pretraining_cda[method] = training_cda(rows_by_seed)
        if rows_by_seed.get(first_seed):
            curves[f"{_title(method)}, seed {first_seed}"] = rows_by_seed[first_seed]
    if curves:
        learning_curves.plot_learning_curves(curves, workdir.report_path(root, "learning_curves"))
    if config.report.tsne_methods:
        plot_tsne(
            _tsne_panels(
                root,
                config.report.tsne_methods,
                first_seed,
                datasets,
                windows_per_dataset=config.report.tsne_windows_per_dataset,
            ),
            workdir.report_path(root, "tsne"),
            config.report.seed,
        )
    method = config.report.confusion_method
    if method in results:
        seed = min(results[method], key=int)
        few = results[method][seed]["few_shot"]
        plot_confusion(
            np.sum([f["confusion"] for f in few["folds"]], axis=0),
            few["class_names"],
            f"{_title(method)}: few-shot, seed {seed}, all folds",
            workdir.report_path(root, "confusion"),
        )

    finetune = None
    if os.path.exists(workdir.finetune_results_path(root)):
        finetune = finetune_table(workdir.read_json(workdir.finetune_results_path(root)))
    paired = paired_comparisons(
        results,
        config.report.comparisons,
        n_samples=config.report.bootstrap_samples,
        confidence=config.report.confidence,
        seed=config.report.seed,
        deterministic_methods=tuple(config.deterministic_methods),
    )
    markdown = results_markdown(
        table,
        target=config.target,
        k=config.fewshot.k,
        n_folds=config.fewshot.n_folds,
        scheme=config.fewshot.folds,
        auroc_multi_class=config.auroc_multi_class,
        alignment=aligned,
        finetune=finetune,
        paired=paired,
        confidence=config.report.confidence,
        n_samples=config.report.bootstrap_samples,
        pretraining_cda=pretraining_cda,
    )
    summary = dict(
        target=config.target,
        seeds=list(config.seeds),
        auroc_multi_class=config.auroc_multi_class,
        methods=table,
        paired_differences=paired,
        cda_between_within=ratios,
        alignment=aligned,
        pretraining_cda=pretraining_cda,
        finetune=finetune,
    )
    workdir.write_json(workdir.report_path(root, "results_json"), summary)
    workdir.write_text(workdir.report_path(root, "results_md"), markdown)
    print(markdown)
    return summary
