"""A face video with a known pulse: the ground truth the rPPG tests and benchmark check against.

A real photograph (``skimage.data.astronaut()``, a public-domain NASA portrait) is animated with
small head motions (translation, rotation, scale), a slow illumination drift and sensor noise,
and the skin is tinted at a known pulse rate with the blood-volume colour signature of skin
(the pulsatile change is strongest in green; de Haan & van Leest 2014). Everything here is
deterministic for a given seed, so a test can rebuild exactly the video it expects.

:func:`degraded_set` builds the videos the camera pulse is validated on, degraded the way real
ones are: small skin regions (a face about 25 x 25 px of skin), heavy compression (MJPEG at low
quality; MPEG-4 Part 2 stands in for H.264, which the opencv-python wheels cannot encode),
sensor noise, low light, slow illumination drift, head motion, and videos with no pulse at
all. :meth:`SyntheticFaceVideo.skin_means` reads the mean skin colour back through a tracker
that knows where the face is (one frame late), so the validation measures the pulse estimator,
not the face detector (which does not find faces that small).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Relative pulsatile amplitude per colour channel for skin (R, G, B), green = 1.
_PBV_RGB = np.array([0.33, 0.77, 0.53]) / 0.77

# Where the face is in the 512 x 512 astronaut image (pixel centre, semi-axes), measured once
# from the FaceMesh landmarks of the photograph.
_FACE_CENTRE = (225.0, 125.0)
_FACE_AXES = (48.0, 62.0)


def _require_face_extra() -> None:
    try:
        import cv2  # noqa: F401
        import skimage  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "the synthetic face video needs the 'face' extra: pip install 'physioaffect[face]' "
            f"({err})"
        ) from err


def astronaut_bgr() -> np.ndarray:
    """The astronaut photograph as a BGR uint8 image, shape (512, 512, 3)."""
    _require_face_extra()
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def skin_mask(image_bgr: np.ndarray) -> np.ndarray:
    """Soft mask (0-1, float32, shape (h, w)) of facial skin in the astronaut photograph.

    Skin-coloured pixels (YCrCb thresholds of Chai & Ngan 1999) inside an ellipse around the
    face, blurred so the pulse has no hard edge.
    """
    import cv2

    ycrcb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2YCrCb)
    skin = cv2.inRange(ycrcb, (0, 133, 77), (255, 173, 127)).astype(np.float32) / 255.0
    ellipse = np.zeros(image_bgr.shape[:2], np.float32)
    cx, cy = _FACE_CENTRE
    cv2.ellipse(ellipse, (int(cx), int(cy)), (int(_FACE_AXES[0]), int(_FACE_AXES[1])), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(skin * ellipse, (7, 7), 2.0)


@dataclass
class SyntheticFaceVideo:
    """Parameters and ground truth of an animated astronaut video.

    Parameters
    ----------
    pulse_bpm : float
        True pulse rate in beats per minute.
    duration : float
        Seconds.
    fps : float
        Frames per second.
    size : (int, int)
        Frame (width, height) in pixels.
    pulse_amplitude : float
        Relative change of the green channel of skin per beat (real skin: ~0.5-2 %).
    motion_px : float
        Peak head translation in pixels.
    motion_deg : float
        Peak head rotation in degrees.
    noise_std : float
        Gaussian sensor noise, grey levels.
    face_scale : float
        Scale of the photograph in the frame (1 = face about 100 px wide).
    no_face : list of (float, float)
        Time intervals (s) where the face is covered (frames show only a grey wall).
    seed : int
        Noise seed.
    brightness : float
        Scene illumination (1 = as photographed; 0.25 = low light: a quarter of the grey levels
        for the same sensor noise).
    drift : float
        Relative amplitude of the slow illumination drift.
    drift_hz : float
        Frequency of the drift, Hz.
    """

    pulse_bpm: float = 72.0
    duration: float = 10.0
    fps: float = 30.0
    size: tuple[int, int] = (640, 480)
    pulse_amplitude: float = 0.015
    motion_px: float = 4.0
    motion_deg: float = 2.0
    noise_std: float = 2.0
    face_scale: float = 1.4
    no_face: list[tuple[float, float]] = field(default_factory=list)
    seed: int = 0
    brightness: float = 1.0
    drift: float = 0.02
    drift_hz: float = 0.05

    @property
    def n_frames(self) -> int:
        return int(round(self.duration * self.fps))

    @property
    def times(self) -> np.ndarray:
        """Frame times in seconds from the first frame, shape (n_frames,)."""
        return np.arange(self.n_frames) / self.fps

    def face_present(self) -> np.ndarray:
        """Boolean per frame: is the face visible (not inside a ``no_face`` interval)."""
        t = self.times
        present = np.ones(t.shape, bool)
        for t0, t1 in self.no_face:
            present &= ~((t >= t0) & (t < t1))
        return present

    def pulse_wave(self, t: np.ndarray) -> np.ndarray:
        """Unit-amplitude pulse waveform at times ``t`` (s): fundamental plus a weaker harmonic,
        like a PPG's systolic peak and dicrotic shoulder."""
        phase = 2 * np.pi * self.pulse_bpm / 60.0 * np.asarray(t)
        return (np.sin(phase) + 0.25 * np.sin(2 * phase + 0.8)) / 1.25

    def pose(self, t: float) -> tuple[float, float, float, float]:
        """(dx, dy, angle_deg, scale) at time t: incommensurate slow sways below 0.4 Hz."""
        dx = self.motion_px * (0.7 * np.sin(2 * np.pi * 0.17 * t) + 0.3 * np.sin(2 * np.pi * 0.37 * t + 1.0))
        dy = self.motion_px * (0.6 * np.sin(2 * np.pi * 0.23 * t + 0.5) + 0.4 * np.sin(2 * np.pi * 0.11 * t))
        ang = self.motion_deg * np.sin(2 * np.pi * 0.13 * t + 2.0)
        scale = 1.0 + 0.01 * np.sin(2 * np.pi * 0.07 * t)
        return float(dx), float(dy), float(ang), float(scale)

    def affine(self, t: float) -> np.ndarray:
        """The 2 x 3 matrix mapping photograph pixels to frame pixels at time ``t`` (s).

        The face centre sits at 50 % of the width and 42 % of the height, then sways.
        """
        import cv2

        dx, dy, ang, scale = self.pose(t)
        cx, cy = _FACE_CENTRE
        m = cv2.getRotationMatrix2D((cx, cy), ang, self.face_scale * scale)
        m[0, 2] += self.size[0] * 0.5 - cx + dx
        m[1, 2] += self.size[1] * 0.42 - cy + dy
        return m

    def frames(self) -> Iterator[np.ndarray]:
        """Yield the frames, BGR uint8, shape (height, width, 3).

        Deterministic for a given ``seed`` when one video is generated at a time.
        """
        import cv2

        src = astronaut_bgr().astype(np.float32)
        mask = skin_mask(astronaut_bgr())[:, :, None]
        tint = mask * _PBV_RGB[::-1].astype(np.float32)[None, None, :]  # BGR order
        width, height = self.size
        # OpenCV's generator is 5x faster than numpy's here, where noise dominates the cost;
        # it is process-global, so two videos generated interleaved differ from one at a time
        cv2.setRNGSeed(int(self.seed))
        noise = np.empty((height, width * 3), np.float32)
        wall = np.full((height, width, 3), 118.0, np.float32)
        present = self.face_present()
        for i, t in enumerate(self.times):
            light = self.brightness * (1.0 + self.drift * np.sin(2 * np.pi * self.drift_hz * t))
            if present[i]:
                pulsed = src * (1.0 + self.pulse_amplitude * float(self.pulse_wave(t)) * tint)
                frame = cv2.warpAffine(
                    pulsed, self.affine(t), (width, height), flags=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=(118, 118, 118),
                )
            else:
                frame = wall.copy()
            frame *= light
            cv2.randn(noise, 0.0, float(self.noise_std))
            frame += noise.reshape(height, width, 3)
            yield np.clip(frame + 0.5, 0, 255).astype(np.uint8)

    def write(self, path: str | Path, fourcc: str = "MJPG", quality: int | None = None) -> Path:
        """Write the video to ``path`` and return the path.

        Parameters
        ----------
        fourcc : str
            Codec: ``"MJPG"`` (``.avi``) or another FFmpeg codec OpenCV can write (``"mp4v"``).
        quality : int, optional
            JPEG quality 1-100 for MJPEG (OpenCV's own MJPEG writer); None: OpenCV's default
            (95).
        """
        import cv2

        path = Path(path)
        if fourcc == "MJPG" and quality is not None:
            writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG,
                                     cv2.VideoWriter_fourcc(*fourcc), self.fps, self.size)
            if writer.isOpened() and not writer.set(cv2.VIDEOWRITER_PROP_QUALITY, int(quality)):
                writer.release()
                raise OSError(f"{path}: OpenCV's MJPEG writer refused quality {quality}")
        else:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), self.fps,
                                     self.size)
        if not writer.isOpened():
            raise OSError(f"{path}: OpenCV cannot write video with codec {fourcc!r}")
        try:
            for frame in self.frames():
                writer.write(frame)
        finally:
            writer.release()
        return path

    def skin_masks(self, part: int | None = None) -> Iterator[np.ndarray]:
        """The soft skin mask (float32, frame size) of every frame, where the face is then.

        ``part`` 0, 1 or 2 keeps only the upper face (forehead and eyes), the image-left or the
        image-right lower face (a cheek each), as the forehead and cheek polygons of the face
        analysis split the skin; None keeps all of it.
        """
        import cv2

        mask = skin_mask(astronaut_bgr())
        if part is not None:
            cx, cy = _FACE_CENTRE
            yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
            upper = yy < cy - 0.1 * _FACE_AXES[1]
            keep = (upper, ~upper & (xx < cx), ~upper & (xx >= cx))[part]
            mask = mask * keep.astype(np.float32)
        width, height = self.size
        for t in self.times:
            yield cv2.warpAffine(mask, self.affine(t), (width, height), flags=cv2.INTER_LINEAR)

    def skin_side_px(self) -> float:
        """Side (px) of the square with the area of the skin region in a frame."""
        return float(np.sqrt(next(self.skin_masks()).sum()))

    def skin_means(self, frames: Iterator[np.ndarray], lag: int = 1, parts: bool = False) -> np.ndarray:
        """Mean skin colour (R, G, B) of each frame, the region placed where the face was
        ``lag`` frames earlier (a tracker that knows the face, one frame late).

        Parameters
        ----------
        frames : iterable of ndarray
            The video's frames (BGR), e.g. read back from its file.
        lag : int
            Frames by which the region lags the face.
        parts : bool
            Also the mean colour of each part of the skin (:meth:`skin_masks` ``part``).

        Returns
        -------
        ndarray, shape (n_frames, 3), or (n_frames, 4, 3) with ``parts``
            NaN for frames where the face is covered; with ``parts``, ``[:, 0]`` is the whole
            skin and ``[:, 1:]`` the upper face and the two cheeks.
        """
        mask_sets = [list(self.skin_masks())]
        if parts:
            mask_sets += [list(self.skin_masks(k)) for k in range(3)]
        present = self.face_present()
        n = len(mask_sets[0])
        out = np.full((n, len(mask_sets), 3), np.nan)
        for i, frame in enumerate(frames):
            if i >= n:
                break
            if not present[i]:
                continue
            img = frame.astype(np.float32)
            for j, masks in enumerate(mask_sets):
                m = masks[max(i - lag, 0)]
                total = float(m.sum())
                if total > 0:
                    out[i, j] = (np.tensordot(m, img, axes=([0, 1], [0, 1])) / total)[::-1]
        return out if parts else out[:, 0]


