"""The viewer with live streams, offscreen, in subprocesses (Qt stays out of the test process):
``physioaffect view`` writes a screenshot that shows traces; marker keys (QTest key events)
reach an LSL inlet here; the record button writes a session file; a prediction stream that
appears on the network brings up the neurofeedback panel (and a Face stream the face panel);
a lost LSL stream is shown as lost
and drawn again when it returns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pylsl
import pytest
from conftest import cli

from physioaffect.recording import read_session

ENV = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}


def _background_share(img: np.ndarray) -> float:
    """Fraction of pixels equal to the most common colour (the background)."""
    flat = (img[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    _, counts = np.unique(flat, axis=0, return_counts=True)
    return counts.max() / len(flat)


def test_view_command_draws_live_traces(tmp_path):
    import matplotlib.image as mpimg

    shot = tmp_path / "view.png"
    r = subprocess.run(cli("view", "--source", f"sim?eeg_channels=32&rate=256&prefix=vw{os.getpid()}",
                           "--duration", "7", "--screenshot", str(shot)),
                       capture_output=True, text=True, timeout=120, env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "frames" in r.stdout
    img = mpimg.imread(shot)
    h, w = img.shape[:2]
    assert (w, h) == (1280, 800)
    eeg = img[int(0.06 * h):int(0.36 * h), int(0.06 * w):int(0.7 * w)]
    periph = img[int(0.45 * h):int(0.95 * h), int(0.06 * w):int(0.7 * w)]
    # traces cover the EEG area with several colours and vary; peripheral plots are drawn too
    assert 1 - _background_share(eeg) > 0.15
    assert eeg.reshape(-1, eeg.shape[-1])[:, :3].std(axis=0).mean() > 0.05
    colours = np.unique((eeg[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) >= 4
    assert 1 - _background_share(periph) > 0.01


#: Start of every viewer script: an offscreen Qt application and ``run(seconds)``, which turns
#: Qt's event loop for that long.
PRELUDE = r'''
import json, os, sys, threading, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
import numpy as np, pylsl
from PySide6 import QtWidgets
app = QtWidgets.QApplication([])
from physioaffect.sources import Acquisition
from physioaffect.viewer.window import ViewerWindow


def run(seconds):
    t = time.monotonic() + seconds
    while time.monotonic() < t:
        app.processEvents()
        time.sleep(0.005)
'''

SCRIPT = PRELUDE + r'''
from PySide6 import QtCore
from PySide6.QtTest import QTest
from physioaffect.viewer.feedback import parse_targets
from physioaffect.viewer.watch import LSLWatcher

prefix, marker_name, pred_name, rec_dir, shot = sys.argv[1:6]
# a decoder stand-in: a Prediction stream (valence, arousal) that appears after the viewer
info = pylsl.StreamInfo(pred_name, "Prediction", 2, 4.0, pylsl.cf_float32, pred_name)
ch = info.desc().append_child("channels")
for lab in ("valence", "arousal"):
    ch.append_child("channel").append_child_value("label", lab)
# and a face-analysis stand-in (type Face, channels as physioaffect face publishes them)
face_name = pred_name + "-face"
finfo = pylsl.StreamInfo(face_name, "Face", 4, 30.0, pylsl.cf_float32, face_name)
ch = finfo.desc().append_child("channels")
for lab, unit in (("n_faces", "count"), ("smile", "ratio"), ("brow_raise", "ratio"),
                  ("pulse_rate", "bpm")):
    c = ch.append_child("channel")
    c.append_child_value("label", lab)
    c.append_child_value("unit", unit)
stop = threading.Event()
def predictions():
    time.sleep(1.0)
    out = pylsl.StreamOutlet(info)
    face = pylsl.StreamOutlet(finfo)
    k = 0
    while not stop.is_set():
        out.push_sample([5 + 3 * np.sin(k / 8), 5 + 3 * np.cos(k / 8)])
        face.push_chunk([[1.0, 0.5 + 0.1 * np.sin(k / 3 + j / 4), 0.2, 72.0] for j in range(8)])
        k += 1
        time.sleep(0.25)
threading.Thread(target=predictions, daemon=True).start()

engine = Acquisition.from_specs(f"sim?eeg_channels=8&rate=256&prefix={prefix}", hub_seconds=30.0).start()
watcher = LSLWatcher(engine, [pred_name, face_name]).start()
win = ViewerWindow(engine, targets=parse_targets("arousal<4,faa>0"), record_dir=rec_dir,
                   marker_keys={"1": "baseline", "2": "stimulus"}, marker_stream=marker_name,
                   subject="test", task="viewer")
win.show()
win.start(30)
t_end = time.monotonic() + 30
while not win.marker_outlet.have_consumers() and time.monotonic() < t_end:
    run(0.1)
run(1.0)
QTest.mouseClick(win.record_button, QtCore.Qt.MouseButton.LeftButton)
run(0.5)
win.activateWindow()
win.setFocus()
QTest.keyClick(win, "1")
run(0.5)
QTest.keyClick(win, "2")
QTest.keyClick(win, "x")  # not a marker key
run(2.0)
QTest.mouseClick(win.record_button, QtCore.Qt.MouseButton.LeftButton)
run(2.0)
# under load the Face and Prediction inlets can be discovered before their first samples
# arrive: give them time
t_end = time.monotonic() + 20
while (not win.face_label.text() or len(win._trail) < 4) and time.monotonic() < t_end:
    run(0.1)
win.grab().save(shot)
result = {
    "size": [win.width(), win.height()],
    "side_scrolls": win.side_scroll.verticalScrollBar().isVisible(),
    "sent": win.markers_sent, "recording": str(win.last_recording),
    "nf_visible": win.nf_box.isVisible(), "trail": len(win._trail),
    "va_visible": win.va_plot.isVisible(),
    "target_text": [lab.text() for lab, _ in win.target_bars],
    "face_visible": win.face_box.isVisible(), "face_text": win.face_label.text(),
    "frames": win.frames,
}
print("RESULT " + json.dumps(result), flush=True)
stop.set()
win.shutdown()
watcher.stop()
engine.stop()
os._exit(0)
'''


def test_marker_keys_recording_and_neurofeedback(tmp_path):
    script = tmp_path / "viewer_script.py"
    script.write_text(SCRIPT)
    tag = f"{os.getpid()}"
    marker_name, pred_name = f"vmk{tag}-markers", f"vmk{tag}-pred"
    shot = tmp_path / "nf.png"
    proc = subprocess.Popen([sys.executable, str(script), f"vmk{tag}", marker_name, pred_name,
                             str(tmp_path), str(shot)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        found = pylsl.resolve_bypred(f"name='{marker_name}'", 1, 60)
        assert found, "the viewer's marker outlet never appeared"
        inlet = pylsl.StreamInlet(found[0], processing_flags=pylsl.proc_clocksync)
        inlet.open_stream(timeout=10)
        got = []
        t_end = time.monotonic() + 40
        while len(got) < 2 and time.monotonic() < t_end:
            s, t = inlet.pull_sample(timeout=0.2)
            if t is not None:
                got.append((s[0], t, pylsl.local_clock()))
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    result = json.loads(next(line for line in out.splitlines()
                             if line.startswith("RESULT "))[7:])
    # the keys produced LSL markers with the configured texts, in order, stamped when sent
    assert [g[0] for g in got] == ["baseline", "stimulus"]
    sent = result["sent"]
    assert [s[1] for s in sent] == ["baseline", "stimulus"]
    for (_, t_recv, _), (t_sent, _) in zip(got, sent, strict=True):
        assert t_recv == pytest.approx(t_sent, abs=0.01)
    assert got[1][2] - got[1][1] < 1.0
    # the record button wrote a session with the EEG and the markers typed while recording
    session = read_session(result["recording"])
    names = {s.info.type: s for s in session.streams.values()}
    eeg = names["EEG"]
    assert 2.5 * 256 * 0.8 < len(eeg.timestamps) < 5 * 256
    texts = [m.text for m in session.markers]
    assert "baseline" in texts and "stimulus" in texts
    # the prediction stream appeared on the network and the valence-arousal plane came up
    assert result["nf_visible"] and result["va_visible"] and result["trail"] >= 4
    # with every panel up (8 streams, neurofeedback, face) the window keeps 1280 x 800 and
    # the side panel fits without scrolling
    assert result["size"] == [1280, 800] and not result["side_scrolls"]
    assert any("arousal" in t and "n/a" not in t for t in result["target_text"])
    # a Face stream appeared too: the face panel shows its pulse rate
    assert result["face_visible"] and "72 bpm" in result["face_text"]


RECONNECT = PRELUDE + r'''

name = sys.argv[1]
def make_outlet():
    info = pylsl.StreamInfo(name, "EEG", 4, 128.0, pylsl.cf_float32, name)
    ch = info.desc().append_child("channels")
    for lab in ("Fz", "Cz", "Pz", "Oz"):
        c = ch.append_child("channel")
        c.append_child_value("label", lab)
        c.append_child_value("unit", "microvolts")
    return pylsl.StreamOutlet(info)
phase = {"outlet": make_outlet(), "on": True}
def feed():
    k = 0
    while phase["on"] is not None:
        out = phase["outlet"]
        if out is not None:
            t = np.arange(k, k + 4) / 128.0
            out.push_chunk((20 * np.sin(2 * np.pi * 10 * t)[:, None] * np.ones(4)).tolist())
        k += 4
        time.sleep(4 / 128.0)
threading.Thread(target=feed, daemon=True).start()
engine = Acquisition.from_specs(f"lsl:{name}?timeout=20", hub_seconds=30.0).start()
win = ViewerWindow(engine, lsl_markers=False)
win.show()
win.start(30)
buf = engine.hub.buffers[name]
run(3.0)
before = buf.total_written
status_on = win.status_label.text()
phase["outlet"] = None  # the device goes away (outlet destroyed)
import gc; gc.collect()
run(4.0)
status_lost = win.status_label.text()
during = buf.total_written
phase["outlet"] = make_outlet()  # and comes back under the same name
run(5.0)
status_back = win.status_label.text()
after = buf.total_written
print("RESULT " + json.dumps({"before": before, "during": during, "after": after,
      "on": status_on, "lost": status_lost, "back": status_back}), flush=True)
phase["on"] = None
win.shutdown()
engine.stop()
os._exit(0)
'''


def test_viewer_shows_a_lost_stream_and_draws_it_again_when_it_returns(tmp_path):
    script = tmp_path / "reconnect.py"
    script.write_text(RECONNECT)
    r = subprocess.run([sys.executable, str(script), f"vrc{os.getpid()}-EEG"],
                       capture_output=True, text=True, timeout=120, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(next(line for line in r.stdout.splitlines()
                          if line.startswith("RESULT "))[7:])
    assert res["before"] > 128 and "ok" in res["on"]
    assert "LOST" in res["lost"]
    assert res["during"] - res["before"] < 1.5 * 128  # nothing arrives while it is gone
    assert res["after"] - res["during"] > 2 * 128  # data flows again after the return
    assert "LOST" not in res["back"] and "ok" in res["back"]
