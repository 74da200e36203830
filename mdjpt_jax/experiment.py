"""The whole experiment in one workdir: data -> pre-training runs -> extract -> probe -> report.

`run_all(config, workdir)` (main.py --mode=all) with a config from configs/demo.py:
1. data: builds the `synthetic_emotion` configs listed in `config.synthetic_configs`
   into `config.data_dir` unless already built;
2. pretrain: one `train.run` per entry of `config.pretrain_runs` (joint, single-dataset,
   joint without CDA) in WORKDIR/runs/<name>; a run whose encoder is exported is done;
3. extract, 4. probe, 5. report: the downstream entry points on the same config (each
   re-uses what is already on disk for identical inputs).
Re-running the same command therefore resumes where it stopped.
"""

import glob
import os
import time

from mdjpt_jax import extract, probe, report, train

SYNTHETIC = "synthetic_emotion"


def _is_built(data_dir: str, name: str, builder_config: str) -> bool:
    return bool(glob.glob(os.path.join(data_dir, name, builder_config, "*", "dataset_info.json")))


def build_synthetic(data_dir: str, builder_configs) -> None:
    """Builds the missing synthetic_emotion configs into data_dir."""
    from tfds_builders import build  # the builders are not part of the mdjpt_jax library

    for builder_config in builder_configs:
        if _is_built(data_dir, SYNTHETIC, builder_config):
            print(f"[data] {SYNTHETIC}/{builder_config} already built in {data_dir}")
            continue
        build.build_dataset(SYNTHETIC, builder_config, data_dir)


def run_dir(workdir: str, name: str) -> str:
    """WORKDIR/runs/<name>: the workdir of one pre-training run."""
    return os.path.join(workdir, "runs", name)


def pretrain_all(runs: dict, workdir: str) -> None:
    """train.run for each named pre-training config whose encoder is not exported yet."""
    for name, run_config in runs.items():
        directory = run_dir(workdir, name)
        if os.path.exists(os.path.join(directory, "encoder", "encoder.json")):
            print(f"[pretrain] {name}: encoder already exported in {directory}")
            continue
        print(f"[pretrain] {name} -> {directory}")
        train.run(run_config, directory)


def run_all(config, workdir: str) -> dict:
    """Runs every stage, printing each stage's wall time; returns report.run's summary."""
    stages = (
        ("data", lambda: build_synthetic(config.data_dir, config.synthetic_configs)),
        ("pretrain", lambda: pretrain_all(config.pretrain_runs, workdir)),
        ("extract", lambda: extract.run(config, workdir)),
        ("probe", lambda: probe.run(config, workdir)),
        ("report", lambda: report.run(config, workdir)),
    )
    summary, total = None, time.perf_counter()
    for name, stage in stages:
        start = time.perf_counter()
        summary = stage()
        print(f"[all] stage {name} done in {time.perf_counter() - start:.1f} s")
    print(f"[all] finished in {time.perf_counter() - total:.1f} s; "
          f"report in {os.path.join(workdir, 'report')}")
    return summary
