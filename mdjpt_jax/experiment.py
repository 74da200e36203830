"""The whole experiment in one workdir: data -> pre-training runs -> extract -> probe -> report.

`run_all(config, workdir)` (main.py --mode=all) with a config from configs/demo.py:
1. data: builds the `synthetic_emotion` configs listed in `config.synthetic_configs`
   into `config.data_dir` unless already built;
2. pretrain: one `train.run` per entry of `config.pretrain_runs` (joint, single-dataset,
   joint without CDA) and per seed of `workdir.method_seeds(config, name)` (`config.seeds`
   unless `config.method_seeds` names fewer), in WORKDIR/runs/<name>/seed<k>; a
   run whose encoder is exported is done;
3. extract, 4. probe, 5. finetune (config.finetune.methods; skipped when empty), 6. report:
   the downstream entry points on the same config (each re-uses what is already on disk
   for identical inputs).
Re-running the same command therefore resumes where it stopped.
"""

import time

import jax

from mdjpt_jax import checkpointing, extract, finetune, probe, report, train, workdir


def pretrain_all(runs: dict, seeds: dict, root: str) -> None:
    """train.run for each named pre-training config and each of its seeds (`seeds[name]`)
    whose encoder is not exported yet, in workdir.run_dir(root, name, seed), with
    train.seed = seed."""
    for name, run_config in runs.items():
        for seed in seeds[name]:
            directory = workdir.run_dir(root, name, seed)
            if checkpointing.is_exported(workdir.encoder_dir(directory)):
                print(f"[pretrain] {name} seed {seed}: encoder already exported in {directory}")
                continue
            print(f"[pretrain] {name} seed {seed} -> {directory}")
            config = run_config.copy_and_resolve_references()
            with config.unlocked():
                config.train.seed = seed
            train.run(config, directory)


def run_all(config, root: str) -> dict:
    """Runs every stage, printing each stage's wall time; returns report.run's summary."""
    jax.config.update("jax_compilation_cache_dir", workdir.compilation_cache_dir(root))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    stages = (
        (
            "data",
            lambda: train.ensure_datasets(
                [f"{train.SYNTHETIC}/{c}" for c in config.synthetic_configs], config.data_dir
            ),
        ),
        (
            "pretrain",
            lambda: pretrain_all(
                config.pretrain_runs,
                {name: workdir.method_seeds(config, name) for name in config.pretrain_runs},
                root,
            ),
        ),
        ("extract", lambda: extract.run(config, root)),
        ("probe", lambda: probe.run(config, root)),
        ("finetune", lambda: finetune.run(config, root) if config.finetune.methods else None),
        ("report", lambda: report.run(config, root)),
    )
    summary, total = None, time.perf_counter()
    for name, stage in stages:
        start = time.perf_counter()
        summary = stage()
        print(f"[all] stage {name} done in {time.perf_counter() - start:.1f} s")
    print(
        f"[all] finished in {time.perf_counter() - total:.1f} s; "
        f"report in {workdir.report_dir(root)}"
    )
    return summary
