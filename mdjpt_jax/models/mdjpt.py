"""The mdJPT encoder: channel encoder -> (SN) -> spatial mixer -> dynamics model -> projector.

Shapes for the paper variant, 5 s windows at 125 Hz (T = 625):

    x [S, W, 60, 625] -> channel encoder [S, W, 60, 99, 32] -> (SN)
      -> spatial mixer (Linear 60->64 over channels + ReLU)  mixed [S, W, 32, 64, 99]
      -> (SN) -> 4 dilated depthwise convs + temporal attention  maps [S, W, 512, 99]
      -> features = mean over time [S, W, 512]
      -> projector: avg-pool 15 [.., 512, 6] -> (SN) -> 2 convs k3 [.., 512, 2] -> (SN)
         -> flatten -> L2 normalize  projection [S, W, 1024]

The dynamics model and projector follow `cnn_MLLA` of the original code (stratified =
initial, middle1, middle2; the temporal attention conv and pool are left-padded there
already). Pooling drops the last N mod 15 tokens (floor, like torch AvgPool). The projector
convs are unpadded ('valid') as in the original; only when a sequence is shorter than the
kernel (2.5 s windows: 47 tokens -> 3 pooled -> 1) is it zero-padded to keep its length,
so the embedding size is 512 x L with L = 1 (2.5 s), 2 (5 s), 9 (10 s), 23 (20 s).

Mixed precision: `Encoder(..., dtype="bfloat16")` casts the input and every parameter at
its use to bfloat16, so activations and matmuls run in bfloat16 while the parameters (and
so their gradients and the optimizer state) stay float32. LayerNorm and stratified
normalization compute their statistics in float32, the attention softmax runs in float32,
and the outputs (projection, L2-normalized in float32; mixed, which feeds the CDA
covariances; features) are float32, so the losses are float32.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mdjpt_jax.models.mlla import REMAT_CHUNK, ChannelEncoder
from mdjpt_jax.models.normalization import full_precision, stratified_norm

VARIANTS = {
    "paper": dict(
        patch_size=32,
        patch_stride=6,
        d_model=128,
        depth=2,
        num_heads=8,
        mlp_ratio=2.0,
        readout_dim=32,
        mixed_chans=64,
        filters_per_feature=4,
        dilations=(1, 3, 6, 12),
        att_len=15,
        pool_len=15,
        smoother_len=3,
    ),
    "tiny": dict(
        patch_size=32,
        patch_stride=6,
        d_model=32,
        depth=1,
        num_heads=4,
        mlp_ratio=2.0,
        readout_dim=8,
        mixed_chans=16,
        filters_per_feature=4,
        dilations=(1, 3, 6, 12),
        att_len=15,
        pool_len=15,
        smoother_len=3,
    ),
}
ATTENTION_MODES = ("global", "causal")
COMPUTE_DTYPES = ("float32", "bfloat16")


def _uniform(rngs, shape, fan_in):
    bound = fan_in**-0.5  # torch conv default init bound
    return nnx.Param(jax.random.uniform(rngs.params(), shape, jnp.float32, -bound, bound))


def _time_conv(x, kernel, bias, padding):
    """Depthwise conv along the last axis: x [..., D, N], kernel [D, K], padding (l, r)."""
    size = kernel.shape[-1]
    kernel, bias = kernel.astype(x.dtype), bias.astype(x.dtype)
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [padding])
    n_out = x.shape[-1] - size + 1
    return sum(x[..., j : j + n_out] * kernel[:, j : j + 1] for j in range(size)) + bias[:, None]


class SpatialMixer(nnx.Module):
    """Shared Linear over the channel axis + ReLU: [S, W, C, N, F] -> [S, W, F, C2, N]."""

    def __init__(self, n_chans: int, mixed_chans: int, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(n_chans, mixed_chans, rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        dtype = tokens.dtype
        mixed = jnp.einsum("swcnf,ck->swfkn", tokens, self.linear.kernel[...].astype(dtype))
        return jax.nn.relu(mixed + self.linear.bias[...].astype(dtype)[:, None])


class DynamicsModel(nnx.Module):
    """Multi-scale spatiotemporal convs + temporal attention: [S,W,F,C2,N] -> [S,W,D,N].

    D = len(dilations) x F x filters_per_feature maps, ordered (dilation, feature, filter).
    """

    def __init__(
        self,
        n_features: int,
        mixed_chans: int,
        *,
        filters_per_feature: int,
        dilations,
        att_len: int,
        causal: bool,
        rngs: nnx.Rngs,
    ):
        self.dilations, self.att_len, self.causal = tuple(dilations), att_len, causal
        n_out = n_features * filters_per_feature
        self.n_maps = len(self.dilations) * n_out
        # OIHW kernels of torch Conv2d(F, F*M, (C2, 3), groups=F), one per dilation.
        self.ms_kernel = _uniform(
            rngs, (len(self.dilations), n_out, 1, mixed_chans, 3), 3 * mixed_chans
        )
        self.ms_bias = _uniform(rngs, (len(self.dilations), n_out), 3 * mixed_chans)
        self.att_kernel = _uniform(rngs, (self.n_maps, att_len), att_len)
        self.att_bias = _uniform(rngs, (self.n_maps,), att_len)
        self.att_point = nnx.Linear(self.n_maps, self.n_maps, rngs=rngs)

    def _multiscale(self, x):
        """x [S, W, F, C, N] -> [S, W, D, N]: the grouped (C x 3) convs of all dilations.

        One batched matmul (batch F) contracts the channels for every (dilation, filter,
        tap) at once; the taps are then shifted along N and summed. (XLA:CPU's grouped-conv
        backward is ~100x slower, and contracting stacked taps [.., C, K, N] needs
        transposes with a stride-3 minor axis that cost more than the matmul.)
        """
        n_groups, n_out, _, n_chans, size = self.ms_kernel.shape
        s, w, f, _, n = x.shape
        per_feature = n_out // f
        kernel = (
            self.ms_kernel[...].astype(x.dtype).reshape(n_groups, f, per_feature, n_chans, size)
        )
        kernel = jnp.transpose(kernel, (1, 0, 2, 4, 3))  # [F, G, M, K, C]
        taps = jnp.einsum("fgmkc,swfcn->swgfmkn", kernel, x)  # [S,W,G,F,M,K,N]
        outs = []
        for g, dilation in enumerate(self.dilations):
            pad = (size - 1) * dilation
            pad = (pad, 0) if self.causal else (pad // 2, pad - pad // 2)
            padded = jnp.pad(taps[:, :, g], [(0, 0)] * 5 + [pad])  # [S,W,F,M,K,N']
            y = sum(padded[..., j, j * dilation : j * dilation + n] for j in range(size))
            outs.append(y.reshape(s, w, n_out, n) + self.ms_bias[g].astype(x.dtype)[:, None])
        return jnp.concatenate(outs, axis=2)  # [S,W,D,N]

    def __call__(self, mixed: jax.Array) -> jax.Array:
        """mixed [S, W, F, C2, N] (already stratified-normalized) -> [S, W, D, N]."""
        maps = self._multiscale(mixed)
        dtype = maps.dtype
        att = jax.nn.relu(
            _time_conv(maps, self.att_kernel[...], self.att_bias[...], (self.att_len - 1, 0))
        )
        window = (1,) * (att.ndim - 1) + (self.att_len,)
        att = jax.lax.reduce_window(
            att,
            np.zeros((), dtype),
            jax.lax.add,
            window,
            (1,) * att.ndim,
            [(0, 0)] * (att.ndim - 1) + [(self.att_len - 1, 0)],
        )
        att = att / self.att_len  # zero padding counts in the mean, as in the original
        att = jnp.einsum("swgn,gh->swhn", att, self.att_point.kernel[...].astype(dtype))
        logits = full_precision(att + self.att_point.bias[...].astype(dtype)[:, None])
        att = jax.nn.softmax(logits, axis=2).astype(dtype)  # softmax in float32
        return att * jax.nn.relu(maps)


def projector_lengths(n_tokens: int, pool_len: int, smoother_len: int, n_convs: int = 2):
    """Time lengths through the projector: pooled, then after each conv."""
    lengths = [n_tokens // pool_len]
    for _ in range(n_convs):
        n = lengths[-1]
        lengths.append(n - smoother_len + 1 if n >= smoother_len else n)
    return lengths


class Projector(nnx.Module):
    """avg-pool -> (SN) -> 2 x (depthwise conv + ReLU) -> (SN) -> flatten -> L2 normalize."""

    def __init__(
        self, n_maps: int, *, pool_len: int, smoother_len: int, causal: bool, rngs: nnx.Rngs
    ):
        self.pool_len, self.causal = pool_len, causal
        self.kernels = nnx.List(
            [_uniform(rngs, (n_maps, smoother_len), smoother_len) for _ in range(2)]
        )
        self.biases = nnx.List([_uniform(rngs, (n_maps,), smoother_len) for _ in range(2)])

    def __call__(self, maps: jax.Array) -> jax.Array:
        """maps [S, W, D, N] -> projection [S, W, D x L] (unit L2 norm)."""
        n_pooled = maps.shape[-1] // self.pool_len
        h = maps[..., : n_pooled * self.pool_len]
        h = h.reshape(h.shape[:-1] + (n_pooled, self.pool_len)).mean(-1)
        h = stratified_norm(h)
        for kernel, bias in zip(self.kernels, self.biases):
            size = kernel.shape[-1]
            pad = (0, 0)
            if h.shape[-1] < size:  # too short for a valid conv: keep the length
                pad = (size - 1, 0) if self.causal else ((size - 1) // 2, size // 2)
            h = jax.nn.relu(_time_conv(h, kernel[...], bias[...], pad))
        h = stratified_norm(h)
        flat = full_precision(h.reshape(h.shape[:2] + (-1,)))
        # torch F.normalize (x / max(|x|, 1e-12)) with a finite gradient at x = 0.
        sq = jnp.sum(jnp.square(flat), axis=-1, keepdims=True)
        return flat * jax.lax.rsqrt(jnp.maximum(sq, 1e-24))


class Encoder(nnx.Module):
    """mdJPT encoder on batches of subject blocks [S, W, C, T].

    Args:
        n_chans: C, channels of the unified montage.
        n_times: T, samples per window (e.g. 625 = 5 s at 125 Hz).
        variant: key of VARIANTS ("paper" or "tiny").
        attention: "global" (the paper) or "causal" (online-capable; same parameters).
        rngs: nnx.Rngs with a `params` stream.
        chunk_size: tokens per scan step of the causal attention.
        remat_chunk: channel sequences per rematerialized chunk of the channel encoder
            (bounds training memory; None = all at once). Same results either way.
        remat_policy: what the backward pass keeps of each chunk (mlla.REMAT_POLICIES:
            "full" nothing, "dots" the matmul outputs, "none" everything).
        dtype: compute dtype, "float32" or "bfloat16" (mixed precision: parameters stay
            float32; see the module docstring).
    """

    def __init__(
        self,
        n_chans: int,
        n_times: int,
        variant: str = "paper",
        attention: str = "global",
        *,
        rngs: nnx.Rngs,
        chunk_size: int = 64,
        remat_chunk: int | None = REMAT_CHUNK,
        remat_policy: str = "full",
        dtype: str = "float32",
    ):
        if jnp.dtype(dtype).name not in COMPUTE_DTYPES:
            raise ValueError(f"dtype must be one of {COMPUTE_DTYPES}, got {dtype!r}")
        self.dtype = jnp.dtype(dtype).name
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose from {sorted(VARIANTS)}")
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
        v = VARIANTS[variant]
        self.n_chans, self.n_times = n_chans, n_times
        causal = attention == "causal"
        self.channel_encoder = ChannelEncoder(
            patch_size=v["patch_size"],
            patch_stride=v["patch_stride"],
            d_model=v["d_model"],
            depth=v["depth"],
            num_heads=v["num_heads"],
            mlp_ratio=v["mlp_ratio"],
            readout_dim=v["readout_dim"],
            causal=causal,
            chunk_size=chunk_size,
            remat_chunk=remat_chunk,
            remat_policy=remat_policy,
            rngs=rngs,
        )
        self.n_tokens = self.channel_encoder.n_tokens(n_times)
        if self.n_tokens < v["pool_len"]:
            min_times = v["patch_size"] + (v["pool_len"] - 1) * v["patch_stride"]
            raise ValueError(
                f"n_times={n_times} gives {self.n_tokens} tokens; the projector "
                f"pools {v['pool_len']}: need n_times >= {min_times}"
            )
        self.mixer = SpatialMixer(n_chans, v["mixed_chans"], rngs=rngs)
        self.dynamics = DynamicsModel(
            v["readout_dim"],
            v["mixed_chans"],
            filters_per_feature=v["filters_per_feature"],
            dilations=v["dilations"],
            att_len=v["att_len"],
            causal=causal,
            rngs=rngs,
        )
        self.projector = Projector(
            self.dynamics.n_maps,
            pool_len=v["pool_len"],
            smoother_len=v["smoother_len"],
            causal=causal,
            rngs=rngs,
        )
        self.feature_dim = self.dynamics.n_maps
        self.embedding_dim = (
            self.feature_dim
            * projector_lengths(self.n_tokens, v["pool_len"], v["smoother_len"])[-1]
        )

    def _trunk(self, x):
        chex.assert_rank(x, 4)
        chex.assert_axis_dimension(x, 2, self.n_chans)
        chex.assert_axis_dimension(x, 3, self.n_times)
        # The compute dtype of everything downstream ("float32" keeps float64 inputs float64).
        x = x.astype(self.dtype) if self.dtype == "bfloat16" else full_precision(x)
        tokens = stratified_norm(self.channel_encoder(x), time_axis=-2)  # [S,W,C,N,F]
        mixed = self.mixer(tokens)  # [S,W,F,C2,N]
        maps = self.dynamics(stratified_norm(mixed, time_axis=-1))  # [S,W,D,N]
        return mixed, maps

    def __call__(self, x: jax.Array) -> dict:
        """x [S, W, C, T] µV -> dict(projection [S,W,E], mixed [S,W,F,C2,N], features [S,W,D]),
        all float32."""
        mixed, maps = self._trunk(x)
        return dict(
            projection=self.projector(maps),
            mixed=full_precision(mixed),
            features=full_precision(maps).mean(-1),
        )

    def embed(self, x: jax.Array) -> jax.Array:
        """x [S, W, C, T] -> features [S, W, D] (mean over time; skips the projector)."""
        return full_precision(self._trunk(x)[1]).mean(-1)
