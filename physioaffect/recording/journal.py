"""The append-only journal written beside a session file while it records.

HDF5 is not safe against a writer that dies mid-write: a ``kill -9`` or a power cut
can leave the whole file unreadable. The recorder therefore writes every chunk to
this journal *first* (and ``fsync``s it at least twice a second), and writes the
HDF5 file from the same chunks later. ``physioaffect recover`` rebuilds the HDF5 file
from the journal. A journal ends at its first torn or corrupt record: everything
before it is intact by construction (each record carries its length and a CRC-32).

Layout (all integers little-endian)::

    file    := MAGIC record*
    MAGIC   := b"PHYSIOAFFECT-JOURNAL\\x00\\x01"  (22 bytes: name, NUL, format version 1)
    record  := b"PJ" type:u8 length:u32 crc32:u32 payload[length]
               crc32 covers the type byte and the payload

Record types and payloads:

- ``SESSION`` (1): UTF-8 JSON with the session attributes (ids, clocks, versions, config).
- ``STREAM`` (2): UTF-8 JSON ``{"index": int, "info": StreamInfo.to_dict(), "attrs": {...}}``.
- ``CHUNK`` (3): ``index:u16 n:u32 dropped:u32`` + ``n`` float64 timestamps + samples;
  numeric samples are the raw little-endian ``(n, n_channels)`` array, string samples a
  UTF-8 JSON list of rows.
- ``GAP`` (4): JSON ``{"index", "start", "end", "missing", "reason"}``.
- ``EVENT`` (5): JSON ``{"time", "kind", "stream", "text"}`` (connections, warnings).
- ``END`` (6): JSON with the final attributes; a journal with END was finalised.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from physioaffect.recording.errors import DiskFullError, SessionFileError

MAGIC = b"PHYSIOAFFECT-JOURNAL\x00\x01"
_HEAD = struct.Struct("<2sBII")
_CHUNK_HEAD = struct.Struct("<HII")

SESSION, STREAM, CHUNK, GAP, EVENT, END = 1, 2, 3, 4, 5, 6
_TYPES = {SESSION, STREAM, CHUNK, GAP, EVENT, END}
#: Upper bound on one record (guards against reading garbage lengths).
MAX_RECORD = 1 << 30


@dataclass
class Record:
    """One decoded journal record."""

    type: int
    payload: bytes

    def json(self) -> Any:
        return json.loads(self.payload.decode("utf-8"))


def encode_chunk(index: int, timestamps: np.ndarray, samples: np.ndarray, dropped: int,
                 string: bool) -> bytes:
    """Payload of a CHUNK record (see the module docstring)."""
    ts = np.ascontiguousarray(timestamps, dtype="<f8")
    n = ts.shape[0]
    head = _CHUNK_HEAD.pack(index, n, max(0, int(dropped)) & 0xFFFFFFFF)
    if string:
        body = json.dumps([[str(v) for v in row] for row in samples]).encode("utf-8")
    else:
        arr = np.asarray(samples)
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        body = arr.tobytes()
    return head + ts.tobytes() + body


def decode_chunk(payload: bytes, formats: dict[int, tuple[str, int]]) -> tuple[int, np.ndarray,
                                                                              np.ndarray, int]:
    """Inverse of :func:`encode_chunk`.

    Parameters
    ----------
    formats : dict
        Stream index -> (channel_format, n_channels), from the STREAM records.

    Returns
    -------
    index, timestamps (n,), samples (n, n_channels), dropped
    """
    index, n, dropped = _CHUNK_HEAD.unpack_from(payload, 0)
    if index not in formats:
        raise SessionFileError(f"journal chunk for stream #{index} before its STREAM record")
    fmt, n_ch = formats[index]
    off = _CHUNK_HEAD.size
    ts = np.frombuffer(payload, dtype="<f8", count=n, offset=off).astype(np.float64)
    off += 8 * n
    if n == 0:  # a record that only carries a dropped-sample count
        samples = np.zeros((0, n_ch), dtype=object if fmt == "string" else np.dtype(fmt))
    elif fmt == "string":
        rows = json.loads(payload[off:].decode("utf-8"))
        samples = np.empty((n, n_ch), dtype=object)
        for i, row in enumerate(rows):
            samples[i, :] = row
    else:
        dt = np.dtype(fmt).newbyteorder("<")
        samples = np.frombuffer(payload, dtype=dt, count=n * n_ch, offset=off)
        samples = samples.astype(np.dtype(fmt)).reshape(n, n_ch)
    return index, ts, samples, dropped


class JournalWriter:
    """Appends records; :meth:`sync` makes everything written so far durable.

    Parameters
    ----------
    path : path
        Created exclusively: an existing journal is never overwritten.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise SessionFileError(f"journal {str(self.path)!r} already exists") from None
        except OSError as err:
            raise SessionFileError(f"cannot create journal {str(self.path)!r}: {err.strerror}") from None
        self._fh: BinaryIO = os.fdopen(fd, "wb", buffering=1 << 20)
        self.bytes_written = 0
        self.bytes_synced = 0
        self.error: Exception | None = None
        self._write(MAGIC)
        self.sync()

    def _write(self, data: bytes) -> None:
        try:
            self._fh.write(data)
        except OSError as err:
            self.error = _disk_error(self.path, err)
            raise self.error from None
        self.bytes_written += len(data)

    def append(self, rtype: int, payload: bytes) -> None:
        """Append one record (buffered; durable after the next :meth:`sync`)."""
        crc = zlib.crc32(payload, zlib.crc32(bytes([rtype])))
        self._write(_HEAD.pack(b"PJ", rtype, len(payload), crc))
        self._write(payload)

    def append_json(self, rtype: int, obj: Any) -> None:
        self.append(rtype, json.dumps(obj, default=_json_default).encode("utf-8"))

    def sync(self) -> None:
        """Flush Python's buffer and ``fsync`` the file."""
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as err:
            self.error = _disk_error(self.path, err)
            raise self.error from None
        self.bytes_synced = self.bytes_written

    def close(self) -> None:
        if self._fh.closed:
            return
        try:
            self.sync()
        finally:
            try:
                self._fh.close()
            except OSError:
                pass

    def abandon(self) -> None:
        """Close without raising (after a disk error; what was synced stays)."""
        try:
            self._fh.close()
        except OSError:
            pass


