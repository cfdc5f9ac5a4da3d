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

from physioaffect.recording import journal as jr
from physioaffect.recording.errors import SessionFileError
from physioaffect.recording.naming import JOURNAL_SUFFIX, journal_path
from physioaffect.recording.reader import open_session_h5
from physioaffect.recording.writer import SessionWriter, group_key
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
        if complete:
            raise SessionFileError(f"{str(h5_path)!r} is complete; nothing to recover")
        _mark_complete(h5_path)
        return RecoveryReport(h5_path, {}, "no journal", 0, False,
                              f"{h5_path}: no journal; the readable file was marked complete")
    tmp = h5_path.with_name(h5_path.name + ".recovering")
    if tmp.exists():
        tmp.unlink()
    writer: SessionWriter | None = None
    formats: dict[int, tuple[str, int]] = {}
    infos: dict[int, StreamInfo] = {}
    end_attrs = None
    reason = ""
    n_records = 0
    try:
        for rec in jr.iter_journal(j_path):
            if isinstance(rec, str):
                reason = rec
                break
            n_records += 1
            if rec.type == jr.SESSION:
                attrs = rec.json()
                attrs["recovered"] = True
                writer = SessionWriter(tmp, subject="", task="", journal=False,
                                       _session_attrs=attrs)
                continue
            if writer is None:
                raise SessionFileError(f"journal {str(j_path)!r} does not start with a session record")
            if rec.type == jr.STREAM:
                d = rec.json()
                info = StreamInfo.from_dict(d["info"])
                idx = writer.add_stream(info, d.get("attrs", {}))
                if idx != d["index"]:
                    raise SessionFileError(f"journal {str(j_path)!r}: stream records out of order")
                formats[idx] = (info.channel_format, info.n_channels)
                infos[idx] = info
            elif rec.type == jr.CHUNK:
                idx, ts, x, dropped = jr.decode_chunk(rec.payload, formats)
                writer.append(Chunk(infos[idx].name, ts, x, dropped=dropped))
                writer.tick()
            elif rec.type == jr.GAP:
                d = rec.json()
                writer.add_gap(infos[d["index"]].name, d["start"], d["end"], d["missing"],
                               d["reason"])
            elif rec.type == jr.EVENT:
                d = rec.json()
                writer.add_event(d["kind"], d["text"], d.get("stream", ""), d["time"])
            elif rec.type == jr.END:
                end_attrs = rec.json()
        if writer is None:
            raise SessionFileError(f"journal {str(j_path)!r} holds no session record; nothing to recover")
        final = dict(end_attrs) if end_attrs else {"utc_end": "", "lsl_clock_end": max(
            (s.last_ts or 0.0) for s in writer.streams.values()) if writer.streams else 0.0}
        final["recovered"] = True
        final["recovery_stop_reason"] = reason
        writer.close(final)
        counts = {name: st.n_samples for name, st in writer.streams.items()}
    except BaseException:
        if writer is not None:
            writer.abort()
        tmp.unlink(missing_ok=True)
        raise
    # check the rebuilt file before touching the originals
    with open_session_h5(tmp) as f:
        for name, n in counts.items():
            if f["streams"][group_key(name)]["timestamps"].shape[0] != n:
                raise SessionFileError(f"rebuilt file {str(tmp)!r} lost samples of {name!r}")
    if h5_path.exists():
        if keep:
            damaged = _free_name(h5_path.with_name(h5_path.name + ".damaged"))
            os.replace(h5_path, damaged)
        else:
            h5_path.unlink()
    os.replace(tmp, h5_path)
    if keep:
        os.replace(j_path, _free_name(j_path.with_name(j_path.name + ".recovered")))
    else:
        j_path.unlink()
    scan_total = sum(counts.values())
    msg = (f"{h5_path}: rebuilt from the journal ({n_records} records, {scan_total} samples in "
           f"{len(counts)} streams; journal ended: {reason or 'cleanly'})")
    return RecoveryReport(h5_path, counts, reason, 0, end_attrs is not None, msg)


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
