"""Ahead-of-time compile of the real train step for a named TPU topology (no TPU needed).

    python -m mdjpt_jax.main --mode=compile --config=configs/pretrain.py:paper \
        --config.data.pairs_per_step=256 --topology=v5e:16x16

builds the TPU topology's devices with `jax.experimental.topologies.get_topology_desc`
(compile-only devices from libtpu, on any machine), the same mesh, train state, batch
shapes and shardings as a run on that pod (`train.make_step_program`), lowers and compiles
the sharded step, and prints a table and one JSON line: chips, per-chip batch, per-chip
memory from `compiled.memory_analysis()` against the chip's HBM, FLOPs and bytes per step
from `compiled.cost_analysis()`, and a roofline step time. It exits non-zero when the step
does not fit in HBM or the config is invalid for that many chips.

Caveats of the numbers (XLA's estimates, not measurements): the compiled cost analysis is
of one chip's program and counts the body of a loop once, so the channel encoder's
rematerialized `lax.map` (models/mlla.py REMAT_CHUNK) makes its FLOPs and bytes an
undercount. `model_flops` is therefore also reported: XLA's cost analysis of one chip's
share of the step (its pairs, on one CPU device) lowered with remat_chunk=None (no loop, no
recomputation; not compiled), i.e. the step's useful FLOPs per chip. The roofline step time is max(model_flops / peak bf16 FLOP/s,
compiled bytes / HBM bandwidth): a lower bound (no recomputation, no communication, peak
rate even for float32). FLOPs and bytes are of a step without the CDA diagnostics (taken one
step in `train.diagnose_every`; `steady_step`), memory that of the real step, diagnostics
included. Memory is XLA's buffer assignment of the compiled program: arguments +
outputs - donated aliases + temporaries (+ code); the runtime reserves a little more.

libtpu is optional (requirements-tpu.txt): `MDJPT_TPU=1 bash scripts/ensure_venv.sh`
makes .venv-tpu with it.
"""

import dataclasses
import importlib.util
import json
import os

INSTALL_MESSAGE = (
    "--mode=compile needs the libtpu package (TPU compiler; no TPU needed). "
    "Install it into its own venv with `MDJPT_TPU=1 bash scripts/ensure_venv.sh` "
    "and run with .venv-tpu/bin/python, or `pip install -r requirements-tpu.txt`."
)
GIB = 1024**3
MEGACORE = ("v4:", "v5p:")  # generations whose JAX device is a two-core chip
REMEDY = (
    "lower data.pairs_per_step or data.windows_per_pair, or use "
    "--config.model.dtype=bfloat16 or more chips"
)


@dataclasses.dataclass(frozen=True)
class Chip:
    """Per-chip numbers of one TPU generation."""

    name: str
    hbm_bytes: int
    peak_bf16_flops: float  # FLOP/s
    hbm_bytes_per_s: float


# Keyed by jax Device.device_kind. Source: Google Cloud TPU documentation, "TPU versions"
# system architecture pages (cloud.google.com/tpu/docs/v4, /v5e, /v5p, /v6e), per chip:
# peak bf16 compute and HBM capacity and bandwidth as listed there (GB read as GiB).
CHIPS = {
    "TPU v4": Chip("v4", 32 * GIB, 275e12, 1200e9),
    "TPU v5 lite": Chip("v5e", 16 * GIB, 197e12, 819e9),
    "TPU v5": Chip("v5p", 95 * GIB, 459e12, 2765e9),
    "TPU v6 lite": Chip("v6e", 32 * GIB, 918e12, 1640e9),
}


def topology_devices(topology: str) -> list:
    """Compile-only devices of a TPU topology such as "v5e:2x2" or "v5p:2x2x2"."""
    if importlib.util.find_spec("libtpu") is None:
        raise SystemExit(f"error: {INSTALL_MESSAGE}")
    # Compile-only devices touch no TPU: skip the TPU VM metadata query and libtpu's
    # one-process-per-host lockfile (several compiles may run side by side).
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies

    # v4 and v5p chips have two TensorCores that JAX runs as one device ("megacore"), as
    # on a real pod; without it libtpu describes one device per core.
    options = dict(chip_config_name="megacore") if topology.startswith(MEGACORE) else {}
    return list(topologies.get_topology_desc(topology, "tpu", **options).devices)


