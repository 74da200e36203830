"""checkpointing.py: 8-device save restores on 1 device (and back), retention, encoder export."""

import json
import logging
import os

import jax
import numpy as np
import pytest
from flax import nnx

from mdjpt_jax import checkpointing, distributed, encoder_info, optimizer
from mdjpt_jax.models import Encoder
from mdjpt_jax.pretrain import train_step

MODEL_KWARGS = dict(n_chans=5, n_times=128, variant="tiny", attention="global")


def _state(mesh, seed):
    tx = optimizer.make_optimizer(
        learning_rate=1e-3, weight_decay=1e-4, warmup_steps=1, total_steps=10
    )
    model = Encoder(**MODEL_KWARGS, rngs=nnx.Rngs(params=seed))
    return train_step.init_train_state(model, tx, mesh=mesh)[1]


def _host_leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(_host_leaves(a), _host_leaves(b)):
        np.testing.assert_array_equal(x, y)


def test_saved_on_8_devices_restores_on_1_and_back(tmp_path):
    mesh8, mesh1 = distributed.make_mesh(), distributed.make_mesh(jax.devices()[:1])
    assert mesh8.devices.size == 8
    saved = _state(mesh8, seed=0)
    saved = saved.replace(step=saved.step + 7)
    manager = checkpointing.make_manager(str(tmp_path / "ckpt"), max_to_keep=2)
    checkpointing.save(
        manager, 7, saved, data_state={"step": 7, "seed": 3}, settings={"train": {"steps": 9}}
    )
    manager.close()

    # A fresh manager (as in a new process) onto a 1-device target initialised differently.
    target = _state(mesh1, seed=1)
    restored, data_state, settings = checkpointing.restore(
        checkpointing.make_manager(str(tmp_path / "ckpt"), max_to_keep=2), 7, target
    )
    _assert_trees_equal(restored, saved)
    assert int(restored.step) == 7
    assert data_state == {"step": 7, "seed": 3} and settings == {"train": {"steps": 9}}
    for leaf in jax.tree.leaves(restored):
        assert leaf.sharding.mesh.devices.size == 1 and leaf.sharding.is_fully_replicated

    # ... and the 1-device state saved again restores onto 8 devices.
    manager = checkpointing.make_manager(str(tmp_path / "ckpt1"), max_to_keep=2)
    checkpointing.save(manager, 7, restored, data_state=data_state, settings=settings)
    manager.close()
    back, _, _ = checkpointing.restore(
        checkpointing.make_manager(str(tmp_path / "ckpt1"), max_to_keep=2), 7, _state(mesh8, 2)
    )
    _assert_trees_equal(back, saved)
    assert all(leaf.sharding.mesh.devices.size == 8 for leaf in jax.tree.leaves(back))


def test_keeps_the_newest_steps_and_no_temporary_directories(tmp_path):
    mesh1 = distributed.make_mesh(jax.devices()[:1])
    state = _state(mesh1, seed=0)
    manager = checkpointing.make_manager(str(tmp_path), max_to_keep=2)
    for step in (3, 6, 9):
        checkpointing.save(manager, step, state, data_state={"step": step}, settings={})
    manager.wait_until_finished()
    assert list(manager.all_steps()) == [6, 9] and manager.latest_step() == 9
    manager.close()
    assert sorted(os.listdir(tmp_path)) == ["6", "9"]
    with pytest.raises(ValueError, match="max_to_keep"):
        checkpointing.make_manager(str(tmp_path), max_to_keep=0)


EXTRA = dict(
    ch_names=["FP1", "FP2", "CZ", "O1", "O2"], fs=125.0, window_s=1.0, datasets=["d"], step=12
)


