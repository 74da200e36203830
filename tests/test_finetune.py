"""finetune.py: fine-tuning on the few-shot folds of the probe, on synthetic data."""

import jax
import numpy as np
import pytest
from flax import nnx

from configs import downstream
from mdjpt_jax import channels, checkpointing, windows, workdir
from mdjpt_jax.downstream import finetune
from mdjpt_jax.downstream.folds import subject_folds
from mdjpt_jax.models import Encoder
from mdjpt_jax.trials import load_trials

CH_NAMES = channels.UNIFIED_SETS["standard_1020"]
MODEL_KWARGS = dict(n_chans=len(CH_NAMES), n_times=250, variant="tiny", attention="global")
SETTINGS = dict(
    hidden=[16],
    dropout=0.1,
    learning_rate=1e-3,
    weight_decay=1e-4,
    layer_decay=0.5,
    epochs=1,
    train_layers=-1,
    windows_per_block=16,
    blocks_per_step=2,
)


def test_training_blocks_hold_one_training_subject_each():
    table = dict(subject=np.repeat([0, 1, 2, 3], [30, 7, 40, 12]))
    steps = finetune.training_blocks(
        table, [1, 3], windows_per_block=8, blocks_per_step=2, epochs=3, seed=0
    )
    assert steps.shape[1:] == (2, 8)
    for block in steps.reshape(-1, 8):
        assert len(set(table["subject"][block])) == 1
    assert set(table["subject"][steps.ravel()]) == {1, 3}  # never subjects 0, 2
    per_epoch = (1 + 2) // 2  # ceil(7/8) + ceil(12/8)
    assert len(steps) == 3 * per_epoch


def test_learning_rate_scales_freeze_and_decay_by_layer():
    model = finetune.Classifier(
        Encoder(**MODEL_KWARGS, rngs=nnx.Rngs(0)), 3, hidden=[8], dropout=0.0, rngs=nnx.Rngs(1)
    )
    params = nnx.state(model, nnx.Param)
    assert len(model.encoder.channel_encoder.blocks) == 1  # tiny: one MLLA block

    def by_top_key(scales):
        out = {}
        for path, value in jax.tree_util.tree_flatten_with_path(scales)[0]:
            name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path[:3])
            out.setdefault(name, set()).add(value)
        return out

    head_only = by_top_key(
        finetune.learning_rate_scales(params, n_blocks=1, train_layers=0, layer_decay=0.5)
    )
    assert all(v == ({1.0} if k.startswith("head") else {0.0}) for k, v in head_only.items())
    top_two = by_top_key(
        finetune.learning_rate_scales(params, n_blocks=1, train_layers=2, layer_decay=0.5)
    )
    assert top_two["encoder/dynamics/ms_kernel"] == {0.5}
    assert top_two["encoder/mixer/linear"] == {0.25}
    assert top_two["encoder/channel_encoder/read_out"] == {0.0}
    every = by_top_key(
        finetune.learning_rate_scales(params, n_blocks=1, train_layers=-1, layer_decay=0.5)
    )
    # read_in, block 0, read_out, mixer, dynamics: depths 5, 4, 3, 2, 1
    assert every["encoder/channel_encoder/read_in"] == {0.5**5}
    assert every["encoder/channel_encoder/blocks"] == {0.5**4}
    assert every["encoder/projector/kernels"] == {0.0}


@pytest.fixture(scope="module")
def target(synthetic_data_dir):
    trials, metadata = load_trials("synthetic_emotion/d3", synthetic_data_dir, CH_NAMES, fs=125.0)
    return trials, windows.window_table(trials, 250, 250), len(metadata["label_names"])


def test_test_subjects_never_reach_training(target):
    trials, table, n_classes = target
    ((train_subj, test_subj),) = subject_folds(table["subject"], 2, 1, seed=0)
    assert not set(train_subj) & set(test_subj)
    poisoned = [
        dict(t, eeg=np.full_like(t["eeg"], np.nan)) if t["subject"] in test_subj else t
        for t in trials
    ]  # any test window read -> NaN params
    encoder = Encoder(**MODEL_KWARGS, rngs=nnx.Rngs(params=0))
    before = jax.tree.leaves(nnx.state(encoder, nnx.Param))
    model = finetune.finetune_fold(
        encoder,
        poisoned,
        table,
        train_subj,
        n_classes=n_classes,
        settings=SETTINGS,
        seed=0,
        train_layers=-1,
    )
    after = jax.tree.leaves(nnx.state(model.encoder, nnx.Param))
    assert all(np.all(np.isfinite(np.asarray(p))) for p in after)
    assert any(not np.allclose(a, b) for a, b in zip(after, before))  # the encoder learned
    unchanged = jax.tree.leaves(nnx.state(encoder, nnx.Param))  # and the input is intact
    assert all(np.array_equal(a, b) for a, b in zip(unchanged, before))


@pytest.mark.slow
def test_run_writes_results_beside_the_frozen_baseline(synthetic_data_dir, tmp_path, capsys):
    root = tmp_path / "work"
    for seed in (0, 1):  # the pre-training runs of two seeds (workdir.run_dir layout)
        checkpointing.export_encoder(
            workdir.encoder_dir(workdir.run_dir(str(root), "joint", seed)),
            Encoder(**MODEL_KWARGS, rngs=nnx.Rngs(seed)),
            model_kwargs=MODEL_KWARGS,
            extra=dict(ch_names=CH_NAMES, fs=125.0, window_s=2.0, step=0, datasets=["none"]),
        )
    config = downstream.get_config("synthetic")
    with config.unlocked():
        config.data_dir = str(synthetic_data_dir)
        config.seeds = (0, 1)
        config.fewshot.n_folds = 2
        config.extract.window_s, config.extract.step_s = 2.0, 2.0
        config.mlp.hidden = (16,)
        config.finetune.epochs = 2
        config.finetune.windows_per_block = 16
    results = finetune.run(config, str(root))
    assert set(results["joint"]) == {"0", "1"}
    assert workdir.read_json(workdir.finetune_results_path(str(root))) == results
    for seed in ("0", "1"):
        written = workdir.read_json(workdir.finetune_path(str(root), "joint", int(seed)))
        assert written == results["joint"][seed]
        folds = written["folds"]
        expected = subject_folds(np.arange(8), config.fewshot.k, 2, config.probe_seed)
        assert [(f["train_subjects"], f["test_subjects"]) for f in folds] == [
            (list(a), list(b)) for a, b in expected
        ]
        for fold in folds:
            for name in ("finetuned", "frozen"):
                assert 0.0 <= fold[name]["balanced_accuracy"] <= 1.0
        summary = written["summary"]
        assert written["improved_over_frozen"] == (
            summary["finetuned"]["balanced_accuracy"]["mean"]
            > summary["frozen"]["balanced_accuracy"]["mean"]
        )
    # The seeds' encoders differ, so their fine-tuned results do too.
    assert results["joint"]["0"]["folds"] != results["joint"]["1"]["folds"]
    capsys.readouterr()
    assert finetune.run(config, str(root)) == results  # re-used, not recomputed
    assert capsys.readouterr().out.count("[finetune] cached") == 2
