"""TF-free builder test helpers (TFDS's DatasetBuilderTestCase needs TensorFlow).

Functions, for a builder test written by hand:

    from tfds_builders import testing
    builder = testing.build(seed.Builder, "raw", manual_dir, tmp_path / "data")
    records = testing.read_records(builder)
    testing.assert_contract(builder, records, n_records=90)

Or the `BuilderContract` mixin, named after DatasetBuilderTestCase's attributes; it builds
each config once per test class and runs the contract checks as test methods:

    class TestSeed(testing.BuilderContract):
      DATASET_CLASS = seed_dataset_builder.Builder
      SPLITS = {"train": 90}
      BUILDER_CONFIG_NAMES_TO_TEST = ["preprocessed", "raw"]   # None: every config
      CLASS_OVERRIDES = {"SUBJECTS": (1, 2)}                   # set on the class while building

      @classmethod
      def make_manual_dir(cls, tmp_path):
        make_dummy_data.write(tmp_path)                        # fake official files
        return tmp_path

      def test_first_trial_values(self, contract_builds, contract_manual_dir):
        builder, records = contract_builds["raw"]               # (builder, list[dict])
        ...                                                     # vs the files in manual_dir

      def test_nan_names_the_file(self, tmp_path):
        bad = testing.corrupt_copy(self.make_manual_dir(tmp_path / "good"), tmp_path)
        ...                                                     # damage a file in `bad`
        with pytest.raises(validation.InvalidDataError, match="sub01.mat"):
          self.build("raw", bad, tmp_path / "data")            # or (..., SUBJECTS=(1,))

`build` goes through the same atomic path as `python -m tfds_builders.build`, so a
bad-input test also checks that a failed build leaves nothing behind.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import pickle
import shlex
import shutil

import numpy as np
import pytest

from tfds_builders import build as build_lib
from tfds_builders import eeg_schema

METADATA_KEYS = (
    "channel_names",
    "sampling_rate",
    "label_names",
    "valence_names",
    "label_to_valence",
)
_SCALARS = ("subject", "session", "trial", "stimulus", "valence")


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


def corrupt_copy(manual_dir, tmp_path) -> pathlib.Path:
    """A writable copy of manual_dir under tmp_path, to damage for a bad-input case."""
    target = pathlib.Path(tmp_path) / f"corrupt_{pathlib.Path(manual_dir).name}"
    shutil.copytree(manual_dir, target)
    return target


def assert_same_records(got: list[dict], want: list[dict]) -> None:
    """Same number of records, in the same order, with equal fields (arrays compared exactly)."""
    assert len(got) == len(want), (len(got), len(want))
    for g, w in zip(got, want):
        assert set(g) == set(w), (set(g), set(w))
        for name in w:
            where = f"{w['source_file']}:{w['key']} {name}"
            np.testing.assert_array_equal(g[name], w[name], err_msg=where)


# Globals a hostile pickle calls to run code; each payload creates a marker file.
PAYLOAD_TARGETS = ("builtins.open", "os.system", "builtins.eval", "subprocess.Popen")


def payload_call(target: str, marker) -> tuple:
    """(callable, args): what a pickle naming `target` would call to create the file `marker`."""
    marker = os.fspath(marker)
    args = {
        "builtins.open": (marker, "w"),
        "os.system": (f"touch {shlex.quote(marker)}",),
        "builtins.eval": (f"open({marker!r}, 'w').close()",),
        "subprocess.Popen": (["touch", marker],),
    }[target]
    module, name = target.rsplit(".", 1)
    return getattr(importlib.import_module(module), name), args


def _stand_in(*args):
    """Pickled in place of a payload's target; the pickle's bytes then name the target."""
    raise AssertionError(f"the stand-in is never called ({args})")


class _Call:
    """Pickles as a call of `_stand_in(*args)` (REDUCE)."""

    def __init__(self, args):
        self.args = args

    def __reduce__(self):
        return _stand_in, self.args


def code_running_pickle(target: str, marker, wrap=lambda call: call) -> bytes:
    """A protocol-2 pickle that, unpickled without restriction, calls `target` to create `marker`.

    Args:
      target: one of PAYLOAD_TARGETS, written as a GLOBAL opcode `module.name`.
      marker: the file the call would create.
      wrap: places the call in a container (e.g. DEAP's dict) to hide it among valid data.
    """
    _, args = payload_call(target, marker)
    data = pickle.dumps(wrap(_Call(args)), protocol=2)
    stand_in = f"c{__name__}\n{_stand_in.__name__}\n".encode()
    assert data.count(stand_in) == 1, "the stand-in global must appear exactly once"
    module, name = target.rsplit(".", 1)
    return data.replace(stand_in, f"c{module}\n{name}\n".encode())


def assert_records(builder, records: list[dict]) -> None:
    """Per-record checks: eeg [n_chans, T>0] float32 finite, integer ids, label/valence range."""
    meta = builder.info.metadata
    n_labels = builder.info.features["label"].num_classes
    for r in records:
        eeg = r["eeg"]
        where = f"record {r['source_file']}:{r['key']}"
        assert eeg.dtype == np.float32 and eeg.ndim == 2 and eeg.shape[1] > 0, (where, eeg.shape)
        assert eeg.shape[0] == len(meta["channel_names"]), (where, eeg.shape)
        assert np.isfinite(eeg).all(), where
        for name in _SCALARS:
            value = np.asarray(r[name])
            assert value.dtype.kind == "i" and value.shape == (), (where, name, value)
            assert name == "valence" or value >= 0, (where, name, value)
        assert 0 <= r["label"] < n_labels, where
        assert r["valence"] in (eeg_schema.NO_VALENCE, 0, 1, 2), where


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
    assert meta["label_names"] == builder.info.features["label"].names
    assert set(meta["label_to_valence"]) == set(meta["label_names"])
    assert_records(builder, records)


class BuilderContract:
    """Mixin for pytest classes: DatasetBuilderTestCase's contract without TensorFlow.

    Subclasses set DATASET_CLASS, SPLITS (split -> record count, the same for every config
    tested, or override `expected_splits(config)`) and optionally
    BUILDER_CONFIG_NAMES_TO_TEST and CLASS_OVERRIDES (DATASET_CLASS attributes set while
    building, e.g. {"N_SUBJECTS": 2, "N_TIMES": 640} for small fakes), and implement
    `make_manual_dir`. A subclass whose data is already built elsewhere (a session fixture)
    may override the `contract_builds` fixture.
    """

    DATASET_CLASS = None
    SPLITS: dict[str, int] = {}
    BUILDER_CONFIG_NAMES_TO_TEST: list[str] | None = None
    CLASS_OVERRIDES: dict[str, object] = {}

    @classmethod
    def make_manual_dir(cls, tmp_path) -> pathlib.Path | None:
        """Writes fake raw files under tmp_path; returns the manual_dir (None: no download)."""
        raise NotImplementedError(f"{cls.__name__} must implement make_manual_dir(tmp_path)")

    @classmethod
    def expected_splits(cls, config: str | None) -> dict[str, int]:
        """split -> record count of `config`; override when configs differ in size."""
        del config
        return cls.SPLITS

    @classmethod
    def config_names(cls) -> list[str | None]:
        if cls.BUILDER_CONFIG_NAMES_TO_TEST is not None:
            return list(cls.BUILDER_CONFIG_NAMES_TO_TEST)
        return [c.name for c in cls.DATASET_CLASS.BUILDER_CONFIGS] or [None]

    @classmethod
    def patches(cls, **overrides) -> list[tuple[object, str, object]]:
        """(object, attribute, value) triples set while building.

        CLASS_OVERRIDES updated by `overrides`, on DATASET_CLASS; a subclass extends the list
        when the build also needs a library patched (e.g. a reader of a format no library writes).
        """
        return [
            (cls.DATASET_CLASS, name, value)
            for name, value in {**cls.CLASS_OVERRIDES, **overrides}.items()
        ]

    def build(self, config, manual_dir, data_dir, **overrides):
        """`build` of DATASET_CLASS with `patches(**overrides)` set during the build only."""
        with pytest.MonkeyPatch.context() as mp:
            for target, name, value in self.patches(**overrides):
                mp.setattr(target, name, value)
            return build(self.DATASET_CLASS, config, manual_dir, data_dir)

    @staticmethod
    def read_all(builder) -> list[dict]:
        """Every record of every split (split order, then storage order)."""
        return [r for split in builder.info.splits for r in read_records(builder, split)]

    @pytest.fixture(scope="class")
    def contract_manual_dir(self, tmp_path_factory) -> pathlib.Path | None:
        """The fake download the contract builds from (written once per class)."""
        return type(self).make_manual_dir(tmp_path_factory.mktemp(type(self).__name__) / "manual")

    @pytest.fixture(scope="class")
    def contract_builds(self, contract_manual_dir, tmp_path_factory) -> dict:
        """config -> (builder, records of all splits); each config built once per class."""
        data_dir = tmp_path_factory.mktemp(f"{type(self).__name__}_data")
        return {
            config: (builder, self.read_all(builder))
            for config in self.config_names()
            for builder in [self.build(config, contract_manual_dir, data_dir)]
        }

    def test_contract_split_counts(self, contract_builds):
        for config, (builder, _) in contract_builds.items():
            counts = {k: v.num_examples for k, v in builder.info.splits.items()}
            assert counts == self.expected_splits(config), (config, counts)

    def test_contract_metadata(self, contract_builds):
        for config, (builder, _) in contract_builds.items():
            meta = builder.info.metadata
            assert set(METADATA_KEYS) <= set(meta), (config, set(METADATA_KEYS) - set(meta))
            assert meta["label_names"] == builder.info.features["label"].names, config
            assert set(meta["label_to_valence"]) == set(meta["label_names"]), config
            if getattr(builder.builder_config, "preprocess", False):
                assert meta["sampling_rate"] == builder.builder_config.target_fs, config

    def test_contract_records(self, contract_builds):
        for builder, records in contract_builds.values():
            assert_records(builder, records)

    def test_contract_keys_unique_across_splits(self, contract_builds):
        for config, (_, records) in contract_builds.items():
            keys = [(r["source_file"], r["key"]) for r in records]
            assert len(set(keys)) == len(keys), (config, "duplicate (source_file, key)")