def test_export_load_encoder_round_trip_gives_identical_features(tmp_path):
    model = Encoder(**MODEL_KWARGS, rngs=nnx.Rngs(params=4))
    checkpointing.export_encoder(
        str(tmp_path / "encoder"), model, model_kwargs=MODEL_KWARGS, extra=EXTRA
    )
    loaded, info = checkpointing.load_encoder(str(tmp_path / "encoder"))
    schema = {**encoder_info.MODEL_FIELDS, **encoder_info.EXTRA_FIELDS}
    assert set(schema) <= set(info) and info == dict(MODEL_KWARGS, **EXTRA, **{
        k: info[k] for k in encoder_info.LEGACY_FIELDS
    })  # fmt: skip
    assert info["feature_dim"] == model.feature_dim and info["units"] == "µV"
    assert info["band"] == [0.5, 47.0] and info["code_version"]
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 128)).astype(np.float32)
    embed = nnx.jit(lambda encoder, x: encoder.embed(x))
    np.testing.assert_array_equal(np.asarray(embed(loaded, x)), np.asarray(embed(model, x)))
    other = Encoder(**MODEL_KWARGS, rngs=nnx.Rngs(params=5))  # The check can fail:
    assert not np.array_equal(np.asarray(embed(other, x)), np.asarray(embed(model, x)))


def test_load_encoder_without_export_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="encoder.json"):
        checkpointing.load_encoder(str(tmp_path))
    with pytest.raises(ValueError, match="both model_kwargs and extra"):
        checkpointing.export_encoder(
            str(tmp_path),
            Encoder(**MODEL_KWARGS, rngs=nnx.Rngs(0)),
            model_kwargs=MODEL_KWARGS,
            extra=dict(EXTRA, variant="x"),
        )


def export_then_edit(tmp_path, edit) -> str:
    """An export whose encoder.json `edit(exported)` then rewrites; returns the directory."""
    path = str(tmp_path / "encoder")
    model = Encoder(**MODEL_KWARGS, rngs=nnx.Rngs(params=0))
    checkpointing.export_encoder(path, model, model_kwargs=MODEL_KWARGS, extra=EXTRA)
    json_path = os.path.join(path, checkpointing.ENCODER_JSON)
    with open(json_path) as f:
        exported = json.load(f)
    edit(exported)
    with open(json_path, "w") as f:
        json.dump(exported, f)
    return path


def test_an_encoder_exported_before_the_schema_loads_with_the_fill_and_a_note(tmp_path, caplog):
    def make_old(exported):
        for key in ("band", "units", "preprocessing", "feature_dim", "code_version"):
            del exported["extra"][key]

    path = export_then_edit(tmp_path, make_old)
    with caplog.at_level(logging.WARNING):
        _, info = checkpointing.load_encoder(path)
    assert info["band"] == [0.5, 47.0] and info["units"] == "µV" and info["feature_dim"] > 0
    assert "unknown" in info["code_version"] and "0.5-47 Hz" in info["preprocessing"]
    assert "encoder.json" in caplog.text and "band, units, preprocessing" in caplog.text


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda e: e["extra"].update(colour="blue"), r"unknown fields \['colour'\]"),
        (lambda e: e["extra"].update(fs="125"), r"fs='125' is not float"),
        (lambda e: e["extra"].update(feature_dim=1.5), r"feature_dim=1.5 is not int"),
        (lambda e: e["extra"].pop("datasets"), r"missing fields \['datasets'\]"),
        (lambda e: e["model_kwargs"].update(colour=1), r"unknown model_kwargs \['colour'\]"),
        (lambda e: e.update(more={}), r"expected the keys model_kwargs and extra"),
    ],
)
def test_a_malformed_encoder_info_is_an_error_naming_the_file(tmp_path, edit, match):
    path = export_then_edit(tmp_path, edit)
    with pytest.raises(ValueError, match=match) as error:
        checkpointing.load_encoder(path)
    assert os.path.join(path, "encoder.json") in str(error.value)


def test_code_version_names_the_commit_only_of_its_own_checkout(tmp_path):
    """A checkout whose top holds mdjpt_jax/ gives its commit; a copy inside another repository
    (an installed package in a user's project venv) gives only the package version."""
    import subprocess

    import mdjpt_jax

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    installed = tmp_path / "venv" / "site-packages" / "mdjpt_jax"
    for package in (tmp_path / "mdjpt_jax", installed):
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    own = encoder_info.code_version(str(tmp_path / "mdjpt_jax"))
    assert own.startswith("git ") and mdjpt_jax.__version__ in own
    assert encoder_info.code_version(str(installed)) == f"mdjpt_jax {mdjpt_jax.__version__}"
