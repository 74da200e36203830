"""train.py: the loss falls; kill + rerun == uninterrupted; SIGTERM saves; NaN stops the run.

Every run is a small synthetic config (2 datasets, P=8 pairs over the 8 simulated devices,
M=4 windows of 2 s, the tiny encoder). The runs share one persistent XLA compilation cache,
so only the first one compiles the step.
"""

import json
import os
import signal

import jax
import numpy as np
import pytest
from flax import nnx

from configs import pretrain
from mdjpt_jax import checkpointing
from mdjpt_jax.pretrain import input_pipeline, metrics_writer, train
from mdjpt_jax.workdir import metrics_path, read_metrics

STEPS, CHECKPOINT_EVERY = 8, 3
DATASETS = ("synthetic_emotion/d1", "synthetic_emotion/d2")


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    """Re-uses the step's compiled executable across the runs of this module."""
    names = (
        "jax_compilation_cache_dir",
        "jax_persistent_cache_min_compile_time_secs",
        "jax_persistent_cache_min_entry_size_bytes",
    )
    old = {name: getattr(jax.config, name) for name in names}
    values = (str(tmp_path_factory.mktemp("jax_cache")), 0.0, 0)
    for name, value in zip(names, values):
        jax.config.update(name, value)
    yield
    for name, value in old.items():
        jax.config.update(name, value)


def small_config(data_dir, **train_fields):
    config = pretrain.get_config("synthetic")
    config.data.update(
        dict(
            datasets=DATASETS,
            data_dir=str(data_dir),
            window_s=2.0,
            pairs_per_step=8,
            windows_per_pair=4,
            num_threads=0,
            prefetch=0,
        )
    )
    config.optim.update(dict(learning_rate=1e-3, warmup_steps=0))
    config.loss.temperature = 0.07
    config.train.update(
        dict(
            steps=STEPS,
            log_every=1,
            checkpoint_every=CHECKPOINT_EVERY,
            eval_every=0,
            diagnose_every=2,
        )
    )
    config.train.update(train_fields)
    return config


def encoder_params(workdir):
    encoder, info = checkpointing.load_encoder(os.path.join(workdir, "encoder"))
    return jax.tree.leaves(jax.device_get(nnx.state(encoder, nnx.Param))), info


def metric_rows(workdir):
    rows = read_metrics(metrics_path(workdir))
    return [{k: v for k, v in row.items() if k != "windows_per_s"} for row in rows]


@pytest.fixture(scope="module")
def uninterrupted(synthetic_data_dir, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("uninterrupted"))
    train.run(small_config(synthetic_data_dir), workdir)
    return workdir


def test_run_writes_the_workdir(uninterrupted):
    assert {
        "config.json",
        "metrics.jsonl",
        "tb",
        "checkpoints",
        "encoder",
        "loss_curve.png",
    } <= set(os.listdir(uninterrupted))
    rows = metric_rows(uninterrupted)
    assert [row["step"] for row in rows] == list(range(1, STEPS + 1))
    assert {
        "loss",
        "contrastive",
        "cda",
        "grad_norm",
        "learning_rate",
        "contrastive/synthetic_emotion/d1",
        "contrastive/synthetic_emotion/d2",
        "grad_norm/channel_encoder",
        "grad_norm/projector",
        "similarity/positive_minus_negative",
        "similarity/spread",
    } <= set(rows[0])
    # NT-Xent over 2M = 8 candidates starts near chance, log(7); the contrastive term is
    # the sum over the two datasets (the original code's weighting).
    assert abs(rows[0]["contrastive_over_chance"] - 1.0) < 0.15
    per_dataset = [rows[0][f"contrastive/{d}"] for d in DATASETS]
    assert rows[0]["contrastive"] == pytest.approx(sum(per_dataset), rel=1e-5)
    assert rows[0]["contrastive_over_chance"] == pytest.approx(
        np.mean(per_dataset) / np.log(7), rel=1e-5
    )
    # CDA measured on its own every diagnose_every = 2 steps, as the loss's own CDA term
    diagnosed = [row for row in rows if "cda_diagnostics/cda" in row]
    assert [row["step"] for row in diagnosed] == [2, 4, 6, 8]
    for row in diagnosed:
        assert row["cda_diagnostics/cda"] == pytest.approx(row["cda"], rel=1e-4)
        assert 0.0 <= row["cda_diagnostics/cda_radial_share_mixer"] <= 1.0
    assert sorted(os.listdir(os.path.join(uninterrupted, "checkpoints"))) == ["3", "6", "8"]
    _, info = encoder_params(uninterrupted)
    assert info["step"] == STEPS and info["n_times"] == 250 and len(info["ch_names"]) == 19


EVAL_KEYS = (
    "eval/retrieval_projection",
    "eval/retrieval_features",
    "eval/retrieval_waveform",
    "eval/retrieval_de",
    "eval/probe_auroc",
)


def test_learning_curve_evaluation_is_logged(synthetic_data_dir, tmp_path):
    """eval_every=4: held-out retrieval and probe at steps 0 (initial parameters), 4, 8."""
    config = small_config(
        synthetic_data_dir, eval_every=4, eval_windows_per_subject=16, log_every=2
    )
    train.run(config, str(tmp_path))
    rows = metric_rows(str(tmp_path))
    evaluated = [row for row in rows if EVAL_KEYS[0] in row]
    assert [row["step"] for row in evaluated] == [0, 4, 8]
    for row in evaluated:
        for key in EVAL_KEYS + tuple(f"{k}/{d}" for k in EVAL_KEYS for d in DATASETS):
            assert 0.0 <= row[key] <= 1.0, (key, row[key])
        assert row["eval/retrieval_features"] == pytest.approx(
            np.mean([row[f"eval/retrieval_features/{d}"] for d in DATASETS])
        )
    assert "loss" not in evaluated[0] and "loss" in evaluated[1]  # step 0: before training
    # the yardstick reads the raw waveform: the same at every evaluation
    assert len({row["eval/retrieval_waveform"] for row in evaluated}) == 1
    assert len({row["eval/retrieval_de"] for row in evaluated}) == 1