def _disk_error(path: Path, err: OSError) -> Exception:
    import errno

    if err.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return DiskFullError(
            f"disk full while writing {str(path)!r} ({err.strerror}); everything synced before "
            f"is kept: run `physioaffect recover` on the session file"
        )
    return SessionFileError(f"cannot write {str(path)!r}: {err.strerror}")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a journal")


@dataclass
class JournalScan:
    """What :func:`read_journal` found: the valid records and where it stopped."""

    records: list[Record]
    valid_bytes: int
    total_bytes: int
    stop_reason: str

    @property
    def torn_bytes(self) -> int:
        return self.total_bytes - self.valid_bytes


def iter_journal(path: str | os.PathLike[str]) -> Iterator[Record | str]:
    """Yield records up to the first torn or corrupt one, then a final reason string."""
    p = Path(path)
    try:
        fh = open(p, "rb")
    except OSError as err:
        raise SessionFileError(f"cannot open journal {str(p)!r}: {err.strerror}") from None
    with fh:
        magic = fh.read(len(MAGIC))
        if magic != MAGIC:
            raise SessionFileError(f"{str(p)!r} is not a physioaffect journal (wrong magic bytes)")
        while True:
            head = fh.read(_HEAD.size)
            if not head:
                yield "end of file"
                return
            if len(head) < _HEAD.size:
                yield "torn record header at the end"
                return
            sync, rtype, length, crc = _HEAD.unpack(head)
            if sync != b"PJ" or rtype not in _TYPES or length > MAX_RECORD:
                yield f"corrupt record header at byte {fh.tell() - _HEAD.size}"
                return
            payload = fh.read(length)
            if len(payload) < length:
                yield "torn record at the end"
                return
            if zlib.crc32(payload, zlib.crc32(bytes([rtype]))) != crc:
                yield f"checksum mismatch at byte {fh.tell() - length - _HEAD.size}"
                return
            yield Record(rtype, payload)


def read_journal(path: str | os.PathLike[str]) -> JournalScan:
    """Read every valid record of a journal (stops at the first torn or corrupt one)."""
    records: list[Record] = []
    reason = ""
    for item in iter_journal(path):
        if isinstance(item, str):
            reason = item
        else:
            records.append(item)
    total = os.path.getsize(path)
    valid = len(MAGIC) + sum(_HEAD.size + len(r.payload) for r in records)
    return JournalScan(records, valid, total, reason)
