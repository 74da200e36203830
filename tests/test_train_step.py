"""train_step.py, optimizer.py, distributed.py: 8 devices == 1 device == numpy oracle.

The sharded-equals-unsharded checks run in float64 (`jax.enable_x64`). Why: measured on
this tiny model against a float64 truth, the float32 gradient of ONE device is already
~1e-5 off per leaf (up to 1.7e-5), and 8 vs 1 devices differ by up to 2.9e-5 on the
projector bias, whose gradient is a sum of nearly cancelling terms; the biases just before
a normalization (ffn_out, read_out) have a mathematically zero gradient, so their float32
gradient is pure rounding noise that Adam rescales into +-lr steps. None of that is a
sharding effect, and in float64 the two meshes agree to ~1e-12, which the fixed 1e-5
tolerance then checks with a wide margin.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from mdjpt_jax import distributed, optimizer
from mdjpt_jax.models import Encoder
from mdjpt_jax.pretrain import train_step
from tests import naive_models as naive

TOL = 1e-5
K, P, M, C, T = 2, 8, 3, 4, 125  # datasets, pairs, windows per pair, channels, samples
# float64: absolute floor for the mathematically-zero gradients of the biases placed before
# a normalization (read_out, ffn_out): measured rounding ~1e-11 per dataset term, and the
# loss sums the K datasets' terms (the original code's weighting), so the floor is K x 1e-10.
ATOL = K * 1e-10
LR, WD = 1e-3, 1e-2
# Parameters after Adam's first step: a mathematically-zero gradient g (float64 rounding,
# <= 1e-14 per dataset term in the gradients, which mu/nu check at ATOL) moves its
# parameter by LR * g / eps (optax's eps = 1e-8), i.e. up to K x 1e-9.
PARAM_ATOL = LR * K * 1e-14 / 1e-8
B1 = 0.9  # optax.adamw default: after one step mu = (1 - B1) * grad


def _schedule():
    return optimizer.learning_rate_schedule(learning_rate=LR, warmup_steps=0, total_steps=10)


def _optimizer():
    return optimizer.make_optimizer(
        learning_rate=LR, weight_decay=WD, warmup_steps=0, total_steps=10
    )


def _to_numpy(tree):
    return jax.tree.map(np.asarray, tree)


def _run(step_fn, mesh, host_state, eeg):
    """One step from fresh device copies (the state's buffers are donated), with every
    host <-> device copy explicit: the step itself runs under transfer_guard("disallow")."""
    state = distributed.replicate(host_state, mesh)
    batch = distributed.host_batch_to_global({"eeg": eeg}, mesh)
    key = distributed.replicate(jax.random.key(0), mesh)
    with jax.transfer_guard("disallow"):
        new_state, metrics = step_fn(state, batch, key)
    return jax.device_get((new_state, metrics))


@pytest.fixture(scope="module")
def setup():
    """Float64 model, batch, the traced-once 8-device step and both meshes' results."""
    with jax.enable_x64(True):
        model = Encoder(C, T, "tiny", rngs=nnx.Rngs(params=0))
        graphdef, params = nnx.split(model, nnx.Param)
        params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
        opt = _optimizer()
        host_state = _to_numpy(
            train_step.TrainState(
                step=jnp.zeros((), jnp.int32), params=params, opt_state=opt.init(params)
            )
        )
        eeg = np.random.default_rng(0).standard_normal((K, P, 2, M, C, T))
        meshes = {n: distributed.make_mesh(jax.devices()[:n]) for n in (8, 1)}
        make = functools.partial(
            train_step.train_step_fn, graphdef, opt, learning_rate_fn=_schedule()
        )
        steps = {
            8: train_step.jit_train_step(chex.assert_max_traces(make(meshes[8]), n=1), meshes[8]),
            1: train_step.make_train_step(graphdef, opt, meshes[1], learning_rate_fn=_schedule()),
        }
        results = {n: _run(steps[n], meshes[n], host_state, eeg) for n in (8, 1)}
        _run(steps[8], meshes[8], host_state, eeg)  # a second call: must not retrace
    return dict(
        graphdef=graphdef,
        host_state=host_state,
        eeg=eeg,
        meshes=meshes,
        steps=steps,
        results=results,
    )


def _assert_trees_close(actual, expected, atol=ATOL):
    flat_expected = jax.tree_util.tree_leaves_with_path(expected)
    flat_actual = jax.tree.leaves(actual)
    assert len(flat_actual) == len(flat_expected)
    for (path, want), got in zip(flat_expected, flat_actual):
        np.testing.assert_allclose(
            got, want, rtol=TOL, atol=atol, err_msg=jax.tree_util.keystr(path)
        )


def test_step_on_8_devices_equals_step_on_1_device(setup):
    (state8, metrics8), (state1, metrics1) = setup["results"][8], setup["results"][1]
    assert metrics8.keys() == metrics1.keys()
    _assert_trees_close(metrics8, metrics1)
    _assert_trees_close(state8.params, state1.params, atol=PARAM_ATOL)
    _assert_trees_close(state8.opt_state, state1.opt_state)  # mu, nu: the gradients
    # Not a vacuous comparison: Adam's first step moves a parameter by ~LR wherever its
    # gradient is non-zero, i.e. in every leaf but the two biases placed before a norm.
    moved = [
        np.max(np.abs(a - b))
        for a, b in zip(jax.tree.leaves(state1.params), jax.tree.leaves(setup["host_state"].params))
    ]
    assert sum(step > 0.5 * LR for step in moved) >= len(moved) - 2


def _naive_loss_terms(graphdef, params, eeg):
    """Numpy oracle on the whole batch: NT-Xent per pair; CDA per pair slice p over its 2K
    (k, s) subject groups, averaged over the slices."""
    forward = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))
    out = _to_numpy(forward(params, eeg.reshape((K * P * 2, M, C, T))))
    projection = out["projection"].reshape(K, P, 2, M, -1)
    per_dataset = np.array(
        [np.mean([naive.nt_xent(projection[k, p]) for p in range(P)]) for k in range(K)]
    )
    mixed = out["mixed"].reshape((K, P, 2, M) + out["mixed"].shape[2:])
    per_slice = []
    for p in range(P):
        windows = mixed[:, p].reshape((K * 2 * M,) + mixed.shape[4:])  # groups (k, s)
        per_slice.append(naive.cda(windows, np.repeat(np.arange(2 * K), M), 2 * K))
    return per_dataset, float(np.mean(per_slice))


