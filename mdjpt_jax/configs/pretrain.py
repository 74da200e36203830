"""Joint pre-training (mdJPT): contrastive + CDA on several emotion-EEG datasets at once.

Commands:

    # demo default (builds synthetic_emotion d0 d1 d2 into runs/tfds when missing):
    python -m mdjpt_jax.main --config=configs/pretrain.py:synthetic --workdir=runs/pretrain
    # the paper's setting (build the real datasets first, see tfds_builders/*/README.md):
    python -m mdjpt_jax.main --config=configs/pretrain.py:paper --workdir=runs/paper
    # ablations are comma-separated switches, any field is a flag:
    python -m mdjpt_jax.main --config=configs/pretrain.py:synthetic,no_cda,attention=causal \
        --config.train.steps=50 --workdir=runs/ablation

Re-running a command on an existing workdir resumes from its last checkpoint.

Presets and switches (parsed by configs/common.py::parse_arg):
    synthetic           (default) synthetic_emotion d0, d1, d2; tiny encoder; the 19
                        standard 10-20 channels; 2 s windows at 125 Hz; P=2 pairs x M=16
                        windows per dataset per step; AdamW lr 1e-2; NT-Xent temperature
                        0.2; 200 steps. P, M, lr and temperature were chosen with
                        bench/learning_bench.py on windows of the PRE-TRAINING
                        datasets (never the target d3), at the time on their training
                        subjects (before held-out subjects existed): see the README's
                        learning section.
    paper               seed, seed_iv, seed_vii, faced, deap (seed_v held out for the
                        zero-shot target); the paper encoder on the 60 SEED channels; 5 s
                        windows at 125 Hz (extraction then slides them every 2 s, see
                        configs/downstream.py); AdamW lr 5e-4, weight decay 1e-4; NT-Xent
                        temperature 0.07; CDA weight 0.01. The reference trains 20 epochs
                        of 1024 steps ("pair-steps": one step draws, for every dataset, a
                        batch of subject pairs); we count steps only, so
                        train.steps = 20 * 1024 = 20480. Our choices (not from the paper):
                        P=16 pairs x M=32 windows per dataset per step, 1024 warm-up steps
                        (one epoch) then cosine decay; batches built by 16 grain worker
                        processes (README, "Input pipeline against a pod host").
    evoked              the synthetic preset on synthetic_emotion e0, e1, e2 (the evoked-response
                        benchmark: the shared signal is stimulus-locked evoked responses whose
                        shape carries the emotion); evoked_null: on n0, n1, n2, its null
                        control (no response time-locked across subjects).
    nuisance            the synthetic preset on synthetic_emotion c0, c1, c2 (the nuisance
                        family: e0-e2 plus stimulus-locked frontal-polar blinks whose size and
                        relation to valence differ by dataset, what CDA should remove);
                        nuisance_control: on u0, u1, u2, the same blinks in every dataset.
    known_answer        the synthetic preset on synthetic_emotion k0, k1, k2 (the known-answer
                        benchmark: emotion only in stimulus-locked dynamics, subject mixing,
                        dataset covariance shifts; tfds_builders/synthetic_emotion/README.md).
    no_cda              contrastive loss only.
    single_dataset=NAME pre-train on one dataset: a full TFDS name ("seed/preprocessed") or
                        the builder / config part of one of the preset's datasets ("seed",
                        "d0").
    attention=global|causal        linear attention over the whole window or causal.
    cda_groups=subject|dataset     one CDA group per subject of each pair, or per dataset.
    cda_centroid=arithmetic|log_euclidean  CDA group mean.
    cda_covariance=true|scrambled  CDA on the channel covariance (true) or on the original
                        code's statistic (scrambled: its reshape without a transpose;
                        the published numbers were made with it).
    cda_scale_free      CDA on correlation matrices (blind to the spatial mixer's scale,
                        which the per-subject normalization after the mixer removes).
    --config.model.dtype=bfloat16  mixed precision: activations and matmuls in bfloat16;
                        parameters, optimizer state, normalization statistics, losses and
                        the CDA covariances stay float32 (models/mdjpt.py).
    --config.model.remat_policy=full|dots|none  what the backward pass keeps of the
                        channel encoder's forward instead of recomputing it (same numbers;
                        README "Rematerialization"). "auto" (the paper preset's default):
                        the fastest policy (dots, then full) whose compiled step fits
                        --config.train.memory_budget_gib per device (default 16, a v5e
                        chip); the synthetic presets keep "full" (as fast at their shape).

Expected runtime and numbers (synthetic, 2 CPU cores, 192 windows per step): on 1 CPU
device about 0.5-1 s per step after a ~40 s compile, i.e. ~3 min for 200 steps; the summed
contrastive loss starts at 3 x ln(2M-1) = 3 x 3.43 (chance for 2M = 32 candidates per
dataset) and falls to ~0.6 x chance; cross-subject retrieval of held-out subjects' windows
(eval/retrieval_features, chance 1/16) rises from ~0.18 to ~0.5.
Paper: one step is 5 x 16 x 2 x 32 = 5120 windows of [60, 625].
"""

