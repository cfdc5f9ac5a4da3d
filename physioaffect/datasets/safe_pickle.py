"""Restricted unpickling of numpy-array pickles, and a Python-2-style pickle writer.

DEAP's ``s01.dat`` ... ``s32.dat`` are Python 2 (cPickle, protocol 2) pickles of a dict of
numpy arrays. Unpickling runs whatever callables the file names, so these files, which come
from other people's disks, are read with :class:`RestrictedUnpickler`: it admits only the
globals numpy needs to rebuild arrays and refuses anything else *before* calling it.

Admitted globals (and why):

- ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``: the array
  factory named by every ndarray pickle (numpy 1 / numpy 2 module path).
- ``numpy.ndarray``, ``numpy.dtype``: arguments of that factory.
- ``numpy.core.multiarray.scalar`` / ``numpy._core.multiarray.scalar``: numpy scalars
  (e.g. a ``float64`` stored as a dict value).
- ``numpy.core.numeric._frombuffer`` / ``numpy._core.numeric._frombuffer``: the array factory of
  protocol-5 pickles (Python 3.14's default protocol); it only wraps a byte buffer as an array.
- ``_codecs.encode``: Python 3 writes ``bytes`` at protocol 2 as ``_codecs.encode(str, "latin1")``;
  a DEAP file re-saved by Python 3 needs it. It only turns a string into bytes.

:func:`dump_py2` writes a dict of arrays the way Python 2's cPickle did at protocol 2
(byte strings as ``BINSTRING``, no ``_codecs``), so fixtures are byte-for-byte in the old
format and ``pickle.load(f, encoding="latin1")`` reads them unchanged. :func:`dump_numpy1`
writes a Python 3 pickle (FACED's ``subNNN.pkl``: protocol 4, one ndarray) naming numpy's globals
by their numpy-1 module path, as files written before numpy 2 do.
"""

from __future__ import annotations

import importlib
import io
import pickle
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from physioaffect.datasets.errors import DatasetError, UnsafePickleError

_ALLOWED: dict[tuple[str, str], tuple[str, str]] = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"): ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("numpy.core.multiarray", "scalar"),
    ("_codecs", "encode"): ("_codecs", "encode"),
    ("numpy.core.numeric", "_frombuffer"): ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): ("numpy.core.numeric", "_frombuffer"),
}


def _resolve(module: str, name: str) -> Any:
    # numpy 2 moved numpy.core to numpy._core; importing numpy.core.* there warns. Resolve
    # the numpy objects through whichever module exists without going through the shim.
    if module in ("numpy.core.multiarray", "numpy.core.numeric"):
        for mod in (module.replace("numpy.core", "numpy._core"), module):
            try:
                return getattr(importlib.import_module(mod), name)
            except (ImportError, AttributeError):
                continue
    return getattr(importlib.import_module(module), name)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and refuses every other global.

    Parameters
    ----------
    file : binary file
    source : str
        Name of the file, used in error messages.
    """

    def __init__(self, file: BinaryIO, source: str = "<pickle>", encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401
        target = _ALLOWED.get((module, name))
        if target is None:
            raise UnsafePickleError(
                f"{self.source}: refused to unpickle global '{module}.{name}' "
                "(only numpy array reconstruction is admitted; this file is not a plain "
                "numpy pickle and may run code)"
            )
        return _resolve(*target)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: refused persistent id {pid!r} in pickle")


def check_pickle_file(path: str | Path, expected: str) -> None:
    """Cheap check that ``path`` is a complete pickle (protocol >= 2 header, STOP at the end).

    Reads three bytes, unpickles nothing; ``expected`` says what the file should hold (for the
    message). Raises :class:`~physioaffect.datasets.errors.DatasetError` naming the file.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(max(size - 1, 0))
        tail = f.read(1)
    if head[:1] != b"\x80":
        raise DatasetError(f"{path}: not a pickle (expected {expected})")
    if tail != b".":
        raise DatasetError(f"{path}: truncated pickle (no STOP opcode at the end; {size} bytes), "
                           "download or copy the file again")


