"""Reading session files: :func:`read_session` and the :class:`Session` it returns."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from physioaffect.recording.errors import SessionFileError
from physioaffect.recording.format import (
    content_crc,
    decode_table,
    decode_value,
    open_session_h5,
    read_attrs,
    stored_texts,
)
from physioaffect.recording.naming import journal_path
from physioaffect.recording.verify import find_damage
from physioaffect.streams import StreamInfo


@dataclass
class StreamData:
    """One recorded stream.

    Attributes
    ----------
    info : StreamInfo
    timestamps : ndarray, shape (n_samples,)
        LSL-clock seconds.
    samples : ndarray, shape (n_samples, n_channels)
        In the units of ``info.channels`` (``object`` array of str for markers).
    gaps : ndarray
        Structured (``start``, ``end`` LSL s, ``missing`` samples, ``reason``).
    dropped : ndarray
        Structured (``time`` LSL s, ``count`` samples).
    attrs : dict
        Every attribute of the stream's group (measured rate, clock offset, ...).
    """

    info: StreamInfo
    timestamps: np.ndarray
    samples: np.ndarray
    gaps: np.ndarray
    dropped: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def n_samples(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def duration(self) -> float:
        """Seconds from the first to the last timestamp (0 with fewer than 2 samples)."""
        return float(self.timestamps[-1] - self.timestamps[0]) if self.n_samples > 1 else 0.0

    @property
    def dropped_total(self) -> int:
        return int(np.sum(self.dropped["count"])) if self.dropped.shape[0] else 0

    @property
    def measured_srate(self) -> float:
        return float(self.attrs.get("measured_srate", 0.0))


@dataclass
class Marker:
    """One marker: LSL time, text, and the stream it came from."""

    time: float
    text: str
    stream: str


@dataclass
class Session:
    """A session file read into memory.

    Attributes
    ----------
    path : Path
    attrs : dict
        Root attributes: ``subject``, ``session``, ``task``, ``run``, ``utc_start``,
        ``lsl_clock_start``, ``unix_to_lsl_offset``, ``software_versions`` (dict),
        ``configuration`` (dict), ``complete`` ...
    streams : dict of str to StreamData
    events : ndarray
        Structured (``time``, ``kind``, ``stream``, ``text``): connections, warnings.
    """

    path: Path
    attrs: dict[str, Any]
    streams: dict[str, StreamData]
    events: np.ndarray

    @property
    def markers(self) -> list[Marker]:
        """All markers of all ``Markers`` streams (first channel), sorted by time."""
        out = [
            Marker(float(t), str(row[0]), s.name)
            for s in self.streams.values()
            if s.info.channel_format == "string" or s.info.type == "Markers"
            for t, row in zip(s.timestamps, s.samples, strict=False)
        ]
        return sorted(out, key=lambda m: m.time)

    @property
    def signal_streams(self) -> list[StreamData]:
        """Regular-rate numeric streams."""
        return [s for s in self.streams.values()
                if s.info.is_regular and s.info.channel_format != "string"]

    @property
    def complete(self) -> bool:
        return bool(self.attrs.get("complete", False))

    @property
    def lsl_start(self) -> float:
        return float(self.attrs.get("lsl_clock_start", 0.0))


def stream_info_from_attrs(attrs: dict[str, Any]) -> StreamInfo:
    """Rebuild a :class:`StreamInfo` from a stream group's attributes."""
    return StreamInfo.from_dict(json.loads(attrs["info_json"]))