import ml_collections
from ml_collections import config_dict

from mdjpt_jax.configs import common

# Synthetic families (tfds_builders/synthetic_emotion/README.md): name -> datasets of the
# preset; each family's configs 0-2 pre-train, 3 is the demo's held-out target.
SYNTHETIC_FAMILIES = {
    family: tuple(f"synthetic_emotion/{prefix}{i}" for i in range(3))
    for family, prefix in (
        ("synthetic", "d"),
        ("known_answer", "k"),
        ("evoked", "e"),
        ("evoked_null", "n"),
        ("nuisance", "c"),
        ("nuisance_control", "u"),
    )
}
# The preset switches that choose a family (parse_arg spec), shared with downstream.py.
FAMILY_SWITCHES = {family: False for family in SYNTHETIC_FAMILIES}
SYNTHETIC_DATASETS = SYNTHETIC_FAMILIES["synthetic"]
KNOWN_ANSWER_DATASETS = SYNTHETIC_FAMILIES["known_answer"]
PAPER_DATASETS = (
    "seed/preprocessed",
    "seed_iv/preprocessed",
    "seed_vii/preprocessed",
    "faced/preprocessed",
    "deap/preprocessed",
)
PAPER_EPOCHS, PAPER_STEPS_PER_EPOCH = 20, 1024


def synthetic_family(arg) -> str:
    """The family chosen by the preset switches of a parsed `arg` (FAMILY_SWITCHES and
    `paper`): "synthetic" when none is set.

    Raises:
        ValueError: two families, or a family together with `paper`.
    """
    chosen = [family for family in SYNTHETIC_FAMILIES if arg[family]]
    if arg.paper and chosen:
        raise ValueError(f"choose one of the presets 'paper' and {chosen}, not both")
    if len(chosen) > 1:
        raise ValueError(f"choose one synthetic family preset, not {chosen}")
    return chosen[0] if chosen else "synthetic"


def _single_dataset(name: str, candidates: tuple) -> tuple:
    """(dataset,) for single_dataset=NAME: a full TFDS name or a part of one candidate."""
    if "/" in name:
        return (name,)
    matches = [c for c in candidates if name in c.split("/")]
    if len(matches) != 1:
        raise ValueError(
            f"single_dataset={name!r} matches {matches} of the preset's datasets "
            f"{candidates}; give one of them or a full 'name/config'"
        )
    return tuple(matches)