@pytest.mark.slow
def test_pretraining_learns_what_extraction_sees(synthetic_data_dir, tmp_path):
    """The learning test: within 60 steps of the synthetic preset (a strong shared
    stimulus-locked signal; its lr 1e-2 and temperature 0.2), cross-subject retrieval of
    windows embedded OUTSIDE the training batch (one subject per block, as extraction does)
    rises by >= 0.10 above the initial (random) encoder's, on the features and on the
    projection (bench/learning_bench.py: +0.23 on the features after 50 steps with P = 2)."""
    config = pretrain.get_config("synthetic")
    # P = 8 pairs: one per simulated device.
    config.data.update(
        dict(data_dir=str(synthetic_data_dir), num_threads=0, prefetch=0, pairs_per_step=8)
    )
    config.train.update(dict(steps=60, eval_every=60, checkpoint_every=60))
    train.run(config, str(tmp_path))
    first, last = [row for row in metric_rows(str(tmp_path)) if EVAL_KEYS[0] in row]
    assert (first["step"], last["step"]) == (0, 60)
    for key in ("eval/retrieval_features", "eval/retrieval_projection"):
        assert last[key] >= first[key] + 0.10, (key, first[key], last[key])


@pytest.mark.slow
def test_loss_falls(synthetic_data_dir, tmp_path):
    config = small_config(synthetic_data_dir, steps=40, log_every=5, checkpoint_every=40)
    config.data.datasets = pretrain.SYNTHETIC_DATASETS
    train.run(config, str(tmp_path))
    losses = [row["loss"] for row in metric_rows(str(tmp_path))]
    assert len(losses) == 8
    assert np.mean(losses[-2:]) < np.mean(losses[:2]) - 0.2, losses


def _interrupt_at(monkeypatch, step, action):
    """Calls `action` right after the metrics of `step` are written (log_every=1)."""
    write = metrics_writer.MetricsWriter.write

    def write_then_act(self, row_step, metrics):
        write(self, row_step, metrics)
        if row_step == step:
            action()

    monkeypatch.setattr(metrics_writer.MetricsWriter, "write", write_then_act)


class Killed(Exception):
    pass


def _raise_killed():
    raise Killed()


def _assert_same_run(workdir, reference):
    assert metric_rows(workdir) == metric_rows(reference)  # every step once, same numbers
    params, _ = encoder_params(workdir)
    reference_params, _ = encoder_params(reference)
    for a, b in zip(params, reference_params):
        np.testing.assert_array_equal(a, b)


def test_killed_run_resumed_equals_uninterrupted(
    synthetic_data_dir, uninterrupted, tmp_path, monkeypatch
):
    workdir = str(tmp_path)
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 5, _raise_killed)  # after step 5; last checkpoint: step 3
        with pytest.raises(Killed):
            train.run(small_config(synthetic_data_dir), workdir)
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3"]
    assert len(metric_rows(workdir)) == 5
    train.run(small_config(synthetic_data_dir), workdir)  # the same command again
    _assert_same_run(workdir, uninterrupted)


@pytest.mark.slow
def test_sigterm_saves_the_current_step_and_resumes(
    synthetic_data_dir, uninterrupted, tmp_path, monkeypatch
):
    workdir = str(tmp_path)
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 4, lambda: os.kill(os.getpid(), signal.SIGTERM))
        with pytest.raises(SystemExit) as exit_info:
            train.run(small_config(synthetic_data_dir), workdir)
    assert exit_info.value.code == train.PREEMPTED_EXIT_CODE
    assert signal.getsignal(signal.SIGTERM) is not None  # the handler was restored
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "5"]
    train.run(small_config(synthetic_data_dir), workdir)
    _assert_same_run(workdir, uninterrupted)


class NanAt:
    """Wraps a loader: sample 0 of the batch with input-pipeline step `index` becomes NaN."""

    def __init__(self, loader, index):
        self.loader, self.index = loader, index

    def __iter__(self):
        return self

    def __next__(self):
        is_target = self.loader.get_state()["step"] == self.index
        batch = next(self.loader)
        if is_target:
            batch["eeg"][0, 0, 0, 0, 0, 0] = np.nan
        return batch

    def get_state(self):
        return self.loader.get_state()

    def set_state(self, state):
        self.loader.set_state(state)

    def close(self):
        self.loader.close()


def test_nan_stops_the_run_naming_step_and_term_without_checkpoint(
    synthetic_data_dir, tmp_path, monkeypatch
):
    make_loader = input_pipeline.make_pretrain_loader
    monkeypatch.setattr(
        input_pipeline, "make_pretrain_loader", lambda *a, **k: NanAt(make_loader(*a, **k), index=4)
    )
    workdir = str(tmp_path)
    # log_every=2: the bad step 5 is detected when step 6 would be checkpointed.
    with pytest.raises(FloatingPointError) as error:
        train.run(small_config(synthetic_data_dir, log_every=2), workdir)
    message = str(error.value)
    assert "at step 5:" in message and "contrastive of synthetic_emotion/d1 = nan" in message
    assert "synthetic_emotion/d2" not in message  # that dataset's loss stayed finite
    assert "grad_norm = nan" in message
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3"]
    assert [row["step"] for row in metric_rows(workdir)] == [2, 4]
    assert not os.path.exists(os.path.join(workdir, "encoder"))
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["train"]["log_every"] == 2
