"""tfds_builders infrastructure: preprocessing, validation and the BuilderContract mixin."""

import builtins
import codecs
import os
import pickle
import re
import struct
import subprocess

import numpy as np
import pytest
import tensorflow_datasets as tfds
from scipy import signal

from tfds_builders import (
    dummy_data,
    eeg_schema,
    file_readers,
    preprocessing,
    testing,
    validation,
)

FS = 125.0


def _amplitude_at(x, fs, freq):
    """Amplitude of the `freq` Hz component of a 1-D signal (least squares on sin/cos)."""
    t = np.arange(x.shape[-1]) / fs
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], 1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    return float(np.hypot(*coef))


@pytest.mark.parametrize("fs", [200.0, 250.0, 128.0, 1000.0])
def test_resample_keeps_sine_amplitude_and_frequency(fs):
    t = np.arange(int(20 * fs)) / fs
    x = 30.0 * np.sin(2 * np.pi * 10.0 * t)[None]
    y = preprocessing.resample(x, fs, FS)
    assert y.shape == (1, int(20 * FS))
    core = y[0, 250:-250]  # away from the polyphase filter's edge transients
    assert _amplitude_at(core, FS, 10.0) == pytest.approx(30.0, rel=1e-3)
    freqs, power = signal.periodogram(y[0], FS)
    assert freqs[np.argmax(power)] == pytest.approx(10.0, abs=0.05)


def test_bandpass_removes_drift_and_line_noise_and_keeps_alpha():
    t = np.arange(int(60 * FS)) / FS
    alpha = 20.0 * np.sin(2 * np.pi * 10.0 * t)
    x = alpha + 200.0 * np.sin(2 * np.pi * 0.1 * t) + 50.0 * np.sin(2 * np.pi * 60.0 * t)
    y = preprocessing.bandpass(x[None], FS, (0.5, 47.0))[0]
    core = slice(int(10 * FS), int(50 * FS))
    assert _amplitude_at(y[core], FS, 0.1) < 0.02 * 200.0
    assert _amplitude_at(y[core], FS, 60.0) < 0.01 * 50.0
    assert _amplitude_at(y[core], FS, 10.0) == pytest.approx(20.0, rel=1e-2)


def test_preprocess_trial_units_shape_and_dtype():
    fs = 200.0
    rng = np.random.default_rng(0)
    eeg = 1000.0 + 10.0 * rng.standard_normal((3, int(8 * fs)))  # DC offset of 1 mV
    out = preprocessing.preprocess_trial(eeg, fs)
    assert out.dtype == np.float32 and out.shape == (3, int(8 * FS))
    assert np.abs(out.mean(-1)).max() < 1.0  # offset removed, µV scale kept
    assert 3.0 < out.std() < 10.0


def test_require_file_names_missing_and_empty_files(tmp_path):
    missing = tmp_path / "sub01.mat"
    with pytest.raises(validation.InvalidDataError, match=r"sub01\.mat: missing file"):
        validation.require_file(missing)
    missing.write_bytes(b"")
    with pytest.raises(validation.InvalidDataError, match=r"sub01\.mat: empty file"):
        validation.require_file(missing)
    missing.write_bytes(b"x")
    validation.require_file(missing)


@pytest.mark.parametrize(
    "eeg, kwargs, problem",
    [
        (np.ones((3, 10)), {"n_chans": 4}, "expected 4 channels"),
        (np.ones(10), {"n_chans": 1}, "2-D numeric array"),
        (np.array([["a", "b"]]), {"n_chans": 1}, "2-D numeric array"),
        (np.ones((2, 5)), {"n_chans": 2, "n_times": 6}, "expected 6 samples, got 5"),
        (np.ones((2, 5)), {"n_chans": 2, "min_times": 8}, "only 5 samples"),
        (
            np.where(np.eye(2, 5) > 0, np.inf, 0.0),
            {"n_chans": 2},
            r"non-finite.*\[channel 0, sample 0\]",
        ),
    ],
)
def test_check_eeg_names_file_key_and_problem(eeg, kwargs, problem):
    with pytest.raises(validation.InvalidDataError, match=r"/data/s1\.mat: trial3: .*" + problem):
        validation.check_eeg(eeg, "/data/s1.mat", "trial3", **kwargs)


