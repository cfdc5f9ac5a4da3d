"""OpenFace and py-feat CSV import (no OpenCV needed): files written in each tool's own layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from physioaffect.face.analysis import FEATURE_LABELS, STATUS_CODES
from physioaffect.face.importers import FaceCSVError, read_openface_csv, read_pyfeat_csv

AUS_R = ["AU01_r", "AU02_r", "AU04_r", "AU12_r", "AU45_r"]
AUS_C = ["AU01_c", "AU12_c", "AU45_c"]


def _openface_file(path: Path, rows: list[dict]) -> Path:
    """An OpenFace 2 FeatureExtraction CSV: ', ' separators, 68 landmarks x_i/y_i, pose in
    radians (a subset of its 700-odd columns, same names and order)."""
    cols = ["frame", "face_id", "timestamp", "confidence", "success",
            "pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz",
            *[f"x_{i}" for i in range(68)], *[f"y_{i}" for i in range(68)], *AUS_R, *AUS_C]
    lines = [", ".join(cols)]
    for r in rows:
        xs = r["x0"] + np.linspace(0, r["size"], 68)
        ys = r["y0"] + np.linspace(0, r["size"] * 1.2, 68)
        vals = [r["frame"], r.get("face_id", 0), r["t"], r["conf"], r["success"], 10.0, 20.0, 500.0,
                *r["rot"], *xs, *ys, *r["aus"], 1, 0, 0]
        lines.append(", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in vals))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_openface_csv_maps_pose_box_status_and_keeps_aus(tmp_path: Path) -> None:
    rows = [
        {"frame": 1, "t": 0.0, "conf": 0.98, "success": 1, "rot": (0.1, -0.2, 0.05), "x0": 100.0, "y0": 50.0, "size": 120.0, "aus": [0.5, 0.0, 1.2, 2.5, 0.0]},
        {"frame": 2, "t": 0.04, "conf": 0.10, "success": 0, "rot": (0.0, 0.0, 0.0), "x0": 0.0, "y0": 0.0, "size": 0.0, "aus": [0.0] * 5},
        {"frame": 3, "t": 0.08, "conf": 0.97, "success": 1, "rot": (0.0, 0.3, -0.1), "x0": 110.0, "y0": 55.0, "size": 118.0, "aus": [0.1, 0.2, 0.3, 3.0, 4.0]},
        # a second, smaller face in frame 3 (FaceLandmarkVidMulti output)
        {"frame": 3, "face_id": 1, "t": 0.08, "conf": 0.9, "success": 1, "rot": (0.5, 0.5, 0.5), "x0": 400.0, "y0": 60.0, "size": 40.0, "aus": [5.0] * 5},
    ]
    table, info = read_openface_csv(_openface_file(tmp_path / "of.csv", rows), start_time=100.0)
    assert info["tool"] == "openface" and info["n_frames"] == 3
    assert list(table.columns[: 1 + len(FEATURE_LABELS)]) == ["time", *FEATURE_LABELS]
    np.testing.assert_allclose(table["time"], [100.0, 100.04, 100.08])
    assert list(table["status_name"]) == ["ok", "no_face", "several_faces"]
    assert table["status"].tolist() == [STATUS_CODES[s] for s in ("ok", "no_face", "several_faces")]
    np.testing.assert_allclose(table.loc[0, ["head_pitch", "head_yaw", "head_roll"]].astype(float),
                               np.degrees([0.1, -0.2, 0.05]))
    assert table.loc[2, "head_yaw"] == pytest.approx(np.degrees(0.3))  # the larger face
    assert table.loc[2, "AU12_r"] == 3.0 and table.loc[2, "n_faces"] == 2
    assert table.loc[0, "face_w"] == pytest.approx(120.0) and table.loc[0, "face_x"] == pytest.approx(100.0)
    assert table.loc[1, ["head_yaw", "face_w", "AU12_r"]].isna().all()
    assert table["eye_open_l"].isna().all()  # not something OpenFace measures


def test_pyfeat_csv_frames_to_times_and_largest_face(tmp_path: Path) -> None:
    path = tmp_path / "fex.csv"
    path.write_text(
        "frame,FaceRectX,FaceRectY,FaceRectWidth,FaceRectHeight,FaceScore,Pitch,Roll,Yaw,AU01,AU12,"
        "anger,happiness,neutral,input\n"
        "0,100,80,150,180,0.99,2.0,-3.0,10.0,0.2,0.9,0.01,0.95,0.04,clip.mp4\n"
        "0,400,90,60,70,0.95,0.0,0.0,0.0,0.5,0.1,0.5,0.1,0.4,clip.mp4\n"
        "1,,,,,,,,,,,,,,clip.mp4\n"
        "2,102,81,149,181,0.99,1.0,-2.0,12.0,0.3,0.8,0.02,0.9,0.08,clip.mp4\n"
    )
    table, info = read_pyfeat_csv(path, fps=25.0, start_time=7.0)
    np.testing.assert_allclose(table["time"], [7.0, 7.04, 7.08])
    assert list(table["status_name"]) == ["several_faces", "no_face", "ok"]
    assert table.loc[0, "face_w"] == 150 and table.loc[0, "head_yaw"] == 10.0 and table.loc[0, "happiness"] == 0.95
    assert table.loc[1, ["face_w", "head_yaw", "AU12"]].isna().all()
    assert info["au_columns"] == ["AU01", "AU12"]


def test_wrong_files_name_file_and_missing_columns(tmp_path: Path) -> None:
    other = tmp_path / "eeg.csv"
    other.write_text("time,Fp1,Fp2\n0,1,2\n")
    with pytest.raises(FaceCSVError, match=r"eeg\.csv.*frame, timestamp, confidence, success"):
        read_openface_csv(other)
    with pytest.raises(FaceCSVError, match=r"eeg\.csv.*FaceRectX"):
        read_pyfeat_csv(other, fps=30)
    with pytest.raises(FaceCSVError, match="fps"):
        read_pyfeat_csv(other, fps=0)
    with pytest.raises(FaceCSVError, match="does not exist"):
        read_openface_csv(tmp_path / "missing.csv")
