"""FACED builder: contract on fake Processed_data, values, labels and bad inputs."""

import os
import pickle
import re

import numpy as np
import pytest

from tfds_builders import file_readers
from tfds_builders import preprocessing
from tfds_builders import testing
from tfds_builders.faced import faced_dataset_builder as faced
from tfds_builders.faced import make_dummy_data
from tfds_builders.validation import InvalidDataError

N_SUBJECTS = 2
N_TIMES = 500  # 2 s at 250 Hz instead of the official 30 s, to keep the test fast.


@pytest.fixture(autouse=True)
def short_trials(monkeypatch):
  monkeypatch.setattr(faced.Builder, "N_TIMES", N_TIMES)


def _build(config, manual_dir, data_dir):
  return testing.build(faced.Builder, config, manual_dir, data_dir)


def _records(builder):
  return testing.read_records(builder)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("faced")
  make_dummy_data.write(root / "manual", n_subjects=N_SUBJECTS, n_times=N_TIMES, seed=3)
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(faced.Builder, "N_SUBJECTS", N_SUBJECTS)
    mp.setattr(faced.Builder, "N_TIMES", N_TIMES)
    builders = {c: _build(c, root / "manual", root / "data") for c in ("raw", "preprocessed")}
  return root / "manual", builders


def _by_id(builder):
  return {(int(r["subject"]), int(r["stimulus"])): r for r in _records(builder)}


@pytest.mark.parametrize("config, n_times, fs", [("raw", N_TIMES, 250.0),
                                                 ("preprocessed", N_TIMES // 2, 125.0)])
def test_contract(built, config, n_times, fs):
  builder = built[1][config]
  records = _records(builder)
  assert len(records) == N_SUBJECTS * 28
  assert len({(int(r["subject"]), int(r["trial"])) for r in records}) == len(records)
  assert all(r["eeg"].dtype == np.float32 and r["eeg"].shape == (32, n_times) for r in records)
  meta = builder.info.metadata
  assert meta["channel_names"][16:18] == ["CP1", "CP2"] and meta["channel_names"][-2:] == ["A2", "A1"]
  assert meta["sampling_rate"] == fs and meta["label_names"][4] == "neutral"
  assert builder.info.features["label"].names == list(faced.LABEL_NAMES)


def test_values_equal_the_pickle(built):
  manual, builders = built
  stored = file_readers.load_latin1_pickle(manual / "Processed_data" / "sub001.pkl")
  raw, pre = _by_id(builders["raw"])[(1, 16)], _by_id(builders["preprocessed"])[(1, 16)]
  np.testing.assert_array_equal(raw["eeg"], stored[16].astype(np.float32))
  np.testing.assert_allclose(pre["eeg"], preprocessing.preprocess_trial(stored[16], 250.0),
                             rtol=1e-5, atol=1e-5)
  assert raw["source_file"] == b"Processed_data/sub001.pkl" and raw["key"] == b"video17"


def test_labels_follow_video_index(built):
  records = _by_id(built[1]["raw"])
  expected = {0: ("anger", 0), 11: ("sadness", 0), 12: ("neutral", 1), 15: ("neutral", 1),
              16: ("amusement", 2), 22: ("joy", 2), 27: ("tenderness", 2)}
  for video, (name, valence) in expected.items():
    r = records[(0, video)]
    assert faced.LABEL_NAMES[int(r["label"])] == name and int(r["valence"]) == valence


def _one_subject(tmp_path, array=None, raw_bytes=None):
  folder = tmp_path / "manual" / "Processed_data"
  folder.mkdir(parents=True)
  path = folder / "sub000.pkl"
  if raw_bytes is not None:
    path.write_bytes(raw_bytes)
  else:
    with open(path, "wb") as f:
      pickle.dump(array, f, protocol=2)
  return tmp_path / "manual"


def _good_array():
  return make_dummy_data.subject_array(np.random.default_rng(0), N_TIMES)


@pytest.mark.parametrize("case, match", [
    ("truncated", "sub000.pkl: unreadable pickle"),
    ("wrong_shape", rf"sub000.pkl: expected shape \(28, 32, {N_TIMES}\)"),
    ("nan", "sub000.pkl: video03: 1 non-finite"),
    ("not_array", "sub000.pkl: expected a pickled ndarray"),
])
def test_bad_input_names_file_and_problem(tmp_path, monkeypatch, case, match):
  monkeypatch.setattr(faced.Builder, "N_SUBJECTS", 1)
  good = _good_array()
  if case == "truncated":
    manual = _one_subject(tmp_path, raw_bytes=pickle.dumps(good, protocol=2)[:1000])
  elif case == "wrong_shape":
    manual = _one_subject(tmp_path, good[:, :30])
  elif case == "nan":
    good[2, 5, 100] = np.nan
    manual = _one_subject(tmp_path, good)
  else:
    manual = _one_subject(tmp_path, {"data": good})
  with pytest.raises(InvalidDataError, match=match):
    _build("raw", manual, tmp_path / "data")


def test_missing_subject_file(built, tmp_path, monkeypatch):
  monkeypatch.setattr(faced.Builder, "N_SUBJECTS", N_SUBJECTS + 1)
  with pytest.raises(InvalidDataError, match="sub002.pkl: missing file"):
    _build("raw", built[0], tmp_path / "data")


@pytest.mark.parametrize("dtype, order", [(np.float64, "F"), (np.float32, "C"), (np.float32, "F")])
def test_array_dtype_and_order_give_identical_records(built, tmp_path, monkeypatch, dtype, order):
  monkeypatch.setattr(faced.Builder, "N_SUBJECTS", N_SUBJECTS)
  paths = make_dummy_data.write(tmp_path / "manual", n_subjects=N_SUBJECTS, n_times=N_TIMES,
                                seed=3, dtype=dtype, order=order)  # The `built` fixture's values.
  array = file_readers.load_latin1_pickle(paths[0])
  assert array.dtype == dtype and array.flags.f_contiguous == (order == "F")
  builder = _build("raw", tmp_path / "manual", tmp_path / "data")
  testing.assert_same_records(_records(builder), _records(built[1]["raw"]))


@pytest.mark.parametrize("target", testing.PAYLOAD_TARGETS)
def test_code_in_a_pickle_is_refused_not_run(tmp_path, monkeypatch, target):
  monkeypatch.setattr(faced.Builder, "N_SUBJECTS", 3)
  paths = make_dummy_data.write(tmp_path / "manual", n_subjects=3, n_times=N_TIMES)
  marker = tmp_path / "payload_ran"
  with open(paths[1], "wb") as f:  # sub001.pkl: a call where the array should be.
    f.write(testing.code_running_pickle(target, marker))
  with pytest.raises(InvalidDataError, match=rf"sub001\.pkl: refused global {re.escape(target)}\b"):
    _build("raw", tmp_path / "manual", tmp_path / "data")
  assert os.listdir(tmp_path / "data") == [] and not marker.exists()
