"""Per-frame face analysis: one row of features per video frame, with a status saying why a
row is NaN.

:class:`FaceAnalyzer` keeps what spans frames (tracking, the previous frame for motion, the rPPG
history) and turns each frame into a row of :data:`FEATURE_CHANNELS`. :func:`analyze_video`
runs it over a whole file, NeuroKit2 style (``-> table, info``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physioaffect.face.errors import FaceError
from physioaffect.face.features import (
    HeadPose,
    aligned_points,
    box_skin_polygons,
    expression,
    skin_polygons,
    skin_sample,
)
from physioaffect.face.landmarks import (
    CascadeDetector,
    Face,
    FaceExtraError,
    MeshDetector,
    import_cv2,
)
from physioaffect.face.rppg import PulseEstimate, PulseTracker
from physioaffect.face.video import FrameReader
from physioaffect.log import progress_enabled, verbose
from physioaffect.streams.face_layout import (  # noqa: F401  (re-exported: the face API)
    EXPRESSION_LABELS,
    FEATURE_CHANNELS,
    FEATURE_LABELS,
    PULSE_REASON_CODES,
    PULSE_REASON_NAMES,
    STATUS_CODES,
    STATUS_NAMES,
    face_stream_info,
)

_COL = {label: i for i, label in enumerate(FEATURE_LABELS)}


@dataclass
class FrameResult:
    """Features of one frame.

    Attributes
    ----------
    timestamp : float
        LSL-clock seconds.
    values : ndarray, shape (n_channels,)
        In :data:`FEATURE_LABELS` order; NaN where not measurable.
    status : str
        A key of :data:`STATUS_CODES`.
    face : Face or None
        The face the features describe.
    pulse : PulseEstimate or None
        The camera pulse of this frame, with the reason in words (``pulse.detail``) when its
        rate is NaN.
    """

    timestamp: float
    values: np.ndarray
    status: str
    face: Face | None = None
    pulse: PulseEstimate | None = None

    def __getitem__(self, label: str) -> float:
        return float(self.values[_COL[label]])


class FaceAnalyzer:
    """Turn frames into rows of face features.

    Parameters
    ----------
    detector : {"auto", "facemesh", "haar"}
        ``auto`` uses FaceMesh when MediaPipe is installed, else the Haar cascade. With
        FaceMesh, frames where it finds nothing are tried with the cascade (box-only rows).
    max_faces : int
        Faces FaceMesh tracks at once (to notice and report several people).
    pulse : PulseTracker, optional
        rPPG settings (method, window, gates); a default one (POS, 10 s window, first rate
        after 6 s) if None.
    static : bool
        Detect afresh on every frame (unrelated still images) instead of tracking a video.
    """

    def __init__(
        self,
        detector: str = "auto",
        max_faces: int = 3,
        pulse: PulseTracker | None = None,
        static: bool = False,
    ) -> None:
        self._cv2 = import_cv2()
        self._mesh: MeshDetector | None = None
        if detector in ("auto", "facemesh"):
            try:
                self._mesh = MeshDetector(max_faces=max_faces, static=static)
            except FaceExtraError:
                if detector == "facemesh":
                    raise
        elif detector != "haar":
            raise FaceError(f"detector must be 'auto', 'facemesh' or 'haar', got {detector!r}")
        self._haar = CascadeDetector()
        self.detector = self._mesh.name if self._mesh is not None else self._haar.name
        self.pulse = pulse if pulse is not None else PulseTracker()
        self._pose = HeadPose()
        self._prev_grey: np.ndarray | None = None
        self._prev_lm: tuple[float, np.ndarray] | None = None  # (time, landmarks / iod)

    labels = FEATURE_LABELS

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()

    def __enter__(self) -> FaceAnalyzer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _empty(self, timestamp: float, status: str) -> FrameResult:
        values = np.full(len(FEATURE_LABELS), np.nan)
        values[_COL["status"]] = STATUS_CODES[status]
        values[_COL["pulse_reason"]] = PULSE_REASON_CODES["face_lost"]
        return FrameResult(timestamp, values, status)

    def missing(self, timestamp: float, status: str = "dropped") -> FrameResult:
        """A NaN row for a frame that is not there (``dropped`` or ``unreadable``).

        Motion, landmark speed and head-pose tracking restart after it. The rPPG history
        restarts when the hole is longer than the tracker's ``max_gap`` (0.25 s); shorter
        holes are bridged inside the pulse window only, and no row is given a value
        (``pulse_reason`` ``face_lost``).
        """
        self._prev_grey = None
        self._prev_lm = None
        self._pose.reset()
        res = self._empty(timestamp, status)
        res.values[_COL["n_faces"]] = np.nan
        return res

    def process(self, frame_bgr: np.ndarray, timestamp: float) -> FrameResult:
        """Analyse one frame.

        Parameters
        ----------
        frame_bgr : ndarray, shape (height, width, 3), uint8
            BGR, as OpenCV decodes it.
        timestamp : float
            LSL-clock seconds of the frame.

        Returns
        -------
        FrameResult
        """
        cv2 = self._cv2
        if frame_bgr is None or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            shape = None if frame_bgr is None else frame_bgr.shape
            raise FaceError(f"FaceAnalyzer.process: expected a BGR image (h, w, 3), got shape {shape}")
        h, w = frame_bgr.shape[:2]
        grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        faces = self._mesh.detect(frame_bgr) if self._mesh is not None else []
        if not faces:
            faces = self._haar.detect(frame_bgr)
        prev_grey, self._prev_grey = self._prev_grey, grey
        if not faces:
            self._prev_lm = None
            self._pose.reset()
            res = self._empty(timestamp, "no_face")
            res.pulse = self.pulse.update(timestamp, None)
            res.values[_COL["n_faces"]] = 0
            return res

        face = faces[0]  # detectors sort largest first
        if face.landmarks is None:
            status = "box_only"
        else:
            status = "several_faces" if len(faces) > 1 else "ok"
        res = self._empty(timestamp, status)
        v = res.values
        res.face = face
        v[_COL["n_faces"]] = len(faces)
        v[_COL["face_x"] : _COL["face_h"] + 1] = face.box

        x, y, bw, bh = np.round(face.box).astype(int)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + bw, w), min(y + bh, h)
        if prev_grey is not None and x1 > x0 and y1 > y0:
            diff = cv2.absdiff(grey[y0:y1, x0:x1], prev_grey[y0:y1, x0:x1])
            v[_COL["motion_energy"]] = float(diff.mean())

        if face.landmarks is not None:
            lm = face.landmarks
            v[_COL[EXPRESSION_LABELS[0]] : _COL[EXPRESSION_LABELS[-1]] + 1] = expression(lm)
            v[_COL["head_yaw"] : _COL["head_roll"] + 1] = self._pose(lm, (w, h))
            _, iod = aligned_points(lm)
            # landmark speed in inter-ocular distances per second, on un-rotated pixels / iod
            scaled = lm[:, :2] / iod
            if self._prev_lm is not None and timestamp > self._prev_lm[0]:
                t_prev, prev = self._prev_lm
                v[_COL["landmark_speed"]] = float(
                    np.linalg.norm(scaled - prev, axis=1).mean() / (timestamp - t_prev)
                )
            self._prev_lm = (timestamp, scaled)
            polys = skin_polygons(lm)
        else:
            self._prev_lm = None
            self._pose.reset()
            polys = box_skin_polygons(face.box)

        est = self.pulse.update(timestamp, skin_sample(frame_bgr, polys, grey))
        res.pulse = est
        v[_COL["rppg"]], v[_COL["pulse_rate"]], v[_COL["pulse_snr"]] = est.rppg, est.rate, est.snr
        v[_COL["pulse_reason"]] = est.reason_code
        return res


@verbose
def analyze_video(
    path: str | Path,
    start_time: float = 0.0,
    detector: str = "auto",
    max_frames: int | None = None,
    progress: bool = False,
    pulse: PulseTracker | None = None,
    *,
    verbose: bool | str | int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Face features of every frame of a video file.

    Parameters
    ----------
    path : str or Path
        Video file (anything OpenCV's FFmpeg backend reads).
    start_time : float
        Time of the first frame in seconds (e.g. the LSL time of a trial's onset); frame
        times are ``start_time`` plus the container's timestamps.
    detector : str
        See :class:`FaceAnalyzer`.
    pulse : PulseTracker, optional
        rPPG settings (e.g. ``PulseTracker(method="chrom")``); default POS.
    max_frames : int, optional
        Stop after this many frames.
    progress : bool
        Show a progress bar (tqdm) on stderr.
    verbose : bool, str, int or None
        Level of the package logger for this call (:func:`physioaffect.set_log_level`); the
        progress bar is drawn only when INFO messages are shown.

    Returns
    -------
    table : pandas.DataFrame
        One row per frame (dropped frames included, NaN), columns ``time`` (s) then
        :data:`FEATURE_LABELS`, plus ``status_name`` (``pulse_reason`` codes are named in
        :data:`PULSE_REASON_NAMES`).
    info : dict
        ``path``, ``fps``, ``n_frames``, ``frames_declared``, ``truncated``, ``frame_size``,
        ``detector``, ``status_counts``. A file that ends before its declared frame count also
        raises a ``RuntimeWarning`` naming it.
    """
    import pandas as pd
    from tqdm import tqdm

    rows: list[np.ndarray] = []
    times: list[float] = []
    statuses: list[str] = []
    with FrameReader(path, start_time=start_time) as reader, FaceAnalyzer(detector=detector, pulse=pulse) as fa:
        bar = tqdm(
            total=reader.n_frames_declared or None, desc=Path(path).name, unit="frame",
            disable=not progress_enabled(progress),
        )
        for frame in reader:
            bar.update(1)
            res = fa.missing(frame.timestamp, frame.status) if frame.image is None else fa.process(
                frame.image, frame.timestamp
            )
            rows.append(res.values)
            times.append(res.timestamp)
            statuses.append(res.status)
            if max_frames is not None and len(rows) >= max_frames:
                break
        bar.close()
        if reader.truncated and (max_frames is None or len(rows) < max_frames):
            warnings.warn(reader.truncation_message(), RuntimeWarning, stacklevel=2)
        info = {
            "path": str(path),
            "fps": reader.fps,
            "frames_declared": reader.n_frames_declared,
            "truncated": bool(reader.truncated),
            "frame_size": reader.frame_size,
            "detector": fa.detector,
        }
    table = pd.DataFrame(np.array(rows).reshape(-1, len(FEATURE_LABELS)), columns=list(FEATURE_LABELS))
    table.insert(0, "time", times)
    table["status_name"] = statuses
    info["n_frames"] = len(rows)
    info["status_counts"] = {k: statuses.count(k) for k in STATUS_CODES if k in statuses}
    return table, info
