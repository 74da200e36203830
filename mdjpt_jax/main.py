"""Command-line entry point: one config file, one workdir, one mode.

    python -m mdjpt_jax.main --config=configs/pretrain.py:synthetic --workdir=runs/pretrain
    python -m mdjpt_jax.main --mode=all --config=configs/demo.py --workdir=runs/demo
    python -m mdjpt_jax.main --mode=embed --encoder=DIR --input=REC.edf --output=OUT.npz
    python -m mdjpt_jax.main --mode=stream --encoder=DIR --probe=P.npz --stream_name=EEG
    python -m mdjpt_jax.main --mode=compile --config=configs/pretrain.py:paper --topology=v5e:16x16

    python -m mdjpt_jax.main --mode=stream_probe --config=configs/downstream.py --encoder=DIR \
        --stream_probe=P.npz

Any config field can be overridden: `--config.train.steps=50`. Modes (MODE_RUNNERS, the one
dispatcher): pretrain (default; the `pretrain` wing), extract, probe, finetune, report
(the `downstream` wing), all (the whole experiment: experiment.py), embed (a recording
`mne.io.read_raw` opens, or a BIDS root with --bids_subject/--bids_task; no config),
stream (decode the LSL stream --stream_name live, or --replay=FILE played as that stream;
no config), stream_probe (export the stream's probe, trained on the causal pipeline's
features of config.target; the `inference` wing), and compile (ahead-of-time compile of
the train step for --topology, no workdir, needs libtpu; see pretrain/aot.py). An unknown
mode is an error listing the modes.
Multi-process launches (SLURM, TPU pods, explicit --coordinator_address) start
jax.distributed first; see launch/.
"""

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "configs/<name>.py[:ARG] file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory; re-running on it resumes.")
flags.DEFINE_string("mode", "pretrain", "What to run: one of MODE_RUNNERS (main.py).")
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
flags.DEFINE_string("probe", None, "stream: probe file (from --mode=stream_probe).")
flags.DEFINE_string(
    "stream_name", None, "stream: LSL name of the EEG stream; outputs go to <NAME>-mdjpt."
)
flags.DEFINE_string("replay", None, "stream: play this recording as the stream (PlayerLSL).")
flags.DEFINE_float("hop_s", None, "stream / stream_probe: output period in s (default 1).")
flags.DEFINE_bool("emit_features", False, "stream: also send the features on the outlet.")
flags.DEFINE_string("topology", None, "compile: TPU topology, e.g. v5e:16x16 or v5p:2x2x2.")
flags.DEFINE_string(
    "stream_probe", None, "stream_probe: the probe file to write (only with that mode)."
)
FLAGS = flags.FLAGS


def _require(mode: str, *names: str) -> None:
    """Raises a usage error naming the flags `mode` needs when one of them is not given."""
    if any(FLAGS[name].value is None for name in names):
        wanted = [f"--{name}" for name in names]
        needs = wanted[0] if len(wanted) == 1 else ", ".join(wanted[:-1]) + " and " + wanted[-1]
        raise app.UsageError(f"--mode={mode} needs {needs}")


def _distributed_run(entry: str):
    """A mode that takes (config, workdir): jax.distributed starts first (multi-process
    launches), then `entry` ("package.module:function", imported only now) runs."""

    def run_mode(mode: str) -> None:
        _require(mode, "config", "workdir")
        from mdjpt_jax import distributed  # After flag parsing: importing jax is slow.

        distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
        _entry(entry)(FLAGS.config, FLAGS.workdir)

    return run_mode


def _entry(entry: str):
    """ "mdjpt_jax.pretrain.train:run" -> the function (its module imported now)."""
    import importlib

    module, name = entry.split(":")
    return getattr(importlib.import_module(module), name)


def _embed(mode: str) -> None:
    _require(mode, "encoder", "input", "output")
    _entry("mdjpt_jax.inference.embedding:run")(
        encoder=FLAGS.encoder,
        input_path=FLAGS.input,
        output=FLAGS.output,
        bids_subject=FLAGS.bids_subject,
        bids_task=FLAGS.bids_task,
        bids_session=FLAGS.bids_session,
    )


def _stream(mode: str) -> None:
    _require(mode, "encoder", "probe", "stream_name")
    _entry("mdjpt_jax.inference.lsl:run")(
        encoder=FLAGS.encoder,
        probe_path=FLAGS.probe,
        stream_name=FLAGS.stream_name,
        replay=FLAGS.replay,
        hop_s=FLAGS.hop_s,
        emit_features=FLAGS.emit_features,
    )


def _stream_probe(mode: str) -> None:
    _require(mode, "config", "encoder", "stream_probe")
    from mdjpt_jax.inference import probe_training, stream_probe

    probe_training.export_probe_from_dataset(
        FLAGS.config, FLAGS.encoder, FLAGS.stream_probe, hop_s=FLAGS.hop_s or stream_probe.HOP_S
    )


def _compile(mode: str) -> None:
    _require(mode, "config", "topology")
    _entry("mdjpt_jax.pretrain.aot:run")(FLAGS.config, FLAGS.topology)


# The one dispatcher: mode -> callable(mode); each wing is imported only when its mode runs.
MODE_RUNNERS = {
    "pretrain": _distributed_run("mdjpt_jax.pretrain.train:run"),
    "extract": _distributed_run("mdjpt_jax.downstream.extract:run"),
    "probe": _distributed_run("mdjpt_jax.downstream.probe:run"),
    "finetune": _distributed_run("mdjpt_jax.downstream.finetune:run"),
    "report": _distributed_run("mdjpt_jax.downstream.report:run"),
    "all": _distributed_run("mdjpt_jax.experiment:run_all"),
    "embed": _embed,
    "stream": _stream,
    "stream_probe": _stream_probe,
    "compile": _compile,
}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:  # Orbax and TFDS log every file at INFO.
        logging.set_verbosity(logging.WARNING)
    if FLAGS.mode not in MODE_RUNNERS:
        raise app.UsageError(f"unknown --mode={FLAGS.mode}; the modes: {', '.join(MODE_RUNNERS)}")
    if FLAGS.stream_probe is not None and FLAGS.mode != "stream_probe":
        raise app.UsageError(
            f"--stream_probe belongs to --mode=stream_probe, not --mode={FLAGS.mode}: export "
            "the stream probe with --mode=stream_probe --config=... --encoder=DIR "
            "--stream_probe=PATH"
        )
    MODE_RUNNERS[FLAGS.mode](FLAGS.mode)


if __name__ == "__main__":
    app.run(main)
