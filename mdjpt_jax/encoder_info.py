"""The one schema of an exported encoder's info (encoder.json), written at export and read
without defaults by the card, `load_encoder`, embedding, extraction and streaming.

encoder.json = {"model_kwargs": MODEL_FIELDS (+ other Encoder arguments),
                "extra": EXTRA_FIELDS (+ PROVENANCE_FIELDS when known)};
info = model_kwargs merged with extra (what `checkpointing.load_encoder` returns).

The export writes every field: the caller gives ch_names, fs, window_s, datasets and step;
`derived_fields` adds band, units, preprocessing, feature_dim and code_version. An encoder
exported before those five were recorded still loads: `fill_legacy` fills them once, at
load, and logs a note naming the file.
"""

import logging
import os
import subprocess

from tfds_builders import preprocessing

MODEL_FIELDS = {"n_chans": int, "n_times": int, "variant": str, "attention": str}
EXTRA_FIELDS = {
    "ch_names": list,  # C channel names, in the encoder's input order
    "fs": float,  # sampling rate, Hz
    "window_s": float,  # window, s (n_times / fs)
    "band": list,  # [low, high] band-pass, Hz
    "units": str,  # input units ("µV")
    "preprocessing": str,  # what the input must have been through (preprocessing.describe)
    "feature_dim": int,  # D of the per-window features [W, D]
    "datasets": list,  # the pre-training datasets
    "step": int,  # the pre-training step exported
    "code_version": str,  # code_version() of the exporting tree
}
PROVENANCE_FIELDS = {
    "ch_set": str,
    "heldout_subjects": int,
    "heldout_subject_ids": dict,
    "trained_attention": str,  # load_encoder(attention=...) of another mode than exported
}
LEGACY_FIELDS = ("band", "units", "preprocessing", "feature_dim", "code_version")
UNITS = "µV"
_TYPES = {**MODEL_FIELDS, **EXTRA_FIELDS, **PROVENANCE_FIELDS}


def code_version(package_dir: str | None = None) -> str:
    """`git describe --always --dirty` of this source tree when the package runs from its own
    checkout (`package_dir`, default this package's directory, is `mdjpt_jax/` at the top of
    a git work tree), else the package version: an installed copy inside some other
    repository (a venv in a user's project) must not report that project's commit."""
    import mdjpt_jax

    here = package_dir or os.path.dirname(os.path.abspath(__file__))

    def git(*args):
        try:
            done = subprocess.run(
                ["git", *args], cwd=here, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None

    top = git("rev-parse", "--show-toplevel")
    own = os.path.join(top, "mdjpt_jax") if top else ""
    own_checkout = os.path.isdir(own) and os.path.samefile(own, here)
    described = git("describe", "--always", "--dirty", "--tags") if own_checkout else None
    if described:
        return f"git {described} (mdjpt_jax {mdjpt_jax.__version__})"
    return f"mdjpt_jax {mdjpt_jax.__version__}"


def derived_fields(*, fs: float, feature_dim: int, code: str) -> dict:
    """The fields the export adds to the caller's: band, units, preprocessing (of the
    built datasets: tfds_builders.preprocessing), feature_dim and code_version `code`."""
    band = list(preprocessing.BAND)
    return dict(
        band=band,
        units=UNITS,
        preprocessing=preprocessing.describe(float(fs), tuple(band)),
        feature_dim=int(feature_dim),
        code_version=code,
    )


def fill_legacy(extra: dict, *, feature_dim: int, source: str) -> dict:
    """`extra` of an encoder exported before LEGACY_FIELDS were recorded, with the missing
    ones filled (as that export's code had them: the builders' band, µV) and a note logged."""
    missing = [k for k in LEGACY_FIELDS if k not in extra]
    if not missing:
        return extra
    filled = derived_fields(
        fs=extra.get("fs", 0.0),  # a missing fs is check()'s error
        feature_dim=feature_dim,
        code="unknown (exported before code_version was recorded)",
    )
    logging.warning(
        "%s: exported before %s were recorded; filled at load from this code: %s",
        source,
        ", ".join(missing),
        {k: filled[k] for k in missing},
    )
    return dict(extra, **{k: filled[k] for k in missing})


def _type_ok(value, expected) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, expected) and not isinstance(value, bool)


def check(model_kwargs: dict, extra: dict, *, source: str) -> None:
    """Raises ValueError naming `source` (the encoder.json) when a field is missing, unknown
    (not an Encoder argument model_kwargs may carry: `allowed_model` is checked by the
    caller), in both parts, or of the wrong type."""
    problems = []
    missing = [k for k in MODEL_FIELDS if k not in model_kwargs]
    missing += [k for k in EXTRA_FIELDS if k not in extra]
    if missing:
        problems.append(f"missing fields {missing}")
    unknown = sorted(set(extra) - set(EXTRA_FIELDS) - set(PROVENANCE_FIELDS))
    if unknown:
        problems.append(
            f"unknown fields {unknown} in extra (known: {sorted(EXTRA_FIELDS)} and "
            f"{sorted(PROVENANCE_FIELDS)})"
        )
    clash = sorted(set(model_kwargs) & set(extra))
    if clash:
        problems.append(f"keys {clash} are in both model_kwargs and extra")
    for key, value in {**model_kwargs, **extra}.items():
        expected = _TYPES.get(key)
        if expected is not None and not _type_ok(value, expected):
            names = [t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,))]
            problems.append(f"{key}={value!r} is not {' or '.join(names)}")
    if problems:
        raise ValueError(f"{source}: not a valid encoder info: " + "; ".join(problems))
