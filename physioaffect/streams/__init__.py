"""Streams: what a series of samples is (:class:`StreamInfo`), the chunks it
arrives in (:class:`Chunk`), the one clock they share (:func:`local_clock`) and
the ring buffers that fan one producer out to many consumers."""

from physioaffect.streams.clock import local_clock, unix_to_lsl_offset
from physioaffect.streams.info import (
    IRREGULAR_RATE,
    MAX_CHANNELS,
    MAX_RATE_HZ,
    STREAM_TYPES,
    ChannelInfo,
    Chunk,
    StreamError,
    StreamInfo,
    UnknownStreamError,
    shape_problem,
    stream_problem,
)
from physioaffect.streams.ring import ReadResult, RingBuffer, RingReader, StreamHub

__all__ = [
    "IRREGULAR_RATE",
    "MAX_CHANNELS",
    "MAX_RATE_HZ",
    "STREAM_TYPES",
    "ChannelInfo",
    "Chunk",
    "ReadResult",
    "RingBuffer",
    "RingReader",
    "StreamError",
    "StreamHub",
    "StreamInfo",
    "UnknownStreamError",
    "local_clock",
    "shape_problem",
    "stream_problem",
    "unix_to_lsl_offset",
]
