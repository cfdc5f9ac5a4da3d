"""Frame rate and memory of the viewer: 64 EEG channels at 1 kHz plus ECG, EDA, PPG and
respiration (also 1 kHz), offscreen at 1280 x 800.

The simulator runs in the viewer's process (a source pump thread, real time), the viewer
refreshes as fast as it can (timer interval 0) with the metrics thread and markers active,
and the paint events of the plot area are counted: a frame is a paint that really
rasterised the scene into the window's backing store. Resident memory (RSS) is sampled every
5 s; growth is the slope of RSS over the run after a warm-up (the first 20%).

For comparison the same data is drawn the plain pyqtgraph way (one ``PlotCurveItem`` per
channel with every sample) for a few seconds.

Usage::

    .venv/bin/python benchmarks/bench_viewer.py               # 10 minutes
    .venv/bin/python benchmarks/bench_viewer.py --seconds 60

Writes ``benchmarks/results/viewer.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def plain_pyqtgraph_fps(hub, eeg_name: str, seconds: float = 5.0) -> float:
    """Frames/s of one PlotCurveItem per channel with every sample (the baseline)."""
    import pyqtgraph as pg
    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance()
    w = pg.GraphicsLayoutWidget()
    w.resize(1280, 800)
    p = w.addPlot()
    info = hub.infos[eeg_name]
    n = info.n_channels
    curves = [p.plot(pen=pg.mkPen((200, 200, 255), width=1)) for _ in range(n)]
    p.setYRange(-1, n, padding=0)
    w.show()
    count = [0]

    class Counter(QtCore.QObject):
        def eventFilter(self, obj, ev):  # noqa: N802 - Qt API
            if ev.type() == QtCore.QEvent.Type.Paint:
                count[0] += 1
            return False

    flt = Counter()
    w.viewport().installEventFilter(flt)

    def frame() -> None:
        ts, x = hub.buffers[eeg_name].latest(int(10 * info.nominal_srate))
        if len(ts) < 2:
            return
        t = ts - ts[-1]
        sd = x.std(axis=0) + 1e-6
        for i, c in enumerate(curves):
            c.setData(t, x[:, i] / (4 * sd[i]) + (n - 1 - i))

    timer = QtCore.QTimer()
    timer.timeout.connect(frame)
    timer.start(0)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        app.processEvents()
    timer.stop()
    fps = count[0] / (time.monotonic() - t0)
    w.close()
    w.deleteLater()
    app.processEvents()
    return fps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="run time, s (default 600)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "viewer.json")
    args = ap.parse_args()

    from PySide6 import QtCore, QtWidgets

    from physioaffect.sources import SourcePump, open_source
    from physioaffect.viewer.feedback import parse_targets
    from physioaffect.viewer.window import ViewerWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    pump = SourcePump(open_source(f"sim?eeg_channels=64&rate=1000&prefix=vb{os.getpid()}"))
    pump.start()
    time.sleep(11.0)  # fill the 10 s window
    win = ViewerWindow(pump.hub, window_s=10.0, targets=parse_targets("faa>0.1"),
                       lsl_markers=False, title="benchmark")
    win.resize(1280, 800)
    win.show()
    paints = [0]

    class Counter(QtCore.QObject):
        def eventFilter(self, obj, ev):  # noqa: N802 - Qt API
            if ev.type() == QtCore.QEvent.Type.Paint:
                paints[0] += 1
            return False

    flt = Counter()
    win.glw.viewport().installEventFilter(flt)
    win.start(0)
    samples = []  # (t, rss, paints, refreshes)
    t0 = time.monotonic()
    next_sample = t0
    next_marker = t0 + 2.0
    k = 0
    while True:
        app.processEvents()
        now = time.monotonic()
        if now >= next_marker:  # markers keep arriving, as in a session
            k += 1
            win.send_marker(f"bench-{k}")
            next_marker = now + 2.0
        if now >= next_sample:
            samples.append((now - t0, rss_mb(), paints[0], win.frames))
            next_sample = now + 5.0
            if samples[-1][0] >= args.seconds:
                break
    win.shutdown()
    grab = win.glw.grab()
    shot = ROOT / "benchmarks" / "results" / "viewer_64ch_1khz.png"
    grab.save(str(shot))
    baseline = plain_pyqtgraph_fps(pump.hub, win._eeg_name or "", seconds=min(8.0, args.seconds))
    pump.stop()

    s = np.array(samples)
    dt = s[-1, 0] - s[0, 0]
    fps = (s[-1, 2] - s[0, 2]) / dt
    per_window = np.diff(s[:, 2]) / np.diff(s[:, 0])
    warm = s[s[:, 0] >= 0.2 * s[-1, 0]]
    slope = float(np.polyfit(warm[:, 0], warm[:, 1], 1)[0]) if len(warm) >= 3 else float("nan")
    load = os.getloadavg()
    result = {
        "benchmark": "viewer: 64 ch EEG at 1 kHz + ECG, EDA, PPG, RESP at 1 kHz, offscreen "
                     "1280x800, 10 s window",
        "machine": f"{platform.machine()}, {os.cpu_count()} vCPU, no GPU, shared with other "
                   f"jobs (load average {load[0]:.1f} at the end)",
        "seconds": float(dt),
        "fps_mean": float(fps),
        "fps_min_5s_window": float(per_window.min()),
        "fps_p5_5s_window": float(np.percentile(per_window, 5)),
        "refreshes_per_s": float((s[-1, 3] - s[0, 3]) / dt),
        "plain_pyqtgraph_fps": float(baseline),
        "rss_mb_start": float(s[0, 1]),
        "rss_mb_end": float(s[-1, 1]),
        "rss_mb_max": float(s[:, 1].max()),
        "rss_growth_mb_per_min_after_warmup": slope * 60.0,
        "rss_series": [[round(a, 1), round(b, 1)] for a, b in s[:, :2]],
        "floor": "fps >= 30, no memory growth",
        "screenshot": str(shot.relative_to(ROOT)),
    }
    result["floor_met"] = bool(fps >= 30.0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rss_series"}, indent=2))
    print(f"written to {args.out}")
    sys.stdout.flush()
    os._exit(0)  # skip the interpreter's teardown of Qt objects (see cli/realtime.py)


if __name__ == "__main__":
    main()
