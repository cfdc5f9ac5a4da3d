"""The ``lsl:<type or name>`` source: any Lab Streaming Layer stream(s).

Streams are matched by type, name or source id. Inlets apply LSL's clock
correction, so timestamps arrive on this host's ``local_clock``. A stream that
vanishes is reported (a warning and :attr:`LSLSource.state`) and looked for
again every second; when it returns (same name and type) it is reconnected
and its chunks flow again under the same stream name.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pylsl
from pylsl.util import LostError
from pylsl.util import TimeoutError as LSLTimeoutError

from physioaffect.log import logger as log
from physioaffect.sources.base import Source, SourceError, SourceSpec, SourceSpecError
from physioaffect.streams import ChannelInfo, Chunk, StreamInfo, local_clock


class StreamLostWarning(UserWarning):
    """An LSL stream stopped (its outlet vanished); the source keeps looking for it."""


def _lsl_quote(text: str) -> str:
    return "'" + text.replace("'", "") + "'"


def predicate_for(target: str) -> str:
    """XPath predicate matching a stream by type, name or source id."""
    q = _lsl_quote(target)
    return f"type={q} or name={q} or source_id={q}"


def info_from_lsl(info: pylsl.StreamInfo) -> StreamInfo:
    """A physioaffect StreamInfo from an LSL one, channels read from ``desc``."""
    n = info.channel_count()
    labels, types, units = [], [], []
    desc = info.desc()
    ch = desc.child("channels").child("channel")
    for k in range(n):
        if ch.empty():
            labels.append(f"{info.type() or 'ch'}{k + 1}")
            types.append(info.type())
            units.append("")
            continue
        labels.append(ch.child_value("label") or f"ch{k + 1}")
        types.append(ch.child_value("type") or info.type())
        units.append(ch.child_value("unit"))
        ch = ch.next_sibling("channel")
    device = {}
    for section in ("acquisition", "device"):
        node = desc.child(section)
        if not node.empty():
            child = node.first_child()
            while not child.empty():
                if child.child_value():
                    device[child.name()] = child.child_value()
                child = child.next_sibling()
    fmt = info.channel_format()
    channel_format = {pylsl.cf_string: "string", pylsl.cf_double64: "float64"}.get(fmt, "float32")
    return StreamInfo(
        name=info.name(),
        type=info.type(),
        channels=tuple(ChannelInfo(a, b, c) for a, b, c in zip(labels, types, units, strict=True)),
        nominal_srate=float(info.nominal_srate()),
        channel_format=channel_format,
        source_id=info.source_id(),
        device={"hostname": info.hostname(), **device},
    )


class _Connection:
    """One inlet and what we know of it (kept on the thread that reads the source)."""

    def __init__(self, lsl_info: pylsl.StreamInfo, name: str):
        self.name = name  # physioaffect stream name (stable across reconnects)
        self.lsl_name = lsl_info.name()
        self.lsl_type = lsl_info.type()
        self.info: StreamInfo | None = None
        self.inlet: pylsl.StreamInlet | None = None
        self.lost_since: float | None = None
        self.last_search = 0.0
        self.open(lsl_info)

    def open(self, lsl_info: pylsl.StreamInfo) -> None:
        flags = pylsl.proc_clocksync
        # recover=False: a vanished outlet raises LostError, and we resolve it again by
        # name and type, which also works for outlets that have no source id.
        self.inlet = pylsl.StreamInlet(lsl_info, max_buflen=360, recover=False,
                                       processing_flags=flags)
        full = self.inlet.info(timeout=5.0)
        self.info = info_from_lsl(full).with_name(self.name)
        self.inlet.open_stream(timeout=5.0)
        self.lost_since = None

    def close(self) -> None:
        if self.inlet is not None:
            try:
                self.inlet.close_stream()
            except Exception:  # noqa: BLE001 - closing a lost inlet may fail; nothing to keep
                pass
        self.inlet = None


class LSLSource(Source):
    """Pulls every LSL stream that matches a type, name or source id.

    Parameters
    ----------
    target : str
        Stream type (``EEG``), name or source id.
    timeout : float
        Seconds to wait for the stream(s) to appear at start.
    expect : int
        Minimum number of matching streams to wait for.
    """

    def __init__(self, target: str, timeout: float = 5.0, expect: int = 1):
        super().__init__()
        if not target:
            raise SourceSpecError("lsl source needs a stream type, name or source id: lsl:EEG")
        self.target = target
        self.timeout = timeout
        self.expect = max(1, expect)
        self.description = f"lsl:{target}"
        self._conns: list[_Connection] = []

    @classmethod
    def from_spec(cls, spec: SourceSpec) -> LSLSource:
        spec.check_known({"timeout", "expect"})
        return cls(spec.target, timeout=spec.float_param("timeout", 5.0),
                   expect=spec.int_param("expect", 1))

    @property
    def state(self) -> dict[str, str]:
        """``connected`` or ``lost`` per stream name."""
        return {c.name: ("lost" if c.inlet is None else "connected") for c in self._conns}

    def _start(self) -> None:
        found = pylsl.resolve_bypred(predicate_for(self.target), self.expect, self.timeout)
        if len(found) < self.expect:
            raise SourceError(
                f"lsl:{self.target}: no LSL stream with type, name or source id "
                f"{self.target!r} appeared within {self.timeout:g} s"
                + (f" (found {len(found)} of {self.expect})" if found else "")
            )
        names: set[str] = set()
        for info in found:
            name = info.name()
            while name in names:  # two outlets with one name: keep both, apart
                name += "+"
            names.add(name)
            self._conns.append(_Connection(info, name))
        self.streams = [c.info for c in self._conns if c.info is not None]

    def _reconnect(self, conn: _Connection) -> None:
        now = time.monotonic()
        if now - conn.last_search < 1.0:
            return
        conn.last_search = now
        pred = f"name={_lsl_quote(conn.lsl_name)} and type={_lsl_quote(conn.lsl_type)}"
        found = pylsl.resolve_bypred(pred, 1, 0.2)
        if found:
            try:
                conn.open(found[0])
                log.info("LSL stream %s is back", conn.name)
            except (LostError, LSLTimeoutError, RuntimeError):
                conn.inlet = None

    def _read(self, timeout: float) -> list[Chunk]:
        chunks = []
        deadline = local_clock() + timeout
        while True:
            for conn in self._conns:
                if conn.inlet is None:
                    self._reconnect(conn)
                    continue
                try:
                    data, ts = conn.inlet.pull_chunk(timeout=0.0, max_samples=4096)
                except LostError:
                    conn.close()
                    conn.lost_since = local_clock()
                    warnings.warn(
                        f"LSL stream {conn.name!r} was lost; reconnecting when it returns",
                        StreamLostWarning, stacklevel=2,
                    )
                    continue
                if ts:
                    samples = np.asarray(data, dtype=object if conn.info.channel_format == "string" else np.float32)
                    chunks.append(Chunk(conn.name, np.asarray(ts), samples.reshape(len(ts), -1)))
            if chunks or local_clock() >= deadline:
                return chunks
            time.sleep(0.001)

    def _stop(self) -> None:
        for conn in self._conns:
            conn.close()
        self._conns = []
