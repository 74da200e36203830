"""The evoked-response benchmark family: one experiment per condition (bench/benchmark_family.py).

Conditions (tfds_builders/synthetic_emotion/README.md, "Evoked-response benchmark"; the
predictions were written there before the first run):

    scale1 / scale2 / scale3 / scale5   joint pre-training on e0 / e0-e1 / e0-e2 / e0-e4; the
                                        target is e5 (never pre-trained on, all its subjects
                                        unseen). The scaling curve of the paper's "more
                                        datasets, better features".
    scale3 also pre-trains "single"     e0 alone, COMPUTE-MATCHED: 3x the pairs per step, so
                                        it sees as many windows per step as joint on 3
                                        datasets (joint vs single at equal compute).
    null3                               joint on n0-n2, target n5: the null control (no
                                        response time-locked across subjects); pre-training
                                        must come out equal to the random encoder.

Every condition also extracts the baselines "de" (same windows), "waveform" (the untrained
read-out of the raw waveform) and "random". Command (one condition):

    python -m mdjpt_jax.main --mode=all --config=configs/benchmark.py:condition=scale3 \
        --workdir=runs/benchmark/scale3

Preset args: condition=NAME, steps=N (pre-training steps, default 60), seeds=N (default 5),
tiny (a few steps, for the smoke test).
"""

import ml_collections

from mdjpt_jax.configs import common, downstream, pretrain

EVOKED = tuple(f"synthetic_emotion/e{i}" for i in range(6))
NULL = tuple(f"synthetic_emotion/n{i}" for i in range(6))
CONDITIONS = {
    # name: (pre-training datasets, target, whether a compute-matched single run is added)
    "scale1": (EVOKED[:1], EVOKED[5], False),
    "scale2": (EVOKED[:2], EVOKED[5], False),
    "scale3": (EVOKED[:3], EVOKED[5], True),
    "scale5": (EVOKED[:5], EVOKED[5], False),
    "null3": (NULL[:3], NULL[5], False),
}


def _pretrain_config(
    datasets, *, steps: int, pairs_scale: int, experiment: ml_collections.ConfigDict
):
    config = pretrain.get_config("synthetic")
    with config.unlocked():
        config.data.datasets = tuple(datasets)
        config.data.pairs_per_step *= pairs_scale
        config.data.data_dir = experiment.get_ref("data_dir")
        config.data.heldout_subjects = experiment.get_ref("heldout_subjects")
        config.data.heldout_subject_ids = experiment.heldout_subject_ids
        config.train.steps = steps
        config.train.log_every = min(config.train.log_every, steps)
        config.train.eval_every = steps  # learning curve: step 0 and the last step
        config.train.checkpoint_every = steps
        config.optim.warmup_steps = min(config.optim.warmup_steps, steps // 2)
    return config


def get_config(arg=None) -> ml_collections.ConfigDict:
    """One benchmark condition as an experiment config (the demo's layout)."""
    arg = common.parse_arg(arg, condition="scale3", steps=60, seeds=5, tiny=False)
    if arg.condition not in CONDITIONS:
        raise ValueError(f"condition={arg.condition!r}; choose from {sorted(CONDITIONS)}")
    datasets, target, matched = CONDITIONS[arg.condition]
    steps = 4 if arg.tiny else arg.steps
    config = downstream.get_config(f"target={target}")
    with config.unlocked():
        config.sources = tuple(datasets)
        config.synthetic_configs = tuple(sorted({d.split("/")[1] for d in datasets + (target,)}))
        config.seeds = tuple(range(2 if arg.tiny else arg.seeds))
        config.extract.window_s, config.extract.step_s = 2.0, 1.0
        config.extract.baseline_ch_set = "standard_1020"
        config.finetune.methods = ()
        config.fewshot.n_folds = 3  # e5/n5: 6 subjects, k = 2 -> 3 disjoint folds
        runs = {"joint": _pretrain_config(datasets, steps=steps, pairs_scale=1, experiment=config)}
        if matched:
            runs["single"] = _pretrain_config(
                datasets[:1], steps=steps, pairs_scale=len(datasets), experiment=config
            )
        config.pretrain_runs = ml_collections.ConfigDict(runs)
        config.pretrain_methods = tuple(runs)
        config.methods = ("de", "waveform", "random") + tuple(runs)
        config.report.comparisons = tuple(
            c
            for c in ("joint-random", "joint-de", "joint-waveform", "joint-single")
            if c.split("-")[1] in config.methods
        )
        config.report.cda_methods = ("random", "joint")
        config.report.tsne_methods = ("random", "joint")
        config.report.tsne_windows_per_dataset = 100
        if arg.tiny:
            config.mlp.epochs, config.zeroshot.n_repeats = 3, 1
            config.report.bootstrap_samples = 200
            for run in config.pretrain_runs.values():
                run.data.windows_per_pair = 4
                run.train.eval_windows_per_subject = 8
    config.lock()
    return config
