"""Publish streams as fully described LSL outlets (LabRecorder, mne-lsl and any LSL
viewer see ordinary streams: type, channel labels/types/units and the device in
``desc``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pylsl

from physioaffect import __version__
from physioaffect.sources.base import Source
from physioaffect.sources.engine import Acquisition, Consumer
from physioaffect.streams import Chunk, StreamInfo, local_clock


def lsl_info(info: StreamInfo) -> pylsl.StreamInfo:
    """The LSL StreamInfo of a stream, with channels and device under ``desc``."""
    fmt = {"string": pylsl.cf_string, "float64": pylsl.cf_double64}.get(info.channel_format, pylsl.cf_float32)
    out = pylsl.StreamInfo(info.name, info.type, info.n_channels, info.nominal_srate, fmt,
                           info.source_id or info.name)
    desc = out.desc()
    channels = desc.append_child("channels")
    for ch in info.channels:
        node = channels.append_child("channel")
        node.append_child_value("label", ch.label)
        node.append_child_value("unit", ch.unit)
        node.append_child_value("type", ch.type)
    acq = desc.append_child("acquisition")
    for key, value in info.device.items():
        acq.append_child_value(key, value)
    desc.append_child_value("manufacturer", info.device.get("manufacturer", ""))
    desc.append_child_value("software", f"physioaffect {__version__}")
    return out


class LSLOutlet:
    """An LSL outlet for one stream. Push chunks from one thread only (liblsl's rule)."""

    def __init__(self, info: StreamInfo, chunk_size: int = 0):
        self.info = info
        self.outlet = pylsl.StreamOutlet(lsl_info(info), chunk_size=chunk_size)
        self.samples_pushed = 0

    def push(self, chunk: Chunk) -> None:
        """Send a chunk with its own per-sample timestamps."""
        if len(chunk) == 0:
            return
        if self.info.channel_format == "string":
            for ts, row in zip(chunk.timestamps, chunk.samples, strict=True):
                self.outlet.push_sample([str(v) for v in row], float(ts))
        else:
            self.outlet.push_chunk(np.ascontiguousarray(chunk.samples, dtype=np.float32
                                                         if self.info.channel_format == "float32"
                                                         else np.float64),
                                   chunk.timestamps.tolist())
        self.samples_pushed += len(chunk)

    def have_consumers(self) -> bool:
        return bool(self.outlet.have_consumers())


class OutletConsumer(Consumer):
    """Publishes every stream an :class:`Acquisition` delivers as an LSL outlet.

    Outlets are made when a stream is declared (so consumers can connect before its first
    sample) and pushed from the reader thread of the stream's source.
    """

    def __init__(self, on_chunk: Callable[[Chunk], None] | None = None):
        self.outlets: dict[str, LSLOutlet] = {}
        self.on_chunk = on_chunk

    def on_stream(self, info: StreamInfo, attrs: Mapping[str, Any]) -> None:
        if info.name not in self.outlets:
            self.outlets[info.name] = LSLOutlet(info)

    def on_chunks(self, chunks: Sequence[Chunk]) -> None:
        for chunk in chunks:
            self.outlets[chunk.stream].push(chunk)
            if self.on_chunk is not None:
                self.on_chunk(chunk)


def publish(
    sources: Source | Sequence[Source] | Acquisition, duration: float | None = None,
    on_chunk: Callable[[Chunk], None] | None = None, stop: Callable[[], bool] | None = None,
) -> dict[str, LSLOutlet]:
    """Publish every stream of the sources until ``duration`` s pass or ``stop()``.

    The sources are read through the acquisition engine (given as sources, not started, or
    as an engine, started or not); streams that appear while running get outlets as they
    appear. Returns the outlets (with their pushed-sample counts).
    """
    if isinstance(sources, Acquisition):
        engine = sources
    else:
        engine = Acquisition([sources] if isinstance(sources, Source) else list(sources))
    sink = engine.subscribe(OutletConsumer(on_chunk))
    t_end = None if duration is None else local_clock() + duration
    try:
        engine.start()
        while (t_end is None or local_clock() < t_end) and not (stop and stop()):
            time.sleep(0.02 if t_end is None else max(0.0, min(0.02, t_end - local_clock())))
    finally:
        engine.stop()
        engine.unsubscribe(sink)
    return sink.outlets
