"""XDF (LabRecorder's format): import into a session file, and a small spec-conformant writer.

:func:`import_xdf` reads an XDF file with pyxdf (clock offsets applied, timestamps
dejittered by default, as LabRecorder users expect) and writes a session file, so
LabRecorder sessions feed the same pipeline. :func:`write_xdf` writes the XDF 1.0
chunk format (https://github.com/sccn/xdf/wiki/Specifications): used to export and to
test the importer against pyxdf.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from physioaffect.recording.errors import RecordingError, SessionFileError
from physioaffect.recording.naming import session_path_taken
from physioaffect.recording.writer import SessionWriter
from physioaffect.streams import ChannelInfo, Chunk, StreamInfo

_FORMATS = {"float32": "<f4", "double64": "<f8", "int32": "<i4", "int16": "<i2",
            "int8": "<i1", "int64": "<i8"}


def _first(d: Mapping[str, Any], key: str, default: str = "") -> str:
    """pyxdf keeps every XML value in a one-element list."""
    v = d.get(key) if isinstance(d, Mapping) else None
    while isinstance(v, list):
        v = v[0] if v else None
    return default if v is None else str(v)


def _channels(info: Mapping[str, Any], n: int, stype: str) -> list[ChannelInfo]:
    chans: list[ChannelInfo] = []
    try:
        desc = info["desc"][0]
        entries = desc["channels"][0]["channel"]
    except (KeyError, IndexError, TypeError):
        entries = []
    for k in range(n):
        e = entries[k] if k < len(entries) and isinstance(entries[k], Mapping) else {}
        chans.append(ChannelInfo(_first(e, "label") or f"{stype or 'ch'}{k + 1}",
                                 _first(e, "type") or stype, _first(e, "unit")))
    return chans


def _device(info: Mapping[str, Any]) -> dict[str, str]:
    out = {"hostname": _first(info, "hostname")}
    try:
        desc = info["desc"][0]
    except (KeyError, IndexError, TypeError):
        return out
    if not isinstance(desc, Mapping):
        return out
    for section in ("acquisition", "device"):
        node = desc.get(section)
        if isinstance(node, list) and node and isinstance(node[0], Mapping):
            for k, v in node[0].items():
                value = _first(node[0], k)
                if value and not isinstance(v[0] if isinstance(v, list) and v else v, Mapping):
                    out[k] = value
    if "manufacturer" in desc:
        out.setdefault("manufacturer", _first(desc, "manufacturer"))
    return out


def import_xdf(
    xdf_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    subject: str,
    task: str,
    session: str | None = None,
    run: int | None = None,
    dejitter: bool = True,
) -> Path:
    """Convert an XDF file into a session file.

    Parameters
    ----------
    xdf_path : path
    out : path
        The ``.h5`` session file to create (must not exist).
    subject, task, session, run
        Identifiers (BIDS labels).
    dejitter : bool
        Let pyxdf fit regular timestamps to regular streams (its default).

    Raises
    ------
    SessionFileError
        The file is missing or not XDF.
    """
    import pyxdf

    src = Path(xdf_path)
    out = Path(out)
    if not src.is_file():
        raise SessionFileError(f"{str(src)!r} does not exist")
    with open(src, "rb") as fh:
        if fh.read(4) != b"XDF:":
            raise SessionFileError(f"{str(src)!r} is not an XDF file (no 'XDF:' magic bytes)")
    if session_path_taken(out):
        raise RecordingError(f"{str(out)!r} already exists; it is never overwritten")
    quiet = logging.getLogger("pyxdf.pyxdf")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # its own complaints would be a second, unclear line
    try:
        streams, header = pyxdf.load_xdf(str(src), synchronize_clocks=True,
                                         dejitter_timestamps=dejitter, verbose=None)
    except Exception as err:  # pyxdf raises many kinds on damaged files
        raise SessionFileError(f"cannot read XDF file {str(src)!r}: "
                               f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
                               ) from None
    finally:
        quiet.setLevel(level)
    if not isinstance(header, Mapping) or not isinstance(streams, list):
        raise SessionFileError(f"{str(src)!r} is damaged: no readable XDF file header after "
                               f"the 'XDF:' magic bytes")
    try:
        _check_xdf_streams(streams)
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise SessionFileError(f"{str(src)!r} is damaged: a stream's header or data cannot be "
                               f"read ({type(err).__name__}: {err})") from None
    firsts = [float(s["time_stamps"][0]) for s in streams if len(s["time_stamps"])]
    lsl_start = min(firsts) if firsts else 0.0
    clock: dict[str, Any] = {"lsl_clock_start": lsl_start, "utc_start": "", "unix_start": 0.0,
                             "unix_to_lsl_offset": 0.0}
    when = _first(header.get("info", {}), "datetime")
    if when:
        try:
            dt = _dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.astimezone()  # LabRecorder writes local time
            unix = dt.timestamp()
            clock.update(utc_start=dt.astimezone(_dt.UTC).isoformat(),
                         unix_start=unix, unix_to_lsl_offset=lsl_start - unix)
        except ValueError:
            pass
    tmp = out.with_name(out.name + ".importing")
    tmp.unlink(missing_ok=True)
    writer = SessionWriter(
        tmp, subject=subject, task=task, session=session, run=run, journal=False,
        config={"imported_from": str(src), "pyxdf": pyxdf.__version__ if hasattr(pyxdf, "__version__") else "",
                "synchronize_clocks": True, "dejitter_timestamps": dejitter},
        attrs={"imported_from": src.name}, clock=clock,
    )
    try:
        names: set[str] = set()
        for s in streams:
            info = s["info"]
            name = _first(info, "name") or f"stream{_first(info, 'stream_id')}"
            while name in names:
                name += "+"
            names.add(name)
            stype = _first(info, "type")
            n_ch = int(_first(info, "channel_count", "1"))
            fmt = _first(info, "channel_format", "float32")
            cf = "string" if fmt == "string" else ("float64" if fmt in ("double64", "int64")
                                                   else "float32")
            si = StreamInfo(name=name, type=stype or "Misc", channels=tuple(_channels(info, n_ch, stype)),
                            nominal_srate=float(_first(info, "nominal_srate", "0") or 0),
                            channel_format=cf, source_id=_first(info, "source_id"),
                            device=_device(info))
            offsets = s.get("clock_times", []), s.get("clock_values", [])
            attrs = {"xdf_stream_id": _first(info, "stream_id"),
                     "xdf_effective_srate": float(_first(info, "effective_srate", "0") or 0)}
            if len(offsets[1]):
                attrs["clock_offset"] = float(np.median(offsets[1]))
            writer.add_stream(si, attrs)
            ts = np.asarray(s["time_stamps"], dtype=np.float64)
            if ts.size == 0:
                continue
            if cf == "string":
                x = np.array([[str(v) for v in row] for row in s["time_series"]], dtype=object)
            else:
                x = np.asarray(s["time_series"], dtype=si.dtype).reshape(ts.size, n_ch)
            step = 65536
            for i in range(0, ts.size, step):
                writer.append(Chunk(name, ts[i:i + step], x[i:i + step]))
        last = max((float(s["time_stamps"][-1]) for s in streams if len(s["time_stamps"])),
                   default=lsl_start)
        writer.close({"lsl_clock_end": last, "utc_end": ""})
    except BaseException:
        writer.abort()
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    return out


def _check_xdf_streams(streams: list) -> None:
    """Every stream pyxdf returned has the fields the import reads, of usable types."""
    for s in streams:
        info = s["info"]
        int(_first(info, "channel_count", "1"))
        float(_first(info, "nominal_srate", "0") or 0)
        ts = np.asarray(s["time_stamps"], dtype=np.float64)
        if ts.ndim != 1:
            raise ValueError(f"time stamps of shape {ts.shape}")
        if len(ts) and len(s["time_series"]) != len(ts):
            raise ValueError(f"{len(s['time_series'])} samples for {len(ts)} time stamps")


# -- writer -------------------------------------------------------------------------------

def _varlen(n: int) -> bytes:
    if n < 256:
        return struct.pack("<BB", 1, n)
    if n < 2**32:
        return struct.pack("<BI", 4, n)
    return struct.pack("<BQ", 8, n)


def _chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def _stream_xml(info: StreamInfo, stream_id: int) -> str:
    fmt = {"string": "string", "float64": "double64"}.get(info.channel_format, "float32")
    chans = "".join(
        f"<channel><label>{escape(c.label)}</label><unit>{escape(c.unit)}</unit>"
        f"<type>{escape(c.type)}</type></channel>" for c in info.channels)
    dev = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in info.device.items()
                  if k.isidentifier())
    return (
        '<?xml version="1.0"?><info>'
        f"<name>{escape(info.name)}</name><type>{escape(info.type)}</type>"
        f"<channel_count>{info.n_channels}</channel_count>"
        f"<nominal_srate>{info.nominal_srate:g}</nominal_srate>"
        f"<channel_format>{fmt}</channel_format><source_id>{escape(info.source_id)}</source_id>"
        f"<stream_id>{stream_id}</stream_id><created_at>0</created_at>"
        f"<desc><channels>{chans}</channels><acquisition>{dev}</acquisition></desc></info>"
    )


def write_xdf(
    path: str | os.PathLike[str],
    streams: Sequence[tuple[StreamInfo, np.ndarray, np.ndarray]],
    clock_offsets: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    datetime: str | None = None,
    chunk_size: int = 512,
) -> Path:
    """Write streams to an XDF 1.0 file.

    Parameters
    ----------
    streams : sequence of (StreamInfo, timestamps (n,), samples (n, n_channels))
    clock_offsets : mapping, optional
        Stream name -> [(collection time, offset value), ...] (s), written as ClockOffset
        chunks (a reader adds the offset to the timestamps).
    datetime : str, optional
        ISO 8601 recording start for the file header (as LabRecorder writes it).
    """
    path = Path(path)
    if path.exists():
        raise RecordingError(f"{str(path)!r} already exists; it is never overwritten")
    parts = [b"XDF:"]
    head = '<?xml version="1.0"?><info><version>1.0</version>'
    if datetime:
        head += f"<datetime>{escape(datetime)}</datetime>"
    parts.append(_chunk(1, (head + "</info>").encode()))
    for sid, (info, _ts, _x) in enumerate(streams, start=1):
        parts.append(_chunk(2, struct.pack("<I", sid) + _stream_xml(info, sid).encode()))
    for sid, (info, ts, x) in enumerate(streams, start=1):
        ts = np.asarray(ts, dtype=np.float64)
        for i in range(0, len(ts), chunk_size):
            tsc, xc = ts[i:i + chunk_size], x[i:i + chunk_size]
            body = [struct.pack("<I", sid), _varlen(len(tsc))]
            for t, row in zip(tsc, xc, strict=False):
                body.append(b"\x08" + struct.pack("<d", float(t)))
                if info.channel_format == "string":
                    for v in row:
                        b = str(v).encode("utf-8")
                        body.append(_varlen(len(b)) + b)
                else:
                    dt = "<f8" if info.channel_format == "float64" else "<f4"
                    body.append(np.asarray(row, dtype=dt).tobytes())
            parts.append(_chunk(3, b"".join(body)))
        for t, v in (clock_offsets or {}).get(info.name, []):
            parts.append(_chunk(4, struct.pack("<Idd", sid, t, v)))
    for sid, (info, ts, _x) in enumerate(streams, start=1):
        offs = "".join(f"<offset><time>{t!r}</time><value>{v!r}</value></offset>"
                       for t, v in (clock_offsets or {}).get(info.name, []))
        xml = ('<?xml version="1.0"?><info>'
               f"<first_timestamp>{float(ts[0]) if len(ts) else 0!r}</first_timestamp>"
               f"<last_timestamp>{float(ts[-1]) if len(ts) else 0!r}</last_timestamp>"
               f"<sample_count>{len(ts)}</sample_count>"
               f"<clock_offsets>{offs}</clock_offsets></info>")
        parts.append(_chunk(6, struct.pack("<I", sid) + xml.encode()))
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(b"".join(parts))
    os.replace(tmp, path)
    return path
