"""The ``lsl:<type or name>`` source: any Lab Streaming Layer stream(s).

Streams are matched by type, name or source id. Inlets apply LSL's clock
correction, so timestamps arrive on this host's ``local_clock``. A stream that
vanishes is reported (a warning and :attr:`LSLSource.state`) and looked for by a
continuous resolver until it returns (same name and type); it is then reconnected
and its chunks flow again under the same stream name.
"""

from __future__ import annotations

import queue
import threading
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


#: numpy dtype of each LSL numeric channel format (samples are pulled in it, then cast).
_NUMPY = {pylsl.cf_float32: np.float32, pylsl.cf_double64: np.float64, pylsl.cf_int32: np.int32,
          pylsl.cf_int16: np.int16, pylsl.cf_int8: np.int8, pylsl.cf_int64: np.int64}
#: Seconds between looks at the continuous resolver while a stream is lost (growing to
#: RETRY_MAX_S while it stays away).
RETRY_MIN_S = 0.1
RETRY_MAX_S = 1.0
#: Seconds after which the continuous resolver forgets a stream that stopped answering.
FORGET_S = 5.0


class _Inlet:
    """One LSL stream: its inlet, a preallocated pull buffer and its reconnection.

    All of its liblsl calls happen on the thread that reads it. When the outlet vanishes,
    a :class:`pylsl.ContinuousResolver` keeps looking for a stream with the same name and
    type (a one-shot resolve can be slower than any fixed timeout, e.g. at machine scope)
    until it returns; the stream keeps its physioaffect name.
    """

    def __init__(self, lsl_info: pylsl.StreamInfo, name: str):
        self.name = name  # physioaffect stream name (stable across reconnects)
        self.lsl_name = lsl_info.name()
        self.lsl_type = lsl_info.type()
        self.info: StreamInfo | None = None
        self.inlet: pylsl.StreamInlet | None = None
        self.lost_since: float | None = None
        self._resolver: pylsl.ContinuousResolver | None = None
        # uids not to try before a monotonic time: the vanished outlet (a continuous
        # resolver lists it until it forgets it) and candidates that failed to open
        self._refused: dict[str, float] = {}
        self._next_look = 0.0
        self._retry = RETRY_MIN_S
        self.open(lsl_info)

    def open(self, lsl_info: pylsl.StreamInfo, timeout: float = 5.0) -> None:
        # recover=False: a vanished outlet raises LostError, and we resolve it again by
        # name and type, which also works for outlets that have no source id.
        inlet = pylsl.StreamInlet(lsl_info, max_buflen=360, recover=False,
                                  processing_flags=pylsl.proc_clocksync)
        full = inlet.info(timeout=timeout)
        inlet.open_stream(timeout=timeout)
        self.info = info_from_lsl(full).with_name(self.name)
        self.uid = full.uid()
        fmt = full.channel_format()
        self.string = fmt == pylsl.cf_string
        n_ch = max(1, full.channel_count())
        rate = full.nominal_srate()
        # room for a second of data (at least 1024 samples): one pull takes all of it
        self.capacity = int(max(1024, min(65536, 2 * rate)))
        self.buffer = None if self.string else np.empty((self.capacity, n_ch), _NUMPY.get(fmt, np.float32))
        self.dtype = np.dtype(self.info.dtype) if not self.string else None
        self.inlet = inlet
        self.lost_since = None

    def pull(self, timeout: float = 0.0) -> Chunk | None:
        """Samples waiting in the inlet; with ``timeout`` > 0, wait up to that long for the
        first one and return as soon as it comes. ``None`` when there are none.

        Raises
        ------
        LostError
            The outlet vanished (the caller calls :meth:`lost`).
        """
        if self.string:
            data, ts = self.inlet.pull_chunk(timeout=timeout, max_samples=self.capacity,
                                             min_samples=1 if timeout > 0 else None,
                                             as_numpy=True)
            if not len(ts):
                return None
            # raw bytes as sent: NUL bytes kept, bytes that are not UTF-8 kept as surrogates
            samples = np.empty(data.shape, dtype=object)
            samples.ravel()[:] = [v.decode("utf-8", "surrogateescape") for v in data.ravel()]
            return Chunk(self.name, ts, samples)
        buf = self.buffer
        _, ts = self.inlet.pull_chunk(timeout=timeout, max_samples=self.capacity, dest_obj=buf,
                                      min_samples=1 if timeout > 0 else None, as_numpy=True)
        n = len(ts)
        if n == 0:
            return None
        if n < self.capacity:
            return Chunk(self.name, ts, buf[:n].astype(self.dtype, copy=True))
        parts, stamps = [buf[:n].astype(self.dtype, copy=True)], [ts]
        while n == self.capacity:  # more is waiting: drain it
            _, ts = self.inlet.pull_chunk(timeout=0.0, max_samples=self.capacity, dest_obj=buf,
                                          as_numpy=True)
            n = len(ts)
            if n:
                parts.append(buf[:n].astype(self.dtype, copy=True))
                stamps.append(ts)
        return Chunk(self.name, np.concatenate(stamps), np.concatenate(parts))

    def lost(self) -> None:
        """The outlet vanished: drop the inlet and start looking for the stream again."""
        self.close()
        self.lost_since = local_clock()
        # still listed after FORGET_S, the same outlet is really there (a broken connection)
        self._refused[self.uid] = time.monotonic() + FORGET_S + 1.0
        self._retry = RETRY_MIN_S
        self._next_look = 0.0
        pred = f"name={_lsl_quote(self.lsl_name)} and type={_lsl_quote(self.lsl_type)}"
        self._resolver = pylsl.ContinuousResolver(pred=pred, forget_after=FORGET_S)

    def reconnect(self) -> bool:
        """Look at the continuous resolver (at most every ``_retry`` s); True when back."""
        now = time.monotonic()
        if self._resolver is None or now < self._next_look:
            return False
        self._next_look = now + self._retry
        self._retry = min(RETRY_MAX_S, self._retry * 1.5)
        for candidate in self._resolver.results():
            uid = candidate.uid()
            if now < self._refused.get(uid, 0.0):
                continue  # the vanished outlet, until the resolver forgets it
            try:
                self.open(candidate, timeout=2.0)
            except (LostError, LSLTimeoutError, RuntimeError, ValueError):
                self._refused[uid] = time.monotonic() + FORGET_S
                self.inlet = None
                continue
            self._resolver = None  # stops its background queries
            log.info("LSL stream %s is back", self.name)
            return True
        return False

    @property
    def wait_s(self) -> float:
        """Seconds until the next look for a lost stream."""
        return max(0.0, self._next_look - time.monotonic())

    def close(self) -> None:
        if self.inlet is not None:
            try:
                self.inlet.close_stream()
            except Exception:  # noqa: BLE001 - closing a lost inlet may fail; nothing to keep
                pass
        self.inlet = None


