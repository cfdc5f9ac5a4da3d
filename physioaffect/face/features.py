"""Facial measures from FaceMesh landmarks: expression, head pose, skin regions.

Every expression measure is a ratio of landmark distances in a face-aligned frame (the eye
line rotated to horizontal), so it does not change with head roll, distance to the camera or
image size. They are proxies of facial action units (FACS; Ekman & Friesen 1978), not a
trained AU classifier:

=================  ===================================================  ==============
measure            definition                                           AU proxy
=================  ===================================================  ==============
eye_open_l/_r      lid gap / eye width                                  AU5 (up), AU43/45 (down)
brow_raise_l/_r    brow-to-eye-centre height / inter-ocular distance    AU1+AU2
brow_furrow        inner-brow distance / inter-ocular distance          AU4 (smaller)
mouth_open         inner-lip gap / mouth width                          AU25/AU26/AU27
mouth_width        lip-corner distance / inter-ocular distance          AU12, AU20
lip_corner_pull    lip-centre minus lip-corner height / inter-ocular    AU12 (+), AU15 (-)
=================  ===================================================  ==============

"l" and "r" are the subject's left and right (MediaPipe's convention).
"""

from __future__ import annotations

import numpy as np

from physioaffect.face.rppg import SkinSample
from physioaffect.streams.face_layout import EXPRESSION_LABELS  # noqa: F401  (re-exported)

# FaceMesh indices (subject's right = image left for a camera facing the person).
R_EYE = {"outer": 33, "inner": 133, "upper": (159, 158, 160), "lower": (145, 144, 153)}
L_EYE = {"outer": 263, "inner": 362, "upper": (386, 385, 387), "lower": (374, 373, 380)}
R_BROW = (70, 63, 105, 66, 107)
L_BROW = (300, 293, 334, 296, 336)
R_BROW_INNER, L_BROW_INNER = 107, 336
MOUTH_R, MOUTH_L = 61, 291
LIP_UPPER_INNER, LIP_LOWER_INNER = 13, 14
LIP_UPPER_OUTER, LIP_LOWER_OUTER = 0, 17
NOSE_TIP, CHIN = 1, 152

#: Skin polygons for rPPG (FaceMesh indices): the forehead from the brows to the mesh's top
#: row, and each cheek from below the eye to the nasolabial fold (mirror-image index pairs).
#: Forehead and cheeks are where the pulse is strongest in face video (Kim, Lee & Sohn 2021,
#: "Assessment of ROI selection for facial video-based rPPG", Sensors 21(23):7923); hair,
#: brows, beard and glare inside them are masked out per frame (:func:`skin_sample`).
SKIN_POLYGONS = (
    (103, 67, 109, 10, 338, 297, 332, 333, 299, 296, 336, 9, 107, 66, 69, 104),
    (116, 117, 118, 119, 100, 36, 205, 187, 123),
    (345, 346, 347, 348, 329, 266, 425, 411, 352),
)
#: A pixel inside the polygons is skin when its grey level is at least this fraction of the
#: region's median (darker: hair, brows, beard, nostrils, deep shadow) and no channel is
#: clipped (at 255 a pixel cannot show the pulse).
SKIN_MIN_RELATIVE_LUMA = 0.6
SKIN_MAX_LEVEL = 250

#: Generic 3-D face (x right, y down, z away from the camera; arbitrary units ~0.3 mm) for
#: the landmarks used in head pose, after the common six-point model.
_POSE_IDX = np.array([NOSE_TIP, CHIN, R_EYE["outer"], L_EYE["outer"], MOUTH_R, MOUTH_L])
_POSE_MODEL = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.0, 330.0, 65.0],
        [-225.0, -170.0, 135.0],
        [225.0, -170.0, 135.0],
        [-150.0, 150.0, 125.0],
        [150.0, 150.0, 125.0],
    ]
)



