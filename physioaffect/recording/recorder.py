"""The recorder: reads every stream of one or more sources into a :class:`SessionWriter`.

One thread per source starts, reads and stops that source (liblsl objects stay on the
thread that made them) and hands chunks to a queue; the recording thread declares
streams as they appear (also mid-recording), writes chunks, syncs the journal, notes
connection changes and reports status. A source that fails is retried; the others
keep recording.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from physioaffect.recording.errors import RecordingError, StreamMismatchError
from physioaffect.recording.writer import SessionWriter
from physioaffect.sources.base import Source
from physioaffect.streams import IRREGULAR_RATE, Chunk, StreamInfo, local_clock

#: The stream that keyboard and ``physioaffect mark`` markers go to.
RECORDER_MARKERS = StreamInfo.from_labels(
    "physioaffect-markers", "Markers", ["marker"], IRREGULAR_RATE, "", channel_format="string",
    source_id="physioaffect-recorder",
)


@dataclass
class StreamStatus:
    """One row of the live status line."""

    name: str
    type: str
    samples: int
    rate: float
    nominal: float
    dropped: int
    gaps: int
    connected: bool
    last_marker: str


class _SourceThread(threading.Thread):
    """Owns one or more sources: starts them, reads them until told to stop, stops them.

    A source that blocks while it waits for data (the simulator, a board) gets a thread
    of its own. Sources that read without blocking when asked for batches (LSL inlets)
    share one thread: every ``pace`` seconds it takes what each has buffered, so a
    recording of many streams wakes a few times a second in all.
    """

    def __init__(self, sources: Sequence[tuple[int, Source]], out: queue.Queue, poll: float,
                 pace: float):
        super().__init__(name=f"source-{sources[0][0]}", daemon=True)
        self.sources = list(sources)
        self.out = out
        self.poll = poll if len(self.sources) == 1 else 0.0
        self.pace = pace
        self.halt = threading.Event()
        self.final_read = False
        self.started_ok = threading.Event()
        self.error: BaseException | None = None
        self.failed_source: Source | None = None

    def run(self) -> None:
        started: list[tuple[int, Source]] = []
        try:
            for index, src in self.sources:
                src.start()
                started.append((index, src))
        except BaseException as err:  # reported to the recording thread
            self.error = err
            self.failed_source = self.sources[len(started)][1]
            self.started_ok.set()
            self._stop_all(started)
            return
        self.started_ok.set()
        failures = dict.fromkeys(range(len(self.sources)), 0)
        retry_at = dict.fromkeys(range(len(self.sources)), 0.0)
        try:
            while not self.halt.is_set():
                t_read = time.monotonic()
                batch = []  # one hand-over per round, however many sources
                for k, (index, src) in enumerate(self.sources):
                    if t_read < retry_at[k]:
                        continue
                    try:
                        chunks = src.read(self.poll)
                        failures[k] = 0
                    except Exception as err:  # keep the other sources going; retry this one
                        failures[k] += 1
                        retry_at[k] = time.monotonic() + min(5.0, 0.5 * failures[k])
                        self.out.put(("error", index, f"{type(err).__name__}: {err}"))
                        continue
                    if chunks:
                        batch.append((index, chunks))
                if batch:
                    self.out.put(("batch", batch))
                # Read at most every `pace` s: the device/inlet buffers in between, and
                # reading in bigger chunks costs far less CPU than chasing every 10 ms chunk.
                rest = self.pace - (time.monotonic() - t_read)
                if rest > 0:
                    self.halt.wait(rest)
            if self.final_read:  # what the sources buffered since the last read
                for index, src in self.sources:
                    try:
                        chunks = src.read(0.0)
                        if chunks:
                            self.out.put(("chunks", index, chunks))
                    except Exception as err:
                        self.out.put(("error", index, f"final read: {err}"))
        finally:
            self._stop_all(self.sources)

    def _stop_all(self, sources: Sequence[tuple[int, Source]]) -> None:
        for index, src in sources:
            try:
                src.stop()
            except Exception as err:
                self.out.put(("error", index, f"stopping: {err}"))


class Recorder:
    """Records sources into a session file.

    Parameters
    ----------
    sources : sequence of Source
        Not yet started; the recorder starts and stops them.
    poll : float
        Longest wait (s) of one ``read`` of a source.
    pace : float
        Shortest interval (s) between two reads of a source (sources buffer meanwhile;
        LSL inlets hold minutes, BrainFlow boards a minute).

    Use :meth:`open` (starts the sources), optionally :meth:`wait_for_types`, then
    :meth:`record` with a writer; :meth:`close` stops everything.
    """

    def __init__(self, sources: Sequence[Source], poll: float = 0.05, pace: float = 0.5):
        self.sources = list(sources)
        self.poll = poll
        self.pace = pace
        self._queue: queue.Queue = queue.Queue()
        self._threads: list[_SourceThread] = []
        self.writer: SessionWriter | None = None
        self._stop = threading.Event()
        self._stream_source: dict[str, int] = {}
        self._connection: dict[str, bool] = {}
        self.errors: list[str] = []
        self.start_time: float | None = None
        self._stop_time: float | None = None

    # -- lifecycle --------------------------------------------------------------
    def open(self, timeout: float = 30.0) -> None:
        """Start every source (each on its own thread); raise if one cannot start."""
        batch = [(i, src) for i, src in enumerate(self.sources) if src.prefer_batches(self.pace)]
        groups = [[(i, src)] for i, src in enumerate(self.sources) if (i, src) not in batch]
        if batch:
            groups.append(batch)
        for group in groups:
            th = _SourceThread(group, self._queue, self.poll, self.pace)
            self._threads.append(th)
            th.start()
        for th in self._threads:
            if not th.started_ok.wait(timeout * len(th.sources)):
                names = ", ".join(repr(src.description) for _, src in th.sources)
                raise RecordingError(f"source(s) {names} did not start in {timeout} s")
            if th.error is not None:
                raise RecordingError(f"cannot start source {th.failed_source.description!r}: "
                                     f"{th.error}")
        seen: dict[str, str] = {}
        for src in self.sources:
            for info in list(src.streams):
                if info.name in seen or info.name == RECORDER_MARKERS.name:
                    raise RecordingError(
                        f"stream name {info.name!r} comes from both {seen.get(info.name, 'the recorder')}"
                        f" and {src.description}; give one a prefix (e.g. sim?prefix=simB)"
                    )
                seen[info.name] = src.description

    def streams(self) -> list[StreamInfo]:
        """Streams the sources have now."""
        return [s for src in self.sources for s in list(src.streams)]

    def wait_for_types(self, types: Sequence[str], timeout: float) -> None:
        """Block until a stream of every type in ``types`` is present, else raise."""
        wanted = {t.lower() for t in types}
        deadline = time.monotonic() + timeout
        while True:
            have = {s.type.lower() for s in self.streams()}
            if wanted <= have:
                return
            if time.monotonic() >= deadline or self._stop.is_set():
                missing = ", ".join(sorted(wanted - have))
                seen = ", ".join(f"{s.name} ({s.type})" for s in self.streams()) or "none"
                raise RecordingError(
                    f"required stream type(s) {missing} not present after {timeout:g} s; "
                    f"streams seen: {seen}"
                )
            time.sleep(0.1)

    def add_marker(self, text: str, t: float | None = None, origin: str = "api") -> None:
        """Queue a marker for the recorder's own marker stream (thread-safe)."""
        ts = local_clock() if t is None else float(t)
        chunk = Chunk(RECORDER_MARKERS.name, np.array([ts]), np.array([[text]], dtype=object))
        self._queue.put(("marker", origin, chunk))

    def stop(self) -> None:
        """Ask :meth:`record` to finish (thread-safe)."""
        self._stop.set()
        self._queue.put(("wake",))

    def close(self, final_read: bool = False) -> None:
        """Stop all source threads (and with them the sources), optionally after one last read."""
        for th in self._threads:
            th.final_read = final_read
            th.halt.set()
        for th in self._threads:
            th.join(timeout=5.0)

    # -- recording ------------------------------------------------------------
    def _declare(self, info: StreamInfo, index: int | None) -> None:
        assert self.writer is not None
        if info.name in self.writer.streams:
            return
        src = self.sources[index] if index is not None else None
        attrs = {"source": getattr(src, "description", "physioaffect recorder") if src else
                 "physioaffect recorder"}
        offset = _clock_offset(src, info.name) if src is not None else None
        if offset is not None:
            attrs["clock_offset"] = offset
        self.writer.add_stream(info, attrs)
        if index is not None:
            self._stream_source[info.name] = index
        if self.start_time is not None and local_clock() - self.start_time > 1.0:
            self.writer.add_event("stream-added", f"{info.name} ({info.type}) appeared", info.name)

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        assert self.writer is not None
        if kind == "batch":
            for index, chunks in item[1]:
                self._handle(("chunks", index, chunks))
        elif kind == "chunks":
            index, chunks = item[1], item[2]
            for chunk in chunks:
                if self._stream_source.get(chunk.stream, index) != index:
                    self.errors.append(f"stream {chunk.stream!r} also comes from "
                                       f"{self.sources[index].description}; ignored there")
                    continue
                chunk = self._trim(chunk)
                if chunk.stream not in self.writer.streams:
                    info = _find(self.sources[index], chunk.stream)
                    if info is None:
                        self.errors.append(f"chunk of unknown stream {chunk.stream!r} ignored")
                        continue
                    self._declare(info, index)
                try:
                    self.writer.append(chunk)
                except StreamMismatchError as err:  # e.g. a device back with other channels
                    self.errors.append(str(err))
                    self.writer.add_event("chunk-refused", str(err), chunk.stream)
        elif kind == "marker":
            self.writer.append(item[2])
        elif kind == "error":
            text = f"{self.sources[item[1]].description}: {item[2]}"
            self.errors.append(text)
            self.writer.add_event("source-error", text)

    def _trim(self, chunk: Chunk) -> Chunk:
        """Keep the samples inside the recording window [start, stop] on the LSL clock.

        Only for chunks stamped on the live clock (a simulator running faster than real
        time, or a stream with a foreign clock, is never trimmed).
        """
        lo, hi = self.start_time, self._stop_time
        if lo is None or len(chunk) == 0:
            return chunk
        ts = chunk.timestamps
        first, last = float(ts[0]), float(ts[-1])
        if first >= lo and (hi is None or last <= hi):
            return chunk  # the usual case, without touching the arrays
        if abs(last - local_clock()) > 10.0:
            return chunk
        keep = ts >= lo
        if hi is not None:
            keep &= ts <= hi
        if keep.all():
            return chunk
        return Chunk(chunk.stream, ts[keep], chunk.samples[keep], dropped=chunk.dropped)

    def _poll_connections(self) -> None:
        assert self.writer is not None
        for index, src in enumerate(self.sources):
            for info in list(src.streams):
                if info.name not in self.writer.streams:
                    self._declare(info, index)
            state = _connection_state(src)
            for name, up in state.items():
                if name not in self.writer.streams:
                    continue
                if self._connection.get(name, True) != up:
                    self.writer.add_event("connected" if up else "disconnected",
                                          f"{name} {'back' if up else 'lost'}", name)
                self._connection[name] = up

    def record(
        self,
        writer: SessionWriter,
        duration: float | None = None,
        on_status: Callable[[Recorder], None] | None = None,
        status_interval: float = 0.5,
    ) -> None:
        """Record until ``duration`` seconds have passed, :meth:`stop`, or Ctrl-C.

        Raises whatever the writer raises (e.g. :class:`DiskFullError`) after
        stopping; what was synced before stays in the journal.
        """
        self.writer = writer
        # the recording starts now: what the sources delivered while they were being
        # opened (or while --require waited) is not part of it; markers are kept
        held = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item[0] != "chunks":
                held.append(item)
        for item in held:
            self._queue.put(item)
        self.start_time = local_clock()
        self._stop_time = None
        writer.add_stream(RECORDER_MARKERS, {"source": "physioaffect recorder"})
        self._poll_connections()
        t_end = None if duration is None else time.monotonic() + duration
        grace = 0.15  # s after the end for samples still in flight
        next_status = time.monotonic()
        next_poll = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if t_end is not None and now >= t_end:
                if self._stop_time is None:  # the window closes now; keep reading briefly
                    self._stop_time = local_clock()
                if now >= t_end + grace:
                    break
            # sleep until something arrives or something is due (never a busy poll)
            due = min(next_poll, writer.next_due, now + 1.0)
            if on_status is not None:
                due = min(due, next_status)
            if t_end is not None:
                due = min(due, t_end if self._stop_time is None else t_end + grace)
            try:
                item = self._queue.get(timeout=max(0.0, due - now))
            except queue.Empty:
                item = None
            wrote = item is not None
            while item is not None:
                self._handle(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            if wrote:  # durable now: what a read brought survives a power cut at once
                writer.sync(min_interval=0.2)
            now = time.monotonic()
            if now >= next_poll:
                self._poll_connections()
                next_poll = now + 0.5
            writer.tick()
            if on_status is not None and now >= next_status:
                on_status(self)
                next_status = now + status_interval
        # what the sources delivered (and still buffer) up to now goes in
        self.close(final_read=True)
        while True:
            try:
                self._handle(self._queue.get_nowait())
            except queue.Empty:
                break
        stop = self._stop_time if self._stop_time is not None else local_clock()
        for name, up in self._connection.items():  # lost until the end: say so
            st = writer.streams.get(name)
            if up or st is None or st.last_ts is None or not st.info.is_regular \
                    or stop <= st.last_ts:
                continue
            writer.add_gap(name, st.last_ts, stop,
                           max(0, int(round((stop - st.last_ts) * st.info.nominal_srate))),
                           "stream lost until the end of the recording")
        writer.final_extra.update({"recording_start_lsl": self.start_time,
                                   "recording_stop_lsl": stop})

    def status(self) -> list[StreamStatus]:
        """Rows for the live status line."""
        if self.writer is None:
            return []
        rows = []
        for st in self.writer.streams.values():
            rows.append(StreamStatus(
                name=st.info.name, type=st.info.type, samples=st.n_samples,
                rate=st.measured_srate, nominal=st.info.nominal_srate, dropped=st.dropped,
                gaps=st.n_gaps, connected=self._connection.get(st.info.name, True),
                last_marker=st.last_marker,
            ))
        return rows

    @property
    def elapsed(self) -> float:
        return 0.0 if self.start_time is None else local_clock() - self.start_time


def _find(src: Source, name: str) -> StreamInfo | None:
    for info in list(src.streams):
        if info.name == name:
            return info
    return None


def _connection_state(src: Source) -> dict[str, bool]:
    """Per-stream connection state if the source exposes one (LSL inlets do)."""
    for attr in ("state", "connection_state", "connections"):
        try:
            value = getattr(src, attr, None)
        except Exception:  # a property that fails must not stop the recording
            continue
        if callable(value):
            try:
                value = value()
            except Exception:
                continue
        if isinstance(value, dict):
            return {str(k): (v.lower() not in ("lost", "disconnected", "down")
                             if isinstance(v, str) else bool(v)) for k, v in value.items()}
    return {}


def _clock_offset(src: Source, name: str) -> float | None:
    """The clock offset a source applied to a stream (LSL time correction), if it says."""
    for attr in ("clock_offsets", "clock_offset"):
        value = getattr(src, attr, None)
        if callable(value):
            try:
                value = value()
            except Exception:
                continue
        if isinstance(value, dict) and name in value:
            try:
                return float(value[name])
            except (TypeError, ValueError):
                return None
        if isinstance(value, (int, float)):
            return float(value)
    return None
