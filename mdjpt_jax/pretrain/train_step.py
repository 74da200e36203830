"""The pre-training step: one SPMD program per device under `jax.shard_map` over "data".

Each device holds P_dev = P / D of the P pairs of every dataset (batch eeg
[K, P, 2, M, C, T] sharded on axis 1) and a full copy of the train state.

Gradient convention (pmap semantics, made exact): every device computes its *share* of the
global loss, such that the shares summed over the D devices equal the loss of the whole
batch on one device:

    share_d = sum_{k, p in device d} contrastive[k, p] / (K P)  +  cda_weight * CDA_d

With CDA grouped by subject (the default) CDA is the mean over the P pair slices of each
slice's CDA, and a slice (pair p of every dataset) lives on one device, so
CDA_d = sum_{p in device d} CDA_p / P is computed from local statistics only: per-device
memory does not grow with the number of devices. With CDA grouped by dataset the groups
span devices: every device computes CDA from the psum of the per-group covariance sums and
counts (global centroids) and CDA_d = CDA / D; the psum's transpose routes each device's
CDA cotangent back to its own windows. The gradient of the global loss is the psum (not
the mean) of the per-device gradients of the shares. The parameters enter the
per-device loss as explicitly device-varying copies (`pcast`), so the per-device gradient
is purely local and the single `psum` below is the only cross-device gradient reduction.
"""

import functools
from typing import Any, Callable

import chex
import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, PartitionSpec

from mdjpt_jax import distributed, losses

CDA_GROUPINGS = ("subject", "dataset")
DATASET_REDUCTIONS = ("sum", "mean")
AXIS = distributed.DATA_AXIS


@flax.struct.dataclass
class TrainState:
    """Everything a step updates; a pytree (replicated over the mesh).

    Attributes:
        step: int32 scalar, number of updates applied so far.
        params: nnx.State of the encoder's nnx.Param variables.
        opt_state: optax state of the optimizer.
    """

    step: jax.Array
    params: Any
    opt_state: Any


def init_train_state(
    model: nnx.Module, optimizer: optax.GradientTransformation, *, mesh: Mesh | None = None
) -> tuple[nnx.GraphDef, TrainState]:
    """Splits the model into (graphdef, params) and builds the step-0 state.

    Args:
        model: the encoder (only nnx.Param variables; it has no batch statistics).
        optimizer: e.g. `optimizer.make_optimizer(...)`.
        mesh: if given, the state is copied onto every device of the mesh (replicated).

    Returns:
        (graphdef, state): `nnx.merge(graphdef, state.params)` rebuilds the model.
    """
    graphdef, params = nnx.split(model, nnx.Param)
    state = TrainState(
        step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params)
    )
    if mesh is not None:
        state = distributed.replicate(state, mesh)
    return graphdef, state


def _group_ids(num_datasets, pairs_per_device, windows, grouping):
    """CDA group id of every window of this device: [K * P_dev * 2 * M] int32.

    subject: id = p * 2K + k * 2 + s for the device's pair p, i.e. pair slice p holds the
    2K groups of one pair per dataset (the original code's whole batch); dataset: id = k
    (one slice, global over devices).
    """
    k = jnp.arange(num_datasets)[:, None, None]
    p = jnp.arange(pairs_per_device)[None, :, None]
    s = jnp.arange(2)[None, None, :]
    if grouping == "subject":
        block_ids = p * (2 * num_datasets) + k * 2 + s
    else:
        block_ids = jnp.broadcast_to(k, (num_datasets, pairs_per_device, 2))
    return jnp.repeat(block_ids.reshape(-1), windows).astype(jnp.int32)


