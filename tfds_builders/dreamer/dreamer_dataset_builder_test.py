"""DREAMER builder: contract on a fake DREAMER.mat, values, labels, ratings and bad inputs."""


import numpy as np
import pytest
from scipy import io as sio

from tfds_builders import preprocessing
from tfds_builders import testing
from tfds_builders.dreamer import dreamer_dataset_builder as dreamer
from tfds_builders.dreamer import make_dummy_data
from tfds_builders.validation import InvalidDataError

N_SUBJECTS = 2


def _build(config, manual_dir, data_dir):
  return testing.build(dreamer.Builder, config, manual_dir, data_dir)


def _by_id(builder):
  source = builder.as_data_source()["train"]
  return {(int(r["subject"]), int(r["trial"])): r for r in (source[i] for i in range(len(source)))}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("dreamer")
  path = make_dummy_data.write(root / "manual", n_subjects=N_SUBJECTS, seed=7)
  builders = {c: _build(c, root / "manual", root / "data") for c in ("raw", "preprocessed")}
  return path, builders


def _stored_subject(path, subject):
  """Independent read, the way public loaders index the file."""
  return sio.loadmat(path)["DREAMER"][0, 0]["Data"][0, subject]


@pytest.mark.parametrize("config, fs", [("raw", 128.0), ("preprocessed", 125.0)])
def test_contract(built, config, fs):
  builder = built[1][config]
  records = _by_id(builder)
  assert len(records) == N_SUBJECTS * 18
  assert all(r["eeg"].dtype == np.float32 and r["eeg"].shape[0] == 14 for r in records.values())
  meta = builder.info.metadata
  assert meta["channel_names"] == list(dreamer.CHANNEL_NAMES) and meta["sampling_rate"] == fs
  assert meta["ratings_names"] == ["valence", "arousal", "dominance"]


def test_values_equal_the_file(built):
  path, builders = built
  stimulus = _stored_subject(path, 1)["EEG"][0, 0]["stimuli"][0, 0][4, 0]  # [time, 14]
  raw, pre = _by_id(builders["raw"])[(1, 4)], _by_id(builders["preprocessed"])[(1, 4)]
  np.testing.assert_array_equal(raw["eeg"], stimulus.T.astype(np.float32))
  np.testing.assert_allclose(pre["eeg"], preprocessing.preprocess_trial(stimulus.T, 128.0),
                             rtol=1e-5, atol=1e-4)
  assert raw["source_file"] == b"DREAMER.mat" and raw["key"] == b"Data{2}.EEG.stimuli{5}"


def test_ratings_and_threshold_label(built):
  path, builders = built
  subject = _stored_subject(path, 0)
  scores = np.concatenate([subject[f][0, 0] for f in ("ScoreValence", "ScoreArousal", "ScoreDominance")], 1)
  records = _by_id(builders["raw"])
  for clip in range(18):
    r = records[(0, clip)]
    np.testing.assert_array_equal(r["ratings"], scores[clip].astype(np.float32))
    assert int(r["label"]) == int(scores[clip, 0] >= 3) and int(r["stimulus"]) == clip
  assert int(records[(0, 0)]["label"]) == 1 and int(records[(0, 1)]["label"]) == 0  # 3 vs 2.


def _corrupt(tmp_path, edit):
  top = make_dummy_data.dreamer_struct(np.random.default_rng(0), 1, min_s=1, max_s=1)
  edit(top)
  make_dummy_data.write(tmp_path / "manual", top=top)
  return tmp_path / "manual"


def _set(*keys, value):
  def edit(top):
    node = top
    for k in keys[:-1]:
      node = node[k]
    node[keys[-1]] = value
  return edit


def _nan_trial(top):
  top["Data"][0, 0]["EEG"]["stimuli"][3, 0][5, 2] = np.nan


@pytest.mark.parametrize("edit, match", [
    (_set("EEG_SamplingRate", value=256.0), "DREAMER.mat: EEG_SamplingRate is 256 Hz"),
    (_set("EEG_Electrodes", value=np.array([["AF3", "F7", "XX9"] + ["O1"] * 11], dtype=object)),
     r"DREAMER.mat: unknown channel name\(s\) \['XX9'\]"),
    (_set("noOfSubjects", value=2.0), "DREAMER.mat: Data holds 1 subjects but noOfSubjects is 2"),
    (_nan_trial, r"DREAMER.mat: Data\{1\}.EEG.stimuli\{4\}: 1 non-finite"),
    (lambda top: top["Data"][0, 0].pop("ScoreArousal"), "DREAMER.mat: missing key 'ScoreArousal'"),
    (lambda top: top["Data"][0, 0]["ScoreValence"].__setitem__((2, 0), 6.0),
     r"DREAMER.mat: Data\{1\}.ScoreValence: rating\(s\) .* out of range \[1, 5\]"),
])
def test_bad_input_names_file_and_problem(tmp_path, edit, match):
  with pytest.raises(InvalidDataError, match=match):
    _build("raw", _corrupt(tmp_path, edit), tmp_path / "data")


def test_wrong_orientation_is_reported(tmp_path):
  def transpose(top):
    top["Data"][0, 0]["EEG"]["stimuli"][0, 0] = top["Data"][0, 0]["EEG"]["stimuli"][0, 0].T
  with pytest.raises(InvalidDataError, match=r"stimuli\{1\}: expected \[time, 14\]"):
    _build("raw", _corrupt(tmp_path, transpose), tmp_path / "data")


def test_truncated_and_missing_file(built, tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "DREAMER_readme.pdf").write_bytes(b"not the data")  # TFDS rejects an empty dir itself.
  with pytest.raises(InvalidDataError, match="DREAMER.mat: missing file"):
    _build("raw", manual, tmp_path / "data")
  (manual / "DREAMER.mat").write_bytes(open(built[0], "rb").read()[:5000])
  with pytest.raises(InvalidDataError, match="DREAMER.mat: unreadable MAT file"):
    _build("raw", manual, tmp_path / "data")
