"""A :class:`~physioaffect.sources.base.Source` that turns video frames
(:mod:`physioaffect.face.video`) into a ``Face`` feature stream
(:mod:`physioaffect.face.analysis`).

``Frame``, ``FrameReader`` and ``fill_gaps`` live in :mod:`physioaffect.face.video` and are
re-exported here for code that imported them from this module.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np

from physioaffect.face.analysis import FaceAnalyzer, face_stream_info
from physioaffect.face.landmarks import FaceExtraError
from physioaffect.face.video import (  # noqa: F401  (re-exported)
    CAMERA_MAX_FAILURES,
    Frame,
    FrameReader,
    fill_gaps,
    parse_target,
)
from physioaffect.sources.base import Source, SourceError, SourceSpec, SourceSpecError
from physioaffect.streams import Chunk


class VideoSource(Source):
    """A ``Face`` feature stream from a video file or camera.

    Frames are read and analysed on a worker thread (so a camera is drained even while the
    consumer is busy); :meth:`read` returns the rows analysed since the last call.

    Parameters
    ----------
    path_or_index : str, Path or int
        Video file or camera index.
    start_time : float, optional
        LSL time of a file's first frame (see :class:`FrameReader`).
    name : str
        Stream name.
    realtime : bool, optional
        Play files at their own pace (default: True for cameras, False for files).
    detector : str
        ``"auto"``, ``"facemesh"`` or ``"haar"`` (see :class:`FaceAnalyzer`).

    Attributes
    ----------
    exhausted : bool
        True once a file has been read to its end and every row handed out.
    status_counts : dict
        Frames per status so far.
    """

    description = "video"

    def __init__(
        self,
        path_or_index: str | Path | int,
        start_time: float | None = None,
        name: str = "face",
        realtime: bool | None = None,
        detector: str = "auto",
    ) -> None:
        super().__init__()
        is_camera, _ = parse_target(path_or_index)
        self.reader = FrameReader(
            path_or_index, start_time=start_time, realtime=bool(is_camera if realtime is None else realtime)
        )
        self.description = self.reader.label
        self.name = name
        self.detector = detector
        self.status_counts: dict[str, int] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=0 if is_camera else 256)
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._error: BaseException | None = None
        self._done = threading.Event()
        self.analyzer = None

    @classmethod
    def from_spec(cls, spec: SourceSpec) -> VideoSource:
        """``video:FILE`` or ``video:N`` (camera) with ``?start_time=T&name=S&realtime=0|1&detector=D``."""
        spec.check_known({"start_time", "name", "realtime", "detector"})
        if not spec.target:
            raise SourceSpecError(f"source {spec.text!r}: give a video file or camera index, e.g. video:0")
        start = spec.param("start_time")
        realtime = spec.param("realtime")
        return cls(
            spec.target,
            start_time=None if start is None else spec.float_param("start_time", 0.0),
            name=spec.param("name", "face") or "face",
            realtime=None if realtime is None else realtime.lower() in ("1", "true", "yes"),
            detector=spec.param("detector", "auto") or "auto",
        )

    @property
    def exhausted(self) -> bool:
        # an error still to be raised by read() keeps the source "not exhausted"
        return self._done.is_set() and self._queue.empty() and self._error is None

    def _start(self) -> None:
        try:
            # models first: loading them must not eat into real-time playback
            self.analyzer = FaceAnalyzer(detector=self.detector)
            self.reader.open()
        except FaceExtraError as err:
            self.reader.close()
            raise SourceError(f"{self.description}: {err}") from err
        device = {
            "manufacturer": "OpenCV",
            "model": "camera" if self.reader.is_camera else "video file",
            "serial": self.reader.target,
            "detector": self.analyzer.detector,
            "frame_size": "x".join(map(str, self.reader.frame_size)),
        }
        self.streams = [
            face_stream_info(self.name, self.reader.fps, source_id=f"video:{self.reader.target}", device=device)
        ]
        self._stop_event.clear()
        self._done.clear()
        self._thread = threading.Thread(target=self._run, name="physioaffect-video", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        fa = self.analyzer
        try:
            for frame in self.reader:
                if self._stop_event.is_set():
                    break
                if frame.image is None:
                    res = fa.missing(frame.timestamp, frame.status)
                else:
                    res = fa.process(frame.image, frame.timestamp)
                while not self._stop_event.is_set():
                    try:
                        self._queue.put((res.timestamp, res.values), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                self.status_counts[res.status] = self.status_counts.get(res.status, 0) + 1
        except BaseException as err:  # noqa: BLE001 - re-raised on the reading thread
            self._error = err
        finally:
            self._done.set()

    def _read(self, timeout: float) -> list[Chunk]:
        items = []
        try:
            items.append(self._queue.get(timeout=timeout))
        except queue.Empty:
            pass
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if not items and self._error is not None:
            err, self._error = self._error, None
            if isinstance(err, SourceError):
                raise err
            raise SourceError(f"{self.description}: {err}") from err
        if not items:
            return []
        ts = np.array([t for t, _ in items])
        samples = np.stack([v for _, v in items]).astype(np.float32)
        return [Chunk(self.name, ts, samples)]

    def _stop(self) -> None:
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None
        self.reader.close()
        if self.analyzer is not None:
            self.analyzer.close()
