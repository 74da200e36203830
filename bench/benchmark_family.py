"""The evoked-response benchmark: scaling curve, compute-matched joint vs single, null control.

Runs every condition of configs/benchmark.py as a full experiment (pre-training over
several seeds, extraction, probes, report; `experiment.run_all`) in WORKDIR/<condition>,
sharing one data directory, then prints one JSON document comparing them side by side:

    conditions.<name>          datasets, target, and per method (mean ± sample std over
                               seeds): few-shot AUROC / balanced accuracy on the target,
                               stimulus-held-out few-shot AUROC, zero-shot valence AUROC,
                               retrieval on the held-out subjects of the pre-training
                               datasets and on the (never pre-trained) target; plus the
                               report's paired differences (joint - random, - de,
                               - waveform, - single)
    scaling                    joint few-shot AUROC and target retrieval against the number
                               of pre-training datasets, and the paired difference of each
                               point against one dataset (same seeds, same test subjects)

    python bench/benchmark_family.py --workdir runs/benchmark                 # everything
    python bench/benchmark_family.py --conditions scale1 null3 --seeds 2 --steps 20

Re-running resumes (each stage re-uses what is on disk). The predictions of the outcome
are in tfds_builders/synthetic_emotion/README.md, written before the first run.
"""

import argparse
import contextlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROTOCOL_METRICS = (
    ("few_shot", "auroc"),
    ("few_shot", "balanced_accuracy"),
    ("few_shot_heldout_stimuli", "auroc"),
    ("zero_shot", "auroc"),
)


def _summary(values: list) -> dict:
    from mdjpt_jax import paired_stats

    return dict(
        mean=float(sum(values) / len(values)), std=paired_stats.sample_std(values), n=len(values)
    )


def target_retrieval(root: str, method: str, seeds, target: str) -> dict:
    """{seed: cross-subject retrieval@1 on every subject of the target} (none of them was
    pre-trained on: the target is outside pre-training)."""
    import numpy as np

    from mdjpt_jax import scoring, workdir

    out = {}
    for seed in seeds:
        data = workdir.load_features(workdir.feature_path(root, method, seed, target))
        moment = np.stack([data["session"], data["stimulus"], data["start"]], axis=1)
        out[seed] = scoring.cross_subject_retrieval(data["features"], data["subject"], moment)
    return out


def condition_summary(config, root: str) -> dict:
    """Per method: the protocol metrics and retrievals over seeds, and the report's paired
    differences."""
    from mdjpt_jax import workdir

    results = workdir.read_json(workdir.probe_results_path(root))
    summary = workdir.read_json(workdir.report_path(root, "results_json"))
    methods = {}
    for method in config.methods:
        per_seed = results[method]
        entry = {}
        for protocol, metric in PROTOCOL_METRICS:
            values = [
                r[protocol]["summary"][metric]["mean"]
                for r in per_seed.values()
                if protocol in r and "summary" in r[protocol]
            ]
            if values:
                entry[f"{protocol}/{metric}"] = _summary(values)
        entry["retrieval_heldout_sources"] = _summary(
            [float(sum(r["retrieval"].values()) / len(r["retrieval"])) for r in per_seed.values()]
        )
        seeds = [int(s) for s in per_seed]
        entry["retrieval_target"] = _summary(
            list(target_retrieval(root, method, seeds, config.target).values())
        )
        methods[method] = entry
    return dict(
        datasets=list(config.sources),
        target=config.target,
        seeds=list(config.seeds),
        methods=methods,
        paired_differences=summary.get("paired_differences", {}),
    )


def scaling(roots: dict, configs: dict, *, n_samples: int, seed: int) -> dict:
    """Joint few-shot AUROC per number of datasets, and each point minus one dataset
    (paired over seeds x test subjects of the shared target)."""
    from mdjpt_jax import paired_stats, workdir
    from mdjpt_jax.downstream import report

    points = {n: c for n, c in configs.items() if n.startswith("scale")}
    if "scale1" not in points:
        return {}
    cells = {}
    for name in points:
        per_seed = workdir.read_json(workdir.probe_results_path(roots[name]))["joint"]
        cells[name] = report.subject_cells(per_seed, "few_shot", "auroc")
    curve = {}
    for name, config in sorted(points.items(), key=lambda item: len(item[1].sources)):
        values = {}
        for (s, _), v in cells[name].items():
            values.setdefault(s, []).append(v)
        point = dict(
            n_datasets=len(config.sources),
            few_shot_auroc=_summary([sum(v) / len(v) for v in values.values()]),
        )
        if name != "scale1":
            point["minus_scale1"] = paired_stats.paired_bootstrap(
                cells[name], cells["scale1"], n_samples=n_samples, confidence=0.95, seed=seed
            )
        curve[name] = point
    return curve


def main(argv=None):
    from configs import benchmark

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/benchmark")
    parser.add_argument(
        "--conditions", nargs="+", default=list(benchmark.CONDITIONS), choices=benchmark.CONDITIONS
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--tiny", action="store_true", help="a few steps (smoke test)")
    args = parser.parse_args(argv)

    from mdjpt_jax import experiment

    data_dir = os.path.join(os.path.abspath(args.workdir), "tfds")
    configs, roots, wall = {}, {}, {}
    for name in args.conditions:
        arg = f"condition={name},steps={args.steps},seeds={args.seeds}" + (
            ",tiny" if args.tiny else ""
        )
        config = benchmark.get_config(arg)
        with config.unlocked():
            config.data_dir = data_dir
        roots[name] = os.path.join(args.workdir, name)
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON only
            experiment.run_all(config, roots[name])
        wall[name] = round(time.perf_counter() - start, 1)
        configs[name] = config
    output = dict(
        steps=4 if args.tiny else args.steps,
        conditions={
            name: dict(condition_summary(configs[name], roots[name]), wall_s=wall[name])
            for name in configs
        },
        scaling=scaling(
            roots,
            configs,
            n_samples=next(iter(configs.values())).report.bootstrap_samples,
            seed=0,
        ),
    )
    print(json.dumps(output, indent=1, sort_keys=True))
    return output


if __name__ == "__main__":
    main()
