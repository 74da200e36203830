"""Report: results table (markdown + JSON) and plots (PNG) of the downstream evaluation.

Reads WORKDIR/probe/<method>.json (probe.run), WORKDIR/features/ (extract.run), the
pre-training runs' metrics.jsonl and encoders, and writes into WORKDIR/report/:
results.md, results.json, loss_curves.png, tsne.png, cda_distances.png, confusion.png.
"""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from mdjpt_jax import extract, input_pipeline, probe  # noqa: E402

METHOD_TITLES = {"de": "DE baseline", "random": "Random encoder",
                 "single": "Pre-trained on one dataset", "joint": "Joint (mdJPT)",
                 "joint_no_cda": "Joint without CDA"}
METRIC_TITLES = {"accuracy": "Acc", "balanced_accuracy": "Bal. acc", "macro_f1": "Macro-F1",
                 "auroc": "AUROC", "auprc": "AUPRC"}
PROTOCOLS = ("few_shot", "zero_shot")


# ----------------------------------------------------------------------------- table


def results_table(results: dict) -> dict:
    """{method: probe result} -> {method: {protocol: {metric: {"mean", "std"}}}}."""
    return {method: {p: r[p]["summary"] for p in PROTOCOLS if p in r}
            for method, r in results.items()}


def markdown_table(table: dict, protocol: str, title: str) -> str:
    """One markdown table (methods x metrics, mean ± std) for one protocol."""
    header = "| Method | " + " | ".join(METRIC_TITLES[m] for m in probe.METRICS) + " |"
    lines = [f"### {title}", "", header, "|---" * (len(probe.METRICS) + 1) + "|"]
    for method, entry in table.items():
        if protocol not in entry:
            continue
        cells = [f"{entry[protocol][m]['mean']:.3f} ± {entry[protocol][m]['std']:.3f}"
                 for m in probe.METRICS]
        lines.append(f"| {METHOD_TITLES.get(method, method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_markdown(table: dict, *, target: str, k: int, n_folds: int) -> str:
    """Both protocols' tables with a one-line description of each."""
    parts = [f"## Downstream results on `{target}`", "",
             markdown_table(table, "few_shot",
                            f"Few-shot: {k} labelled subject(s), {n_folds} folds "
                            "(own emotion categories; test = all other subjects)")]
    if any("zero_shot" in entry for entry in table.values()):
        parts += ["", markdown_table(table, "zero_shot",
                                     "Zero-shot: negative vs positive, classifier trained "
                                     "on the other datasets (std over seeds)")]
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- plots


def read_metrics(path: str) -> list:
    """The JSON lines of a run's metrics.jsonl (one dict per logged step)."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_loss_curves(metric_files: dict, path: str):
    """One panel per run: every numeric key with 'loss' in its name against `step`."""
    fig, axes = plt.subplots(1, max(len(metric_files), 1), squeeze=False,
                             figsize=(4.5 * max(len(metric_files), 1), 3.5))
    for ax, (name, metrics_path) in zip(axes[0], metric_files.items()):
        rows = read_metrics(metrics_path)
        keys = sorted({k for r in rows for k, v in r.items()
                       if "loss" in k and isinstance(v, (int, float))})
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if key in r]
            ax.plot(*zip(*points), label=key)
        ax.set(title=METHOD_TITLES.get(name, name), xlabel="step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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


def centroid_distance_matrix(centroids: np.ndarray) -> np.ndarray:
    """[G, F, C, C] -> [G, G]: sum over F of ||centroid_a,f - centroid_b,f||_F (CDA's terms)."""
    diff = centroids[:, None] - centroids[None, :]
    return np.sqrt(np.sum(diff ** 2, axis=(-2, -1))).sum(-1)


def between_within_ratio(distances: np.ndarray, groups: np.ndarray) -> float:
    """Mean distance between subjects of different datasets / same dataset (off-diagonal)."""
    same = groups[:, None] == groups[None, :]
    off = ~np.eye(len(groups), dtype=bool)
    return float(distances[~same].mean() / distances[same & off].mean())


def plot_distance_matrices(panels: dict, groups: np.ndarray, path: str):
    """panels: {title: [G, G] distances}; subjects ordered by dataset (`groups` [G])."""
    fig, axes = plt.subplots(1, len(panels), squeeze=False, figsize=(4.8 * len(panels), 4))
    for ax, (title, dist) in zip(axes[0], panels.items()):
        image = ax.imshow(dist, cmap="viridis")
        for e in np.flatnonzero(groups[1:] != groups[:-1]) + 0.5:
            ax.axhline(e, color="w", lw=0.8)
            ax.axvline(e, color="w", lw=0.8)
        ratio = between_within_ratio(dist, groups)
        ax.set(title=f"{title}\nbetween/within dataset = {ratio:.2f}", xlabel="subject",
               ylabel="subject")
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
    ax.set(xticks=range(len(class_names)), yticks=range(len(class_names)),
           xticklabels=class_names, yticklabels=class_names, xlabel="predicted",
           ylabel="true", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------- entry


def _tsne_panels(workdir: str, methods, datasets, *, windows_per_dataset: int, seed: int):
    panels = {}
    for method in methods:
        xs, names, valences = [], [], []
        for dataset in datasets:
            data = extract.load_features(extract.feature_path(workdir, method, dataset))
            rng = np.random.default_rng(seed)
            rows = rng.permutation(len(data["features"]))[:windows_per_dataset]
            xs.append(data["features"][rows])
            names += [dataset.split("/")[-1]] * len(rows)
            valences.append(np.array(["unknown", "negative", "neutral", "positive"])[
                data["valence"][rows] + 1])
        panels[METHOD_TITLES.get(method, method)] = (
            np.concatenate(xs), np.array(names), np.concatenate(valences))
    return panels


def _cda_panels(config, workdir: str, datasets) -> tuple:
    """{title: [G, G]} per-subject centroid distances, the dataset of each subject, ratios."""
    ex = config.extract
    encoders = {m: extract.load_method_encoder(m, encoders=config.encoders,
                                               random_like=ex.random_like,
                                               random_seed=ex.random_seed, workdir=workdir)
                for m in config.report.cda_methods}
    read_trials = extract.TrialReader(config.data_dir)
    centroids, names = {m: [] for m in encoders}, []
    for dataset in datasets:
        for method, (encoder, info) in encoders.items():
            trials, _ = read_trials(dataset, info["ch_names"], float(info["fs"]))
            table = extract.window_table(trials, encoder.n_times,
                                         int(round(ex.step_s * info["fs"])))
            c, subjects = extract.subject_centroids(
                encoder, trials, table, window=encoder.n_times,
                windows_per_block=config.report.cda_windows_per_subject, seed=ex.seed)
            centroids[method].append(c)
        names += [dataset.split("/")[-1]] * len(subjects)
    groups, panels, ratios = np.array(names), {}, {}
    for method, parts in centroids.items():
        dist = centroid_distance_matrix(np.concatenate(parts))
        panels[METHOD_TITLES.get(method, method)] = dist
        ratios[method] = between_within_ratio(dist, groups)
    return panels, groups, ratios


def run(config, workdir: str) -> dict:
    """Writes WORKDIR/report/{results.md, results.json, *.png}; prints the markdown table."""
    out_dir = os.path.join(workdir, "report")
    os.makedirs(out_dir, exist_ok=True)
    results = {}
    for method in config.methods:
        with open(os.path.join(workdir, "probe", f"{method}.json")) as f:
            results[method] = json.load(f)
    table = results_table(results)
    markdown = results_markdown(table, target=config.target, k=config.fewshot.k,
                                n_folds=config.fewshot.n_folds)
    datasets = [config.target] + list(config.sources)

    metric_files = {m: os.path.join(os.path.dirname(extract.encoder_dir(workdir, p)),
                                    "metrics.jsonl") for m, p in config.encoders.items()}
    plot_loss_curves({m: p for m, p in metric_files.items() if os.path.exists(p)},
                     os.path.join(out_dir, "loss_curves.png"))
    plot_tsne(_tsne_panels(workdir, config.report.tsne_methods, datasets,
                           windows_per_dataset=config.report.tsne_windows_per_dataset,
                           seed=config.report.seed),
              os.path.join(out_dir, "tsne.png"), config.report.seed)
    panels, groups, ratios = _cda_panels(config, workdir, datasets)
    plot_distance_matrices(panels, groups, os.path.join(out_dir, "cda_distances.png"))
    method = config.report.confusion_method
    few = results[method]["few_shot"]
    plot_confusion(np.sum([f["confusion"] for f in few["folds"]], axis=0), few["class_names"],
                   f"{METHOD_TITLES.get(method, method)}: few-shot, all folds",
                   os.path.join(out_dir, "confusion.png"))

    markdown += ("\nCDA centroid distance, between / within dataset (mean over subject "
                 "pairs): " + ", ".join(f"{METHOD_TITLES.get(m, m)} {r:.2f}"
                                        for m, r in ratios.items()) + "\n")
    summary = dict(target=config.target, methods=table, cda_between_within=ratios)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(markdown)
    print(markdown)
    return summary
