"""Command-line entry point: one config file, one workdir, one mode.

    python -m mdjpt_jax.main --config=configs/pretrain.py:synthetic --workdir=runs/pretrain
    python -m mdjpt_jax.main --mode=all --config=configs/demo.py --workdir=runs/demo

Any config field can be overridden: `--config.train.steps=50`. Modes: pretrain (default),
extract, probe, report, all (the whole experiment). Multi-process launches (SLURM, TPU
pods, explicit --coordinator_address) start jax.distributed first; see launch/.
"""

from absl import app, flags, logging
from ml_collections import config_flags

MODES = ("pretrain", "extract", "probe", "report", "all")

config_flags.DEFINE_config_file("config", None, "configs/<name>.py[:ARG] file.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory; re-running on it resumes.")
flags.DEFINE_enum("mode", "pretrain", MODES, "What to run.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (explicit "
                    "multi-process runs only; SLURM and TPU pods are detected).")
flags.DEFINE_integer("num_processes", None, "Process count (with --coordinator_address).")
flags.DEFINE_integer("process_id", None, "This process's index (with --coordinator_address).")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def dispatch(mode: str, config, workdir: str):
    """Runs `mode`; each entry module is imported only when its mode is chosen."""
    if mode == "pretrain":
        from mdjpt_jax import train
        return train.run(config, workdir)
    if mode == "extract":
        from mdjpt_jax import extract
        return extract.run(config, workdir)
    if mode == "probe":
        from mdjpt_jax import probe
        return probe.run(config, workdir)
    if mode == "report":
        from mdjpt_jax import report
        return report.run(config, workdir)
    from mdjpt_jax import experiment
    return experiment.run_all(config, workdir)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:  # Orbax and TFDS log every file at INFO.
        logging.set_verbosity(logging.WARNING)
    from mdjpt_jax import distributed  # After flag parsing: importing jax is slow.
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    dispatch(FLAGS.mode, FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
    app.run(main)
