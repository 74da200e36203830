"""Training metrics of a run: WORKDIR/metrics.jsonl, TensorBoard events, progress bar.

Only the main process (process 0) writes; on the others every method is a no-op, so the
loop calls them unconditionally. On resume from step s the lines of metrics.jsonl with a
step > s are dropped (they were logged after the checkpoint the run resumes from) and
TensorBoard is told to purge events after s, so every step appears once.
"""

import json
import os

from tensorboardX import SummaryWriter
from tqdm import tqdm

from mdjpt_jax import workdir


def truncate_after(path: str, step: int) -> None:
    """Drops the lines of metrics.jsonl whose step is > `step` (atomically)."""
    rows = [row for row in workdir.read_metrics(path) if row["step"] <= step]
    workdir.write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


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
