"""Extraction throughput: windows.learned_features on 1 vs N devices, per subject vs packed.

Times the extraction path itself (gather windows on the host, copy, the sharded jitted
`encoder.embed`, read back) on synthetic subjects, warm (a one-subject run first compiles
the call's shape), and prints one JSON object with, for every case, device count and mode:
windows/s (best of --reps runs) and the largest difference of the features from the
unsharded run. Modes:

    per_subject  one learned_features run per subject: no call mixes subjects, as in the
                 code before issue 22 item 2 (same calls, through today's sharded
                 function), so every subject's last call is padded;
    packed       one run over all subjects: calls pack blocks of several subjects, padding
                 only at the end.

Each call holds `--blocks_per_call` blocks rounded up to a multiple of the device count
(the default 1: one block per device, extraction's default). Cases (the real shapes, few
windows per subject to keep a CPU run short):

    tiny   the demo's encoder: 19 channels x 2 s at 125 Hz, blocks of 64 windows;
    paper  the paper encoder: 60 channels x 5 s at 125 Hz, blocks of 8 windows.

    python bench/extract_bench.py                      # both cases, 1 and 8 devices
    python bench/extract_bench.py --cases tiny --devices 1 2 4 8

Every device count runs in its own process: on CPU, N > 1 devices are simulated (XLA_FLAGS,
set before jax is imported) and share the machine's cores, so they exercise the
multi-device path without making it faster; on a GPU/TPU host the first N real devices are
used. `max_abs_diff_vs_unsharded` compares each row's features with those of the same case
on 1 device, packed.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

CASES = {
    "tiny": dict(
        variant="tiny",
        n_chans=19,
        window_s=2.0,
        windows_per_block=64,
        subjects=6,
        windows_per_subject=150,
    ),
    "paper": dict(
        variant="paper",
        n_chans=60,
        window_s=5.0,
        windows_per_block=8,
        subjects=3,
        windows_per_subject=12,
    ),
}
FS = 125.0


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--devices", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--blocks_per_call", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3, help="timed runs per mode (best kept)")
    parser.add_argument("--platform", default="cpu", help="JAX_PLATFORMS unless already set")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--features_dir", default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


ARGS = _parse()
if ARGS.child is not None:
    os.environ.setdefault("JAX_PLATFORMS", ARGS.platform)
    if ARGS.child > 1 and os.environ["JAX_PLATFORMS"] == "cpu":
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_force_host_platform_device_count={ARGS.child}"
        )
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from mdjpt_jax import windows  # noqa: E402
from mdjpt_jax.models import Encoder  # noqa: E402


def synthetic_trials(case: dict, seed: int = 0) -> list:
    """One trial per subject, `windows_per_subject` back-to-back windows long, N(0, 10 µV)."""
    rng = np.random.default_rng(seed)
    shape = (case["n_chans"], case["windows_per_subject"] * int(case["window_s"] * FS))
    return [
        dict(
            eeg=10 * rng.standard_normal(shape, np.float32),
            subject=subject,
            session=0,
            trial=0,
            stimulus=0,
            label=0,
            valence=0,
        )
        for subject in range(case["subjects"])
    ]


def extract(encoder, trials: list, tables: list, settings: dict) -> tuple:
    """One learned_features run per window table (all subjects, or one each).

    Returns:
        (features [N, D] in the tables' order, seconds, calls, windows embedded: kept,
        overlapping and padding windows of every call).
    """
    start = time.perf_counter()
    feats = np.concatenate(
        [windows.learned_features(encoder, trials, table, **settings) for table in tables]
    )
    seconds = time.perf_counter() - start
    per_call = windows.call_size(settings["blocks_per_call"], settings["num_devices"])
    calls = [
        call
        for table in tables
        for call in windows.block_calls(
            table,
            windows_per_block=settings["windows_per_block"],
            blocks_per_call=per_call,
            seed=settings["seed"],
        )
    ]
    embedded = sum(len(rows) for call in calls for rows, _ in call)
    return feats, seconds, len(calls), embedded


def bench_case(name: str, devices: int) -> list:
    """Rows of one case on `devices` devices, one per mode; saves each mode's features."""
    case = CASES[name]
    n_times = int(case["window_s"] * FS)
    encoder = Encoder(case["n_chans"], n_times, case["variant"], rngs=nnx.Rngs(params=0))
    trials = synthetic_trials(case)
    table = windows.window_table(trials, n_times, n_times)  # back-to-back windows
    subjects = [
        {key: value[table["subject"] == s] for key, value in table.items()}
        for s in range(case["subjects"])
    ]
    settings = dict(
        window=n_times,
        windows_per_block=case["windows_per_block"],
        blocks_per_call=ARGS.blocks_per_call,
        seed=0,
        num_devices=devices,
        progress=False,
    )
    compile_s = extract(encoder, trials, subjects[:1], settings)[1]  # compiles the shape
    modes = {"per_subject": subjects, "packed": [table]}
    runs = {mode: [] for mode in modes}
    for _ in range(ARGS.reps):  # modes interleaved: load from elsewhere hits both alike
        for mode, tables in modes.items():
            runs[mode].append(extract(encoder, trials, tables, settings))
    rows = []
    for mode, results in runs.items():
        feats, _, calls, embedded = results[0]
        seconds = min(result[1] for result in results)
        np.save(os.path.join(ARGS.features_dir, f"{name}_{devices}_{mode}.npy"), feats)
        rows.append(
            dict(
                case=name,
                devices=devices,
                mode=mode,
                **case,
                n_times=n_times,
                calls=calls,
                windows_embedded=embedded,
                compile_and_first_subject_s=round(compile_s, 2),
                seconds=round(seconds, 3),
                seconds_all=[round(result[1], 3) for result in results],
                windows_per_s=round(len(feats) / seconds, 1),
                device_kind=jax.devices()[0].device_kind,
            )
        )
    return rows


def run_parent(args) -> None:
    """One child process per device count; compares every row's features with the case's
    1-device packed ones; prints the JSON."""
    rows = []
    with tempfile.TemporaryDirectory() as features_dir:
        for devices in sorted(set(args.devices) | {1}):
            command = [sys.executable, os.path.abspath(__file__), "--child", str(devices)]
            command += ["--features_dir", features_dir, "--cases", *args.cases]
            command += ["--blocks_per_call", str(args.blocks_per_call)]
            command += ["--platform", args.platform]
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            rows += json.loads(done.stdout.strip().splitlines()[-1])
        for row in rows:
            got, unsharded = (
                np.load(os.path.join(features_dir, f"{row['case']}_{n}_{mode}.npy"))
                for n, mode in ((row["devices"], row["mode"]), (1, "packed"))
            )
            row["max_abs_diff_vs_unsharded"] = float(np.abs(got - unsharded).max())
            row["bit_identical_vs_unsharded"] = bool(np.array_equal(got, unsharded))
            row["max_abs_feature"] = float(np.abs(unsharded).max())
    print(
        json.dumps(
            dict(
                bench="extract",
                devices=sorted(set(args.devices) | {1}),
                platform=args.platform,
                cpu_count=os.cpu_count(),
                machine=platform.machine(),
                results=rows,
            ),
            indent=1,
        )
    )


if __name__ == "__main__":
    if ARGS.child is None:
        run_parent(ARGS)
    else:  # one device count: the rows of every case, as one JSON line
        print(json.dumps([row for name in ARGS.cases for row in bench_case(name, ARGS.child)]))
