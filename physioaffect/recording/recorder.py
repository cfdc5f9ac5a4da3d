"""The recorder: the session writer as a consumer of the acquisition engine.

The engine (:class:`~physioaffect.sources.engine.Acquisition`) reads the sources, takes
lost streams back, checks streams, notes connection changes and source errors; the
:class:`Recorder` subscribes to it and writes what it delivers into a
:class:`SessionWriter` (journal first, HDF5 from the same chunks) on one thread of its own:
streams as they appear (also mid-recording), chunks inside the recording window, events,
markers from the keyboard and ``physioaffect mark``; it syncs the journal after every
delivery (at most every 0.2 s) and reports status. ``record`` runs it in the main thread,
the viewer's record button on a thread (:meth:`Recorder.start` / :meth:`Recorder.close`).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physioaffect.recording.errors import StreamMismatchError
from physioaffect.recording.writer import SessionWriter
from physioaffect.sources.engine import SAID, Acquisition, Consumer, EngineEvent
from physioaffect.streams import IRREGULAR_RATE, Chunk, StreamInfo, local_clock

__all__ = ["RECORDER_MARKERS", "Recorder", "StreamStatus"]

#: The stream that keyboard and ``physioaffect mark`` markers go to.
RECORDER_MARKERS = StreamInfo.from_labels(
    "physioaffect-markers", "Markers", ["marker"], IRREGULAR_RATE, "", channel_format="string",
    source_id="physioaffect-recorder",
)
#: Seconds after the end of a timed recording for samples still in flight.
GRACE_S = 0.15


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


class Recorder(Consumer):
    """Writes what an acquisition engine delivers into a session file.

    Parameters
    ----------
    engine : Acquisition
        Started or not; the recorder subscribes to it (and declares its marker stream on it,
        so the engine's other consumers see the markers too). It does not stop it.
    writer : SessionWriter
        Open; closed by the caller (or by :meth:`close`).
    markers : StreamInfo
        The stream of :meth:`add_marker` (keyboard, ``physioaffect mark``).

    Run :meth:`run` (blocks until ``duration``, :meth:`stop` or Ctrl-C), or :meth:`start`
    it on a thread and :meth:`close` it.
    """

    def __init__(self, engine: Acquisition, writer: SessionWriter,
                 markers: StreamInfo = RECORDER_MARKERS, origin: str = "physioaffect recorder"):
        self.engine = engine
        self.writer = writer
        self.markers = markers
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._connection: dict[str, bool] = {}
        self._local: set[str] = set()
        #: Source errors, refused chunks, dropped markers: said at the end of ``record``.
        self.errors: list[str] = []
        self.start_time: float | None = None
        self._stop_time: float | None = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        engine.add_local_stream(markers, origin)
        engine.subscribe(self, past_events=True)  # e.g. streams refused at start go in too

    # -- what the engine delivers (reader threads: queue only) ---------------------------------
    def on_stream(self, info: StreamInfo, attrs: Mapping[str, Any]) -> None:
        self._queue.put(("stream", info, {**attrs, "added_at": local_clock()}))

    def on_chunks(self, chunks: Sequence[Chunk]) -> None:
        self._queue.put(("chunks", chunks))

    def on_event(self, event: EngineEvent) -> None:
        self._queue.put(("event", event))

    # -- from other threads ------------------------------------------------------------------
    def add_marker(self, text: str, t: float | None = None, origin: str = "api") -> None:
        """A marker in the recorder's marker stream (thread-safe; ``t``: LSL time)."""
        ts = local_clock() if t is None else float(t)
        self.engine.push_local(Chunk(self.markers.name, np.array([ts]),
                                     np.array([[text]], dtype=object)))

    def add_event(self, kind: str, text: str, stream: str = "") -> None:
        """An event for the session's event table (thread-safe), also kept in :attr:`errors`."""
        self.on_event(EngineEvent(local_clock(), kind, stream, text))

    def stop(self) -> None:
        """Ask :meth:`run` to finish (thread-safe)."""
        self._stop.set()
        self._queue.put(("wake",))

    # -- writing -----------------------------------------------------------------------------
    def _handle(self, item: tuple) -> None:
        kind = item[0]
        writer = self.writer
        if kind == "chunks":
            for chunk in item[1]:
                if chunk.stream not in self._local:
                    chunk = self._trim(chunk)
                try:
                    writer.append(chunk)
                except StreamMismatchError as err:  # e.g. a device back with other channels
                    self.errors.append(str(err))
                    writer.add_event("chunk-refused", str(err), chunk.stream)
        elif kind == "stream":
            info, attrs = item[1], item[2]
            if info.name in writer.streams:
                return
            if self.engine.is_local(info.name):  # the operator's markers: never trimmed
                self._local.add(info.name)
            writer.add_stream(info, attrs)
            if self.start_time is not None and attrs["added_at"] - self.start_time > 1.0:
                writer.add_event("stream-added", f"{info.name} ({info.type}) appeared",
                                 info.name, attrs["added_at"])
        elif kind == "event":
            ev: EngineEvent = item[1]
            if ev.kind in ("connected", "disconnected"):
                self._connection[ev.stream] = ev.kind == "connected"
            elif ev.kind not in SAID:  # (the engine said those when they happened)
                self.errors.append(ev.text)
            writer.add_event(ev.kind, ev.text, ev.stream, ev.time)

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

    def _drain(self) -> bool:
        wrote = False
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return wrote
            self._handle(item)
            wrote = True

    def run(self, duration: float | None = None,
            on_status: Callable[[Recorder], None] | None = None,
            status_interval: float = 0.5, on_end: Callable[[], None] | None = None) -> None:
        """Record until ``duration`` seconds have passed, :meth:`stop`, or Ctrl-C.

        ``on_end`` is called when the recording window closes, before the last samples are
        taken (e.g. to stop a marker listener, whose last messages then still go in).

        Raises whatever the writer raises (e.g. :class:`DiskFullError`); what was synced
        before stays in the journal.
        """
        writer = self.writer
        # the recording starts now: what the sources delivered before (while they were
        # opened, or while --require waited) is trimmed away; markers are kept
        self.start_time = local_clock()
        self._stop_time = None
        t_end = None if duration is None else time.monotonic() + duration
        next_status = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if t_end is not None and now >= t_end:
                    if self._stop_time is None:  # the window closes now; keep reading briefly
                        self._stop_time = local_clock()
                    if now >= t_end + GRACE_S:
                        break
                # sleep until something arrives or something is due (never a busy poll)
                due = min(writer.next_due, now + 1.0)
                if on_status is not None:
                    due = min(due, next_status)
                if t_end is not None:
                    due = min(due, t_end if self._stop_time is None else t_end + GRACE_S)
                try:
                    item = self._queue.get(timeout=max(0.0, due - now))
                except queue.Empty:
                    item = None
                if item is not None:
                    self._handle(item)
                    self._drain()
                    # durable now: what a read brought survives a power cut at once
                    writer.sync(min_interval=0.2)
                writer.tick()
                now = time.monotonic()
                if on_status is not None and now >= next_status:
                    on_status(self)
                    next_status = now + status_interval
            if self._stop_time is None:
                self._stop_time = local_clock()
            if on_end is not None:
                on_end()
            # what the sources hold up to now goes in (every reader reads afresh)
            self.engine.flush()
        finally:
            self.engine.unsubscribe(self)
        self._drain()
        stop = self._stop_time
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

    # -- on a thread (the viewer's record button) ---------------------------------------------
    def start(self) -> Recorder:
        """Run :meth:`run` on a thread of its own until :meth:`close`."""

        def work() -> None:
            try:
                self.run()
            except BaseException as err:  # noqa: BLE001 - handed to close()
                self.error = err

        self._thread = threading.Thread(target=work, name="recorder", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> Path:
        """Stop a recorder started with :meth:`start`, finish the file (the journal is
        folded into the HDF5 and dropped) and return its path; raises what went wrong (the
        journal is then kept for ``recover``)."""
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is None:
            try:
                self.writer.close()
            except BaseException as err:  # noqa: BLE001 - raised below
                self.error = err
        if self.error is not None:
            if not self.writer.closed:
                self.writer.abort()
            raise self.error
        return self.writer.path

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- status ------------------------------------------------------------------------------
    def status(self) -> list[StreamStatus]:
        """Rows for the live status line."""
        rows = []
        for st in list(self.writer.streams.values()):
            rows.append(StreamStatus(
                name=st.info.name, type=st.info.type, samples=st.n_samples,
                rate=st.measured_srate, nominal=st.info.nominal_srate, dropped=st.dropped,
                gaps=st.n_gaps, connected=self._connection.get(st.info.name, True),
                last_marker=st.last_marker,
            ))
        return rows

    @property
    def samples(self) -> int:
        """Samples written so far, all streams."""
        return sum(st.n_samples for st in list(self.writer.streams.values()))

    @property
    def elapsed(self) -> float:
        return 0.0 if self.start_time is None else local_clock() - self.start_time

