"""Training metrics of a run: WORKDIR/metrics.jsonl, TensorBoard events, progress bar.

Only the main process (process 0) writes; on the others every method is a no-op, so the
loop calls them unconditionally. On resume from step s the lines of metrics.jsonl with a
step > s are dropped (they were logged after the checkpoint the run resumes from) and
TensorBoard is told to purge events after s, so every step appears once.
"""

import json
import os

import matplotlib

matplotlib.use("Agg")  # Headless: runs on clusters without a display.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tensorboardX import SummaryWriter  # noqa: E402
from tqdm import tqdm  # noqa: E402

from mdjpt_jax import workdir  # noqa: E402


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


def truncate_after(path: str, step: int) -> None:
    """Drops the lines of metrics.jsonl whose step is > `step` (atomically)."""
    rows = [row for row in read_metrics(path) if row["step"] <= step]
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    os.replace(temporary, path)


class MetricsWriter:
    """Writes one JSON line + TensorBoard scalars per logged step and drives a tqdm bar.

    Args:
        directory: the run directory.
        total_steps: the run's last step (for the progress bar's ETA).
        is_main: True on process 0; elsewhere nothing is written or shown.
        start_step: the step the run (re)starts from; later lines are dropped.
    """

    def __init__(self, directory: str, *, total_steps: int, is_main: bool, start_step: int = 0):
        self.is_main = is_main
        if not is_main:
            return
        os.makedirs(directory, exist_ok=True)
        self.path = workdir.metrics_path(directory)
        truncate_after(self.path, start_step)
        self._file = open(self.path, "a")
        self._tb = SummaryWriter(
            workdir.tensorboard_dir(directory), purge_step=start_step + 1 if start_step else None
        )
        self._bar = tqdm(
            total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, mininterval=1.0
        )

    def write(self, step: int, metrics: dict) -> None:
        """Logs scalar `metrics` (name -> number) of `step` (the number of updates done)."""
        if not self.is_main:
            return
        row = dict(step=int(step), **{k: float(v) for k, v in metrics.items()})
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        for name, value in row.items():
            if name != "step":
                self._tb.add_scalar(name, value, int(step))
        self._bar.update(int(step) - self._bar.n)
        postfix = {k: f"{row[k]:.4g}" for k in ("loss", "windows_per_s") if k in row}
        self._bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if not self.is_main:
            return
        self._bar.close()
        self._tb.close()
        self._file.close()


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
