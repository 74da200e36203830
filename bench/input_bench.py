"""Input-pipeline benchmark: batches/s on one CPU core vs the train step's demand.

Builds synthetic_emotion d0..d2 into --data_dir if missing, then times the grain pipeline
(`input_pipeline.make_pretrain_loader`, trials cached in memory, projection onto the 60
SEED channels) pinned to one core, for two batch shapes:

  demo   K=3 (d0 d1 d2), P=2 pairs, M=16 windows, 60 channels, T=625 (5 s at 125 Hz)
  paper  K=5 (d0 d1 d2 d0 d1), P=2 pairs, M=30 windows, 60 channels, T=625

The demand is 1 / --step_seconds batches/s (the measured train-step time of that shape on
your accelerator, e.g. from bench/model_bench.py). Supply = batches per CPU second of the
loader on one core; requirement: supply >= 10x demand. Quiet-machine numbers only.

    python bench/input_bench.py --step_seconds 0.1 0.5 [--data_dir DIR] [--batches 20]
    python bench/input_bench.py --datasets seed/preprocessed faced/preprocessed --data_dir DIR
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TFDS_DISABLE_GCS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # The projections' matmuls are tiny.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mdjpt_jax import channels  # noqa: E402
from mdjpt_jax.pretrain import input_pipeline  # noqa: E402

SYNTHETIC = ("synthetic_emotion/d0", "synthetic_emotion/d1", "synthetic_emotion/d2")
# name -> (K datasets, taken cyclically from --datasets; P pairs; M windows per pair).
SHAPES = {"demo": (3, 2, 16), "paper": (5, 2, 30)}


def ensure_built(data_dir: str) -> None:
    """Builds the synthetic datasets the bench reads, unless already in data_dir."""
    from tfds_builders import build

    for dataset in SYNTHETIC:
        name, config = dataset.split("/")
        if not os.path.isdir(os.path.join(data_dir, name, config)):
            build.build_dataset(name, config, data_dir)


def time_shape(
    data_dir: str,
    datasets: list,
    pairs: int,
    windows: int,
    *,
    batches: int,
    window_s: float,
    fs: float,
    num_threads: int,
) -> dict:
    """Throughput over `batches` batches after a warm-up one: per wall second, and per CPU
    second of this process (what one dedicated core delivers, robust to a loaded machine)."""
    t0 = time.perf_counter()
    loader = input_pipeline.make_pretrain_loader(
        datasets,
        data_dir,
        pairs_per_step=pairs,
        windows_per_pair=windows,
        window_s=window_s,
        fs=fs,
        ch_names=channels.UNIFIED_SETS["seed60"],
        seed=0,
        num_threads=num_threads,
    )
    setup_s = time.perf_counter() - t0
    first = next(loader)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(loader)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    shape_eeg = list(first["eeg"].shape)
    n_windows = shape_eeg[0] * shape_eeg[1] * 2 * shape_eeg[3]
    return dict(
        eeg_shape=shape_eeg,
        batch_mib=round(first["eeg"].nbytes / 2**20, 1),
        setup_s=round(setup_s, 2),
        batches=batches,
        batches_per_s=round(batches / elapsed, 2),
        windows_per_s=round(batches * n_windows / elapsed, 1),
        batches_per_cpu_s=round(batches / cpu, 2),
        windows_per_cpu_s=round(batches * n_windows / cpu, 1),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=None, help="TFDS dir (default: a temp dir)")
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        help="built TFDS names to read (default: synthetic d0..d2, built)",
    )
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--window_s", type=float, default=5.0)
    parser.add_argument("--fs", type=float, default=125.0)
    parser.add_argument(
        "--num_threads",
        type=int,
        default=0,
        help="grain threads (0: batches computed in the calling thread)",
    )
    parser.add_argument(
        "--step_seconds",
        type=float,
        nargs=2,
        default=None,
        metavar=("DEMO", "PAPER"),
        help="measured train-step seconds of the demo and paper shapes",
    )
    parser.add_argument("--cores", type=int, default=1, help="CPU cores to pin to")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    data_dir = args.data_dir or os.path.join(tempfile.gettempdir(), "mdjpt_input_bench_tfds")
    if args.datasets is None:
        ensure_built(data_dir)
    names = args.datasets or list(SYNTHETIC)
    results = {}
    for i, (name, (k, pairs, windows)) in enumerate(SHAPES.items()):
        datasets = [names[j % len(names)] for j in range(k)]
        row = time_shape(
            data_dir,
            datasets,
            pairs,
            windows,
            batches=args.batches,
            window_s=args.window_s,
            fs=args.fs,
            num_threads=args.num_threads,
        )
        if args.step_seconds:
            demand = 1.0 / args.step_seconds[i]
            supply = row["batches_per_cpu_s"]
            row.update(
                step_seconds=args.step_seconds[i],
                demand_batches_per_s=round(demand, 2),
                supply_over_demand=round(supply / demand, 1),
                meets_10x=supply >= 10 * demand,
            )
        results[name] = dict(
            datasets=datasets, pairs_per_step=pairs, windows_per_pair=windows, **row
        )
    print(
        json.dumps(
            dict(
                cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                cpu=platform.processor() or platform.machine(),
                num_threads=args.num_threads,
                window_s=args.window_s,
                fs=args.fs,
                shapes=results,
            ),
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
