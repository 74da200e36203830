"""The MLP head of every probe: in_dim -> hidden... (ReLU, dropout) -> n_classes logits,
trained with AdamW for a fixed number of epochs (no early stopping, no selection).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx


TRAIN_KWARGS = ("hidden", "dropout", "learning_rate", "weight_decay", "epochs", "batch_size")


def train_kwargs(mlp) -> dict:
    """`train_mlp`'s keyword arguments (TRAIN_KWARGS) from a mapping holding them, e.g. a
    config's `mlp` section; hidden as a list."""
    return dict({key: mlp[key] for key in TRAIN_KWARGS}, hidden=list(mlp["hidden"]))


class MLP(nnx.Module):
    """in_dim -> hidden... (ReLU, dropout) -> n_classes logits."""

    def __init__(
        self, in_dim: int, n_classes: int, *, hidden=(128, 64), dropout: float = 0.5, rngs: nnx.Rngs
    ):
        dims = (in_dim,) + tuple(hidden)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims, dims[1:])])
        self.dropout = nnx.Dropout(dropout)
        self.head = nnx.Linear(dims[-1], n_classes, rngs=rngs)

    def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        """x [B, in_dim] -> logits [B, n_classes]; dropout only when a key is given."""
        for i, layer in enumerate(self.layers):
            x = jax.nn.relu(layer(x))
            if key is not None:
                x = self.dropout(x, deterministic=False, rngs=jax.random.fold_in(key, i))
        return self.head(x)


def _batch_indices(n: int, batch_size: int, epochs: int, rng) -> np.ndarray:
    """[epochs * batches_per_epoch, B] row indices: a fresh permutation per epoch, the last
    partial batch dropped (B = min(batch_size, n))."""
    size = min(batch_size, n)
    per_epoch = n // size
    return np.concatenate(
        [rng.permutation(n)[: per_epoch * size].reshape(per_epoch, size) for _ in range(epochs)]
    )


@functools.partial(jax.jit, static_argnames=("graphdef", "learning_rate", "weight_decay"))
def _fit(params, x, y, steps, key, *, graphdef, learning_rate, weight_decay):
    """AdamW on softmax cross-entropy over the minibatch index rows `steps` [S, B]."""
    tx = optax.adamw(learning_rate, weight_decay=weight_decay)

    def loss_fn(p, idx, step_key):
        logits = nnx.merge(graphdef, p)(x[idx], key=step_key)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y[idx]).mean()

    def step(carry, inputs):
        p, opt_state = carry
        idx, i = inputs
        grads = jax.grad(loss_fn)(p, idx, jax.random.fold_in(key, i))
        updates, opt_state = tx.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), None

    (params, _), _ = jax.lax.scan(
        step, (params, tx.init(params)), (steps, jnp.arange(steps.shape[0]))
    )
    return params


def train_mlp(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    hidden,
    dropout: float,
    learning_rate: float,
    weight_decay: float,
    epochs: int,
    batch_size: int,
    seed: int,
) -> MLP:
    """Trains an MLP probe for a fixed number of epochs (no early stopping, no selection).

    Args:
        x: [N, D] features; y: [N] int labels in [0, n_classes).
        hidden, dropout: MLP sizes and dropout rate.
        learning_rate, weight_decay: AdamW.
        epochs, batch_size: passes over x and windows per step.
        seed: initialisation, dropout and minibatch order.
    """
    model = MLP(
        x.shape[1], n_classes, hidden=tuple(hidden), dropout=dropout, rngs=nnx.Rngs(params=seed)
    )
    graphdef, params = nnx.split(model)
    steps = _batch_indices(len(x), batch_size, epochs, np.random.default_rng(seed))
    params = _fit(
        params,
        jnp.asarray(x, jnp.float32),
        jnp.asarray(y, jnp.int32),
        jnp.asarray(steps),
        jax.random.key(seed),
        graphdef=graphdef,
        learning_rate=float(learning_rate),
        weight_decay=float(weight_decay),
    )
    return nnx.merge(graphdef, params)


@nnx.jit
def _logits(model: MLP, x: jax.Array) -> jax.Array:
    return model(x)


def predict_proba(model: MLP, x: np.ndarray) -> np.ndarray:
    """[N, D] -> [N, K] softmax probabilities (no dropout)."""
    return np.asarray(jax.nn.softmax(_logits(model, jnp.asarray(x, jnp.float32))))
