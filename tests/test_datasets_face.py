"""Face features as a dataset modality: per-trial CSV files (OpenFace, py-feat, physioaffect)
and videos matched with the right trials, DEAP's presentation order, the video feature cache,
window summaries, and bad input refused with the file named.

Ground truth is planted by construction: a face CSV of DEAP's presentation trial ``t`` carries
the video id the participant saw (from the same participant_ratings.csv table), so a wrong
match shows as a wrong number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from physioaffect.datasets import DatasetError, open_dataset
from physioaffect.datasets.fixtures import write_deap
from physioaffect.features.face import face_feature_names, face_window_table
from physioaffect.streams.face_layout import FEATURE_LABELS

N_TRIALS = 6
SECONDS = 8.0


def _openface_csv(path: Path, value: float, seconds: float = SECONDS, fps: float = 10.0,
                  lost: tuple[float, float] | None = None) -> None:
    n = int(seconds * fps)
    t = np.arange(n) / fps
    ok = np.ones(n, int)
    if lost is not None:
        ok[(t >= lost[0]) & (t < lost[1])] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"frame": np.arange(1, n + 1), "face_id": 0, "timestamp": t,
                  "confidence": 0.98, "success": ok, "pose_Rx": 0.05, "pose_Ry": -0.1,
                  "pose_Rz": 0.0, "AU12_r": value, "AU04_r": 1.0 + 0.1 * np.sin(t)}
                 ).to_csv(path, index=False)


@pytest.fixture(scope="module")
def deap(tmp_path_factory) -> dict:
    """Two DEAP subjects; face CSVs for s01 in presentation order, s02 without face."""
    root = tmp_path_factory.mktemp("deapface")
    data = write_deap(root / "data_preprocessed_python", n_subjects=2, seconds=SECONDS,
                      n_trials=N_TRIALS, seed=1)
    rng = np.random.default_rng(5)
    order = {p: rng.permutation(N_TRIALS) + 1 for p in (1, 2)}  # presentation -> video id
    rows = [{"Participant_id": p, "Trial": t + 1, "Experiment_id": int(order[p][t]),
             "Start_time": 0, "Valence": 5, "Arousal": 5}
            for p in (1, 2) for t in range(N_TRIALS)]
    meta = root / "metadata_csv"
    meta.mkdir()
    pd.DataFrame(rows).to_csv(meta / "participant_ratings.csv", index=False)
    face = root / "face_video"
    for t in range(N_TRIALS):  # the value planted is the video id shown in that trial
        _openface_csv(face / "s01" / f"s01_trial{t + 1:02d}.csv", float(order[1][t]))
    (face / "README.txt").write_text("stray file")
    return {"root": root, "data": data, "face": face, "order": order, "meta": meta}


def test_deap_face_files_in_presentation_order_reach_the_right_trials(deap: dict) -> None:
    reader = open_dataset("deap", deap["data"], face=deap["face"])  # finds metadata_csv/
    rec = reader.read_subject("s01")
    assert len(rec.trials) == N_TRIALS and rec.info["face_trials"] == N_TRIALS
    for tr in rec.trials:  # trial k of the preprocessed file is video k
        au12 = tr.face.column("AU12_r")
        assert np.all(au12 == tr.trial), (tr.trial, tr.face.source)
        assert tr.face.times[0] == 0.0 and tr.face.times[-1] == pytest.approx(SECONDS - 0.1)
        # OpenFace's radians come out in degrees
        assert np.allclose(tr.face.column("head_pitch"), np.degrees(0.05))
    assert all(tr.face is None for tr in reader.read_subject("s02").trials)
    assert reader.face.subjects_with_face() == ["s01"]


def test_deap_presentation_numbered_files_without_the_order_are_refused(deap: dict,
                                                                         tmp_path: Path) -> None:
    lone = tmp_path / "faces"
    _openface_csv(lone / "s01_trial01.csv", 1.0)
    data = tmp_path / "deap"
    write_deap(data, n_subjects=1, seconds=4.0, n_trials=2)
    with pytest.raises(DatasetError, match="participant_ratings.csv") as err:
        open_dataset("deap", data, face=lone)
    assert str(lone) in str(err.value)
    bad_order = tmp_path / "ratings.csv"
    bad_order.write_text("Participant,Trial\n1,1\n")
    with pytest.raises(DatasetError, match="Experiment_id") as err:
        open_dataset("deap", data, face=lone, face_trial_order=bad_order)
    assert str(bad_order) in str(err.value)


def test_files_named_by_video_id_need_no_order_and_offset_shifts_times(tmp_path: Path) -> None:
    data = write_deap(tmp_path / "deap", n_subjects=1, seconds=4.0, n_trials=3)
    face = tmp_path / "face"
    face.mkdir()
    n = 40
    table = pd.DataFrame(np.full((n, len(FEATURE_LABELS)), 0.3), columns=list(FEATURE_LABELS))
    table.insert(0, "time", np.arange(n) / 10.0)
    table["status"] = 0
    table["lip_corner_pull"] = 0.07
    table["status_name"] = "ok"
    table.to_csv(face / "s01_video02.csv", index=False)
    reader = open_dataset("deap", data, face=face, face_options={"offset_s": -1.5})
    trials = reader.read_subject("s01").trials
    assert [tr.face is not None for tr in trials] == [False, True, False]
    f = trials[1].face
    assert np.allclose(f.column("lip_corner_pull"), 0.07)
    assert f.times[0] == pytest.approx(-1.5)  # the file started 1.5 s before the stimulus


def test_csv_layouts_and_bad_csvs(tmp_path: Path) -> None:
    data = write_deap(tmp_path / "deap", n_subjects=1, seconds=4.0, n_trials=2)
    face = tmp_path / "face"
    face.mkdir()
    pd.DataFrame({"frame": [0, 1, 2, 2], "FaceRectX": [1.0, 2, 3, 9],
                  "FaceRectY": [1.0, 1, 1, 1], "FaceRectWidth": [50.0, 50, 50, 80],
                  "FaceRectHeight": [60.0, 60, 60, 90], "AU12": [0.1, 0.2, 0.3, 0.9]}
                 ).to_csv(face / "s01_video01.csv", index=False)
    reader = open_dataset("deap", data, face=face)
    with pytest.raises(DatasetError, match="--face-fps") as err:
        reader.read_subject("s01")
    assert "s01_video01.csv" in str(err.value)
    reader = open_dataset("deap", data, face=face, face_options={"fps": 25.0})
    f = reader.read_subject("s01").trials[0].face
    assert np.allclose(f.times, [0.0, 0.04, 0.08])
    assert np.allclose(f.column("AU12"), [0.1, 0.2, 0.9])  # frame 2: the larger face wins
    (face / "s01_video02.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="not a face-feature CSV") as err:
        open_dataset("deap", data, face=face, face_options={"fps": 25.0}).read_subject("s01")
    assert "s01_video02.csv" in str(err.value)
    with pytest.raises(DatasetError, match="face folder does not exist"):
        open_dataset("deap", data, face=tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.csv").write_text("x\n1\n")
    with pytest.raises(DatasetError, match="no face file of any subject"):
        open_dataset("deap", data, face=empty)


def test_face_video_is_analysed_once_and_cached(tmp_path: Path) -> None:
    pytest.importorskip("cv2", reason="needs the 'face' extra: pip install 'physioaffect[face]'")
    from physioaffect.face.synthetic import SyntheticFaceVideo

    data = write_deap(tmp_path / "deap", n_subjects=1, seconds=4.0, n_trials=2)
    face = tmp_path / "face_video" / "s01"
    face.mkdir(parents=True)
    clip = SyntheticFaceVideo(duration=2.0, fps=15.0, size=(320, 240), face_scale=1.0,
                              no_face=[(1.0, 1.4)])
    clip.write(face / "s01_video01.avi")
    cache = tmp_path / "cache"
    reader = open_dataset("deap", data, face=face.parent, face_options={"cache_dir": cache})
    f = reader.read_subject("s01").trials[0].face
    assert f.values.shape[0] == clip.n_frames
    status = f.column("status")
    covered = (f.times >= 1.0) & (f.times < 1.4)
    assert np.all(status[covered] == 3)  # no_face while the face is covered ...
    assert np.all(np.isnan(f.column("mouth_open")[covered]))  # ... and no invented values
    assert np.isfinite(f.column("eye_open_l")[~covered]).mean() > 0.8  # landmarks on the face
    cached = list(cache.glob("s01_video01-*.csv"))
    assert len(cached) == 1
    # A second read uses the cache: a value planted in it comes back.
    table = pd.read_csv(cached[0])
    table["mouth_width"] = 0.123
    table.to_csv(cached[0], index=False)
    again = open_dataset("deap", data, face=face.parent, face_options={"cache_dir": cache})
    assert np.allclose(again.read_subject("s01").trials[0].face.column("mouth_width"), 0.123)


def test_face_window_table_properties() -> None:
    fps = 20.0
    t = np.arange(0, 10, 1 / fps)
    names = ["status", "face_x", "ramp", "const"]
    values = np.stack([np.zeros_like(t), np.full_like(t, 100.0), t, np.full_like(t, 2.0)], 1)
    values[(t >= 6) & (t < 8.5), 1:] = np.nan  # face lost for 2.5 s
    table = face_window_table(t, values, names, [0.0, 2.0, 6.0, 12.0], 2.0, min_valid=0.5)
    assert list(table.columns) == face_feature_names(names) == [
        "face_ramp_mean", "face_ramp_std", "face_const_mean", "face_const_std",
        "face_valid_fraction"]  # bookkeeping (status, face box) is not an affect feature
    # a ramp's mean over [2, 4) is the mean of its frame times there
    assert table["face_ramp_mean"].iat[1] == pytest.approx(t[(t >= 2) & (t < 4)].mean())
    assert table["face_ramp_std"].iat[1] == pytest.approx(t[(t >= 2) & (t < 4)].std())
    assert table["face_const_mean"].iat[0] == 2.0 and table["face_const_std"].iat[0] == 0.0
    assert table["face_valid_fraction"].iat[2] == 0.0 and np.isnan(table["face_ramp_mean"].iat[2])
    assert table["face_valid_fraction"].iat[3] == 0.0  # no frames at all after the video
    assert table.iloc[3, :-1].isna().all()


def test_cli_face_features_fills_the_cache_once_and_info_reports_face(tmp_path: Path) -> None:
    pytest.importorskip("cv2", reason="needs the 'face' extra: pip install 'physioaffect[face]'")
    import subprocess
    import sys

    from physioaffect.face.synthetic import SyntheticFaceVideo

    data = write_deap(tmp_path / "deap", n_subjects=1, seconds=4.0, n_trials=2)
    face = tmp_path / "face_video"
    face.mkdir()
    SyntheticFaceVideo(duration=1.0, fps=10.0, size=(320, 240), face_scale=1.0).write(
        face / "s01_video02.avi")
    (face / "s01_video01.avi").write_bytes(b"\x00" * 64)  # corrupt: named, others still done

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "physioaffect.cli.main", "datasets", *args,
                               "deap", "--root", str(data), "--face", str(face)],
                              capture_output=True, text=True, timeout=120)

    first = cli("face-features")
    assert first.returncode == 1, first.stderr
    assert "s01_video01.avi" in first.stderr and "Traceback" not in first.stderr
    assert "2 face videos, 0 already analysed" in first.stdout
    cache = tmp_path / "physioaffect-cache" / "face"
    assert str(cache) in first.stdout
    assert len(list(cache.glob("s01_video02-*.csv"))) == 1
    info = subprocess.run([sys.executable, "-m", "physioaffect.cli.main", "datasets", "info",
                           "deap", "--root", str(data), "--face", str(face)],
                          capture_output=True, text=True, timeout=120)
    assert info.returncode == 2 and "s01_video01.avi" in info.stderr  # reading trial 1 fails
    (face / "s01_video01.avi").unlink()
    again = cli("face-features")
    assert again.returncode == 0, again.stderr
    assert "1 face videos, 1 already analysed" in again.stdout  # nothing analysed twice
    info = subprocess.run([sys.executable, "-m", "physioaffect.cli.main", "datasets", "info",
                           "deap", "--root", str(data), "--face", str(face)],
                          capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stderr
    assert "face: 1 of 2 trials of s01" in info.stdout
