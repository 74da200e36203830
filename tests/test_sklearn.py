"""sklearn.py: EncoderTransformer inside a pipeline under cross_val_score."""

import numpy as np
import pytest
from mdjpt_jax.inference.sklearn import EncoderTransformer
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mdjpt_jax
from tests.test_embed import SEED60, export_tiny_encoder


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return export_tiny_encoder(tmp_path_factory.mktemp("encoder"))


def _epochs(n=24, seed=0):
    """[n, 60, 250] µV at 125 Hz: class 1 carries a strong 10 Hz rhythm over the back."""
    rng = np.random.default_rng(seed)
    x = 10.0 * rng.standard_normal((n, len(SEED60), 250))
    y = np.arange(n) % 2
    t = np.arange(250) / 125.0
    back = [i for i, c in enumerate(SEED60) if c.startswith(("O", "PO"))]
    x[np.ix_(y == 1, back)] += 40.0 * np.sin(2 * np.pi * 10.0 * t)
    return x, y


def test_pipeline_under_cross_val_score(encoder_dir):
    x, y = _epochs()
    transformer = EncoderTransformer(encoder_dir, SEED60, fs=125.0)
    pipe = make_pipeline(transformer, StandardScaler(), LogisticRegression(max_iter=1000))
    scores = cross_val_score(pipe, x, y, cv=StratifiedKFold(3, shuffle=True, random_state=0))
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    assert scores.mean() > 0.7, scores  # the rhythm survives a random encoder
    features = clone(transformer).fit(x, y).transform(x)
    direct = mdjpt_jax.embed(x, encoder_dir, ch_names=SEED60, fs=125.0, verbose=False)
    np.testing.assert_allclose(features, direct.features.mean(axis=1), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected \[N, 60, T\]"):
        transformer.transform(x[0])
