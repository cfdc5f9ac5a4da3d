"""The acquisition engine: every command that reads live signals reads them through it.

::

    sources ──► one reader per source ──► fan-out ──► consumers
    (sim, BrainFlow, LSL, video)     (thread)       ├─ StreamHub (viewer, decoder, check)
                                                    ├─ session writer (recording.Recorder)
                                                    └─ LSL outlets (``stream``)

The engine starts, reads and stops every source on a reader thread of its own (liblsl and
BrainFlow handles stay on the thread that made them), checks each stream when it first
appears (a stream with 0 channels, an absurd channel count or rate is refused with one line,
the others go on), notes when a stream is lost and when it returns, retries a source whose
read fails, and hands every chunk, stream declaration and event to its consumers. A consumer
is called on a reader thread and must not block (the session writer queues, the hub copies
into a ring buffer). Reconnection, clock mapping (the offset a source applied), drop
accounting (``Chunk.dropped``, chunks refused) and the events a recording stores are thus done
once, here, for ``record``, ``view``, ``decode``, ``check`` and ``stream``.

Two paces:

- ``pace=0`` (live: viewer, decoder, ``stream``): each source is read with a blocking read
  that returns as soon as samples arrive.
- ``pace=0.5`` (recording): sources that can be read without blocking (LSL inlets) share one
  thread that takes what they buffered every ``pace`` s; the others are read as often. A
  recorder wakes a few times a second in all, which keeps it as light as LabRecorder.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from physioaffect.log import logger as log
from physioaffect.sources.base import Source, SourceError
from physioaffect.sources.registry import source_from_spec
from physioaffect.streams import Chunk, StreamHub, StreamInfo, local_clock, stream_problem

__all__ = ["Acquisition", "Consumer", "EngineEvent", "HubConsumer"]

#: Longest wait (s) before a failing source is read again.
RETRY_MAX_S = 5.0
#: Event kinds the engine has already said (logged) when they happened.
SAID = frozenset({"stream-refused", "chunk-refused", "source-note"})


@dataclass(frozen=True)
class EngineEvent:
    """Something a consumer may want to store or say.

    Attributes
    ----------
    time : float
        LSL clock, s.
    kind : str
        ``connected``, ``disconnected``, ``source-error``, ``stream-refused``,
        ``chunk-refused`` or ``source-note``. The engine logs the last three (one warning
        line each) when they happen.
    stream : str
        The stream it concerns ("" for a whole source).
    text : str
        One line for the operator.
    """

    time: float
    kind: str
    stream: str = ""
    text: str = ""


class Consumer:
    """Receives what an :class:`Acquisition` delivers (every method a no-op by default).

    Methods are called on the engine's reader threads (and, for the streams already known,
    on the thread that subscribes): they must return quickly and never block.
    """

    def on_stream(self, info: StreamInfo, attrs: Mapping[str, Any]) -> None:
        """A stream appeared (``attrs``: ``source``, and ``clock_offset`` when known)."""

    def on_chunks(self, chunks: Sequence[Chunk]) -> None:
        """Chunks of declared streams, in the order they were read."""

    def on_event(self, event: EngineEvent) -> None:
        """A connection change, a source error, a refused stream or chunk."""


class HubConsumer(Consumer):
    """Fills a :class:`StreamHub` (ring buffers that readers take at their own pace)."""

    def __init__(self, hub: StreamHub):
        self.hub = hub

    def on_stream(self, info: StreamInfo, attrs: Mapping[str, Any]) -> None:
        self.hub.add_stream(info)

    def on_chunks(self, chunks: Sequence[Chunk]) -> None:
        for chunk in chunks:
            self.hub.push(chunk)


@dataclass(eq=False)
class _Entry:
    """One source and its reading state."""

    index: int
    source: Source
    failures: int = 0
    retry_at: float = 0.0
    known: set[str] = field(default_factory=set)  # stream names already looked at
    state: dict[str, bool] = field(default_factory=dict)


class _Reader(threading.Thread):
    """Starts, reads and stops one source (or, at a recording's pace, every source that reads
    without blocking)."""

    def __init__(self, engine: Acquisition, entries: list[_Entry], batch: bool):
        names = "+".join(e.source.description for e in entries)[:40]
        super().__init__(name=f"acquire-{names}", daemon=True)
        self.engine = engine
        self.entries = entries
        self.batch = batch
        self.halt = threading.Event()
        self.wake = threading.Event()
        self.started_ok = threading.Event()
        self.error: BaseException | None = None
        self.failed: Source | None = None
        self.final_read = False
        self.rounds = 0  # rounds done (-1: stopped for good)
        self.in_round = False
        self._round_done = threading.Condition()

    # -- lifecycle -------------------------------------------------------------------------
    def run(self) -> None:
        started: list[_Entry] = []
        try:
            for e in self.entries:
                self.failed = e.source
                e.source.start()
                started.append(e)
                self.engine._adopt(e)
            self.failed = None
        except BaseException as err:  # noqa: BLE001 - handed to Acquisition.start
            self.error = err
            self.started_ok.set()
            self._stop_sources(started)
            return
        self.started_ok.set()
        try:
            self._loop()
        finally:
            self._stop_sources(self.entries)
            with self._round_done:
                self.rounds = -1  # never again: wakes flush() waiters
                self._round_done.notify_all()

    def _loop(self) -> None:
        eng = self.engine
        pace = eng.pace
        while not self.halt.is_set():
            t_round = time.monotonic()
            self.wake.clear()
            with self._round_done:
                self.in_round = True
            read = False
            for e in self.entries:
                if t_round >= e.retry_at:
                    self._read(e, 0.0 if self.batch else eng.poll)
                    read = True
            with self._round_done:
                self.rounds += 1
                self.in_round = False
                self._round_done.notify_all()
            if pace > 0 or self.batch:
                # Read at most every `pace` s (sooner when a source asks, e.g. to take back a
                # stream that returned): the device/inlet buffers in between, and bigger
                # chunks cost far less CPU than chasing every 10 ms chunk.
                wait = pace
                for e in self.entries:
                    hint = e.source.next_read_s
                    if hint is not None:
                        wait = min(wait, hint)
                rest = wait - (time.monotonic() - t_round)
                if rest > 0:
                    self.wake.wait(rest)
            elif not read:  # every source waits for its retry
                self.wake.wait(max(0.0, min(e.retry_at for e in self.entries)
                                   - time.monotonic()))
            elif time.monotonic() - t_round < 0.0005:
                # a source that returned at once with nothing: never spin
                self.halt.wait(0.002)
        if self.final_read:  # what the sources buffered since the last read
            for e in self.entries:
                self._read(e, 0.0)

    def _read(self, e: _Entry, timeout: float) -> None:
        eng = self.engine
        try:
            chunks = e.source.read(timeout)
            e.failures = 0
        except Exception as err:  # noqa: BLE001 - keep the other sources going; retry this one
            e.failures += 1
            e.retry_at = time.monotonic() + min(RETRY_MAX_S, 0.5 * e.failures)
            eng._emit(EngineEvent(local_clock(), "source-error", "",
                                  f"{e.source.description}: {type(err).__name__}: {err}"))
            return
        eng._look(e)
        if chunks:
            eng._deliver(e, chunks)

    def _stop_sources(self, entries: Iterable[_Entry]) -> None:
        for e in entries:
            try:
                e.source.stop()
            except Exception as err:  # noqa: BLE001 - stop the others, then report
                self.engine._emit(EngineEvent(local_clock(), "source-error", "",
                                              f"{e.source.description}: stopping: {err}"))

    def mark(self) -> int:
        """The number of rounds after which a round begun from now on is done."""
        with self._round_done:
            return self.rounds + (2 if self.in_round else 1)

    def wait_round(self, until: int, timeout: float) -> bool:
        """Wait until ``until`` rounds are done (see :meth:`mark`)."""
        deadline = time.monotonic() + timeout
        with self._round_done:
            while 0 <= self.rounds < until:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._round_done.wait(left)
        return True


class Acquisition:
    """Reads sources and fans their streams, chunks and events out to consumers.

    Parameters
    ----------
    sources : sequence of Source
        Not started yet; the engine starts and stops them (each on a reader thread).
    pace : float
        0: read each source as soon as it has samples (live). > 0: read at most every
        ``pace`` s, sources that can be read without blocking sharing one thread (recording).
    poll : float
        Longest wait (s) of one blocking read.
    hub_seconds : float, optional
        Keep a :class:`StreamHub` of this many seconds per stream (:attr:`hub`), for
        consumers that read at their own pace (viewer, decoder). None: no hub.

    Use as a context manager, or :meth:`start` / :meth:`stop`.
    """

    def __init__(self, sources: Sequence[Source], *, pace: float = 0.0, poll: float = 0.05,
                 hub_seconds: float | None = None):
        self.pace = float(pace)
        self.poll = float(poll)
        self.infos: dict[str, StreamInfo] = {}
        self.attrs: dict[str, dict[str, Any]] = {}
        #: ``True`` (connected) or ``False`` (lost) per stream whose source says.
        self.connected: dict[str, bool] = {}
        #: One line per source error, refused stream or chunk (the newest 100).
        self.errors: list[str] = []
        #: Every event so far (the newest 1000).
        self.events: collections.deque[EngineEvent] = collections.deque(maxlen=1000)
        self._owner: dict[str, int] = {}  # stream -> source index (-1: the engine's own)
        self._refused: set[tuple[str, str]] = set()
        self._entries: list[_Entry] = []
        self._readers: list[_Reader] = []
        self._consumers: tuple[Consumer, ...] = ()
        self._lock = threading.RLock()  # streams and consumers; never held while reading
        self._local_lock = threading.Lock()  # the engine's own streams have several writers
        self._running = False
        self._started = False  # every source of start() is up (name clashes checked)
        self.hub: StreamHub | None = None
        if hub_seconds is not None:
            self.hub = StreamHub([], seconds=hub_seconds)
            self.subscribe(HubConsumer(self.hub))
        for src in sources:
            self._entries.append(_Entry(len(self._entries), src))

    @classmethod
    def from_specs(cls, specs: str | Sequence[str], **kwargs: Any) -> Acquisition:
        """An engine over the sources named by spec texts (``sim``, ``lsl:EEG``, ...)."""
        if isinstance(specs, str):
            specs = [specs]
        return cls([source_from_spec(s) for s in (specs or ["sim"])], **kwargs)

    @property
    def sources(self) -> list[Source]:
        return [e.source for e in self._entries]

    @property
    def description(self) -> str:
        return " + ".join(e.source.description for e in self._entries) or "no source"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> Acquisition:
        """Start every source on its reader thread; raise if one cannot start (the others
        are stopped again)."""
        if self._running:
            return self
        self._running = True
        entries = list(self._entries)
        batch = [e for e in entries if self.pace > 0 and e.source.prefer_batches(self.pace)]
        groups = [([e], False) for e in entries if e not in batch]
        if batch:
            groups.append((batch, True))
        readers = [_Reader(self, group, b) for group, b in groups]
        self._readers += readers
        for r in readers:
            r.start()
        try:
            for r in readers:
                allowed = sum(timeout + e.source.start_timeout_s for e in r.entries)
                if not r.started_ok.wait(allowed):
                    names = ", ".join(repr(e.source.description) for e in r.entries)
                    raise SourceError(f"source(s) {names} did not start within {allowed:g} s")
                if r.error is not None:
                    err = r.error
                    if isinstance(err, SourceError):
                        raise err
                    desc = r.failed.description if r.failed is not None else "source"
                    raise SourceError(f"cannot start source {desc!r}: {err}") from None
            self._check_names()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def add_source(self, source: Source, timeout: float = 30.0) -> None:
        """Start one more source while the engine runs (e.g. a prediction stream that
        appeared on the network); raises like :meth:`start`."""
        with self._lock:
            entry = _Entry(len(self._entries), source)
            self._entries.append(entry)
        if not self._running:
            return
        reader = _Reader(self, [entry], False)
        self._readers.append(reader)
        reader.start()
        if not reader.started_ok.wait(timeout + source.start_timeout_s):
            reader.halt.set()
            raise SourceError(f"source {source.description!r} did not start within {timeout:g} s")
        if reader.error is not None:
            raise reader.error if isinstance(reader.error, SourceError) else \
                SourceError(f"cannot start source {source.description!r}: {reader.error}")

    def stop(self, final_read: bool = False, timeout: float = 5.0) -> None:
        """Stop every reader (and with it its sources), optionally after one last read."""
        for r in self._readers:
            r.final_read = final_read
            r.halt.set()
            r.wake.set()
        for r in self._readers:
            if r.is_alive():
                r.join(timeout)
        self._running = False

    def flush(self, timeout: float = 2.0) -> None:
        """Return once every reader has read its sources afresh and delivered what they had
        (a consumer that stops takes everything up to now)."""
        marks = [(r, r.mark()) for r in self._readers if r.is_alive()]
        for r, _ in marks:
            r.wake.set()
        for r, until in marks:
            r.wait_round(until, timeout)

    @property
    def running(self) -> bool:
        return self._running and any(r.is_alive() for r in self._readers)

    def __enter__(self) -> Acquisition:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- consumers -------------------------------------------------------------------------
    def subscribe(self, consumer: Consumer, past_events: bool = False) -> Consumer:
        """Add a consumer; it is told about every stream known so far first (and, with
        ``past_events``, the events so far, e.g. streams refused at start)."""
        with self._lock:
            for name, info in self.infos.items():
                consumer.on_stream(info, self.attrs[name])
            if past_events:
                for event in list(self.events):
                    consumer.on_event(event)
            self._consumers = (*self._consumers, consumer)
        return consumer

    def unsubscribe(self, consumer: Consumer) -> None:
        with self._lock:
            self._consumers = tuple(c for c in self._consumers if c is not consumer)

    def is_local(self, stream: str) -> bool:
        """True for a stream the program writes itself (:meth:`add_local_stream`)."""
        return self._owner.get(stream) == -1

    # -- the engine's own streams (markers from keys, ``mark``, the viewer) --------------------
    def add_local_stream(self, info: StreamInfo, source: str = "physioaffect") -> None:
        """Declare a stream the program itself writes (thread-safe, idempotent)."""
        with self._lock:
            if self._owner.get(info.name) == -1:
                return
            if info.name in self._owner:
                raise SourceError(f"stream name {info.name!r} already comes from "
                                  f"{self._entries[self._owner[info.name]].source.description}")
            self._register(-1, info, {"source": source})

    def push_local(self, chunk: Chunk) -> None:
        """Hand a chunk of a local stream to every consumer (any thread)."""
        if self._owner.get(chunk.stream) != -1:
            raise SourceError(f"{chunk.stream!r} is not a stream declared with add_local_stream")
        with self._local_lock:
            for c in self._consumers:
                c.on_chunks((chunk,))

    # -- what the readers call ---------------------------------------------------------------
    def _adopt(self, e: _Entry) -> None:
        """A source has started: declare its streams."""
        self._look(e)

    def _check_names(self) -> None:
        """Refuse two sources (or a source and this program) with one stream name: their
        samples could not be told apart."""
        seen: dict[str, str] = {name: "this program" for name, i in self._owner.items()
                                if i == -1}
        for e in self._entries:
            for info in list(e.source.streams):
                if info.name in seen:
                    raise SourceError(
                        f"stream name {info.name!r} comes from both {seen[info.name]} and "
                        f"{e.source.description}; give one a prefix (e.g. sim?prefix=simB)")
                seen[info.name] = e.source.description

    def _look(self, e: _Entry) -> None:
        """New streams, connection changes and notes of a source, after each read."""
        src = e.source
        streams = src.streams
        if len(streams) != len(e.known):
            for info in list(streams):
                if info.name not in e.known:
                    e.known.add(info.name)
                    self._declare(e, info)
        for text in src.take_notes():  # said once, here, and stored by a recorder
            log.warning("%s: %s", src.description, text)
            self._emit(EngineEvent(local_clock(), "source-note", "", f"{src.description}: {text}"))
        changes = src.connection_changes()
        if changes is None:  # a source that only shows its state: compare with the last
            state = src.connection_state()
            changes = [(local_clock(), name, up) for name, up in state.items()
                       if e.state.get(name, True) != up]
            e.state.update(state)
        for t, name, up in changes:
            if self._owner.get(name) != e.index:
                continue
            self.connected[name] = up
            self._emit(EngineEvent(t, "connected" if up else "disconnected", name,
                                   f"{name} {'back' if up else 'lost'}"))

    def _declare(self, e: _Entry, info: StreamInfo) -> bool:
        with self._lock:
            owner = self._owner.get(info.name)
            if owner == e.index:
                return True
            if owner is not None:
                if not self._started:  # start() refuses the pair in one line
                    return False
                other = "this program" if owner == -1 else self._entries[owner].source.description
                self._refuse(info.name, "owner", f"stream {info.name!r} also comes from "
                             f"{e.source.description}; ignored there (it comes from {other})")
                return False
            problem = stream_problem(info)
            if problem is not None:
                self._refuse(info.name, "invalid",
                             f"{e.source.description}: {problem}; not acquired")
                return False
            attrs: dict[str, Any] = {"source": e.source.description}
            offset = e.source.clock_offset_of(info.name)
            if offset is not None:
                attrs["clock_offset"] = offset
            self._register(e.index, info, attrs)
            return True

    def _register(self, index: int, info: StreamInfo, attrs: dict[str, Any]) -> None:
        with self._lock:
            self._owner[info.name] = index
            self.infos[info.name] = info
            self.attrs[info.name] = attrs
            for c in self._consumers:
                c.on_stream(info, attrs)

    def _refuse(self, stream: str, why: str, text: str) -> None:
        """Say once (per stream and reason, for the whole run) that something was not
        acquired."""
        if (stream, why) in self._refused:
            return
        self._refused.add((stream, why))
        log.warning("%s", text)
        self._emit(EngineEvent(local_clock(), "chunk-refused" if why == "shape"
                               else "stream-refused", stream, text))

    def _deliver(self, e: _Entry, chunks: list[Chunk]) -> None:
        owner = self._owner
        out = chunks
        for k, chunk in enumerate(chunks):
            name = chunk.stream
            ok = owner.get(name) == e.index or self._late_stream(e, name)
            if ok:
                info = self.infos[name]
                if chunk.samples.shape[1] != info.n_channels:
                    ok = False
                    self._refuse(name, "shape", f"stream {name!r}: a chunk with "
                                 f"{chunk.samples.shape[1]} channels, expected "
                                 f"{info.n_channels}; refused")
                elif not np.isfinite(chunk.timestamps).all():
                    chunk = self._drop_unstamped(chunk)
            if (not ok or chunk is not chunks[k]) and out is chunks:
                out = list(chunks[:k])
            if ok and out is not chunks:
                out.append(chunk)
        if out:
            for c in self._consumers:
                c.on_chunks(out)

    def _drop_unstamped(self, chunk: Chunk) -> Chunk:
        """Samples without a usable time (NaN or infinite stamps) cannot be placed: counted
        as dropped (and said once per stream), never passed on."""
        ok = np.isfinite(chunk.timestamps)
        bad = int((~ok).sum())
        self._refuse(chunk.stream, "stamps", f"stream {chunk.stream!r}: samples whose "
                     f"timestamps are not finite numbers are counted as dropped")
        return Chunk(chunk.stream, chunk.timestamps[ok], chunk.samples[ok],
                     dropped=chunk.dropped + bad)

    def _late_stream(self, e: _Entry, name: str) -> bool:
        """A chunk of a stream not declared yet: declare it from its source's list."""
        if name in self._owner:  # another source's stream (or the program's own)
            if not self._started:
                return False
            other = self._owner[name]
            self._refuse(name, "owner", f"stream {name!r} also comes from "
                         f"{e.source.description}; ignored there (it comes from "
                         f"{'this program' if other == -1 else self._entries[other].source.description})")
            return False
        for info in list(e.source.streams):
            if info.name == name:
                e.known.add(name)
                return self._declare(e, info)
        self._refuse(name, "unknown", f"{e.source.description}: chunk of unknown stream "
                     f"{name!r} ignored")
        return False

    def _emit(self, event: EngineEvent) -> None:
        with self._lock:  # (a subscriber gets the past events or this one, not both)
            self.events.append(event)
            if event.kind not in ("connected", "disconnected"):
                self.errors.append(event.text)
                del self.errors[:-100]
            consumers = self._consumers
        for c in consumers:
            c.on_event(event)

    # -- waiting for streams ------------------------------------------------------------------
    def wait_for_types(self, types: Sequence[str], timeout: float,
                       cancelled: Callable[[], bool] | None = None) -> None:
        """Block until a stream of every type in ``types`` is present, else raise."""
        wanted = {t.lower() for t in types}
        deadline = time.monotonic() + timeout
        while True:
            have = {s.type.lower() for s in list(self.infos.values())}
            if wanted <= have:
                return
            if time.monotonic() >= deadline or (cancelled is not None and cancelled()):
                missing = ", ".join(sorted(wanted - have))
                seen = ", ".join(f"{s.name} ({s.type})" for s in list(self.infos.values())) \
                    or "none"
                raise SourceError(
                    f"required stream type(s) {missing} not present after {timeout:g} s; "
                    f"streams seen: {seen}")
            time.sleep(0.05)
