"""The encoder card: a generated README.md beside an exported encoder's encoder.json.

It states the input contract (channel names in order, sampling rate, window, units,
preprocessing), what the encoder was trained on (datasets, steps), the run's config, the
code version, and how to load and apply it. Everything comes from encoder.json's fields
and the config; nothing is written by hand.
"""

import json
import os
import subprocess

import mdjpt_jax
from mdjpt_jax import channels, contract
from tfds_builders import preprocessing

CARD_FILE = "README.md"


def code_version() -> str:
    """`git describe --always --dirty` of this source tree, else the package version."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        described = None
    if described is not None and described.returncode == 0 and described.stdout.strip():
        return f"git {described.stdout.strip()} (mdjpt_jax {mdjpt_jax.__version__})"
    return f"mdjpt_jax {mdjpt_jax.__version__}"


def card_text(info: dict, config: dict | None) -> str:
    """The card's Markdown from encoder info (model_kwargs merged with extra) and a config."""
    names = list(info.get("ch_names", []))
    fs = float(info.get("fs", preprocessing.TARGET_FS))
    band = tuple(info.get("band", preprocessing.BAND))
    n_times = int(info["n_times"])
    datasets = info.get("datasets", [])
    lines = [
        "# mdJPT encoder",
        "",
        f"Exported by mdjpt-jax, code version `{info.get('code_version', code_version())}`.",
        "",
        "## Input contract",
        "",
        f"- **Channels** ({len(names)}, in this order): {' '.join(names)}",
        f"- **Sampling rate**: {fs:g} Hz",
        f"- **Window**: {n_times} samples = {n_times / fs:g} s "
        f"(`window_s` = {info.get('window_s', n_times / fs)})",
        "- **Units**: µV (`embed` converts MNE objects from volts; numpy arrays must be µV)",
        f"- **Preprocessing**: {preprocessing.describe(fs, band)}",
        (
            "- **Channel contract**: names are normalized (case, dots, `EEG ` prefix, `-REF`/`-LE`"
            " suffixes); missing channels are interpolated with spherical splines on the "
            f"{channels.MONTAGE} montage for at most {contract.MAX_MISSING_FRACTION:.0%} of the "
            "channels; extra channels are dropped and listed (see `mdjpt_jax/contract.py`)."
        ),
        "- **Normalization**: stratified normalization over blocks of windows of ONE subject "
        "(`embed` treats one call as one subject).",
        "",
        "## Training",
        "",
        f"- **Datasets**: {', '.join(datasets) if datasets else 'not recorded'}",
        f"- **Steps**: {info.get('step', 'not recorded')}",
        f"- **Architecture**: variant `{info.get('variant')}`, attention "
        f"`{info.get('attention')}`, {info.get('n_chans')} channels x {n_times} samples",
        "",
        "## How to load it",
        "",
        "```python",
        "import mdjpt_jax",
        "encoder = mdjpt_jax.load_encoder('path/to/encoder')",
        f"result = mdjpt_jax.embed(raw, encoder)   # mne.io.Raw (volts) -> features [W, "
        f"{info.get('feature_dim', 'D')}]",
        "print(result.report.summary())",
        "```",
        "",
        "or from the command line:",
        "",
        "```sh",
        "python -m mdjpt_jax.main --mode=embed --encoder=path/to/encoder "
        "--input=recording.edf --output=features.npz",
        "```",
        "",
        "## encoder.json",
        "",
        "```json",
        json.dumps(info, indent=2, sort_keys=True),
        "```",
        "",
        "## Config of the run",
        "",
    ]
    if config is None:
        lines.append("Not recorded.")
    else:
        lines += ["```json", json.dumps(config, indent=2, sort_keys=True), "```"]
    return "\n".join(lines) + "\n"


def write_card(path: str, info: dict, config: dict | None) -> str:
    """Writes `path`/README.md atomically; returns its path."""
    card = os.path.join(path, CARD_FILE)
    temporary = card + ".tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(card_text(info, config))
    os.replace(temporary, card)
    return card
