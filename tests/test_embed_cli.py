"""--mode=embed on EDF, BDF, FIF, BrainVision (written here with mne) and a BIDS root."""

import json
import os
import subprocess
import sys

import mne
import numpy as np
import pytest

from mdjpt_jax.inference import embedding
from tests.test_embed import EDF, export_tiny_encoder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return export_tiny_encoder(tmp_path_factory.mktemp("encoder"))


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """The real recording's first 20 s in four formats (EDF's record length divides it)."""
    folder = tmp_path_factory.mktemp("recordings")
    raw = mne.io.read_raw_edf(EDF, preload=True, verbose="error").crop(0, 20, include_tmax=False)
    paths = {"fif": str(folder / "rec_raw.fif")}
    raw.save(paths["fif"], verbose="error")
    for fmt, ext in (("edf", "edf"), ("bdf", "bdf"), ("brainvision", "vhdr")):
        paths[fmt] = str(folder / f"rec.{ext}")
        mne.export.export_raw(paths[fmt], raw, fmt=fmt, verbose="error")
    return raw, paths


def _load(path):
    with np.load(path) as f:
        return dict(
            features=f["features"],
            times=f["times"],
            report=json.loads(str(f["channel_report"])),
            provenance=json.loads(str(f["provenance"])),
        )


def test_every_format_gives_the_features_of_its_samples(recordings, encoder_dir, tmp_path):
    raw, paths = recordings
    outputs = {}
    for fmt, path in paths.items():
        out = embedding.run(
            encoder=encoder_dir, input_path=path, output=str(tmp_path / f"{fmt}.npz")
        )
        outputs[fmt] = _load(out)
        decoded = mne.io.read_raw(path, preload=True, verbose="error")  # what the file holds
        direct = embedding.embed(
            decoded.get_data() * 1e6, encoder_dir, ch_names=raw.ch_names, fs=160.0, verbose=False
        )
        np.testing.assert_allclose(outputs[fmt]["features"], direct.features, rtol=1e-5, atol=1e-5)
        assert outputs[fmt]["report"]["interpolated"] == ["PO5", "PO6"]
        assert outputs[fmt]["provenance"]["input"] == os.path.abspath(path)
        assert outputs[fmt]["provenance"]["encoder"]["step"] == 0
    reference = outputs["fif"]["features"]
    assert reference.shape == (10, 128) and np.all(np.diff(outputs["fif"]["times"]) == 2.0)
    scale = np.abs(reference).max()
    for fmt in ("edf", "bdf", "brainvision"):  # the same samples up to each format's precision
        np.testing.assert_allclose(outputs[fmt]["features"], reference, atol=2e-3 * scale)


def test_bids_root(recordings, encoder_dir, tmp_path):
    import mne_bids

    raw, paths = recordings
    bids_raw = mne.io.read_raw(paths["edf"], verbose="error")
    bids_raw.info["line_freq"] = 60.0
    root = tmp_path / "bids"
    mne_bids.write_raw_bids(
        bids_raw, mne_bids.BIDSPath(subject="01", task="rest", root=root), verbose="error"
    )
    out = embedding.run(
        encoder=encoder_dir,
        input_path=str(root),
        output=str(tmp_path / "b.npz"),
        bids_subject="01",
        bids_task="rest",
    )
    direct = embedding.run(
        encoder=encoder_dir, input_path=paths["edf"], output=str(tmp_path / "e.npz")
    )
    np.testing.assert_allclose(
        _load(out)["features"], _load(direct)["features"], rtol=1e-5, atol=1e-5
    )
    assert _load(out)["provenance"]["bids"] == dict(bids_subject="01", bids_task="rest")
    with pytest.raises(ValueError, match="directory"):
        embedding.run(encoder=encoder_dir, input_path=str(root), output=str(tmp_path / "x.npz"))


@pytest.mark.slow
def test_main_embed_command_line(recordings, encoder_dir, tmp_path):
    _, paths = recordings
    out = str(tmp_path / "cli.npz")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mdjpt_jax.main",
            "--mode=embed",
            f"--encoder={encoder_dir}",
            f"--input={EDF}",
            f"--output={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "58/60 matched, 2 interpolated, 6 dropped" in done.stdout
    assert _load(out)["features"].shape == (30, 128)  # 61 s, 2 s windows
    missing = subprocess.run(
        [sys.executable, "-m", "mdjpt_jax.main", "--mode=embed", f"--encoder={encoder_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode != 0 and "--input" in missing.stderr
