"""Writing session files: journal first, HDF5 from the same chunks, finalised at the end.

See ``docs/session-file.md`` for the layout. :class:`SessionWriter` is used by the
recorder, by the XDF importer and by ``recover`` (which replays a journal through the
same code with the journal switched off), so all session files are written by one piece
of code.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from physioaffect.recording import journal as jr
from physioaffect.recording.errors import DiskFullError, SessionFileError, StreamMismatchError
from physioaffect.recording.format import (
    DROP_DTYPE,
    EVENT_DTYPE,
    FORMAT_NAME,
    FORMAT_VERSION,
    GAP_DTYPE,
    STR_DTYPE,
    array_crc,
    group_key,
    h5_text,
    table_crc,
    text_crc,
)
from physioaffect.recording.naming import check_label, check_run, journal_path
from physioaffect.recording.verify import verify_session
from physioaffect.streams import Chunk, StreamInfo, local_clock, unix_to_lsl_offset

#: HDF5 files abandoned after a write error (kept referenced so they are never closed).
_ABANDONED: list = []

#: Largest ``missing`` count stored for one gap (the table holds int64).
MAX_MISSING = 2**62
#: A regular stream whose next sample comes later than this many seconds *and* more
#: than ``GAP_PERIODS`` sample periods after the previous one has a gap.
GAP_MIN_S = 0.1
GAP_PERIODS = 10


def software_versions() -> dict[str, str]:
    """Versions of everything that shaped the data (stored in every session file)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("physioaffect", "numpy", "h5py", "pylsl", "brainflow", "mne"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    out["hdf5"] = h5py.version.hdf5_version
    try:
        import pylsl

        out["liblsl"] = str(pylsl.library_version())
    except Exception:  # liblsl missing must not stop a recording from a BrainFlow board
        out["liblsl"] = "unavailable"
    return out


def _h5_error(path: Path, err: Exception) -> Exception:
    text = str(err)
    if "No space left" in text or "File too large" in text or "errno = 28" in text:
        return DiskFullError(
            f"disk full while writing {str(path)!r}; everything in its journal is kept: "
            f"run `physioaffect recover {path}`"
        )
    return SessionFileError(f"cannot write {str(path)!r}: {text.splitlines()[0] if text else err!r}")


@dataclass
class StreamStats:
    """Live statistics of one stream (read by the status line)."""

    info: StreamInfo
    index: int
    n_samples: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    dropped: int = 0
    n_gaps: int = 0
    last_marker: str = ""
    connected: bool = True
    # measured rate: sample intervals no longer than a gap / their total duration
    _intervals: int = 0
    _span: float = 0.0

    def _add_intervals(self, ts: np.ndarray) -> None:
        if not self.info.is_regular:
            return
        thr = max(GAP_MIN_S, GAP_PERIODS / self.info.nominal_srate)
        first, last = float(ts[0]), float(ts[-1])
        if self.last_ts is not None and first - self.last_ts <= thr:
            self._intervals += 1
            self._span += first - self.last_ts
        if len(ts) < 2:
            return
        d = np.diff(ts)
        if d.max() <= thr:  # the usual case: no gap inside the chunk
            self._intervals += len(d)
            self._span += last - first
        else:
            ok = d <= thr
            self._intervals += int(np.count_nonzero(ok))
            self._span += float(np.sum(d[ok]))

    @property
    def measured_srate(self) -> float:
        """Samples per second, gaps excluded (0 if unknown or irregular)."""
        if not self.info.is_regular or self._span <= 0:
            return 0.0
        return self._intervals / self._span


def _safe(text: str) -> str:
    """Text for attributes and tables (escaped where HDF5 could not store it)."""
    return h5_text(str(text))[0]


#: Target bytes of one HDF5 chunk of a signal. The recorder writes only whole chunks while
#: it records (the journal holds the rest), so no chunk is ever rewritten or re-filtered.
CHUNK_BYTES = 1 << 18
MAX_CHUNK_ROWS = 65536


def chunk_rows(info: StreamInfo) -> int:
    """Rows per HDF5 chunk of a stream (samples and timestamps alike)."""
    if info.channel_format == "string":
        return 256
    row = max(1, info.n_channels * np.dtype(info.channel_format).itemsize)
    return int(np.clip(CHUNK_BYTES // row, 256, MAX_CHUNK_ROWS))


class _H5Store:
    """The HDF5 side: creates groups, appends to resizable chunked datasets kept open.

    Datasets stay open for the whole recording (h5py would otherwise close one after
    each append, and closing a dataset whose write failed on a full disk can crash the
    HDF5 library). Every numeric dataset carries HDF5's Fletcher-32 checksum filter, so
    any HDF5 reader notices a damaged chunk (HDF5 filters cannot apply to variable-length
    strings); :meth:`SessionWriter.close` adds the CRC-32 of everything written to every
    dataset as its ``crc32`` attribute.
    """

    def __init__(self, path: Path, attrs: Mapping[str, Any], compression: str = "none"):
        self.path = path
        self.compression = compression
        try:
            # "w-" fails if the file exists: a session file is never overwritten
            self.f = h5py.File(path, "w-", libver="latest")
        except FileExistsError:
            raise SessionFileError(f"{str(path)!r} already exists; it is never overwritten") from None
        except OSError as err:
            raise _h5_error(path, err) from None
        self.f.attrs["format"] = FORMAT_NAME
        self.f.attrs["format_version"] = FORMAT_VERSION
        self.f.attrs["complete"] = False
        self.set_attrs(self.f, attrs)
        self.f.create_group("streams")
        self.groups: dict[int, h5py.Group] = {}
        #: Open datasets by (stream index or None for the file, name).
        self.ds: dict[tuple[int | None, str], h5py.Dataset] = {
            (None, "events"): self.f.create_dataset(
                "events", shape=(0,), maxshape=(None,), dtype=EVENT_DTYPE, chunks=(256,)),
        }
        #: Running CRC-32 of everything appended, by the same keys.
        self.crc: dict[tuple[int | None, str], int] = {(None, "events"): 0}

    @staticmethod
    def set_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
        for k, v in attrs.items():
            if isinstance(v, (dict, list, tuple)) and not (
                isinstance(v, (list, tuple)) and v and all(isinstance(x, str) for x in v)
            ):
                v = json.dumps(v)  # ASCII: any text survives
            elif v is None:
                v = ""
            if isinstance(v, str):
                v = _safe(v)
            elif isinstance(v, (list, tuple)):
                v = [_safe(x) for x in v]
            obj.attrs[k] = v

    def add_stream(self, index: int, info: StreamInfo, attrs: Mapping[str, Any]) -> None:
        key = group_key(info.name)
        g = self.f["streams"].create_group(key)
        n_ch = info.n_channels
        base = {
            "name": info.name,
            "type": info.type,
            "source_id": info.source_id,
            "nominal_srate": float(info.nominal_srate),
            "channel_format": info.channel_format,
            "n_channels": n_ch,
            "channel_labels": info.labels or [""],
            "channel_types": info.channel_types or [""],
            "channel_units": info.units or [""],
            "device": dict(info.device),
            "info_json": json.dumps(info.to_dict()),
            "index": index,
        }
        for k in ("manufacturer", "model", "serial", "board_id"):
            if k in info.device:
                base[f"device_{k}"] = info.device[k]
        self.set_attrs(g, base)
        self.set_attrs(g, attrs)
        rows = chunk_rows(info)
        ds = {}
        if info.channel_format == "string":
            ds["samples"] = g.create_dataset("samples", shape=(0, n_ch), maxshape=(None, n_ch),
                                             dtype=STR_DTYPE, chunks=(rows, n_ch))
            # rows whose text is stored escaped (see h5_text)
            ds["escaped_rows"] = g.create_dataset("escaped_rows", shape=(0,), maxshape=(None,),
                                                  dtype="<i8", chunks=(64,), fletcher32=True)
            ds["timestamps"] = g.create_dataset("timestamps", shape=(0,), maxshape=(None,),
                                                dtype="<f8", chunks=(rows,), fletcher32=True)
        else:
            kw = self._filters()
            ds["samples"] = g.create_dataset("samples", shape=(0, n_ch), maxshape=(None, n_ch),
                                             dtype=np.dtype(info.channel_format),
                                             chunks=(rows, n_ch), **kw)
            ds["timestamps"] = g.create_dataset("timestamps", shape=(0,), maxshape=(None,),
                                                dtype="<f8", chunks=(rows,), **kw)
        ds["gaps"] = g.create_dataset("gaps", shape=(0,), maxshape=(None,), dtype=GAP_DTYPE,
                                      chunks=(64,))
        ds["dropped"] = g.create_dataset("dropped", shape=(0,), maxshape=(None,),
                                         dtype=DROP_DTYPE, chunks=(64,), fletcher32=True)
        for name, d in ds.items():
            self.ds[(index, name)] = d
            self.crc[(index, name)] = 0
        self.groups[index] = g

    def _filters(self) -> dict[str, Any]:
        if self.compression == "lzf":
            return {"compression": "lzf", "shuffle": True, "fletcher32": True}
        if self.compression == "gzip":
            return {"compression": "gzip", "compression_opts": 1, "shuffle": True,
                    "fletcher32": True}
        return {"fletcher32": True}

    @staticmethod
    def _append(ds: h5py.Dataset, values: np.ndarray) -> None:
        n = ds.shape[0]
        ds.resize(n + values.shape[0], axis=0)
        ds[n:] = values

    def append(self, index: int, ts: np.ndarray, samples: np.ndarray) -> None:
        ds = self.ds[(index, "samples")]
        if samples.dtype == object:  # text: escape what HDF5 cannot hold
            n0 = ds.shape[0]
            stored = np.empty(samples.shape, dtype=object)
            escaped = []
            for i, row in enumerate(samples):
                texts = [str(v) for v in row]
                done = [h5_text(t) for t in texts]
                if any(esc for _, esc in done):  # a row is escaped as a whole
                    stored[i, :] = [json.dumps(t)[1:-1] for t in texts]
                    escaped.append(n0 + i)
                else:
                    stored[i, :] = [t for t, _ in done]
            if escaped:
                rows = np.array(escaped, dtype="<i8")
                self._append(self.ds[(index, "escaped_rows")], rows)
                self.crc[(index, "escaped_rows")] = array_crc(self.crc[(index, "escaped_rows")],
                                                              rows)
            self._append(ds, stored)
            self.crc[(index, "samples")] = text_crc(self.crc[(index, "samples")], stored.ravel())
        else:
            self._append(ds, samples)
            self.crc[(index, "samples")] = array_crc(self.crc[(index, "samples")], samples)
        ts = np.asarray(ts, dtype="<f8")
        self._append(self.ds[(index, "timestamps")], ts)
        self.crc[(index, "timestamps")] = array_crc(self.crc[(index, "timestamps")], ts)

    def append_rows(self, index: int | None, name: str, rows: list[tuple]) -> None:
        ds = self.ds[(index, name)]
        rows = [tuple(_safe(v) if isinstance(v, str) else v for v in row) for row in rows]
        self._append(ds, np.array(rows, dtype=ds.dtype))
        self.crc[(index, name)] = table_crc(self.crc[(index, name)], rows, ds.dtype)

    def write_checksums(self) -> None:
        """Store the CRC-32 of every dataset's content as its ``crc32`` attribute."""
        for key, ds in self.ds.items():
            ds.attrs["crc32"] = np.uint32(self.crc[key])

    def flush(self) -> None:
        self.f.flush()

    def close(self) -> None:
        self.ds.clear()
        self.f.close()


class SessionWriter:
    """Writes one session file and, while it records, its journal.

    Parameters
    ----------
    path : path
        The ``.h5`` file to create; neither it nor ``<path>.journal`` may exist.
    subject, task : str
        BIDS labels (letters and digits).
    session : str, optional
    run : int, optional
    config : mapping, optional
        The configuration that produced the recording (sources, options); stored as JSON.
    attrs : mapping, optional
        More root attributes (e.g. ``imported_from``).
    journal : bool
        Write the crash-safety journal (off only when rebuilding from a journal or
        importing a file that is itself the safe copy).
    sync_interval : float
        Seconds between ``fsync`` of the journal (the most data a crash can lose).
    h5_interval : float
        Seconds between appends to the HDF5 file.
    compression : {"none", "gzip", "lzf"}
        Compression of signal datasets (gzip level 1 or LZF, with byte shuffling).
        ``none`` (the default) costs about a third of gzip's writing CPU; EEG compresses
        only to about 85 % (gzip) or 92 % (LZF) of its raw size, and a recorder must
        stay light (``benchmarks/README_recording.md``).
    clock : dict, optional
        Clock attributes to use instead of measuring them now (``utc_start``,
        ``unix_start``, ``lsl_clock_start``, ``unix_to_lsl_offset``); used by import.
    check_space : bool, optional
        Stop with :class:`DiskFullError` before an HDF5 append that would leave less than
        :attr:`reserve_bytes` free (HDF5 handles a full disk badly). Default: when the
        journal is written; ``recover`` asks for it too.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        subject: str,
        task: str,
        session: str | None = None,
        run: int | None = None,
        config: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
        journal: bool = True,
        sync_interval: float = 0.5,
        h5_interval: float = 5.0,
        compression: str = "none",
        clock: Mapping[str, Any] | None = None,
        check_space: bool | None = None,
        _session_attrs: Mapping[str, Any] | None = None,
    ):
        self.path = Path(path)
        self.journal_path = journal_path(self.path)
        if _session_attrs is not None:  # replaying a journal: attributes as recorded
            session_attrs = dict(_session_attrs)
        else:
            check_label("subject", subject)
            check_label("task", task)
            if session:
                check_label("session", session)
            run = check_run(run)
            if clock is None:
                offset = unix_to_lsl_offset()
                unix = time.time()
                clock = {
                    "unix_start": unix,
                    "lsl_clock_start": unix + offset,
                    "unix_to_lsl_offset": offset,
                }
                clock["utc_start"] = _iso(unix)
            session_attrs = {
                "subject": subject,
                "session": session or "",
                "task": task,
                "run": run if run is not None else 0,
                **dict(clock),
                "hostname": socket.gethostname(),
                "software_versions": software_versions(),
                "configuration": dict(config or {}),
                **dict(attrs or {}),
            }
        self.session_attrs = session_attrs
        if jr.journal_in_use(self.journal_path):
            raise SessionFileError(f"{str(self.path)!r} is being recorded by another recorder "
                                   f"right now; choose another file (or --run)")
        if self.path.exists():
            raise SessionFileError(f"{str(self.path)!r} already exists; it is never overwritten")
        self._journal: jr.JournalWriter | None = None
        if journal:
            self._journal = jr.JournalWriter(self.journal_path)
            self._journal.append_json(jr.SESSION, session_attrs)
        try:
            self._store: _H5Store | None = _H5Store(self.path, session_attrs, compression)
        except Exception:
            if self._journal is not None:
                self._journal.abandon()
                self.journal_path.unlink(missing_ok=True)
            raise
        self.streams: dict[str, StreamStats] = {}
        self._by_index: dict[int, StreamStats] = {}
        self._pending: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._pending_rows: dict[tuple[int | None, str], list[tuple]] = {}
        self._chunk_rows: dict[int, int] = {}
        self._pending_bytes = 0
        self.max_pending_bytes = 32 << 20
        #: Free space (bytes) kept on the disk; below it recording stops with DiskFullError.
        self.reserve_bytes = 4 << 20
        self.sync_interval = float(sync_interval)
        self.h5_interval = float(h5_interval)
        self._last_sync = self._last_h5 = time.monotonic()
        self.detect_gaps = journal  # a replay gets its gaps from GAP records
        self.check_space = journal if check_space is None else bool(check_space)
        self.closed = False
        self.failed: Exception | None = None
        #: More root attributes written when the file is finalised (e.g. by the recorder).
        self.final_extra: dict[str, Any] = {}
        if self._journal is not None:
            self._journal.sync()

    # -- streams -------------------------------------------------------------
    def add_stream(self, info: StreamInfo, attrs: Mapping[str, Any] | None = None) -> int:
        """Declare a stream (any time, also mid-recording); returns its index."""
        if info.name in self.streams:
            return self.streams[info.name].index
        index = len(self.streams)
        attrs = dict(attrs or {})
        attrs.setdefault("added_at", local_clock())
        if self._journal is not None:
            self._journal.append_json(jr.STREAM, {"index": index, "info": info.to_dict(),
                                                  "attrs": attrs})
        self._guard(lambda: self._store.add_stream(index, info, attrs))
        st = StreamStats(info=info, index=index)
        self.streams[info.name] = st
        self._by_index[index] = st
        self._pending[index] = []
        self._chunk_rows[index] = chunk_rows(info)
        return index

    def append(self, chunk: Chunk) -> None:
        """Add one chunk of a declared stream (journal now, HDF5 at the next flush)."""
        if len(chunk) == 0 and not chunk.dropped:
            return
        try:
            st = self.streams[chunk.stream]
        except KeyError:
            raise StreamMismatchError(
                f"chunk for undeclared stream {chunk.stream!r} in {str(self.path)!r}"
            ) from None
        info = st.info
        samples = chunk.samples
        if samples.shape[1] != info.n_channels:
            raise StreamMismatchError(
                f"stream {info.name!r}: chunk has {samples.shape[1]} channels, "
                f"expected {info.n_channels}"
            )
        string = info.channel_format == "string"
        if not string:
            samples = np.asarray(samples, dtype=info.dtype)
        ts = chunk.timestamps
        if self.detect_gaps and info.is_regular and st.last_ts is not None and len(chunk):
            dt = float(ts[0]) - st.last_ts
            if dt > max(GAP_MIN_S, GAP_PERIODS / info.nominal_srate):
                missing = max(0, int(round(dt * info.nominal_srate)) - 1)
                self.add_gap(info.name, st.last_ts, float(ts[0]), missing, "no samples arrived")
        if self._journal is not None:
            self._journal.append(jr.CHUNK, jr.encode_chunk(st.index, ts, samples,
                                                           chunk.dropped, string))
        if chunk.dropped:
            t = float(ts[0]) if len(chunk) else (st.last_ts or local_clock())
            self._add_dropped(st, t, int(chunk.dropped))
        if len(chunk):
            self._pending[st.index].append((ts, samples))
            self._pending_bytes += ts.nbytes + (samples.nbytes if not string else 64 * len(ts))
            self._update_stats(st, ts, samples)
            if self._pending_bytes > self.max_pending_bytes:  # bound memory (replays, bursts)
                self.flush_h5()

    def _update_stats(self, st: StreamStats, ts: np.ndarray, samples: np.ndarray) -> None:
        if st.first_ts is None:
            st.first_ts = float(ts[0])
        st._add_intervals(ts)
        st.n_samples += len(ts)
        st.last_ts = float(ts[-1])
        if st.info.channel_format == "string":
            st.last_marker = str(samples[-1, 0])

    def _add_dropped(self, st: StreamStats, t: float, count: int) -> None:
        st.dropped += count
        self._pending_rows.setdefault((st.index, "dropped"), []).append((t, count))

    def add_dropped(self, stream: str, time_: float, count: int) -> None:
        """Record ``count`` samples of ``stream`` lost at LSL time ``time_`` (e.g. by a slow reader)."""
        if count <= 0:
            return
        st = self.streams[stream]
        if self._journal is not None:
            # a zero-length chunk carries the count, so replay sees it in order
            self._journal.append(jr.CHUNK, jr.encode_chunk(
                st.index, np.zeros(0), np.zeros((0, st.info.n_channels), dtype=st.info.dtype
                                                if st.info.channel_format != "string" else "f4"),
                count, False))
        self._add_dropped(st, time_, count)

    def add_gap(self, stream: str, start: float, end: float, missing: int, reason: str) -> None:
        """Record that ``stream`` has no samples between LSL times ``start`` and ``end``."""
        st = self.streams[stream]
        # (absurd timestamps, e.g. 1e300 from a broken outlet, must not overflow the table)
        missing = int(min(max(0, missing), MAX_MISSING))
        if self._journal is not None:
            self._journal.append_json(jr.GAP, {"index": st.index, "start": start, "end": end,
                                               "missing": missing, "reason": reason})
        st.n_gaps += 1
        self._pending_rows.setdefault((st.index, "gaps"), []).append(
            (start, end, int(missing), reason))

    def add_event(self, kind: str, text: str, stream: str = "", time_: float | None = None) -> None:
        """Log an event (connection lost/regained, warning) in the file's ``events`` table."""
        t = local_clock() if time_ is None else float(time_)
        if self._journal is not None:
            self._journal.append_json(jr.EVENT, {"time": t, "kind": kind, "stream": stream,
                                                 "text": text})
        if stream in self.streams:
            if kind == "disconnected":
                self.streams[stream].connected = False
            elif kind == "connected":
                self.streams[stream].connected = True
        self._pending_rows.setdefault((None, "events"), []).append((t, kind, stream, text))

    # -- durability ------------------------------------------------------------
    def tick(self, force: bool = False) -> None:
        """Sync the journal and append to the HDF5 file when their intervals have passed."""
        now = time.monotonic()
        if self._journal is not None and (force or now - self._last_sync >= self.sync_interval):
            if force or self._journal.bytes_written != self._journal.bytes_synced:
                self._journal.sync()
            self._last_sync = now
        if force or now - self._last_h5 >= self.h5_interval:
            self.flush_h5()
            self._last_h5 = now

    def sync(self, min_interval: float = 0.0) -> None:
        """Make the journal durable now (if it holds anything new and the last sync is at
        least ``min_interval`` s old)."""
        if self._journal is None or self._journal.bytes_written == self._journal.bytes_synced:
            return
        now = time.monotonic()
        if now - self._last_sync >= min_interval:
            self._journal.sync()
            self._last_sync = now

    @property
    def next_due(self) -> float:
        """``time.monotonic()`` at which :meth:`tick` has work next (sync or HDF5 append)."""
        unsynced = self._journal is not None and \
            self._journal.bytes_written != self._journal.bytes_synced
        return min(self._last_sync + self.sync_interval if unsynced else math.inf,
                   self._last_h5 + self.h5_interval)

    def _check_space(self) -> None:
        """Refuse to write HDF5 into the last few MB of a disk (HDF5 handles ENOSPC badly)."""
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return
        free = st.f_bavail * st.f_frsize
        if free < self._pending_bytes + self.reserve_bytes:
            err = DiskFullError(
                f"disk full: only {free / 1e6:.1f} MB free beside {str(self.path)!r}; recording "
                f"stopped, everything synced is kept: free space, then run "
                f"`physioaffect recover {self.path}`"
            )
            self.failed = err
            raise err

    def flush_h5(self, final: bool = False) -> None:
        """Append what is pending to the HDF5 file and flush it.

        While recording only whole chunks of each signal are appended (the rest waits in
        memory and, safely, in the journal), so no chunk is written twice; ``final``
        appends everything.
        """
        if self._store is not None and self.check_space:
            self._check_space()

        def work() -> None:
            wrote = False
            for index, parts in self._pending.items():
                if not parts:
                    continue
                n = sum(len(p[0]) for p in parts)
                rows = self._chunk_rows[index]
                m = n if final else n - n % rows
                if m == 0:
                    continue
                ts = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
                x = np.concatenate([p[1] for p in parts], axis=0) if len(parts) > 1 \
                    else parts[0][1]
                self._store.append(index, ts[:m], x[:m])
                parts.clear()
                if m < n:
                    parts.append((ts[m:], x[m:]))
                wrote = True
            self._pending_bytes = sum(p[0].nbytes + (p[1].nbytes if p[1].dtype != object
                                                     else 64 * len(p[0]))
                                      for parts in self._pending.values() for p in parts)
            for (index, name), rows in self._pending_rows.items():
                if rows:
                    self._store.append_rows(index, name, rows)
                    rows.clear()
                    wrote = True
            if wrote or final:
                self._store.flush()

        self._guard(work)

    def _guard(self, fn: Any) -> None:
        """Run an HDF5 operation; a failure stops HDF5 writing (the journal has the data)."""
        if self._store is None:
            if self.failed is not None:
                raise self.failed
            return
        try:
            fn()
        except (OSError, RuntimeError, ValueError) as err:
            self.failed = _h5_error(self.path, err)
            # Closing an HDF5 file after a failed write can crash the HDF5 library: keep
            # the handle alive and never touch it again (the journal has the data).
            _ABANDONED.append(self._store)
            self._store = None
            raise self.failed from None

    @property
    def file_size(self) -> int:
        """Bytes on disk of the session file plus its journal."""
        size = 0
        for p in (self.path, self.journal_path):
            try:
                size += p.stat().st_size
            except OSError:
                pass
        return size

    def summary_attrs(self) -> dict[str, Any]:
        return {"utc_end": _iso(time.time()), "lsl_clock_end": local_clock(),
                "unix_to_lsl_offset_end": unix_to_lsl_offset()}

    def close(self, final_attrs: Mapping[str, Any] | None = None, keep_journal: bool = False) -> None:
        """Finalise: write what is pending, the per-stream summaries and checksums, mark the
        file complete, read it all back against the checksums, and only then drop the journal.

        Raises
        ------
        SessionFileError
            The file does not read back as written (the journal is kept: run ``recover``).
        """
        if self.closed:
            return
        final = dict(final_attrs) if final_attrs is not None else self.summary_attrs()
        final = {**self.final_extra, **final}
        if self._journal is not None:
            self._journal.append_json(jr.END, final)
            self._journal.sync()
        self.flush_h5(final=True)

        def finish() -> None:
            f = self._store.f
            for st in self.streams.values():
                first = st.first_ts if st.first_ts is not None else float("nan")
                last = st.last_ts if st.last_ts is not None else float("nan")
                self._store.set_attrs(self._store.groups[st.index], {
                    "n_samples": int(st.n_samples),
                    "first_timestamp": float(first),
                    "last_timestamp": float(last),
                    "measured_srate": float(st.measured_srate),
                    "dropped_total": int(st.dropped),
                    "n_gaps": int(st.n_gaps),
                })
            self._store.write_checksums()
            self._store.set_attrs(f, final)
            f.attrs["complete"] = True
            self._store.close()

        self._guard(finish)
        self._store = None
        _fsync_path(self.path)
        self.closed = True
        if self._journal is not None:
            self._journal.close()
            if not keep_journal:
                problems = verify_session(self.path)
                if problems:
                    raise SessionFileError(
                        f"{str(self.path)!r} does not read back as written ({problems[0]}); its "
                        f"journal is kept: run `physioaffect recover {self.path}`"
                    )
                self.journal_path.unlink(missing_ok=True)

    def abort(self) -> None:
        """Stop without finalising (after an error): keep whatever is synced, raise nothing."""
        if self._journal is not None:
            try:
                self._journal.sync()
            except Exception:
                pass
            self._journal.abandon()
        if self._store is not None:
            journal_full = self._journal is not None and isinstance(self._journal.error,
                                                                     DiskFullError)
            if isinstance(self.failed, DiskFullError) or journal_full:
                _ABANDONED.append(self._store)  # closing would write to a full disk
            else:
                try:
                    self._store.close()
                except Exception:
                    _ABANDONED.append(self._store)
            self._store = None
        self.closed = True

    @property
    def must_exit_hard(self) -> bool:
        """True when an HDF5 handle was abandoned: exit with ``os._exit`` (no HDF5 cleanup)."""
        return hdf5_abandoned()


def hdf5_abandoned() -> bool:
    """True when this process abandoned an HDF5 file after a failed write (e.g. a full disk):
    it must then end with ``os._exit``, as HDF5's cleanup at exit could crash on it."""
    return bool(_ABANDONED)


def _fsync_path(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _iso(unix: float) -> str:
    return _dt.datetime.fromtimestamp(unix, tz=_dt.UTC).isoformat().replace("+00:00", "Z")
