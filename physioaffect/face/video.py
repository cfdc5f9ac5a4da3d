"""Video in: frames from a file or a camera, each stamped on the LSL clock.

Timing
------
- Files: frame time = ``start_time`` + the container's presentation time of the frame
  (``CAP_PROP_POS_MSEC``), so a recording whose first frame is known to coincide with a trial
  onset lines up with the physiology of that trial. ``start_time`` defaults to the LSL time
  at which the first frame is read.
- Cameras: frame time = LSL time right after ``grab()`` returns (before decoding).

Frames that never arrived (a gap in the timestamps longer than 1.5 frame periods) come out as
frames without an image and status ``dropped``; frames that cannot be decoded from a camera
come out with status ``unreadable``. Nothing is filled in.

:mod:`physioaffect.face.analysis` reads frames from here and :mod:`physioaffect.face.source`
builds the ``Face`` stream on both, so the imports go one way: video <- analysis <- source.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from physioaffect.face.landmarks import import_cv2
from physioaffect.sources.base import SourceError
from physioaffect.streams import local_clock

#: Consecutive camera read failures after which the camera counts as gone.
CAMERA_MAX_FAILURES = 30


@dataclass
class Frame:
    """One video frame.

    Attributes
    ----------
    index : int
        Position in the sequence, counting dropped frames.
    timestamp : float
        LSL-clock seconds.
    image : ndarray, shape (height, width, 3), uint8, or None
        BGR image; None for a frame that is ``dropped`` or ``unreadable``.
    status : str
        ``"ok"``, ``"dropped"`` or ``"unreadable"``.
    """

    index: int
    timestamp: float
    image: np.ndarray | None
    status: str = "ok"


def fill_gaps(
    frames: Iterable[tuple[float, np.ndarray | None]], fps: float, start_index: int = 0
) -> Iterator[Frame]:
    """Number timestamped images and insert ``dropped`` frames where timestamps jump.

    Parameters
    ----------
    frames : iterable of (float, ndarray or None)
        Timestamp (s) and BGR image; None for a frame that arrived but could not be decoded.
    fps : float
        Nominal frame rate in Hz; a step longer than 1.5 periods means
        ``round(step * fps) - 1`` frames were lost.
    start_index : int
        Index of the first frame.

    Yields
    ------
    Frame
        Dropped frames carry evenly spaced timestamps inside the gap and no image.
    """
    index = start_index
    last_t: float | None = None
    period = 1.0 / fps if fps > 0 else 0.0
    for t, image in frames:
        if last_t is not None and period > 0 and t - last_t > 1.5 * period:
            n_lost = int(round((t - last_t) * fps)) - 1
            step = (t - last_t) / (n_lost + 1)
            for k in range(1, n_lost + 1):
                yield Frame(index, last_t + k * step, None, "dropped")
                index += 1
        yield Frame(index, float(t), image, "ok" if image is not None else "unreadable")
        index += 1
        last_t = float(t)


class FrameReader:
    """Frames of a video file or camera with LSL timestamps (iterate over it).

    Parameters
    ----------
    path_or_index : str, Path or int
        A video file, or a camera index (an int, or a string of digits).
    start_time : float, optional
        LSL time of the first frame of a file (s); default: the time the first frame is
        handed out. Ignored for cameras (they are stamped live).
    realtime : bool
        For files: hand out each frame no earlier than its timestamp (plays the file like a
        camera). Cameras are always real time.

    Raises
    ------
    SourceError
        The file does not exist, cannot be decoded, or the camera cannot be opened.
    """

    def __init__(
        self,
        path_or_index: str | Path | int,
        start_time: float | None = None,
        realtime: bool = False,
    ) -> None:
        self._cv2 = import_cv2()
        self.is_camera, self.target = parse_target(path_or_index)
        self.start_time = start_time
        self.realtime = bool(realtime)
        self._cap = None
        self.fps = float("nan")
        self.frame_size = (0, 0)
        self.n_frames_declared = 0
        self.frames_decoded = 0
        self._first: np.ndarray | None = None

    @property
    def truncated(self) -> bool:
        """True when a file ended before the frame count its container declares (a cut or
        damaged file: FFmpeg stops at the first undecodable point)."""
        return (
            not self.is_camera
            and self.n_frames_declared > 0
            and self.frames_decoded < self.n_frames_declared - 1
        )

    def truncation_message(self) -> str:
        return (
            f"video file {self.target} ended after {self.frames_decoded} of the "
            f"{self.n_frames_declared} frames its container declares (cut or damaged file)"
        )

    @property
    def label(self) -> str:
        return f"camera {self.target}" if self.is_camera else f"video file {self.target}"

    def open(self) -> FrameReader:
        cv2 = self._cv2
        if self.is_camera:
            cap = cv2.VideoCapture(int(self.target))
            if not cap.isOpened():
                cap.release()
                raise SourceError(
                    f"camera {self.target} is not available (OpenCV could not open it; is it "
                    "connected, and not in use by another program?)"
                )
        else:
            path = Path(self.target)
            if not path.is_file():
                raise SourceError(f"video file {path} does not exist")
            cap = cv2.VideoCapture(str(path))
            if not cap.isOpened():
                cap.release()
                raise SourceError(
                    f"video file {path}: cannot be opened as a video (corrupt, or a format "
                    "OpenCV's FFmpeg backend does not read)"
                )
            ok, first = cap.read()
            if not ok or first is None:
                cap.release()
                raise SourceError(f"video file {path}: no decodable frame (corrupt or empty video)")
            self._first = first
        self._cap = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if np.isfinite(fps) and 0 < fps < 1000 else 30.0
        self.frame_size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.n_frames_declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        return self

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> FrameReader:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        if self._cap is None:
            self.open()
        raw = self._camera_frames() if self.is_camera else self._file_frames()
        return fill_gaps(raw, self.fps)

    def _file_frames(self) -> Iterator[tuple[float, np.ndarray]]:
        cv2, cap = self._cv2, self._cap
        if self.start_time is None:
            self.start_time = local_clock()  # playback starts now
        t0_container: float | None = None
        n = 0
        while cap is not None:
            if self._first is not None:
                ok, img = True, self._first
                self._first = None
            else:
                ok, img = cap.read()
            if not ok or img is None:
                return  # end of file (FFmpeg also ends here on a truncated stream)
            pos = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if t0_container is None:
                t0_container = pos
            # container timestamps relative to the first frame; index/fps if a backend gives none
            rel = pos - t0_container if (n == 0 or pos > 0) else n / self.fps
            t = self.start_time + rel
            n += 1
            self.frames_decoded = n
            if self.realtime:
                wait = t - local_clock()
                if wait > 0:
                    time.sleep(wait)
            yield t, img

    def _camera_frames(self) -> Iterator[tuple[float, np.ndarray | None]]:
        cap = self._cap
        failures = 0
        while cap is not None:
            grabbed = cap.grab()
            t = local_clock()
            ok, img = cap.retrieve() if grabbed else (False, None)
            if not ok or img is None:
                failures += 1
                if failures >= CAMERA_MAX_FAILURES:
                    raise SourceError(
                        f"camera {self.target} stopped delivering frames "
                        f"({failures} failed reads in a row)"
                    )
                if not grabbed:
                    time.sleep(0.5 / self.fps)
                    continue  # nothing arrived: the next good frame's time gap marks it dropped
                yield t, None
                continue
            failures = 0
            self.frames_decoded += 1
            yield t, img


def decode_frames(path: str | Path) -> list[np.ndarray]:
    """Every decodable frame of a video file, in order (BGR, as OpenCV decodes them), without
    timestamps or gap handling: for offline analyses that want the images only."""
    cv2 = import_cv2()
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    return frames


def parse_target(path_or_index: str | Path | int) -> tuple[bool, str]:
    """``(is_camera, target)``: an int or a string of digits is a camera index, else a file."""
    if isinstance(path_or_index, (int, np.integer)):
        return True, str(int(path_or_index))
    text = str(path_or_index)
    if text.isdigit():
        return True, text
    return False, text
