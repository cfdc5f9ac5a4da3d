"""Face detection and landmarks from what the PyPI wheels ship (nothing is downloaded).

- :class:`MeshDetector`: MediaPipe's legacy FaceMesh (468 landmarks; the models are inside the
  ``mediapipe==0.10.14`` wheel).
- :class:`CascadeDetector`: OpenCV's Haar cascade (``cv2.data.haarcascades``, inside the
  ``opencv-python-headless`` 4.x wheel): a face box only, for installs without MediaPipe and
  frames where the mesh finds nothing.

Both return every face they see as :class:`Face`, largest first; the caller picks.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from physioaffect.face.errors import FaceExtraError

# mediapipe 0.10.14 calls a protobuf API that protobuf 4.x marks deprecated, once per frame
warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)




def import_cv2():
    """Import OpenCV or say which extra provides it."""
    try:
        import cv2
    except ImportError as err:
        raise FaceExtraError(
            f"face analysis needs OpenCV: pip install 'physioaffect[face]' ({err})"
        ) from err
    return cv2


@dataclass
class Face:
    """One detected face.

    Attributes
    ----------
    box : ndarray, shape (4,)
        ``x, y, w, h`` in pixels.
    landmarks : ndarray, shape (468, 3), or None
        FaceMesh landmarks: x, y in pixels, z in pixels on the x scale (relative depth).
        None for box-only detections.
    """

    box: np.ndarray
    landmarks: np.ndarray | None = None

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])


def _box_of(points: np.ndarray) -> np.ndarray:
    lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]], dtype=np.float64)


def _protobuf_compat() -> None:
    """Let mediapipe 0.10.14 (written for protobuf 4) run beside protobuf 5-7.

    Other extras (``ray[default]``) need protobuf >= 6, which removed
    ``SymbolDatabase.GetPrototype``; mediapipe calls it for every frame's landmark list.
    ``message_factory.GetMessageClass`` is its documented replacement.
    """
    from google.protobuf import message_factory, symbol_database

    for cls in (symbol_database.SymbolDatabase, message_factory.MessageFactory):
        if not hasattr(cls, "GetPrototype"):
            cls.GetPrototype = lambda self, descriptor: message_factory.GetMessageClass(descriptor)


class MeshDetector:
    """MediaPipe FaceMesh in video (tracking) mode.

    Parameters
    ----------
    max_faces : int
        Faces tracked at once; more than one is needed to notice a second person.
    static : bool
        Detect on every frame (for unrelated still images) instead of tracking.
    min_confidence : float
        Detection and tracking confidence threshold.
    """

    name = "facemesh"

    def __init__(self, max_faces: int = 3, static: bool = False, min_confidence: float = 0.5):
        try:
            # MediaPipe's C++ logging is chatty on stderr; keep it to errors.
            os.environ.setdefault("GLOG_minloglevel", "2")
            _protobuf_compat()  # before mediapipe's bindings probe protobuf at import
            import mediapipe as mp
        except ImportError as err:
            raise FaceExtraError(
                f"FaceMesh needs MediaPipe: pip install 'mediapipe==0.10.14' ({err})"
            ) from err
        self._cv2 = import_cv2()
        fm = mp.solutions.face_mesh
        from mediapipe.python.solution_base import SolutionBase

        # FaceMesh.process only wraps this; calling it directly serves both constructions below
        self._solution_process = SolutionBase.process
        try:
            self._mesh = fm.FaceMesh(
                static_image_mode=static,
                max_num_faces=max_faces,
                refine_landmarks=False,
                min_detection_confidence=min_confidence,
                min_tracking_confidence=min_confidence,
            )
        except AttributeError:
            # protobuf >= 7 dropped FieldDescriptor.label, which FaceMesh needs only to set
            # the two confidence thresholds; build the same graph with its own (0.5) thresholds
            self._mesh = SolutionBase(
                binary_graph_path=fm._BINARYPB_FILE_PATH,
                side_inputs={
                    "num_faces": max_faces,
                    "with_attention": False,
                    "use_prev_landmarks": not static,
                },
                outputs=["multi_face_landmarks"],
            )

    def detect(self, frame_bgr: np.ndarray) -> list[Face]:
        """Faces in a BGR uint8 frame of shape (h, w, 3), largest first."""
        h, w = frame_bgr.shape[:2]
        rgb = self._cv2.cvtColor(frame_bgr, self._cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False  # lets MediaPipe avoid a copy
        result = self._solution_process(self._mesh, {"image": rgb})
        faces = []
        for lm in result.multi_face_landmarks or []:
            pts = np.array([(p.x, p.y, p.z) for p in lm.landmark], dtype=np.float64)
            pts *= (w, h, w)
            faces.append(Face(box=_box_of(pts), landmarks=pts))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def close(self) -> None:
        self._mesh.close()


class CascadeDetector:
    """OpenCV Haar cascade (frontal face), run on a half-size grey image for speed.

    Parameters
    ----------
    scale : float
        Downscale factor applied before detection.
    min_size : int
        Smallest face, pixels in the full-size frame.
    """

    name = "haar"

    def __init__(self, scale: float = 0.5, min_size: int = 80):
        cv2 = import_cv2()
        self._cv2 = cv2
        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise FaceExtraError(
                f"OpenCV Haar cascade not found at {path}; OpenCV 5 wheels do not ship it, "
                "install opencv-python-headless<5"
            )
        self.scale = float(scale)
        self.min_size = int(min_size)

    def detect(self, frame_bgr: np.ndarray) -> list[Face]:
        """Face boxes in a BGR uint8 frame, largest first (no landmarks)."""
        cv2 = self._cv2
        small = cv2.resize(frame_bgr, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        m = max(8, int(self.min_size * self.scale))
        boxes = self._cascade.detectMultiScale(grey, scaleFactor=1.15, minNeighbors=6, minSize=(m, m))
        faces = [Face(box=np.asarray(b, np.float64) / self.scale) for b in np.reshape(boxes, (-1, 4))]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def close(self) -> None:
        pass