def _cda_term(
    mixed: jax.Array,
    eeg_shape: tuple,
    *,
    num_devices: int,
    cda_groups: str = "subject",
    cda_centroid: str = "arithmetic",
    cda_covariance: str = "true",
    cda_scale_free: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """(this device's share of CDA, the global CDA) from the mixer output
    mixed [K * P_dev * 2, M, F, C2, N] of a device batch of shape eeg_shape [K, P_dev, 2, M,
    ...]; options as `train_step_fn`."""
    num_datasets, pairs_per_device, _, windows = eeg_shape[:4]
    pairs_total = pairs_per_device * num_devices
    by_subject = cda_groups == "subject"
    slices = pairs_per_device if by_subject else 1
    num_groups = num_datasets * 2 * slices if by_subject else num_datasets
    sums, counts = losses.cda_group_statistics(
        mixed.reshape((-1,) + mixed.shape[2:]),
        _group_ids(num_datasets, pairs_per_device, windows, cda_groups),
        num_groups,
        centroid=cda_centroid,
        covariance=cda_covariance,
        scale_free=cda_scale_free,
    )
    if not by_subject:  # dataset groups span the devices: global centroids
        sums, counts = jax.lax.psum(sums, AXIS), jax.lax.psum(counts, AXIS)
    cda = losses.cda_from_statistics(
        sums.reshape((slices, -1) + sums.shape[1:]),
        counts.reshape(slices, -1),
        centroid=cda_centroid,
    )
    if by_subject:  # cda is the mean over this device's slices
        cda_share = cda * pairs_per_device / pairs_total
        return cda_share, jax.lax.psum(cda_share, AXIS)
    return cda / num_devices, cda


def device_cda(
    params: Any, eeg: jax.Array, *, graphdef: nnx.GraphDef, num_devices: int, **cda_options
) -> tuple[jax.Array, dict]:
    """(this device's share of the unweighted CDA, {"cda": global CDA}): the CDA term alone,
    whatever its weight in the loss (diagnostics); arguments as `device_loss`."""
    out = nnx.merge(graphdef, params)(eeg.reshape((-1,) + eeg.shape[3:]))
    share, cda = _cda_term(out["mixed"], eeg.shape, num_devices=num_devices, **cda_options)
    return share, dict(cda=cda)


def device_loss(
    params: Any,
    eeg: jax.Array,
    *,
    graphdef: nnx.GraphDef,
    num_devices: int,
    temperature: float = 0.07,
    cda_weight: float = 0.01,
    use_cda: bool = True,
    dataset_reduction: str = "sum",
    **cda_options,
) -> tuple[jax.Array, dict]:
    """This device's share of the global loss; call inside shard_map over axis "data".

    The global loss is R_k NT-Xent_k + cda_weight * CDA, where NT-Xent_k is dataset k's
    contrastive loss averaged over its P pairs and R_k is the sum over datasets (the
    original code's `training_step`) or, with dataset_reduction="mean", the mean (which
    makes CDA K times stronger relative to the contrastive term). With cda_groups="subject"
    CDA is the mean over the P pair slices of the CDA of each slice's 2K subject groups:
    one slice is exactly the original code's batch (one pair per dataset), so the step
    averages P replicas of the original objective instead of summing distances over
    (2KP)^2 / 2 group pairs, whose log would shrink every distance's gradient ~P^2-fold.

    Args:
        params: encoder parameters (nnx.State).
        eeg: [K, P_dev, 2, M, C, T] µV, this device's pairs (pair p of device d is global
            pair d * P_dev + p).
        graphdef: the encoder's graph definition.
        num_devices: D, size of the "data" axis.
        temperature, cda_weight, use_cda, dataset_reduction: see `train_step_fn`.
        **cda_options: cda_groups, cda_centroid, cda_covariance, cda_scale_free (see
            `train_step_fn`).

    Returns:
        (share, aux): share is a scalar whose sum over devices is the global loss; aux
        holds global (psum-ed, device-invariant) values: loss, contrastive (the reduced
        contrastive term), contrastive_per_dataset [K], cda, similarity (a dict of
        `losses.similarity_statistics` averaged over pairs and datasets).
    """
    chex.assert_rank(eeg, 6)
    chex.assert_axis_dimension(eeg, 2, 2)
    num_datasets, pairs_per_device, _, windows = eeg.shape[:4]
    pairs_total = pairs_per_device * num_devices
    # One block per subject of each pair: stratified normalization never mixes subjects.
    out = nnx.merge(graphdef, params)(eeg.reshape((-1,) + eeg.shape[3:]))
    projection = out["projection"].reshape(eeg.shape[:4] + (-1,))  # [K, P_dev, 2, M, E]
    contrastive = functools.partial(losses.contrastive_loss, temperature=temperature)
    pair_losses = jax.vmap(jax.vmap(contrastive))(projection)  # [K, P_dev]
    per_dataset = jax.lax.psum(jnp.sum(pair_losses, axis=1), AXIS) / pairs_total
    pair_similarity = jax.vmap(jax.vmap(losses.similarity_statistics))(projection)
    similarity = {
        name: jax.lax.psum(jnp.sum(value), AXIS) / (pairs_total * num_datasets)
        for name, value in pair_similarity.items()
    }
    scale = 1.0 if dataset_reduction == "sum" else 1.0 / num_datasets
    share = scale * jnp.sum(pair_losses) / pairs_total
    cda = jnp.zeros((), jnp.float32)
    if use_cda:
        cda_share, cda = _cda_term(out["mixed"], eeg.shape, num_devices=num_devices, **cda_options)
        share = share + cda_weight * cda_share
    contrastive_total = scale * jnp.sum(per_dataset)
    aux = dict(
        loss=contrastive_total + cda_weight * cda,
        contrastive=contrastive_total,
        contrastive_per_dataset=per_dataset,
        cda=cda,
        similarity=similarity,
    )
    return share, aux


def _device_grads(loss_fn: Callable, params: Any, eeg: jax.Array) -> tuple[Any, dict]:
    """Gradient of the global loss on this device: psum of the per-device share gradients."""
    local_params = jax.lax.pcast(params, AXIS, to="varying")
    grads, aux = jax.grad(loss_fn, has_aux=True)(local_params, eeg)
    return jax.lax.psum(grads, AXIS), aux


def _check_options(
    cda_groups: str, cda_centroid: str, cda_covariance: str, dataset_reduction: str
) -> None:
    if cda_covariance not in losses.COVARIANCES:
        raise ValueError(
            f"cda_covariance must be one of {losses.COVARIANCES}, got {cda_covariance!r}"
        )
    if dataset_reduction not in DATASET_REDUCTIONS:
        raise ValueError(
            f"dataset_reduction must be one of {DATASET_REDUCTIONS}, got {dataset_reduction!r}"
        )
    if cda_groups not in CDA_GROUPINGS:
        raise ValueError(f"cda_groups must be one of {CDA_GROUPINGS}, got {cda_groups!r}")
    if cda_centroid not in losses.CENTROIDS:
        raise ValueError(f"cda_centroid must be one of {losses.CENTROIDS}, got {cda_centroid!r}")


# What `cda_diagnostics` measures (metrics["cda_diagnostics"], logged as cda_diagnostics/*).
CDA_DIAGNOSTICS = (
    "cda",
    "grad_norm_contrastive",
    "grad_norm_cda",
    "grad_norm_cda_weighted",
    "cda_over_contrastive",
    "cda_radial_share_mixer",
    "mixer_norm",
)


def cda_diagnostics(params, grads, cda_grads, cda, weight: float) -> dict:
    """What CDA does to a step (all scalars, no gradient).

    Args:
        params: the step's parameters (nnx.State with a "mixer" module).
        grads: gradient of the step's loss, contrastive + weight x CDA.
        cda_grads: gradient of the unweighted CDA alone (also when its weight is 0).
        cda: CDA's value at params (the stop-gradient value, whatever its weight).
        weight: CDA's weight in the loss (0 when the loss has no CDA term).

    Returns:
        {cda, grad_norm_contrastive (of grads - weight x cda_grads), grad_norm_cda (the
        unweighted CDA's), grad_norm_cda_weighted, cda_over_contrastive (the ratio of the
        last to the first), cda_radial_share_mixer (the fraction of the squared norm of
        CDA's gradient on the spatial mixer that lies along the mixer's own parameters:
        1 = CDA only asks to rescale the mixer, which the per-subject normalization after
        it undoes), mixer_norm}.
    """
    contrastive = jax.tree.map(lambda g, c: g - weight * c, grads, cda_grads)
    norm_contrastive = optax.global_norm(contrastive)
    norm_cda = optax.global_norm(cda_grads)
    mixer, mixer_grads = params["mixer"], cda_grads["mixer"]
    mixer_norm = optax.global_norm(mixer)
    along = optax.tree_utils.tree_vdot(mixer, mixer_grads)
    radial = along**2 / jnp.maximum(mixer_norm**2 * optax.global_norm(mixer_grads) ** 2, 1e-30)
    values = dict(
        cda=cda,
        grad_norm_contrastive=norm_contrastive,
        grad_norm_cda=norm_cda,
        grad_norm_cda_weighted=weight * norm_cda,
        cda_over_contrastive=weight * norm_cda / jnp.maximum(norm_contrastive, 1e-30),
        cda_radial_share_mixer=radial,
        mixer_norm=mixer_norm,
    )
    return {
        name: jax.lax.stop_gradient(values[name]).astype(jnp.float32) for name in CDA_DIAGNOSTICS
    }


def _sharded_eeg(batch: dict, num_devices: int) -> jax.Array:
    eeg = batch["eeg"]
    chex.assert_rank(eeg, 6)
    distributed.check_pairs_divisible(eeg.shape[1], num_devices)
    return eeg


def train_step_fn(
    graphdef: nnx.GraphDef,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    *,
    temperature: float = 0.07,
    cda_weight: float = 0.01,
    cda_groups: str = "subject",
    cda_centroid: str = "arithmetic",
    cda_covariance: str = "true",
    cda_scale_free: bool = False,
    use_cda: bool = True,
    dataset_reduction: str = "sum",
    learning_rate_fn: optax.Schedule | None = None,
    diagnose_every: int = 0,
) -> Callable:
    """The pure, un-jitted `train_step(state, batch, key) -> (state, metrics)`.

    Args:
        graphdef: from `init_train_state`.
        optimizer: the optax transformation the state was initialized with.
        mesh: 1-D mesh with axis "data" (`distributed.make_mesh`).
        temperature: NT-Xent temperature.
        cda_weight: total loss = contrastive term + cda_weight * CDA.
        cda_groups: "subject" (one CDA group per subject of each pair) or "dataset".
        cda_centroid: "arithmetic" or "log_euclidean" group mean.
        cda_covariance: "true" (channel covariance) or "scrambled" (the original code's
            statistic, `losses.scrambled_channel_covariance`).
        cda_scale_free: CDA on correlation matrices (`losses.correlation`): invariant to
            the mixer's scale, which the stratified normalization after it removes anyway.
        use_cda: False drops the CDA term (ablation); metrics report cda = 0 (its value is
            still measured at the diagnostic steps: cda_diagnostics).
        dataset_reduction: "sum" (the original code) or "mean" of the per-dataset
            contrastive losses.
        learning_rate_fn: the optimizer's schedule, only to report the rate of each step
            (NaN when not given).
        diagnose_every: every this many steps (0 = never) also measure CDA on its own at
            the step's parameters (one more forward and backward pass: `cda_diagnostics`);
            NaN at the other steps.

    Returns:
        train_step(state, batch, key): state replicated on the mesh; batch a dict of
        global arrays with the pairs on axis 1 sharded over "data"
        (`distributed.host_batch_to_global`), of which only batch["eeg"]
        [K, P, 2, M, C, T] is read; key is reserved for stochastic layers
        (`fold_in(key, state.step)`) and unused, the model being deterministic. Metrics
        are replicated: loss, contrastive, cda, grad_norm, learning_rate, finite (bool:
        loss and gradient finite; the caller stops the run on False) scalars,
        contrastive_per_dataset [K], and the diagnostics grad_norm_by_module
        ({module: scalar}) and similarity ({positive_minus_negative, spread} of the
        projection's cosine similarities, `losses.similarity_statistics`) and
        cda_diagnostics (see `CDA_DIAGNOSTICS`).
    """
    _check_options(cda_groups, cda_centroid, cda_covariance, dataset_reduction)
    num_devices = mesh.devices.size
    cda_options = dict(
        cda_groups=cda_groups,
        cda_centroid=cda_centroid,
        cda_covariance=cda_covariance,
        cda_scale_free=cda_scale_free,
    )
    loss_fn = functools.partial(
        device_loss,
        graphdef=graphdef,
        num_devices=num_devices,
        temperature=temperature,
        cda_weight=cda_weight,
        use_cda=use_cda,
        dataset_reduction=dataset_reduction,
        **cda_options,
    )
    cda_fn = functools.partial(
        device_cda, graphdef=graphdef, num_devices=num_devices, **cda_options
    )
    weight = cda_weight if use_cda else 0.0

    def diagnostics(params, eeg, grads):
        cda_grads, cda_aux = _device_grads(cda_fn, params, eeg)
        return cda_diagnostics(params, grads, cda_grads, cda_aux["cda"], weight)

    def no_diagnostics(params, eeg, grads):
        del params, eeg, grads
        return {name: jnp.full((), jnp.nan, jnp.float32) for name in CDA_DIAGNOSTICS}

    def device_step(state: TrainState, eeg: jax.Array):
        grads, aux = _device_grads(loss_fn, state.params, eeg)
        if diagnose_every:
            measured = jax.lax.cond(
                (state.step + 1) % diagnose_every == 0,
                diagnostics,
                no_diagnostics,
                state.params,
                eeg,
                grads,
            )
        else:
            measured = no_diagnostics(state.params, eeg, grads)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = optax.global_norm(grads)
        # Per top-level module (channel_encoder, mixer, dynamics, projector): which part of
        # the encoder the loss moves, the first thing to read when a run sits at chance.
        module_norms = {name: optax.global_norm(sub) for name, sub in grads.items()}
        rate = jnp.nan if learning_rate_fn is None else learning_rate_fn(state.step)
        metrics = dict(
            aux,
            grad_norm=grad_norm,
            grad_norm_by_module=module_norms,
            cda_diagnostics=measured,
            learning_rate=jnp.asarray(rate, jnp.float32),
            finite=jnp.isfinite(aux["loss"]) & jnp.isfinite(grad_norm),
        )
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    sharded_step = jax.shard_map(
        device_step,
        mesh=mesh,
        in_specs=(PartitionSpec(), PartitionSpec(None, AXIS)),
        out_specs=(PartitionSpec(), PartitionSpec()),
    )

    def train_step(state: TrainState, batch: dict, key: jax.Array):
        del key  # Reserved: stochastic layers would use jax.random.fold_in(key, state.step).
        return sharded_step(state, _sharded_eeg(batch, num_devices))

    return train_step


def jit_train_step(step_fn: Callable, mesh: Mesh) -> Callable:
    """jit with the mesh's shardings (state and metrics replicated, batch split on the
    pairs) and the state's buffers donated: a misplaced input is an error, not a copy."""
    replicated = distributed.replicated_sharding(mesh)
    return jax.jit(
        step_fn,
        donate_argnums=0,
        in_shardings=(replicated, distributed.batch_sharding(mesh), replicated),
        out_shardings=(replicated, replicated),
    )


def make_train_step(
    graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation, mesh: Mesh, **options
) -> Callable:
    """The jitted train step: `jit_train_step(train_step_fn(...), mesh)`.

    Args:
        graphdef, optimizer, mesh: see `train_step_fn`.
        **options: temperature, cda_weight, cda_groups, cda_centroid, use_cda,
            dataset_reduction, learning_rate_fn (keywords of `train_step_fn`).

    Returns:
        train_step(state, batch, key) -> (state, metrics); see `train_step_fn`.
    """
    return jit_train_step(train_step_fn(graphdef, optimizer, mesh, **options), mesh)
