"""The stream probe's file format: an MLP over stream features, its feature-normalization
prior, the pipeline settings it was trained with, and the encoder it fits.

    npz: param:<path> (the MLP's parameters), prior_mean, prior_var [D], meta (JSON)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mdjpt_jax import heads, workdir
from mdjpt_jax.models import Encoder

HOP_S = 1.0  # default output period, s (rounded to whole tokens)
NORM_HORIZON_S = 120.0  # time constant of the running stratified normalization, s
FEATURE_DECAY = 0.99  # prior weight factor per output of the feature normalization
BRIDGE_S = 0.25  # longest gap bridged by interpolation, s; longer gaps reset
GAP_SAMPLES = 1.5  # a timestamp step above this many sample periods is a gap


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
    """The causal pipeline's settings; a probe file stores them and the stream uses them.

    Attributes:
        hop_tokens: tokens per output (hop = hop_tokens x patch_stride encoder samples).
        norm_horizon_s: time constant of running_stratified_norm, s.
        feature_decay: prior weight factor per output of features.running_normalize.
        bridge_s: longest gap (s) bridged by interpolation; longer gaps reset the state.
    """

    hop_tokens: int
    norm_horizon_s: float = NORM_HORIZON_S
    feature_decay: float = FEATURE_DECAY
    bridge_s: float = BRIDGE_S


def encoder_fingerprint(encoder: Encoder) -> str:
    """sha256 of the encoder's parameters (the probe file names the encoder it fits)."""
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(nnx.state(encoder, nnx.Param)):
        digest.update(np.ascontiguousarray(np.asarray(leaf, np.float32)).tobytes())
    return digest.hexdigest()


@dataclasses.dataclass
class Probe:
    """A classifier of stream features: MLP + feature-normalization prior + provenance.

    Attributes:
        mlp: heads.MLP over D features.
        class_names: K names, in output order.
        prior_mean, prior_var: [D] statistics of the training features (raw).
        settings: the PipelineSettings the features were produced with.
        meta: hidden sizes, dropout, encoder fingerprint and info, training summary.
    """

    mlp: heads.MLP
    class_names: list
    prior_mean: np.ndarray
    prior_var: np.ndarray
    settings: PipelineSettings
    meta: dict


def _mlp_arrays(mlp: heads.MLP) -> dict:
    flat = jax.tree_util.tree_flatten_with_path(nnx.state(mlp, nnx.Param))[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in flat}


def save_probe(path: str, model: Probe) -> str:
    """npz: the MLP's parameters (param:<path>), prior_mean/var, meta (JSON); atomic."""
    meta = dict(
        model.meta, class_names=list(model.class_names), settings=dataclasses.asdict(model.settings)
    )
    workdir.save_npz(
        path,
        prior_mean=model.prior_mean,
        prior_var=model.prior_var,
        meta=np.asarray(json.dumps(meta, sort_keys=True)),
        **{f"param:{k}": v for k, v in _mlp_arrays(model.mlp).items()},
    )
    return path


def load_probe(path: str) -> Probe:
    """Reads a probe file written by `save_probe`; errors name the file and the problem."""
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path}: no probe file (export one with --mode=stream_probe --stream_probe=PATH)"
        )
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop("meta")))
        mean, var = arrays.pop("prior_mean"), arrays.pop("prior_var")
        names, hidden = meta["class_names"], meta["hidden"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: not a stream probe file ({error})") from error
    mlp = heads.MLP(
        int(meta["in_dim"]),
        len(names),
        hidden=tuple(hidden),
        dropout=float(meta["dropout"]),
        rngs=nnx.Rngs(params=0),
    )
    expected = _mlp_arrays(mlp)
    params = {k[len("param:") :]: v for k, v in arrays.items() if k.startswith("param:")}
    if set(params) != set(expected) or any(params[k].shape != v.shape for k, v in expected.items()):
        raise ValueError(
            f"{path}: MLP parameters do not match hidden={hidden}, "
            f"in_dim={meta['in_dim']}, {len(names)} classes"
        )
    if not all(np.isfinite(v).all() for v in list(params.values()) + [mean, var]):
        raise ValueError(f"{path}: NaN/Inf in the probe's parameters or prior")
    state = nnx.state(mlp, nnx.Param)
    flat = jax.tree_util.tree_flatten_with_path(state)
    leaves = [jnp.asarray(params[jax.tree_util.keystr(p)]) for p, _ in flat[0]]
    nnx.update(mlp, jax.tree_util.tree_unflatten(flat[1], leaves))
    return Probe(
        mlp,
        list(names),
        mean.astype(np.float32),
        var.astype(np.float32),
        PipelineSettings(**meta["settings"]),
        meta,
    )


def check_probe_fits(model: Probe, encoder: Encoder) -> None:
    """Raises if the probe was trained on another encoder's features."""
    fingerprint = encoder_fingerprint(encoder)
    if model.meta.get("encoder_fingerprint") != fingerprint:
        raise ValueError(
            f"the probe was trained on features of encoder "
            f"{model.meta.get('encoder_dir', '?')} (fingerprint "
            f"{str(model.meta.get('encoder_fingerprint'))[:12]}), not this one "
            f"({fingerprint[:12]}); export a probe for this encoder"
        )