def compile_step(config, devices: list):
    """Lowers and compiles the real train step of `config` on `devices`.

    Returns:
        (compiled, program, settings, mesh); `program` is train.StepProgram; settings has
        model.remat_policy resolved ("auto": the fastest policy within
        train.memory_budget_gib, pretrain/remat_choice.py).

    Raises:
        ValueError: the config is invalid for this many devices (train.validate), or no
            remat policy fits the memory budget.
    """
    from mdjpt_jax import distributed
    from mdjpt_jax.pretrain import remat_choice, train

    settings = train.read_config(config)
    mesh = distributed.make_mesh(devices)
    processes = len({device.process_index for device in devices})
    train.validate(settings, num_devices=len(devices), process_count=processes)
    choice = remat_choice.compile_within_budget(settings, mesh, train.make_step_program)
    print(f"[compile] {remat_choice.describe(choice)}", flush=True)
    return choice.compiled, choice.program, choice.settings, mesh


def cost_analysis(program) -> dict:
    """flops and bytes_accessed of a Lowered or Compiled program's XLA cost analysis (NaN
    where XLA gives none)."""
    cost = program.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per program
        cost = cost[0]
    cost = cost or {"flops": float("nan"), "bytes accessed": float("nan")}
    return dict(
        flops=float(cost.get("flops", 0.0)), bytes_accessed=float(cost.get("bytes accessed", 0.0))
    )