def aligned_points(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Landmarks rotated so the eye line is horizontal, in units of inter-ocular distance.

    Parameters
    ----------
    landmarks : ndarray, shape (468, 2 or 3)
        Pixels.

    Returns
    -------
    points : ndarray, shape (468, 2)
        Origin at the midpoint between the eyes, x along the eye line (towards the subject's
        left eye), y downwards; 1 = inter-ocular distance.
    iod : float
        Inter-ocular distance (between the eye centres, each the mean of its corners), pixels.
    """
    p = np.asarray(landmarks, dtype=np.float64)[:, :2]
    r_c = (p[R_EYE["outer"]] + p[R_EYE["inner"]]) / 2
    l_c = (p[L_EYE["outer"]] + p[L_EYE["inner"]]) / 2
    axis = l_c - r_c
    iod = float(np.hypot(*axis))
    if iod <= 0:
        return np.full((p.shape[0], 2), np.nan), float("nan")
    ux = axis / iod
    uy = np.array([-ux[1], ux[0]])  # 90 degrees clockwise on screen: "down" the face
    rel = p - (r_c + l_c) / 2
    return np.column_stack([rel @ ux, rel @ uy]) / iod, iod


def expression(landmarks: np.ndarray) -> np.ndarray:
    """The expression measures of :data:`EXPRESSION_LABELS` for one face.

    Parameters
    ----------
    landmarks : ndarray, shape (468, 2 or 3)
        FaceMesh landmarks in pixels.

    Returns
    -------
    ndarray, shape (8,)
        Dimensionless ratios (see the module table).
    """
    q, _ = aligned_points(landmarks)

    def mean_y(idx: tuple[int, ...]) -> float:
        return float(q[list(idx), 1].mean())

    out = np.empty(len(EXPRESSION_LABELS))
    for k, eye in enumerate((L_EYE, R_EYE)):
        width = abs(q[eye["outer"], 0] - q[eye["inner"], 0])
        gap = mean_y(eye["lower"]) - mean_y(eye["upper"])
        out[k] = gap / width if width > 0 else np.nan
    for k, (brow, eye) in enumerate(((L_BROW, L_EYE), (R_BROW, R_EYE))):
        eye_y = (q[eye["outer"], 1] + q[eye["inner"], 1]) / 2
        out[2 + k] = eye_y - mean_y(brow)
    out[4] = abs(q[L_BROW_INNER, 0] - q[R_BROW_INNER, 0])
    mouth_w = abs(q[MOUTH_L, 0] - q[MOUTH_R, 0])
    out[5] = (q[LIP_LOWER_INNER, 1] - q[LIP_UPPER_INNER, 1]) / mouth_w if mouth_w > 0 else np.nan
    out[6] = mouth_w
    lip_centre_y = (q[LIP_UPPER_OUTER, 1] + q[LIP_LOWER_OUTER, 1]) / 2
    out[7] = lip_centre_y - (q[MOUTH_L, 1] + q[MOUTH_R, 1]) / 2
    return out


class HeadPose:
    """Head rotation from six landmarks by ``cv2.solvePnP`` on a generic face model.

    The previous frame's solution seeds the next (faster, and no flips between the two
    mirror solutions).
    """

    def __init__(self) -> None:
        import cv2

        self._cv2 = cv2
        self._rvec: np.ndarray | None = None
        self._tvec: np.ndarray | None = None

    def reset(self) -> None:
        self._rvec = self._tvec = None

    def __call__(self, landmarks: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
        """Yaw, pitch, roll in degrees.

        Parameters
        ----------
        landmarks : ndarray, shape (468, 2 or 3)
            Pixels.
        frame_size : (int, int)
            Frame (width, height); the camera is modelled with focal length = width.

        Returns
        -------
        ndarray, shape (3,)
            ``yaw`` (positive: the face turns towards image left, i.e. the subject's right
            for a camera facing them), ``pitch`` (positive: looking down), ``roll``
            (positive: counter-clockwise on screen); NaN if the fit fails. The generic model
            leaves a person-dependent offset: use changes.
        """
        cv2 = self._cv2
        w, h = frame_size
        cam = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], dtype=np.float64)
        img_pts = np.ascontiguousarray(np.asarray(landmarks)[_POSE_IDX, :2], dtype=np.float64)
        guess = self._rvec is not None
        ok, rvec, tvec = cv2.solvePnP(
            _POSE_MODEL, img_pts, cam, None,
            rvec=self._rvec.copy() if guess else None,
            tvec=self._tvec.copy() if guess else None,
            useExtrinsicGuess=guess, flags=cv2.SOLVEPNP_ITERATIVE,
        )
        if not ok or tvec[2, 0] <= 0:
            self.reset()
            return np.full(3, np.nan)
        self._rvec, self._tvec = rvec, tvec
        rot, _ = cv2.Rodrigues(rvec)
        angles = cv2.RQDecomp3x3(rot)[0]  # degrees about x, y, z
        pitch, yaw, roll = angles
        return np.array([yaw, pitch, -roll])


def skin_polygons(landmarks: np.ndarray) -> list[np.ndarray]:
    """Forehead and cheek polygons (int32 pixel vertices) for rPPG."""
    p = np.asarray(landmarks)[:, :2]
    return [np.round(p[list(poly)]).astype(np.int32) for poly in SKIN_POLYGONS]


def box_skin_polygons(box: np.ndarray) -> list[np.ndarray]:
    """Forehead and cheek rectangles inside a face box ``x, y, w, h`` (for box-only faces).

    Fractions follow the Haar cascade's box, which spans roughly brows to chin.
    """
    x, y, w, h = (float(v) for v in box)
    rects = ((0.30, 0.08, 0.70, 0.22), (0.15, 0.50, 0.38, 0.70), (0.62, 0.50, 0.85, 0.70))
    polys = []
    for x0, y0, x1, y1 in rects:
        xa, xb, ya, yb = x + x0 * w, x + x1 * w, y + y0 * h, y + y1 * h
        polys.append(np.round([[xa, ya], [xb, ya], [xb, yb], [xa, yb]]).astype(np.int32))
    return polys


def skin_sample(
    frame_bgr: np.ndarray, polygons: list[np.ndarray], grey: np.ndarray | None = None,
    min_pixels: int = 20,
) -> SkinSample | None:
    """Mean colour of the skin inside ``polygons`` of one frame, for rPPG.

    Pixels darker than :data:`SKIN_MIN_RELATIVE_LUMA` times the region's median grey level or
    with a channel at :data:`SKIN_MAX_LEVEL` or more are left out, so hair, brows, a beard,
    shadows and glare do not dilute the pulse (a colour-free rule: it does not assume a skin
    tone).

    Parameters
    ----------
    frame_bgr : ndarray, shape (height, width, 3), uint8
        The frame (BGR).
    polygons : list of ndarray, shape (n_vertices, 2), int32
        Skin polygons in pixels (:func:`skin_polygons`, :func:`box_skin_polygons`).
    grey : ndarray, shape (height, width), uint8, optional
        The frame in grey levels, if already computed.
    min_pixels : int
        Fewer skin pixels than this give None.

    Returns
    -------
    SkinSample or None
        R, G, B mean, number of skin pixels, their mean grey level, the polygons' centre
        (pixels) and each polygon's own mean colour (NaN for one with fewer than
        ``min_pixels`` skin pixels); None when the polygons fall outside the frame or hold too
        few skin pixels.
    """
    import cv2

    h, w = frame_bgr.shape[:2]
    allp = np.concatenate(polygons)
    x0, y0 = np.clip(allp.min(axis=0), 0, [w, h])
    x1, y1 = np.clip(allp.max(axis=0) + 1, 0, [w, h])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    roi = frame_bgr[y0:y1, x0:x1]
    g = (grey if grey is not None else cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY))[y0:y1, x0:x1]
    # each polygon its own label (1, 2, ...), so the parts can be averaged on their own too
    labels = np.zeros(roi.shape[:2], np.uint8)
    for k, poly in enumerate(polygons, start=1):
        cv2.fillPoly(labels, [poly - (x0, y0)], k)
    mask = cv2.compare(labels, 0, cv2.CMP_GT)
    if cv2.countNonZero(mask) < min_pixels:
        return None
    hist = cv2.calcHist([g], [0], mask, [256], [0, 256]).ravel()
    median = int(np.searchsorted(np.cumsum(hist), hist.sum() / 2))
    lo = int(np.ceil(SKIN_MIN_RELATIVE_LUMA * median))
    mask &= cv2.inRange(g, lo, 255)
    mask &= cv2.inRange(roi, (0, 0, 0), (SKIN_MAX_LEVEL - 1,) * 3)
    n = cv2.countNonZero(mask)
    if n < min_pixels:
        return None
    b, gg, r, _ = cv2.mean(roi, mask)
    parts = np.full((len(polygons), 3), np.nan)
    for k in range(len(polygons)):
        part = cv2.compare(labels, k + 1, cv2.CMP_EQ) & mask
        if cv2.countNonZero(part) >= min_pixels:
            parts[k] = cv2.mean(roi, part)[2::-1]
    centre = allp.mean(axis=0)
    return SkinSample(np.array([r, gg, b]), pixels=n, luma=float(cv2.mean(g, mask)[0]),
                      centre=(float(centre[0]), float(centre[1])), regions=parts)
