"""avprep.safepickle: real pickles round-trip; hostile ones are refused unexecuted."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from avprep import safepickle
from avprep.errors import AvprepError
from avprep.safepickle import UnsafePickleError

PROTOCOLS = [2, 3, 4, 5]


def _sample() -> dict:
    rng = np.random.default_rng(0)
    return {
        "ids": ["-0yD8u7y_CA", "zpWuikVorYg"],
        "tags": rng.random((3, 15)).astype(np.float32),
        "labels": np.array([[1, 0, 2]], dtype=np.int64),
        "big_endian": np.arange(5, dtype=">i4"),
        "fortran": np.asfortranarray(rng.random((4, 3))),
        "strided": np.arange(12, dtype=np.int16).reshape(3, 4)[:, ::2],
        "names": np.array(["violin", "piano"]),
        "bytes_names": np.array([b"ab", b"cde"]),
        "flags": np.array([True, False]),
        "complex": np.array([1 + 2j], dtype=np.complex64),
        "empty": np.zeros((0, 7), dtype=np.float64),
        "zero_d": np.array(3.5),
        "scalar": np.float32(2.5),
        "int_scalar": np.int64(-7),
        "nested": (1, 2.0, None, True, b"raw", {"k": [np.uint8(3)]}),
        "a_set": {1, 2, "x"},
        "frozen": frozenset({3}),
        "blob": bytearray(b"\x00\x01"),
        "cplx": 3 - 1j,
    }


def _assert_same(a, b) -> None:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
        return
    if isinstance(a, np.generic):
        assert type(a) is type(b) and a == b
        return
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_round_trip_of_real_pickles(protocol: int) -> None:
    data = _sample()
    blob = pickle.dumps(data, protocol=protocol)
    _assert_same(data, safepickle.loads(blob))


def test_load_reads_a_file_and_arrays_are_writable(tmp_path: Path) -> None:
    path = tmp_path / "val_audio.pkl"
    path.write_bytes(pickle.dumps([np.arange(4.0), np.ones(2)], protocol=3))
    arrays = safepickle.load(path)
    np.testing.assert_array_equal(arrays[0], [0, 1, 2, 3])
    arrays[0][0] = 9.0  # rebuilt from bytes into memory of its own
    assert arrays[0][0] == 9.0


def test_shared_references_survive() -> None:
    arr = np.arange(3)
    out = safepickle.loads(pickle.dumps({"a": arr, "b": arr, "t": (arr,)}, protocol=2))
    assert out["a"] is out["b"] and out["t"][0] is out["a"]


def test_self_referencing_tuple_is_refused_not_left_half_built():
    lst: list = []
    tup = (np.arange(2), lst)
    lst.append(tup)
    with pytest.raises(UnsafePickleError, match="self-referencing"):
        safepickle.loads(pickle.dumps(tup, protocol=4))
    plain: list = [1]
    plain.append(plain)  # a list may contain itself
    out = safepickle.loads(pickle.dumps(plain, protocol=4))
    assert out[1] is out


class _System:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.target}",))


class _Eval:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        import builtins

        return (builtins.eval, (f"open({str(self.target)!r}, 'w').close()",))


class _Exec:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        import builtins

        return (builtins.exec, (f"open({str(self.target)!r}, 'w').close()",))


@pytest.mark.parametrize("maker", [_System, _Eval, _Exec])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_hostile_callables_refused_without_running(tmp_path: Path, maker, protocol) -> None:
    sentinel = tmp_path / "pwned"
    blob = pickle.dumps({"ok": np.arange(2), "evil": maker(sentinel)}, protocol=protocol)
    # the pickle really would run: pickle.loads is the control
    with pytest.raises(UnsafePickleError, match="refused"):
        safepickle.loads(blob)
    assert not sentinel.exists()
    pickle.loads(blob)
    assert sentinel.exists()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_object_dtype_arrays_refused(tmp_path: Path, protocol: int) -> None:
    sentinel = tmp_path / "pwned"
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = "a", _System(sentinel)
    blob = pickle.dumps(arr, protocol=protocol)
    with pytest.raises(UnsafePickleError, match="dtype"):
        safepickle.loads(blob)
    assert not sentinel.exists()


def test_structured_and_subclass_arrays_refused() -> None:
    structured = np.zeros(2, dtype=[("a", "i4"), ("b", "f8")])
    with pytest.raises(UnsafePickleError):
        safepickle.loads(pickle.dumps(structured, protocol=2))
    masked = np.ma.masked_array([1, 2], mask=[0, 1])
    with pytest.raises(UnsafePickleError, match="refused"):
        safepickle.loads(pickle.dumps(masked, protocol=2))
    with pytest.raises(UnsafePickleError, match="refused"):
        safepickle.loads(pickle.dumps(np.array([1, 2]).view(np.matrix), protocol=2))


def test_arbitrary_classes_and_globals_refused() -> None:
    with pytest.raises(UnsafePickleError, match="pathlib"):
        safepickle.loads(pickle.dumps(Path("/etc"), protocol=4))
    with pytest.raises(UnsafePickleError, match="builtins.len"):
        safepickle.loads(pickle.dumps(len, protocol=4))
    hostile = b"cposix\nsystem\n(S'true'\ntR."
    with pytest.raises(UnsafePickleError, match="posix.system"):
        safepickle.loads(hostile)


def test_byte_count_mismatch_and_garbage_refused() -> None:
    blob = pickle.dumps(np.arange(4, dtype=np.int32), protocol=2)
    good_raw = np.arange(4, dtype=np.int32).tobytes()
    tampered = blob.replace(good_raw, good_raw[:-4] + b"\x00\x00\x00")
    assert tampered != blob
    with pytest.raises(UnsafePickleError):
        safepickle.loads(tampered)
    with pytest.raises(UnsafePickleError, match="malformed"):
        safepickle.loads(b"not a pickle")


def test_build_cannot_tamper_with_stand_ins() -> None:
    # GLOBAL numpy.ndarray, then BUILD it with (None, {"x": 1}) slot state
    blob = b"\x80\x02cnumpy\nndarray\nN}X\x01\x00\x00\x00xK\x01s\x86b."
    with pytest.raises(UnsafePickleError, match="refused"):
        safepickle.loads(blob)


def test_error_is_an_avprep_error_with_one_line(tmp_path: Path) -> None:
    assert issubclass(UnsafePickleError, AvprepError)
    with pytest.raises(UnsafePickleError) as info:
        safepickle.load(tmp_path / "missing.pkl")
    assert "\n" not in str(info.value)
