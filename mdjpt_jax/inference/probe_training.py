"""Training a stream probe on features of the causal pipeline (`decoder.offline_pass`), and
`--mode=stream_probe`: the probe of a dataset's trials.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np

from mdjpt_jax import features, heads
from mdjpt_jax.inference import causal_preprocessing
from mdjpt_jax.inference.decoder import hop_tokens, load_causal_encoder, offline_pass
from mdjpt_jax.inference.stream_probe import (
    HOP_S,
    PipelineSettings,
    Probe,
    encoder_fingerprint,
    save_probe,
)
from mdjpt_jax.models import Encoder


def train_probe(
    encoder: Encoder,
    info: dict,
    recordings: list,
    class_names,
    *,
    settings: PipelineSettings,
    mlp: dict,
    seed: int,
    encoder_dir: str | None = None,
) -> Probe:
    """Trains the MLP probe on features of the causal pipeline (`offline_pass`).

    Decision: every recording is one stream from a fresh decoder state (as a live session
    starts), labelled windows = its outputs; the prior of the feature normalization is
    the mean/variance of all training outputs' raw features (as downstream/probe.py's prior of the
    training windows), and each recording's features are normalized with
    features.running_normalize from that prior, exactly as the stream does online.

    Args:
        recordings: dicts with eeg [C, T] µV, ch_names, fs (Hz), label (int class index).
        class_names: K names.
        settings: the pipeline settings (stored in the probe).
        mlp: heads.train_mlp keyword arguments (hidden, dropout, learning_rate,
            weight_decay, epochs, batch_size).
        seed: MLP initialisation and minibatch order.
    """
    raw, labels = [], []
    for rec in recordings:
        if not 0 <= int(rec["label"]) < len(class_names):
            raise ValueError(f"label {rec['label']} out of range for {len(class_names)} classes")
        out = offline_pass(
            encoder, info, rec["eeg"], ch_names=rec["ch_names"], fs=rec["fs"], settings=settings
        )
        raw.append(out["features"])
        labels.append(np.full(len(out["features"]), int(rec["label"])))
    if sum(len(f) for f in raw) == 0:
        raise ValueError(
            f"no recording is longer than one encoder window "
            f"({encoder.n_times / float(info['fs']):g} s): nothing to train on"
        )
    pooled = np.concatenate(raw)
    mean, var = pooled.mean(axis=0), pooled.var(axis=0)
    normalized = [
        np.asarray(
            features.running_normalize(
                jnp.asarray(f), jnp.asarray(mean), jnp.asarray(var), settings.feature_decay
            )
        )
        for f in raw
        if len(f)
    ]
    x, y = np.concatenate(normalized), np.concatenate(labels)
    model = heads.train_mlp(x, y, len(class_names), seed=seed, **mlp)
    train_acc = float((heads.predict_proba(model, x).argmax(1) == y).mean())
    meta = dict(
        in_dim=int(x.shape[1]),
        hidden=list(mlp["hidden"]),
        dropout=mlp["dropout"],
        mlp=dict(mlp),
        seed=seed,
        encoder_fingerprint=encoder_fingerprint(encoder),
        encoder_dir=encoder_dir,
        encoder={k: v for k, v in info.items() if k != "ch_names"},
        ch_names=list(info["ch_names"]),
        n_recordings=len(recordings),
        n_outputs=len(x),
        train_accuracy=train_acc,
        preprocessing=causal_preprocessing.describe(
            float(recordings[0]["fs"]),
            float(info["fs"]),
            tuple(info["band"]),
        ),
    )
    return Probe(
        model, list(class_names), mean.astype(np.float32), var.astype(np.float32), settings, meta
    )


def export_probe_from_dataset(
    config, encoder_dir: str, output: str, *, hop_s: float = HOP_S
) -> str:
    """--mode=stream_probe --stream_probe=OUT: the probe trained on `config.target`'s trials.

    Every trial of the target dataset (read as extraction reads it, on the encoder's
    channels) is one labelled recording of `train_probe`; the MLP settings and seed are
    the probe protocol's (config.mlp, config.probe_seed).
    """
    from mdjpt_jax import trials as trial_reading

    encoder, info = load_causal_encoder(encoder_dir)
    trials, metadata = trial_reading.load_trials(
        config.target, config.data_dir, list(info["ch_names"])
    )
    recordings = [
        dict(eeg=t["eeg"], ch_names=list(info["ch_names"]), fs=metadata["fs"], label=t["label"])
        for t in trials
    ]
    mlp = heads.train_kwargs(config.mlp)
    settings = PipelineSettings(hop_tokens(encoder, float(info["fs"]), hop_s))
    model = train_probe(
        encoder,
        info,
        recordings,
        metadata["label_names"],
        settings=settings,
        mlp=mlp,
        seed=config.probe_seed,
        encoder_dir=os.path.abspath(encoder_dir),
    )
    model.meta["dataset"] = config.target
    save_probe(output, model)
    print(
        f"[probe] wrote stream probe {output}: {len(model.class_names)} classes, "
        f"{model.meta['n_outputs']} outputs of {len(recordings)} trials, train accuracy "
        f"{model.meta['train_accuracy']:.3f}"
    )
    return output