def test_check_eeg_returns_good_input_unchanged():
    eeg = np.arange(6, dtype=np.int16).reshape(2, 3)
    assert validation.check_eeg(eeg, "f", "k", n_chans=2, n_times=3).dtype == np.int16
    np.testing.assert_array_equal(validation.check_eeg(eeg, "f", "k", n_chans=2), eeg)


def test_channel_label_and_key_checks_name_the_file():
    assert validation.check_channel_names(["fp1", " Cz", "CB1"], "cap.txt") == ["FP1", "CZ", "CB1"]
    with pytest.raises(validation.InvalidDataError, match=r"cap\.txt: unknown.*XX9"):
        validation.check_channel_names(["FP1", "XX9"], "cap.txt")
    with pytest.raises(validation.InvalidDataError, match=r"cap\.txt: duplicate"):
        validation.check_channel_names(["FP1", "fp1"], "cap.txt")
    assert validation.check_label(2.0, 3, "lab.mat", "t0") == 2
    for bad in (3, -1, 1.5):
        with pytest.raises(validation.InvalidDataError, match=r"lab\.mat: t0: label"):
            validation.check_label(bad, 3, "lab.mat", "t0")
    with pytest.raises(validation.InvalidDataError, match=r"x\.mat: missing key\(s\) \['b'\]"):
        validation.check_keys(["a"], ["a", "b"], "x.mat")


def _python2_pickle(obj) -> bytes:
    """A dict of str -> float ndarray (or one array) as Python 2's cPickle wrote DEAP (protocol 2).

    Same opcodes as cPickle with numpy 1.x, less the memo: Python-2 `str` (SHORT_BINSTRING /
    BINSTRING) for keys, typecodes and the raw array bytes, and the `numpy.core` names.
    """

    def string(raw):
        if len(raw) < 256:
            return pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw
        return pickle.BINSTRING + struct.pack("<i", len(raw)) + raw

    def tuple_of(*items):
        return pickle.MARK + b"".join(items) + pickle.TUPLE

    def integer(i):
        return pickle.BININT + struct.pack("<i", i)

    def array(a):
        dtype = (
            pickle.GLOBAL
            + b"numpy\ndtype\n"
            + tuple_of(string(a.dtype.str[1:].encode()), integer(0), integer(1))
            + pickle.REDUCE
            + tuple_of(
                integer(3), string(b"<"), pickle.NONE * 3, integer(-1), integer(-1), integer(0)
            )
            + pickle.BUILD
        )
        fortran = a.flags.f_contiguous and not a.flags.c_contiguous
        return (
            pickle.GLOBAL
            + b"numpy.core.multiarray\n_reconstruct\n"
            + tuple_of(pickle.GLOBAL + b"numpy\nndarray\n", tuple_of(integer(0)), string(b"b"))
            + pickle.REDUCE
            + tuple_of(
                integer(1),
                tuple_of(*map(integer, a.shape)),
                dtype,
                pickle.NEWTRUE if fortran else pickle.NEWFALSE,
                string(a.tobytes(order="A")),
            )
            + pickle.BUILD
        )

    if isinstance(obj, dict):
        body = (
            pickle.EMPTY_DICT
            + pickle.MARK
            + b"".join(string(k.encode()) + array(v) for k, v in obj.items())
            + pickle.SETITEMS
        )
    else:
        body = array(obj)
    return pickle.PROTO + b"\x02" + body + pickle.STOP


def _arrays(dtype, order):
    rng = np.random.default_rng(0)
    return {
        "data": np.asarray(rng.normal(0.0, 10.0, (3, 4, 5)), dtype, order=order),
        "labels": np.asarray(rng.uniform(1.0, 9.0, (3, 4)), dtype, order=order),
    }


