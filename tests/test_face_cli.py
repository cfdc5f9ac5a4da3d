"""``physioaffect face --video`` in a subprocess, received by a real LSL inlet."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2", reason="needs the 'face' extra: pip install 'physioaffect[face]'")
pytest.importorskip("mediapipe", reason="needs the 'face' extra (mediapipe==0.10.14)")
pytest.importorskip("skimage", reason="needs scikit-image for the astronaut photograph")

import pylsl  # noqa: E402

from physioaffect.face.analysis import FEATURE_CHANNELS, STATUS_CODES  # noqa: E402
from physioaffect.face.synthetic import SyntheticFaceVideo  # noqa: E402


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "physioaffect.cli.main", *args]


def test_face_cli_publishes_video_features_to_lsl(tmp_path: Path) -> None:
    bpm, fps = 84.0, 30.0
    video = SyntheticFaceVideo(pulse_bpm=bpm, duration=8.5, fps=fps, no_face=[(0.5, 1.0)], seed=7)
    path = video.write(tmp_path / "session.avi")
    name = f"face-test-{uuid.uuid4().hex[:8]}"
    start = pylsl.local_clock() + 1000.0  # any LSL time: the frames must carry exactly this
    proc = subprocess.Popen(
        _cli("face", "--video", str(path), "--start-time", repr(start), "--name", name, "--fast",
             "--wait-consumer", "60"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        found = pylsl.resolve_byprop("name", name, 1, 60.0)
        assert found, f"stream {name} not found; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        inlet = pylsl.StreamInlet(found[0], max_buflen=120)
        info = inlet.info(10.0)
        ts: list[float] = []
        rows: list[list[float]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            samples, stamps = inlet.pull_chunk(timeout=0.5)
            rows.extend(samples)
            ts.extend(stamps)
            if proc.poll() is not None and not samples:
                break
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"published {video.n_frames} frames" in out

    # the stream is fully described
    assert info.type() == "Face" and info.channel_count() == len(FEATURE_CHANNELS)
    ch = info.desc().child("channels").child("channel")
    got = []
    while not ch.empty():
        got.append((ch.child_value("label"), ch.child_value("unit")))
        ch = ch.next_sibling()
    assert got == list(FEATURE_CHANNELS)

    # every frame arrived, stamped start + container time
    x = np.array(rows, dtype=float)
    assert x.shape == (video.n_frames, len(FEATURE_CHANNELS))
    np.testing.assert_allclose(np.array(ts) - start, video.times, atol=1e-4)

    labels = [c[0] for c in FEATURE_CHANNELS]
    status = x[:, labels.index("status")]
    present = video.face_present()
    assert np.all(status[~present] == STATUS_CODES["no_face"])
    assert np.all(np.isnan(x[~present, labels.index("eye_open_l")]))
    assert np.all(status[present] == STATUS_CODES["ok"])
    rate = x[:, labels.index("pulse_rate")]
    tail = rate[-20:]
    assert np.all(np.abs(tail - bpm) < 3.0), tail


def test_face_cli_bad_file_exits_nonzero_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "scrambled.mov"
    bad.write_bytes(b"\x00\x01garbage" * 1000)
    res = subprocess.run(_cli("face", "--video", str(bad)), capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "scrambled.mov" in res.stderr
    assert "Traceback" not in res.stderr


def test_face_cli_missing_camera_and_bad_arguments() -> None:
    res = subprocess.run(_cli("face", "--camera", "97"), capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "camera 97 is not available" in res.stderr
    assert "Traceback" not in res.stderr
    res = subprocess.run(_cli("face"), capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "exactly one of --video FILE or --camera N" in res.stderr
