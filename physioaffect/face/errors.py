"""Errors of the face stage (one-line messages for the operator)."""

from __future__ import annotations

from physioaffect.errors import PhysioAffectError

__all__ = ["FaceError", "FaceCSVError", "FaceExtraError"]


class FaceError(PhysioAffectError, ValueError):
    """Face input (a video, an image, an option) cannot be used; the message says why."""


class FaceCSVError(FaceError):
    """A face-feature CSV (OpenFace, py-feat, physioaffect) cannot be read."""


class FaceExtraError(PhysioAffectError, ImportError):
    """The optional ``face`` extra (OpenCV, MediaPipe) is not installed."""
