"""embedding.py: mdjpt_jax.embed on the real BCI2000 recording, numpy arrays and epochs."""

import os

import mne
import numpy as np
import pytest
from flax import nnx
from scipy import signal

import mdjpt_jax
from mdjpt_jax import channels, checkpointing, contract
from mdjpt_jax.models import Encoder

EDF = os.path.join(os.path.dirname(__file__), "data", "eegmmidb_S001R02.edf")
SEED60 = channels.UNIFIED_SETS["seed60"]
# A randomly initialised tiny encoder: 2 s windows at 125 Hz on seed60.
MODEL_KWARGS = dict(n_chans=60, n_times=250, variant="tiny", attention="global")
EXTRA = dict(ch_names=SEED60, fs=125.0, window_s=2.0, step=0, datasets=["none"])


def export_tiny_encoder(path, seed=0, config=None) -> str:
    """Exports a random tiny encoder (tests only need the contract, not trained weights)."""
    model = Encoder(**MODEL_KWARGS, rngs=nnx.Rngs(params=seed))
    checkpointing.export_encoder(
        str(path), model, model_kwargs=MODEL_KWARGS, extra=EXTRA, config=config
    )
    return str(path)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return export_tiny_encoder(tmp_path_factory.mktemp("encoder"))


@pytest.fixture(scope="module")
def encoder(encoder_dir):
    return mdjpt_jax.load_encoder(encoder_dir)


@pytest.fixture(scope="module")
def raw():
    return mne.io.read_raw_edf(EDF, preload=True, verbose="error").crop(0, 20, include_tmax=False)


def naive_features(model, eeg_uv, names, fs):
    """Reference: hand-written preprocessing, projection and ONE block of all windows."""
    x = eeg_uv - eeg_uv.mean(axis=-1, keepdims=True)
    x = signal.resample_poly(x, 25, 32, axis=-1)  # 160 -> 125 Hz
    sos = signal.butter(4, [0.5, 47.0], btype="bandpass", fs=125.0, output="sos")
    x = signal.sosfiltfilt(sos, x, axis=-1, padlen=27)
    x = channels.projection_matrix(names, SEED60) @ x
    starts = np.arange(0, x.shape[-1] - 250 + 1, 250)  # step_s = 2 s
    windows = np.stack([x[:, s : s + 250] for s in starts]).astype(np.float32)
    return np.asarray(model.embed(windows[None]))[0], starts / 125.0


