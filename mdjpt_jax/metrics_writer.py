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
from tensorboardX import SummaryWriter  # noqa: E402
from tqdm import tqdm  # noqa: E402

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tb"


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
        workdir: the run directory.
        total_steps: the run's last step (for the progress bar's ETA).
        is_main: True on process 0; elsewhere nothing is written or shown.
        start_step: the step the run (re)starts from; later lines are dropped.
    """

    def __init__(self, workdir: str, *, total_steps: int, is_main: bool, start_step: int = 0):
        self.is_main = is_main
        if not is_main:
            return
        os.makedirs(workdir, exist_ok=True)
        self.path = os.path.join(workdir, METRICS_FILE)
        truncate_after(self.path, start_step)
        self._file = open(self.path, "a")
        self._tb = SummaryWriter(os.path.join(workdir, TENSORBOARD_DIR),
                                 purge_step=start_step + 1 if start_step else None)
        self._bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                         mininterval=1.0)

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


def plot_loss_curve(metrics_path: str, png_path: str) -> None:
    """Loss curves of one run: total and contrastive (with per dataset) | CDA term.

    Reads metrics.jsonl (keys step, loss, contrastive, cda, contrastive/<dataset>).
    """
    rows = read_metrics(metrics_path)
    if not rows:
        raise ValueError(f"{metrics_path} has no logged steps to plot")
    steps = [row["step"] for row in rows]
    fig, (ax_loss, ax_cda) = plt.subplots(1, 2, figsize=(10, 3.8))
    names = ["loss", "contrastive"] + sorted(k for k in rows[0] if k.startswith("contrastive/"))
    for name in names:
        ax_loss.plot(steps, [row[name] for row in rows], label=name,
                     linewidth=2 if name == "loss" else 1)
    ax_loss.set(xlabel="step", ylabel="loss", title="total and contrastive (NT-Xent)")
    ax_loss.legend(fontsize=7)
    ax_cda.plot(steps, [row["cda"] for row in rows], color="tab:red")
    ax_cda.set(xlabel="step", ylabel="CDA", title="covariance alignment (unweighted)")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
