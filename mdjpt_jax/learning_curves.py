"""Learning curves of pre-training runs (a run's loss_curve.png, the report's figure): one row
per run (contrastive/chance, CDA, its gradient diagnostics, held-out-subject evaluation)
from the rows of its metrics.jsonl (`workdir.read_metrics`).
"""

import matplotlib

matplotlib.use("Agg")  # Headless: runs on clusters without a display.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


CURVE_PANELS = (
    ("contrastive / chance", ("contrastive_over_chance",)),
    ("CDA (unweighted)", ("cda", "cda_diagnostics/cda")),
    (
        "CDA gradient (log scale)",
        ("cda_diagnostics/cda_over_contrastive", "cda_diagnostics/cda_radial_share_mixer"),
    ),
    (
        "held-out subjects",
        (
            "eval/retrieval_projection",
            "eval/retrieval_features",
            "eval/retrieval_waveform",
            "eval/retrieval_de",
            "eval/probe_auroc",
        ),
    ),
)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (the first points average what exists so far)."""
    cumsum = np.cumsum(np.insert(np.asarray(values, np.float64), 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (cumsum[idx] - cumsum[lo]) / (idx - lo)


def plot_learning_curves(runs: dict, png_path: str, *, smooth_window: int = 5) -> None:
    """One row per run: contrastive/chance and CDA (smoothed, raw points faint) and the
    held-out retrieval and probe AUROC against the step.

    Args:
        runs: {title: rows of metrics.jsonl}; a key missing from a row is skipped.
        png_path: output file.
    """
    if not runs or not any(runs.values()):
        raise ValueError(f"no logged steps to plot into {png_path}")
    fig, axes = plt.subplots(
        len(runs),
        len(CURVE_PANELS),
        squeeze=False,
        figsize=(4.2 * len(CURVE_PANELS), 3.2 * len(runs)),
    )
    for row_axes, (title, rows) in zip(axes, runs.items()):
        for ax, (panel, keys) in zip(row_axes, CURVE_PANELS):
            for key in keys:
                points = [(r["step"], r[key]) for r in rows if key in r]
                if not points:
                    continue
                steps, values = map(np.asarray, zip(*points))
                if key.startswith("eval/"):
                    ax.plot(steps, values, marker="o", ms=3, label=key[5:])
                else:
                    (line,) = ax.plot(steps, smooth(values, smooth_window), label=key)
                    ax.plot(steps, values, ".", ms=2, alpha=0.3, color=line.get_color())
            if panel.startswith("contrastive"):
                ax.axhline(1.0, color="grey", lw=0.8, ls="--")
            if panel.endswith("(log scale)") and ax.has_data():
                ax.set_yscale("log", nonpositive="mask")
            ax.set(title=f"{title}: {panel}", xlabel="step")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
