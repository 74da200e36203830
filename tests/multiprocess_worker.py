"""One process of tests/test_multiprocess.py: two train steps on its slice of the pairs.

    python tests/multiprocess_worker.py --process_id 0 --num_processes 2 --port 12345 \
        --local_devices 2 --out result.npz

With --num_processes 1 it runs alone (no jax.distributed) on --local_devices devices: the
reference. Process 0 writes the metrics and the updated parameters (float64) to --out.
"""

import argparse
import os
import sys


def _parse():
    parser = argparse.ArgumentParser()
    parser.add_argument("--process_id", type=int, required=True)
    parser.add_argument("--num_processes", type=int, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--local_devices", type=int, required=True)
    parser.add_argument("--out", required=True)
    return parser.parse_args()


ARGS = _parse()
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={ARGS.local_devices}"
os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from mdjpt_jax import distributed, optimizer  # noqa: E402
from mdjpt_jax.models import Encoder  # noqa: E402
from mdjpt_jax.pretrain import train_step  # noqa: E402

K, P, M, C, T = 2, 4, 3, 4, 125  # datasets, pairs (global), windows, channels, samples
STEPS = 2


def main():
    # float64 so that the two layouts can be compared far below the 1e-5 tolerance
    # (see tests/test_train_step.py for the float32 rounding analysis).
    jax.config.update("jax_enable_x64", True)
    if ARGS.num_processes > 1:
        distributed.initialize(f"127.0.0.1:{ARGS.port}", ARGS.num_processes, ARGS.process_id)
    assert jax.process_count() == ARGS.num_processes
    mesh = distributed.make_mesh()
    model = Encoder(C, T, "tiny", rngs=nnx.Rngs(params=0))
    graphdef, params = nnx.split(model, nnx.Param)
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    opt = optimizer.make_optimizer(
        learning_rate=1e-3, weight_decay=1e-2, warmup_steps=0, total_steps=10
    )
    state = distributed.replicate(
        train_step.TrainState(
            step=np.zeros((), np.int32), params=params, opt_state=opt.init(params)
        ),
        mesh,
    )
    step_fn = train_step.make_train_step(graphdef, opt, mesh)
    rng = np.random.default_rng(0)
    pairs_host = P // ARGS.num_processes
    mine = slice(ARGS.process_id * pairs_host, (ARGS.process_id + 1) * pairs_host)
    history = []
    for _ in range(STEPS):
        eeg = rng.standard_normal((K, P, 2, M, C, T))  # the same global batch everywhere
        batch = distributed.host_batch_to_global({"eeg": eeg[:, mine]}, mesh)
        state, metrics = step_fn(state, batch, jax.random.key(0))
        # nested diagnostics (grad_norm_by_module, similarity, ...) as "name.key" arrays
        flat_metrics = jax.tree_util.tree_flatten_with_path(metrics)[0]
        history.append(
            {
                ".".join(str(getattr(k, "key", k)) for k in path): np.asarray(value)
                for path, value in flat_metrics
            }
        )
    if ARGS.process_id == 0:
        flat = {
            f"param{i}": np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(state.params))
        }
        for name in history[0]:
            flat[f"metric_{name}"] = np.stack([h[name] for h in history])
        np.savez(ARGS.out, **flat)
    print(f"process {ARGS.process_id}: done, loss {[float(h['loss']) for h in history]}")


if __name__ == "__main__":
    main()
