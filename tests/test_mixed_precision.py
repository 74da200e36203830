"""Mixed precision (model.dtype=bfloat16): bf16 activations and matmuls, float32 the rest.

References are the float32 model on the same parameters. Tolerances, stated once:
bfloat16 keeps 8 mantissa bits (relative rounding 2^-9 ~ 0.2 %), and ~20 layers compound
it, so the forward is compared at a few percent; the loss curve at 5 % (the difference
compounds through the optimizer steps: 2.1 % after 4 steps measured). The training-curve
test compiles two train steps (~1 min on 2 shared cores) and is `slow`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mdjpt_jax import distributed, optimizer
from mdjpt_jax.models import Encoder
from mdjpt_jax.pretrain import train_step

N_CHANS, N_TIMES = 5, 250  # 2 s at 125 Hz
PROJECTION_MIN_COSINE = 0.99  # per window, unit-norm embeddings
RELATIVE_TOLERANCE = dict(mixed=0.05, features=0.05)  # ||bf16 - f32|| / ||f32||
LOSS_CURVE_RTOL = 0.05  # per step, bf16 loss vs f32 loss
STEPS = 4


def _encoders(**kwargs):
    """The same parameters computed in float32 and in bfloat16."""
    kwargs = dict(rngs=nnx.Rngs(params=0), remat_chunk=None, **kwargs)  # remat: same math
    return (
        Encoder(N_CHANS, N_TIMES, "tiny", **kwargs),
        Encoder(
            N_CHANS, N_TIMES, "tiny", dtype="bfloat16", **dict(kwargs, rngs=nnx.Rngs(params=0))
        ),
    )


def _eeg(shape, seed=0):
    return 20.0 * np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _relative_error(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@pytest.mark.parametrize("attention", ["global", pytest.param("causal", marks=pytest.mark.slow)])
def test_bf16_forward_is_close_to_f32(attention):
    f32, bf16 = _encoders(attention=attention)
    x = _eeg((2, 6, N_CHANS, N_TIMES))
    want, got = nnx.jit(lambda a, b: (a(x), b(x)))(f32, bf16)
    for name in ("projection", "mixed", "features"):
        assert got[name].dtype == jnp.float32, name
    cosine = jnp.sum(want["projection"] * got["projection"], axis=-1)
    assert float(cosine.min()) > PROJECTION_MIN_COSINE
    for name, tolerance in RELATIVE_TOLERANCE.items():
        assert _relative_error(got[name], want[name]) < tolerance, name


def test_bf16_runs_matmuls_in_bf16_with_f32_params():
    _, bf16 = _encoders()
    graphdef, params = nnx.split(bf16, nnx.Param)
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype("float32")}
    x = _eeg((2, 3, N_CHANS, N_TIMES))
    jaxpr = jax.make_jaxpr(lambda p: nnx.merge(graphdef, p)(x))(params)
    dots = [eqn for eqn in _equations(jaxpr.jaxpr) if eqn.primitive.name == "dot_general"]
    assert dots
    assert all(v.aval.dtype == jnp.bfloat16 for eqn in dots for v in eqn.invars)


def _equations(jaxpr):
    """Every equation of a jaxpr, sub-jaxprs (scan, map, checkpoint) included."""
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _equations(inner)


def _losses(dtype, mesh, eeg):
    model = Encoder(N_CHANS, N_TIMES, "tiny", rngs=nnx.Rngs(params=0), dtype=dtype)
    tx = optimizer.make_optimizer(
        learning_rate=1e-3, weight_decay=1e-4, warmup_steps=0, total_steps=STEPS
    )
    graphdef, state = train_step.init_train_state(model, tx, mesh=mesh)
    step = train_step.make_train_step(graphdef, tx, mesh)
    batch = distributed.host_batch_to_global({"eeg": eeg}, mesh)
    losses = []
    for _ in range(STEPS):
        state, metrics = step(state, batch, jax.random.key(0))
        losses.append(float(metrics["loss"]))
    return np.array(losses), state


@pytest.mark.slow
def test_bf16_training_follows_f32_loss_curve():
    """A few AdamW steps on one fixed batch: the losses agree step by step, and the
    parameters, gradients' optimizer moments and step counter keep their dtypes."""
    mesh = distributed.make_mesh(jax.devices()[:2])
    eeg = _eeg((2, 2, 2, 4, N_CHANS, N_TIMES), seed=1)  # [K, P, 2, M, C, T]
    want, _ = _losses("float32", mesh, eeg)
    got, state = _losses("bfloat16", mesh, eeg)
    assert want[-1] < want[0]  # the curve moves, so following it means something
    np.testing.assert_allclose(got, want, rtol=LOSS_CURVE_RTOL)
    floats = [
        leaf
        for leaf in jax.tree.leaves((state.params, state.opt_state))
        if jnp.issubdtype(leaf.dtype, jnp.floating)
    ]
    assert {leaf.dtype for leaf in floats} == {jnp.dtype("float32")}


def test_unknown_dtype_is_an_error():
    with pytest.raises(ValueError, match="dtype must be one of"):
        Encoder(N_CHANS, N_TIMES, "tiny", rngs=nnx.Rngs(params=0), dtype="float16")


@pytest.mark.slow
def test_bf16_pretraining_on_synthetic_data_follows_f32(synthetic_data_dir, tmp_path):
    """train.run on the small synthetic config (2 datasets, P=8 over 8 devices, M=4, tiny
    encoder, 6 steps, lr 1e-3): the bf16 run's logged losses follow the f32 run's."""
    from configs import pretrain
    from mdjpt_jax import checkpointing
    from mdjpt_jax.pretrain import train
    from mdjpt_jax.workdir import metrics_path, read_metrics

    def loss_curve(dtype):
        config = pretrain.get_config("synthetic")
        config.data.update(
            dict(
                datasets=("synthetic_emotion/d1", "synthetic_emotion/d2"),
                data_dir=str(synthetic_data_dir),
                pairs_per_step=8,
                windows_per_pair=4,
                num_threads=0,
                prefetch=0,
            )
        )
        config.optim.update(dict(learning_rate=1e-3, warmup_steps=0))
        config.train.update(dict(steps=6, log_every=1, checkpoint_every=6, eval_every=0))
        config.model.dtype = dtype
        workdir = str(tmp_path / dtype)
        encoder_dir = train.run(config, workdir)
        rows = read_metrics(metrics_path(workdir))
        return np.array([row["loss"] for row in rows]), encoder_dir

    want, _ = loss_curve("float32")
    got, encoder_dir = loss_curve("bfloat16")
    np.testing.assert_allclose(got, want, rtol=LOSS_CURVE_RTOL)
    encoder, info = checkpointing.load_encoder(encoder_dir)
    assert info["dtype"] == "bfloat16"
    params = jax.tree.leaves(nnx.state(encoder, nnx.Param))
    assert {leaf.dtype for leaf in params} == {jnp.dtype("float32")}