def model_flops(settings, chips: int) -> float:
    """FLOPs of one chip's share of the step (its P / chips pairs) without the remat loop
    and without the CDA diagnostics (a `lax.cond` taken every `train.diagnose_every` steps,
    whose both branches XLA's cost analysis would add), from the step lowered (not
    compiled) on one CPU device."""
    import jax

    from mdjpt_jax import distributed
    from mdjpt_jax.pretrain import train

    per_chip = dataclasses.replace(
        settings,
        diagnose_every=0,  # cost analysis counts both branches of the diagnostics' cond
        model=dict(settings.model, remat_chunk=None),
        loader=dict(settings.loader, pairs_per_step=settings.loader["pairs_per_step"] // chips),
    )
    mesh = distributed.make_mesh(jax.devices("cpu")[:1])
    return cost_analysis(train.make_step_program(per_chip, mesh).lower())["flops"]


def analyze(
    compiled,
    settings,
    mesh,
    chip: Chip | None,
    flops: float | None = None,
    cost_compiled=None,
) -> dict:
    """The report of one compiled step (see the module docstring); FLOPs and bytes per step
    from `cost_compiled` when given (`steady_step`: the step without the diagnostics)."""
    from mdjpt_jax.pretrain import remat_choice

    loader = settings.loader
    chips = int(mesh.devices.size)
    pairs_per_chip = loader["pairs_per_step"] // chips
    k, m = len(loader["datasets"]), loader["windows_per_pair"]
    n_times = int(round(loader["window_s"] * loader["fs"]))
    memory = compiled.memory_analysis()
    cost = cost_analysis(compiled if cost_compiled is None else cost_compiled)
    report = dict(
        chips=chips,
        processes=len({d.process_index for d in mesh.devices.flat}),
        device_kind=mesh.devices.flat[0].device_kind,
        dtype=settings.model.get("dtype", "float32"),
        variant=settings.model["variant"],
        pairs_per_step=loader["pairs_per_step"],
        pairs_per_chip=pairs_per_chip,
        windows_per_chip=k * pairs_per_chip * 2 * m,
        batch_per_chip=[k, pairs_per_chip, 2, m, len(loader["ch_names"]), n_times],
        remat_policy=settings.model["remat_policy"],
        memory_bytes=dict(
            remat_choice.step_memory_bytes(compiled),
            xla_peak=int(getattr(memory, "peak_memory_in_bytes", -1)),
        ),
        **cost,
        model_flops=cost["flops"] if flops is None else flops,
    )
    total = report["memory_bytes"]["total"]
    if chip is not None:
        compute_s = report["model_flops"] / chip.peak_bf16_flops
        memory_s = cost["bytes_accessed"] / chip.hbm_bytes_per_s
        report.update(
            chip=chip.name,
            hbm_bytes=chip.hbm_bytes,
            fits=total <= chip.hbm_bytes,
            hbm_fraction=total / chip.hbm_bytes,
            peak_bf16_flops=chip.peak_bf16_flops,
            hbm_bytes_per_s=chip.hbm_bytes_per_s,
            roofline_step_s=max(compute_s, memory_s),
            roofline_bound="compute" if compute_s >= memory_s else "memory",
        )
    return report


def format_table(report: dict) -> str:
    """Plain-text table of a report."""
    mem = report["memory_bytes"]

    def gib(value):
        return f"{value / GIB:.3f} GiB"

    rows = [
        (
            "chips / processes",
            f"{report['chips']} / {report['processes']} ({report['device_kind']})",
        ),
        (
            "model",
            f"{report['variant']}, compute dtype {report['dtype']}, remat {report['remat_policy']}",
        ),
        ("pairs per step / per chip", f"{report['pairs_per_step']} / {report['pairs_per_chip']}"),
        (
            "per-chip batch [K,P,2,M,C,T]",
            f"{report['batch_per_chip']} = {report['windows_per_chip']} windows",
        ),
        ("memory: arguments", gib(mem["arguments"])),
        ("memory: outputs (donated alias)", f"{gib(mem['outputs'])} (-{gib(mem['aliased'])})"),
        ("memory: temporaries", gib(mem["temporaries"])),
        (
            "memory: total per chip",
            gib(mem["total"])
            + (
                f" of {gib(report['hbm_bytes'])} HBM ({report['hbm_fraction']:.0%})"
                if "hbm_bytes" in report
                else ""
            ),
        ),
        ("FLOPs per step per chip: model", f"{report['model_flops']:.3e}"),
        ("FLOPs per step per chip: compiled", f"{report['flops']:.3e} (loop bodies once)"),
        (
            "HBM bytes per step per chip",
            f"{report['bytes_accessed']:.3e} (compiled, loop bodies once)",
        ),
    ]
    if "roofline_step_s" in report:
        rows += [
            (
                "roofline step time",
                f"{report['roofline_step_s'] * 1e3:.2f} ms "
                f"({report['roofline_bound']}-bound; "
                f"{report['peak_bf16_flops'] / 1e12:.0f} TFLOP/s, "
                f"{report['hbm_bytes_per_s'] / 1e9:.0f} GB/s)",
            ),
            ("fits in HBM", "yes" if report["fits"] else "NO"),
        ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def steady_step(compiled, settings, mesh):
    """The compiled step of the steps without CDA diagnostics (all but one in
    `train.diagnose_every`): XLA's cost analysis adds both branches of the diagnostics'
    `lax.cond`, which would about double the FLOPs and bytes of a step. `compiled` itself
    when there are no diagnostics; memory is always the real step's."""
    if not settings.diagnose_every:
        return compiled
    from mdjpt_jax.pretrain import train

    steady = dataclasses.replace(settings, diagnose_every=0)
    return train.make_step_program(steady, mesh).lower().compile()


def run(config, topology: str) -> dict:
    """Compiles for `topology`, prints the table and JSON; exits non-zero if it cannot run.

    Raises:
        SystemExit: libtpu missing, the config invalid for the topology, or the step does
            not fit in the chip's HBM (the message names the numbers).
    """
    import jax

    from mdjpt_jax.pretrain import remat_choice

    jax.config.update("jax_platforms", "cpu")  # compile-only devices; never grab a real TPU
    devices = topology_devices(topology)
    chip = CHIPS.get(devices[0].device_kind)
    try:
        compiled, _, settings, mesh = compile_step(config, devices)
    except remat_choice.NoPolicyFits as error:
        raise SystemExit(
            f"error: the step does not fit in HBM of a {devices[0].device_kind} chip: {error}"
        ) from error
    except ValueError as error:
        raise SystemExit(f"error: {topology} ({len(devices)} chips): {error}") from error
    except jax.errors.JaxRuntimeError as error:  # the TPU compiler's own out-of-memory
        if not remat_choice.compiler_out_of_memory(error):
            raise
        raise SystemExit(
            f"error: the step does not fit in HBM of a {devices[0].device_kind} "
            f"chip (the TPU compiler ran out of memory: "
            f"{str(error).splitlines()[0][:300]}); {REMEDY}"
        ) from error
    report = dict(
        topology=topology,
        **analyze(
            compiled,
            settings,
            mesh,
            chip,
            model_flops(settings, len(devices)),
            steady_step(compiled, settings, mesh),
        ),
    )
    print(format_table(report), flush=True)
    print(json.dumps(report), flush=True)
    if report.get("fits") is False:
        raise SystemExit(
            f"error: the step does not fit in HBM: it needs "
            f"{report['memory_bytes']['total'] / GIB:.2f} GiB per chip, more than the "
            f"{report['hbm_bytes'] / GIB:.0f} GiB HBM of a {report['chip']} chip; {REMEDY}"
        )
    return report
