"""Multi-process start-up, the device mesh and host batch -> global jax.Array.

One data-parallel layout everywhere: a 1-D mesh with axis "data" over every device of
every process; the pairs axis (axis 1) of each batch entry is split over it, and the
train state is replicated. The same code runs on 1 CPU, N simulated CPU devices, one GPU,
a SLURM GPU job (one process per GPU) or a multi-host TPU pod.
"""

import os
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"
PAIRS_AXIS = 1  # of every batch entry: eeg [K, P, 2, M, C, T], subject [K, P, 2], ...

# Environment variables that mean "this process is one of several launched together";
# jax.distributed.initialize() with no arguments reads the details from them.
_SLURM_VARS = (
    "SLURM_JOB_ID",
    "SLURM_STEP_NODELIST",
    "SLURM_NTASKS",
    "SLURM_PROCID",
    "SLURM_LOCALID",
)
_CLUSTER_VARS = (
    "JAX_COORDINATOR_ADDRESS",
    "TPU_WORKER_HOSTNAMES",
    "TPU_PROCESS_ADDRESSES",
    "MEGASCALE_COORDINATOR_ADDRESS",
    "OMPI_MCA_orte_hnp_uri",
)


def _cluster_launch_detected(environ) -> bool:
    if any(environ.get(name) for name in _CLUSTER_VARS):
        return True
    slurm = all(name in environ for name in _SLURM_VARS)
    return slurm and int(environ["SLURM_NTASKS"]) > 1


def _on_cloud_tpu_vm() -> bool:
    # A TPU VM (single- or multi-host) needs initialize() for a pod slice; jax detects
    # the pod from the VM metadata server. Private flag, so failure means "not a TPU VM".
    try:
        from jax._src.cloud_tpu_init import running_in_cloud_tpu_vm
    except ImportError:
        return False
    return bool(running_in_cloud_tpu_vm)


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Starts jax.distributed when this process is one of several; call before using jax.

    Three cases:
      * explicit arguments (e.g. two processes on localhost): passed to
        `jax.distributed.initialize` as given;
      * a cluster launch (SLURM with > 1 task, TPU pod / TPU VM, Open MPI, or
        JAX_COORDINATOR_ADDRESS set): `jax.distributed.initialize()` with no arguments,
        which reads the coordinator, process count and id from that environment;
      * otherwise (a single process): nothing.

    Multi-process CPU collectives use gloo, the default of
    `jax_cpu_collectives_implementation` in this jax version.

    Args:
        coordinator_address: "host:port" of process 0's coordinator service.
        num_processes: total number of processes.
        process_id: this process's index in [0, num_processes).

    Returns:
        True if jax.distributed was initialized by this call (or already was).
    """
    if jax.distributed.is_initialized():
        return True
    explicit = (coordinator_address, num_processes, process_id)
    if any(arg is not None for arg in explicit):
        if any(arg is None for arg in explicit):
            raise ValueError(
                "give all of coordinator_address, num_processes and process_id "
                f"or none of them; got {explicit}"
            )
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
        return True
    if _cluster_launch_detected(os.environ) or _on_cloud_tpu_vm():
        jax.distributed.initialize()
        return True
    return False


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """1-D mesh with axis "data" over `devices` (default: every device of every process).

    Axis type Auto: arrays outside `shard_map` keep ordinary (GSPMD) semantics.
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("make_mesh needs at least one device")
    return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def check_pairs_divisible(num_pairs: int, num_devices: int) -> None:
    """Raises ValueError unless the global pairs per step split evenly over the devices."""
    if num_pairs % num_devices:
        raise ValueError(
            f"pairs_per_step ({num_pairs}) must be divisible by the number of "
            f"devices ({num_devices})"
        )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of every batch entry: axis 1 (pairs) split over "data", the rest whole."""
    return NamedSharding(mesh, PartitionSpec(None, DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of the train state and of metrics: a full copy on every device."""
    return NamedSharding(mesh, PartitionSpec())


def host_batch_to_global(host_batch: dict[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """Assembles each process's slice of the pairs into global jax.Arrays.

    Args:
        host_batch: this process's numpy batch, every entry with the pairs on axis 1
            (eeg [K, P_host, 2, M, C, T], subject [K, P_host, 2], stimulus / offset
            [K, P_host, M]). Process i holds its own P_host pairs; together the processes
            hold the P = P_host * (process count) pairs of the step.
        mesh: the "data" mesh.

    Returns:
        Dict of global arrays [K, P, ...] sharded along the pairs over "data" (an explicit
        host -> device copy).

    Raises:
        ValueError: entries disagree on P_host, or P is not divisible by the device count.
    """
    num_devices = mesh.devices.size
    num_local = len(mesh.local_devices)
    if num_devices % num_local:
        raise ValueError(
            f"mesh has {num_devices} devices but {num_local} in this process: "
            "every process must hold the same number"
        )
    pairs_host = {name: np.shape(value)[PAIRS_AXIS] for name, value in host_batch.items()}
    if len(set(pairs_host.values())) != 1:
        raise ValueError(f"batch entries disagree on the pairs axis (axis 1): {pairs_host}")
    num_pairs = next(iter(pairs_host.values())) * (num_devices // num_local)
    check_pairs_divisible(num_pairs, num_devices)
    sharding = batch_sharding(mesh)

    def to_global(value):
        value = np.asarray(value)
        shape = value.shape[:PAIRS_AXIS] + (num_pairs,) + value.shape[PAIRS_AXIS + 1 :]
        return jax.make_array_from_process_local_data(sharding, value, shape)

    return {name: to_global(value) for name, value in host_batch.items()}


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Copies a pytree of arrays (the same values on every process) onto every device."""
    return jax.device_put(tree, replicated_sharding(mesh))