@dataclass
class DegradedCase:
    """One video of the degraded set: its name, generator and how it is stored."""

    name: str
    video: SyntheticFaceVideo
    fourcc: str | None = None  # None: frames used as generated (no codec)
    quality: int | None = None
    has_pulse: bool = True


def degraded_set(
    rates: tuple[float, ...] = (58.0, 76.0, 97.0), duration: float = 20.0, fps: float = 30.0,
    size: tuple[int, int] = (320, 240),
) -> list[DegradedCase]:
    """Face videos degraded as real ones are, each at every rate in ``rates``.

    Conditions (the pulse is a realistic 0.5 % green change, not the 1.5 % of the default):
    ``clean`` (a large face, 1 grey level of noise, no codec); ``small`` (the face's skin about
    25 x 25 px); ``mjpeg_q20`` and ``mjpeg_q5`` (small face, MJPEG at JPEG quality 20 and 5);
    ``mpeg4`` (small face, MPEG-4 Part 2 at FFmpeg's default bit rate, inter-frame coding);
    ``noise`` (sensor noise sd 6); ``low_light`` (a quarter of the light, noise sd 3);
    ``drift`` (15 % illumination drift at 0.1 Hz); ``motion`` (15 px / 8 degree sway, small
    face); and ``no_pulse`` (every degradation at once and no pulse at all: any rate reported
    there is wrong).
    """
    small = 0.25 * size[0] / 320  # skin region ~25 x 25 px in a 320 x 240 frame
    base = {"duration": duration, "fps": fps, "size": size, "pulse_amplitude": 0.005,
            "motion_px": 2.0, "motion_deg": 1.0, "noise_std": 1.0}
    conditions = [
        ("clean", {"face_scale": 0.7 * size[0] / 320}, None, None),
        ("small", {"face_scale": small}, None, None),
        ("mjpeg_q20", {"face_scale": small}, "MJPG", 20),
        ("mjpeg_q5", {"face_scale": small}, "MJPG", 5),
        ("mpeg4", {"face_scale": small}, "mp4v", None),
        ("noise", {"face_scale": small, "noise_std": 6.0}, None, None),
        ("low_light", {"face_scale": small, "brightness": 0.25, "noise_std": 3.0}, None, None),
        ("drift", {"face_scale": small, "drift": 0.15, "drift_hz": 0.1}, None, None),
        ("motion", {"face_scale": small, "motion_px": 15.0, "motion_deg": 8.0}, None, None),
    ]
    cases = []
    for bpm in rates:
        seed = int(round(bpm * 100))  # another rate, other noise
        for j, (name, kw, fourcc, quality) in enumerate(conditions):
            video = SyntheticFaceVideo(pulse_bpm=bpm, seed=seed + j, **{**base, **kw})
            cases.append(DegradedCase(name, video, fourcc, quality))
        worst = SyntheticFaceVideo(pulse_bpm=bpm, seed=seed + 99, **{
            **base, "face_scale": small, "pulse_amplitude": 0.0, "noise_std": 3.0,
            "brightness": 0.5, "drift": 0.15, "drift_hz": 0.1, "motion_px": 15.0,
            "motion_deg": 8.0})
        cases.append(DegradedCase("no_pulse", worst, "MJPG", 20, has_pulse=False))
    return cases


def two_faces_image(size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A frame with the astronaut twice: larger on the left, smaller on the right (BGR uint8).

    Returns
    -------
    ndarray, shape (height, width, 3)
        The large face's centre is near (0.3 w, 0.45 h), the small one's near (0.78 w, 0.35 h).
    """
    import cv2

    img = astronaut_bgr()
    width, height = size
    canvas = np.full((height, width, 3), 118, np.uint8)
    cx, cy = _FACE_CENTRE
    for scale, (fx, fy) in ((1.3, (0.3, 0.45)), (0.9, (0.78, 0.35))):
        m = cv2.getRotationMatrix2D((cx, cy), 0.0, scale)
        m[0, 2] += width * fx - cx
        m[1, 2] += height * fy - cy
        face_mask = np.zeros(img.shape[:2], np.uint8)
        cv2.ellipse(face_mask, (int(cx), int(cy)), (95, 110), 0, 0, 360, 255, -1)
        warped = cv2.warpAffine(img, m, (width, height))
        warped_mask = cv2.warpAffine(face_mask, m, (width, height)) > 0
        canvas[warped_mask] = warped[warped_mask]
    return canvas
