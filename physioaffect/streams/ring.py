"""Ring buffers that never block a producer and count what a slow consumer missed.

One producer (a source thread) writes; any number of readers (recorder, outlet,
viewer, decoder) read at their own pace, each with its own cursor. When a reader
falls more than a buffer behind, the producer overwrites the oldest samples
anyway and the reader is told how many it missed. The producer never takes a
lock and never waits: readers detect overwrites after copying (a sequence-lock
check on the producer's counters) instead of holding the writer back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from physioaffect.streams.info import Chunk, StreamError, StreamInfo, UnknownStreamError


@dataclass
class ReadResult:
    """Samples a reader got, and how many it missed since its previous read.

    Attributes
    ----------
    timestamps : ndarray, shape (n,)
        LSL-clock seconds.
    samples : ndarray, shape (n, n_channels)
    missed : int
        Samples overwritten before this reader got to them (since the last read).
    """

    timestamps: np.ndarray
    samples: np.ndarray
    missed: int

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])


class RingBuffer:
    """Fixed-capacity buffer of timestamped multichannel samples.

    Parameters
    ----------
    capacity : int
        Number of samples kept (e.g. 30 s x rate).
    n_channels : int
    dtype : numpy dtype
        ``float32`` for signals, ``object`` for marker strings.
    """

    def __init__(self, capacity: int, n_channels: int, dtype: np.dtype | type = np.float32):
        if capacity < 1:
            raise StreamError(f"ring buffer capacity must be >= 1 sample, got {capacity}")
        self.capacity = int(capacity)
        self.n_channels = int(n_channels)
        self._data = np.zeros((self.capacity, self.n_channels), dtype=dtype)
        self._ts = np.zeros(self.capacity, dtype=np.float64)
        # Sequence counters: `_claimed` moves before the data is written, `_written`
        # after. A reader whose copy overlaps slots below `_claimed - capacity`
        # knows those slots may have been overwritten while it copied.
        self._claimed = 0
        self._written = 0

    @property
    def total_written(self) -> int:
        """Samples written since creation (monotonic)."""
        return self._written

    def write(self, timestamps: np.ndarray, samples: np.ndarray) -> None:
        """Append samples; never blocks, overwrites the oldest when full."""
        ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        x = np.asarray(samples)
        if x.ndim == 1:
            x = x.reshape(-1, 1)
        n = ts.shape[0]
        if x.shape != (n, self.n_channels):
            raise StreamError(
                f"ring buffer write: expected samples of shape ({n}, {self.n_channels}), "
                f"got {x.shape}"
            )
        if n == 0:
            return
        start_total = self._written
        if n > self.capacity:  # only the newest `capacity` samples can be kept
            skip = n - self.capacity
            ts, x = ts[skip:], x[skip:]
            start_total += skip
            n = self.capacity
        self._claimed = start_total + n
        start = start_total % self.capacity
        first = min(n, self.capacity - start)
        self._data[start : start + first] = x[:first]
        self._ts[start : start + first] = ts[:first]
        if first < n:
            self._data[: n - first] = x[first:]
            self._ts[: n - first] = ts[first:]
        self._written = start_total + n

    def _copy(self, begin: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Copy samples with absolute indices [begin, end) (caller checks validity)."""
        n = end - begin
        start = begin % self.capacity
        first = min(n, self.capacity - start)
        if first == n:
            return self._ts[start : start + n].copy(), self._data[start : start + n].copy()
        ts = np.concatenate([self._ts[start:], self._ts[: n - first]])
        data = np.concatenate([self._data[start:], self._data[: n - first]], axis=0)
        return ts, data

    def reader(self, from_oldest: bool = False) -> RingReader:
        """A new independent reader, starting now (or at the oldest sample kept)."""
        return RingReader(self, from_oldest=from_oldest)

    def latest(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The newest ``n`` samples (fewer if fewer were written), without a cursor."""
        end = self._written
        begin = max(0, end - min(n, self.capacity))
        ts, data = self._copy(begin, end)
        safe = self._claimed - self.capacity
        if safe > begin:  # overwritten while copying
            cut = safe - begin
            ts, data = ts[cut:], data[cut:]
        return ts, data


    def read_range(self, begin: int, end: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Samples with absolute indices ``[begin, end)`` that are still kept, without a cursor.

        Returns
        -------
        first : int
            Absolute index of the first sample returned (``> begin`` when older ones are
            gone); ``end`` is clipped to what was written.
        timestamps, samples : ndarray
        """
        end = min(int(end), self._written)
        begin = max(int(begin), end - self.capacity, 0)
        if end <= begin:
            return begin, np.zeros(0), np.zeros((0, self.n_channels), dtype=self._data.dtype)
        ts, data = self._copy(begin, end)
        safe = self._claimed - self.capacity
        if safe > begin:  # overwritten while copying
            cut = min(safe - begin, end - begin)
            ts, data, begin = ts[cut:], data[cut:], begin + cut
        return begin, ts, data


class RingReader:
    """A consumer's cursor into a :class:`RingBuffer`."""

    def __init__(self, buffer: RingBuffer, from_oldest: bool = False):
        self.buffer = buffer
        end = buffer.total_written
        self.position = max(0, end - buffer.capacity) if from_oldest else end
        self.missed_total = 0

    @property
    def available(self) -> int:
        """Samples written but not yet read (including ones already overwritten)."""
        return self.buffer.total_written - self.position

    def read(self, max_samples: int | None = None) -> ReadResult:
        """Everything new since the last read (at most ``max_samples``)."""
        buf = self.buffer
        end = buf.total_written
        missed = 0
        oldest = end - buf.capacity
        if self.position < oldest:
            missed = oldest - self.position
            self.position = oldest
        if max_samples is not None:
            end = min(end, self.position + max_samples)
        if end <= self.position:
            self.missed_total += missed
            return ReadResult(
                np.zeros(0), np.zeros((0, buf.n_channels), dtype=buf._data.dtype), missed
            )
        ts, data = buf._copy(self.position, end)
        # Sequence-lock check: slots below `claimed - capacity` may have changed
        # under the copy; discard them and count them as missed.
        safe = buf._claimed - buf.capacity
        if safe > self.position:
            cut = min(safe - self.position, end - self.position)
            ts, data = ts[cut:], data[cut:]
            missed += cut
        self.position = end
        self.missed_total += missed
        return ReadResult(ts, data, missed)


class StreamHub:
    """Fans the chunks of several streams out to any number of readers.

    A source pushes chunks; the recorder, an LSL outlet, the viewer and the
    decoder each take their own :class:`RingReader` per stream. The hub also
    keeps the device-side dropped-sample count of every stream.

    Parameters
    ----------
    infos : iterable of StreamInfo
    seconds : float
        Buffer length per stream in seconds (irregular streams keep
        ``irregular_capacity`` entries).
    """

    def __init__(
        self, infos: Iterable[StreamInfo], seconds: float = 30.0, irregular_capacity: int = 4096
    ):
        self.infos: dict[str, StreamInfo] = {}
        self.buffers: dict[str, RingBuffer] = {}
        self.device_dropped: dict[str, int] = {}
        self._seconds = seconds
        self._irregular_capacity = irregular_capacity
        self._lock = threading.Lock()  # guards adding streams only, never writes
        for info in infos:
            self.add_stream(info)

    def add_stream(self, info: StreamInfo) -> RingBuffer:
        with self._lock:
            if info.name in self.buffers:
                return self.buffers[info.name]
            cap = (
                max(1, int(round(self._seconds * info.nominal_srate)))
                if info.is_regular
                else self._irregular_capacity
            )
            buf = RingBuffer(cap, info.n_channels, dtype=info.dtype)
            self.infos[info.name] = info
            self.buffers[info.name] = buf
            self.device_dropped[info.name] = 0
            return buf

    def push(self, chunk: Chunk) -> None:
        """Write one chunk into its stream's buffer (the stream must be known)."""
        try:
            buf = self.buffers[chunk.stream]
        except KeyError:
            raise UnknownStreamError(
                f"chunk for unknown stream {chunk.stream!r}; known: {sorted(self.buffers)}"
            ) from None
        if chunk.dropped:
            self.device_dropped[chunk.stream] += int(chunk.dropped)
        buf.write(chunk.timestamps, chunk.samples)

    def reader(self, stream: str, from_oldest: bool = False) -> RingReader:
        return self.buffers[stream].reader(from_oldest=from_oldest)
