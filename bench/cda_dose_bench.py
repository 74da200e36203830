"""CDA dose-response: does the CDA weight change alignment and transfer? (issue 19)

Runs configs/cda_dose.py (joint pre-training at cda_weight in 0, 0.01, 0.1, 1, 10, the same
seeds for every weight: same initial parameters and data order) as a full experiment per
family, sharing one data directory, then prints one JSON document:

    families.<family>.methods.<method>    zero-shot valence AUROC (leave-target-out: trained
                                          on the pre-training datasets, tested on the target),
                                          few-shot AUROC on the target, held-out retrieval
                                          (mean ± sample std over seeds; benchmark_family's
                                          condition summary), and the dataset alignment on
                                          held-out subjects (report.alignment_summary:
                                          correlation-centroid distance, permutation null,
                                          split-half floor, p per seed, dataset-ID accuracy)
    families.<family>.paired_differences  cda<w> - cda0 per protocol and metric, bootstrap
                                          intervals over seeds x test subjects (the report's)

    python bench/cda_dose_bench.py --workdir runs/cda_dose                    # both families
    python bench/cda_dose_bench.py --families nuisance --seeds 3 --steps 60 --weights "0 1 10"

The predictions are in tfds_builders/synthetic_emotion/README.md ("The nuisance family"),
written before the first run. Re-running resumes (each stage re-uses what is on disk).
"""

import argparse
import contextlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchmark_family import condition_summary  # noqa: E402


def family_summary(config, root: str) -> dict:
    """`condition_summary` with each method's dataset alignment from the report."""
    from mdjpt_jax import workdir

    summary = condition_summary(config, root)
    aligned = workdir.read_json(workdir.report_path(root, "results_json")).get("alignment", {})
    for method, entry in summary["methods"].items():
        if method in aligned:
            entry["alignment"] = {k: v for k, v in aligned[method].items() if k != "per_seed"}
            entry["alignment"]["p_value_per_seed"] = {
                seed: r["centroids"]["p_value"]
                for seed, r in aligned[method]["per_seed"].items()
                if "centroids" in r
            }
    return summary


def main(argv=None):
    from configs import cda_dose

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/cda_dose")
    parser.add_argument(
        "--families", nargs="+", default=list(cda_dose.FAMILIES), choices=cda_dose.FAMILIES
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--weights", default=cda_dose.WEIGHTS, help='e.g. "0 0.1 10"')
    parser.add_argument(
        "--scale_free_weights", default="", help='also scale-free CDA at these, e.g. "0.1 1"'
    )
    parser.add_argument("--tiny", action="store_true", help="a few steps (smoke test)")
    args = parser.parse_args(argv)

    from mdjpt_jax import experiment

    data_dir = os.path.join(os.path.abspath(args.workdir), "tfds")
    output = dict(
        steps=4 if args.tiny else args.steps,
        weights=args.weights,
        scale_free_weights=args.scale_free_weights,
        families={},
    )
    for family in args.families:
        arg = f"family={family},steps={args.steps},seeds={args.seeds},weights={args.weights}"
        arg += f",scale_free_weights={args.scale_free_weights}" + ",tiny" * args.tiny
        config = cda_dose.get_config(arg)
        with config.unlocked():
            config.data_dir = data_dir
        root = os.path.join(args.workdir, family)
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON only
            experiment.run_all(config, root)
        output["families"][family] = dict(
            family_summary(config, root), wall_s=round(time.perf_counter() - start, 1)
        )
    print(json.dumps(output, indent=1, sort_keys=True))
    return output


if __name__ == "__main__":
    main()
