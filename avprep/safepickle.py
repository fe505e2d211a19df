"""A restricted unpickler for the original papers' pickles.

Some originals ship their metadata as pickles (Multi-Source's
``utils/val_audio.pkl``, ``utils/gtdata.pkl``). ``pickle.load`` would run
whatever callable such a file names. This loader accepts only:

- plain containers (dict, list, tuple, set, frozenset), str, bytes,
  bytearray, int, float, complex, bool, None;
- numpy arrays, dtypes and scalars of numeric (bool, int, uint, float,
  complex) or fixed-width string (``S``, ``U``) dtype.

Nothing a pickle names is ever called: each allowed global is mapped to a
stand-in of our own that checks its arguments and rebuilds the value from
its bytes (``numpy.frombuffer`` on the raw data, with a dtype we build from
the checked type code). Object and structured dtypes, masked arrays,
out-of-band buffers, persistent ids and every other global are refused with
:class:`UnsafePickleError`, before anything runs.

Usage::

    from avprep import safepickle
    tags = safepickle.load("val_audio.pkl")
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from avprep.errors import AvprepError

__all__ = ["UnsafePickleError", "load", "loads"]


class UnsafePickleError(AvprepError):
    """A pickle names something outside the allowed set, or is malformed."""


# numpy type codes we rebuild: bool, signed/unsigned int, float, complex of a
# given width, and fixed-width byte/unicode strings.
_NUMERIC_CODE = re.compile(r"^[<>|=]?(b1|[iu][1248]|f[248]|c(8|16)|f16|c32)$")
_STRING_CODE = re.compile(r"^[<>|=]?[SU]\d*$")


class _Placeholder:
    """Something a pickle creates by REDUCE and completes by BUILD."""

    __hash__ = None  # type: ignore[assignment]  # never a dict key or set member

    def value(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class _DtypeStandIn(_Placeholder):
    """Stands in for ``numpy.dtype(code, align, copy)`` until its BUILD."""

    def __init__(self, code: Any, align: Any = False, copy: Any = True) -> None:
        if isinstance(code, bytes):
            code = code.decode("latin1")
        if not isinstance(code, str):
            raise UnsafePickleError(f"numpy dtype of type {type(code).__name__} refused")
        if not (_NUMERIC_CODE.match(code) or _STRING_CODE.match(code)):
            raise UnsafePickleError(
                f"numpy dtype {code!r} refused (only numeric and fixed-width string dtypes)"
            )
        self.code = code
        self.dtype: np.dtype | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 8:
            raise UnsafePickleError("malformed numpy dtype state")
        endian, subdescr, names, fields, elsize = state[1], state[2], state[3], state[4], state[5]
        if subdescr is not None or names is not None or fields is not None:
            raise UnsafePickleError("structured numpy dtype refused")
        if len(state) > 8 and state[8] not in (None, {}):
            raise UnsafePickleError("numpy dtype with metadata refused")
        if endian not in ("<", ">", "|", "="):
            raise UnsafePickleError(f"numpy dtype byte order {endian!r} refused")
        kind = self.code.lstrip("<>|=")[0]
        if kind in "SU":
            if not isinstance(elsize, int) or isinstance(elsize, bool) or elsize < 0:
                raise UnsafePickleError("malformed numpy string dtype size")
            width = elsize // 4 if kind == "U" else elsize
            if kind == "U" and elsize % 4:
                raise UnsafePickleError("malformed numpy unicode dtype size")
            order = "<" if endian in ("|", "=") and kind == "U" else endian
            if kind == "S":
                order = "|"
            self.dtype = np.dtype(f"{order}{kind}{width}")
        else:
            base = np.dtype(self.code.lstrip("<>|="))
            self.dtype = base.newbyteorder(endian) if endian in "<>" else base

    def value(self) -> np.dtype:
        if self.dtype is None:
            raise UnsafePickleError("numpy dtype never completed")
        return self.dtype


def _resolve_dtype(obj: Any) -> np.dtype:
    if isinstance(obj, _DtypeStandIn):
        return obj.value()
    if isinstance(obj, np.dtype):  # only our own stand-ins ever make these
        return obj
    raise UnsafePickleError(f"expected a numpy dtype, got {type(obj).__name__}")


def _raw_bytes(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, str):  # Python 2 pickles read with encoding="latin1"
        return data.encode("latin1")
    raise UnsafePickleError(f"numpy raw data of type {type(data).__name__} refused")


def _shape(shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise UnsafePickleError("malformed numpy array shape")
    return shape


def _from_bytes(raw: bytes, dtype: np.dtype, shape: tuple[int, ...], fortran: bool) -> np.ndarray:
    count = 1
    for n in shape:
        count *= n
    if len(raw) != count * dtype.itemsize:
        raise UnsafePickleError(
            f"numpy array data is {len(raw)} bytes, shape {shape} of {dtype} needs "
            f"{count * dtype.itemsize}"
        )
    flat = np.frombuffer(raw, dtype=dtype, count=count)
    return flat.reshape(shape, order="F" if fortran else "C").copy(order="K")


class _Global:
    """What ``find_class`` hands the unpickler: a sealed wrapper of a stand-in.

    A pickle may BUILD (set attributes on) any object it holds; wrapping each
    stand-in in an object without attributes to set keeps a pickle from
    changing our functions between loads.
    """

    __slots__ = ("_fn", "_name")

    def __init__(self, name: str, fn: Any) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args: Any) -> Any:
        if self._fn is None:
            raise UnsafePickleError(f"{self._name} may not be called")
        return self._fn(*args)

    def __setattr__(self, key: str, value: Any) -> None:
        raise UnsafePickleError(f"pickle sets attributes on {self._name}: refused")

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError(f"pickle builds {self._name}: refused")


_NDARRAY = _Global("numpy.ndarray", None)


class _ArrayStandIn(_Placeholder):
    """Stands in for ``_reconstruct(ndarray, (0,), b'b')`` until its BUILD."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise UnsafePickleError("malformed numpy array state")
        _version, shape, dtype, fortran, raw = state
        if not isinstance(fortran, bool):
            raise UnsafePickleError("malformed numpy array order flag")
        self.array = _from_bytes(_raw_bytes(raw), _resolve_dtype(dtype), _shape(shape), fortran)

    def value(self) -> np.ndarray:
        if self.array is None:
            raise UnsafePickleError("numpy array never completed")
        return self.array