def test_metrics_match_numpy_oracle(setup):
    with jax.enable_x64(True):
        per_dataset, cda = _naive_loss_terms(
            setup["graphdef"], setup["host_state"].params, setup["eeg"]
        )
    metrics = setup["results"][8][1]
    np.testing.assert_allclose(metrics["contrastive_per_dataset"], per_dataset, rtol=TOL)
    # The original code's weighting: sum over datasets of NT-Xent + 0.01 CDA.
    np.testing.assert_allclose(metrics["contrastive"], per_dataset.sum(), rtol=TOL)
    np.testing.assert_allclose(metrics["cda"], cda, rtol=TOL)
    np.testing.assert_allclose(metrics["loss"], per_dataset.sum() + 0.01 * cda, rtol=TOL)
    assert metrics["cda"] > 0.1 and metrics["finite"]


def test_mean_reduction_weights_datasets_equally(setup):
    """dataset_reduction="mean": loss = mean_k NT-Xent_k + 0.01 CDA, on one device."""
    mesh = setup["meshes"][1]
    with jax.enable_x64(True):
        step = train_step.make_train_step(
            setup["graphdef"], _optimizer(), mesh, dataset_reduction="mean"
        )
        _, metrics = _run(step, mesh, setup["host_state"], setup["eeg"])
    per_dataset, cda = metrics["contrastive_per_dataset"], metrics["cda"]
    np.testing.assert_allclose(metrics["loss"], per_dataset.mean() + 0.01 * cda, rtol=TOL)
    np.testing.assert_allclose(cda, setup["results"][8][1]["cda"], rtol=TOL)
    with pytest.raises(ValueError, match="dataset_reduction"):
        train_step.train_step_fn(setup["graphdef"], _optimizer(), mesh, dataset_reduction="max")


