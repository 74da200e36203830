"""Does pre-training learn? A small grid of pre-training settings, side by side, as JSON.

Each grid point pre-trains the synthetic preset (configs/pretrain.py:ARG) with a few
overrides in its own workdir and reports, from the run's learning-curve evaluation
(pretrain_eval: windows of the subjects HELD OUT of the pre-training datasets, never
sampled for training, embedded one subject per block):

    contrastive_over_chance  final NT-Xent / ln(2M - 1), mean of the last 3 logged steps
    retrieval_projection     cross-subject retrieval@1 of the projector output (chance 1/16)
    retrieval_features       the same on the features extraction writes
    retrieval_waveform_oracle  the same for an untrained read-out of the raw waveform of the
                             same windows (features.waveform_readout): the yardstick
    retrieval_de             the same for DE (band power) of the same windows
    features_over_oracle     retrieval_features / retrieval_waveform_oracle
    probe_auroc              linear probe, half of the subjects -> the other half
    *_at_init                the same numbers for the initial (random) parameters: the
                             random encoder's row
    at_step1                 what the first update sees (every step is logged): the
                             projection's similarity statistics (positive minus negative
                             cosine, spread; losses.similarity_statistics) and the gradient
                             norm of each module
    final_similarity_gap     positive minus negative cosine, mean of the last 3 steps
    wall_s                   wall time of the run (compilation included)

    python bench/learning_bench.py --grid knobs --steps 100            # the README's grid
    python bench/learning_bench.py --preset evoked --grid evoked --seeds 0 1 2 --steps 150
    python bench/learning_bench.py --grid "windows_per_pair=4;windows_per_pair=16"

--plot PNG draws the loss and held-out retrieval curves of every (point, seed) side by side.

A grid point is `field=value,field=value` over the config's `data`, `optim`, `loss`,
`model` and `train` fields (the leaf name is enough when it is unique).
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GRIDS = {
    # One knob at a time around the synthetic preset (P=2, M=16, lr 1e-2, temperature 0.2),
    # and the preset the demo used before this grid (P=8, M=4, lr 1e-3, temperature 0.07).
    "knobs": [
        "",
        "pairs_per_step=8,windows_per_pair=4",
        "learning_rate=0.003",
        "learning_rate=0.03",
        "temperature=0.07",
        "use_cda=false",
        "pairs_per_step=8,windows_per_pair=4,learning_rate=0.001,temperature=0.07",
    ],
    # The diagnosis on the evoked-response family (issue 18): the preset, the settings of
    # the trial that was bimodal across seeds (P=4 x M=16, lr 1e-3, temperature 0.07), and
    # one knob at a time between them; then window length and the paper's M.
    "evoked": [
        "",
        "pairs_per_step=4,learning_rate=0.001,temperature=0.07",
        "learning_rate=0.001",
        "learning_rate=0.003",
        "temperature=0.07",
        "use_cda=false",
        "window_s=4.0",
    ],
}


def _leaf_paths(config, prefix=""):
    for key, value in config.items():
        path = f"{prefix}{key}"
        if hasattr(value, "items"):
            yield from _leaf_paths(value, path + ".")
        else:
            yield path


def apply_overrides(config, point: str):
    """Sets `field=value` items (leaf names or dotted paths) on an unlocked copy."""
    paths = list(_leaf_paths(config))
    for item in filter(None, (p.strip() for p in point.split(","))):
        name, _, text = item.partition("=")
        matches = [p for p in paths if p == name or p.endswith("." + name)]
        if len(matches) != 1:
            raise ValueError(f"override {name!r} matches {matches}")
        *parents, leaf = matches[0].split(".")
        node = config
        for parent in parents:
            node = node[parent]
        old = node[leaf]
        if isinstance(old, bool):
            value = text.lower() in ("1", "true", "yes")
        elif old is None:
            value = float(text)
        else:
            value = type(old)(text)
        node[leaf] = value
    return config


def run_point(
    point: str, *, preset: str, steps: int, data_dir: str, workdir: str, seed: int
) -> dict:
    from configs import pretrain
    from mdjpt_jax import workdir as layout
    from mdjpt_jax.pretrain import train

    config = pretrain.get_config(preset)
    with config.unlocked():
        config.data.data_dir = data_dir
        config.train.steps = steps
        config.train.seed = seed
        config.train.checkpoint_every = steps
        config.train.log_every = 1  # the first update's diagnostics (at_step1)
        config.optim.warmup_steps = min(config.optim.warmup_steps, steps // 2)
        apply_overrides(config, point)
    start = time.perf_counter()
    train.run(config, workdir)
    wall = time.perf_counter() - start
    rows = layout.read_metrics(layout.metrics_path(workdir))
    evals = [r for r in rows if "eval/retrieval_features" in r]
    losses = [r["contrastive_over_chance"] for r in rows if "contrastive_over_chance" in r]
    result = dict(
        point=point or "(preset)",
        seed=seed,
        steps=steps,
        wall_s=round(wall, 1),
        contrastive_over_chance=round(sum(losses[-3:]) / len(losses[-3:]), 4),
    )
    for name in ("retrieval_projection", "retrieval_features", "probe_auroc"):
        result[name] = round(evals[-1][f"eval/{name}"], 4)
        result[f"{name}_at_init"] = round(evals[0][f"eval/{name}"], 4)
    # The yardstick: an untrained read-out of the raw waveform of the same windows.
    oracle = evals[-1]["eval/retrieval_waveform"]
    result["retrieval_waveform_oracle"] = round(oracle, 4)
    result["retrieval_de"] = round(evals[-1]["eval/retrieval_de"], 4)
    result["features_over_oracle"] = round(result["retrieval_features"] / oracle, 4)
    steps_rows = [r for r in rows if "loss" in r]
    result["at_step1"] = {
        k: round(v, 4)
        for k, v in steps_rows[0].items()
        if k.startswith(("similarity/", "grad_norm")) or k == "contrastive_over_chance"
    }
    gaps = [r["similarity/positive_minus_negative"] for r in steps_rows[-3:]]
    result["final_similarity_gap"] = round(sum(gaps) / len(gaps), 4)
    return result, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--grid", default="knobs", help=f"a name in {sorted(GRIDS)} or points separated by ';'"
    )
    parser.add_argument("--preset", default="synthetic", help="configs/pretrain.py ARG")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--data_dir", default="runs/tfds")
    parser.add_argument("--workdir", default=None, help="default: a temporary directory")
    parser.add_argument("--plot", default=None, help="PNG of every run's curves")
    args = parser.parse_args()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    points = GRIDS.get(args.grid, args.grid.split(";"))
    root = args.workdir or tempfile.mkdtemp(prefix="learning_bench-")
    results, curves = [], {}
    for seed in args.seeds:
        for i, point in enumerate(points):
            workdir = os.path.join(root, f"point{i}_seed{seed}")
            result, rows = run_point(
                point,
                preset=args.preset,
                steps=args.steps,
                data_dir=os.path.abspath(args.data_dir),
                workdir=workdir,
                seed=seed,
            )
            results.append(result)
            curves[f"{point or '(preset)'} seed {seed}"] = rows
            print(json.dumps(result), file=sys.stderr, flush=True)
    if args.plot:
        from mdjpt_jax import learning_curves

        learning_curves.plot_learning_curves(curves, args.plot)
    print(
        json.dumps(
            dict(bench="learning", preset=args.preset, steps=args.steps, results=results), indent=1
        )
    )


if __name__ == "__main__":
    main()
