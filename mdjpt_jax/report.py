"""Report: renders the files of the earlier stages into a results table and plots.

A pure renderer: it reads probe/results.json (probe.run), the feature and centroid files
(extract.run) and the pre-training runs' metrics.jsonl, all through `workdir`, and writes
into ROOT/report/: results.md, results.json (every per-seed and per-fold value),
learning_curves.png, tsne.png, cda_distances.png, confusion.png. It runs no model.

Numbers: for each method and protocol, each pre-training seed gives the mean over folds
(few-shot) or repeats (zero-shot) of each metric; the table shows mean ± std ACROSS SEEDS,
and results.json keeps the fold-level values too. A result is marked degenerate when a
classifier predicted one class for every window of a fold, or when its AUROC is at chance
(mean <= 0.55): such a number is a finding to explain, not a score.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from mdjpt_jax import metrics_writer, workdir  # noqa: E402

METHOD_TITLES = {
    "de": "DE baseline",
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
}
PROTOCOLS = {"few_shot": "folds", "zero_shot": "repeats"}
CHANCE_AUROC_MAX = 0.55


def _title(method: str) -> str:
    return METHOD_TITLES.get(method, method)


def _mean_std(values) -> dict:
    values = np.asarray(values, np.float64)
    return dict(mean=float(np.mean(values)), std=float(np.std(values)))


# ----------------------------------------------------------------------------- table


def is_constant(confusion) -> bool:
    """True when every prediction of a confusion matrix (rows true, columns predicted)
    falls in one column."""
    return int(np.count_nonzero(np.asarray(confusion).sum(axis=0))) <= 1


def summarize_protocol(per_seed: dict, protocol: str) -> dict:
    """{seed: probe result} -> across-seed summary of one protocol.

    Returns:
        dict: metrics {metric: {mean, std}} over the seeds' fold means; fold_std {metric:
        mean over seeds of the std over folds}; per_seed {seed: {metric: fold mean}};
        per_fold {seed: [{metric: value}]}; constant_folds / n_folds; degenerate (list of
        reasons, empty when none).
    """
    unit = PROTOCOLS[protocol]
    runs = {seed: r[protocol][unit] for seed, r in per_seed.items() if protocol in r}
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
        fold_std={
            m: float(np.mean([np.std([f[m] for f in folds]) for folds in per_fold.values()]))
            for m in METRICS
        },
        per_seed=per_seed_means,
        per_fold=per_fold,
        constant_folds=constant,
        n_folds=n_folds,
        degenerate=degenerate,
    )


def results_table(results: dict) -> dict:
    """{method: {seed: probe result}} -> {method: {protocol: summary, "retrieval": ...}}."""
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
        entry["seeds"] = sorted(per_seed, key=int)
        table[method] = entry
    return table


def markdown_table(table: dict, protocol: str, title: str) -> str:
    """One markdown table (methods x metrics, mean ± std over seeds) for one protocol;
    degenerate results are marked with "(!)" and explained below the table."""
    header = "| Method | seeds | " + " | ".join(METRIC_TITLES[m] for m in METRICS) + " |"
    lines = [f"### {title}", "", header, "|---" * (len(METRICS) + 2) + "|"]
    notes = []
    for method, entry in table.items():
        if protocol not in entry:
            continue
        summary = entry[protocol]
        cells = [
            f"{summary['metrics'][m]['mean']:.3f} ± {summary['metrics'][m]['std']:.3f}"
            for m in METRICS
        ]
        flag = " (!)" if summary["degenerate"] else ""
        lines.append(
            f"| {_title(method)}{flag} | {len(entry['seeds'])} | " + " | ".join(cells) + " |"
        )
        notes += [f"- (!) {_title(method)}: {reason}" for reason in summary["degenerate"]]
    return "\n".join(lines + ([""] + notes if notes else []))


def retrieval_markdown(table: dict) -> str:
    """Cross-subject retrieval@1 of the extracted features per pre-training dataset."""
    datasets = sorted({d for entry in table.values() for d in entry["retrieval"]})
    if not datasets:
        return ""
    lines = [
        "### Cross-subject window retrieval@1 on pre-training datasets (chance 0.0625)",
        "",
        "| Method | " + " | ".join(f"`{d}`" for d in datasets) + " |",
        "|---" * (len(datasets) + 1) + "|",
    ]
    for method, entry in table.items():
        cells = [
            f"{entry['retrieval'][d]['mean']:.3f} ± {entry['retrieval'][d]['std']:.3f}"
            if d in entry["retrieval"]
            else "-"
            for d in datasets
        ]
        lines.append(f"| {_title(method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def finetune_table(results: dict) -> dict:
    """{method: {seed: finetune result}} -> {method: {finetuned, frozen: {metric: {mean, std}}
    across seeds of the fold means, improved: seeds where fine-tuning beat the frozen head,
    seeds}}."""
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
            f"{entry[name][m]['mean']:.3f} ± {entry[name][m]['std']:.3f}"
            for m in ("balanced_accuracy", "auroc")
            for name in ("finetuned", "frozen")
        ]
        lines.append(
            f"| {_title(method)} | {len(entry['seeds'])} | "
            + " | ".join(cells)
            + f" | {entry['improved']}/{len(entry['seeds'])} |"
        )
    return "\n".join(lines)


def results_markdown(
    table: dict,
    *,
    target: str,
    k: int,
    n_folds: int,
    cda_ratios: dict | None = None,
    finetune: dict | None = None,
) -> str:
    """Both protocols' tables, retrieval and CDA ratios, with a line describing each."""
    parts = [
        f"## Downstream results on `{target}`",
        "",
        "Mean ± std across pre-training seeds (each seed: mean over folds).",
        "",
        markdown_table(
            table,
            "few_shot",
            f"Few-shot: {k} labelled subject(s), {n_folds} folds "
            "(own emotion categories; test = all other subjects)",
        ),
    ]
    if any("zero_shot" in entry for entry in table.values()):
        parts += [
            "",
            markdown_table(
                table,
                "zero_shot",
                "Zero-shot: negative vs positive, classifier trained on the other datasets",
            ),
        ]
    if finetune:
        parts += ["", finetune_markdown(finetune, k=k)]
    retrieval_text = retrieval_markdown(table)
    if retrieval_text:
        parts += ["", retrieval_text]
    if cda_ratios:
        parts += [
            "",
            "CDA centroid distance, between / within dataset (mean over subject "
            "pairs; lower = datasets aligned): "
            + ", ".join(
                f"{_title(m)} {r['mean']:.2f} ± {r['std']:.2f}" for m, r in cda_ratios.items()
            ),
        ]
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- CDA


