"""Fine-tuning: encoder + classifier head trained end to end on the few-shot subjects.

Protocol (the frozen probe's, so the two are comparable fold by fold): the folds of
`subject_folds` over the target dataset's subjects with the same k, n_folds and
seed; fold i trains with seed + i on the windows of its k labelled subjects only and is
tested on every other subject; a fixed number of epochs, nothing selected on test
subjects. The head is the probe's MLP (`heads.MLP`) on the encoder's per-window features.

A training step holds `blocks_per_step` blocks of `windows_per_block` windows, each block
from ONE training subject (stratified normalization inside the encoder standardizes over
a block, as in pre-training and extraction). Test windows are embedded by
`windows.learned_features` (one subject per block) with the fine-tuned encoder.

Options: `train_layers` = how many encoder layers, counted from the top, are trained
(-1: all; 0: head only, the frozen baseline); encoder layers from input to output are
channel_encoder.read_in, each MLLA block, channel_encoder.read_out, mixer, dynamics (the
projector is unused downstream and frozen); `layer_decay` = layer-wise learning-rate decay:
the layer at depth d below the head learns at learning_rate * layer_decay**d.

Output: WORKDIR/finetune/<method>/seed<k>.json (one per pre-training seed) and
WORKDIR/finetune/results.json ({method: {seed: result}}); a result holds per-fold `finetuned` and `frozen` (the same head, encoder frozen, same
steps) metrics, their summaries, and `improved_over_frozen` (mean balanced accuracy).
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from mdjpt_jax import heads, scoring, windows, workdir
from mdjpt_jax.downstream import extract
from mdjpt_jax.downstream.folds import subject_folds
from mdjpt_jax.models import Encoder
from mdjpt_jax.trials import load_trials

FROZEN = "projector"  # encoder parts never trained downstream


class Classifier(nnx.Module):
    """Encoder features -> probe MLP logits: x [S, W, C, T] -> [S, W, K]."""

    def __init__(self, encoder: Encoder, n_classes: int, *, hidden, dropout: float, rngs: nnx.Rngs):
        self.encoder = encoder
        self.head = heads.MLP(
            encoder.feature_dim, n_classes, hidden=tuple(hidden), dropout=dropout, rngs=rngs
        )

    def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        feats = self.encoder.embed(x)  # [S, W, D]
        return self.head(feats.reshape(-1, feats.shape[-1]), key=key).reshape(
            feats.shape[:2] + (-1,)
        )


def encoder_layer(path: tuple, n_blocks: int) -> int | None:
    """Depth-ordered index of the encoder layer holding a parameter path (None: frozen part).

    0 = channel_encoder.read_in, 1..n_blocks = MLLA blocks, then read_out, mixer, dynamics.
    """
    keys = [getattr(k, "key", getattr(k, "idx", k)) for k in path]
    if keys[0] == "channel_encoder":
        if keys[1] == "read_in":
            return 0
        if keys[1] == "blocks":
            return 1 + int(keys[2])
        if keys[1] == "read_out":
            return 1 + n_blocks
    if keys[0] == "mixer":
        return 2 + n_blocks
    if keys[0] == "dynamics":
        return 3 + n_blocks
    if keys[0] == FROZEN:
        return None
    raise ValueError(f"encoder parameter {'.'.join(map(str, keys))} has no layer")


def learning_rate_scales(params, *, n_blocks: int, train_layers: int, layer_decay: float):
    """Per-parameter multipliers of the learning rate (0 = frozen), same tree as params.

    The head gets 1; the encoder layer at depth d below it (dynamics d = 1) gets
    layer_decay**d if it is among the top `train_layers` layers (-1: all), else 0.
    """
    top = 3 + n_blocks  # dynamics

    def scale(path, _):
        if getattr(path[0], "key", None) == "head":
            return 1.0
        layer = encoder_layer(path[1:], n_blocks)
        if layer is None:
            return 0.0
        depth = top - layer + 1
        trained = train_layers < 0 or depth <= train_layers
        return float(layer_decay**depth) if trained else 0.0

    return jax.tree_util.tree_map_with_path(scale, params)


@functools.lru_cache(maxsize=8)
def make_optimizer(learning_rate: float, weight_decay: float) -> optax.GradientTransformation:
    """AdamW (cached: the same object for the same settings, so the step compiles once);
    `_train_step` multiplies its updates by the per-parameter learning-rate scales."""
    return optax.adamw(learning_rate, weight_decay=weight_decay)


def training_blocks(
    table: dict,
    train_subjects,
    *,
    windows_per_block: int,
    blocks_per_step: int,
    epochs: int,
    seed: int,
) -> np.ndarray:
    """[steps, S, W] window-table rows: every block is W windows of ONE training subject.

    An epoch is a pass over each training subject's windows in a seeded order, cut into
    blocks of W (the last block of a subject wraps to its start), blocks shuffled across
    subjects and grouped S per step (the last partial step dropped).
    """
    rng = np.random.default_rng(seed)
    steps = []
    for _ in range(epochs):
        blocks = []
        for subject in train_subjects:
            rows = np.flatnonzero(table["subject"] == subject)
            order = rows[rng.permutation(len(rows))]
            n_blocks = -(-len(order) // windows_per_block)
            padded = np.resize(order, n_blocks * windows_per_block)
            blocks.extend(padded.reshape(n_blocks, windows_per_block))
        blocks = [blocks[i] for i in rng.permutation(len(blocks))]
        for begin in range(0, len(blocks) - blocks_per_step + 1, blocks_per_step):
            steps.append(np.stack(blocks[begin : begin + blocks_per_step]))
    if not steps:
        raise ValueError(
            f"fewer than blocks_per_step={blocks_per_step} blocks of training windows per epoch"
        )
    return np.stack(steps)


@functools.partial(jax.jit, static_argnames=("graphdef", "tx"), donate_argnums=(0, 1))
def _train_step(params, opt_state, rest, scales, x, y, key, *, graphdef, tx):
    """One AdamW step on x [S, W, C, T], y [S, W]; updates scaled per parameter (0: frozen)."""

    def loss_fn(p):
        logits = nnx.merge(graphdef, p, rest)(x, key=key)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    updates = jax.tree.map(lambda u, s: u * s, updates, scales)
    return optax.apply_updates(params, updates), opt_state, loss


def finetune_fold(
    encoder: Encoder,
    trials: list,
    table: dict,
    train_subjects,
    *,
    n_classes: int,
    settings: dict,
    seed: int,
    train_layers: int,
) -> Classifier:
    """Trains a copy of `encoder` + a new head on the training subjects' windows.

    Args:
        encoder: the pre-trained encoder (not modified).
        trials, table: the target dataset (`load_trials`, `windows.window_table`).
        train_subjects: the fold's labelled subjects; no other subject's window is read.
        settings: hidden, dropout, learning_rate, weight_decay, layer_decay, epochs,
            windows_per_block, blocks_per_step.
        seed: head initialisation, dropout and block order.
        train_layers: see `learning_rate_scales`.
    """
    graphdef, state = nnx.split(encoder)
    model = Classifier(
        nnx.merge(graphdef, jax.tree.map(jnp.copy, state)),
        n_classes,
        hidden=settings["hidden"],
        dropout=settings["dropout"],
        rngs=nnx.Rngs(params=seed),
    )
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    n_blocks = len(encoder.channel_encoder.blocks)
    scales = learning_rate_scales(
        params, n_blocks=n_blocks, train_layers=train_layers, layer_decay=settings["layer_decay"]
    )
    tx = make_optimizer(float(settings["learning_rate"]), float(settings["weight_decay"]))
    opt_state = tx.init(params)
    steps = training_blocks(
        table,
        train_subjects,
        windows_per_block=settings["windows_per_block"],
        blocks_per_step=settings["blocks_per_step"],
        epochs=settings["epochs"],
        seed=seed,
    )
    window = encoder.n_times
    key = jax.random.key(seed)
    for i, rows in enumerate(tqdm(steps, desc="finetune", unit="step", leave=False)):
        x = np.stack([windows.gather_windows(trials, table, block, window) for block in rows])
        params, opt_state, _ = _train_step(
            params,
            opt_state,
            rest,
            scales,
            jnp.asarray(x),
            jnp.asarray(table["label"][rows], jnp.int32),
            jax.random.fold_in(key, i),
            graphdef=graphdef,
            tx=tx,
        )
    return nnx.merge(graphdef, params, rest)


def evaluate(
    model: Classifier,
    trials: list,
    table: dict,
    test_subjects,
    *,
    windows_per_block: int,
    seed: int,
) -> dict:
    """Metrics of `model` on every window of `test_subjects` (one subject per block)."""
    rows = np.flatnonzero(np.isin(table["subject"], test_subjects))
    test_table = {key: value[rows] for key, value in table.items()}
    feats = windows.learned_features(
        model.encoder,
        trials,
        test_table,
        window=model.encoder.n_times,
        windows_per_block=windows_per_block,
        blocks_per_call=1,
        seed=seed,
        progress=False,
    )
    return scoring.classification_metrics(
        test_table["label"], heads.predict_proba(model.head, feats)
    )


def finetune_method(
    encoder: Encoder,
    trials: list,
    table: dict,
    *,
    n_classes: int,
    k: int,
    n_folds: int,
    seed: int,
    settings: dict,
    scheme: str = "disjoint",
) -> dict:
    """Few-shot fine-tuning over the probe's folds (`subject_folds` with k, n_folds,
    seed and scheme); the frozen baseline on the same folds."""
    folds = []
    for i, (train_subj, test_subj) in enumerate(
        subject_folds(table["subject"], k, n_folds, seed, scheme=scheme)
    ):
        if set(train_subj) & set(test_subj):
            raise AssertionError(f"fold {i}: training and test subjects overlap")
        fold = dict(train_subjects=train_subj, test_subjects=test_subj)
        for name, layers in (("finetuned", settings["train_layers"]), ("frozen", 0)):
            model = finetune_fold(
                encoder,
                trials,
                table,
                train_subj,
                n_classes=n_classes,
                settings=settings,
                seed=seed + i,
                train_layers=layers,
            )
            fold[name] = evaluate(
                model,
                trials,
                table,
                test_subj,
                windows_per_block=settings["windows_per_block"],
                seed=seed,
            )
        folds.append(fold)
        print(
            f"[finetune] fold {i}: balanced accuracy finetuned "
            f"{fold['finetuned']['balanced_accuracy']:.3f}, frozen "
            f"{fold['frozen']['balanced_accuracy']:.3f}",
            flush=True,
        )
    summary = {
        name: scoring.summarize([f[name] for f in folds]) for name in ("finetuned", "frozen")
    }
    improved = (
        summary["finetuned"]["balanced_accuracy"]["mean"]
        > summary["frozen"]["balanced_accuracy"]["mean"]
    )
    return dict(k=k, seed=seed, folds=folds, summary=summary, improved_over_frozen=improved)


def run(config, root: str) -> dict:
    """--mode=finetune: every method of config.finetune.methods and seed of config.seeds on
    config.target; writes ROOT/finetune/<method>/seed<k>.json and ROOT/finetune/results.json
    ({method: {seed: result}}). A result file is re-used when its settings, protocol and
    encoder are unchanged."""
    ft = config.finetune
    settings = dict(
        hidden=list(config.mlp.hidden),
        dropout=config.mlp.dropout,
        learning_rate=ft.learning_rate,
        weight_decay=ft.weight_decay,
        layer_decay=ft.layer_decay,
        epochs=ft.epochs,
        train_layers=ft.train_layers,
        windows_per_block=ft.windows_per_block,
        blocks_per_step=ft.blocks_per_step,
    )
    protocol = dict(
        target=config.target,
        k=config.fewshot.k,
        n_folds=config.fewshot.n_folds,
        folds=config.fewshot.folds,
        seed=config.probe_seed,
        step_s=config.extract.step_s,
    )
    results = {}
    for method in ft.methods:
        results[method] = {}
        for seed in workdir.method_seeds(config, method):
            path = workdir.finetune_path(root, method, seed)
            inputs = extract.method_inputs(method, seed, config, root)
            key = workdir.canonical(
                dict(settings=settings, protocol=protocol, encoder=inputs["info"])
            )
            if os.path.exists(path):
                cached = workdir.read_json(path)
                if {k: cached.get(k) for k in key} == key:
                    results[method][str(seed)] = cached
                    print(f"[finetune] cached {path}")
                    continue
            encoder, fs = inputs["encoder"], inputs["fs"]
            trials, metadata = load_trials(
                config.target, config.data_dir, inputs["ch_names"], fs=fs
            )
            table = windows.window_table(trials, encoder.n_times, int(round(inputs["step_s"] * fs)))
            result = finetune_method(
                encoder,
                trials,
                table,
                n_classes=len(metadata["label_names"]),
                k=config.fewshot.k,
                n_folds=config.fewshot.n_folds,
                seed=config.probe_seed,
                settings=settings,
                scheme=config.fewshot.folds,
            )
            result = workdir.canonical(
                dict(
                    key,
                    method=method,
                    pretrain_seed=seed,
                    class_names=list(metadata["label_names"]),
                    **result,
                )
            )
            workdir.write_json(path, result)
            results[method][str(seed)] = result
            summary = result["summary"]
            verdict = "improved over" if result["improved_over_frozen"] else "did NOT improve over"
            print(
                f"[finetune] {method} seed {seed}: fine-tuning {verdict} the frozen encoder "
                f"(balanced accuracy {summary['finetuned']['balanced_accuracy']['mean']:.3f}"
                f" vs {summary['frozen']['balanced_accuracy']['mean']:.3f})",
                flush=True,
            )
    workdir.write_json(workdir.finetune_results_path(root), results)
    return results
