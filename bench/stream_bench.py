"""Live-stream decoding benchmark: compute per second of EEG, and end-to-end latency.

1. Real-time factor: a StreamDecoder (inference/decoder.py) with a randomly initialised causal
   encoder of each variant (60 channels, 5 s windows at 125 Hz for `paper`, 2 s for `tiny`)
   decodes `--seconds` s of 60-channel noise at `--fs` Hz pushed in `--chunk_s` chunks
   (the whole path: causal resampling and band-pass, channel encoder with carried state,
   running normalizations, dynamics, window feature, probe-free); compilation is excluded
   (a warm-up pass first). The process is pinned to one core (os.sched_setaffinity) and
   XLA runs single-threaded. `compute_ms_per_s` = wall ms of decoding per second of
   signal, `real_time_factor` = 1000 / compute_ms_per_s (how many such streams one core
   could follow).
2. Latency: the real recording tests/data/eegmmidb_S001R02.edf (64 channels, 160 Hz)
   cropped to `--replay_s` s is replayed over LSL (mne_lsl PlayerLSL, chunks of
   `--replay_chunk` samples; PlayerLSL stamps a chunk's last sample with the end of the
   chunk's play period, up to one chunk ahead of the push, so the default is 1 sample)
   and decoded in the same process by `lsl.run` with the
   tiny encoder; per output, latency = local LSL clock when the output is sent - the LSL
   timestamp of the newest input sample it includes (`latency_ms_*`), and of the oldest
   sample it includes for the first time (`first_sample_latency_ms_*`: adds up to one hop).
   The resampler's FIR delay (80 ms at 160 -> 125 Hz) is inside the signal, not counted.

    python bench/stream_bench.py                              # defaults below, ~3 min
    python bench/stream_bench.py --seconds 10 --replay_s 15   # a small run

Prints one JSON object. On a shared machine, numbers vary with the load (`load_avg`).
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    " intra_op_parallelism_threads=1"
).strip()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if hasattr(os, "sched_setaffinity"):  # one core, before XLA starts its threads
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from mdjpt_jax import channels, checkpointing, encoder_info  # noqa: E402
from mdjpt_jax.inference import (
    lsl,  # noqa: E402
    stream_probe,  # noqa: E402
)
from mdjpt_jax.inference.decoder import StreamDecoder, hop_tokens  # noqa: E402
from mdjpt_jax.models import Encoder  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EDF = os.path.join(ROOT, "tests", "data", "eegmmidb_S001R02.edf")
CH_NAMES = channels.UNIFIED_SETS["seed60"]
WINDOW_S = {"paper": 5.0, "tiny": 2.0}
ENC_FS = 125.0


def causal_encoder(variant: str):
    kwargs = dict(
        n_chans=60, n_times=int(WINDOW_S[variant] * ENC_FS), variant=variant, attention="causal"
    )
    model = Encoder(**kwargs, rngs=nnx.Rngs(params=0))
    info = dict(
        kwargs,
        ch_names=CH_NAMES,
        fs=ENC_FS,
        window_s=WINDOW_S[variant],
        datasets=[],
        step=0,
        **encoder_info.derived_fields(fs=ENC_FS, feature_dim=model.feature_dim, code="bench"),
    )
    return model, kwargs, info


def real_time_factor(
    variant: str, *, fs: float, seconds: float, chunk_s: float, hop_s: float
) -> dict:
    model, _, info = causal_encoder(variant)
    settings = stream_probe.PipelineSettings(hop_tokens(model, ENC_FS, hop_s))
    eeg = np.random.default_rng(0).normal(0.0, 20.0, (60, int((seconds + 10) * fs)))
    chunk = max(1, int(round(chunk_s * fs)))

    def decode(n_samples):
        decoder = StreamDecoder(model, info, ch_names=CH_NAMES, fs=fs, settings=settings, log=None)
        start = time.perf_counter()
        outputs = 0
        for i in range(0, n_samples, chunk):
            outputs += len(decoder.push(eeg[:, i : i + chunk]))
        return time.perf_counter() - start, outputs

    decode(int(min(seconds, WINDOW_S[variant] + 4 * hop_s) * fs))  # compile
    elapsed, outputs = decode(int(seconds * fs))
    per_s = elapsed / seconds
    return dict(
        variant=variant,
        fs=fs,
        seconds=seconds,
        chunk_s=chunk_s,
        hop_s=settings.hop_tokens * model.channel_encoder.patch_stride / ENC_FS,
        outputs=outputs,
        compute_ms_per_s=round(per_s * 1e3, 2),
        real_time_factor=round(1.0 / per_s, 1),
    )


def latency(*, replay_s: float, replay_chunk: int, hop_s: float) -> dict:
    import mne

    model, kwargs, info = causal_encoder("tiny")
    with tempfile.TemporaryDirectory() as tmp:
        encoder_dir = os.path.join(tmp, "encoder")
        extra = {k: v for k, v in info.items() if k not in kwargs}
        checkpointing.export_encoder(
            encoder_dir, model, model_kwargs=kwargs, extra=extra, config={}
        )
        raw = mne.io.read_raw_edf(EDF, preload=True, verbose="error")
        recording = os.path.join(tmp, "replay_raw.fif")
        raw.crop(0, replay_s, include_tmax=False).save(recording, verbose="error")
        result = lsl.run(
            encoder=encoder_dir,
            probe_path=None,
            stream_name=f"mdjpt-bench-{os.getpid()}",
            replay=recording,
            hop_s=hop_s,
            replay_chunk=replay_chunk,
            idle_timeout_s=2.0,
            verbose=False,
        )
    predictions = result["predictions"][1:]  # the first one covers the warm-up window
    newest = np.array([p.emitted - p.time for p in predictions]) * 1e3
    oldest = np.array([p.emitted - p.first_time for p in predictions]) * 1e3

    def stats(x):
        return dict(
            median=round(float(np.median(x)), 1),
            p95=round(float(np.percentile(x, 95)), 1),
            max=round(float(np.max(x)), 1),
        )

    return dict(
        recording="tests/data/eegmmidb_S001R02.edf",
        replay_s=replay_s,
        replay_chunk=replay_chunk,
        encoder="tiny (random init, causal)",
        hop_s=result["summary"]["hop_s"],
        outputs=len(result["predictions"]),
        latency_ms=stats(newest),
        first_sample_latency_ms=stats(oldest),
        summary={
            k: result["summary"][k] for k in ("samples", "predictions", "nan_samples", "resets")
        },
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="*", default=["tiny", "paper"])
    parser.add_argument("--fs", type=float, default=250.0, help="input rate, Hz")
    parser.add_argument("--seconds", type=float, default=60.0, help="signal per variant, s")
    parser.add_argument("--chunk_s", type=float, default=0.1, help="push size, s")
    parser.add_argument("--hop_s", type=float, default=1.0)
    parser.add_argument("--replay_s", type=float, default=30.0)
    parser.add_argument("--replay_chunk", type=int, default=1)
    args = parser.parse_args()
    out = dict(
        platform=platform.processor() or platform.machine(),
        load_avg=os.getloadavg()[0],
        cores_used=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        xla_flags=os.environ["XLA_FLAGS"],
    )
    out["real_time"] = [
        real_time_factor(
            v, fs=args.fs, seconds=args.seconds, chunk_s=args.chunk_s, hop_s=args.hop_s
        )
        for v in args.variants
    ]
    if args.replay_s > 0:
        out["latency"] = latency(
            replay_s=args.replay_s, replay_chunk=args.replay_chunk, hop_s=args.hop_s
        )
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
