"""tfds_builders.build: atomic builds, reader errors surface with the file name."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tfds_builders
from tfds_builders import build, eeg_schema, validation


class FailingToy(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Writes two good records, then meets a corrupt file."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = "test data"

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, features=eeg_schema.trial_features(2, ["a", "b"])
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(dl_manager.manual_dir)}

    def _generate_examples(self, manual_dir):
        for i in range(3):
            path = os.path.join(manual_dir, f"trial{i}.npy")
            eeg = validation.check_eeg(np.load(path, allow_pickle=False), path, "eeg", n_chans=2)
            yield (
                f"t{i}",
                {
                    "eeg": eeg.astype(np.float32),
                    "subject": 0,
                    "session": 0,
                    "trial": i,
                    "stimulus": i,
                    "label": 0,
                    "valence": -1,
                    "source_file": path,
                    "key": "eeg",
                },
            )


@pytest.fixture
def toy(monkeypatch, tmp_path):
    monkeypatch.setattr(tfds_builders, "import_builder", lambda name: FailingToy)
    manual = tmp_path / "manual"
    manual.mkdir()
    for i in range(3):
        np.save(manual / f"trial{i}.npy", np.ones((2, 10)))
    return manual


def test_build_is_atomic_and_names_the_bad_file(toy, tmp_path):
    bad = np.ones((2, 10))
    bad[1, 4] = np.nan
    np.save(toy / "trial2.npy", bad)
    data_dir = tmp_path / "data"
    with pytest.raises(validation.InvalidDataError, match=r"trial2\.npy.*NaN"):
        build.build_dataset("failing_toy", None, data_dir, manual_dir=toy)
    assert os.listdir(data_dir) == []  # nothing half-written


def test_build_then_rebuild_is_a_no_op(toy, tmp_path):
    data_dir = tmp_path / "data"
    builder = build.build_dataset("failing_toy", None, data_dir, manual_dir=toy)
    assert builder.info.splits["train"].num_examples == 3
    info_file = os.path.join(builder.data_dir, "dataset_info.json")
    mtime = os.path.getmtime(info_file)
    build.build_dataset("failing_toy", None, data_dir, manual_dir=toy)
    assert os.path.getmtime(info_file) == mtime
    assert [p for p in os.listdir(data_dir) if p.startswith(".building")] == []


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'seed_xx'"):
        tfds_builders.import_builder("seed_xx")


def test_every_builder_is_importable_and_registered():
    for name in tfds_builders.NAMES:
        cls = tfds_builders.import_builder(name)
        assert cls.name == name
