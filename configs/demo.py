"""The README's end-to-end synthetic run: data -> 3 pre-trainings -> extract -> probe -> report.

Command (from the repo root):

    python -m mdjpt_jax.main --mode=all --config=configs/demo.py --workdir=runs/demo
    # or: bash demo.sh runs/demo        (re-running resumes; finished stages are skipped)

What it does: builds synthetic_emotion d0..d3 into runs/tfds; pre-trains the tiny encoder
(19 standard 10-20 channels, 2 s windows at 125 Hz; the synthetic preset of
configs/pretrain.py, 120 steps) jointly on d0 d1 d2 and on d0 alone for seeds 0, 1, 2, and
jointly without CDA for seed 0 (WORKDIR/runs/<method>/seed<k>); extracts features of d3
(held-out target) and d0..d2 for those encoders, randomly initialised ones and DE; probes
few-shot (2 labelled subjects of d3, 5 folds) and zero-shot (negative vs positive, trained
on d0..d2); writes WORKDIR/report/{results.md, results.json, *.png} and prints the table.

Runtime: budget < 15 min on 2 CPU cores (pre-training ~2/3 of it); measured in the
README's "Demo results". Fine-tuning is not part of it (README: `--mode=finetune`).
Preset `tiny` (tests/test_demo.py): a few steps everywhere, for a smoke test only.
"""

import ml_collections

from configs import common, downstream, pretrain


def _runs(family: str, first: str) -> dict:
    """Pre-training presets per method: jointly, on the first dataset only, without CDA."""
    return {
        "joint": family,
        "single": f"{family},single_dataset={first}",
        "joint_no_cda": f"{family},no_cda",
    }


def _pretrain_config(arg: str, *, steps: int, data_dir: str):
    config = pretrain.get_config(arg)
    with config.unlocked():
        config.train.steps = steps
        config.train.log_every = min(config.train.log_every, steps)
        config.train.eval_every = min(config.train.eval_every, steps)
        config.train.checkpoint_every = steps
        config.optim.warmup_steps = min(config.optim.warmup_steps, steps // 2)
        config.data.data_dir = data_dir
    return config


def get_config(arg=None) -> ml_collections.ConfigDict:
    """The demo ConfigDict: downstream fields + `pretrain_runs` + `synthetic_configs`."""
    arg = common.parse_arg(arg, tiny=False, known_answer=False)
    family = "known_answer" if arg.known_answer else "synthetic"
    config = downstream.get_config(family)
    steps = 4 if arg.tiny else 120
    with config.unlocked():
        config.synthetic_configs = tuple(f"{'k' if arg.known_answer else 'd'}{i}" for i in range(4))
        # Learned features use the encoders' own window (2 s); slide it every second.
        config.extract.window_s, config.extract.step_s = 2.0, 1.0
        config.extract.de_ch_set = "standard_1020"
        # Fine-tuning 3 seeds x 5 folds does not fit the demo's 15 minutes on 2 CPU cores:
        # `--mode=finetune` runs it on the demo's workdir afterwards (README); the tiny
        # preset keeps the stage in the end-to-end test.
        config.finetune.methods = ("joint",) if arg.tiny else ()
        # Budget again: joint and single-dataset pre-training over all seeds, the CDA
        # ablation (as long as a joint run) over the first seed only.
        config.method_seeds = ml_collections.ConfigDict({"joint_no_cda": tuple(config.seeds[:1])})
        config.report.tsne_windows_per_dataset = 150
        config.pretrain_runs = ml_collections.ConfigDict(
            {
                name: _pretrain_config(a, steps=steps, data_dir=config.data_dir)
                for name, a in _runs(family, config.synthetic_configs[0]).items()
            }
        )
        if arg.tiny:
            config.seeds = (0, 1)
            config.method_seeds = ml_collections.ConfigDict({"joint_no_cda": (0,)})
            config.fewshot.n_folds, config.zeroshot.n_repeats = 2, 1
            config.mlp.epochs = 3
            config.finetune.epochs = 1
            config.report.tsne_windows_per_dataset = 60
            config.report.cda_windows_per_subject = 8
            for run in config.pretrain_runs.values():
                run.data.pairs_per_step, run.data.windows_per_pair = 2, 4
                run.train.eval_windows_per_subject = 8
    config.lock()
    return config
