"""Video source: frame times on the LSL clock, dropped frames, and errors for bad files and
missing cameras."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2", reason="needs the 'face' extra: pip install 'physioaffect[face]'")
pytest.importorskip("skimage", reason="needs scikit-image for the astronaut photograph")

import cv2  # noqa: E402

from physioaffect.face.analysis import (  # noqa: E402
    FEATURE_LABELS,
    PULSE_REASON_CODES,
    STATUS_CODES,
    FaceAnalyzer,
)
from physioaffect.face.source import FrameReader, VideoSource, fill_gaps  # noqa: E402
from physioaffect.face.synthetic import SyntheticFaceVideo  # noqa: E402
from physioaffect.sources.base import SourceError  # noqa: E402
from physioaffect.streams import local_clock  # noqa: E402

FPS = 25.0


@pytest.fixture(scope="module")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SyntheticFaceVideo]:
    video = SyntheticFaceVideo(duration=2.0, fps=FPS, size=(320, 240), face_scale=0.7, seed=5)
    path = video.write(tmp_path_factory.mktemp("face") / "astronaut.avi")
    return path, video


def test_file_frames_are_start_time_plus_container_time(video_file) -> None:
    path, video = video_file
    start = local_clock() - 100.0
    with FrameReader(path, start_time=start) as reader:
        frames = list(reader)
    assert reader.fps == FPS
    assert len(frames) == video.n_frames
    ts = np.array([f.timestamp for f in frames])
    np.testing.assert_allclose(ts, start + np.arange(video.n_frames) / FPS, atol=1e-6)
    # the decoded images are the written frames (MJPG is lossy: compare loosely)
    first = next(iter(video.frames()))
    assert np.abs(frames[0].image.astype(float) - first).mean() < 4.0
    assert all(f.status == "ok" for f in frames)


def test_realtime_playback_hands_out_frames_at_their_lsl_time(video_file) -> None:
    """A file played in real time behaves like a camera: each row arrives at (not before)
    its timestamp, and the first frame is stamped when playback starts."""
    path, video = video_file
    t_open = local_clock()
    src = VideoSource(path, realtime=True)
    received: list[tuple[float, float]] = []
    with src:
        while not src.exhausted:
            for chunk in src.read(0.05):
                now = local_clock()
                received.extend((float(t), now) for t in chunk.timestamps)
    ts = np.array([t for t, _ in received])
    arrival = np.array([a for _, a in received])
    assert len(ts) == video.n_frames
    assert 0 <= ts[0] - t_open < 10.0  # after loading the models
    np.testing.assert_allclose(np.diff(ts), 1 / FPS, atol=1e-6)
    assert np.all(arrival >= ts - 1e-3)  # never published ahead of its own time
    assert np.median(arrival - ts) < 0.5
    assert src.streams[0].type == "Face" and src.streams[0].labels == list(FEATURE_LABELS)


def test_dropped_frames_become_nan_rows_at_the_missing_times(video_file) -> None:
    path, _ = video_file
    start = 50.0
    with FrameReader(path, start_time=start) as reader:
        decoded = [(f.timestamp, f.image) for f in reader]
    lost = {10, 11, 12, 30}
    kept = [fr for i, fr in enumerate(decoded) if i not in lost]
    frames = list(fill_gaps(kept, FPS))
    assert len(frames) == len(decoded)
    dropped = [f.index for f in frames if f.status == "dropped"]
    assert set(dropped) == lost
    np.testing.assert_allclose([f.timestamp for f in frames], start + np.arange(len(decoded)) / FPS, atol=1e-6)
    with FaceAnalyzer() as fa:
        rows = [fa.missing(f.timestamp, f.status) if f.image is None else fa.process(f.image, f.timestamp) for f in frames]
    for i in lost:
        assert rows[i].status == "dropped" and rows[i]["status"] == STATUS_CODES["dropped"]
        # nothing measured; the pulse's reason channel says the face (frame) is missing
        assert rows[i]["pulse_reason"] == PULSE_REASON_CODES["face_lost"]
        assert np.all(np.isnan(np.delete(rows[i].values, [0, FEATURE_LABELS.index("pulse_reason")])))
    # motion needs two consecutive frames: none right after a hole, a value otherwise
    assert np.isnan(rows[13]["motion_energy"]) and np.isfinite(rows[14]["motion_energy"])


def test_corrupt_and_missing_files_name_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "broken.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(SourceError, match="broken.mp4"):
        FrameReader(junk).open()
    text = tmp_path / "notes.avi"
    text.write_text("not a video\n" * 100)
    with pytest.raises(SourceError, match="notes.avi"):
        VideoSource(text).start()
    with pytest.raises(SourceError, match="does not exist"):
        FrameReader(tmp_path / "nowhere.avi").open()


def test_unavailable_camera_is_a_clear_error() -> None:
    # no camera exists on a test machine; index 97 is not one even where cameras exist
    cap = cv2.VideoCapture(97)
    opened = cap.isOpened()
    cap.release()
    if opened:
        pytest.skip("this machine has a camera at index 97")
    with pytest.raises(SourceError, match="camera 97 is not available"):
        VideoSource(97).start()


def test_truncated_file_is_reported_not_padded(video_file, tmp_path: Path) -> None:
    from physioaffect.face.analysis import analyze_video

    path, video = video_file
    cut = tmp_path / "cut.avi"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.warns(RuntimeWarning, match=r"cut\.avi ended after \d+ of the 50 frames"):
        table, info = analyze_video(cut, detector="haar")
    assert info["truncated"] and 0 < info["n_frames"] < video.n_frames
    assert len(table) == info["n_frames"]  # no rows made up for the missing half


def test_video_spec_for_the_source_registry(video_file) -> None:
    from physioaffect.sources.base import SourceSpec

    path, video = video_file
    src = VideoSource.from_spec(SourceSpec.parse(f"video:{path}?start_time=5&realtime=0&name=cam"))
    with src:
        chunks = []
        while not src.exhausted:
            chunks.extend(src.read(0.05))
    ts = np.concatenate([c.timestamps for c in chunks])
    assert src.streams[0].name == "cam" and {c.stream for c in chunks} == {"cam"}
    np.testing.assert_allclose(ts, 5.0 + np.arange(video.n_frames) / FPS, atol=1e-6)
    assert VideoSource.from_spec(SourceSpec.parse("video:0")).reader.is_camera
    with pytest.raises(ValueError, match="unknown parameter"):
        VideoSource.from_spec(SourceSpec.parse(f"video:{path}?fps=3"))


def test_publish_stops_after_duration_of_video_time(video_file) -> None:
    """``--duration`` counts the frames' own time: 1 s of a 25 fps file is 25 frames."""
    from physioaffect.face.publish import publish_face

    path, _ = video_file
    lines: list[str] = []
    summary = publish_face(VideoSource(path, start_time=0.0, name="face-duration-test"), duration=1.0, echo=lines.append)
    assert summary["samples"] == 25
    assert summary["first_time"] == 0.0 and summary["last_time"] == pytest.approx(24 / FPS)
    assert any("face-duration-test" in line for line in lines)
