"""Publish a :class:`~physioaffect.face.source.VideoSource` through an LSL outlet.

The outlet is the shared :class:`physioaffect.sinks.lsl.LSLOutlet`: channel labels, units and
types and the device travel in the stream's ``desc`` like every other physioaffect stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from physioaffect.face.source import VideoSource
from physioaffect.log import logger, verbose
from physioaffect.sinks.lsl import LSLOutlet
from physioaffect.streams import local_clock


@verbose
def publish_face(
    source: VideoSource,
    duration: float | None = None,
    wait_consumer: float = 0.0,
    echo: Callable[[str], None] | None = None,
    linger: float = 1.0,
    *,
    verbose: bool | str | int | None = None,
) -> dict[str, Any]:
    """Run ``source`` and push its ``Face`` stream to LSL until the file ends or time is up.

    Parameters
    ----------
    source : VideoSource
        Not started.
    duration : float, optional
        Seconds of video to publish, counted on the frames' own timestamps.
    wait_consumer : float
        Seconds to wait for an inlet before the first frame is read (0: do not wait).
    echo : callable, optional
        Receives the progress lines instead of the package logger (the command line's).
    linger : float
        Seconds the outlet stays open after the last frame while an inlet is connected.
    verbose : bool, str, int or None
        Level of the package logger for this call (:func:`physioaffect.set_log_level`).

    Returns
    -------
    dict
        ``samples`` pushed, ``status_counts`` per frame status, ``first_time``/``last_time``
        (LSL s), ``truncated`` (the file ended before its declared frame count).
    """
    say = echo if echo is not None else logger.info
    warn = (lambda m: echo(f"warning: {m}")) if echo is not None else logger.warning
    first = last = None
    with source:
        outlet = LSLOutlet(source.streams[0])
        say(
            f"{source.description}: publishing LSL stream {source.name!r} (type Face, "
            f"{source.streams[0].n_channels} channels, {source.reader.fps:g} Hz, "
            f"detector {source.analyzer.detector})"
        )
        if wait_consumer > 0:
            if not outlet.outlet.wait_for_consumers(wait_consumer):
                say(f"no LSL consumer after {wait_consumer:g} s; publishing anyway")
        next_report = local_clock() + 5.0
        done = False
        while not done and not source.exhausted:
            for chunk in source.read(0.1):
                if first is None and len(chunk):
                    first = float(chunk.timestamps[0])
                if duration is not None and first is not None:
                    keep = chunk.timestamps < first + duration
                    if not keep.all():
                        chunk.timestamps, chunk.samples = chunk.timestamps[keep], chunk.samples[keep]
                        done = True
                if len(chunk):
                    outlet.push(chunk)
                    last = float(chunk.timestamps[-1])
                if done:
                    break
            if local_clock() > next_report:
                say(f"  {outlet.samples_pushed} frames, status {dict(source.status_counts)}")
                next_report += 5.0
        if source.reader.truncated and source.exhausted:
            warn(source.reader.truncation_message())
        if outlet.have_consumers():
            time.sleep(linger)  # liblsl sends asynchronously: let inlets take the tail
        return {
            "samples": outlet.samples_pushed,
            "status_counts": dict(source.status_counts),
            "first_time": first,
            "last_time": last,
            "truncated": source.reader.truncated,
        }
