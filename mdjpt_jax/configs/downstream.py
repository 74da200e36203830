"""Downstream evaluation: extraction, post-processing, few-shot and zero-shot probes, report.

Commands (after pre-training runs exported encoders to WORKDIR/runs/<method>/seed<k>/encoder/):

    python -m mdjpt_jax.main --mode=extract --config=configs/downstream.py:synthetic --workdir=DIR
    python -m mdjpt_jax.main --mode=probe   --config=configs/downstream.py:synthetic --workdir=DIR
    python -m mdjpt_jax.main --mode=report  --config=configs/downstream.py:synthetic --workdir=DIR

Presets (comma-separated arg, parsed by configs/common.py::parse_arg):
    synthetic      target synthetic_emotion/d3, sources d0 d1 d2 (the demo's datasets)
    known_answer   target synthetic_emotion/k3, sources k0 k1 k2 (the known-answer benchmark)
    evoked         target synthetic_emotion/e3, sources e0 e1 e2 (the evoked-response
                   benchmark); evoked_null: n3 and n0 n1 n2, its null control
    nuisance       target synthetic_emotion/c3, sources c0 c1 c2 (the nuisance family: blinks
                   related to valence differently per dataset); nuisance_control: u3 and
                   u0 u1 u2, the same blinks in every dataset
    paper          leave-one-dataset-out on the real builders: target=NAME (default faced),
                   every other emotion dataset is a zero-shot source; paper-sized MLP epochs
    target=NAME    override the target TFDS name (e.g. seed_iv/preprocessed)
    k=N            labelled subjects of the few-shot protocol

Expected runtime: synthetic, tiny encoders, 2 CPU cores: extraction ~1-2 min for five methods
x four datasets, probing ~1 min, report ~1 min. Paper-sized runs: extraction is dominated by
the encoder forward (~ms per window on one GPU).

Expected numbers: see configs/demo.py (the end-to-end synthetic run) for the table.
"""

import ml_collections

from mdjpt_jax.configs import common, pretrain

PAPER_DATASETS = ("seed", "seed_iv", "seed_v", "seed_vii", "faced", "deap", "dreamer", "emoeeg_mc")

# config.extract's windows and blocks, and the defaults of `mdjpt_jax.embed`
# (inference/embedding.py reads them here), so an embedding matches extraction.
EXTRACT_DEFAULTS = dict(
    window_s=5.0,
    step_s=2.0,  # 5 s windows every 2 s (learned features, "de", "de_ea", "waveform")
    windows_per_block=64,  # W windows of ONE subject per block (see mdjpt_jax/windows.py)
    # S blocks per encoder call, packed across subjects and split over the local devices;
    # rounded up to a multiple of the device count (1: one block per device).
    blocks_per_call=1,
    seed=0,  # per-subject window order of the blocks
)


