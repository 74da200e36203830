"""The README's end-to-end synthetic run: data -> 3 pre-trainings -> extract -> probe -> report.

Command (from the repo root):

    python -m mdjpt_jax.main --mode=all --config=configs/demo.py --workdir=runs/demo
    # or: bash demo.sh runs/demo        (re-running resumes; finished stages are skipped)

What it does (default family `evoked`; `family=NAME` picks another of
pretrain.SYNTHETIC_FAMILIES: synthetic, known_answer, evoked_null, nuisance,
nuisance_control): builds synthetic_emotion e0..e3 into runs/tfds; checks the whole plan
(experiment.check_plan); pre-trains the tiny encoder (19 standard 10-20 channels, 2 s
windows at 125 Hz; the synthetic preset of configs/pretrain.py, 120 steps; the 2 highest
subject ids of every dataset held out) jointly on e0 e1 e2 and on e0 alone for seeds 0, 1,
2, and jointly without CDA for seed 0 (WORKDIR/runs/<method>/seed<k>); extracts features of
e3 (the target, never pre-trained on) and e0..e2 for those encoders, randomly initialised
ones, DE (same windows, the paper's 1 s windows, and Euclidean-aligned per subject) and the
raw-waveform read-out; probes few-shot (2 labelled subjects of e3, 4 disjoint folds; also
with held-out stimuli), zero-shot (negative vs positive, trained on e0..e2) and retrieval on
the held-out subjects; writes WORKDIR/report/{results.md, results.json, *.png} with paired
differences and prints the table.

Runtime: budget < 15 min on 2 CPU cores (pre-training ~2/3 of it); measured in the
README's "Demo results". Fine-tuning is not part of it (README: `--mode=finetune`).
Preset `tiny` (tests/test_demo.py): a few steps everywhere, for a smoke test only.
"""

import ml_collections

from mdjpt_jax.configs import common, downstream, pretrain

DEFAULT_FAMILY = "evoked"  # a key of pretrain.SYNTHETIC_FAMILIES


def _runs(family: str, first: str) -> dict:
    """Pre-training presets per method: jointly, on the first dataset only, without CDA."""
    return {
        "joint": family,
        "single": f"{family},single_dataset={first}",
        "joint_no_cda": f"{family},no_cda",
    }


def pretrain_run_config(arg: str, *, steps: int, downstream: ml_collections.ConfigDict):
    """One pre-training run's config; its data directory and held-out subjects are
    references to the downstream config's fields, so a command-line override of those
    reaches every run (and `experiment.check_plan` finds them equal)."""
    config = pretrain.get_config(arg)
    with config.unlocked():
        config.train.steps = steps
        config.train.log_every = min(config.train.log_every, steps)
        config.train.eval_every = min(config.train.eval_every, steps)
        config.train.checkpoint_every = steps
        config.optim.warmup_steps = min(config.optim.warmup_steps, steps // 2)
        config.data.data_dir = downstream.get_ref("data_dir")
        config.data.heldout_subjects = downstream.get_ref("heldout_subjects")
        config.data.heldout_subject_ids = downstream.heldout_subject_ids
    return config


def shrink_to_tiny(config: ml_collections.ConfigDict) -> None:
    """The smoke-test sizes of an experiment config (probes, report, every pre-training run)."""
    config.fewshot.n_folds, config.zeroshot.n_repeats = 2, 1
    config.mlp.epochs = 3
    config.report.cda_windows_per_subject = 8
    config.report.bootstrap_samples = 200
    for run in config.pretrain_runs.values():
        run.data.pairs_per_step, run.data.windows_per_pair = 2, 4
        run.train.eval_windows_per_subject = 8


def get_config(arg=None) -> ml_collections.ConfigDict:
    """The demo ConfigDict: downstream fields + `pretrain_runs` + `synthetic_configs`."""
    arg = common.parse_arg(arg, tiny=False, family=DEFAULT_FAMILY)
    if arg.family not in pretrain.SYNTHETIC_FAMILIES:
        raise ValueError(
            f"demo family={arg.family!r}; choose from {sorted(pretrain.SYNTHETIC_FAMILIES)}"
        )
    family = arg.family
    config = downstream.get_config(family)
    steps = 4 if arg.tiny else 120
    with config.unlocked():
        prefix = config.target.split("/")[-1][:-1]
        config.synthetic_configs = tuple(f"{prefix}{i}" for i in range(4))
        # Learned features use the encoders' own window (2 s); slide it every second. The
        # signal baselines "de", "de_ea" and "waveform" use the same windows and channels.
        config.extract.window_s, config.extract.step_s = 2.0, 1.0
        config.extract.baseline_ch_set = "standard_1020"
        # Fine-tuning 3 seeds x 4 folds does not fit the demo's 15 minutes on 2 CPU cores:
        # `--mode=finetune` runs it on the demo's workdir afterwards (README); the tiny
        # preset keeps the stage in the end-to-end test.
        config.finetune.methods = ("joint",) if arg.tiny else ()
        # Budget again: joint and single-dataset pre-training over all seeds, the CDA
        # ablation (as long as a joint run) over the first seed only.
        config.method_seeds = ml_collections.ConfigDict({"joint_no_cda": tuple(config.seeds[:1])})
        config.report.tsne_windows_per_dataset = 150
        config.pretrain_runs = ml_collections.ConfigDict(
            {
                name: pretrain_run_config(a, steps=steps, downstream=config)
                for name, a in _runs(family, config.sources[0].split("/")[-1]).items()
            }
        )
        if arg.tiny:
            config.seeds = (0, 1)
            config.method_seeds = ml_collections.ConfigDict({"joint_no_cda": (0,)})
            config.finetune.epochs = 1
            config.report.tsne_windows_per_dataset = 60
            shrink_to_tiny(config)
    config.lock()
    return config
