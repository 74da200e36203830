"""CDA dose-response (issue 19): joint pre-training at several CDA weights, paired by seed.

Every method "cda<w>" (0.01 written 0p01) is the joint pre-training of configs/pretrain.py:FAMILY with
loss.cda_weight = w; one seed gives every weight the same initial parameters and the same
data order (both come from train.seed only), so "cda<w> - cda0" is a paired difference
(report.comparisons, bootstrap over seeds x test subjects). Families
(tfds_builders/synthetic_emotion/README.md, predictions written before the first run):

    nuisance          c0-c2 -> target c3: a stimulus-locked frontal nuisance whose amplitude
                      and relation to valence differ by dataset (CDA must matter)
    nuisance_control  u0-u2 -> target u3: the same nuisance in every dataset (it must not)

Baselines: "de" and "de_ea" (DE after per-subject Euclidean alignment; a non-learned
alignment CDA has to beat) when the tree has it, and "random". The report adds the
dataset-alignment table (mdjpt_jax/downstream/alignment.py) for every method. Command:

    python -m mdjpt_jax.main --mode=all --config=configs/cda_dose.py:family=nuisance \
        --workdir=runs/cda_dose/nuisance

Preset args: family=NAME, steps=N (default 120), seeds=N (default 5), weights="0 0.01 0.1 1
10" (space-separated), scale_free_weights="0.1 1" (default none: also runs "cda<w>_scale_free",
CDA on correlations, loss.cda_scale_free, paired with the same cda0), tiny.
"""

import ml_collections

from mdjpt_jax.configs import common, demo, downstream

FAMILIES = ("nuisance", "nuisance_control")
WEIGHTS = "0 0.01 0.1 1 10"


def method_name(weight: float, scale_free: bool = False) -> str:
    """cda0, cda0p01, cda1, cda10 (the weight with '.' written 'p': ConfigDict keys cannot
    hold dots), cda1_scale_free."""
    return f"cda{weight:g}".replace(".", "p") + "_scale_free" * scale_free


def _weights(text: str, name: str) -> list:
    weights = [float(w) for w in text.split()]
    if len(set(weights)) != len(weights) or (weights and min(weights) < 0):
        raise ValueError(f"{name}={text!r}: distinct values >= 0")
    return weights


def get_config(arg=None) -> ml_collections.ConfigDict:
    arg = common.parse_arg(
        arg,
        family="nuisance",
        steps=120,
        seeds=5,
        weights=WEIGHTS,
        scale_free_weights="",
        tiny=False,
    )
    if arg.family not in FAMILIES:
        raise ValueError(f"family={arg.family!r}; choose from {FAMILIES}")
    weights = _weights(arg.weights, "weights")
    if 0.0 not in weights:
        raise ValueError(f"weights={arg.weights!r} must include 0 (the paired baseline)")
    scale_free = [w for w in _weights(arg.scale_free_weights, "scale_free_weights") if w]
    steps = 4 if arg.tiny else arg.steps
    config = downstream.get_config(arg.family)
    with config.unlocked():
        prefix = config.target.split("/")[-1][:-1]
        config.synthetic_configs = tuple(f"{prefix}{i}" for i in range(4))
        config.seeds = tuple(range(2 if arg.tiny else arg.seeds))
        config.extract.window_s, config.extract.step_s = 2.0, 1.0
        config.extract.baseline_ch_set = "standard_1020"
        config.finetune.methods = ()
        config.fewshot.heldout_stimuli = False
        # 3 held-out subjects per pre-training dataset (c2/u2 keep 3 of 6 for pre-training):
        # 280 distinct partitions for the alignment's permutation test (p >= ~0.004), where 2
        # per dataset allow 15 (p >= ~0.07).
        config.heldout_subjects = 3
        runs = {}
        for weight, free in [(w, False) for w in weights] + [(w, True) for w in scale_free]:
            preset = arg.family + ",cda_scale_free" * free + ",no_cda" * (weight == 0)
            run = demo.pretrain_run_config(preset, steps=steps, downstream=config)
            run.loss.cda_weight = weight  # 0: no CDA term; its value is still logged
            runs[method_name(weight, free)] = run
        config.pretrain_runs = ml_collections.ConfigDict(runs)
        config.pretrain_methods = tuple(runs)
        baselines = tuple(m for m in ("de", "de_ea") if m in config.methods)
        config.methods = baselines + ("random",) + tuple(runs)
        config.deterministic_methods = baselines
        config.extract.random_like = method_name(0.0)
        config.report.comparisons = tuple(
            f"{method}-{method_name(0.0)}" for method in runs if method != method_name(0.0)
        )
        config.report.cda_methods = ("random",) + tuple(runs)
        config.report.alignment_methods = config.methods
        config.report.tsne_methods = ()
        config.report.confusion_method = method_name(max(weights))
        if arg.tiny:
            demo.shrink_to_tiny(config)
            config.report.alignment_permutations = 50
    config.lock()
    return config
