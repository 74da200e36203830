"""Downstream evaluation: extraction, post-processing, few-shot and zero-shot probes, report.

Commands (after pre-training runs exported encoders to WORKDIR/runs/<method>/seed<k>/encoder/):

    python -m mdjpt_jax.main --mode=extract --config=configs/downstream.py:synthetic --workdir=DIR
    python -m mdjpt_jax.main --mode=probe   --config=configs/downstream.py:synthetic --workdir=DIR
    python -m mdjpt_jax.main --mode=report  --config=configs/downstream.py:synthetic --workdir=DIR

Presets (comma-separated arg, parsed by configs/common.py::parse_arg):
    synthetic      target synthetic_emotion/d3, sources d0 d1 d2 (the demo's datasets)
    known_answer   target synthetic_emotion/k3, sources k0 k1 k2 (the known-answer benchmark)
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

from configs import common

SYNTHETIC_SOURCES = ("synthetic_emotion/d0", "synthetic_emotion/d1", "synthetic_emotion/d2")
KNOWN_ANSWER_SOURCES = ("synthetic_emotion/k0", "synthetic_emotion/k1", "synthetic_emotion/k2")
PAPER_DATASETS = ("seed", "seed_iv", "seed_v", "seed_vii", "faced", "deap", "dreamer", "emoeeg_mc")


def get_config(arg=None) -> ml_collections.ConfigDict:
    """Returns the locked downstream ConfigDict for the preset(s) in `arg`."""
    arg = common.parse_arg(arg, synthetic=False, paper=False, known_answer=False, target="", k=0)
    if arg.paper and arg.synthetic:
        raise ValueError("choose one of the presets 'synthetic' and 'paper', not both")
    config = ml_collections.ConfigDict()
    if arg.paper:
        target = arg.target or "faced/preprocessed"
        config.data_dir = "~/tensorflow_datasets"
        config.sources = tuple(
            f"{name}/preprocessed" for name in PAPER_DATASETS if f"{name}/preprocessed" != target
        )
    else:  # synthetic (d0-d3, or the known-answer k0-k3) is the default
        family = "k" if arg.known_answer else "d"
        target = arg.target or f"synthetic_emotion/{family}3"
        config.data_dir = "runs/tfds"  # relative to the current directory
        config.sources = tuple(
            s
            for s in (KNOWN_ANSWER_SOURCES if arg.known_answer else SYNTHETIC_SOURCES)
            if s != target
        )
    config.target = target
    # Table order; "de" and "random" are baselines, the others are pre-training runs whose
    # encoders are WORKDIR/runs/<method>/seed<k>/encoder (workdir.run_dir).
    config.methods = ("de", "random", "single", "joint", "joint_no_cda")
    config.pretrain_methods = ("single", "joint", "joint_no_cda")
    config.seeds = (0, 1, 2)  # pre-training seeds (and the random encoder's init seeds)
    # {method: seeds}: fewer seeds for a method (a subset starting with seeds[0]);
    # the results table gives each method's seed count (workdir.method_seeds).
    config.method_seeds = ml_collections.ConfigDict()

    config.extract = ml_collections.ConfigDict(
        dict(
            window_s=5.0,
            step_s=2.0,  # learned features: 5 s windows every 2 s
            windows_per_block=64,  # W windows of ONE subject per block (see extract.py)
            blocks_per_call=1,  # S blocks per encoder call (same subject)
            seed=0,  # per-subject window order of the blocks
            random_like="joint",  # the random-encoder baseline's architecture
            random_seed_offset=0,  # its init seed = pre-training seed + offset
            de_window_s=1.0,
            de_step_s=1.0,
            de_fs=125.0,
            de_ch_set="seed60",
            de_batch_windows=512,
        )
    )
    config.postprocess = ml_collections.ConfigDict(dict(decay=0.99, lds=True))
    config.fewshot = ml_collections.ConfigDict(dict(k=arg.k or (3 if arg.paper else 2), n_folds=5))
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
    # --mode=finetune (mdjpt_jax/finetune.py): encoder + the probe's MLP head end to end on
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
            cda_methods=("random", "joint_no_cda", "joint"),
            cda_windows_per_subject=32,
            confusion_method="joint",
            seed=0,
        )
    )
    config.lock()
    return config
