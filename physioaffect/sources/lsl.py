"""The ``lsl:<type or name>`` source: any Lab Streaming Layer stream(s).

Streams are matched by type, name or source id, and checked before they are opened
(0 channels, absurd channel counts or rates, unknown formats are refused with a note; the
others are read). Inlets apply LSL's clock correction, so timestamps arrive on this host's
``local_clock``. A stream that vanishes is reported (a warning,
:meth:`LSLSource.connection_changes` and :attr:`LSLSource.state`) and looked for by one-shot
resolves every :data:`RESOLVE_WAIT_S` s until it returns (same name and type, same
channels); it is then opened at once and its chunks flow again under the same stream name.
LSL outlets keep nothing for inlets that connect later, so what a returning outlet sends
before it is found (about 0.1 s) cannot be had.
"""

from __future__ import annotations

import math
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
from physioaffect.streams import ChannelInfo, Chunk, StreamInfo, local_clock, shape_problem


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
_FORMATS = {*_NUMPY, pylsl.cf_string}
#: Longest wait (s) of one resolve while a stream is lost: a returning stream is found within
#: about this long (one-shot resolves answer at once; shorter waits cost far more CPU).
RESOLVE_WAIT_S = 0.2
#: Seconds a paced reader waits at most while a stream is lost (to take it back promptly).
LOST_READ_S = 0.05
#: Seconds after which the continuous resolver forgets a stream that stopped answering.
FORGET_S = 5.0
#: Longest ``timeout`` accepted for the streams to appear at start (a day).
MAX_TIMEOUT_S = 86400.0


def lsl_problem(info: pylsl.StreamInfo, like: StreamInfo | None = None) -> str | None:
    """Why an LSL stream cannot be acquired (None when it can), before anything is opened:
    0 or absurdly many channels, a rate that is negative, NaN or absurd, an unknown channel
    format; with ``like``, a stream returning with other channels than it had."""
    name, kind = info.name(), info.type()
    problem = shape_problem(name, kind, info.channel_count(), info.nominal_srate())
    if problem is None and info.channel_format() not in _FORMATS:
        problem = (f"stream {name!r} ({kind or 'no type'}) has an unknown channel format "
                   f"({info.channel_format()})")
    if problem is None and like is not None:
        fmt = "string" if info.channel_format() == pylsl.cf_string else "numeric"
        was = "string" if like.channel_format == "string" else "numeric"
        if info.channel_count() != like.n_channels or fmt != was:
            problem = (f"stream {name!r} ({kind}) returned with {info.channel_count()} {fmt} "
                       f"channels; it had {like.n_channels} {was}")
    return problem


def _connect(lsl_info: pylsl.StreamInfo, timeout: float) -> tuple[pylsl.StreamInlet,
                                                                  pylsl.StreamInfo, float]:
    """An open inlet (samples flow into its buffer from now on), the stream's full info
    and the LSL time it was opened."""
    # recover=False: a vanished outlet raises LostError, and we resolve it again by
    # name and type, which also works for outlets that have no source id.
    inlet = pylsl.StreamInlet(lsl_info, max_buflen=360, recover=False,
                              processing_flags=pylsl.proc_clocksync)
    full = inlet.info(timeout=timeout)
    inlet.open_stream(timeout=timeout)
    t_open = local_clock()
    # the first clock-offset estimate takes about 0.6 s of probes; wait for it here (on the
    # thread that opens), not in the first pull of the thread that reads every stream
    try:
        inlet.time_correction(timeout=timeout)
    except LSLTimeoutError:
        pass  # the first pull waits for it instead
    return inlet, full, t_open


