"""Encoder tests: MLLA block vs a numpy oracle, gradients, streaming, shapes, golden count."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mdjpt_jax.models import VARIANTS, ChannelEncoder, Encoder, MLLABlock, stratified_norm
from mdjpt_jax.models.mdjpt import DynamicsModel
from mdjpt_jax.models.mlla import extract_patches
from tests import naive_models as naive

TOL = 1e-4  # composite functions
FS = 125.0
# Golden parameter count of Encoder(60, 625, "paper"): channel encoder 375,456
# (read-in 4,224 + 2 blocks x 183,552 + read-out 4,128), mixer 3,904, dynamics 369,664,
# projector 4,096.
PAPER_PARAMS = 753_120


def _randomize(module, seed):
    """Replaces every parameter (zero-initialized biases included) by N(0, 0.3^2)."""
    leaves, treedef = jax.tree.flatten(nnx.state(module, nnx.Param))
    rng = np.random.default_rng(seed)  # numpy: no per-shape compilation
    new = [jnp.asarray(0.3 * rng.standard_normal(leaf.shape), leaf.dtype) for leaf in leaves]
    nnx.update(module, jax.tree.unflatten(treedef, new))


def _numpy_params(module):
    flat = jax.tree_util.tree_flatten_with_path(nnx.state(module, nnx.Param))[0]
    return {
        ".".join(k.key for k in path if hasattr(k, "key")): np.asarray(leaf, np.float64)
        for path, leaf in flat
    }


@pytest.mark.parametrize("causal", [False, True])
def test_mlla_block_matches_numpy_oracle(causal):
    block = MLLABlock(8, 2, 2.0, causal=causal, chunk_size=3, rngs=nnx.Rngs(params=0))
    _randomize(block, 1)
    x = jax.random.normal(jax.random.key(2), (2, 7, 8))
    out = nnx.jit(lambda m, x: m(x))(block, x)
    expected = naive.mlla_block(np.asarray(x), _numpy_params(block), 2, causal)
    np.testing.assert_allclose(out, expected, rtol=TOL, atol=TOL)


def test_every_mlla_parameter_gets_a_nonzero_gradient():
    block = MLLABlock(8, 2, 2.0, causal=True, chunk_size=4, rngs=nnx.Rngs(params=0))
    x = jax.random.normal(jax.random.key(3), (2, 9, 8))
    target = jax.random.normal(jax.random.key(4), (2, 9, 8))

    @nnx.jit
    def grads(model, x):
        return nnx.grad(lambda m: jnp.mean((m(x) - target) ** 2))(model)

    flat = jax.tree_util.tree_flatten_with_path(grads(block, x))[0]
    assert len(flat) == 24  # 12 layers x (kernel or scale, bias)
    for path, g in flat:
        assert float(jnp.max(jnp.abs(g))) > 0.0, jax.tree_util.keystr(path)


def test_patches_are_slices_of_the_signal():
    x = jax.random.normal(jax.random.key(5), (3, 200))
    np.testing.assert_array_equal(extract_patches(x, 32, 6), naive.extract_patches(x, 32, 6))
    np.testing.assert_array_equal(
        extract_patches(x[:, :37], 32, 6), naive.extract_patches(x[:, :37], 32, 6)
    )


def test_streaming_channel_encoder_equals_whole_window():
    v = VARIANTS["tiny"]
    enc = ChannelEncoder(
        patch_size=32,
        patch_stride=6,
        d_model=v["d_model"],
        depth=2,
        num_heads=v["num_heads"],
        mlp_ratio=2.0,
        readout_dim=8,
        causal=True,
        chunk_size=5,
        rngs=nnx.Rngs(params=0),
    )
    _randomize(enc, 6)
    x = jax.random.normal(jax.random.key(7), (3, 160))
    encode = nnx.jit(lambda m, x: m(x))
    stream = nnx.jit(lambda m, state, chunk: m.stream(state, chunk))
    whole = encode(enc, x)
    state = enc.init_stream_state((3,))
    pieces, start = [], 0
    for size in (0, 37, 1, 58, 64):  # 160 samples in uneven chunks
        state, tokens = stream(enc, state, x[:, start : start + size])
        pieces.append(tokens)
        start += size
    streamed = jnp.concatenate(pieces, axis=1)
    assert streamed.shape == whole.shape == (3, 22, 8)
    np.testing.assert_allclose(streamed, whole, rtol=TOL, atol=TOL)
    # The causal encoder never looks ahead; the global one does.
    changed = x.at[:, 100:].set(0.0)
    np.testing.assert_allclose(encode(enc, changed)[:, :11], whole[:, :11], rtol=TOL, atol=TOL)


def test_streaming_needs_causal_encoder():
    enc = ChannelEncoder(
        patch_size=32,
        patch_stride=6,
        d_model=8,
        depth=1,
        num_heads=2,
        mlp_ratio=2.0,
        readout_dim=4,
        causal=False,
        rngs=nnx.Rngs(params=0),
    )
    with pytest.raises(ValueError, match="causal"):
        enc.init_stream_state((2,))


def test_stratified_norm_matches_numpy_loop():
    x = 3.0 + 2.0 * np.random.default_rng(8).standard_normal((3, 4, 5, 6, 7))
    norm = jax.jit(stratified_norm, static_argnames="time_axis")
    for axis in (-1, -2):
        np.testing.assert_allclose(
            norm(jnp.asarray(x, jnp.float32), time_axis=axis),
            naive.stratified_norm(x, time_axis=axis),
            rtol=1e-5,
            atol=1e-5,
        )


@pytest.fixture(scope="module")
def tiny_encoder():
    return Encoder(
        n_chans=5, n_times=250, variant="tiny", attention="global", rngs=nnx.Rngs(params=0)
    )


@pytest.fixture(scope="module")
def forward():
    @nnx.jit
    @chex.assert_max_traces(n=1)
    def run(model, x):
        return model(x)

    return run


def test_stratified_norm_never_mixes_subjects(tiny_encoder, forward):
    x = jax.random.normal(jax.random.key(9), (3, 4, 5, 250))
    out = forward(tiny_encoder, x)
    out2 = forward(tiny_encoder, x.at[1].multiply(5.0).at[1, 0].add(3.0))  # same shape: no retrace
    for name in ("projection", "mixed", "features"):
        np.testing.assert_allclose(out2[name][0], out[name][0], rtol=TOL, atol=TOL)
        np.testing.assert_allclose(out2[name][2], out[name][2], rtol=TOL, atol=TOL)
        assert not np.allclose(out2[name][1], out[name][1])
    np.testing.assert_allclose(jnp.linalg.norm(out["projection"], axis=-1), 1.0, rtol=1e-5)
    embed = nnx.jit(lambda m, x: m.embed(x))(tiny_encoder, x)
    np.testing.assert_allclose(embed, out["features"], rtol=TOL, atol=TOL)


@pytest.mark.parametrize("variant", ["paper", "tiny"])
@pytest.mark.parametrize("attention", ["global", "causal"])
@pytest.mark.parametrize("seconds,n_tokens,embed_len", [(2.5, 47, 1), (5.0, 99, 2), (10.0, 204, 9)])
def test_output_shapes_for_window_lengths(variant, attention, seconds, n_tokens, embed_len):
    n_times = int(seconds * FS)
    v = VARIANTS[variant]
    enc = nnx.eval_shape(lambda: Encoder(60, n_times, variant, attention, rngs=nnx.Rngs(0)))
    x = jax.ShapeDtypeStruct((2, 3, 60, n_times), jnp.float32)
    out = jax.eval_shape(lambda x: Encoder(60, n_times, variant, attention, rngs=nnx.Rngs(0))(x), x)
    maps = 4 * v["readout_dim"] * v["filters_per_feature"]
    assert out["projection"].shape == (2, 3, maps * embed_len) == (2, 3, enc.embedding_dim)
    assert out["mixed"].shape == (2, 3, v["readout_dim"], v["mixed_chans"], n_tokens)
    assert out["features"].shape == (2, 3, maps) == (2, 3, enc.feature_dim)


def test_golden_parameter_count_paper():
    enc = nnx.eval_shape(lambda: Encoder(60, 625, "paper", "global", rngs=nnx.Rngs(0)))
    count = sum(p.size for p in jax.tree.leaves(nnx.state(enc, nnx.Param)))
    assert count == PAPER_PARAMS
    causal = nnx.eval_shape(lambda: Encoder(60, 625, "paper", "causal", rngs=nnx.Rngs(0)))
    assert jax.tree.structure(nnx.state(causal, nnx.Param)) == jax.tree.structure(
        nnx.state(enc, nnx.Param)
    )


def test_rejects_bad_arguments_and_shapes(tiny_encoder):
    with pytest.raises(ValueError, match="n_times"):
        Encoder(5, 100, "tiny", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="attention"):
        Encoder(5, 250, "tiny", "bidirectional", rngs=nnx.Rngs(0))
    with pytest.raises(AssertionError):
        tiny_encoder(jnp.zeros((2, 3, 4, 250)))


@pytest.mark.parametrize("causal", [False, True])
def test_multiscale_convs_match_grouped_conv_loops(causal):
    dyn = DynamicsModel(
        3,
        5,
        filters_per_feature=2,
        dilations=(1, 3, 6, 12),
        att_len=4,
        causal=causal,
        rngs=nnx.Rngs(params=0),
    )
    _randomize(dyn, 12)
    x = jax.random.normal(jax.random.key(13), (2, 3, 3, 5, 17))  # [S, W, F, C, N]
    out = jax.jit(dyn._multiscale)(x)
    expected = naive.multiscale_conv(
        np.asarray(x).reshape(6, 3, 5, 17),
        dyn.ms_kernel[...],
        dyn.ms_bias[...],
        (1, 3, 6, 12),
        causal,
    )
    np.testing.assert_allclose(out.reshape(6, 24, 17), expected, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("remat_policy", ["full", "dots", "none"])
def test_remat_chunks_give_the_same_outputs_and_gradients(remat_policy):
    """Chunked channel encoder, under every rematerialization policy == all sequences at
    once (7 = 3 + 3 + 1).

    Causal: the attention scan inside the chunk map is the most nested case.
    """
    x = jax.random.normal(jax.random.key(14), (2, 1, 7, 150))
    target = jax.random.normal(jax.random.key(15), (2, 1, 7, 20, 8))

    @nnx.jit
    def loss_and_grads(model, x):
        return nnx.value_and_grad(lambda m: jnp.sum(m(x) * target))(model)

    results = []
    for remat_chunk in (None, 3):
        enc = ChannelEncoder(
            patch_size=32,
            patch_stride=6,
            d_model=8,
            depth=1,
            num_heads=2,
            mlp_ratio=2.0,
            readout_dim=8,
            causal=True,
            chunk_size=5,
            remat_chunk=remat_chunk,
            remat_policy=remat_policy,
            rngs=nnx.Rngs(params=0),
        )
        results.append(loss_and_grads(enc, x))
    (loss, grads), (loss_chunked, grads_chunked) = results
    np.testing.assert_allclose(loss_chunked, loss, rtol=1e-5)
    chex.assert_trees_all_close(grads_chunked, grads, rtol=TOL, atol=TOL)
    assert float(jnp.max(jnp.abs(grads["read_in"]["kernel"][...]))) > 0.0


def test_remat_policy_changes_what_the_backward_pass_recomputes():
    """The policies differ in the program, not only in name: "full" recomputes the forward
    (more dot products in the gradient's jaxpr than "none"), "dots" saves them."""
    x = jax.random.normal(jax.random.key(16), (7, 150))

    def n_dots(policy):
        enc = ChannelEncoder(
            patch_size=32, patch_stride=6, d_model=8, depth=1, num_heads=2, mlp_ratio=2.0,
            readout_dim=8, causal=False, remat_chunk=3, remat_policy=policy,
            rngs=nnx.Rngs(params=0),
        )  # fmt: skip
        graphdef, state = nnx.split(enc)
        grad = jax.grad(lambda s: jnp.sum(nnx.merge(graphdef, s)(x)))
        return str(jax.make_jaxpr(grad)(state)).count("dot_general")

    full, dots, none = n_dots("full"), n_dots("dots"), n_dots("none")
    assert full > none and dots == none
    with pytest.raises(ValueError, match="remat_policy must be one of"):
        ChannelEncoder(
            patch_size=32, patch_stride=6, d_model=8, depth=1, num_heads=2, mlp_ratio=2.0,
            readout_dim=8, causal=False, remat_policy="some", rngs=nnx.Rngs(params=0),
        )  # fmt: skip