def test_gradient_matches_central_difference(setup):
    """d/dh loss(params + h v) at 0 == <grad, v>, grad read from Adam's first moment."""
    host_state, eeg, mesh = setup["host_state"], setup["eeg"], setup["meshes"][1]
    grads = jax.tree.map(
        lambda mu: mu / (1 - B1), optax.tree_utils.tree_get(setup["results"][1][0].opt_state, "mu")
    )
    rng = np.random.default_rng(1)
    direction = jax.tree.map(lambda a: rng.standard_normal(a.shape), host_state.params)
    # The encoder is only piecewise smooth (ReLUs): a larger step crosses kinks (at
    # h = 1e-5 the difference is 3% off); float64 keeps h = 1e-7 free of rounding.
    h = 1e-7
    losses = []
    with jax.enable_x64(True):
        for sign in (1.0, -1.0):
            params = jax.tree.map(lambda p, v: p + sign * h * v, host_state.params, direction)
            state = host_state.replace(params=params)
            losses.append(_run(setup["steps"][1], mesh, state, eeg)[1]["loss"])
    slope = (losses[0] - losses[1]) / (2 * h)
    inner = sum(np.sum(g * v) for g, v in zip(jax.tree.leaves(grads), jax.tree.leaves(direction)))
    np.testing.assert_allclose(slope, inner, rtol=TOL)


def test_metrics_shapes_and_values(setup):
    state, metrics = setup["results"][8]
    assert metrics["contrastive_per_dataset"].shape == (K,)
    for name in ("loss", "contrastive", "cda", "grad_norm", "learning_rate", "finite"):
        assert metrics[name].shape == (), name
    assert metrics["finite"].dtype == bool and bool(metrics["finite"])
    # The per-module norms partition the gradient: their root sum of squares is its norm.
    module_norms = np.array([float(v) for v in metrics["grad_norm_by_module"].values()])
    assert set(metrics["grad_norm_by_module"]) == {
        "channel_encoder",
        "mixer",
        "dynamics",
        "projector",
    }
    np.testing.assert_allclose(np.sqrt(np.sum(module_norms**2)), metrics["grad_norm"], rtol=TOL)
    assert abs(float(metrics["similarity"]["positive_minus_negative"])) < 2.0
    assert 0.0 < float(metrics["similarity"]["spread"]) < 2.0
    np.testing.assert_allclose(metrics["learning_rate"], LR, rtol=TOL)
    assert int(state.step) == 1


def test_nan_in_batch_gives_finite_false_without_retracing(setup):
    eeg = setup["eeg"].copy()
    eeg[1, 5, 0, 2, 3, 17] = np.nan
    with jax.enable_x64(True):
        _, metrics = _run(setup["steps"][8], setup["meshes"][8], setup["host_state"], eeg)
    assert not bool(metrics["finite"])
    assert np.isnan(metrics["loss"])