class _Inlet:
    """One LSL stream: its inlet, a preallocated pull buffer and its reconnection.

    Pulls happen on the thread that reads the source. When the outlet vanishes, the
    source's finder thread looks for a stream with the same name and type (one-shot
    resolves, every :data:`RESOLVE_WAIT_S`), opens it and hands the open inlet over; the
    next pull takes it (the stream keeps its physioaffect name).
    """

    def __init__(self, lsl_info: pylsl.StreamInfo, name: str):
        self.name = name  # physioaffect stream name (stable across reconnects)
        self.lsl_name = lsl_info.name()
        self.lsl_type = lsl_info.type()
        self.info: StreamInfo | None = None
        self.inlet: pylsl.StreamInlet | None = None
        self.lost_since: float | None = None
        #: uids refused as replacements (a stream of the same name that cannot be recorded)
        self.refused: set[str] = set()
        self._handoff: tuple[pylsl.StreamInlet, pylsl.StreamInfo, float] | None = None
        self.forget_at = 0.0
        self._lock = threading.Lock()
        self.adopt(*_connect(lsl_info, 5.0)[:2])

    def adopt(self, inlet: pylsl.StreamInlet, full: pylsl.StreamInfo) -> None:
        """Start reading an open inlet."""
        self.info = info_from_lsl(full).with_name(self.name)
        self.uid = full.uid()
        fmt = full.channel_format()
        self.string = fmt == pylsl.cf_string
        n_ch = full.channel_count()
        rate = full.nominal_srate()
        # room for a second of data (at least 1024 samples): one pull takes all of it
        self.capacity = int(max(1024, min(65536, 2 * rate)))
        self.buffer = None if self.string else np.empty((self.capacity, n_ch), _NUMPY[fmt])
        self.dtype = np.dtype(self.info.dtype) if not self.string else None
        self.inlet = inlet
        self.lost_since = None

    def predicate(self, refused: bool = True) -> str:
        """Same name and type (and none of the refused candidates)."""
        pred = f"name={_lsl_quote(self.lsl_name)} and type={_lsl_quote(self.lsl_type)}"
        if not refused:
            return pred
        return pred + "".join(f" and not(uid={_lsl_quote(u)})" for u in sorted(self.refused))

    def offer(self, inlet: pylsl.StreamInlet, full: pylsl.StreamInfo, t_open: float) -> None:
        """Hand an inlet opened by the finder (at LSL time ``t_open``) to the reading thread."""
        with self._lock:
            self._handoff = (inlet, full, t_open)

    def take(self) -> float | None:
        """Adopt a handed-over inlet; its LSL time of opening, or None when there is none."""
        with self._lock:
            handoff, self._handoff = self._handoff, None
        if handoff is None:
            return None
        self.adopt(handoff[0], handoff[1])
        return handoff[2]

    @property
    def waiting(self) -> bool:
        """Lost, and nothing found yet."""
        return self.inlet is None and self._handoff is None

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
        """The outlet vanished: drop the inlet (the finder looks for the stream again)."""
        self.close()
        self.lost_since = local_clock()
        # still listed after FORGET_S, the same outlet is really there (a broken connection)
        self.forget_at = time.monotonic() + FORGET_S + 1.0

    def close(self) -> None:
        if self.inlet is not None:
            try:
                self.inlet.close_stream()
            except Exception:  # noqa: BLE001 - closing a lost inlet may fail; nothing to keep
                pass
        self.inlet = None

    def discard_handoff(self) -> None:
        with self._lock:
            handoff, self._handoff = self._handoff, None
        if handoff is not None:
            try:
                handoff[0].close_stream()
            except Exception:  # noqa: BLE001 - nothing to keep
                pass