def get_config(arg=None) -> ml_collections.ConfigDict:
    """Returns the locked downstream ConfigDict for the preset(s) in `arg`."""
    arg = common.parse_arg(arg, paper=False, **pretrain.FAMILY_SWITCHES, target="", k=0)
    family = pretrain.synthetic_family(arg)
    config = ml_collections.ConfigDict()
    if arg.paper:
        target = arg.target or "faced/preprocessed"
        config.data_dir = "~/tensorflow_datasets"
        config.sources = tuple(
            f"{name}/preprocessed" for name in PAPER_DATASETS if f"{name}/preprocessed" != target
        )
    else:  # a synthetic family (default d0-d3): configs 0-2 are sources, 3 the target
        sources = pretrain.SYNTHETIC_FAMILIES[family]
        target = arg.target or sources[0][:-1] + "3"
        config.data_dir = "runs/tfds"  # relative to the current directory
        config.sources = tuple(s for s in sources if s != target)
    config.target = target
    # Table order. Baselines: "de" (differential entropy on the learned encoders' windows:
    # every method is scored on the same windows), "de_paper" (DE on the paper's 1 s
    # windows, a separately labelled row), "de_ea" ("de" after per-subject Euclidean
    # alignment: the non-learned cross-subject alignment that joint pre-training must
    # beat), "waveform" (an untrained read-out of the raw band-passed waveform: the
    # yardstick for stimulus-locked signal), "random" (the joint architecture, randomly
    # initialised). The others are pre-training runs whose encoders are
    # WORKDIR/runs/<method>/seed<k>/encoder (workdir.run_dir).
    config.methods = (
        "de",
        "de_paper",
        "de_ea",
        "waveform",
        "random",
        "single",
        "joint",
        "joint_no_cda",
    )
    config.pretrain_methods = ("single", "joint", "joint_no_cda")
    # Methods whose features do not depend on a seed: extracted and probed once (n = 1).
    config.deterministic_methods = ("de", "de_paper", "de_ea", "waveform")
    config.seeds = (0, 1, 2)  # pre-training seeds (and the random encoder's init seeds)
    # Subjects of every pre-training dataset held out of the pre-training sampler
    # (mdjpt_jax/heldout.py): the `heldout_subjects` highest subject ids of each dataset, or
    # the ids listed per dataset in `heldout_subject_ids` ({"name/config": (ids...)}). Must
    # equal the pre-training runs' data.heldout_subjects (checked before any work); the
    # report's retrieval is measured on these subjects only.
    config.heldout_subjects = 2
    config.heldout_subject_ids = ml_collections.ConfigDict()
    # {method: seeds}: fewer seeds for a method (a subset starting with seeds[0]);
    # the results table gives each method's seed count (workdir.method_seeds).
    config.method_seeds = ml_collections.ConfigDict()

    config.extract = ml_collections.ConfigDict(
        dict(
            **EXTRACT_DEFAULTS,
            random_like="joint",  # the random-encoder baseline's architecture
            random_seed_offset=0,  # its init seed = pre-training seed + offset
            # Signal baselines (extract.SIGNAL_METHODS): "de", "de_ea" and "waveform" on the
            # windows above, "de_paper" on the paper's 1 s windows every 1 s; their channels
            # and rate.
            de_paper_window_s=1.0,
            de_paper_step_s=1.0,
            baseline_fs=125.0,
            baseline_ch_set="seed60",
            baseline_batch_windows=512,
        )
    )
    config.postprocess = ml_collections.ConfigDict(dict(decay=0.99, lds=True))
    # Few-shot folds: "disjoint" training-subject sets (at most #subjects // k folds) or
    # "all" C(#subjects, k) combinations in a seeded order (at most C(#subjects, k)); a
    # request for more folds than exist is refused before any work. `heldout_stimuli`: also
    # run the stimulus-held-out variant (train on some stimuli of each class, test the other
    # subjects on the other stimuli; needs >= 2 stimuli per class).
    config.fewshot = ml_collections.ConfigDict(
        dict(
            k=arg.k or (3 if arg.paper else 2),
            n_folds=4,
            folds="disjoint",
            heldout_stimuli=True,
        )
    )
    # AUROC of more than two classes: macro one-vs-rest ("ovr", as the original code's
    # metric) or macro one-vs-one ("ovo").
    config.auroc_multi_class = "ovr"
    config.zeroshot = ml_collections.ConfigDict(dict(enabled=True, n_repeats=3))
    config.probe_seed = 0
    config.mlp = ml_collections.ConfigDict(
        dict(
            hidden=(128, 64),
            dropout=0.5,
            learning_rate=1e-3,
            weight_decay=1e-4,
            epochs=100 if arg.paper else 30,
            batch_size=256,
        )
    )
    # --mode=finetune (mdjpt_jax/downstream/finetune.py): encoder + the probe's MLP head end to end on
    # the few-shot folds (same k, n_folds, probe_seed); fixed epochs, no test-set selection.
    config.finetune = ml_collections.ConfigDict(
        dict(
            methods=("joint",),
            train_layers=-1,  # encoder layers trained from the top; -1 all, 0 head only
            layer_decay=0.75,  # lr of the layer d below the head: learning_rate * 0.75**d
            learning_rate=1e-4 if arg.paper else 1e-3,
            weight_decay=1e-4,
            epochs=10 if arg.paper else 30,  # synthetic: 2 subjects x 80 windows -> 60 steps
            windows_per_block=32,  # W windows of ONE subject per block (stratified norm)
            blocks_per_step=2,
        )
    )
    config.report = ml_collections.ConfigDict(
        dict(
            tsne_methods=("random", "joint"),
            tsne_windows_per_dataset=300,
            cda_methods=("random", "joint_no_cda", "joint"),  # per-subject CDA centroids
            cda_windows_per_subject=32,
            # Dataset alignment on the held-out subjects of the pre-training datasets
            # (mdjpt_jax/downstream/alignment.py): dataset-ID decodability for these methods, and the
            # correlation-centroid distance for those among them in cda_methods.
            alignment_methods=("de", "de_ea", "random", "joint_no_cda", "joint"),
            alignment_windows_per_subject=64,
            alignment_permutations=1000,
            confusion_method="joint",
            seed=0,
            # Paired differences "a-b" (a minus b, same seed and test subject) with
            # bootstrap intervals over pre-training seeds x test subjects.
            comparisons=(
                "joint-random",
                "joint-de",
                "joint-de_ea",
                "joint-single",
                "joint-joint_no_cda",
            ),
            bootstrap_samples=2000,
            confidence=0.95,
        )
    )
    config.lock()
    return config
