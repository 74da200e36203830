"""DEAP builder: contract on fake sNN.dat files, values, labels, ratings and bad inputs."""

import os
import pickle
import re

import numpy as np
import pytest

from tfds_builders import file_readers
from tfds_builders import preprocessing
from tfds_builders import testing
from tfds_builders.deap import deap_dataset_builder as deap
from tfds_builders.deap import make_dummy_data
from tfds_builders.validation import InvalidDataError

N_SUBJECTS = 2
N_TIMES = 384 + 256  # 3 s baseline + 2 s "video" instead of the official 3 s + 60 s.


@pytest.fixture(autouse=True)
def short_trials(monkeypatch):
  monkeypatch.setattr(deap.Builder, "N_TIMES", N_TIMES)


def _build(config, manual_dir, data_dir):
  return testing.build(deap.Builder, config, manual_dir, data_dir)


def _by_id(builder):
  source = builder.as_data_source()["train"]
  return {(int(r["subject"]), int(r["trial"])): r for r in (source[i] for i in range(len(source)))}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("deap")
  make_dummy_data.write(root / "manual", n_subjects=N_SUBJECTS, n_times=N_TIMES, seed=5)
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(deap.Builder, "N_SUBJECTS", N_SUBJECTS)
    mp.setattr(deap.Builder, "N_TIMES", N_TIMES)
    builders = {c: _build(c, root / "manual", root / "data") for c in ("raw", "preprocessed")}
  return root / "manual", builders


def _stored(manual, subject):
  path = manual / "data_preprocessed_python" / f"s{subject + 1:02d}.dat"
  return file_readers.load_latin1_pickle(path)


@pytest.mark.parametrize("config, n_times, fs", [("raw", N_TIMES, 128.0),
                                                 ("preprocessed", 250, 125.0)])
def test_contract(built, config, n_times, fs):
  builder = built[1][config]
  records = _by_id(builder)
  assert len(records) == N_SUBJECTS * 40
  assert all(r["eeg"].dtype == np.float32 and r["eeg"].shape == (32, n_times) for r in records.values())
  assert all(r["ratings"].shape == (4,) for r in records.values())
  meta = builder.info.metadata
  assert meta["channel_names"][:4] == ["FP1", "AF3", "F3", "F7"] and meta["channel_names"][16] == "FP2"
  assert meta["sampling_rate"] == fs and meta["ratings_names"] == ["valence", "arousal", "dominance", "liking"]
  assert meta["label_to_valence"] == {"negative": 0, "positive": 2}


def test_values_equal_the_file(built):
  manual, builders = built
  stored = _stored(manual, 1)["data"][7]
  raw, pre = _by_id(builders["raw"])[(1, 7)], _by_id(builders["preprocessed"])[(1, 7)]
  np.testing.assert_array_equal(raw["eeg"], stored[:32].astype(np.float32))  # Peripheral rows dropped.
  expected = preprocessing.preprocess_trial(stored[:32, 384:], 128.0)  # Baseline dropped.
  np.testing.assert_allclose(pre["eeg"], expected, rtol=1e-5, atol=1e-5)
  assert raw["source_file"] == b"data_preprocessed_python/s02.dat" and raw["key"] == b"trial08"


def test_ratings_and_threshold_label(built):
  manual, builders = built
  records = _by_id(builders["preprocessed"])
  labels = _stored(manual, 0)["labels"]
  for t in range(40):
    r = records[(0, t)]
    np.testing.assert_array_equal(r["ratings"], labels[t].astype(np.float32))
    assert int(r["label"]) == int(labels[t, 0] >= 5.0) and int(r["stimulus"]) == t
    assert int(r["valence"]) == (2 if labels[t, 0] >= 5.0 else 0)
  assert int(records[(0, 0)]["label"]) == 1 and int(records[(0, 1)]["label"]) == 0  # 5.0 vs 4.99.


def _one_subject(tmp_path, content=None, raw_bytes=None):
  folder = tmp_path / "manual" / "data_preprocessed_python"
  folder.mkdir(parents=True)
  path = folder / "s01.dat"
  path.write_bytes(raw_bytes if raw_bytes is not None else pickle.dumps(content, protocol=2))
  return tmp_path / "manual"


@pytest.mark.parametrize("case, match", [
    ("truncated", "s01.dat: unreadable pickle"),
    ("missing_key", r"s01.dat: missing key\(s\) \['labels'\]"),
    ("wrong_shape", r"s01.dat: data: expected shape \(40, 40, 640\)"),
    ("inf", r"s01.dat: data\[3\]: 1 non-finite"),
    ("rating_range", r"s01.dat: labels\[2\]: rating\(s\) .* out of range \[1, 9\]"),
])
def test_bad_input_names_file_and_problem(tmp_path, monkeypatch, case, match):
  monkeypatch.setattr(deap.Builder, "N_SUBJECTS", 1)
  content = make_dummy_data.subject_content(np.random.default_rng(0), N_TIMES)
  raw_bytes = None
  if case == "truncated":
    raw_bytes = pickle.dumps(content, protocol=2)[:2000]
  elif case == "missing_key":
    del content["labels"]
  elif case == "wrong_shape":
    content["data"] = content["data"][:, :, :-1]
  elif case == "inf":
    content["data"][3, 10, 5] = np.inf
  else:
    content["labels"][2, 1] = 9.5
  with pytest.raises(InvalidDataError, match=match):
    _build("raw", _one_subject(tmp_path, content, raw_bytes), tmp_path / "data")


def test_missing_subject_file(built, tmp_path, monkeypatch):
  monkeypatch.setattr(deap.Builder, "N_SUBJECTS", N_SUBJECTS + 1)
  with pytest.raises(InvalidDataError, match="s03.dat: missing file"):
    _build("raw", built[0], tmp_path / "data")


@pytest.mark.parametrize("dtype, order", [(np.float64, "F"), (np.float32, "C"), (np.float32, "F")])
def test_array_dtype_and_order_give_identical_records(built, tmp_path, monkeypatch, dtype, order):
  monkeypatch.setattr(deap.Builder, "N_SUBJECTS", N_SUBJECTS)
  paths = make_dummy_data.write(tmp_path / "manual", n_subjects=N_SUBJECTS, n_times=N_TIMES,
                                seed=5, dtype=dtype, order=order)  # The `built` fixture's values.
  for name, array in file_readers.load_latin1_pickle(paths[0]).items():
    assert array.dtype == dtype and array.flags.f_contiguous == (order == "F"), name
  builder = _build("raw", tmp_path / "manual", tmp_path / "data")
  testing.assert_same_records(testing.read_records(builder), testing.read_records(built[1]["raw"]))


@pytest.mark.parametrize("target", testing.PAYLOAD_TARGETS)
def test_code_in_a_pickle_is_refused_not_run(tmp_path, monkeypatch, target):
  monkeypatch.setattr(deap.Builder, "N_SUBJECTS", 3)
  paths = make_dummy_data.write(tmp_path / "manual", n_subjects=3, n_times=N_TIMES)
  marker = tmp_path / "payload_ran"
  labels = make_dummy_data.subject_content(np.random.default_rng(0), N_TIMES)["labels"]
  hidden = testing.code_running_pickle(target, marker,
                                       lambda call: {"labels": labels, "data": call})
  with open(paths[1], "wb") as f:  # s02.dat: valid labels, then a call where `data` should be.
    f.write(hidden)
  with pytest.raises(InvalidDataError, match=rf"s02\.dat: refused global {re.escape(target)}\b"):
    _build("raw", tmp_path / "manual", tmp_path / "data")
  assert os.listdir(tmp_path / "data") == [] and not marker.exists()
