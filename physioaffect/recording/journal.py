"""The append-only journal written beside a session file while it records.

HDF5 is not safe against a writer that dies mid-write: a ``kill -9`` or a power cut
can leave the whole file unreadable. The recorder therefore writes every chunk to
this journal *first* (and ``fsync``s it at least twice a second), and writes the
HDF5 file from the same chunks later. ``physioaffect recover`` rebuilds the HDF5 file
from the journal. Each record carries its length and a CRC-32: a journal ends at its first
torn record (a kill mid-write), and a damaged record in the middle (a flipped byte) costs
only itself, as reading resumes at the next valid record header (:func:`iter_journal` with
``resync``). While a recorder writes the journal it holds an exclusive ``flock`` on it
(:func:`journal_in_use`, :class:`JournalLock`).

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
import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from physioaffect.recording.errors import DiskFullError, SessionFileError

try:  # POSIX advisory locks; elsewhere the journal is not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

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
        if fcntl is not None:
            # held while the journal is open: `recover` (and any reader) can tell that a
            # recorder is still writing this session; the kernel drops it if the process dies
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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


def _session_of(journal: Path) -> str:
    name = journal.name
    return str(journal.with_name(name[: -len(".journal")])) if name.endswith(".journal") \
        else str(journal)


def journal_in_use(path: str | os.PathLike[str]) -> bool:
    """True when a running recorder holds the journal at ``path`` (it is being written)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class JournalLock:
    """Exclusive hold of a journal while ``recover`` replays it (a live recorder, or a second
    ``recover``, makes it refuse); use as a context manager.

    Raises
    ------
    SessionFileError
        A recorder (or another ``recover``) holds the journal.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._fd: int | None = None
        if fcntl is None:
            return
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError as err:
            raise SessionFileError(f"cannot open journal {str(self.path)!r}: "
                                   f"{err.strerror}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise SessionFileError(
                f"{_session_of(self.path)!r} is being recorded right now (a running recorder, "
                f"or another recover, holds its journal); stop that recorder first (Ctrl-C "
                f"where it runs): it finishes the file itself") from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def __enter__(self) -> JournalLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


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


@dataclass
class Skipped:
    """Bytes of a journal that hold no valid record (a damaged record), between two valid
    ones: what they held is lost, the records after them are read on."""

    offset: int
    length: int
    reason: str


def _valid_at(m: mmap.mmap, pos: int, size: int) -> str | None:
    """Why the bytes at ``pos`` are not a complete valid record (None when they are)."""
    if size - pos < _HEAD.size:
        return "torn record header at the end"
    sync, rtype, length, crc = _HEAD.unpack_from(m, pos)
    if sync != b"PJ" or rtype not in _TYPES or length > MAX_RECORD:
        return f"corrupt record header at byte {pos}"
    start = pos + _HEAD.size
    if start + length > size:
        return "torn record at the end"
    if zlib.crc32(m[start:start + length], zlib.crc32(bytes([rtype]))) != crc:
        return f"checksum mismatch at byte {pos}"
    return None


def _next_valid(m: mmap.mmap, pos: int, size: int) -> int | None:
    """Offset of the next complete valid record after ``pos`` (None: there is none)."""
    while True:
        pos = m.find(b"PJ", pos + 1)
        if pos < 0:
            return None
        if _valid_at(m, pos, size) is None:
            return pos


def iter_journal(path: str | os.PathLike[str], resync: bool = False
                 ) -> Iterator[Record | Skipped | str]:
    """Yield the records of a journal, then a final reason string.

    Without ``resync`` it stops at the first torn or corrupt record. With ``resync``, a
    damaged record in the middle (a flipped byte, a bad disk block) is reported as a
    :class:`Skipped` stretch and reading goes on at the next valid record (each record has
    its own header and CRC-32), so only what the damaged bytes held is lost.
    """
    p = Path(path)
    try:
        fh = open(p, "rb")
    except OSError as err:
        raise SessionFileError(f"cannot open journal {str(p)!r}: {err.strerror}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size < len(MAGIC) or fh.read(len(MAGIC)) != MAGIC:
            raise SessionFileError(f"{str(p)!r} is not a physioaffect journal (wrong magic bytes)")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
            pos = len(MAGIC)
            while True:
                if pos == size:
                    yield "end of file"
                    return
                problem = _valid_at(m, pos, size)
                if problem is None:
                    _, rtype, length, _ = _HEAD.unpack_from(m, pos)
                    start = pos + _HEAD.size
                    yield Record(rtype, bytes(m[start:start + length]))
                    pos = start + length
                    continue
                nxt = _next_valid(m, pos, size) if resync else None
                if nxt is None:
                    yield problem
                    return
                yield Skipped(pos, nxt - pos, problem)
                pos = nxt


def read_journal(path: str | os.PathLike[str]) -> JournalScan:
    """Read every valid record of a journal (stops at the first torn or corrupt one)."""
    records: list[Record] = []
    reason = ""
    for item in iter_journal(path):
        if isinstance(item, str):
            reason = item
        elif isinstance(item, Record):
            records.append(item)
    total = os.path.getsize(path)
    valid = len(MAGIC) + sum(_HEAD.size + len(r.payload) for r in records)
    return JournalScan(records, valid, total, reason)