def centroid_distance_matrix(centroids: np.ndarray) -> np.ndarray:
    """[G, F, C, C] -> [G, G]: sum over F of ||centroid_a,f - centroid_b,f||_F (CDA's terms)."""
    diff = centroids[:, None] - centroids[None, :]
    return np.sqrt(np.sum(diff**2, axis=(-2, -1))).sum(-1)


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
            data = workdir.load_features(
                workdir.feature_path(root, method, workdir.feature_seed(method, seed), dataset)
            )
            rows = np.random.default_rng(seed).permutation(len(data["features"]))
            rows = rows[:windows_per_dataset]
            xs.append(data["features"][rows])
            names += [dataset] * len(rows)
            valence_names = np.array(["unknown"] + list(data["valence_names"]))
            valences.append(valence_names[data["valence"][rows] + 1])
        panels[_title(method)] = (np.concatenate(xs), np.array(names), np.concatenate(valences))
    return panels


def run(config, root: str) -> dict:
    """Writes ROOT/report/{results.md, results.json, *.png}; prints the markdown."""
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

    curves = {}
    for method in config.pretrain_methods:
        rows = metrics_writer.read_metrics(
            workdir.metrics_path(workdir.run_dir(root, method, first_seed))
        )
        if rows:
            curves[f"{_title(method)}, seed {first_seed}"] = rows
    if curves:
        metrics_writer.plot_learning_curves(curves, workdir.report_path(root, "learning_curves"))
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
    few = results[method][str(first_seed)]["few_shot"]
    plot_confusion(
        np.sum([f["confusion"] for f in few["folds"]], axis=0),
        few["class_names"],
        f"{_title(method)}: few-shot, seed {first_seed}, all folds",
        workdir.report_path(root, "confusion"),
    )

    finetune = None
    if os.path.exists(workdir.finetune_results_path(root)):
        finetune = finetune_table(workdir.read_json(workdir.finetune_results_path(root)))
    markdown = results_markdown(
        table,
        target=config.target,
        k=config.fewshot.k,
        n_folds=config.fewshot.n_folds,
        cda_ratios=ratios,
        finetune=finetune,
    )
    summary = dict(
        target=config.target,
        seeds=list(config.seeds),
        methods=table,
        cda_between_within=ratios,
        finetune=finetune,
    )
    workdir.write_json(workdir.report_path(root, "results_json"), summary)
    workdir.write_text(workdir.report_path(root, "results_md"), markdown)
    print(markdown)
    return summary
