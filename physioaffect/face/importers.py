"""Face features computed elsewhere: OpenFace 2 and py-feat CSV files, read into the same
table layout as :func:`physioaffect.face.analysis.analyze_video` (``time``, the ``Face``
channels, ``status_name``), plus the tool's own action-unit and emotion columns.

Only columns both tools define are mapped onto ``Face`` channels (face box, head pose,
status); the rest of the ``Face`` channels are NaN, and the tool's AU/emotion columns are kept
under their own names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from physioaffect.face.errors import FaceCSVError
from physioaffect.streams.face_layout import FEATURE_LABELS, STATUS_CODES


def _read_csv(path: str | Path, nrows: int | None = None):
    """The CSV as a DataFrame (``nrows=0``: the header only, to tell layouts apart)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FaceCSVError(f"{path}: file does not exist")
    try:
        # OpenFace separates with ", ": skipinitialspace strips it from names and values
        return pd.read_csv(path, skipinitialspace=True, nrows=nrows)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise FaceCSVError(f"{path}: not a readable CSV table ({err})") from err


def _require(table, path: Path, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise FaceCSVError(
            f"{path}: not an {what} CSV: missing column(s) {', '.join(missing)} "
            f"(found {', '.join(map(str, table.columns[:8]))}...)"
        )


def _empty_table(n: int):
    import pandas as pd

    table = pd.DataFrame(np.full((n, len(FEATURE_LABELS)), np.nan), columns=list(FEATURE_LABELS))
    table.insert(0, "time", np.nan)
    return table


def read_openface_csv(path: str | Path, start_time: float = 0.0) -> tuple[Any, dict[str, Any]]:
    """Read OpenFace 2 ``FeatureExtraction`` output.

    Parameters
    ----------
    path : str or Path
        CSV with at least ``frame, timestamp, confidence, success`` (``face_id`` when from
        ``FaceLandmarkVidMulti``: the largest face by 2-D landmark extent is kept per frame).
    start_time : float
        LSL time (s) of the video's first frame; ``time = start_time + timestamp``.

    Returns
    -------
    table : pandas.DataFrame
        One row per frame. ``head_pitch/yaw/roll`` are OpenFace's ``pose_Rx/Ry/Rz`` in
        degrees (OpenFace's axes: its signs differ from physioaffect's own estimate). Rows
        with ``success == 0`` have status ``no_face`` and NaN features. Kept tool columns:
        ``AU..._r`` (intensity 0-5), ``AU..._c`` (presence 0/1), ``confidence``.
    info : dict
        ``path``, ``tool`` ("openface"), ``n_frames``, ``au_columns``.
    """
    path = Path(path)
    raw = _read_csv(path)
    _require(raw, path, ["frame", "timestamp", "confidence", "success"], "OpenFace")
    n_faces = raw.groupby("frame")["frame"].transform("size").to_numpy()
    if "face_id" in raw.columns and raw["frame"].duplicated().any():
        xs = [c for c in raw.columns if re.fullmatch(r"x_\d+", c)]
        ys = [c for c in raw.columns if re.fullmatch(r"y_\d+", c)]
        if xs and ys:
            extent = (raw[xs].max(axis=1) - raw[xs].min(axis=1)) * (raw[ys].max(axis=1) - raw[ys].min(axis=1))
            raw = raw.assign(_extent=extent.fillna(-1.0), _n=n_faces)
            raw = raw.sort_values(["frame", "_extent"], ascending=[True, False]).drop_duplicates("frame")
            n_faces = raw.pop("_n").to_numpy()
            raw = raw.drop(columns="_extent")
        else:
            raw = raw.drop_duplicates("frame")
            n_faces = np.ones(len(raw))
    raw = raw.sort_values("frame").reset_index(drop=True)
    n = len(raw)
    table = _empty_table(n)
    table["time"] = start_time + raw["timestamp"].to_numpy(dtype=float)
    ok = raw["success"].to_numpy() == 1
    several = ok & (np.asarray(n_faces) > 1)
    status = np.where(ok, np.where(several, "several_faces", "ok"), "no_face")
    table["status"] = [STATUS_CODES[s] for s in status]
    table["n_faces"] = np.where(ok, n_faces, 0)
    if all(c in raw.columns for c in ("pose_Rx", "pose_Ry", "pose_Rz")):
        for ours, theirs in (("head_pitch", "pose_Rx"), ("head_yaw", "pose_Ry"), ("head_roll", "pose_Rz")):
            table[ours] = np.where(ok, np.degrees(raw[theirs].to_numpy(dtype=float)), np.nan)
    xs = [c for c in raw.columns if re.fullmatch(r"x_\d+", c)]
    ys = [c for c in raw.columns if re.fullmatch(r"y_\d+", c)]
    if xs and ys:
        x0, x1 = raw[xs].min(axis=1), raw[xs].max(axis=1)
        y0, y1 = raw[ys].min(axis=1), raw[ys].max(axis=1)
        for ours, val in (("face_x", x0), ("face_y", y0), ("face_w", x1 - x0), ("face_h", y1 - y0)):
            table[ours] = np.where(ok, val.to_numpy(dtype=float), np.nan)
    au_cols = [c for c in raw.columns if re.fullmatch(r"AU\d+_[rc]", c)]
    for c in [*au_cols, "confidence"]:
        table[c] = np.where(ok, raw[c].to_numpy(dtype=float), np.nan)
    table["status_name"] = status
    return table, {"path": str(path), "tool": "openface", "n_frames": n, "au_columns": au_cols}


_PYFEAT_EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")


def read_pyfeat_csv(path: str | Path, fps: float, start_time: float = 0.0) -> tuple[Any, dict[str, Any]]:
    """Read a py-feat ``Fex`` table saved as CSV (``detector.detect_video(...).to_csv``).

    Parameters
    ----------
    path : str or Path
        CSV with ``frame, FaceRectX, FaceRectY, FaceRectWidth, FaceRectHeight`` and, where
        present, ``Pitch, Roll, Yaw`` (degrees), ``AU..`` and emotion columns. Several rows
        of one frame are several faces: the largest box is kept.
    fps : float
        Frame rate of the analysed video (py-feat stores frame numbers, not times).
    start_time : float
        LSL time (s) of frame 0; ``time = start_time + frame / fps``.

    Returns
    -------
    table : pandas.DataFrame
        One row per frame that appears in the file; frames whose box is NaN (py-feat's "no
        face") have status ``no_face``.
    info : dict
        ``path``, ``tool`` ("py-feat"), ``n_frames``, ``au_columns``.
    """
    path = Path(path)
    if not fps or fps <= 0:
        raise FaceCSVError(f"{path}: fps must be > 0 to turn py-feat frame numbers into times, got {fps}")
    raw = _read_csv(path)
    box_cols = ["FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight"]
    _require(raw, path, ["frame", *box_cols], "py-feat")
    area = (raw["FaceRectWidth"] * raw["FaceRectHeight"]).fillna(-1.0)
    counts = raw.assign(_has=raw["FaceRectWidth"].notna()).groupby("frame")["_has"].transform("sum")
    raw = raw.assign(_area=area, _n=counts)
    raw = raw.sort_values(["frame", "_area"], ascending=[True, False]).drop_duplicates("frame")
    raw = raw.reset_index(drop=True)
    n = len(raw)
    table = _empty_table(n)
    table["time"] = start_time + raw["frame"].to_numpy(dtype=float) / fps
    ok = raw["FaceRectWidth"].notna().to_numpy()
    n_faces = raw["_n"].to_numpy(dtype=float)
    status = np.where(ok, np.where(n_faces > 1, "several_faces", "ok"), "no_face")
    table["status"] = [STATUS_CODES[s] for s in status]
    table["n_faces"] = n_faces
    for ours, theirs in zip(("face_x", "face_y", "face_w", "face_h"), box_cols, strict=True):
        table[ours] = raw[theirs].to_numpy(dtype=float)
    for ours, theirs in (("head_pitch", "Pitch"), ("head_yaw", "Yaw"), ("head_roll", "Roll")):
        if theirs in raw.columns:
            table[ours] = raw[theirs].to_numpy(dtype=float)
    au_cols = [c for c in raw.columns if re.fullmatch(r"AU\d+", c)]
    for c in [*au_cols, *(e for e in _PYFEAT_EMOTIONS if e in raw.columns)]:
        table[c] = raw[c].to_numpy(dtype=float)
    table["status_name"] = status
    return table, {"path": str(path), "tool": "py-feat", "n_frames": n, "au_columns": au_cols}


def read_face_csv(path: str | Path, fps: float | None = None,
                  start_time: float = 0.0) -> tuple[Any, dict[str, Any]]:
    """Read a face-feature CSV in any known layout, told apart by its columns.

    Layouts: physioaffect's own (an :func:`~physioaffect.face.analysis.analyze_video` table
    saved with ``to_csv``: ``time``, ``status`` and the ``Face`` channels), OpenFace 2
    (:func:`read_openface_csv`) and py-feat (:func:`read_pyfeat_csv`, needs ``fps``).

    Parameters
    ----------
    path : str or Path
    fps : float, optional
        Frame rate of the video a py-feat table came from.
    start_time : float
        Seconds added to the file's own times (its first frame's time on the target clock).

    Returns
    -------
    table, info
        As the layout's reader; ``info["tool"]`` is ``physioaffect``, ``openface`` or ``py-feat``.

    Raises
    ------
    FaceCSVError
        Not a CSV, or a CSV in none of the layouts (the message lists what each needs).
    """
    path = Path(path)
    columns = set(_read_csv(path, nrows=0).columns)  # the header: readers below read the rest
    if {"time", "status"} <= columns:
        table = _read_csv(path)
        ours = [c for c in FEATURE_LABELS if c in columns]
        if len(ours) < 2:
            raise FaceCSVError(f"{path}: has 'time' and 'status' but none of the Face channels "
                               f"({', '.join(FEATURE_LABELS[2:6])} ...)")
        table["time"] = start_time + table["time"].to_numpy(dtype=float)
        return table, {"path": str(path), "tool": "physioaffect", "n_frames": len(table),
                       "au_columns": []}
    if {"frame", "timestamp", "success"} <= columns:
        return read_openface_csv(path, start_time=start_time)
    if {"frame", "FaceRectX"} <= columns:
        if not fps:
            raise FaceCSVError(f"{path}: a py-feat table stores frame numbers only: give the "
                               "video's frame rate (--face-fps) to turn them into times")
        return read_pyfeat_csv(path, fps=fps, start_time=start_time)
    raise FaceCSVError(
        f"{path}: not a face-feature CSV in a known layout (physioaffect: time, status, Face "
        "channels; OpenFace: frame, timestamp, confidence, success; py-feat: frame, FaceRectX, "
        f"FaceRectY, FaceRectWidth, FaceRectHeight); found {', '.join(sorted(columns)[:8])}")
