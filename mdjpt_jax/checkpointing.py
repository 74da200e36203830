"""Orbax checkpoints of a pre-training run, and the exported encoder (written by pre-training;
read by extraction, fine-tuning, embedding and streaming through `load_encoder`).

A run's checkpoint (WORKDIR/checkpoints/<step>/) holds three items:
    state  the TrainState pytree (step, params, opt_state), arrays via StandardSave;
    data   the input iterator's state (JSON), so a resumed run reads the same batches;
    config the run's settings (JSON), for provenance.
Orbax writes each step into a temporary directory and renames it when complete, so a
killed run leaves either a whole checkpoint or none. Saving is collective: every process
calls `save` with the same step; Orbax writes the JSON items from the primary host only.

Restoring goes onto an abstract target (`abstract_like`) whose leaves carry the shardings
of *this* run's mesh, so a checkpoint written on 8 devices restores on 1 and vice versa.

The exported encoder (WORKDIR/encoder/) is `params/` (an Orbax StandardCheckpointer tree),
a generated card `README.md` (card.py: input contract, training, config, how to load), and
`encoder.json` = {"model_kwargs": ..., "extra": ...} (the schema: encoder_info.py);
encoder.json is written last, so its presence means the export is complete.
"""

import inspect
import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx

from mdjpt_jax import card, encoder_info, workdir
from mdjpt_jax.models import Encoder

ITEMS = ("state", "data", "config")
ENCODER_JSON = "encoder.json"
ENCODER_PARAMS = "params"


def make_manager(
    directory: str, *, max_to_keep: int, async_save: bool = True
) -> ocp.CheckpointManager:
    """A CheckpointManager over `directory` keeping the newest `max_to_keep` steps.

    Saves happen only when `save` is called (the caller decides when); with `async_save`
    the arrays are copied to host synchronously and written in a background thread.
    """
    if max_to_keep < 1:
        raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.LatestN(n=max_to_keep),
        enable_async_checkpointing=async_save,
        create=True,
    )
    return ocp.CheckpointManager(os.path.abspath(directory), options=options, item_names=ITEMS)


def save(
    manager: ocp.CheckpointManager, step: int, state: Any, *, data_state: dict, settings: dict
) -> None:
    """Starts saving checkpoint `step` (collective: call on every process).

    Args:
        manager: from `make_manager`.
        step: the number of updates in `state`.
        state: TrainState pytree of global jax.Arrays.
        data_state: JSON-serializable iterator state (`loader.get_state()`).
        settings: JSON-serializable run settings (the config as a dict).
    """
    manager.save(
        int(step),
        force=True,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=ocp.args.JsonSave(data_state),
            config=ocp.args.JsonSave(settings),
        ),
    )


