"""The record schema every emotion-EEG builder writes, and its builder config.

One record = one trial: one subject watching one stimulus in one session.
The `eeg` feature is [n_chans, n_times] float32 in µV; `n_times` varies per trial.
Dataset-level facts live in `info.metadata` under the keys of `metadata(...)`.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders.preprocessing import BAND, TARGET_FS

VALENCE_NAMES = ("negative", "neutral", "positive")
NO_VALENCE = -1  # `valence` value for a label that has no valence in its dataset.


@dataclasses.dataclass
class EegConfig(tfds.core.BuilderConfig):
    """Builder config: only choices that change what is written.

    Attributes:
      preprocess: False = `raw` (channels and samples exactly as stored in the file, native
        rate); True = `preprocessed` (band-pass `band`, resampled to `target_fs`, µV).
      target_fs: output rate in Hz when `preprocess`.
      band: (low, high) band-pass edges in Hz when `preprocess`.
    """

    preprocess: bool = True
    target_fs: float = TARGET_FS
    band: tuple[float, float] = BAND


def standard_configs(version: str = "1.0.0") -> list[EegConfig]:
    """The two configs every real-dataset builder offers; `preprocessed` is the default."""
    return [
        EegConfig(
            name="preprocessed",
            version=version,
            preprocess=True,
            description=f"Band-pass {BAND[0]}-{BAND[1]} Hz, resampled to {TARGET_FS:g} Hz, µV.",
        ),
        EegConfig(
            name="raw",
            version=version,
            preprocess=False,
            description="Each trial's EEG channels exactly as stored, native rate, unfiltered.",
        ),
    ]


def selected_subjects(builder, n_subjects: int) -> list[int]:
    """0-based positions, in the dataset's official subject order, of the subjects to build.

    Strict by default: all `n_subjects`. A partial build (`tfds_builders.build --subjects`,
    `build.subset_builder`) sets the builder class's SELECTED_SUBJECTS to 1-based positions
    (subject k = the k-th subject of the official layout); only their files are then read and
    required, and records keep the subject index they have in the full dataset.

    Raises:
      ValueError: a selected position outside 1..n_subjects.
    """
    selected = getattr(builder, "SELECTED_SUBJECTS", None)
    if selected is None:
        return list(range(n_subjects))
    outside = sorted(k for k in selected if not 1 <= k <= n_subjects)
    if outside or not selected:
        raise ValueError(
            f"{builder.name}: --subjects {sorted(selected)}: {outside or 'none'} "
            f"outside the dataset's subjects 1..{n_subjects}"
        )
    return sorted({k - 1 for k in selected})


def trial_features(
    n_chans: int, label_names: Sequence[str], n_ratings: int | None = None
) -> tfds.features.FeaturesDict:
    """FeaturesDict of one trial record.

    Args:
      n_chans: number of EEG channels (fixed per dataset).
      label_names: the dataset's own emotion categories, lower-case English.
      n_ratings: length of the per-trial self-rating vector (DEAP 4, DREAMER 3), or None.
    """
    features = {
        "eeg": tfds.features.Tensor(shape=(n_chans, None), dtype=np.float32, encoding="zlib"),
        "subject": np.int32,  # 0-based subject index within the dataset.
        "session": np.int32,  # 0-based session index within the subject, in recording order.
        "trial": np.int32,  # 0-based presentation position within the session.
        "stimulus": np.int32,  # 0-based stimulus id; the same clip has the same id for everyone.
        "label": tfds.features.ClassLabel(names=list(label_names)),
        "valence": np.int32,  # index into VALENCE_NAMES, or NO_VALENCE.
        "source_file": tfds.features.Text(),  # path relative to manual_dir.
        "key": tfds.features.Text(),  # the trial's key/index inside the source file.
    }
    if n_ratings:
        features["ratings"] = tfds.features.Tensor(shape=(n_ratings,), dtype=np.float32)
    return tfds.features.FeaturesDict(features)


def metadata(
    channel_names: Sequence[str],
    sampling_rate: float,
    label_names: Sequence[str],
    label_to_valence: Mapping[str, int],
    **extra,
) -> tfds.core.MetadataDict:
    """Dataset-level metadata stored in `info.metadata`.

    Args:
      channel_names: upper-case 10-10 names in the file's true channel order.
      sampling_rate: Hz of the stored `eeg` (native for `raw`, target_fs for `preprocessed`).
      label_names: same order as the `label` ClassLabel.
      label_to_valence: label name -> index into VALENCE_NAMES or NO_VALENCE.
      **extra: any further JSON-serializable facts (e.g. `ratings_names`).
    """
    return tfds.core.MetadataDict(
        channel_names=[c.upper() for c in channel_names],
        sampling_rate=float(sampling_rate),
        label_names=list(label_names),
        valence_names=list(VALENCE_NAMES),
        label_to_valence={k: int(v) for k, v in label_to_valence.items()},
        **extra,
    )
