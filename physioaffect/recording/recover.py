"""``recover``: rebuild a valid session file from its journal after a crash.

The journal is always written before the HDF5 file, so it holds a superset of what the
HDF5 file has; recovery replays it through :class:`SessionWriter` (journal off) into a
temporary file, checks it, and only then puts it in place of the damaged file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from physioaffect.recording import journal as jr
from physioaffect.recording.errors import DiskFullError, SessionFileError
from physioaffect.recording.format import (
    decode_table,
    decode_value,
    group_key,
    open_session_h5,
    read_attrs,
    stored_texts,
)
from physioaffect.recording.naming import JOURNAL_SUFFIX, journal_path
from physioaffect.recording.reader import stream_info_from_attrs
from physioaffect.recording.verify import find_damage, read_blocks
from physioaffect.recording.writer import SessionWriter
from physioaffect.streams import Chunk, StreamInfo


@dataclass
class RecoveryReport:
    """What :func:`recover_session` did."""

    path: Path
    streams: dict[str, int]
    stop_reason: str
    torn_bytes: int
    had_end: bool
    message: str


def _paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    p = Path(path)
    if p.name.endswith(JOURNAL_SUFFIX):
        p = p.with_name(p.name[: -len(JOURNAL_SUFFIX)])
    return p, journal_path(p)


def recover_session(path: str | os.PathLike[str], keep: bool = False) -> RecoveryReport:
    """Rebuild ``path`` (a session file or its ``.journal``) from the journal.

    Parameters
    ----------
    path : path
    keep : bool
        Keep the journal and the damaged file (renamed ``*.damaged``) afterwards.

    Raises
    ------
    SessionFileError
        No journal and no usable file, a foreign journal, or a journal without a
        session header.
    """
    h5_path, j_path = _paths(path)
    if not j_path.exists():
        if not h5_path.exists():
            raise SessionFileError(f"{str(h5_path)!r} does not exist and has no journal")
        with open_session_h5(h5_path) as f:  # raises if foreign or unreadable
            complete = bool(f.attrs.get("complete", False))
            damage = find_damage(f)
        if damage:
            return salvage_session(h5_path)
        if complete:
            raise SessionFileError(f"{str(h5_path)!r} is complete and reads back as written; "
                                   f"nothing to recover")
        _mark_complete(h5_path)
        return RecoveryReport(h5_path, {}, "no journal", 0, False,
                              f"{h5_path}: no journal; the readable file was marked complete")
    with jr.JournalLock(j_path):  # a live recorder (or another recover) makes it refuse
        return _replay(h5_path, j_path, keep)


#: Room asked for a rebuilt file: the journal's size times SPACE_FACTOR plus SPACE_RESERVE
#: bytes (the file holds the same samples; HDF5 adds chunk indexes and the last, partly
#: filled chunk of each dataset). While it writes, the writer keeps REPLAY_RESERVE free.
SPACE_FACTOR = 1.1
SPACE_RESERVE = 2 << 20
REPLAY_RESERVE = 1 << 20


def _check_room(h5_path: Path, j_path: Path) -> None:
    """Refuse before writing anything when the rebuilt file cannot fit beside the journal."""
    try:
        st = os.statvfs(h5_path.parent)
        need = int(j_path.stat().st_size * SPACE_FACTOR) + SPACE_RESERVE
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if free < need:
        raise DiskFullError(
            f"not enough free space to rebuild {str(h5_path)!r}: about {need / 1e6:.1f} MB "
            f"needed beside it, {free / 1e6:.1f} MB free; nothing was changed: free space, then "
            f"run `physioaffect recover {h5_path}` again")


def _replay(h5_path: Path, j_path: Path, keep: bool) -> RecoveryReport:
    """Rebuild ``h5_path`` from its journal (held by the caller)."""
    _check_room(h5_path, j_path)
    tmp = h5_path.with_name(h5_path.name + ".recovering")
    if tmp.exists():
        tmp.unlink()
    writer: SessionWriter | None = None
    formats: dict[int, tuple[str, int]] = {}  # by the journal's stream index
    infos: dict[int, StreamInfo] = {}
    end_attrs = None
    reason = ""
    n_records = 0
    damaged: list[jr.Skipped] = []
    suspect: set[str] = set()  # streams that may have lost a chunk to a damaged record
    orphans = 0  # chunks of a stream whose description was damaged

    def start(attrs: dict) -> SessionWriter:
        attrs["recovered"] = True
        w = SessionWriter(tmp, subject="", task="", journal=False, check_space=True,
                          _session_attrs=attrs)
        w.reserve_bytes = REPLAY_RESERVE
        return w

    try:
        for rec in jr.iter_journal(j_path, resync=True):
            if isinstance(rec, str):
                reason = rec
                break
            if isinstance(rec, jr.Skipped):
                damaged.append(rec)
                suspect |= {info.name for info in infos.values()}
                continue
            n_records += 1
            if rec.type == jr.SESSION:
                if writer is None:
                    writer = start(rec.json())
                continue
            if writer is None:  # the session record itself was damaged
                if not damaged:
                    raise SessionFileError(f"journal {str(j_path)!r} does not start with a "
                                           f"session record")
                writer = start(_attrs_of(h5_path))
            if rec.type == jr.STREAM:
                d = rec.json()
                info = StreamInfo.from_dict(d["info"])
                writer.add_stream(info, d.get("attrs", {}))
                formats[int(d["index"])] = (info.channel_format, info.n_channels)
                infos[int(d["index"])] = info
            elif rec.type == jr.CHUNK:
                try:
                    idx, ts, x, dropped = jr.decode_chunk(rec.payload, formats)
                except SessionFileError:
                    orphans += 1
                    continue
                name = infos[idx].name
                if name in suspect:
                    suspect.discard(name)
                    _gap_before(writer, name, ts)
                writer.append(Chunk(name, ts, x, dropped=dropped))
                writer.tick()
            elif rec.type == jr.GAP:
                d = rec.json()
                if int(d["index"]) in infos:
                    writer.add_gap(infos[int(d["index"])].name, d["start"], d["end"],
                                   d["missing"], d["reason"])
            elif rec.type == jr.EVENT:
                d = rec.json()
                writer.add_event(d["kind"], d["text"], d.get("stream", ""), d["time"])
            elif rec.type == jr.END:
                end_attrs = rec.json()
        if writer is None:
            raise SessionFileError(f"journal {str(j_path)!r} holds no session record; nothing to recover")
        last = max((st.last_ts or 0.0) for st in writer.streams.values()) \
            if writer.streams else 0.0
        for d in damaged:
            writer.add_event("journal-damaged", f"{d.length} bytes at byte {d.offset} of the "
                             f"journal could not be read ({d.reason}); what they held is lost",
                             "", last)
        if orphans:
            writer.add_event("journal-damaged", f"{orphans} chunk(s) of a stream whose "
                             f"description was in a damaged record could not be read", "", last)
        final = dict(end_attrs) if end_attrs else {"utc_end": "", "lsl_clock_end": last}
        final["recovered"] = True
        final["recovery_stop_reason"] = reason
        if damaged:
            final["journal_damaged"] = "; ".join(f"{d.length} bytes at byte {d.offset}"
                                                 for d in damaged)
        writer.close(final)
        counts = {name: st.n_samples for name, st in writer.streams.items()}
    except BaseException as err:
        if writer is not None:
            writer.abort()
        tmp.unlink(missing_ok=True)  # an abandoned handle keeps it until the process ends
        if isinstance(err, (DiskFullError, SessionFileError)) and "disk full" in str(err):
            raise DiskFullError(
                f"disk full while rebuilding {str(h5_path)!r}; nothing was changed (its "
                f"journal is intact): free space, then run `physioaffect recover {h5_path}` "
                f"again") from None
        raise
    # check the rebuilt file before touching the originals
    with open_session_h5(tmp) as f:
        for name, n in counts.items():
            if f["streams"][group_key(name)]["timestamps"].shape[0] != n:
                raise SessionFileError(f"rebuilt file {str(tmp)!r} lost samples of {name!r}")
    if h5_path.exists():
        if keep:
            damaged_file = _free_name(h5_path.with_name(h5_path.name + ".damaged"))
            os.replace(h5_path, damaged_file)
        else:
            h5_path.unlink()
    os.replace(tmp, h5_path)
    if keep:
        os.replace(j_path, _free_name(j_path.with_name(j_path.name + ".recovered")))
    else:
        j_path.unlink()
    scan_total = sum(counts.values())
    lost = (f"; {sum(d.length for d in damaged)} damaged bytes skipped in {len(damaged)} "
            f"place(s), recorded as events" if damaged else "")
    msg = (f"{h5_path}: rebuilt from the journal ({n_records} records, {scan_total} samples in "
           f"{len(counts)} streams; journal ended: {reason or 'cleanly'}{lost})")
    return RecoveryReport(h5_path, counts, reason, 0, end_attrs is not None, msg)


def _gap_before(writer: SessionWriter, name: str, ts: np.ndarray) -> None:
    """A gap before the first chunk after a damaged journal record, when samples are missing."""
    st = writer.streams[name]
    if not len(ts) or st.last_ts is None or not st.info.is_regular:
        return
    dt = float(ts[0]) - st.last_ts
    if dt > 1.5 / st.info.nominal_srate:
        writer.add_gap(name, st.last_ts, float(ts[0]),
                       max(0, int(round(dt * st.info.nominal_srate)) - 1),
                       "lost to a damaged journal record")


def _attrs_of(h5_path: Path) -> dict:
    """Session attributes from the (incomplete) file, for a journal whose session record was
    damaged; the bare minimum when the file cannot be read either."""
    try:  # (not open_session_h5: this process holds the journal's lock)
        with h5py.File(h5_path, "r") as f:
            attrs = read_attrs(f)
    except (OSError, RuntimeError, ValueError):
        attrs = {"subject": "", "session": "", "task": "", "run": 0}
    attrs.pop("complete", None)
    attrs["session_record_damaged"] = True
    return attrs


#: Attributes a writer computes itself (not copied from a damaged file).
_COMPUTED = {"name", "type", "source_id", "nominal_srate", "channel_format", "n_channels",
             "channel_labels", "channel_types", "channel_units", "device", "info_json", "index",
             "device_manufacturer", "device_model", "device_serial", "device_board_id",
             "n_samples", "first_timestamp", "last_timestamp", "measured_srate",
             "dropped_total", "n_gaps"}


def salvage_session(h5_path: Path) -> RecoveryReport:
    """Rebuild a damaged session file that has no journal from every block that still
    reads back intact; what is lost becomes a gap (``reason`` says why), the damaged
    original is kept as ``*.damaged``."""
    tmp = h5_path.with_name(h5_path.name + ".recovering")
    tmp.unlink(missing_ok=True)
    writer: SessionWriter | None = None
    counts: dict[str, int] = {}
    lost: list[str] = []
    try:
        with open_session_h5(h5_path) as f:
            damage = find_damage(f)
            attrs = read_attrs(f)
            attrs.pop("complete", None)
            attrs["recovered"] = True
            writer = SessionWriter(tmp, subject="", task="", journal=False, check_space=True,
                                   _session_attrs=attrs)
            writer.reserve_bytes = REPLAY_RESERVE
            if "events" in f:
                events = _read_table(f["events"])
                for e in decode_table(events) if events is not None else []:
                    writer.add_event(str(e["kind"]), str(e["text"]), str(e["stream"]),
                                     float(e["time"]))
            # the session's window on the LSL clock, for rows lost at a stream's ends
            window = (_number(attrs, "recording_start_lsl", "lsl_clock_start"),
                      _number(attrs, "recording_stop_lsl", "lsl_clock_end"))
            groups = []
            for key in f["streams"]:
                try:
                    g = f["streams"][key]
                    gattrs = read_attrs(g)
                    groups.append((int(gattrs.get("index", 0)), g, gattrs))
                except (OSError, RuntimeError, KeyError, ValueError):
                    lost.append(f"stream group {key!r} (unreadable)")
            for _, g, gattrs in sorted(groups, key=lambda t: t[0]):
                try:
                    info = stream_info_from_attrs(gattrs)
                except (KeyError, ValueError, TypeError):
                    lost.append(f"stream {gattrs.get('name', g.name)!r} (no readable description)")
                    continue
                writer.add_stream(info, {k: v for k, v in gattrs.items()
                                         if k not in _COMPUTED and k != "crc32"})
                for row in _read_table(g["dropped"]) if "dropped" in g else []:
                    writer.add_dropped(info.name, float(row["time"]), int(row["count"]))
                gaps = _read_table(g["gaps"]) if "gaps" in g else None
                for gap in decode_table(gaps) if gaps is not None else []:
                    writer.add_gap(info.name, float(gap["start"]), float(gap["end"]),
                                   int(gap["missing"]), str(decode_value(gap["reason"])))
                bounds = (_number(gattrs, "first_timestamp") or window[0],
                          _number(gattrs, "last_timestamp") or window[1])
                counts[info.name] = _salvage_rows(writer, g, info, bounds)
            for d in damage:
                if d.rows is None and d.dataset in ("samples", "timestamps"):
                    writer.add_event("damaged", f"{d} (rows not located; kept as read)",
                                     d.stream if d.stream in writer.streams else "")
            final = {k: attrs[k] for k in ("utc_end", "lsl_clock_end") if k in attrs}
            final["salvaged"] = "; ".join(str(d) for d in damage)
            writer.close(final)
    except BaseException as err:
        if writer is not None:
            writer.abort()
        tmp.unlink(missing_ok=True)
        if isinstance(err, (DiskFullError, SessionFileError)) and "disk full" in str(err):
            raise DiskFullError(
                f"disk full while salvaging {str(h5_path)!r}; nothing was changed: free "
                f"space, then run `physioaffect recover {h5_path}` again") from None
        raise
    damaged = _free_name(h5_path.with_name(h5_path.name + ".damaged"))
    os.replace(h5_path, damaged)
    os.replace(tmp, h5_path)
    what = "; ".join(str(d) for d in damage[:5]) + (f" (+{len(damage) - 5} more)"
                                                    if len(damage) > 5 else "")
    msg = (f"{h5_path}: salvaged from the damaged file (no journal left): "
           f"{sum(counts.values())} samples kept in {len(counts)} streams; damaged: {what}; "
           f"lost rows are recorded as gaps"
           + (f"; lost: {', '.join(lost)}" if lost else "")
           + f"; the damaged original is kept as {damaged.name}")
    return RecoveryReport(h5_path, counts, "damaged file salvaged", 0, True, msg)


def _read_table(ds: h5py.Dataset):
    try:
        return ds[()]
    except (OSError, RuntimeError, ValueError):
        return None


def _number(attrs: dict, *keys: str) -> float | None:
    """The first of ``keys`` that holds a finite number."""
    for key in keys:
        try:
            value = float(attrs[key])
        except (KeyError, TypeError, ValueError):
            continue
        if np.isfinite(value):
            return value
    return None


def _salvage_rows(writer: SessionWriter, g: h5py.Group, info: StreamInfo,
                  bounds: tuple[float | None, float | None]) -> int:
    """Copy every readable block of a stream; unreadable rows become one gap per run.

    ``bounds``: LSL times of the stream's first and last sample as the file's summary (or
    the session's window) says, for runs of lost rows at either end of the stream.
    """
    name = info.name
    rate = info.nominal_srate if info.is_regular else 0.0
    try:
        ts_ds, x_ds = g["timestamps"], g["samples"]
        escaped = g["escaped_rows"][()] if "escaped_rows" in g else np.zeros(0, np.int64)
    except (OSError, RuntimeError, KeyError, ValueError):
        writer.add_event("damaged", f"{name}: samples unreadable, none kept", name)
        first, last = bounds
        n = int(g.attrs.get("n_samples", 0) or 0)
        if first is not None and last is not None and last > first:
            writer.add_gap(name, first, last, n, "damaged on disk: no sample could be read")
        return 0
    step = x_ds.chunks[0] if x_ds.chunks else max(1, x_ds.shape[0])
    kept = 0
    last_good: float | None = None
    bad: list[int] = []  # [first, stop) of the current run of unreadable rows

    def close_gap(end: float | None) -> None:
        n = bad[1] - bad[0]
        start = last_good
        if start is None:  # lost from the stream's first row on
            start = bounds[0]
            if start is None or (end is not None and start >= end):
                start = end - n / rate if end is not None and rate else start
        if end is None:  # lost up to the stream's last row
            end = bounds[1]
            if end is None or (start is not None and end <= start):
                end = start + n / rate if start is not None and rate else end
        if start is None or end is None:
            writer.add_event("damaged", f"{name}: rows {bad[0]}-{bad[1] - 1} could not be "
                             f"read (their time is unknown)", name)
            return
        writer.add_gap(name, float(start), float(end), n,
                       f"damaged on disk: rows {bad[0]}-{bad[1] - 1} could not be read")

    for a, b, ts in read_blocks(ts_ds, step):
        try:
            x = x_ds[a:b] if ts is not None else None
        except (OSError, RuntimeError, ValueError):
            x = None
        if ts is None or x is None or len(x) != len(ts):
            bad = [bad[0], b] if bad else [a, b]
            continue
        if info.channel_format == "string":
            rows = escaped[(escaped >= a) & (escaped < b)] - a
            x = stored_texts(x, rows)
        if bad:
            close_gap(float(ts[0]))
            bad = []
        writer.append(Chunk(name, ts, x))
        kept += len(ts)
        last_good = float(ts[-1])
    if bad:
        close_gap(None)
    return kept


def _free_name(p: Path) -> Path:
    if not p.exists():
        return p
    for i in range(2, 10000):
        q = p.with_name(f"{p.name}-{i}")
        if not q.exists():
            return q
    raise SessionFileError(f"no free name beside {str(p)!r}")


def _mark_complete(path: Path) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs["complete"] = True
        f.attrs["recovered"] = True