class LSLSource(Source):
    """Pulls every LSL stream that matches a type, name or source id.

    Samples are pulled straight into a preallocated numpy buffer per stream. By default
    a :meth:`read` returns as soon as samples arrive (a blocking pull inside liblsl, for
    the live decoder and viewer; with several streams, one thread per inlet does the
    blocking). A consumer that reads on its own schedule (the recorder) says so with
    :meth:`prefer_batches`; each read then takes what is waiting without blocking.

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
        self._inlets: list[_Inlet] = []
        self._batch: float | None = None
        self._threads: list[threading.Thread] = []
        self._queue: queue.Queue = queue.Queue()
        self._halt = threading.Event()

    @classmethod
    def from_spec(cls, spec: SourceSpec) -> LSLSource:
        spec.check_known({"timeout", "expect"})
        return cls(spec.target, timeout=spec.float_param("timeout", 5.0),
                   expect=spec.int_param("expect", 1))

    def prefer_batches(self, interval: float) -> bool:
        self._batch = float(interval)
        return True

    @property
    def state(self) -> dict[str, str]:
        """``connected`` or ``lost`` per stream name."""
        return {c.name: ("lost" if c.inlet is None else "connected") for c in self._inlets}

    def _start(self) -> None:
        found = pylsl.resolve_bypred(predicate_for(self.target), self.expect, self.timeout)
        if len(found) < self.expect:
            raise SourceError(
                f"lsl:{self.target}: no LSL stream with type, name or source id "
                f"{self.target!r} appeared within {self.timeout:g} s"
                + (f" (found {len(found)} of {self.expect})" if found else "")
            )
        names: list[str] = []
        for info in found:
            name = info.name()
            while name in names:  # two outlets with one name: keep both, apart
                name += "+"
            names.append(name)
        self._halt.clear()
        if len(found) > 1 and self._batch is None:
            # several streams, each wanted the moment it has data: a thread per inlet,
            # which opens, reads and closes it
            ready: queue.Queue = queue.Queue()
            for info, name in zip(found, names, strict=True):
                th = threading.Thread(target=self._inlet_thread, args=(info, name, ready),
                                      name=f"lsl-inlet-{name}", daemon=True)
                th.start()
                self._threads.append(th)
            for _ in self._threads:
                item = ready.get()
                if isinstance(item, BaseException):
                    self._halt.set()
                    raise item
                self._inlets.append(item)
        else:
            self._inlets = [_Inlet(info, name) for info, name in zip(found, names, strict=True)]
        self.streams = [c.info for c in self._inlets if c.info is not None]

    def _inlet_thread(self, lsl_info: pylsl.StreamInfo, name: str, ready: queue.Queue) -> None:
        try:
            conn = _Inlet(lsl_info, name)
        except BaseException as err:  # noqa: BLE001 - handed to _start
            ready.put(err)
            return
        ready.put(conn)
        try:
            while not self._halt.is_set():
                chunk = self._pull(conn, 0.1)
                if chunk is not None:
                    self._queue.put(chunk)
                elif conn.inlet is None:
                    self._halt.wait(min(0.1, conn.wait_s))
        finally:
            conn.close()

    def _pull(self, conn: _Inlet, timeout: float) -> Chunk | None:
        """One pull of one inlet (or one look for it while it is lost)."""
        if conn.inlet is None:
            if not conn.reconnect():
                return None
        try:
            return conn.pull(timeout)
        except LostError:
            conn.lost()
            warnings.warn(f"LSL stream {conn.name!r} was lost; reconnecting when it returns",
                          StreamLostWarning, stacklevel=3)
            return None

    def _read(self, timeout: float) -> list[Chunk]:
        if self._threads:
            return self._read_threads(timeout)
        if self._batch is not None or len(self._inlets) != 1:
            # the caller paces the reads: take what is waiting, never poll
            return [c for c in (self._pull(conn, 0.0) for conn in self._inlets) if c is not None]
        conn = self._inlets[0]
        if conn.inlet is None:  # lost: look again when it is time, never spin
            if not conn.reconnect():
                time.sleep(min(timeout, conn.wait_s))
                return []
        chunk = self._pull(conn, timeout)
        return [] if chunk is None else [chunk]

    def _read_threads(self, timeout: float) -> list[Chunk]:
        out = []
        try:
            out.append(self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait())
        except queue.Empty:
            return []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def _stop(self) -> None:
        self._halt.set()
        for th in self._threads:
            th.join(timeout=5.0)
        self._threads = []
        for conn in self._inlets:
            conn.close()
        self._inlets = []
