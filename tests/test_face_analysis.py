"""Per-frame face analysis on the real astronaut photograph and the animated video built
from it: landmarks, expression invariance, head roll, several faces, missing faces."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2", reason="needs the 'face' extra: pip install 'physioaffect[face]'")
pytest.importorskip("mediapipe", reason="needs the 'face' extra (mediapipe==0.10.14)")
pytest.importorskip("skimage", reason="needs scikit-image for the astronaut photograph")

import cv2  # noqa: E402

from physioaffect.face.analysis import (  # noqa: E402
    FEATURE_LABELS,
    PULSE_REASON_CODES,
    STATUS_CODES,
    FaceAnalyzer,
)
from physioaffect.face.features import EXPRESSION_LABELS, L_EYE, R_EYE  # noqa: E402
from physioaffect.face.synthetic import (  # noqa: E402
    SyntheticFaceVideo,
    astronaut_bgr,
    two_faces_image,
)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    ix = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    iy = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return astronaut_bgr()


def test_landmarks_on_real_photograph_agree_with_independent_detectors(photo: np.ndarray) -> None:
    with FaceAnalyzer(static=True) as fa:
        res = fa.process(photo, 0.0)
    assert res.status == "ok" and res["n_faces"] == 1
    lm = res.face.landmarks
    assert lm.shape == (468, 3)
    # OpenCV's Haar cascades (a different detector, trained on different data) find the same
    # face and the same eyes
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    faces = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    boxes = faces.detectMultiScale(grey, 1.1, 5, minSize=(60, 60))
    assert len(boxes) >= 1
    haar_box = max(boxes, key=lambda b: b[2] * b[3]).astype(float)
    assert _iou(res.face.box, haar_box) > 0.4
    eyes = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")
    x, y, w, h = haar_box.astype(int)
    eye_boxes = eyes.detectMultiScale(grey[y : y + h, x : x + w], 1.1, 5) + np.array([x, y, 0, 0])
    assert len(eye_boxes) >= 2
    for eye in (R_EYE, L_EYE):
        centre = (lm[eye["outer"], :2] + lm[eye["inner"], :2]) / 2
        dist = [np.hypot(*(centre - (b[:2] + b[2:] / 2))) for b in eye_boxes]
        assert min(dist) < 0.25 * haar_box[2]
    # she is smiling with open eyes and a slightly open mouth
    assert res["lip_corner_pull"] > 0
    assert 0.15 < res["eye_open_l"] < 0.5 and 0.15 < res["eye_open_r"] < 0.5
    assert res["mouth_open"] > 0.05


def test_expression_invariant_to_rotation_and_scale_and_roll_tracks_rotation(photo: np.ndarray) -> None:
    h, w = photo.shape[:2]
    with FaceAnalyzer(static=True) as fa:
        base = fa.process(photo, 0.0)
        for angle, scale in ((12.0, 1.0), (-8.0, 0.75)):
            m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
            turned = fa.process(cv2.warpAffine(photo, m, (w, h), borderMode=cv2.BORDER_REPLICATE), 1.0)
            assert turned.status == "ok"
            for label in EXPRESSION_LABELS:
                assert turned[label] == pytest.approx(base[label], abs=0.05 + 0.1 * abs(base[label])), label
            # cv2 angles are counter-clockwise on screen, and so is head_roll
            assert turned["head_roll"] - base["head_roll"] == pytest.approx(angle, abs=2.0)


@pytest.fixture(scope="module")
def animated() -> tuple[SyntheticFaceVideo, list]:
    video = SyntheticFaceVideo(
        pulse_bpm=70, duration=3.0, fps=30.0, motion_px=12.0, motion_deg=4.0, no_face=[(1.0, 1.5)], seed=3
    )
    with FaceAnalyzer() as fa:
        rows = [fa.process(f, t) for t, f in zip(video.times, video.frames(), strict=True)]
    return video, rows


def test_landmarks_on_every_frame_of_animated_video(animated) -> None:
    video, rows = animated
    present = video.face_present()
    status = np.array([r.status for r in rows])
    assert np.all(status[present] == "ok")
    # landmarks follow the programmed motion: the nose tip found on the photograph, moved by
    # each frame's known affine transform, is where FaceMesh finds it in the frame
    with FaceAnalyzer(static=True) as fa:
        nose_photo = fa.process(astronaut_bgr(), 0.0).face.landmarks[1, :2]
    nose_truth = np.array([video.affine(t) @ [*nose_photo, 1.0] for t in video.times])[present]
    nose = np.array([r.face.landmarks[1, :2] for r in np.array(rows, dtype=object)[present]])
    assert np.ptp(nose_truth[:, 0]) > 4
    err = np.hypot(*(nose - nose_truth).T)
    assert np.median(err) < 3.0 and np.max(err) < 4.0, err  # face is ~140 px wide
    # head roll follows the programmed rotation: slope 1 against the truth, small residual
    # (the offset is the photograph's own head tilt plus FaceMesh's tracking bias)
    roll = np.array([r["head_roll"] for r in rows])[present]
    truth = np.array([video.pose(t)[2] for t in video.times])[present]
    assert np.ptp(truth) > 5
    slope, offset = np.polyfit(truth, roll, 1)
    assert 0.85 < slope < 1.15, slope
    assert np.std(roll - (slope * truth + offset)) < 0.6


def test_missing_face_frames_are_nan_with_reason(animated) -> None:
    video, rows = animated
    absent = ~video.face_present()
    assert absent.sum() == 15
    for r in np.array(rows, dtype=object)[absent]:
        assert r.status == "no_face"
        assert r["status"] == STATUS_CODES["no_face"] and r["n_faces"] == 0
        others = [r[label] for label in FEATURE_LABELS if label not in ("status", "n_faces", "pulse_reason")]
        assert np.all(np.isnan(others))
        assert r["pulse_reason"] == PULSE_REASON_CODES["face_lost"] and r.pulse.reason == "face_lost"
    # the first frame after the face returns has no motion value (its predecessor had no face)
    back = int(np.flatnonzero(absent)[-1]) + 1
    assert rows[back].status == "ok"
    assert np.isfinite(rows[back]["eye_open_l"])


def test_several_faces_picks_largest_and_says_so() -> None:
    img = two_faces_image()
    with FaceAnalyzer(static=True) as fa:
        res = fa.process(img, 0.0)
    assert res.status == "several_faces" and res["status"] == STATUS_CODES["several_faces"]
    assert res["n_faces"] == 2
    cx = res["face_x"] + res["face_w"] / 2
    assert abs(cx - 0.3 * img.shape[1]) < 0.1 * img.shape[1]  # the large face is on the left
    assert np.isfinite(res["mouth_open"])


def test_haar_fallback_gives_box_without_landmark_features(photo: np.ndarray) -> None:
    with FaceAnalyzer(detector="haar") as fa:
        res = fa.process(photo, 0.0)
    assert fa.detector == "haar"
    assert res.status == "box_only" and res["n_faces"] == 1
    assert all(np.isnan(res[label]) for label in (*EXPRESSION_LABELS, "head_yaw", "landmark_speed"))
    with FaceAnalyzer(static=True) as mesh:
        ref = mesh.process(photo, 0.0)
    assert _iou(np.array([res[k] for k in ("face_x", "face_y", "face_w", "face_h")]), ref.face.box) > 0.4


@pytest.mark.parametrize(
    ("axis", "degrees"), [("yaw", 20.0), ("yaw", -12.0), ("pitch", 15.0), ("roll", 10.0)]
)
def test_head_pose_recovers_known_rotations_and_their_direction(axis: str, degrees: float) -> None:
    """The six model points, rotated by a known angle and projected by OpenCV's camera model,
    give that angle back, with the documented sign."""
    from physioaffect.face.features import _POSE_IDX, _POSE_MODEL, HeadPose

    w, h = 640, 480
    cam = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1.0]])
    rvec = np.zeros(3)
    rvec[{"pitch": 0, "yaw": 1, "roll": 2}[axis]] = np.radians(degrees)
    pts, _ = cv2.projectPoints(_POSE_MODEL, rvec, np.array([0.0, 0.0, 2000.0]), cam, None)
    lm = np.zeros((468, 2))
    lm[_POSE_IDX] = pts.reshape(-1, 2)
    yaw, pitch, roll = HeadPose()(lm, (w, h))
    got = {"yaw": yaw, "pitch": pitch, "roll": roll}
    expected = {"yaw": 0.0, "pitch": 0.0, "roll": 0.0}
    # cv2's rotation about the optical axis is clockwise on screen; head_roll counts the other way
    expected[axis] = -degrees if axis == "roll" else degrees
    for k in got:
        assert got[k] == pytest.approx(expected[k], abs=0.5), k
    nose, eyes_mid = pts[0, 0], (pts[2, 0] + pts[3, 0]) / 2
    chin = pts[1, 0]
    if axis == "yaw":  # turned towards image left: the nose tip sits left of the eyes' midpoint
        assert np.sign(nose[0] - eyes_mid[0]) == -np.sign(degrees)
    if axis == "pitch":  # looking down: chin closer to the nose in the image (foreshortened)
        assert chin[1] - nose[1] < 330 * w / 2000.0
