"""Training-step benchmark of the mdJPT encoder: time, FLOPs and memory per configuration.

Measures one jitted training step -- forward + backward (contrastive + 0.01 x CDA loss) +
`optax.adamw` update -- on the paper's batch: 2 datasets x 1 pair x 2 subjects x 15
windows = [S=4, W=15, 60, T] (60 windows, 3600 channel sequences), for global and causal
attention and several window lengths, then compares channel-encoder remat chunk sizes side
by side. Prints one JSON line per run, then one JSON summary (also when stopped by
`timeout`: the running step finishes, the summary covers the runs done).

    timeout 900 python bench/model_bench.py                    # defaults below
    python bench/model_bench.py --attention global --lengths 5 --compare 0 8 32  # + remat sweep

Columns: `step_s_median` wall seconds per step (median of warm runs, compilation
excluded); `cpu_s_median` process CPU seconds per step (all threads; less sensitive to
other processes on a shared machine: wall ~ cpu / cores on an idle one); `model_gflops`
FLOPs of one step without rematerialization (XLA cost analysis of the unchunked program;
the chunked program counts its loop body once, so its own count is not reported);
`temp_gib` XLA temp buffer size of the compiled step (the activation memory);
`load_avg` the 1-minute load average before the run. XLA flags are read from XLA_FLAGS
(none are needed; record them with the result when you set any).
"""

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from mdjpt_jax import losses  # noqa: E402
from mdjpt_jax.models import Encoder  # noqa: E402

CDA_WEIGHT = 0.01


