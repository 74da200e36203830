"""Training-step benchmark of the mdJPT encoder: time, FLOPs and memory per configuration.

Measures one jitted training step (forward + backward + Adam) on the paper's batch shape:
2 datasets x 1 pair x 2 subjects x 15 windows = [S=4, W=15, 60, T] (60 windows), for global
and causal attention and several window lengths, side by side. Prints one JSON object.

    python bench/model_bench.py --variant paper --reps 3 --lengths 2.5 5 10 20

FLOPs come from XLA (`compiled.cost_analysis()`), memory from
`compiled.memory_analysis()`; times are medians of warm runs (compilation excluded).
"""

import argparse
import json
import os
import platform
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
    group_ids = jnp.repeat(jnp.arange(n_subjects), 1)  # one CDA group per subject block

    def loss_fn(params, x):
        out = nnx.merge(graphdef, params)(x)
        proj = out["projection"]                                   # [S, W, E]
        pairs = proj.reshape((n_subjects // 2, 2) + proj.shape[1:])
        clisa = jnp.sum(jax.vmap(losses.contrastive_loss)(pairs))
        mixed = out["mixed"]                                       # [S, W, F, C2, N]
        windows = mixed.reshape((-1,) + mixed.shape[2:])
        ids = jnp.repeat(group_ids, mixed.shape[1])
        return clisa + CDA_WEIGHT * losses.covariance_alignment_loss(windows, ids, n_subjects)

    def step(params, opt_state, x):
        loss, grads = jax.value_and_grad(loss_fn)(params, x)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def bench_one(variant, attention, seconds, fs, n_chans, n_subjects, n_windows, reps, chunk):
    n_times = int(seconds * fs)
    model = Encoder(n_chans, n_times, variant, attention, rngs=nnx.Rngs(params=0),
                    chunk_size=chunk)
    graphdef, params = nnx.split(model, nnx.Param)
    optimizer = optax.adam(5e-4)
    opt_state = optimizer.init(params)
    x = jax.random.normal(jax.random.key(1), (n_subjects, n_windows, n_chans, n_times))
    step = jax.jit(make_step(graphdef, optimizer, n_subjects), donate_argnums=(0, 1))
    t0 = time.perf_counter()
    compiled = step.lower(params, opt_state, x).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    mem = compiled.memory_analysis()
    flops = float(cost.get("flops", float("nan")))
    info = dict(attention=attention, window_s=seconds, n_times=n_times,
                n_tokens=model.n_tokens, compile_s=round(compile_s, 2),
                gflops=round(flops / 1e9, 2),
                temp_bytes_gib=round(mem.temp_size_in_bytes / 2**30, 3) if mem else None)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    if mem and mem.temp_size_in_bytes > 0.95 * ram:
        return dict(info, skipped=f"needs {mem.temp_size_in_bytes / 2**30:.1f} GiB temp, "
                                  f"{ram / 2**30:.1f} GiB RAM free")
    params, opt_state, loss = compiled(params, opt_state, x)      # warm-up
    jax.block_until_ready(loss)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        params, opt_state, loss = compiled(params, opt_state, x)
        jax.block_until_ready(loss)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return dict(info, step_s_median=round(median, 4), step_s_all=[round(t, 4) for t in times],
                achieved_gflops_per_s=round(flops / 1e9 / median, 2),
                loss=float(loss), finite=bool(np.isfinite(float(loss))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="paper")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--lengths", type=float, nargs="+", default=[2.5, 5.0, 10.0, 20.0],
                        help="window lengths in seconds")
    parser.add_argument("--attention", nargs="+", default=["global", "causal"])
    parser.add_argument("--fs", type=float, default=125.0, help="sampling rate (Hz)")
    parser.add_argument("--n_chans", type=int, default=60)
    parser.add_argument("--subjects", type=int, default=4, help="S = datasets x pairs x 2")
    parser.add_argument("--windows", type=int, default=15, help="W windows per subject")
    parser.add_argument("--chunk_size", type=int, default=64, help="causal scan chunk")
    args = parser.parse_args()

    runs = []
    for attention in args.attention:
        for seconds in args.lengths:
            runs.append(bench_one(args.variant, attention, seconds, args.fs, args.n_chans,
                                  args.subjects, args.windows, args.reps, args.chunk_size))
            print(json.dumps(runs[-1]), flush=True)
    slopes = {}
    for attention in args.attention:
        rows = [r for r in runs if r["attention"] == attention and "step_s_median" in r]
        if len(rows) >= 2:
            fit = np.polyfit([r["window_s"] for r in rows], [r["step_s_median"] for r in rows], 1)
            slopes[attention] = dict(seconds_per_window_second=round(float(fit[0]), 4),
                                     intercept_s=round(float(fit[1]), 4))
    print(json.dumps(dict(
        variant=args.variant, batch=dict(subjects=args.subjects, windows=args.windows,
                                         n_chans=args.n_chans, fs=args.fs),
        device=str(jax.devices()[0]), cpu_count=os.cpu_count(), machine=platform.machine(),
        runs=runs, linear_fit=slopes), indent=1))


if __name__ == "__main__":
    main()
