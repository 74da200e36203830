"""mdJPT encoder (Flax NNX): linear attention, MLLA channel encoder, full encoder."""

from mdjpt_jax.models.linear_attention import (
    AttentionState,
    init_state,
    linear_attention,
    scan,
    step,
)
from mdjpt_jax.models.mdjpt import ATTENTION_MODES, VARIANTS, Encoder
from mdjpt_jax.models.mlla import ChannelEncoder, MLLABlock, StreamState
from mdjpt_jax.models.normalization import stratified_norm

__all__ = [
    "ATTENTION_MODES",
    "AttentionState",
    "ChannelEncoder",
    "Encoder",
    "MLLABlock",
    "StreamState",
    "VARIANTS",
    "init_state",
    "linear_attention",
    "scan",
    "step",
    "stratified_norm",
]
