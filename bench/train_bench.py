"""Full train-step benchmark: mdjpt_jax.pretrain.train_step (fwd + bwd + psum + AdamW) on N devices.

Times the real jitted, sharded step (`train_step.make_train_step`) warm, after its
compilation, and prints one JSON object: median seconds per step and windows per second
for each case. Cases:

    issue  the issue's measurement: 2 datasets x 1 pair x 2 subjects x 15 windows of
           60 channels x 5 s at 125 Hz, "paper" encoder (--torch_original times the
           original PyTorch code on it: README, Benchmarks);
    demo   the synthetic demo's shape: 3 datasets x 8 pairs x 2 x 4 windows of
           19 channels x 2 s at 125 Hz, "tiny" encoder.

    python bench/train_bench.py --devices 1                     # both cases, 1 device
    python bench/train_bench.py --devices 8 --pairs 8           # 8 simulated CPU devices
    python bench/train_bench.py --cases issue --reps 5
    python bench/train_bench.py --cases issue --dtypes float32 bfloat16   # mixed precision
    python bench/train_bench.py --cases demo --windows 2 --reps 1        # quick smoke run

--remat_policies runs every case once per rematerialization policy of the channel encoder
(model.remat_policy: full | dots | none, models/mlla.py), side by side: step time, the
compiled step's peak memory (XLA memory analysis) and the
executed GFLOP (the step without remat, plus the channel encoder's forward once more for
`full`; `dots` recomputes only elementwise work). Peak memory is
`pretrain/remat_choice.step_memory_bytes`, the figure `model.remat_policy="auto"` compares
with `train.memory_budget_gib`. A policy whose compiled step needs more
than --memory_budget_gib is compiled and reported but not run; the JSON names the fastest
policy that fits:

    python bench/train_bench.py --cases issue --remat_policies full dots none --reps 2

--profile traces one more step per case and splits its wall time into matmul / other-only /
idle, with the top operations (bench/step_profile.py):

    python bench/train_bench.py --cases issue --remat_policies dots full --reps 2 --profile

--dtypes runs every case once per compute dtype (model.dtype; bfloat16 = bf16 activations
and matmuls, float32 parameters and optimizer), side by side in the one JSON.

--devices N > 1 on CPU simulates N devices (XLA_FLAGS, set before jax is imported); on a
GPU/TPU host the first N real devices are used. The pairs P must be divisible by N
(--pairs overrides every case's P).

--torch_original PATH also times the original PyTorch code (ncclab-sustech/mdJPT_nips2025,
the user's own clone at PATH; nothing of it is in this repository) on the same shapes in the
same process, after the JAX cases: its MultiModel_PL training_step + backward + Adam, float32,
one pair per dataset (the original's batch), warm, median over --reps; the JSON gains
`torch` (versions, threads, import shims), `torch_results` and `comparison` (torch_s / jax_s
per case, torch variant and JAX dtype). Variants (--torch_variants): `published` = the released code, whose
MLLA layer returns before its attention/FFN output (dead in backward); `full_block` = the
same model with the layer's full output, the work our MLLABlock does. See
bench/torch_original.py. torch is not a project requirement; use a separate venv:

    python -m venv /tmp/venv-torch
    /tmp/venv-torch/bin/pip install -r requirements.txt torch==2.13.0
    git clone https://github.com/ncclab-sustech/mdJPT_nips2025 /tmp/mdjpt_original
    /tmp/venv-torch/bin/python bench/train_bench.py --cases issue --reps 3 \
        --dtypes float32 bfloat16 --torch_original /tmp/mdjpt_original

Both frameworks use all the machine's cores (--threads, default os.cpu_count()): torch via
torch.set_num_threads; XLA:CPU's thread pool is sized to the cores by default.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

CASES = {
    "issue": dict(variant="paper", datasets=2, pairs=1, windows=15, n_chans=60, window_s=5.0),
    "demo": dict(variant="tiny", datasets=3, pairs=8, windows=4, n_chans=19, window_s=2.0),
}
FS = 125.0


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=None, help="override P of every case")
    parser.add_argument("--attention", default="global", choices=("global", "causal"))
    parser.add_argument("--reps", type=int, default=3, help="timed warm steps per case")
    parser.add_argument(
        "--dtypes",
        nargs="+",
        default=["float32"],
        choices=("float32", "bfloat16"),
        help="compute dtypes to compare",
    )
    parser.add_argument(
        "--windows",
        type=int,
        default=None,
        help="override M (windows per subject) of every case (smaller = quicker)",
    )
    parser.add_argument(
        "--remat_policies",
        nargs="+",
        default=["full"],
        choices=("full", "dots", "none"),
        help="channel-encoder rematerialization policies to compare (model.remat_policy)",
    )
    parser.add_argument(
        "--memory_budget_gib",
        type=float,
        default=16.0,
        help="run only the policies whose compiled step fits (default: a 16 GiB TPU chip)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the timed steps, trace one more and split its time into matmul / "
        "other-only / idle (bench/step_profile.py)",
    )
    parser.add_argument("--platform", default="cpu", help="JAX_PLATFORMS unless already set")
    parser.add_argument(
        "--torch_original",
        default=None,
        metavar="PATH",
        help="clone of ncclab-sustech/mdJPT_nips2025: also time its step",
    )
    parser.add_argument(
        "--torch_variants",
        nargs="+",
        default=["published", "full_block"],
        choices=("published", "full_block"),
        help="original as released / with the MLLA layer's full output",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="torch intra-op threads (XLA:CPU uses all cores)",
    )
    return parser.parse_args()


ARGS = _parse()
os.environ.setdefault("JAX_PLATFORMS", ARGS.platform)
if ARGS.devices > 1 and os.environ["JAX_PLATFORMS"] == "cpu":
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={ARGS.devices}"
    )
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from mdjpt_jax import distributed, optimizer  # noqa: E402
from mdjpt_jax.models import Encoder  # noqa: E402
from mdjpt_jax.pretrain import aot, remat_choice, train_step  # noqa: E402


# (case, dtype, pairs, windows) -> xla_gflops of it: computed once for all remat policies.
_GFLOPS = {}


def bench_case(name: str, mesh, pairs: int, dtype: str, remat_policy: str = "full") -> dict:
    """Compile once, then time `ARGS.reps` warm steps of one case in one compute dtype and
    rematerialization policy (skipped when its compiled step exceeds the memory budget)."""
    case = dict(CASES[name], pairs=pairs, dtype=dtype, remat_policy=remat_policy)
    if ARGS.windows:
        case["windows"] = ARGS.windows
    n_times = int(case["window_s"] * FS)
    shape = (case["datasets"], pairs, 2, case["windows"], case["n_chans"], n_times)
    info = dict(
        case=name,
        **case,
        n_times=n_times,
        batch_shape=list(shape),
        windows_per_step=int(np.prod(shape[:4])),
    )
    try:
        distributed.check_pairs_divisible(pairs, mesh.devices.size)
    except ValueError as error:
        return dict(info, skipped=str(error))
    model = Encoder(
        case["n_chans"],
        n_times,
        case["variant"],
        ARGS.attention,
        rngs=nnx.Rngs(params=0),
        dtype=dtype,
        remat_policy=remat_policy,
    )
    opt = optimizer.make_optimizer(
        learning_rate=5e-4, weight_decay=1e-4, warmup_steps=10, total_steps=1000
    )
    graphdef, state = train_step.init_train_state(model, opt, mesh=mesh)
    step = train_step.make_train_step(graphdef, opt, mesh)
    eeg = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    batch = distributed.host_batch_to_global({"eeg": eeg}, mesh)
    key = jax.random.key(0)
    cost_key = (name, dtype, pairs, case["windows"])  # the same for every remat policy
    if cost_key not in _GFLOPS:
        _GFLOPS[cost_key] = xla_gflops(case, n_times, mesh, opt, batch, key, eeg)
    gflops = _GFLOPS[cost_key]
    start = time.perf_counter()
    step = step.lower(state, batch, key).compile()  # timed below: no second compile
    peak_gib = remat_choice.step_memory_bytes(step)["total"] / 2**30
    recomputed = gflops["xla_gflop_channel_encoder_forward"] if remat_policy == "full" else 0.0
    info.update(
        gflops,
        executed_gflop_estimate=round(gflops["xla_gflop_per_step_no_remat"] + recomputed, 1),
        compile_s=round(time.perf_counter() - start, 2),
        peak_memory_gib=round(peak_gib, 2),
    )
    if peak_gib > ARGS.memory_budget_gib:
        return dict(info, skipped=f"needs {peak_gib:.1f} GiB > --memory_budget_gib")
    start = time.perf_counter()
    state, metrics = step(state, batch, key)
    jax.block_until_ready(metrics)
    first_s = time.perf_counter() - start  # the first run of the compiled step
    times = []
    for _ in range(ARGS.reps):
        start = time.perf_counter()
        state, metrics = step(state, batch, key)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    if ARGS.profile:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import step_profile  # noqa: PLC0415 (bench/ helper, only with --profile)

        state, info["profile"] = step_profile.profile_step(step, state, batch, key)
    return dict(
        info,
        params=int(sum(x.size for x in jax.tree.leaves(state.params))),
        first_step_s=round(first_s, 2),
        step_s_median=round(median, 3),
        step_s_all=[round(t, 3) for t in times],
        windows_per_s=round(info["windows_per_step"] / median, 1),
        loss=float(metrics["loss"]),
        finite=bool(metrics["finite"]),
    )


def _gflop(lowered) -> float:
    return round(aot.cost_analysis(lowered)["flops"] / 1e9, 1)


def xla_gflops(case, n_times, mesh, opt, batch, key, eeg) -> dict:
    """XLA cost analysis (lowered, not compiled) of the case's step without remat: the step's
    useful FLOPs (a lax.map body counts once there, so the remat program can't be counted),
    and of the channel encoder's forward, which remat runs a second time in the backward."""
    model = Encoder(
        case["n_chans"],
        n_times,
        case["variant"],
        ARGS.attention,
        rngs=nnx.Rngs(params=0),
        dtype=case["dtype"],
        remat_chunk=None,
    )
    graphdef, state = train_step.init_train_state(model, opt, mesh=mesh)
    step = train_step.make_train_step(graphdef, opt, mesh)
    enc_graphdef, enc_params = nnx.split(model.channel_encoder)
    encode = jax.jit(lambda p, x: nnx.merge(enc_graphdef, p)(x))
    flat = jax.ShapeDtypeStruct((eeg.size // n_times, n_times), case["dtype"])
    return dict(
        xla_gflop_per_step_no_remat=_gflop(step.lower(state, batch, key)),
        xla_gflop_channel_encoder_forward=_gflop(encode.lower(enc_params, flat)),
    )


def main():
    devices = jax.devices()[: ARGS.devices]
    if len(devices) < ARGS.devices:
        raise SystemExit(f"--devices {ARGS.devices}: only {len(devices)} available")
    mesh = distributed.make_mesh(devices)
    results = [
        bench_case(name, mesh, ARGS.pairs or CASES[name]["pairs"], dtype, policy)
        for name in ARGS.cases
        for dtype in ARGS.dtypes
        for policy in ARGS.remat_policies
    ]
    out = dict(
        bench="train_step",
        devices=ARGS.devices,
        device_kind=devices[0].device_kind,
        platform=devices[0].platform,
        attention=ARGS.attention,
        reps=ARGS.reps,
        dtypes=ARGS.dtypes,
        remat_policies=ARGS.remat_policies,
        memory_budget_gib=ARGS.memory_budget_gib,
        fastest_fitting_policy=fastest_fitting_policy(results),
        cpu_count=os.cpu_count(),
        machine=platform.machine(),
        jax=jax.__version__,
        results=results,
    )
    if ARGS.torch_original:
        out.update(torch_side(results))
    print(json.dumps(out, indent=1))


def fastest_fitting_policy(results: list) -> dict:
    """{case/dtype: the remat policy with the smallest median step among those that ran}."""
    best = {}
    for row in results:
        if "step_s_median" in row:
            key = f"{row['case']}/{row['dtype']}"
            if key not in best or row["step_s_median"] < best[key][1]:
                best[key] = (row["remat_policy"], row["step_s_median"])
    return {key: policy for key, (policy, _) in best.items()}


def torch_side(results: list) -> dict:
    """Times the original PyTorch step per case and variant; ratios to the JAX results."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_original  # noqa: PLC0415 (needs torch: only with --torch_original)

    torch_original.set_threads(ARGS.threads)
    handles = torch_original.load(ARGS.torch_original)
    torch_results, comparison = [], []
    for name in ARGS.cases:
        case = dict(CASES[name])
        if ARGS.windows:
            case["windows"] = ARGS.windows
        pairs = ARGS.pairs or case["pairs"]
        if case["variant"] != "paper" or pairs != 1:
            torch_results.append(
                dict(
                    case=name,
                    skipped="the original runs the paper encoder on one pair per dataset per step",
                )
            )
            continue
        for variant in ARGS.torch_variants:
            row = dict(
                case=name,
                **torch_original.bench_step(
                    handles,
                    variant,
                    n_datasets=case["datasets"],
                    windows=case["windows"],
                    n_chans=case["n_chans"],
                    window_s=case["window_s"],
                    fs=FS,
                    reps=ARGS.reps,
                ),
            )
            torch_results.append(row)
            for jax_row in results:
                if jax_row["case"] == name and "step_s_median" in jax_row:
                    comparison.append(
                        dict(
                            case=name,
                            torch_variant=variant,
                            jax_dtype=jax_row["dtype"],
                            jax_remat_policy=jax_row["remat_policy"],
                            torch_step_s=row["step_s_median"],
                            jax_step_s=jax_row["step_s_median"],
                            torch_over_jax=round(
                                row["step_s_median"] / jax_row["step_s_median"], 2
                            ),
                        )
                    )
    return dict(
        torch=torch_original.describe(handles), torch_results=torch_results, comparison=comparison
    )


if __name__ == "__main__":
    main()