def test_raw_in_volts_equals_array_in_microvolts_and_a_naive_reference(raw, encoder):
    result = mdjpt_jax.embed(raw, encoder, step_s=2.0)
    assert result.features.shape == (10, encoder[0].feature_dim)
    assert result.report.interpolated == ["PO5", "PO6"] and len(result.report.dropped) == 6
    as_array = mdjpt_jax.embed(
        raw.get_data() * 1e6, encoder, ch_names=raw.ch_names, fs=160.0, step_s=2.0, verbose=False
    )
    np.testing.assert_allclose(as_array.features, result.features, rtol=1e-6, atol=1e-6)
    reference, times = naive_features(encoder[0], raw.get_data() * 1e6, raw.ch_names, 160.0)
    np.testing.assert_allclose(result.features, reference, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(result.times, times)
    again = mdjpt_jax.embed(raw, encoder, step_s=2.0, verbose=False)  # deterministic
    np.testing.assert_array_equal(again.features, result.features)
    other = (Encoder(**MODEL_KWARGS, rngs=nnx.Rngs(params=1)), encoder[1])  # can fail
    assert not np.allclose(
        mdjpt_jax.embed(raw, other, step_s=2.0, verbose=False).features, result.features, atol=1e-3
    )


def test_epochs_give_one_row_of_windows_per_epoch(raw, encoder):
    data = raw.get_data()[:, :1600].reshape(64, 2, 800).transpose(1, 0, 2)  # 2 epochs of 5 s
    epochs = mne.EpochsArray(data, raw.info, verbose="error")
    result = mdjpt_jax.embed(epochs, encoder, step_s=1.0, verbose=False)
    assert result.features.shape == (2, 4, encoder[0].feature_dim)  # 2 s windows in 5 s
    np.testing.assert_array_equal(result.times, [0.0, 1.0, 2.0, 3.0])
    as_array = mdjpt_jax.embed(
        data * 1e6, encoder, ch_names=raw.ch_names, fs=160.0, step_s=1.0, verbose=False
    )
    np.testing.assert_allclose(as_array.features, result.features, rtol=1e-6, atol=1e-6)


def test_errors_name_the_problem(raw, encoder):
    uv, names = raw.get_data() * 1e6, raw.ch_names
    with pytest.raises(ValueError, match=r"lacks .*missing \[.*'O2'"):  # too few channels
        mdjpt_jax.embed(uv[:20], encoder, ch_names=names[:20], fs=160.0)
    renamed = names[:-1] + ["Bogus7"]
    with pytest.raises(ValueError, match="Bogus7"):  # unknown name
        mdjpt_jax.embed(uv, encoder, ch_names=renamed, fs=160.0)
    nan = uv.copy()
    nan[5, 1600:1700] = np.nan
    nan[9, 1650] = np.inf
    with pytest.raises(ValueError, match=r"t = 10\.000 s .*sample 1600, channel Fc4\."):
        mdjpt_jax.embed(nan, encoder, ch_names=names, fs=160.0)
    with pytest.raises(ValueError, match="fs=50"):  # wrong rate
        mdjpt_jax.embed(uv, encoder, ch_names=names, fs=50.0)
    with pytest.raises(ValueError, match="disagrees"):
        mdjpt_jax.embed(raw, encoder, fs=256.0)
    with pytest.raises(ValueError, match="ch_names and fs"):
        mdjpt_jax.embed(uv, encoder, ch_names=names)
    with pytest.raises(ValueError, match="window"):
        mdjpt_jax.embed(raw, encoder, window_s=5.0)
    with pytest.raises(ValueError, match="shorter"):
        mdjpt_jax.embed(uv[:, :200], encoder, ch_names=names, fs=160.0)
    with pytest.warns(contract.AmplitudeWarning, match="volts"):  # unit error
        mdjpt_jax.embed(raw.get_data()[:, :480], encoder, ch_names=names, fs=160.0, verbose=False)


def test_loader_is_public_and_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, mdjpt_jax; assert 'jax' not in sys.modules; "
        "assert callable(mdjpt_jax.embed) and callable(mdjpt_jax.load_encoder)"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__))
    )


def test_encoder_card_states_the_contract(encoder_dir):
    with open(os.path.join(encoder_dir, "README.md"), encoding="utf-8") as f:
        card = f.read()
    assert " ".join(SEED60) in card
    assert "125 Hz" in card and "250 samples = 2 s" in card and "µV" in card
    assert "0.5-47 Hz" in card and "mdjpt_jax.load_encoder" in card
    assert "Not recorded." in card  # exported without a config
    dim = mdjpt_jax.load_encoder(encoder_dir)[0].feature_dim
    assert f"features [W, {dim}]" in card and "code version `" in card
    workdir = os.path.dirname(encoder_dir)
    export_tiny_encoder(os.path.join(workdir, "encoder2"), config={"train": {"steps": 123}})
    with open(os.path.join(workdir, "encoder2", "README.md"), encoding="utf-8") as f:
        assert '"steps": 123' in f.read()


def test_embed_defaults_are_extractions():
    """One table (configs/downstream.py EXTRACT_DEFAULTS) for extraction and embedding, with
    the numbers they always had."""
    from mdjpt_jax.configs import downstream
    from mdjpt_jax.inference import embedding

    ex = downstream.get_config().extract
    embedded = (embedding.STEP_S, embedding.WINDOWS_PER_BLOCK, embedding.BLOCKS_PER_CALL)
    assert embedded + (embedding.SEED,) == (2.0, 64, 1, 0)
    assert embedded + (embedding.SEED,) == (
        ex.step_s,
        ex.windows_per_block,
        ex.blocks_per_call,
        ex.seed,
    )
    assert ex.window_s == 5.0
