"""scikit-learn transformer over an exported encoder, for pipelines and cross-validation.

    from sklearn.pipeline import make_pipeline
    from sklearn.linear_model import LogisticRegression
    pipe = make_pipeline(EncoderTransformer("encoder/", ch_names, fs=160.0),
                         LogisticRegression(max_iter=1000))
    cross_val_score(pipe, epochs_uv, y, cv=5)      # epochs_uv [N, C, T] µV

`transform` is `mdjpt_jax.embed` on the epochs, features averaged over each epoch's
windows -> [N, D]. Stratified normalization uses the windows of the epochs passed to one
`transform` call (one subject's epochs, as in MOABB's within-subject evaluation); the
encoder is frozen, so `fit` learns nothing and train and test folds are transformed
independently (no leakage).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from mdjpt_jax import contract


class EncoderTransformer(TransformerMixin, BaseEstimator):
    """[N, C, T] µV epochs -> [N, D] mean encoder features per epoch.

    Args:
        encoder_dir: an exported encoder directory.
        ch_names: the epochs' channel labels (C).
        fs: the epochs' sampling rate in Hz.
        step_s: hop between windows inside an epoch (None: embed's default).
        max_missing: see contract.map_channels.
    """

    def __init__(
        self,
        encoder_dir: str,
        ch_names,
        fs: float,
        step_s: float | None = None,
        max_missing: float = contract.MAX_MISSING_FRACTION,
    ):
        self.encoder_dir = encoder_dir
        self.ch_names = ch_names
        self.fs = fs
        self.step_s = step_s
        self.max_missing = max_missing

    def _encoder(self):
        # Loaded once per estimator; clones (cross_val_score) load their own copy.
        key = str(self.encoder_dir)
        if getattr(self, "_loaded_key", None) != key:
            from mdjpt_jax.inference import embedding

            self._loaded, self._loaded_key = embedding.load_encoder(key), key
        return self._loaded

    def fit(self, X, y=None):
        """No-op (the encoder is pre-trained and frozen); checks X's shape."""
        self._check(X)
        return self

    def _check(self, X) -> np.ndarray:
        X = np.asarray(X, np.float64)
        if X.ndim != 3 or X.shape[1] != len(self.ch_names):
            raise ValueError(f"X of shape {X.shape}: expected [N, {len(self.ch_names)}, T] µV")
        return X

    def transform(self, X) -> np.ndarray:
        """[N, C, T] µV -> [N, D] float32."""
        from mdjpt_jax.inference import embedding

        result = embedding.embed(
            self._check(X),
            self._encoder(),
            ch_names=list(self.ch_names),
            fs=self.fs,
            step_s=self.step_s,
            max_missing=self.max_missing,
            verbose=False,
        )
        return result.features.mean(axis=1)