def test_pairs_not_divisible_by_devices_is_an_error(setup):
    mesh = setup["meshes"][8]
    with pytest.raises(
        ValueError,
        match=r"pairs_per_step \(6\) must be divisible by the "
        r"number of devices \(8\)",
    ):
        distributed.host_batch_to_global({"eeg": np.zeros((K, 6, 2, M, C, T), np.float32)}, mesh)
    step = train_step.train_step_fn(setup["graphdef"], _optimizer(), mesh)
    batch = {"eeg": jax.ShapeDtypeStruct((K, 12, 2, M, C, T), jnp.float32)}
    with pytest.raises(ValueError, match=r"pairs_per_step \(12\) must be divisible"):
        jax.eval_shape(step, setup["host_state"], batch, jax.random.key(0))
    with pytest.raises(ValueError, match="disagree on the pairs axis"):
        distributed.host_batch_to_global(
            {"eeg": np.zeros((K, 8, 2, M, C, T)), "subject": np.zeros((K, 4, 2), np.int32)}, mesh
        )


def test_unknown_loss_option_is_an_error(setup):
    with pytest.raises(ValueError, match="cda_groups"):
        train_step.train_step_fn(
            setup["graphdef"], _optimizer(), setup["meshes"][1], cda_groups="session"
        )


def test_schedule_warmup_then_cosine():
    schedule = optimizer.learning_rate_schedule(learning_rate=2.0, warmup_steps=4, total_steps=12)
    expected = {0: 0.0, 2: 1.0, 4: 2.0, 8: 1.0, 12: 0.0, 20: 0.0}  # cos midpoint = peak/2
    for step, rate in expected.items():
        np.testing.assert_allclose(schedule(step), rate, atol=TOL, err_msg=str(step))
    for warmup in (5, 4):  # longer than the run, or no step left for the decay
        with pytest.raises(ValueError, match="warmup_steps"):
            optimizer.learning_rate_schedule(learning_rate=1.0, warmup_steps=warmup, total_steps=4)


@pytest.mark.parametrize("clip", [None, 0.5])
def test_adamw_first_step_by_hand(clip):
    opt = optimizer.make_optimizer(
        learning_rate=0.1, weight_decay=0.2, warmup_steps=0, total_steps=100, grad_clip_norm=clip
    )
    params = {"w": np.array([1.0, -2.0, 3.0], np.float32)}
    grads = {"w": np.array([0.3, -0.4, 0.0], np.float32)}  # global norm 0.5
    updates, _ = opt.update(grads, opt.init(params), params)
    g = grads["w"] * (1.0 if clip is None else min(1.0, clip / 0.5))
    # Bias-corrected first Adam step: m_hat = g, v_hat = g^2 -> g / (|g| + eps).
    expected = -0.1 * (g / (np.abs(g) + 1e-8) + 0.2 * params["w"])
    np.testing.assert_allclose(updates["w"], expected, rtol=TOL, atol=1e-7)


def test_initialize_is_a_noop_for_one_process(monkeypatch):
    for name in distributed._CLUSTER_VARS + distributed._SLURM_VARS:
        monkeypatch.delenv(name, raising=False)
    assert distributed.initialize() is False
    with pytest.raises(ValueError, match="all of coordinator_address"):
        distributed.initialize("127.0.0.1:1234")


def test_cluster_detection_from_environment():
    slurm = {
        "SLURM_JOB_ID": "7",
        "SLURM_STEP_NODELIST": "n1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
    }
    assert distributed._cluster_launch_detected(dict(slurm, SLURM_NTASKS="4"))
    assert not distributed._cluster_launch_detected(dict(slurm, SLURM_NTASKS="1"))
    assert distributed._cluster_launch_detected({"JAX_COORDINATOR_ADDRESS": "h:1"})
    assert not distributed._cluster_launch_detected({})


def test_make_mesh_has_one_data_axis():
    mesh = distributed.make_mesh()
    assert mesh.axis_names == ("data",) and mesh.devices.size == jax.device_count() == 8


def _first_moment_grads(state):
    return jax.tree.map(lambda mu: mu / (1 - B1), optax.tree_utils.tree_get(state.opt_state, "mu"))


def _tree_norm(tree):
    return float(np.sqrt(sum(np.sum(np.square(a)) for a in jax.tree.leaves(tree))))


