"""The whole experiment in one workdir: data -> pre-training runs -> extract -> probe -> report.

`run_all(config, workdir)` (main.py --mode=all) with a config from configs/demo.py:
1. data: builds the `synthetic_emotion` configs listed in `config.synthetic_configs`
   into `config.data_dir` unless already built; then `check_plan` validates the whole
   experiment (methods, seeds, held-out subjects, few-shot folds, comparisons) before any
   pre-training step, so a run cannot fail after its pre-training for a config reason;
2. pretrain: one `train.run` per entry of `config.pretrain_runs` (joint, single-dataset,
   joint without CDA) and per seed of `workdir.method_seeds(config, name)` (`config.seeds`
   unless `config.method_seeds` names fewer), in WORKDIR/runs/<name>/seed<k>; a
   run whose encoder is exported is done;
3. extract, 4. probe, 5. finetune (config.finetune.methods; skipped when empty), 6. report:
   the downstream entry points on the same config (each re-uses what is already on disk
   for identical inputs).
Re-running the same command therefore resumes where it stopped.
"""

import os
import time

import jax

from mdjpt_jax import checkpointing, heldout, trials, workdir
from mdjpt_jax.downstream import extract, finetune, probe, report
from mdjpt_jax.downstream.folds import check_folds
from mdjpt_jax.pretrain import train


def check_plan(config, *, num_devices: int | None = None) -> None:
    """Raises ValueError listing every problem of an experiment config, before any work.

    Checks: every pre-training run's own config (`train.validate`); every method is a
    signal baseline, "random" or a pre-training run; the random
    encoder's architecture source is pre-trained; each run's seeds are valid; the held-out
    subjects of every run equal the downstream ones and leave pairs to train on; the
    few-shot folds exist for the target's subject count; the report's comparisons name
    methods of the table. Needs the datasets built (reads their subject lists).
    `num_devices`: the devices the runs will use (default: all of them, as train.run).
    """
    problems = []
    runs = dict(config.pretrain_runs)
    for method in config.methods:
        if method not in extract.SIGNAL_METHODS and method != "random" and method not in runs:
            problems.append(f"method {method!r} is neither a baseline nor in pretrain_runs")
    if "random" in config.methods and config.extract.random_like not in runs:
        problems.append(
            f"extract.random_like={config.extract.random_like!r} (the random encoder's "
            f"architecture) is not in pretrain_runs {sorted(runs)}"
        )
    for method in list(config.methods) + list(runs):
        try:
            workdir.method_seeds(config, method)
        except ValueError as error:
            problems.append(str(error))
    for name, run in runs.items():
        try:
            train.validate(
                train.read_config(run.copy_and_resolve_references()),
                num_devices=num_devices or jax.device_count(),
                process_count=jax.process_count(),
            )
        except ValueError as error:
            problems.append(f"pretrain_runs.{name}: {error}")
    downstream = (config.heldout_subjects, dict(config.heldout_subject_ids))
    for name, run in runs.items():
        spec = (run.data.heldout_subjects, dict(run.data.heldout_subject_ids))
        if spec != downstream:
            problems.append(
                f"pretrain_runs.{name}.data holds out {spec}, the downstream config "
                f"{downstream}: the report's retrieval would not be on held-out subjects"
            )
    pretrained = {d for run in runs.values() for d in run.data.datasets}
    for dataset in sorted(pretrained | set(config.sources)):
        subjects = _subjects(dataset, config.data_dir)
        try:
            ids = heldout.heldout_subjects(
                dataset, subjects, count=downstream[0], explicit=downstream[1]
            )
        except ValueError as error:
            problems.append(str(error))
            continue
        if dataset in config.sources and len(ids) < 2:
            problems.append(
                f"{dataset}: the report's retrieval runs on its held-out subjects and needs "
                f">= 2 of them, got {ids.tolist()}"
            )
    n_target = len(_subjects(config.target, config.data_dir))
    try:
        f = config.fewshot
        check_folds(n_target, f.k, f.n_folds, f.folds)
    except ValueError as error:
        problems.append(f"{config.target}: {error}")
    for comparison in config.report.comparisons:
        a, _, b = comparison.partition("-")
        if a not in config.methods or b not in config.methods:
            problems.append(f"report.comparisons {comparison!r} names a method not in methods")
    if problems:
        raise ValueError("invalid experiment config:\n  " + "\n  ".join(problems))


def _subjects(dataset: str, data_dir: str) -> list:
    records = trials.read_dataset(dataset, os.path.expanduser(data_dir), keep_eeg=False)
    return sorted(set(records.fields["subject"].tolist()))


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
            lambda: trials.ensure_datasets(
                [f"{trials.SYNTHETIC}/{c}" for c in config.synthetic_configs], config.data_dir
            ),
        ),
        ("check", lambda: check_plan(config)),
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
