"""Mamba-like linear attention (MLLA) blocks and the per-channel EEG encoder.

The block follows the mdJPT paper (NeurIPS 2025) and the `MLLAEncoderLayer` of its code
(ncclab-sustech/mdJPT_nips2025, src/model/MLLA_new.py):

    x += DWConv3(x); y = LN(x); gate = SiLU(W_g y); z = SiLU(DWConv3(W_in y))
    x += W_out(W_o(LinAttn(W_q z, W_k z, W_v z)) * gate); x += DWConv3(x); x += FFN(LN(x))

As in the original: separate query/key/value projections with bias (fused here into one
Linear(dim, 3 dim); W_g and W_in stay separate parameters but run as one matmul), an
output projection W_o inside the attention, FFN hidden size 2 x dim with exact GELU, and
no positional encoding besides the three depthwise convs (no RoPE / LePE in the encoder
layer the paper trains).

`causal=True` left-pads every depthwise conv (kernel 3 -> 2 samples of left context) and
uses the causal linear attention, so the encoder can run online: `ChannelEncoder.stream`
consumes raw samples chunk by chunk and carries patching remainder, conv tails and
attention sums, reproducing the causal whole-window output exactly.
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
from flax import nnx

from mdjpt_jax.models.linear_attention import AttentionState, linear_attention
from mdjpt_jax.models.linear_attention import init_state as attention_init_state
from mdjpt_jax.models.linear_attention import scan as attention_scan

LN_EPS = 1e-5  # torch.nn.LayerNorm default, as in the original
# Channel sequences per rematerialized chunk of the channel encoder (bench/model_bench.py
# --compare remat: on a 2-core CPU, 8-32 run fastest; None = the whole batch at once).
REMAT_CHUNK = 16
# What the backward pass keeps of each chunk's forward (bench/train_bench.py --remat_policies):
#   full  nothing: the whole forward of the chunk runs again (least memory; today's default)
#   dots  every matmul output (jax.checkpoint_policies.checkpoint_dots): only the cheap
#         elementwise work (norms, activations, gating) runs again
#   none  everything (no rematerialization: the most memory, no recomputation)
REMAT_POLICIES = ("full", "dots", "none")


def rematerialized(fn, policy: str):
    """`fn` wrapped for the backward pass according to `policy` (REMAT_POLICIES)."""
    if policy == "none":
        return fn
    if policy == "dots":
        return jax.checkpoint(fn, policy=jax.checkpoint_policies.checkpoint_dots)
    if policy == "full":
        return jax.checkpoint(fn)
    raise ValueError(f"remat_policy must be one of {REMAT_POLICIES}, got {policy!r}")


class DepthwiseConv1d(nnx.Module):
    """Depthwise temporal convolution over the token axis of [..., N, D]."""

    def __init__(self, dim: int, kernel_size: int, *, rngs: nnx.Rngs):
        bound = kernel_size**-0.5  # torch Conv1d default init bound for groups=dim
        self.kernel = nnx.Param(
            jax.random.uniform(rngs.params(), (kernel_size, dim), jnp.float32, -bound, bound)
        )
        self.bias = nnx.Param(jax.random.uniform(rngs.params(), (dim,), jnp.float32, -bound, bound))

    def __call__(self, x: jax.Array, left_context: jax.Array | None = None):
        """Convolves along N.

        Args:
            x: [..., N, D].
            left_context: [..., K-1, D] previous inputs (zeros at a stream start) for
                the causal form, or None for centered zero padding (the paper's form).

        Returns:
            (y [..., N, D], new left context [..., K-1, D] = last K-1 inputs seen).
        """
        kernel = self.kernel[...].astype(x.dtype)
        size = kernel.shape[0]
        n_tokens = x.shape[-2]
        if left_context is None:
            pad = [(0, 0)] * (x.ndim - 2) + [((size - 1) // 2, size // 2), (0, 0)]
            padded = jnp.pad(x, pad)
        else:
            padded = jnp.concatenate([left_context.astype(x.dtype), x], axis=-2)
        y = sum(padded[..., j : j + n_tokens, :] * kernel[j] for j in range(size))
        return y + self.bias[...].astype(x.dtype), padded[..., padded.shape[-2] - (size - 1) :, :]


def _dense(x: jax.Array, layers) -> jax.Array:
    """Applies nnx.Linear layers that share the input as one 2-D matmul.

    Args:
        x: [..., D_in]; its dtype is the compute dtype (the float32 parameters are cast
            to it: bfloat16 activations give a bfloat16 matmul).
        layers: nnx.Linear layers with in_features D_in (and biases).

    Returns:
        [..., sum of out_features] of x's dtype, the layers' outputs side by side.
    """
    kernel = jnp.concatenate([layer.kernel[...] for layer in layers], axis=1).astype(x.dtype)
    bias = jnp.concatenate([layer.bias[...] for layer in layers]).astype(x.dtype)
    y = jnp.dot(x.reshape(-1, x.shape[-1]), kernel) + bias
    return y.reshape(x.shape[:-1] + (kernel.shape[1],))


class BlockState(NamedTuple):
    """Streaming state of one MLLA block: conv left contexts and attention sums."""

    cpe1: jax.Array  # [..., 2, D]
    dwc: jax.Array  # [..., 2, D]
    cpe2: jax.Array  # [..., 2, D]
    attn: AttentionState


class MLLABlock(nnx.Module):
    """One MLLA block on token sequences [..., N, D]."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        *,
        causal: bool,
        chunk_size: int = 64,
        rngs: nnx.Rngs,
    ):
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.dim, self.num_heads = dim, num_heads
        self.causal, self.chunk_size = causal, chunk_size
        self.cpe1 = DepthwiseConv1d(dim, 3, rngs=rngs)
        self.norm1 = nnx.LayerNorm(dim, epsilon=LN_EPS, rngs=rngs)
        self.gate_proj = nnx.Linear(dim, dim, rngs=rngs)
        self.in_proj = nnx.Linear(dim, dim, rngs=rngs)
        self.dwc = DepthwiseConv1d(dim, 3, rngs=rngs)
        self.qkv = nnx.Linear(dim, 3 * dim, rngs=rngs)
        self.attn_out = nnx.Linear(dim, dim, rngs=rngs)
        self.out_proj = nnx.Linear(dim, dim, rngs=rngs)
        self.cpe2 = DepthwiseConv1d(dim, 3, rngs=rngs)
        self.norm2 = nnx.LayerNorm(dim, epsilon=LN_EPS, rngs=rngs)
        hidden = int(dim * mlp_ratio)
        self.ffn_in = nnx.Linear(dim, hidden, rngs=rngs)
        self.ffn_out = nnx.Linear(hidden, dim, rngs=rngs)

    def init_state(self, batch_shape, dtype=jnp.float32) -> BlockState:
        """Streaming state before the first token; batch_shape = leading dims `...`."""
        tail = jnp.zeros(tuple(batch_shape) + (2, self.dim), dtype)
        head_dim = self.dim // self.num_heads
        attn = attention_init_state(batch_shape, self.num_heads, head_dim, head_dim, dtype)
        return BlockState(tail, tail, tail, attn)

    def _attend(self, z, state):
        q, k, v = jnp.split(_dense(z, (self.qkv,)), 3, axis=-1)
        heads = z.shape[:-1] + (self.num_heads, self.dim // self.num_heads)
        q, k, v = (t.reshape(heads) for t in (q, k, v))
        if state is None:
            out = linear_attention(q, k, v, causal=False)
        else:
            state, out = attention_scan(state, q, k, v, chunk_size=self.chunk_size)
        return state, _dense(out.reshape(z.shape), (self.attn_out,))

    def apply(self, x: jax.Array, state: BlockState | None):
        """Runs the block; state None = global form, else causal continuation.

        Args:
            x: [..., N, D] tokens.
            state: None (non-causal, centered convs, global attention) or the
                BlockState carried from the previous tokens of the stream.

        Returns:
            (new state or None, y [..., N, D]).
        """
        ctx = (lambda name: None) if state is None else (lambda name: getattr(state, name))
        h, tail1 = self.cpe1(x, ctx("cpe1"))
        x = x + h
        # W_g and W_in read the same input: one matmul with the kernels side by side.
        # LayerNorm computes in float32 (flax upcasts); its output returns to x's dtype.
        gate_in = _dense(self.norm1(x).astype(x.dtype), (self.gate_proj, self.in_proj))
        gate, z = jnp.split(gate_in, 2, axis=-1)
        z, tail2 = self.dwc(z, ctx("dwc"))
        attn_state, a = self._attend(nnx.silu(z), ctx("attn"))
        x = x + _dense(a * nnx.silu(gate), (self.out_proj,))
        h, tail3 = self.cpe2(x, ctx("cpe2"))
        x = x + h
        hidden = _dense(self.norm2(x).astype(x.dtype), (self.ffn_in,))
        x = x + _dense(nnx.gelu(hidden, approximate=False), (self.ffn_out,))
        new_state = None if state is None else BlockState(tail1, tail2, tail3, attn_state)
        return new_state, x

    def __call__(self, x: jax.Array) -> jax.Array:
        """x [..., N, D] -> [..., N, D] (causal or global per construction)."""
        state = self.init_state(x.shape[:-2], x.dtype) if self.causal else None
        return self.apply(x, state)[1]


def extract_patches(x: jax.Array, patch_size: int, stride: int) -> jax.Array:
    """Overlapping patches without a gather: frames of `stride` samples, shifted copies.

    Args:
        x: [..., T] samples.
        patch_size: P samples per patch.
        stride: S samples between patch starts.

    Returns:
        [..., N, P] with N = (T - P) // S + 1 (the remainder at the end is dropped).
    """
    n_samples = x.shape[-1]
    n_patches = (n_samples - patch_size) // stride + 1
    frames_per_patch = -(-patch_size // stride)
    n_frames = n_patches - 1 + frames_per_patch
    needed = n_frames * stride
    if needed > n_samples:  # only samples past the patch end get padded, then cut
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, needed - n_samples)])
    frames = x[..., :needed].reshape(x.shape[:-1] + (n_frames, stride))
    shifted = [frames[..., j : j + n_patches, :] for j in range(frames_per_patch)]
    return jnp.concatenate(shifted, axis=-1)[..., :patch_size]


