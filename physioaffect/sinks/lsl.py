"""Publish streams as fully described LSL outlets (LabRecorder, mne-lsl and any LSL
viewer see ordinary streams: type, channel labels/types/units and the device in
``desc``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pylsl

from physioaffect import __version__
from physioaffect.sources.base import Source
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


def publish(
    source: Source, duration: float | None = None,
    on_chunk: Callable[[Chunk], None] | None = None, stop: Callable[[], bool] | None = None,
    extra: Iterable[StreamInfo] = (),
) -> dict[str, LSLOutlet]:
    """Publish every stream of a started source until ``duration`` s pass or ``stop()``.

    Streams that the source adds while running get outlets as they appear.
    Returns the outlets (with their pushed-sample counts).
    """
    outlets: dict[str, LSLOutlet] = {}
    for info in [*source.streams, *extra]:
        outlets[info.name] = LSLOutlet(info)
    t_end = None if duration is None else local_clock() + duration
    while (t_end is None or local_clock() < t_end) and not (stop and stop()):
        for chunk in source.read(0.05):
            if chunk.stream not in outlets:
                outlets[chunk.stream] = LSLOutlet(source.stream(chunk.stream))
            outlets[chunk.stream].push(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
    return outlets
