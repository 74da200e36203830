"""TF-free builder test helpers (TFDS's DatasetBuilderTestCase needs TensorFlow).

Usage in a builder test:

    from tfds_builders import testing
    builder = testing.build(seed.Builder, "raw", manual_dir, tmp_path / "data")
    records = testing.read_records(builder)
    testing.assert_contract(builder, records, n_records=90)

`build` goes through the same atomic path as `python -m tfds_builders.build`, so a
bad-input test also checks that a failed build leaves nothing behind.
"""

from __future__ import annotations

import os

import numpy as np

from tfds_builders import build as build_lib
from tfds_builders import eeg_schema

METADATA_KEYS = ("channel_names", "sampling_rate", "label_names", "valence_names",
                 "label_to_valence")


def build(builder_cls, config: str | None, manual_dir, data_dir):
  """Builds config of builder_cls from manual_dir into data_dir; returns the builder.

  On failure, asserts that data_dir holds no partial dataset before re-raising.
  """
  try:
    return build_lib.build_with(builder_cls, config, data_dir, manual_dir)
  except Exception:
    leftovers = os.listdir(data_dir) if os.path.isdir(data_dir) else []
    assert not leftovers, f"failed build left {leftovers} in {data_dir}"
    raise


def read_records(builder, split: str = "train") -> list[dict]:
  """Every record of a split, in storage order, read through the array_record data source."""
  source = builder.as_data_source()[split]
  return [source[i] for i in range(len(source))]


def assert_contract(builder, records: list[dict], *, n_records: int) -> None:
  """Record count, unique keys, eeg dtype/shape/finiteness, labels and metadata."""
  meta = builder.info.metadata
  assert set(METADATA_KEYS) <= set(meta), f"metadata lacks {set(METADATA_KEYS) - set(meta)}"
  assert len(records) == n_records == builder.info.splits["train"].num_examples
  keys = [(r["source_file"], r["key"]) for r in records]
  assert len(set(keys)) == len(keys), "duplicate (source_file, key)"
  config = builder.builder_config
  if getattr(config, "preprocess", False):
    assert meta["sampling_rate"] == config.target_fs
  n_labels = builder.info.features["label"].num_classes
  assert meta["label_names"] == builder.info.features["label"].names
  for r in records:
    eeg = r["eeg"]
    assert eeg.dtype == np.float32 and eeg.ndim == 2 and eeg.shape[1] > 0
    assert eeg.shape[0] == len(meta["channel_names"])
    assert np.isfinite(eeg).all()
    assert 0 <= r["label"] < n_labels
    assert r["valence"] in (eeg_schema.NO_VALENCE, 0, 1, 2)
