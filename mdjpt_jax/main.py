"""Command-line entry point: one config file, one workdir, one mode.

    python -m mdjpt_jax.main --config=configs/pretrain.py:synthetic --workdir=runs/pretrain
    python -m mdjpt_jax.main --mode=all --config=configs/demo.py --workdir=runs/demo
    python -m mdjpt_jax.main --mode=embed --encoder=DIR --input=REC.edf --output=OUT.npz
    python -m mdjpt_jax.main --mode=stream --encoder=DIR --probe=P.npz --stream_name=EEG
    python -m mdjpt_jax.main --mode=compile --config=configs/pretrain.py:paper --topology=v5e:16x16

Any config field can be overridden: `--config.train.steps=50`. Modes: pretrain (default),
extract, probe, finetune, report, all (the whole experiment), and embed (a recording
`mne.io.read_raw` opens, or a BIDS root with --bids_subject/--bids_task; no config), and
stream (decode the LSL stream --stream_name live, or --replay=FILE played as that stream;
no config), and compile (ahead-of-time compile of the train step for --topology, no
workdir, needs libtpu; see aot.py). `--mode=probe --stream_probe=P.npz --encoder=DIR` exports the stream's probe
(trained on the causal pipeline's features of config.target) instead of probing.
Multi-process launches (SLURM, TPU pods, explicit --coordinator_address) start
jax.distributed first; see launch/.
"""

from absl import app, flags, logging
from ml_collections import config_flags

MODES = ("pretrain", "extract", "probe", "finetune", "report", "all", "embed", "stream", "compile")

config_flags.DEFINE_config_file("config", None, "configs/<name>.py[:ARG] file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory; re-running on it resumes.")
flags.DEFINE_enum("mode", "pretrain", MODES, "What to run.")
flags.DEFINE_string(
    "coordinator_address",
    None,
    "host:port of process 0 (explicit multi-process runs only; SLURM and TPU pods are detected).",
)
flags.DEFINE_integer("num_processes", None, "Process count (with --coordinator_address).")
flags.DEFINE_integer("process_id", None, "This process's index (with --coordinator_address).")
flags.DEFINE_string("encoder", None, "embed: exported encoder directory.")
flags.DEFINE_string("input", None, "embed: a recording file, or a BIDS root.")
flags.DEFINE_string("output", None, "embed: the .npz to write.")
flags.DEFINE_string("bids_subject", None, "embed: BIDS subject label (input is a BIDS root).")
flags.DEFINE_string("bids_task", None, "embed: BIDS task label.")
flags.DEFINE_string("bids_session", None, "embed: BIDS session label, if any.")
flags.DEFINE_string("probe", None, "stream: probe file (from --mode=probe --stream_probe).")
flags.DEFINE_string(
    "stream_name", None, "stream: LSL name of the EEG stream; outputs go to <NAME>-mdjpt."
)
flags.DEFINE_string("replay", None, "stream: play this recording as the stream (PlayerLSL).")
flags.DEFINE_float("hop_s", None, "stream / stream_probe: output period in s (default 1).")
flags.DEFINE_bool("emit_features", False, "stream: also send the features on the outlet.")
flags.DEFINE_string("topology", None, "compile: TPU topology, e.g. v5e:16x16 or v5p:2x2x2.")
flags.DEFINE_string("stream_probe", None, "probe: export the stream probe to this file.")
FLAGS = flags.FLAGS


def dispatch(mode: str, config, workdir: str):
    """Runs `mode`; each entry module is imported only when its mode is chosen."""
    if mode == "pretrain":
        from mdjpt_jax import train

        return train.run(config, workdir)
    if mode in ("extract", "probe", "finetune", "report"):
        import importlib

        return importlib.import_module(f"mdjpt_jax.{mode}").run(config, workdir)
    from mdjpt_jax import experiment

    return experiment.run_all(config, workdir)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:  # Orbax and TFDS log every file at INFO.
        logging.set_verbosity(logging.WARNING)
    if FLAGS.mode == "embed":
        if not (FLAGS.encoder and FLAGS.input and FLAGS.output):
            raise app.UsageError("--mode=embed needs --encoder, --input and --output")
        from mdjpt_jax import embedding

        embedding.run(
            encoder=FLAGS.encoder,
            input_path=FLAGS.input,
            output=FLAGS.output,
            bids_subject=FLAGS.bids_subject,
            bids_task=FLAGS.bids_task,
            bids_session=FLAGS.bids_session,
        )
        return
    if FLAGS.mode == "stream":
        if not (FLAGS.encoder and FLAGS.probe and FLAGS.stream_name):
            raise app.UsageError("--mode=stream needs --encoder, --probe and --stream_name")
        from mdjpt_jax import streaming

        streaming.run(
            encoder=FLAGS.encoder,
            probe_path=FLAGS.probe,
            stream_name=FLAGS.stream_name,
            replay=FLAGS.replay,
            hop_s=FLAGS.hop_s,
            emit_features=FLAGS.emit_features,
        )
        return
    if FLAGS.mode == "compile":
        if not (FLAGS.config and FLAGS.topology):
            raise app.UsageError("--mode=compile needs --config and --topology")
        from mdjpt_jax import aot

        aot.run(FLAGS.config, FLAGS.topology)
        return
    if FLAGS.mode == "probe" and FLAGS.stream_probe:
        if not (FLAGS.encoder and FLAGS.config):
            raise app.UsageError("--stream_probe needs --encoder and --config")
        from mdjpt_jax import streaming

        streaming.export_probe_from_dataset(
            FLAGS.config, FLAGS.encoder, FLAGS.stream_probe, hop_s=FLAGS.hop_s or streaming.HOP_S
        )
        return
    if FLAGS.config is None or FLAGS.workdir is None:
        raise app.UsageError(f"--mode={FLAGS.mode} needs --config and --workdir")
    from mdjpt_jax import distributed  # After flag parsing: importing jax is slow.

    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    dispatch(FLAGS.mode, FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
    app.run(main)