def _data(arg) -> ml_collections.ConfigDict:
    family = synthetic_family(arg)  # also refuses two families, or one with paper
    datasets = PAPER_DATASETS if arg.paper else SYNTHETIC_FAMILIES[family]
    if arg.single_dataset:
        datasets = _single_dataset(arg.single_dataset, datasets)
    return ml_collections.ConfigDict(
        dict(
            datasets=datasets,
            data_dir="~/tensorflow_datasets" if arg.paper else "runs/tfds",  # relative to the cwd
            window_s=5.0 if arg.paper else 2.0,  # seconds
            fs=125.0,  # Hz; every dataset is stored at this rate
            ch_set="seed60" if arg.paper else "standard_1020",  # key of channels.UNIFIED_SETS
            pairs_per_step=16 if arg.paper else 2,  # P per dataset, global over all devices
            windows_per_pair=32 if arg.paper else 16,  # M (bench/learning_bench.py: M matters)
            num_threads=4 if arg.paper else 1,  # grain threads building batches (num_workers=0)
            prefetch=16 if arg.paper else 2,  # batches buffered ahead (in all, >= 1 per worker)
            # grain worker processes building batches (0 = in the training process): they
            # take the batch building off the training process's GIL (README, "Input
            # pipeline against a pod host"; bench/input_bench.py).
            num_workers=16 if arg.paper else 0,
            # Subjects of every dataset never drawn by the sampler: the learning curves and
            # the report's retrieval are measured on them (mdjpt_jax/heldout.py): the N
            # highest subject ids of each dataset, or per dataset the ids listed in
            # heldout_subject_ids ({"name/config": (ids...)}, overrides the count).
            heldout_subjects=2,
            heldout_subject_ids=ml_collections.ConfigDict(),
        )
    )


def get_config(arg=None) -> ml_collections.ConfigDict:
    """Returns the locked pre-training ConfigDict for the preset(s) in `arg`."""
    arg = common.parse_arg(
        arg,
        paper=False,
        **FAMILY_SWITCHES,
        no_cda=False,
        single_dataset="",
        attention="global",
        cda_groups="subject",
        cda_centroid="arithmetic",
        cda_covariance="true",
        cda_scale_free=False,
    )
    config = ml_collections.ConfigDict()
    config.data = _data(arg)
    config.model = ml_collections.ConfigDict(
        dict(
            variant="paper" if arg.paper else "tiny",  # key of models.VARIANTS
            attention=arg.attention,  # "global" | "causal"
            dtype="float32",
            # What the backward pass keeps of the channel encoder's forward (models.mlla
            # REMAT_POLICIES): "full" (nothing; least memory), "dots", "none" (README,
            # "Rematerialization"; bench/train_bench.py --remat_policies), or "auto": the
            # fastest that fits train.memory_budget_gib (pretrain/remat_choice.py). The
            # synthetic presets keep "full": at their shape full and dots tie (0.63 vs
            # 0.62 s per step) and dots, the same math fused differently, would move the
            # README's demo numbers by rounding amplified over training.
            remat_policy="auto" if arg.paper else "full",
        )
    )  # compute dtype: "bfloat16" = bf16 activations/matmuls, f32 params
    config.loss = ml_collections.ConfigDict(
        dict(
            temperature=0.07 if arg.paper else 0.2,
            use_cda=not arg.no_cda,
            cda_weight=0.01,
            dataset_reduction="sum",  # sum_k NT-Xent_k + w CDA, as the original code ("mean")
            cda_groups=arg.cda_groups,
            cda_centroid=arg.cda_centroid,
            cda_covariance=arg.cda_covariance,
            cda_scale_free=arg.cda_scale_free,
        )
    )
    config.optim = ml_collections.ConfigDict(
        dict(
            learning_rate=5e-4 if arg.paper else 1e-2,
            weight_decay=1e-4,
            warmup_steps=PAPER_STEPS_PER_EPOCH if arg.paper else 20,
            grad_clip_norm=config_dict.placeholder(float),
        )
    )  # None = no clipping
    config.train = ml_collections.ConfigDict(
        dict(
            steps=PAPER_EPOCHS * PAPER_STEPS_PER_EPOCH if arg.paper else 200,
            log_every=50 if arg.paper else 10,
            checkpoint_every=1000 if arg.paper else 50,
            max_to_keep=3,
            eval_every=1000 if arg.paper else 25,  # learning-curve evaluation (0 = off)
            eval_windows_per_subject=64 if arg.paper else 32,
            # CDA measured on its own (value also at weight 0, gradient norms against the
            # contrastive term's, radial share on the mixer): one more forward + backward
            # pass every this many steps (0 = off); written where such a step is logged
            # (choose a multiple of log_every).
            diagnose_every=50 if arg.paper else 10,
            # Per-device memory the compiled step may use; model.remat_policy="auto" picks
            # the fastest policy within it. 16 GiB = the HBM of one TPU v5e chip.
            memory_budget_gib=16.0,
            seed=0,
        )
    )  # split into the init, data and step keys
    config.lock()
    return config