def test_cda_diagnostics_against_the_gradients_of_two_steps(setup):
    """diagnose_every=1 on 8 devices, with and without the CDA term, from the same state.
    The gradients are read from Adam's first moment: their difference is weight x CDA's
    gradient, the no-CDA one is the contrastive gradient."""
    mesh, weight = setup["meshes"][8], 0.3
    with jax.enable_x64(True):
        results = {}
        for use_cda in (True, False):
            step = train_step.make_train_step(
                setup["graphdef"],
                _optimizer(),
                mesh,
                cda_weight=weight,
                use_cda=use_cda,
                diagnose_every=1,
            )
            results[use_cda] = _run(step, mesh, setup["host_state"], setup["eeg"])
    (with_state, with_metrics), (without_state, without_metrics) = results[True], results[False]
    grads_with, grads_without = map(_first_moment_grads, (with_state, without_state))
    cda_part = jax.tree.map(lambda a, b: a - b, grads_with, grads_without)
    on, off = with_metrics["cda_diagnostics"], without_metrics["cda_diagnostics"]
    # CDA's value is measured without the term too; the loss's cda stays 0 there.
    assert without_metrics["cda"] == 0.0
    np.testing.assert_allclose(on["cda"], with_metrics["cda"], rtol=TOL)
    np.testing.assert_allclose(off["cda"], with_metrics["cda"], rtol=TOL)
    np.testing.assert_allclose(on["grad_norm_cda_weighted"], _tree_norm(cda_part), rtol=1e-4)
    np.testing.assert_allclose(on["grad_norm_cda"], _tree_norm(cda_part) / weight, rtol=1e-4)
    np.testing.assert_allclose(off["grad_norm_cda"], on["grad_norm_cda"], rtol=TOL)
    for measured in (on, off):
        np.testing.assert_allclose(
            measured["grad_norm_contrastive"], _tree_norm(grads_without), rtol=1e-4
        )
    assert off["grad_norm_cda_weighted"] == 0.0 and off["cda_over_contrastive"] == 0.0
    np.testing.assert_allclose(
        on["cda_over_contrastive"], _tree_norm(cda_part) / _tree_norm(grads_without), rtol=1e-4
    )
    mixer = setup["host_state"].params["mixer"]
    np.testing.assert_allclose(on["mixer_norm"], _tree_norm(mixer), rtol=TOL)
    g = cda_part["mixer"]
    along = sum(np.sum(a * b) for a, b in zip(jax.tree.leaves(mixer), jax.tree.leaves(g)))
    radial = along**2 / (_tree_norm(mixer) ** 2 * _tree_norm(g) ** 2)
    np.testing.assert_allclose(on["cda_radial_share_mixer"], radial, rtol=1e-4)
    assert 0.0 < radial <= 1.0
    # Without diagnose_every nothing is measured.
    assert all(np.isnan(v) for v in setup["results"][8][1]["cda_diagnostics"].values())


def test_cda_options_reach_the_loss(setup):
    """scrambled and scale-free CDA change the CDA value (and only it); a bad name is refused."""
    mesh = setup["meshes"][1]
    values = {}
    with jax.enable_x64(True):
        for options in ({}, {"cda_covariance": "scrambled"}, {"cda_scale_free": True}):
            step = train_step.make_train_step(setup["graphdef"], _optimizer(), mesh, **options)
            metrics = _run(step, mesh, setup["host_state"], setup["eeg"])[1]
            values[tuple(options)] = metrics
    base = values[()]
    for key in (("cda_covariance",), ("cda_scale_free",)):
        assert abs(values[key]["cda"] - base["cda"]) > 1e-3 * base["cda"], key
        np.testing.assert_allclose(values[key]["contrastive"], base["contrastive"], rtol=TOL)
    with pytest.raises(ValueError, match="cda_covariance"):
        train_step.train_step_fn(setup["graphdef"], _optimizer(), mesh, cda_covariance="raw")
