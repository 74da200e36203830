"""The `mdjpt` command: one subcommand per mode of `python -m mdjpt_jax.main`, plus `build`.

    mdjpt all --config=demo --workdir=runs/demo
    mdjpt pretrain --config=pretrain:synthetic --config.train.steps=50 --workdir=runs/pretrain
    mdjpt embed --encoder=DIR --input=REC.edf --output=OUT.npz
    mdjpt build synthetic_emotion --data_dir=runs/tfds --config=d0

`mdjpt MODE FLAGS...` runs `python -m mdjpt_jax.main --mode=MODE FLAGS...`: the same flags
(`mdjpt MODE --help` lists them), except that `--config` also takes a shipped config by
name (`--config=pretrain:paper` is `--config=<package>/configs/pretrain.py:paper`).
`mdjpt build ARGS...` runs `python -m tfds_builders.build ARGS...`. `python -m mdjpt_jax`
is the same command. Nothing heavy (JAX, TFDS, MNE, absl) is imported before a subcommand
runs, so `mdjpt --help` and `mdjpt --version` are instant.
"""

import os
import sys

from mdjpt_jax import __version__

BUILD = "build"
# Subcommand -> one line of `mdjpt --help`. Every one but `build` is a mode of mdjpt_jax.main.
SUBCOMMANDS = {
    "pretrain": "joint pre-training (contrastive + CDA) of one config; writes WORKDIR/encoder",
    "extract": "features of the downstream datasets for every method of the config",
    "probe": "few-shot, zero-shot and retrieval probes on the extracted features",
    "finetune": "fine-tunes pre-trained encoders on the target dataset",
    "report": "results table, paired differences and plots of the probes",
    "all": "the whole experiment: data, pre-trainings, extract, probe, report",
    "embed": "features of one recording (EDF, BDF, FIF, BrainVision, ...) or a BIDS root",
    "stream": "decodes a live LSL stream, or a recording replayed as one (extra: stream)",
    "stream_probe": "exports the stream's probe, trained on causal features of the target",
    "compile": "ahead-of-time compile of the train step for a TPU --topology (extra: tpu)",
    BUILD: "builds a dataset to array_record (python -m tfds_builders.build)",
}
# Top-level module of an optional dependency -> the extra that installs it.
OPTIONAL_MODULES = {"mne_lsl": "stream", "mne_bids": "bids", "pybv": "bids", "libtpu": "tpu"}
# Optional modules a subcommand needs but only looks up (no import to fail on).
LOOKED_UP_MODULES = {"compile": "libtpu"}
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
SHORT_HELP_FLAGS = ("-h", "-?", "--help", "-help", "--helpshort", "-helpshort")
HELP_FLAGS = (*SHORT_HELP_FLAGS, "--helpfull", "-helpfull", "--helpxml", "-helpxml")


def shipped_configs() -> list[str]:
    """Names of the shipped config files (those that define `get_config`), sorted."""
    names = []
    for filename in sorted(os.listdir(CONFIG_DIR)):
        name, ext = os.path.splitext(filename)
        if ext == ".py" and not name.startswith("_"):
            with open(os.path.join(CONFIG_DIR, filename), encoding="utf-8") as f:
                if "\ndef get_config(" in f.read():
                    names.append(name)
    return names


def resolve_config(value: str) -> str:
    """A --config value for ml_collections: `demo:tiny` -> `<CONFIG_DIR>/demo.py:tiny`.

    A path (containing a directory separator or ending in .py) is returned unchanged.

    Raises:
        ValueError: a bare name that is not a shipped config.
    """
    name, colon, arg = value.partition(":")
    if "/" in name or os.sep in name or name.endswith(".py"):
        return value
    if name not in shipped_configs():
        raise ValueError(
            f"--config={value}: {name!r} is neither a shipped config "
            f"({', '.join(shipped_configs())}) nor a path to a .py file"
        )
    return os.path.join(CONFIG_DIR, f"{name}.py") + colon + arg


def main_argv(subcommand: str, args: list[str]) -> list[str]:
    """The flags of mdjpt_jax.main for `mdjpt SUBCOMMAND ARGS`: --mode first, then ARGS with
    the --config value resolved and written `--config=VALUE` (given as `--config=VALUE` or
    `--config VALUE`); overrides such as `--config.train.steps=50` pass through.

    Raises:
        ValueError: ARGS sets --mode, or names an unknown config.
    """
    flags = [f"--mode={subcommand}"]
    args = iter(args)
    for arg in args:
        flag, equals, value = arg.partition("=")
        if flag.lstrip("-") == "mode":
            raise ValueError(f"{arg}: the subcommand is the mode (mdjpt {subcommand} ...)")
        if flag in ("--config", "-config"):
            value = value if equals else next(args, "")
            flags.append(f"--config={resolve_config(value)}")
        else:
            flags.append(arg)
    return flags


