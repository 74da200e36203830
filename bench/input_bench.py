"""Input pipeline against a pod host: windows/s per CPU core vs the compiled roofline's demand.

Demand (flags, defaults from the README's "Before you launch on a pod"): the v5e:16x16
compile of the paper preset with P = 256 (--chips 256, --pairs_per_chip 1) puts
K x 1 x 2 x M = 320 windows on each chip per --roofline_ms 29.61 ms step: ~10,800 windows/s
per chip, ~43,200 per host of --chips_per_host 4 chips (a ct5lp-hightpu-4t VM), which has
--host_cpus 112 vCPUs (Google Cloud TPU v5e documentation, machine types: ct5lp-hightpu-1t
24, -4t 112, -8t 224). K, M, T (window_s x fs), C (ch_set) and the worker settings are the
paper preset's (configs/pretrain.py:paper).

Supply: the paper preset's per-host batch [K, P / hosts, 2, M, C, T] (= [5, 4, 2, 32, 60,
625], hosts = chips / chips_per_host: each host draws all P pairs and cuts its slice) from
synthetic_emotion d0 d1 d2 (built into --data_dir when missing; 30, 19 and 14 channels,
half or more of SEED's 60 interpolated in every window, more projection work than the paper
datasets, 3 of whose 5 have all 60 as a channel subset), taken cyclically for the K
datasets. Per CPU second (process_time; what one dedicated core delivers, robust to a
loaded machine), on one core (--cores):

  read        loading every trial from the TFDS array_record files (once per run, not per
              step): MiB per CPU second;
  in_process  num_workers=0: sampling, pairing, window cut, channel projection, batching in
              the training process; its serial part (the same batches of T = 8-sample
              windows: the work that does not scale with the window, Python that holds the
              GIL) bounds what one process can deliver with any number of threads;
  workers     num_workers=N (--num_workers, default the preset's) grain worker processes:
              CPU of the training process and its workers together, and what is left on
              the training process per batch (receiving it through shared memory).

Cores needed = demand / windows per CPU second; the training process's GIL load = demand
batches/s x its serial user-mode CPU seconds per batch (at 1 it cannot keep up however many
cores; its system time, the kernel mapping and freeing shared memory, holds no GIL).

    python bench/input_bench.py [--data_dir DIR] [--batches 40] [--num_workers 16]
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

import psutil  # noqa: E402

from mdjpt_jax import channels, trials  # noqa: E402
from mdjpt_jax.configs import pretrain as pretrain_config  # noqa: E402
from mdjpt_jax.pretrain import input_pipeline  # noqa: E402

SYNTHETIC = ("synthetic_emotion/d0", "synthetic_emotion/d1", "synthetic_emotion/d2")
SERIAL_WINDOW = 8  # samples: windows this short cost no copying, only the per-window Python


def ensure_built(data_dir: str) -> None:
    """Builds the synthetic datasets the bench reads, unless already in data_dir."""
    from tfds_builders import build

    for dataset in SYNTHETIC:
        name, config = dataset.split("/")
        if not os.path.isdir(os.path.join(data_dir, name, config)):
            build.build_dataset(name, config, data_dir)


def time_read(datasets: list, data_dir: str) -> dict:
    """CPU seconds to read every record (EEG kept) of each distinct dataset once."""
    cpu0, mib = time.process_time(), 0.0
    for dataset in sorted(set(datasets)):
        records = trials.read_dataset(dataset, data_dir)
        mib += sum(x.nbytes for x in records.eeg) / 2**20
    cpu = time.process_time() - cpu0
    return dict(mib=round(mib, 1), cpu_s=round(cpu, 2), mib_per_cpu_s=round(mib / cpu, 1))


def process_cpu_s(with_children: bool) -> float:
    """CPU seconds of this process (all threads), plus its live child processes if asked."""
    if not with_children:
        return time.process_time()
    processes = [psutil.Process()] + psutil.Process().children(recursive=True)
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def settled_cpu_s(poll_s: float = 0.5, idle_cpu_s: float = 0.02) -> float:
    """CPU seconds of this process and its children once the children are idle (their
    prefetch buffers full): counts the work of exactly the batches consumed in between."""
    before = process_cpu_s(True)
    while True:
        time.sleep(poll_s)
        now = process_cpu_s(True)
        if now - before < idle_cpu_s:
            return now
        before = now


def time_loader(loader_kwargs: dict, *, batches: int) -> dict:
    """Loader setup time, then CPU per batch over `batches` batches after a warm-up one
    (which starts the workers): of this process and, with workers, of them too, counted
    from full worker buffers to full worker buffers; with workers, this process's own CPU is
    taken over the batches already buffered (the hand-over when the workers keep up)."""
    t0 = time.perf_counter()
    loader = input_pipeline.make_pretrain_loader(**loader_kwargs)
    setup_s = time.perf_counter() - t0
    first = next(loader)
    n_windows = first["eeg"].shape[0] * first["eeg"].shape[1] * 2 * first["eeg"].shape[3]
    shape_eeg, batch_mib = list(first["eeg"].shape), first["eeg"].nbytes / 2**20
    del first
    workers = loader_kwargs["num_workers"] > 0
    ready = min(batches, loader_kwargs["prefetch"]) if workers else batches
    all0 = settled_cpu_s() if workers else process_cpu_s(False)
    t0, main0 = time.perf_counter(), psutil.Process().cpu_times()
    for _ in range(ready):
        next(loader)
    main1 = psutil.Process().cpu_times()
    for _ in range(batches - ready):
        next(loader)
    wall = time.perf_counter() - t0
    all_cpu = (settled_cpu_s() if workers else process_cpu_s(False)) - all0
    worker_uss = [p.memory_full_info().uss for p in psutil.Process().children()]
    loader.close()
    return dict(
        eeg_shape=shape_eeg,
        windows_per_batch=n_windows,
        batch_mib=round(batch_mib, 1),
        setup_s=round(setup_s, 2),
        batches=batches,
        windows_per_cpu_s=round(batches * n_windows / all_cpu, 1),
        main_process_user_ms_per_batch=round(1e3 * (main1.user - main0.user) / ready, 2),
        main_process_system_ms_per_batch=round(1e3 * (main1.system - main0.system) / ready, 2),
        **(dict(worker_uss_mib=round(max(worker_uss) / 2**20)) if workers else {}),
        wall_s=round(wall, 2),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=None, help="TFDS dir (default: a temp dir)")
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        help="built TFDS names to read, cyclically (default: synthetic d0..d2, built)",
    )
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--roofline_ms", type=float, default=29.61, help="compiled step time")
    parser.add_argument("--chips", type=int, default=256, help="chips of the pod slice")
    parser.add_argument("--chips_per_host", type=int, default=4)
    parser.add_argument("--pairs_per_chip", type=int, default=1)
    parser.add_argument("--host_cpus", type=int, default=112, help="vCPUs of one host")
    parser.add_argument("--num_workers", type=int, default=None, help="default: the preset's")
    parser.add_argument(
        "--num_threads", type=int, default=0, help="grain threads (in-process path)"
    )
    parser.add_argument("--prefetch", type=int, default=None, help="default: the preset's")
    parser.add_argument("--cores", type=int, default=1, help="CPU cores to pin to (workers too)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    data = pretrain_config.get_config("paper").data
    num_workers = data.num_workers if args.num_workers is None else args.num_workers
    data_dir = args.data_dir or os.path.join(tempfile.gettempdir(), "mdjpt_input_bench_tfds")
    if args.datasets is None:
        ensure_built(data_dir)
    names = args.datasets or list(SYNTHETIC)
    datasets = [names[k % len(names)] for k in range(len(data.datasets))]
    hosts = args.chips // args.chips_per_host
    pairs_per_step = args.pairs_per_chip * args.chips
    windows_per_chip_step = len(datasets) * args.pairs_per_chip * 2 * data.windows_per_pair
    demand = dict(
        windows_per_chip_step=windows_per_chip_step,
        windows_per_chip_s=round(windows_per_chip_step / (args.roofline_ms / 1e3), 1),
        windows_per_host_s=round(
            args.chips_per_host * windows_per_chip_step / (args.roofline_ms / 1e3)
        ),
    )
    loader_kwargs = dict(
        datasets=datasets,
        data_dir=data_dir,
        pairs_per_step=pairs_per_step,
        windows_per_pair=data.windows_per_pair,
        window_s=data.window_s,
        fs=data.fs,
        ch_names=channels.UNIFIED_SETS[data.ch_set],
        seed=0,
        process_index=0,
        process_count=hosts,
        num_threads=args.num_threads,
        prefetch=data.prefetch if args.prefetch is None else args.prefetch,
    )
    in_process = time_loader(dict(loader_kwargs, num_workers=0), batches=args.batches)
    serial = time_loader(
        dict(loader_kwargs, num_workers=0, window_s=SERIAL_WINDOW / data.fs),
        batches=args.batches,
    )
    workers = time_loader(dict(loader_kwargs, num_workers=num_workers), batches=args.batches)
    demand_batches = demand["windows_per_host_s"] / in_process["windows_per_batch"]
    in_process["serial_user_ms_per_batch"] = serial["main_process_user_ms_per_batch"]
    paths = {"in_process": in_process, f"workers_{num_workers}": workers}
    for row in paths.values():
        gil_ms = row.get("serial_user_ms_per_batch", row["main_process_user_ms_per_batch"])
        row.update(
            host_cores_needed=round(demand["windows_per_host_s"] / row["windows_per_cpu_s"], 2),
            training_process_gil_load=round(demand_batches * gil_ms / 1e3, 2),
        )
    print(
        json.dumps(
            dict(
                cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                cpu=platform.processor() or platform.machine(),
                datasets=datasets,
                host=dict(
                    chips=args.chips,
                    chips_per_host=args.chips_per_host,
                    host_cpus=args.host_cpus,
                    roofline_ms=args.roofline_ms,
                    pairs_per_step=pairs_per_step,
                    pairs_per_host=pairs_per_step // hosts,
                    **demand,
                ),
                read=time_read(datasets, data_dir),
                num_threads=args.num_threads,
                paths=paths,
            ),
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
