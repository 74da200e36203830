"""The channel contract between a recording and an encoder: names, positions, units.

One contract serves every input path (TFDS builders' unification, extraction, `embed`, the
live stream): a recording's channel labels are normalized (`channels.normalize_name`:
case, surrounding dots and spaces, `EEG ` prefix, `-REF`/`-LE` suffixes), then projected
onto the encoder's channels with `channels.projection_matrix` — identity for channels the
recording has, the montage-based spherical-spline interpolation used in training for the
ones it lacks. On top of that matrix this module adds what a user's recording needs:

- a limit on interpolation: at most MAX_MISSING_FRACTION of the encoder's channels may be
  missing. Decision: 0.5. A 32-channel 10-20 cap (DEAP, FACED) lacks 28 of `seed60`'s 60
  channels (47%) and the encoder saw such interpolated inputs in pre-training; beyond half,
  most of the input is a smooth spline of a few electrodes (a 14-channel consumer headset
  lacks 77%), features describe the interpolation more than the scalp, and a user should
  opt in knowingly (`max_missing=1.0`) rather than get plausible-looking numbers silently;
- extra channels are dropped and listed (they still serve as spline support, as in
  training, when they have a montage position);
- a name without a montage position is refused by name, with a hint to rename it;
- a report (matched, interpolated, dropped) for the user to read and for provenance;
- an amplitude plausibility warning: the contract's unit is µV, and a recording passed in
  volts (MNE's unit) or raw ADC counts is off by orders of magnitude.

Training's unification applies no limit (it is the definition the encoder was trained on;
DREAMER's 14 channels are projected onto 60 there); everything else is shared.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence

import numpy as np

from mdjpt_jax import channels

MAX_MISSING_FRACTION = 0.5
# Plausible spread of band-passed scalp EEG in µV: the median channel standard deviation
# of real recordings lies within ~2-100 µV; volts give ~1e-5, ADC counts or nV ~1e4+.
PLAUSIBLE_STD_UV = (0.5, 5000.0)


class AmplitudeWarning(UserWarning):
    """The signal's amplitude is implausible for EEG in µV (a unit error?)."""


@dataclasses.dataclass(frozen=True)
class ChannelReport:
    """How a recording's channels were mapped onto an encoder's.

    Attributes:
        target: the encoder's channel names, in its input order (C).
        matched: target names found in the recording (target order).
        interpolated: target names missing from the recording, spline-interpolated.
        dropped: recording label -> why it is not an input (extra channel, non-EEG type,
            marked bad, no montage position).
        renamed: recording label -> normalized name, for labels that changed.
    """

    target: list
    matched: list
    interpolated: list
    dropped: dict
    renamed: dict

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [
            f"channels: {len(self.matched)}/{len(self.target)} matched, "
            f"{len(self.interpolated)} interpolated, {len(self.dropped)} dropped"
        ]
        if self.interpolated:
            lines.append(f"  interpolated (spherical spline): {', '.join(self.interpolated)}")
        for reason in dict.fromkeys(self.dropped.values()):
            names = [name for name, why in self.dropped.items() if why == reason]
            lines.append(f"  dropped ({reason}): {', '.join(names)}")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class ChannelMap:
    """matrix [C_target, C_source] (float32) and its report; `apply` maps [..., C_source, T]."""

    matrix: np.ndarray
    report: ChannelReport

    def apply(self, eeg: np.ndarray) -> np.ndarray:
        """[..., C_source, T] µV -> [..., C_target, T] float32 µV."""
        return np.einsum("ds,...st->...dt", self.matrix, np.asarray(eeg, np.float32))


def map_channels(
    source: Sequence[str],
    target: Sequence[str],
    *,
    max_missing: float = MAX_MISSING_FRACTION,
    excluded: dict | None = None,
) -> ChannelMap:
    """The contract: recording channels `source` onto encoder channels `target`.

    Args:
        source: the recording's channel labels, in data order (C_source).
        target: the encoder's channel names, in input order.
        max_missing: largest fraction of `target` that may be interpolated.
        excluded: recording labels already removed from `source` by the caller -> reason
            (non-EEG type, marked bad); listed in the report's `dropped`.

    Returns:
        ChannelMap: matrix [len(target), len(source)] and the report.

    Raises:
        ValueError: a source name with no montage position (named, with a rename hint),
            duplicate names after normalization, or more than `max_missing` of the target
            missing (naming the missing channels).
    """
    source = [str(name) for name in source]
    normalized = [channels.normalize_name(name) for name in source]
    known = channels.montage_positions()
    unknown = [
        name
        for name, norm in zip(source, normalized)
        if norm not in known and norm not in channels.NO_POSITION
    ]
    if unknown:
        raise ValueError(
            f"channel names {unknown} are not electrode names of the {channels.MONTAGE} "
            f"montage (after normalization: {[channels.normalize_name(n) for n in unknown]}). "
            "Rename them to 10-05 names (mne: raw.rename_channels({'old': 'FC5'})), or mark "
            "non-EEG channels as such (raw.set_channel_types) or drop them before embedding."
        )
    target_norm = [channels.normalize_name(name) for name in target]
    present = set(normalized) - channels.NO_POSITION
    missing = [name for name in target_norm if name not in present]
    limit = int(np.floor(max_missing * len(target_norm)))
    if len(missing) > limit:
        raise ValueError(
            f"the recording lacks {len(missing)} of the encoder's {len(target_norm)} channels "
            f"(at most {limit} = {max_missing:.0%} may be interpolated): missing {missing}. "
            f"It has {sorted(present)}."
        )
    matrix = channels.projection_matrix(normalized, target_norm)
    dropped = dict(excluded or {})
    for name, norm in zip(source, normalized):
        if norm in channels.NO_POSITION:
            dropped[name] = "no montage position"
        elif norm not in target_norm:
            dropped[name] = "not an encoder channel"
    report = ChannelReport(
        target=target_norm,
        matched=[n for n in target_norm if n in present],
        interpolated=missing,
        dropped=dropped,
        renamed={name: norm for name, norm in zip(source, normalized) if name != norm},
    )
    return ChannelMap(matrix, report)


def check_amplitude(eeg_uv: np.ndarray, *, where: str) -> float:
    """Warns (AmplitudeWarning) if [..., C, T] µV has an implausible amplitude.

    Returns:
        the median over channels of the per-channel standard deviation, µV.
    """
    x = np.asarray(eeg_uv, np.float64)
    spread = float(np.median(x.reshape(-1, x.shape[-2], x.shape[-1]).std(axis=-1)))
    low, high = PLAUSIBLE_STD_UV
    if spread < low:
        warnings.warn(
            f"{where}: median channel standard deviation {spread:.3g} µV is "
            "implausibly small for EEG in µV: were the samples given in volts or "
            "millivolts? Arrays must be in µV (MNE objects are converted from volts).",
            AmplitudeWarning,
            stacklevel=3,
        )
    elif spread > high:
        warnings.warn(
            f"{where}: median channel standard deviation {spread:.3g} µV is "
            "implausibly large for EEG in µV: nanovolts or raw ADC counts?",
            AmplitudeWarning,
            stacklevel=3,
        )
    return spread