def usage() -> str:
    """`mdjpt --help`: the subcommands, one line each."""
    width = max(map(len, SUBCOMMANDS))
    lines = [
        "usage: mdjpt SUBCOMMAND [FLAGS...]   (mdjpt SUBCOMMAND --help lists its flags)",
        "       mdjpt --version",
        "",
        "mdJPT in JAX: multi-dataset joint pre-training of emotional EEG.",
        "",
        "subcommands:",
        *(f"  {name:<{width}}  {text}" for name, text in SUBCOMMANDS.items()),
        "",
        "--config takes a config file's path (configs/pretrain.py:paper) or a shipped",
        f"config by name: {', '.join(shipped_configs())} (e.g. --config=demo:tiny).",
        "Optional extras: pip install 'mdjpt-jax[stream]' (mdjpt stream),",
        "'mdjpt-jax[bids]' (BIDS input), 'mdjpt-jax[tpu]' (mdjpt compile, TPU VMs).",
    ]
    return "\n".join(lines)


def missing_extra_message(subcommand: str, module: str | None) -> str | None:
    """What to install for the missing `module`, or None if it is no optional dependency."""
    extra = OPTIONAL_MODULES.get((module or "").partition(".")[0])
    if extra is None:
        return None
    return (
        f"mdjpt {subcommand}: the optional dependency {module!r} is not installed; "
        f"install it with: pip install 'mdjpt-jax[{extra}]'"
    )


def run(subcommand: str, flags: list[str]) -> None:
    """Runs one subcommand on its translated flags (`main_argv`; `build`: its own
    arguments), importing its entry point only now."""
    looked_up = LOOKED_UP_MODULES.get(subcommand)
    if looked_up and not any(flag.partition("=")[0] in HELP_FLAGS for flag in flags):
        import importlib.util

        if importlib.util.find_spec(looked_up) is None:
            raise ModuleNotFoundError(f"No module named {looked_up!r}", name=looked_up)
    if subcommand == BUILD:
        from tfds_builders import build

        sys.argv[0] = f"mdjpt {BUILD}"  # argparse's program name in usage and errors
        build.main(flags)
        return
    from absl import app

    from mdjpt_jax import main as entry

    if any(flag in SHORT_HELP_FLAGS for flag in flags):
        print(flags_help(subcommand, entry))
        return
    # ml_collections finds the `--config.x=y` overrides in sys.argv, not in app.run's argv.
    sys.argv = [f"mdjpt {subcommand}", *flags]
    app.run(entry.main, argv=sys.argv)


def flags_help(subcommand: str, entry) -> str:
    """`mdjpt SUBCOMMAND --help`: the flags of mdjpt_jax.main (absl's own --help would list
    those of the __main__ module, which defines none)."""
    return (
        f"usage: mdjpt {subcommand} [FLAGS...]   "
        f"(= python -m mdjpt_jax.main --mode={subcommand} [FLAGS...])\n"
        f"{SUBCOMMANDS[subcommand]}\n\n"
        f"{entry.FLAGS.module_help(entry).strip()}\n\n"
        "--helpfull also lists absl's flags (logging, ...)."
    )


def main(argv: list[str] | None = None) -> int:
    """`mdjpt ARGV...`; returns the exit status (2: usage error or a missing extra)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in HELP_FLAGS:
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"mdjpt-jax {__version__}")
        return 0
    subcommand, args = argv[0], argv[1:]
    if subcommand not in SUBCOMMANDS:
        known = ", ".join(SUBCOMMANDS)
        print(f"mdjpt: unknown subcommand {subcommand!r}; one of: {known}", file=sys.stderr)
        return 2
    try:
        flags = args if subcommand == BUILD else main_argv(subcommand, args)
    except ValueError as error:
        print(f"mdjpt {subcommand}: {error}", file=sys.stderr)
        return 2
    try:
        run(subcommand, flags)
    except ModuleNotFoundError as error:
        message = missing_extra_message(subcommand, error.name)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 2
    return 0
