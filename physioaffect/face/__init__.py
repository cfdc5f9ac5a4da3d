"""Facial video features: expression, head pose, motion and camera pulse (rPPG), one row per
frame on the LSL clock.

Needs the optional ``face`` extra (OpenCV, MediaPipe 0.10.14) except :mod:`physioaffect.face.rppg`,
which works on mean skin colours with numpy/scipy only, and :mod:`physioaffect.face.importers`
(OpenFace and py-feat CSV files, pandas only). The heavy modules are imported on first
use, so ``import physioaffect.face`` is cheap and works without the extra.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "FaceAnalyzer": "physioaffect.face.analysis",
    "FrameResult": "physioaffect.face.analysis",
    "FEATURE_CHANNELS": "physioaffect.face.analysis",
    "FEATURE_LABELS": "physioaffect.face.analysis",
    "STATUS_CODES": "physioaffect.face.analysis",
    "analyze_video": "physioaffect.face.analysis",
    "face_stream_info": "physioaffect.face.analysis",
    "FrameReader": "physioaffect.face.video",
    "VideoSource": "physioaffect.face.source",
    "SyntheticFaceVideo": "physioaffect.face.synthetic",
    "PulseTracker": "physioaffect.face.rppg",
    "PulseEstimate": "physioaffect.face.rppg",
    "SkinSample": "physioaffect.face.rppg",
    "pos": "physioaffect.face.rppg",
    "chrom": "physioaffect.face.rppg",
    "green": "physioaffect.face.rppg",
    "pulse_rate": "physioaffect.face.rppg",
    "estimate_pulse": "physioaffect.face.rppg",
    "FaceExtraError": "physioaffect.face.landmarks",
    "read_openface_csv": "physioaffect.face.importers",
    "read_pyfeat_csv": "physioaffect.face.importers",
    "read_face_csv": "physioaffect.face.importers",
    "compare_pulse": "physioaffect.face.validate",
    "reference_pulse_rate": "physioaffect.face.validate",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'physioaffect.face' has no attribute {name!r}")


def _video_source(spec):
    from physioaffect.face.source import VideoSource

    return VideoSource.from_spec(spec)


def _register() -> None:
    from physioaffect.sources import register_source_kind

    register_source_kind("video", _video_source)


_register()  # `video:FILE` / `video:N` in every --source once physioaffect.face is imported
