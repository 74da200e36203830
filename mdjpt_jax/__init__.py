"""mdJPT in JAX: multi-dataset joint pre-training of emotional EEG.

Three wings on a shared ground floor; no wing imports another (tests/test_layout.py):
    pretrain/     input pipeline -> train step -> checkpoints, metrics, the exported encoder
    downstream/   extract -> probe / finetune -> report (reads pre-training's files only)
    inference/    embed a recording; the causal stream decoder, its probe, the LSL runner
The ground floor (models/, losses, windows, trials, heads, scoring, workdir, checkpointing,
card, ...) imports no wing; main.py and experiment.py orchestrate the wings.

Public API (imported on first use, so `import mdjpt_jax` stays light and does not import jax):
    mdjpt_jax.load_encoder(dir) -> (Encoder, info)
    mdjpt_jax.embed(data, encoder, *, ch_names=None, fs=None, window_s=None, step_s=None)

The command line is `mdjpt` (mdjpt_jax/cli.py). `__version__` is the one version: the
package metadata reads it from here (pyproject.toml, setuptools dynamic version).
"""

__version__ = "0.1.0"

_PUBLIC = {
    "embed": "mdjpt_jax.inference.embedding",
    "load_encoder": "mdjpt_jax.inference.embedding",
}


def __getattr__(name):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'mdjpt_jax' has no attribute {name!r}")
