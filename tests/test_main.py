"""main.py's one dispatcher: an unknown mode and `--stream_probe` outside --mode=stream_probe
are errors that say what to do (each command stops before any work)."""

import pathlib
import subprocess
import sys

from mdjpt_jax import main

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_main(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mdjpt_jax.main", *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_mode_has_one_runner():
    assert list(main.MODE_RUNNERS) == [
        "pretrain", "extract", "probe", "finetune", "report", "all",
        "embed", "stream", "stream_probe", "compile",
    ]  # fmt: skip


def test_an_unknown_mode_is_an_error_listing_the_modes():
    done = run_main("--mode=pretrian", "--workdir=unused")
    assert done.returncode != 0
    assert "unknown --mode=pretrian" in done.stderr
    assert ", ".join(main.MODE_RUNNERS) in done.stderr


def test_stream_probe_with_the_probe_mode_says_to_use_its_own_mode(tmp_path):
    done = run_main(
        "--mode=probe",
        "--config=configs/downstream.py:synthetic",
        f"--workdir={tmp_path}",
        f"--stream_probe={tmp_path / 'p.npz'}",
    )
    assert done.returncode != 0
    assert "--stream_probe belongs to --mode=stream_probe" in done.stderr
    assert not (tmp_path / "p.npz").exists() and list(tmp_path.iterdir()) == []


def test_a_mode_names_the_flags_it_needs():
    done = run_main("--mode=stream_probe", "--config=configs/downstream.py:synthetic")
    assert done.returncode != 0
    assert "--mode=stream_probe needs --config, --encoder and --stream_probe" in done.stderr