def _assert_same_arrays(got, want):
    assert set(got) == set(want)
    for name, array in want.items():
        assert got[name].dtype == array.dtype, name
        assert got[name].flags.f_contiguous == array.flags.f_contiguous, name
        np.testing.assert_array_equal(got[name], array)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_array_unpickler_reads_arrays_of_every_protocol(tmp_path, protocol, order, dtype):
    want = _arrays(dtype, order)
    path = dummy_data.write_pickle(tmp_path / "s01.dat", want, protocol=protocol)
    _assert_same_arrays(file_readers.load_latin1_pickle(path), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_array_unpickler_reads_python2_pickles(tmp_path, order, dtype):
    want = _arrays(dtype, order)
    path = tmp_path / "s01.dat"
    path.write_bytes(_python2_pickle(want))
    _assert_same_arrays(file_readers.load_latin1_pickle(path), want)
    path.write_bytes(_python2_pickle(want["data"]))
    np.testing.assert_array_equal(file_readers.load_latin1_pickle(path), want["data"])


class _Reduce:
    """Pickles as `func(*args)`, `func` named as pickle names it (GLOBAL or STACK_GLOBAL)."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_payloads_would_run_under_a_plain_unpickler(tmp_path):
    """The calls the hostile pickles of the builder tests name do create their marker."""
    for i, target in enumerate(testing.PAYLOAD_TARGETS):
        marker = tmp_path / f"marker{i}"
        func, args = testing.payload_call(target, marker)
        result = func(*args)
        if hasattr(result, "wait"):
            result.wait()
        if hasattr(result, "close"):
            result.close()
        assert marker.exists(), target


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_array_unpickler_refuses_any_other_global_and_runs_nothing(tmp_path, protocol):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "sub000.pkl"
    cases = [  # (pickled object, the global it names as pickle writes it, e.g. io.open)
        (_Reduce(builtins.open, (os.fspath(marker), "w")), builtins.open),
        ({"data": np.zeros(2), "labels": _Reduce(os.system, (f"touch {marker}",))}, os.system),
        (
            [np.zeros(2), _Reduce(builtins.eval, (f"open({os.fspath(marker)!r}, 'w')",))],
            builtins.eval,
        ),
        (
            (np.zeros(2), _Reduce(subprocess.Popen, (["touch", os.fspath(marker)],))),
            subprocess.Popen,
        ),
        (np.float64(1.5), np.zeros(1)[0].__reduce__()[0]),  # numpy scalars are not needed.
    ]
    for obj, func in cases:
        refused = re.escape(f"{func.__module__}.{func.__name__}")
        dummy_data.write_pickle(path, obj, protocol=protocol)
        match = rf"sub000\.pkl: refused global {refused}\b.*nothing in the file was run"
        with pytest.raises(validation.InvalidDataError, match=match):
            file_readers.load_latin1_pickle(path)
    assert not marker.exists()


def test_array_unpickler_rebuilds_bytes_from_latin1_text_only(tmp_path):
    path = dummy_data.write_pickle(tmp_path / "s01.dat", _Reduce(codecs.encode, ("abc", "rot13")))
    with pytest.raises(validation.InvalidDataError, match=r"s01\.dat: unreadable pickle.*'latin1'"):
        file_readers.load_latin1_pickle(path)


class ToyBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Two configs; one record per `trial<i>.npy` in manual_dir, labels cycling 0, 1."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = eeg_schema.standard_configs()
    MANUAL_DOWNLOAD_INSTRUCTIONS = "test data"
    N_TRIALS = 4

    def _info(self):
        fs = self.builder_config.target_fs if self.builder_config.preprocess else 250.0
        return tfds.core.DatasetInfo(
            builder=self,
            features=eeg_schema.trial_features(2, ["sad", "happy"]),
            metadata=eeg_schema.metadata(
                ["CZ", "PZ"], fs, ["sad", "happy"], {"sad": 0, "happy": 2}
            ),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(dl_manager.manual_dir)}

    def _generate_examples(self, manual_dir):
        for i in range(self.N_TRIALS):
            path = os.path.join(manual_dir, f"trial{i}.npy")
            validation.require_file(path)
            eeg = validation.check_eeg(np.load(path, allow_pickle=False), path, "eeg", n_chans=2)
            if self.builder_config.preprocess:
                eeg = preprocessing.preprocess_trial(eeg, 250.0)
            yield (
                f"trial{i}",
                {
                    "eeg": eeg.astype(np.float32),
                    "subject": i // 2,
                    "session": 0,
                    "trial": i % 2,
                    "stimulus": i % 2,
                    "label": i % 2,
                    "valence": 2 * (i % 2),
                    "source_file": f"trial{i}.npy",
                    "key": "eeg",
                },
            )


class TestToyContract(testing.BuilderContract):
    """The mixin on a toy builder: its own checks pass, and wrong expectations fail."""

    DATASET_CLASS = ToyBuilder
    SPLITS = {"train": 4}

    @classmethod
    def make_manual_dir(cls, tmp_path):
        tmp_path.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for i in range(4):
            np.save(tmp_path / f"trial{i}.npy", 10.0 * rng.standard_normal((2, 500)))
        return tmp_path

    def test_builds_each_config_once_with_its_rate(self, contract_builds):
        assert sorted(contract_builds) == ["preprocessed", "raw"]
        raw, pre = contract_builds["raw"][1], contract_builds["preprocessed"][1]
        assert raw[0]["eeg"].shape == (2, 500) and pre[0]["eeg"].shape == (2, 250)

    def test_wrong_split_count_fails(self, contract_builds):
        class Expect5(testing.BuilderContract):
            SPLITS = {"train": 5}

        with pytest.raises(AssertionError):
            Expect5().test_contract_split_counts(contract_builds)

    def test_bad_record_fails(self, contract_builds):
        builder, records = contract_builds["raw"]
        bad = dict(records[0], eeg=records[0]["eeg"][:1])
        with pytest.raises(AssertionError):
            testing.assert_records(builder, [bad])
        with pytest.raises(AssertionError):
            testing.assert_records(builder, [dict(records[0], label=2)])

    def test_class_overrides_hold_during_the_build_only(self, tmp_path):
        class ThreeTrials(TestToyContract):
            CLASS_OVERRIDES = {"N_TRIALS": 3}

        manual = self.make_manual_dir(tmp_path / "manual")
        builder = ThreeTrials().build("raw", manual, tmp_path / "three")
        assert builder.info.splits["train"].num_examples == 3 and ToyBuilder.N_TRIALS == 4
        builder = ThreeTrials().build("raw", manual, tmp_path / "two", N_TRIALS=2)
        assert builder.info.splits["train"].num_examples == 2 and ToyBuilder.N_TRIALS == 4
        assert ThreeTrials.CLASS_OVERRIDES == {"N_TRIALS": 3}

    def test_corrupt_copy_bad_input_names_file_and_leaves_nothing(self, tmp_path):
        bad = testing.corrupt_copy(self.make_manual_dir(tmp_path / "good"), tmp_path)
        os.remove(bad / "trial3.npy")
        assert (tmp_path / "good" / "trial3.npy").exists()
        with pytest.raises(validation.InvalidDataError, match=r"trial3\.npy: missing file"):
            self.build("raw", bad, tmp_path / "data")
        assert os.listdir(tmp_path / "data") == []


def test_build_that_loses_a_race_keeps_the_winners_copy(tmp_path, monkeypatch):
    """Two hosts building the same config: the second finds the target complete at the end."""
    from tfds_builders import build as build_lib

    manual = TestToyContract.make_manual_dir(tmp_path / "manual")
    first = testing.build(ToyBuilder, "raw", manual, tmp_path / "data")
    info = os.path.join(first.data_dir, "dataset_info.json")
    mtime = os.path.getmtime(info)
    calls = []
    real = build_lib._is_complete
    monkeypatch.setattr(
        build_lib, "_is_complete", lambda d: bool(calls.append(d)) or (len(calls) > 1 and real(d))
    )  # "not built yet" at the start, as for the loser
    second = testing.build(ToyBuilder, "raw", manual, tmp_path / "data")
    assert len(calls) == 2 and os.path.getmtime(info) == mtime
    assert os.listdir(tmp_path / "data") == ["toy_builder"]
    assert len(testing.read_records(second)) == 4