def abstract_like(tree: Any) -> Any:
    """ShapeDtypeStructs with the shape, dtype and sharding of every array of `tree`."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def restore(manager: ocp.CheckpointManager, step: int, target: Any) -> tuple[Any, dict, dict]:
    """Reads checkpoint `step` onto `target`'s structure and shardings.

    Args:
        manager: from `make_manager`.
        step: a step in `manager.all_steps()`.
        target: a TrainState of arrays or of ShapeDtypeStructs with `sharding` set (the
            layout wanted now; it may differ from the one saved).

    Returns:
        (state, data_state, settings).
    """
    restored = manager.restore(
        int(step),
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_like(target)),
            data=ocp.args.JsonRestore(),
            config=ocp.args.JsonRestore(),
        ),
    )
    return restored["state"], dict(restored["data"]), dict(restored["config"])


def _write_json_atomically(path: str, value: dict) -> None:
    workdir.write_text(path, json.dumps(value, indent=2, sort_keys=True))


def export_encoder(
    path: str, model: nnx.Module, *, model_kwargs: dict, extra: dict, config: dict | None = None
) -> None:
    """Writes the encoder's parameters, its card and how to rebuild it (collective call).

    Args:
        path: output directory (created; an existing export there is replaced).
        model: the Encoder; its nnx.Param arrays may be sharded or replicated.
        model_kwargs: keyword arguments of `Encoder(...)` without `rngs`
            (n_chans, n_times, variant, attention).
        extra: ch_names, fs (Hz), window_s (s), datasets, step, and optional provenance
            (encoder_info.PROVENANCE_FIELDS); band, units, preprocessing, feature_dim and
            code_version are added here (encoder_info.derived_fields).
        config: the run's config (JSON-able dict) for the card; None = no config section.

    Raises:
        ValueError: the info breaks encoder_info's schema (naming the encoder.json).
    """
    path = os.path.abspath(path)
    json_path = os.path.join(path, ENCODER_JSON)
    model_kwargs = workdir.canonical(dict(model_kwargs))
    extra = workdir.canonical(dict(extra))
    extra.update(
        encoder_info.derived_fields(
            fs=extra.get("fs", 0.0), feature_dim=model.feature_dim, code=encoder_info.code_version()
        )
    )
    encoder_info.check(model_kwargs, extra, source=json_path)
    if jax.process_index() == 0 and os.path.exists(json_path):
        os.remove(json_path)
    params = nnx.state(model, nnx.Param)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(os.path.join(path, ENCODER_PARAMS), params, force=True)
        checkpointer.wait_until_finished()
    if jax.process_index() == 0:
        card.write_card(path, dict(model_kwargs, **extra), config)
        _write_json_atomically(json_path, dict(model_kwargs=model_kwargs, extra=extra))


def is_exported(path: str) -> bool:
    """Whether `path` holds a complete exported encoder (encoder.json is written last)."""
    return os.path.exists(os.path.join(path, ENCODER_JSON))


def load_encoder(path: str, *, attention: str | None = None) -> tuple[Encoder, dict]:
    """Rebuilds an exported encoder on the default device (public as mdjpt_jax.load_encoder).

    `attention` ("global" / "causal") overrides the exported mode: both modes have the
    same parameters, so a global encoder can be loaded causal for streaming (info then
    says attention=causal and trained_attention=<the exported mode>).

    Returns:
        (encoder, info): info = model_kwargs merged with extra, every field of
        encoder_info's schema (an older export's missing fields filled, with a note).

    Raises:
        FileNotFoundError: `path` holds no complete export.
        ValueError: encoder.json breaks the schema (naming the file and the fields).
    """
    path = os.path.abspath(path)
    json_path = os.path.join(path, ENCODER_JSON)
    if not os.path.exists(json_path):
        raise FileNotFoundError(
            f"{json_path} not found: {path} holds no complete exported "
            "encoder (pre-training writes WORKDIR/encoder at its end)"
        )
    with open(json_path) as f:
        exported = json.load(f)
    if set(exported) != {"model_kwargs", "extra"}:
        raise ValueError(
            f"{json_path}: expected the keys model_kwargs and extra, got {sorted(exported)}"
        )
    model_kwargs = dict(exported["model_kwargs"])
    unknown = sorted(
        set(model_kwargs) - set(inspect.signature(Encoder.__init__).parameters) - {"self", "rngs"}
    )
    if unknown:
        raise ValueError(f"{json_path}: unknown model_kwargs {unknown} (not Encoder arguments)")
    trained = {}
    if attention is not None and attention != model_kwargs.get("attention", "global"):
        trained = dict(trained_attention=model_kwargs.get("attention", "global"))
        model_kwargs["attention"] = attention
    abstract_model = nnx.eval_shape(lambda: Encoder(**model_kwargs, rngs=nnx.Rngs(params=0)))
    extra = encoder_info.fill_legacy(
        dict(exported["extra"]), feature_dim=abstract_model.feature_dim, source=json_path
    )
    encoder_info.check(model_kwargs, dict(extra, **trained), source=json_path)
    graphdef, abstract_params, rest = nnx.split(abstract_model, nnx.Param, ...)
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract_params
    )
    with ocp.StandardCheckpointer() as checkpointer:
        params = checkpointer.restore(os.path.join(path, ENCODER_PARAMS), target)
    encoder = nnx.merge(graphdef, params, rest)
    return encoder, dict(model_kwargs, **extra, **trained)
