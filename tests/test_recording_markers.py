"""Markers from the keyboard of the recording terminal (a real pseudo-terminal) and
``physioaffect mark`` without a recorder."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from physioaffect.recording import read_session
from physioaffect.recording.markers import parse_marker_keys


def test_keyboard_markers_in_a_terminal(tmp_path):
    pid, fd = pty.fork()
    if pid == 0:  # the recorder, with a terminal as stdin
        os.execv(sys.executable, [
            sys.executable, "-m", "physioaffect.cli.main", "record", "--source",
            "sim?eeg_channels=4&rate=128", "--subject", "1", "--session", "1", "--task", "kb",
            "--out", str(tmp_path), "--duration", "4", "--marker-keys", "b=baseline,s=stimulus",
            "--mark-port", "0"])
    out, sent, t_seen = b"", [], None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
        if t_seen is None and b"keys b, s add markers" in out:
            t_seen = time.monotonic()
        if t_seen is not None and not sent and time.monotonic() - t_seen > 0.5:
            for key in (b"s", b"x", b"b"):  # x is not mapped: no marker
                os.write(fd, key)
                sent.append(key)
                time.sleep(0.3)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, out.decode(errors="replace")[-2000:]
    assert sent, out.decode(errors="replace")[-2000:]
    s = read_session(tmp_path / "sub-1_ses-1_task-kb_run-1_physio.h5")
    marks = [m for m in s.markers if m.stream == "physioaffect-markers"]
    assert [m.text for m in marks] == ["stimulus", "baseline"]
    assert 0.5 < marks[1].time - marks[0].time < 0.9  # stamped at the key press (0.6 s apart)
    assert s.attrs["configuration"]["marker_keys"] == {"b": "baseline", "s": "stimulus"}


def test_mark_without_a_recorder_and_bad_marker_keys():
    r = subprocess.run([sys.executable, "-m", "physioaffect.cli.main", "mark", "hello",
                        "--port", "9"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "no recorder answered" in r.stderr
    assert "Traceback" not in r.stderr
    assert parse_marker_keys("1=a, 2=b c") == {"1": "a", "2": "b c"}
    for bad in ("12=x", "1", "q=quit"):
        try:
            parse_marker_keys(bad)
        except Exception as err:  # RecordingError with the reason
            assert "marker-keys" in str(err)
        else:
            raise AssertionError(f"{bad!r} accepted")
