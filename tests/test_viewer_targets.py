"""Neurofeedback on a feature alone (no decoder, no Prediction stream), the viewer's scales and
labels at 1280 x 800, and the incremental pixel columns it draws from.

The viewer runs offscreen in a subprocess (Qt stays out of the test process) on the simulator
through the real acquisition engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from test_viewer_live import ENV, PRELUDE

from physioaffect.streams.ring import RingBuffer
from physioaffect.viewer.raster import ColumnCache


def test_column_cache_reduces_only_new_samples_and_matches_a_direct_reduction():
    rng = np.random.default_rng(0)
    buf, cache, t = RingBuffer(30_000, 3), ColumnCache(), 0
    changed = []
    for _ in range(1500):
        n = int(rng.integers(5, 40))
        buf.write(np.arange(t, t + n) / 1000, rng.normal(0, 1, (n, 3)).astype(np.float32))
        t += n
        if t > 12_000:
            changed.append(cache.update(buf, 10_000, 777))
    assert changed[0] == 777 and max(changed[1:]) <= 4  # after the first frame: a few columns
    j = cache.j_last
    edges = (np.arange(j - 776, j + 2) * 10_000) // 777
    first, _, x = buf.read_range(int(edges[0]), int(edges[-1]))
    assert first == edges[0] and edges[-1] == cache.end == (t * 777 // 10_000) * 10_000 // 777
    for k, (a, b) in enumerate(zip(edges[:-1] - first, edges[1:] - first, strict=True)):
        np.testing.assert_array_equal(cache.lo[k], x[a:b].min(axis=0))
        np.testing.assert_array_equal(cache.hi[k], x[a:b].max(axis=0))
    # a channel subset or another width starts over
    assert cache.update(buf, 10_000, 777, np.array([0, 2])) == 777 and cache.lo.shape == (777, 2)


SCRIPT = PRELUDE + r'''
from physioaffect.viewer.feedback import parse_targets
from physioaffect.viewer.raster import ColumnCache, RasterTraces, rasterize
from physioaffect.streams.ring import RingBuffer

# incremental scrolling draws exactly what a full redraw draws
rng = np.random.default_rng(1)
buf, cache, tr, t, same = RingBuffer(30000, 3), ColumnCache(), RasterTraces(), 0, True
colors = np.array([0xFFFF0000, 0xFF00FF00, 0xFF0000FF], dtype=np.uint32)
offs, gains = np.array([2.0, 1.0, 0.0]), np.full(3, 0.3)
for step in range(300):
    n = int(rng.integers(5, 40))
    x = np.sin(2 * np.pi * 1.3 * np.arange(t, t + n) / 1000)[:, None] + rng.normal(0, .1, (n, 3))
    buf.write(np.arange(t, t + n) / 1000, x.astype(np.float32))
    t += n
    changed = cache.update(buf, 4000, 500)
    tr.scroll(cache.lo, cache.hi, changed, (0, 1), (-0.7, 2.7), offs, gains, colors, 90)
    full = rasterize(cache.lo, cache.hi, offs, gains, 90, (-0.7, 2.7), colors)
    same = same and bool(np.array_equal(full, tr._buf))

prefix = sys.argv[1]
engine = Acquisition.from_specs(f"sim?eeg_channels=64&rate=128&prefix={prefix}",
                               hub_seconds=30.0).start()
# FAA above -100 is always met once computed; a heart rate below 1 bpm never is
win = ViewerWindow(engine, targets=parse_targets("faa>-100,hr<1"), lsl_markers=False)
win.resize(1280, 800)
win.show()
win.start(30)
t_end = time.monotonic() + 40
while time.monotonic() < t_end:
    run(0.2)
    if all("n/a" not in lab.text() for lab, _ in win.target_bars) and win.target_bars:
        break
run(1.0)
labels = [w for w in win.findChildren(QtWidgets.QLabel) if w.isVisible() and w.text()]
cut = [w.text() for w in labels if not w.wordWrap()
       and w.fontMetrics().horizontalAdvance(w.text()) > w.width()]
left = [text for _, text in win.eeg_plot.getAxis("left")._tickLevels[0]]
right = [text for _, text in win.eeg_plot.getAxis("right")._tickLevels[0]]
result = {
    "same": same, "nf_visible": win.nf_box.isVisible(), "va_visible": win.va_plot.isVisible(),
    "targets": [lab.text() for lab, _ in win.target_bars],
    "bars": [bar.styleSheet() for _, bar in win.target_bars],
    "reward": win.reward_label.text(), "cut": cut, "labels": left + right,
    "channels": engine.hub.infos[win._eeg_name].labels, "title": win.eeg_plot.titleLabel.text,
    "bar_text": win.scale_text.textItem.toPlainText(), "lane_uv": win._lane_uv,
    "ecg_title": win.periph_plots["ECG"].titleLabel.text,
    "ecg_unit": win.periph_plots["ECG"].getAxis("left").labelText,
    "time_label": win.periph_plots["RESP"].getAxis("bottom").labelText,
}
print("RESULT " + json.dumps(result), flush=True)
win.shutdown()
engine.stop()
os._exit(0)
'''


def test_feature_only_targets_scales_and_labels(tmp_path):
    script = tmp_path / "targets.py"
    script.write_text(SCRIPT)
    r = subprocess.run([sys.executable, str(script), f"vtg{os.getpid()}"], capture_output=True,
                       text=True, timeout=120, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(next(line for line in r.stdout.splitlines()
                          if line.startswith("RESULT "))[7:])
    assert res["same"]  # incremental scrolling == a full redraw
    # neurofeedback without a decoder: the panel is up, the valence/arousal plane is not
    assert res["nf_visible"] and not res["va_visible"]
    faa_text, hr_text = res["targets"]
    assert faa_text.startswith("FAA") and "n/a" not in faa_text
    hr = float(hr_text.rsplit(":", 1)[1])
    assert 40 < hr < 180  # the simulated heart, measured on its ECG
    assert "#40a040" in res["bars"][0] and "#a04040" in res["bars"][1]  # met / not met
    assert res["reward"].startswith("keep going")
    # every channel labelled (left and right axes), amplitude and time scales with units
    assert sorted(res["labels"]) == sorted(res["channels"]) and len(res["labels"]) == 64
    assert f"{res['lane_uv']:g} µV per lane" in res["title"]
    assert res["bar_text"].endswith(" µV") and float(res["bar_text"].split()[0]) > 0
    assert res["ecg_unit"] == "mV" and "HR" in res["ecg_title"]
    assert res["time_label"] == "time (s)"
    assert res["cut"] == []  # no single-line panel text wider than its label
