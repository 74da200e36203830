"""The encoder card: a generated README.md beside an exported encoder's encoder.json.

It states the input contract (channel names in order, sampling rate, window, units,
preprocessing), what the encoder was trained on (datasets, steps), the run's config, the
code version, and how to load and apply it. Everything comes from encoder.json's fields
(every one of encoder_info's schema, read without defaults) and the config; nothing is
written by hand.
"""

import json
import os

from mdjpt_jax import channels, contract, workdir

CARD_FILE = "README.md"


def card_text(info: dict, config: dict | None) -> str:
    """The card's Markdown from encoder info (model_kwargs merged with extra: every field of
    encoder_info's schema) and a config."""
    names = list(info["ch_names"])
    fs = float(info["fs"])
    n_times = int(info["n_times"])
    datasets = info["datasets"]
    lines = [
        "# mdJPT encoder",
        "",
        f"Exported by mdjpt-jax, code version `{info['code_version']}`.",
        "",
        "## Input contract",
        "",
        f"- **Channels** ({len(names)}, in this order): {' '.join(names)}",
        f"- **Sampling rate**: {fs:g} Hz",
        f"- **Window**: {n_times} samples = {n_times / fs:g} s (`window_s` = {info['window_s']})",
        f"- **Units**: {info['units']} (`embed` converts MNE objects from volts; numpy arrays "
        f"must be {info['units']})",
        f"- **Preprocessing**: {info['preprocessing']}",
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
        f"- **Steps**: {info['step']}",
        f"- **Architecture**: variant `{info['variant']}`, attention "
        f"`{info['attention']}`, {info['n_chans']} channels x {n_times} samples",
        "",
        "## How to load it",
        "",
        "```python",
        "import mdjpt_jax",
        "encoder = mdjpt_jax.load_encoder('path/to/encoder')",
        f"result = mdjpt_jax.embed(raw, encoder)   # mne.io.Raw (volts) -> features [W, "
        f"{info['feature_dim']}]",
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
    workdir.write_text(card, card_text(info, config))
    return card
