"""The session file's format: names, table layouts, text escaping, checksums, and opening a
file for reading. The writer, the reader, the checker and ``recover`` all take them from here
(so none of them needs another one to know the format).
"""

from __future__ import annotations

import json
import os
import struct
import urllib.parse
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from physioaffect.recording.errors import SessionFileError
from physioaffect.recording.journal import journal_in_use
from physioaffect.recording.naming import journal_path

#: Value of the root attribute ``format``; readers refuse files without it.
FORMAT_NAME = "physioaffect-session"
FORMAT_VERSION = 1

STR_DTYPE = h5py.string_dtype("utf-8")
GAP_DTYPE = np.dtype([("start", "<f8"), ("end", "<f8"), ("missing", "<i8"),
                      ("reason", STR_DTYPE)])
DROP_DTYPE = np.dtype([("time", "<f8"), ("count", "<i8")])
EVENT_DTYPE = np.dtype([("time", "<f8"), ("kind", STR_DTYPE), ("stream", STR_DTYPE),
                        ("text", STR_DTYPE)])


def group_key(name: str) -> str:
    """HDF5-safe group name of a stream (``/`` and ``%`` percent-encoded)."""
    key = urllib.parse.quote(name, safe=" -_.()[]+,@:=")
    return "%2E" if key == "." else ("%2E%2E" if key == ".." else key)


def h5_text(text: str) -> tuple[str, bool]:
    """``text`` as HDF5 can store it, and whether it had to be escaped.

    HDF5 variable-length strings end at a NUL byte and must be valid UTF-8, so a text
    with a NUL or a lone surrogate (``surrogateescape``-decoded bytes) is stored as the
    inside of its ASCII JSON string literal (``a\\u0000b``); :func:`h5_untext` reverses it.
    """
    if "\x00" not in text:
        try:
            text.encode("utf-8")
            return text, False
        except UnicodeEncodeError:
            pass
    return json.dumps(text)[1:-1], True


def h5_untext(stored: str) -> str:
    """Inverse of :func:`h5_text` for a text stored escaped."""
    return json.loads(f'"{stored}"')


def table_crc(crc: int, rows: Any, dtype: np.dtype) -> int:
    """CRC-32 of table rows in a canonical byte form (floats and ints little-endian,
    strings UTF-8 with a NUL after each), the same for rows written and rows read back."""
    names = dtype.names or ()
    for row in rows:
        parts = []
        for name, value in zip(names, row, strict=True):
            kind = dtype[name].kind
            if kind == "f":
                parts.append(struct.pack("<d", float(value)))
            elif kind in "iu":
                parts.append(struct.pack("<q", int(value)))
            else:
                if isinstance(value, bytes):
                    value = value.decode("utf-8", "surrogateescape")
                parts.append(str(value).encode("utf-8", "surrogateescape") + b"\x00")
        crc = zlib.crc32(b"".join(parts), crc)
    return crc


def text_crc(crc: int, texts: Any) -> int:
    """CRC-32 of stored texts (UTF-8, a NUL after each)."""
    for value in texts:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "surrogateescape")
        crc = zlib.crc32(str(value).encode("utf-8", "surrogateescape") + b"\x00", crc)
    return crc


def array_crc(crc: int, values: np.ndarray) -> int:
    """CRC-32 of a numeric array's little-endian bytes, row after row."""
    arr = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
    if arr.size == 0:  # (a stream that never delivered a sample; memoryview refuses it)
        return crc
    return zlib.crc32(memoryview(arr).cast("B"), crc)


def content_crc(ds: h5py.Dataset, crc: int, values: np.ndarray) -> int:
    """Fold ``values`` read from ``ds`` into a CRC-32 the way the writer did."""
    if ds.dtype.names is not None:
        return table_crc(crc, values, ds.dtype)
    if h5py.check_string_dtype(ds.dtype) is not None or ds.dtype == object:
        return text_crc(crc, values.ravel())
    return array_crc(crc, values)


def decode_value(v: Any) -> Any:
    """An HDF5 attribute or table value as a Python value (bytes as UTF-8 text)."""
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if isinstance(v, np.ndarray):
        return [decode_value(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def decode_table(table: np.ndarray) -> np.ndarray:
    """A structured array with its string fields decoded to ``str`` (object fields)."""
    if table.dtype.names is None:
        return table
    dt = [(n, object if table.dtype[n].kind in "OS" else table.dtype[n])
          for n in table.dtype.names]
    out = np.empty(table.shape, dtype=dt)
    for n in table.dtype.names:
        col = table[n]
        out[n] = [decode_value(v) for v in col] if table.dtype[n].kind in "OS" else col
    return out


_JSON_ATTRS = {"software_versions", "configuration", "device"}


def read_attrs(obj: h5py.HLObject) -> dict[str, Any]:
    """Attributes of an HDF5 object as Python values (JSON attributes parsed)."""
    out = {}
    for k, v in obj.attrs.items():
        v = decode_value(v)
        if k in _JSON_ATTRS and isinstance(v, str):
            try:
                v = json.loads(v) if v else {}
            except json.JSONDecodeError:
                pass
        out[k] = v
    return out


def open_session_h5(path: str | os.PathLike[str]) -> h5py.File:
    """Open a session file read-only, or raise :class:`SessionFileError` saying why not."""
    p = Path(path)
    if journal_in_use(journal_path(p)):
        raise SessionFileError(f"{str(p)!r} is being recorded right now; it can be read once "
                               f"the recorder has finished it")
    if not p.exists():
        jp = journal_path(p)
        extra = f"; its journal {str(jp)!r} exists: run `physioaffect recover {p}`" if jp.exists() else ""
        raise SessionFileError(f"{str(p)!r} does not exist{extra}")
    if p.is_dir():
        raise SessionFileError(f"{str(p)!r} is a folder, expected a session file (.h5)")
    try:
        f = h5py.File(p, "r")
    except OSError as err:
        jp = journal_path(p)
        hint = (f"; run `physioaffect recover {p}` to rebuild it from {jp.name}" if jp.exists()
                else "")
        text = "truncated" if "truncated file" in str(err) else (
            str(err).split("(")[0].strip() or "unreadable")
        low = str(err).lower()
        if "unable to lock" in low or "lock file" in low or "resource temporarily" in low:
            raise SessionFileError(
                f"{str(p)!r} is open for writing by another program (a recorder still running?)"
            ) from None
        raise SessionFileError(
            f"{str(p)!r} is not a readable HDF5 file (truncated or damaged: {text}){hint}"
        ) from None
    fmt = decode_value(f.attrs.get("format", ""))
    if fmt != FORMAT_NAME or "streams" not in f:
        f.close()
        raise SessionFileError(
            f"{str(p)!r} is an HDF5 file but not a physioaffect session file "
            f"(attribute 'format' is {fmt!r}, expected {FORMAT_NAME!r})"
        )
    version = int(decode_value(f.attrs.get("format_version", 0)))
    if version > FORMAT_VERSION:
        f.close()
        raise SessionFileError(
            f"{str(p)!r} has session format version {version}; this physioaffect reads "
            f"up to {FORMAT_VERSION} (upgrade physioaffect)"
        )
    return f


def stored_texts(x: np.ndarray, escaped_rows: np.ndarray) -> np.ndarray:
    """Stored marker texts as ``str`` (rows stored escaped restored exactly)."""
    out = np.vectorize(decode_value, otypes=[object])(x) if x.size else x.astype(object)
    for row in escaped_rows.tolist():
        out[row, :] = [h5_untext(v) for v in out[row, :]]
    return out