def make_step(graphdef, optimizer, n_subjects):
    """Pure step(params, opt_state, x) -> (params, opt_state, loss) on x [S, W, C, T]."""

    def loss_fn(params, x):
        out = nnx.merge(graphdef, params)(x)
        proj = out["projection"]  # [S, W, E]
        pairs = proj.reshape((n_subjects // 2, 2) + proj.shape[1:])
        clisa = jnp.sum(jax.vmap(losses.contrastive_loss)(pairs))
        mixed = out["mixed"]  # [S, W, F, C2, N]
        windows = mixed.reshape((-1,) + mixed.shape[2:])
        ids = jnp.repeat(jnp.arange(n_subjects), mixed.shape[1])  # CDA group = subject
        return clisa + CDA_WEIGHT * losses.covariance_alignment_loss(windows, ids, n_subjects)

    def step(params, opt_state, x):
        loss, grads = jax.value_and_grad(loss_fn)(params, x)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def _setup(args, attention, seconds, remat_chunk):
    n_times = int(seconds * args.fs)
    model = Encoder(
        args.n_chans,
        n_times,
        args.variant,
        attention,
        rngs=nnx.Rngs(params=0),
        chunk_size=args.chunk_size,
        remat_chunk=remat_chunk,
    )
    graphdef, params = nnx.split(model, nnx.Param)
    optimizer = optax.adamw(5e-4)
    opt_state = optimizer.init(params)
    x = jax.random.normal(jax.random.key(1), (args.subjects, args.windows, args.n_chans, n_times))
    step = jax.jit(make_step(graphdef, optimizer, args.subjects), donate_argnums=(0, 1))
    return model, step, params, opt_state, x


def model_gflops(args, attention, seconds):
    """FLOPs of one step without remat (unoptimized HLO of the unchunked program)."""
    _, step, params, opt_state, x = _setup(args, attention, seconds, None)
    cost = step.lower(params, opt_state, x).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan"))) / 1e9


def _timed_runs(compiled, params, opt_state, x, reps):
    params, opt_state, loss = compiled(params, opt_state, x)  # warm-up
    jax.block_until_ready(loss)
    walls, cpus = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        params, opt_state, loss = compiled(params, opt_state, x)
        jax.block_until_ready(loss)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return walls, cpus, float(loss)


def bench_one(args, attention, seconds, remat_chunk, gflops):
    """Compiles and times one configuration; returns a JSON-able dict."""
    model, step, params, opt_state, x = _setup(args, attention, seconds, remat_chunk)
    t0 = time.perf_counter()
    compiled = step.lower(params, opt_state, x).compile()
    mem = compiled.memory_analysis()
    temp = mem.temp_size_in_bytes if mem else 0
    info = dict(
        attention=attention,
        window_s=seconds,
        n_times=x.shape[-1],
        n_tokens=model.n_tokens,
        remat_chunk=remat_chunk,
        compile_s=round(time.perf_counter() - t0, 2),
        model_gflops=round(gflops, 1),
        temp_gib=round(temp / 2**30, 3),
        load_avg=round(os.getloadavg()[0], 2),
    )
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    if temp > 0.9 * ram:
        return dict(
            info, skipped=f"needs {temp / 2**30:.1f} GiB temp, {ram / 2**30:.1f} GiB RAM free"
        )
    walls, cpus, loss = _timed_runs(compiled, params, opt_state, x, args.reps)
    median = statistics.median(walls)
    return dict(
        info,
        step_s_median=round(median, 3),
        step_s_all=[round(t, 2) for t in walls],
        cpu_s_median=round(statistics.median(cpus), 3),
        achieved_gflops_per_s=round(gflops / median, 1),
        loss=loss,
        finite=bool(np.isfinite(loss)),
    )


def linear_fits(runs, attentions):
    """Least-squares step time (s) = slope x window (s) + intercept, per attention."""
    fits = {}
    for attention in attentions:
        rows = [r for r in runs if r["attention"] == attention and "step_s_median" in r]
        if len(rows) >= 2:
            xs = [r["window_s"] for r in rows]
            fit = np.polyfit(xs, [r["step_s_median"] for r in rows], 1)
            cpu = np.polyfit(xs, [r["cpu_s_median"] for r in rows], 1)
            fits[attention] = dict(
                wall_s_per_window_s=round(float(fit[0]), 3),
                wall_intercept_s=round(float(fit[1]), 3),
                cpu_s_per_window_s=round(float(cpu[0]), 3),
                cpu_intercept_s=round(float(cpu[1]), 3),
            )
    return fits


def _chunk(text):
    return None if text.lower() in ("0", "none") else int(text)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="paper")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--lengths",
        type=float,
        nargs="+",
        default=[2.5, 5.0, 10.0, 20.0],
        help="window lengths in seconds (for the linear fit)",
    )
    parser.add_argument("--attention", nargs="+", default=["global", "causal"])
    parser.add_argument(
        "--remat_chunk",
        type=_chunk,
        default=16,
        help="channel sequences per remat chunk for the length sweep",
    )
    parser.add_argument(
        "--compare",
        type=_chunk,
        nargs="*",
        default=[],
        help="remat chunks (0 = none) to compare at 5 s, global attention",
    )
    parser.add_argument("--fs", type=float, default=125.0, help="sampling rate (Hz)")
    parser.add_argument("--n_chans", type=int, default=60)
    parser.add_argument("--subjects", type=int, default=4, help="S = datasets x pairs x 2")
    parser.add_argument("--windows", type=int, default=15, help="W windows per subject")
    parser.add_argument("--chunk_size", type=int, default=64, help="causal scan chunk")
    return parser.parse_args()


def _stop(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    args = parse_args()
    gflops, sweep, compared = {}, [], []

    def run(rows, attention, seconds, chunk):
        if (attention, seconds) not in gflops:
            gflops[attention, seconds] = model_gflops(args, attention, seconds)
        rows.append(bench_one(args, attention, seconds, chunk, gflops[attention, seconds]))
        print(json.dumps(rows[-1]), flush=True)

    # `timeout` sends SIGTERM: stop after the running step and still print the summary.
    signal.signal(signal.SIGTERM, _stop)
    try:
        for attention in args.attention:
            for seconds in args.lengths:
                run(sweep, attention, seconds, args.remat_chunk)
        for chunk in args.compare:
            run(compared, "global", 5.0, chunk)
    except KeyboardInterrupt as stop:
        print(json.dumps(dict(interrupted=str(stop))), flush=True)
    print(
        json.dumps(
            dict(
                variant=args.variant,
                batch=dict(
                    subjects=args.subjects, windows=args.windows, n_chans=args.n_chans, fs=args.fs
                ),
                step="forward+backward+adamw",
                device=str(jax.devices()[0]),
                cpu_count=os.cpu_count(),
                machine=platform.machine(),
                jax=jax.__version__,
                xla_flags=os.environ.get("XLA_FLAGS", ""),
                runs=sweep,
                linear_fit=linear_fits(sweep, args.attention),
                remat_compare=compared,
            ),
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