class LSLSource(Source):
    """Pulls every LSL stream that matches a type, name or source id.

    Samples are pulled straight into a preallocated numpy buffer per stream. By default
    a :meth:`read` returns as soon as samples arrive (a blocking pull inside liblsl, for
    the live decoder and viewer; with several streams, one thread per inlet does the
    blocking). A consumer that reads on its own schedule (the recorder) says so with
    :meth:`prefer_batches`; each read then takes what is waiting without blocking.

    Every stream is checked before it is opened (:func:`lsl_problem`): one that cannot be
    recorded (0 channels, ...) is skipped with a note and a warning, the others are read;
    when nothing usable matches, :meth:`start` says why. A stream that vanishes is looked
    for again by a finder thread of the source and taken back within about
    :data:`RESOLVE_WAIT_S` of its return (a stand-in with other channels is refused).

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
        if not (math.isfinite(timeout) and 0 <= timeout <= MAX_TIMEOUT_S):  # NaN too
            raise SourceSpecError(f"lsl:{target}: timeout must be 0-{MAX_TIMEOUT_S:g} s, "
                                  f"got {timeout!r}")
        if not 1 <= expect <= 1000:
            raise SourceSpecError(f"lsl:{target}: expect must be 1-1000 streams, got {expect!r}")
        self.target = target
        self.timeout = float(timeout)
        self.expect = int(expect)
        self.description = f"lsl:{target}"
        self._inlets: list[_Inlet] = []
        self._batch: float | None = None
        self._threads: list[threading.Thread] = []
        self._queue: queue.Queue = queue.Queue()
        self._halt = threading.Event()
        self._lost = threading.Event()  # wakes the finder
        self._finder: threading.Thread | None = None
        self._changes: list[tuple[float, str, bool]] = []

    @classmethod
    def from_spec(cls, spec: SourceSpec) -> LSLSource:
        spec.check_known({"timeout", "expect"})
        return cls(spec.target, timeout=spec.float_param("timeout", 5.0),
                   expect=spec.int_param("expect", 1))

    def prefer_batches(self, interval: float) -> bool:
        self._batch = float(interval)
        return True

    @property
    def start_timeout_s(self) -> float:
        return self.timeout

    @property
    def state(self) -> dict[str, str]:
        """``connected`` or ``lost`` per stream name."""
        return {c.name: ("lost" if c.inlet is None else "connected") for c in self._inlets}

    def connection_changes(self) -> list[tuple[float, str, bool]]:
        out = []
        while self._changes:
            out.append(self._changes.pop(0))
        return out

    @property
    def next_read_s(self) -> float | None:
        return LOST_READ_S if any(c.inlet is None for c in self._inlets) else None

    def _resolve(self) -> list[pylsl.StreamInfo]:
        """Usable matching streams. The unusable ones are noted and excluded from the next
        look (so a broken stream cannot hide a good one, which is given one more second to
        answer); when every match is unusable, the source starts without streams."""
        deadline = time.monotonic() + self.timeout
        good: dict[str, pylsl.StreamInfo] = {}
        refused: dict[str, str] = {}
        while True:
            pred = predicate_for(self.target)
            skip = [*good, *refused]
            if skip:
                pred = f"({pred})" + "".join(f" and not(uid={_lsl_quote(u)})" for u in skip)
                deadline = min(deadline, time.monotonic() + 1.0) if refused else deadline
            left = max(0.0, deadline - time.monotonic())
            for info in pylsl.resolve_bypred(pred, self.expect - len(good), left):
                problem = lsl_problem(info)
                if problem is None:
                    good[info.uid()] = info
                elif info.uid() not in refused:
                    refused[info.uid()] = problem
                    self._refuse(f"{problem}; not recorded")
            if len(good) >= self.expect or time.monotonic() >= deadline:
                break
        if len(good) < self.expect and not refused:
            raise SourceError(
                f"lsl:{self.target}: no LSL stream with type, name or source id "
                f"{self.target!r} appeared within {self.timeout:g} s"
                + (f" (found {len(good)} of {self.expect})" if good else ""))
        return list(good.values())

    def _refuse(self, text: str) -> None:
        self.note(text)  # the engine says it (once) and a recorder stores it

    def _start(self) -> None:
        found = self._resolve()
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
        self._finder = threading.Thread(target=self._find, name=f"lsl-find-{self.target}",
                                        daemon=True)
        self._finder.start()

    def _find(self) -> None:
        """While a stream is lost: look for it again, open the first usable candidate and
        hand it over (samples buffer in the inlet from the moment it is open).

        Two lookers, whichever finds it first: a one-shot resolve every
        :data:`RESOLVE_WAIT_S` s (about 0.1 s after the stream returns, at LSL's default
        resolve scope) and a continuous resolver (about 0.3-0.5 s, at any scope, e.g.
        ``ResolveScope = machine``, where short one-shot resolves find nothing).
        """
        looking: dict[str, pylsl.ContinuousResolver] = {}
        try:
            while not self._halt.is_set():
                lost = [c for c in self._inlets if c.waiting]
                for name in set(looking) - {c.name for c in lost}:
                    del looking[name]  # found: stop its background queries
                if not lost:
                    self._lost.wait()  # set by a loss, and by stop
                    self._lost.clear()
                    continue
                for conn in lost:
                    if self._halt.is_set():
                        return
                    if conn.name not in looking:
                        looking[conn.name] = pylsl.ContinuousResolver(
                            pred=conn.predicate(refused=False), forget_after=FORGET_S)
                    now = time.monotonic()
                    # the vanished outlet stays listed until the resolver forgets it
                    cands = [c for c in looking[conn.name].results()
                             if c.uid() not in conn.refused
                             and not (c.uid() == conn.uid and now < conn.forget_at)]
                    if not cands:
                        cands = pylsl.resolve_bypred(conn.predicate(), 1, RESOLVE_WAIT_S)
                    self._try(conn, cands)
        finally:
            looking.clear()

    def _try(self, conn: _Inlet, candidates: list[pylsl.StreamInfo]) -> None:
        """Open the first usable candidate and hand it to the reading thread."""
        for cand in candidates:
            problem = lsl_problem(cand, like=conn.info)
            if problem is not None:
                conn.refused.add(cand.uid())
                self._refuse(f"{problem}; not taken as {conn.name!r}, still waiting")
                continue
            try:
                inlet, full, t_open = _connect(cand, 2.0)
            except (LostError, LSLTimeoutError, RuntimeError, ValueError) as err:
                conn.refused.add(cand.uid())
                self._refuse(f"stream {conn.name!r} found again but could not be opened "
                             f"({err}); still waiting")
                continue
            if self._halt.is_set():
                inlet.close_stream()
                return
            conn.offer(inlet, full, t_open)
            return

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
                    self._halt.wait(0.02)
        finally:
            conn.close()

    def _pull(self, conn: _Inlet, timeout: float) -> Chunk | None:
        """One pull of one inlet (or, while it is lost, a look for the finder's hand-over)."""
        if conn.inlet is None:
            t = conn.take()
            if t is None:
                return None
            self._changes.append((t, conn.name, True))
            log.info("LSL stream %s is back", conn.name)
        try:
            return conn.pull(timeout)
        except LostError:
            conn.lost()
            self._changes.append((conn.lost_since, conn.name, False))
            self._lost.set()
            warnings.warn(f"LSL stream {conn.name!r} was lost; reconnecting when it returns",
                          StreamLostWarning, stacklevel=3)
            return None

    def _read(self, timeout: float) -> list[Chunk]:
        if not self._inlets:  # every match was refused: nothing to read, never spin
            time.sleep(timeout)
            return []
        if self._threads:
            return self._read_threads(timeout)
        if self._batch is not None or len(self._inlets) != 1:
            # the caller paces the reads: take what is waiting, never poll
            return [c for c in (self._pull(conn, 0.0) for conn in self._inlets) if c is not None]
        conn = self._inlets[0]
        if conn.inlet is None:  # lost: look for the finder's hand-over now and then
            chunk = self._pull(conn, 0.0)
            if chunk is None and conn.inlet is None:
                time.sleep(min(timeout, LOST_READ_S))
            return [] if chunk is None else [chunk]
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
        self._lost.set()
        for th in self._threads:
            th.join(timeout=5.0)
        self._threads = []
        if self._finder is not None:
            self._finder.join(timeout=5.0)
            self._finder = None
        for conn in self._inlets:
            conn.close()
            conn.discard_handoff()
        self._inlets = []