def safe_load(path: str | Path, encoding: str = "latin1") -> Any:
    """Load a numpy pickle from ``path`` with :class:`RestrictedUnpickler`.

    ``encoding="bytes"`` keeps Python 2 byte strings as ``bytes`` (dict keys then are bytes):
    a large array buffer is then not decoded to ``str`` and re-encoded by numpy, which makes
    reading a 100 MB DEAP file about a third faster.
    """
    path = Path(path)
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f, str(path), encoding).load()
        except UnsafePickleError:
            raise
        except (EOFError, pickle.UnpicklingError, ValueError, struct.error) as err:
            raise DatasetError(f"{path}: not a complete pickle ({err}); is the file truncated?") from err


def safe_loads(data: bytes, source: str = "<bytes>") -> Any:
    """Like :func:`safe_load` for an in-memory pickle."""
    return RestrictedUnpickler(io.BytesIO(data), source).load()


class _Py2Pickler(pickle._Pickler):  # type: ignore[misc]
    """Pure-Python pickler emitting what Python 2's cPickle emitted at protocol 2.

    Python 2 had no bytes/unicode split for ASCII text: ``str`` values (dict keys, dtype codes)
    and raw array buffers were byte strings, pickled as ``SHORT_BINSTRING``/``BINSTRING``.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_binstring(self, obj: bytes | str) -> None:
        if isinstance(obj, str):
            obj = obj.encode("latin1")
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            # Large buffers are written directly: no copy of a 100 MB array into the frame.
            self.write(pickle.BINSTRING + struct.pack("<i", n))
            self.write(obj)
        self.memoize(obj)

    def save_bytes(self, obj: bytes) -> None:
        self._save_binstring(obj)

    def save_str(self, obj: str) -> None:
        try:
            obj.encode("ascii")
        except UnicodeEncodeError:
            pickle._Pickler.save_str(self, obj)
            return
        self._save_binstring(obj)

    def save_global(self, obj: Any, name: str | None = None) -> None:
        # Name numpy's array factory by its numpy-1 path, as every real DEAP file does.
        module, qual = _numpy1_name(obj, name)
        self.write(pickle.GLOBAL + module.encode("ascii") + b"\n" + qual.encode("ascii") + b"\n")
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def _numpy1_name(obj: Any, name: str | None) -> tuple[str, str]:
    module = getattr(obj, "__module__", None) or ""
    qual = name or obj.__qualname__
    if module.startswith("numpy._core"):
        module = "numpy.core" + module[len("numpy._core"):]
    return module, qual


class _Numpy1Pickler(pickle._Pickler):  # type: ignore[misc]
    """Pure-Python pickler of protocol 3/4 that names numpy's globals by their numpy-1 path."""

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module, qual = _numpy1_name(obj, name)
        if self.proto >= 4:
            self.save(module)
            self.save(qual)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + module.encode("ascii") + b"\n" + qual.encode("ascii")
                       + b"\n")
        self.memoize(obj)


def dump_numpy1(obj: Any, f: BinaryIO, protocol: int = 4) -> None:
    """Write ``obj`` as ``pickle.dump`` with numpy 1 would (protocol 3 or 4, numpy-1 names)."""
    if protocol not in (3, 4):
        raise ValueError(f"protocol must be 3 or 4, got {protocol}")
    _Numpy1Pickler(f, protocol=protocol).dump(_py2_arrays(obj))


def dump_py2(obj: Any, f: BinaryIO) -> None:
    """Write ``obj`` (dicts, lists, tuples, numbers, numpy arrays) as a Python 2 protocol-2 pickle."""
    _Py2Pickler(f, protocol=2).dump(_py2_arrays(obj))


def _py2_arrays(obj: Any) -> Any:
    # Python 2 numpy pickled C-contiguous arrays; make sure we hand over the same.
    if isinstance(obj, np.ndarray):
        return np.ascontiguousarray(obj)
    if isinstance(obj, dict):
        return {k: _py2_arrays(v) for k, v in obj.items()}
    return obj