def read_session(
    path: str | os.PathLike[str],
    streams: Iterable[str] | None = None,
    load_samples: bool = True,
) -> Session:
    """Read a session file.

    Parameters
    ----------
    path : path
    streams : iterable of str, optional
        Names of the streams to read (default: all).
    load_samples : bool
        False reads timestamps and metadata but leaves ``samples`` empty (fast ``info``).

    Raises
    ------
    SessionFileError
        Missing, foreign, truncated or damaged file (one-line message).
    """
    p = Path(path)
    with open_session_h5(p) as f:
        try:
            attrs = read_attrs(f)
            wanted = None if streams is None else set(streams)
            out: dict[str, StreamData] = {}
            groups = [f["streams"][key] for key in f["streams"]]
            groups.sort(key=lambda g: int(g.attrs.get("index", 0)))  # declaration order
            for g in groups:
                gattrs = read_attrs(g)
                info = stream_info_from_attrs(gattrs)
                if wanted is not None and info.name not in wanted:
                    continue
                ts = _checked(g["timestamps"])
                if load_samples or info.channel_format == "string":  # markers are small
                    x = _checked(g["samples"])
                    if info.channel_format == "string":
                        x = stored_texts(x, _checked(g["escaped_rows"]) if "escaped_rows" in g
                                   else np.zeros(0, dtype=np.int64))
                else:
                    x = np.zeros((0, info.n_channels), dtype=info.dtype)
                gaps = decode_table(_checked(g["gaps"]))
                dropped = _checked(g["dropped"])
                out[info.name] = StreamData(info, ts, x, gaps, dropped, gattrs)
            events = decode_table(_checked(f["events"])) if "events" in f else np.zeros(0)
        except (KeyError, OSError, RuntimeError, ValueError) as err:
            raise damaged_error(p, f, err) from None
    if wanted:
        missing = wanted - set(out)
        if missing:
            raise SessionFileError(
                f"{str(p)!r} has no stream(s) {sorted(missing)}; it has {sorted(out)}"
            )
    return Session(path=p, attrs=attrs, streams=out, events=events)


class _ChecksumMismatch(ValueError):
    pass


def _checked(ds: h5py.Dataset) -> np.ndarray:
    """All of a dataset, compared with its ``crc32`` attribute when it has one."""
    values = ds[()]
    expected = ds.attrs.get("crc32")
    if expected is not None and content_crc(ds, 0, values) != int(expected):
        raise _ChecksumMismatch(f"{ds.name} does not match its CRC-32")
    return values


def damaged_error(path: Path, f: h5py.File | None, err: Exception | None = None) -> SessionFileError:
    """A one-line error naming what is damaged in ``path`` and what to do about it."""
    damage = []
    if f is not None:
        try:
            damage = find_damage(f)
        except Exception:  # noqa: BLE001 - the message below still says it is damaged
            damage = []
    what = str(damage[0]) if damage else (str(err).splitlines()[0] if err is not None and str(err)
                                          else "unreadable")
    if len(damage) > 1:
        what += f" (and {len(damage) - 1} more)"
    jp = journal_path(path)
    todo = (f"run `physioaffect recover {path}` to rebuild it from its journal {jp.name}"
            if jp.exists() else f"run `physioaffect recover {path}` to salvage every intact sample")
    return SessionFileError(f"{str(path)!r} is damaged: {what}; {todo}")


def describe_session(session: Session) -> str:
    """Human-readable summary: ids, clocks, streams, durations, rates, markers, gaps."""
    a = session.attrs
    lines = [
        f"{session.path}",
        f"  subject {a.get('subject')}  session {a.get('session') or '-'}  task {a.get('task')}"
        f"  run {a.get('run') or '-'}",
        f"  UTC start {a.get('utc_start')}  LSL clock at start {a.get('lsl_clock_start', 0):.3f} s"
        f"  UNIX->LSL offset {a.get('unix_to_lsl_offset', 0):.6f} s",
        "  complete: yes" if session.complete
        else "  complete: NO (recorder did not finish; `physioaffect recover` may add more)",
    ]
    if a.get("imported_from"):
        lines.append(f"  imported from {a['imported_from']}")
    lines.append(f"  {'stream':<22}{'type':<9}{'ch':>4}{'nominal':>9}{'measured':>10}"
                 f"{'samples':>10}{'duration':>10}{'dropped':>9}{'gaps':>6}")
    for s in session.streams.values():
        lines.append(
            f"  {s.name[:21]:<22}{s.info.type[:8]:<9}{s.info.n_channels:>4}"
            f"{s.info.nominal_srate:>9.6g}{s.measured_srate:>10.6g}{s.n_samples:>10}"
            f"{s.duration:>9.2f}s{s.dropped_total:>9}{s.gaps.shape[0]:>6}"
        )
    for s in session.streams.values():
        for gap in s.gaps:
            lines.append(
                f"  gap in {s.name}: {gap['start'] - session.lsl_start:.3f} s to "
                f"{gap['end'] - session.lsl_start:.3f} s after start (~{int(gap['missing'])} "
                f"samples, {decode_value(gap['reason'])})"
            )
    markers = session.markers
    lines.append(f"  markers: {len(markers)}")
    for m in markers[:20]:
        lines.append(f"    {m.time - session.lsl_start:10.3f} s  {m.text}  ({m.stream})")
    if len(markers) > 20:
        lines.append(f"    ... {len(markers) - 20} more")
    return "\n".join(lines)
