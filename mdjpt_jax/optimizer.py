"""AdamW with a linear warm-up + cosine decay learning-rate schedule.

Weight decay is decoupled (AdamW, Loshchilov & Hutter) and applies to every parameter, as
torch.optim.AdamW does by default. Gradient clipping by global norm is optional and, when
on, comes first in the chain (it clips the gradient, not the update).
"""

import optax


def learning_rate_schedule(
    *, learning_rate: float, warmup_steps: int, total_steps: int
) -> optax.Schedule:
    """Learning rate per step: 0 -> `learning_rate` linearly, then cosine down to 0.

    Args:
        learning_rate: peak learning rate, reached at step `warmup_steps`.
        warmup_steps: steps of linear warm-up from 0 (0 = start at the peak).
        total_steps: length of the whole schedule, warm-up included; the rate is 0 at
            `total_steps` and after.

    Returns:
        step (int) -> learning rate (float32 scalar); the rate used by the update of
        state step `step` (optax counts updates from 0).
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"warmup_steps ({warmup_steps}) must be in [0, total_steps ({total_steps}))"
        )
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=learning_rate,
        warmup_steps=warmup_steps,
        decay_steps=total_steps,
        end_value=0.0,
    )


def make_optimizer(
    *,
    learning_rate: float,
    weight_decay: float,
    warmup_steps: int,
    total_steps: int,
    grad_clip_norm: float | None = None,
) -> optax.GradientTransformation:
    """AdamW (b1 0.9, b2 0.999, eps 1e-8) on `learning_rate_schedule`.

    Args:
        learning_rate: peak learning rate.
        weight_decay: decoupled weight-decay coefficient (multiplied by the scheduled rate,
            as in torch AdamW).
        warmup_steps: linear warm-up steps.
        total_steps: total schedule length (warm-up included).
        grad_clip_norm: if set, gradients are clipped to this global L2 norm first.

    Returns:
        An optax GradientTransformation; `update(grads, state, params)` needs params.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    schedule = learning_rate_schedule(
        learning_rate=learning_rate, warmup_steps=warmup_steps, total_steps=total_steps
    )
    adamw = optax.adamw(schedule, weight_decay=weight_decay)
    if grad_clip_norm is None:
        return adamw
    if grad_clip_norm <= 0:
        raise ValueError(f"grad_clip_norm must be > 0 or None, got {grad_clip_norm}")
    return optax.chain(optax.clip_by_global_norm(grad_clip_norm), adamw)