def _reconstruct(cls: Any, shape: Any = (0,), typecode: Any = b"b") -> _ArrayStandIn:
    if cls is not _NDARRAY:
        raise UnsafePickleError("only plain numpy.ndarray may be reconstructed")
    return _ArrayStandIn()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if order not in ("C", "F"):
        raise UnsafePickleError("malformed numpy array order")
    return _from_bytes(_raw_bytes(buf), _resolve_dtype(dtype), _shape(shape), order == "F")


def _scalar(dtype: Any, data: Any = None) -> Any:
    dt = _resolve_dtype(dtype)
    raw = _raw_bytes(data)
    if len(raw) != dt.itemsize:
        raise UnsafePickleError("malformed numpy scalar data")
    return np.frombuffer(raw, dtype=dt, count=1)[0]


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    # protocol 2 writes bytes as _codecs.encode(str, "latin1")
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode refused outside latin-1 bytes")
    return text.encode("latin1")


def _plain(kind: type):
    def build(*args: Any) -> Any:
        for arg in args:
            if isinstance(arg, _Placeholder):
                raise UnsafePickleError(f"{kind.__name__} of an incomplete numpy value")
        return kind(*args)

    return build


def _bytes(*args: Any) -> bytes:
    # protocol 2 writes b"" as bytes() (with fix_imports: __builtin__.bytes)
    if args and not (len(args) == 1 and isinstance(args[0], (bytes, bytearray, list))):
        raise UnsafePickleError("bytes() with these arguments refused")
    return bytes(*args)


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMERIC_MODULES = ("numpy.core.numeric", "numpy._core.numeric")

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Global("numpy.dtype", _DtypeStandIn),
    **{(m, "_reconstruct"): _Global("_reconstruct", _reconstruct) for m in _NUMPY_MODULES},
    **{(m, "scalar"): _Global("scalar", _scalar) for m in _NUMPY_MODULES},
    **{(m, "_frombuffer"): _Global("_frombuffer", _frombuffer) for m in _NUMERIC_MODULES},
    ("_codecs", "encode"): _Global("_codecs.encode", _codecs_encode),
}
for _module in ("builtins", "__builtin__"):
    for _kind in (set, frozenset, bytearray, complex):
        _ALLOWED[(_module, _kind.__name__)] = _Global(_kind.__name__, _plain(_kind))
    _ALLOWED[(_module, "bytes")] = _Global("bytes", _bytes)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"pickle names {module}.{name}: refused") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("pickle with persistent ids refused")


_IN_PROGRESS = object()


def _finish(obj: Any, memo: dict[int, Any]) -> Any:
    """Replace completed stand-ins by their values, in place where possible."""
    key = id(obj)
    if key in memo:
        if memo[key] is _IN_PROGRESS:  # tuple -> list/dict -> the same tuple
            raise UnsafePickleError("self-referencing tuple refused")
        return memo[key]
    if isinstance(obj, _Placeholder):
        memo[key] = out = obj.value()
        return out
    if isinstance(obj, list):
        memo[key] = obj
        for i, item in enumerate(obj):
            obj[i] = _finish(item, memo)
        return obj
    if isinstance(obj, dict):
        memo[key] = obj
        for k in list(obj):
            obj[k] = _finish(obj[k], memo)
        return obj
    if isinstance(obj, tuple):
        memo[key] = _IN_PROGRESS
        out = tuple(_finish(item, memo) for item in obj)
        memo[key] = out
        return out
    return obj  # str, bytes, numbers, None, sets (members are hashable: never stand-ins)


def loads(data: bytes) -> Any:
    """Unpickle ``data`` allowing only plain data and numeric/string numpy values."""
    return _load(io.BytesIO(data))


def load(path: str | Path) -> Any:
    """Unpickle the file at ``path``; see :func:`loads`."""
    try:
        with open(path, "rb") as fh:
            return _load(fh)
    except OSError as exc:
        raise UnsafePickleError(f"cannot read pickle {path}: {exc.strerror or exc}") from None


def _load(fh: Any) -> Any:
    try:
        obj = _Unpickler(fh, encoding="latin1").load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnsafePickleError(f"malformed or unsafe pickle: {message}") from None
    return _finish(obj, {})