class StreamState(NamedTuple):
    """Streaming state of the channel encoder.

    Attributes:
        buffer: [..., R] samples received but not yet covered by a whole patch
            (R < patch_size + stride; the next patch starts at buffer[..., 0]).
        blocks: one BlockState per MLLA block.
    """

    buffer: jax.Array
    blocks: tuple


class ChannelEncoder(nnx.Module):
    """Per-channel encoder: patches -> Linear -> MLLA blocks -> Linear.

    Every channel is an independent sequence; weights are shared over channels.
    """

    def __init__(
        self,
        *,
        patch_size: int,
        patch_stride: int,
        d_model: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        readout_dim: int,
        causal: bool,
        chunk_size: int = 64,
        remat_chunk: int | None = REMAT_CHUNK,
        remat_policy: str = "full",
        rngs: nnx.Rngs,
    ):
        if remat_policy not in REMAT_POLICIES:
            raise ValueError(f"remat_policy must be one of {REMAT_POLICIES}, got {remat_policy!r}")
        self.patch_size, self.patch_stride = patch_size, patch_stride
        self.causal, self.remat_chunk, self.remat_policy = causal, remat_chunk, remat_policy
        self.read_in = nnx.Linear(patch_size, d_model, rngs=rngs)
        self.blocks = nnx.List(
            [
                MLLABlock(
                    d_model, num_heads, mlp_ratio, causal=causal, chunk_size=chunk_size, rngs=rngs
                )
                for _ in range(depth)
            ]
        )
        self.read_out = nnx.Linear(d_model, readout_dim, rngs=rngs)

    def n_tokens(self, n_times: int) -> int:
        """Tokens N for a window of n_times samples."""
        return (n_times - self.patch_size) // self.patch_stride + 1

    def __call__(self, x: jax.Array) -> jax.Array:
        """Encodes whole windows.

        With `remat_chunk` set, the channel sequences run `remat_chunk` at a time in a
        `jax.lax.map` whose body is rematerialized in the backward pass as `remat_policy`
        says (REMAT_POLICIES; "full": memory holds one chunk's activations instead of the
        whole batch's, and the small working set stays in cache, faster on CPU despite the
        recomputed forward). The numbers are the same for every policy.

        Args:
            x: [..., T] EEG samples of single channels (µV, any leading dims).

        Returns:
            [..., N, readout_dim] tokens, N = (T - patch_size) // patch_stride + 1.
        """
        if x.shape[-1] < self.patch_size:
            raise ValueError(f"need at least {self.patch_size} samples, got {x.shape[-1]}")
        flat = x.reshape((-1, x.shape[-1]))
        n_seqs, chunk = flat.shape[0], self.remat_chunk
        if not chunk or n_seqs <= chunk:
            out = self._encode(flat)
        else:
            n_chunks = -(-n_seqs // chunk)
            # Zero sequences fill the last chunk; they are independent and cut below.
            flat = jnp.pad(flat, ((0, n_chunks * chunk - n_seqs), (0, 0)))
            graphdef, state = nnx.split(self)
            encode = rematerialized(
                lambda state, xs: nnx.merge(graphdef, state)._encode(xs), self.remat_policy
            )
            out = jax.lax.map(
                lambda xs: encode(state, xs), flat.reshape((n_chunks, chunk, flat.shape[-1]))
            )
            out = out.reshape((n_chunks * chunk,) + out.shape[2:])[:n_seqs]
        return out.reshape(x.shape[:-1] + out.shape[1:])

    def _encode(self, x: jax.Array) -> jax.Array:
        """x [B, T] -> [B, N, readout_dim], all sequences at once."""
        h = _dense(extract_patches(x, self.patch_size, self.patch_stride), (self.read_in,))
        for block in self.blocks:
            h = block(h)
        return _dense(h, (self.read_out,))

    def init_stream_state(self, batch_shape, dtype=jnp.float32) -> StreamState:
        """State of a fresh stream; batch_shape = leading dims of the chunks (e.g. (C,))."""
        if not self.causal:
            raise ValueError("streaming needs a causal encoder (attention='causal')")
        buffer = jnp.zeros(tuple(batch_shape) + (0,), dtype)
        return StreamState(buffer, tuple(b.init_state(batch_shape, dtype) for b in self.blocks))

    def stream(self, state: StreamState, chunk: jax.Array):
        """Encodes the next samples of a stream.

        Args:
            state: from `init_stream_state` or the previous call.
            chunk: [..., L] new samples (any L >= 0; shapes are static per call).

        Returns:
            (new state, tokens [..., n, readout_dim]) for the n patches completed by this
            chunk; concatenating the tokens of all calls equals `self(whole_stream)`.
        """
        chex.assert_equal_shape_prefix([state.buffer, chunk], chunk.ndim - 1)
        buffer = jnp.concatenate([state.buffer, chunk.astype(state.buffer.dtype)], -1)
        n_new = max(0, self.n_tokens(buffer.shape[-1]))
        rest = buffer[..., n_new * self.patch_stride :]
        if n_new == 0:
            empty = jnp.zeros(chunk.shape[:-1] + (0, self.read_out.out_features), chunk.dtype)
            return StreamState(rest, state.blocks), empty
        h = self.read_in(extract_patches(buffer, self.patch_size, self.patch_stride))
        block_states = []
        for block, block_state in zip(self.blocks, state.blocks):
            block_state, h = block.apply(h, block_state)
            block_states.append(block_state)
        return StreamState(rest, tuple(block_states)), self.read_out(h)
