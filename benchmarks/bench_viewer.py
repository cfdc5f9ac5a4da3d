"""Frame rate of the viewer against plain pyqtgraph at its best, and the viewer's memory over
a long run: 64 EEG channels at 1 kHz plus ECG, EDA, PPG and respiration (also 1 kHz),
offscreen at 1280 x 800.

The simulator runs in the process (a source-engine thread, real time). Two windows draw the same
hub:

- ours: :class:`physioaffect.viewer.window.ViewerWindow` (metrics thread, markers, one
  neurofeedback target), refreshing as fast as it can (timer interval 0);
- the baseline: plain pyqtgraph with its own speed options on, as its documentation
  recommends for large data: one ``PlotDataItem`` per channel with every sample,
  ``PlotItem.setDownsampling(auto=True, mode="peak")``, ``setClipToView(True)``,
  ``autoDownsampleFactor=1`` (one sample pair per pixel, as ours) and ``skipFiniteCheck=True``;
  the same rows (EEG + 4 peripheral plots) in a graphics layout of the same pixel size as
  ours, per-channel scale updated once a second as ours, timer interval 0.

They are measured in one run, alternating (ours, baseline, ours, ...; ``--rounds`` segments
of ``--segment`` s each; only the measured window is shown and its timers run; our metrics
thread is stopped during baseline segments). A frame is a paint event of the plot area (the
scene really rasterised into the window's backing store). Per segment: frames per second and
process CPU seconds per frame (all threads, the simulator's included, which runs in both).
The ratio is median fps (ours) / median fps (baseline).

Then ours alone for ``--memory-seconds``: resident memory (RSS) sampled every 5 s; growth is
the slope after the first 20 %.

Usage::

    .venv/bin/python benchmarks/bench_viewer.py                 # 6 x 2 x 15 s, then 600 s
    .venv/bin/python benchmarks/bench_viewer.py --rounds 3 --segment 10 --memory-seconds 60

Writes ``benchmarks/results/viewer.json`` and screenshots of both windows.
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


class PaintCounter:
    """Counts paint events of a widget's viewport."""

    def __init__(self, widget) -> None:
        from PySide6 import QtCore

        self.count = 0
        counter = self

        class Filter(QtCore.QObject):
            def eventFilter(self, obj, ev):  # noqa: N802 - Qt API
                if ev.type() == QtCore.QEvent.Type.Paint:
                    counter.count += 1
                return False

        self._filter = Filter()
        widget.viewport().installEventFilter(self._filter)


class PlainPyqtgraph:
    """The same streams drawn the plain pyqtgraph way, with pyqtgraph's speed options on."""

    PERIPHERAL = ("ECG", "GSR", "PPG", "RESP")

    def __init__(self, hub, eeg_name: str, size: tuple[int, int], heights: list[int],
                 window_s: float = 10.0):
        import pyqtgraph as pg
        from PySide6 import QtCore

        self.hub, self.eeg_name, self.window_s = hub, eeg_name, window_s
        self.glw = pg.GraphicsLayoutWidget()
        self.glw.resize(*size)
        info = hub.infos[eeg_name]
        self.n = info.n_channels
        self.eeg_plot = self.glw.addPlot(row=0, col=0)
        self._same_frame(self.eeg_plot, heights[0], bottom=True, title="EEG")
        self.curves = [self._curve(self.eeg_plot, (200, 200, 255)) for _ in range(self.n)]
        self._speed_options(self.eeg_plot)
        self.eeg_plot.setYRange(-0.7, self.n - 0.3, padding=0)
        self.eeg_plot.setXRange(-window_s, 0, padding=0)
        self.periph = {}
        for row, kind in enumerate(self.PERIPHERAL, start=1):
            name = next((n for n, i in hub.infos.items() if i.type.upper() == kind), None)
            if name is None:
                continue
            p = self.glw.addPlot(row=row, col=0)
            self._same_frame(p, heights[row], bottom=row == len(self.PERIPHERAL), title=kind)
            self._speed_options(p)
            p.setXLink(self.eeg_plot)
            self.periph[name] = (p, self._curve(p, (240, 160, 160)))
        self._scale = np.ones(self.n)
        self._centre = np.zeros(self.n)
        self._last_scale = 0.0
        self.timer = QtCore.QTimer()
        self.timer.timeout.connect(self.frame)

    @staticmethod
    def _same_frame(plot, height: int, bottom: bool, title: str) -> None:
        """Title, axes and height as ours, so that the plot areas have the same pixel size."""
        plot.setFixedHeight(height)
        plot.setTitle(title, size="9pt" if title == "EEG" else "8pt")
        plot.showAxis("right")
        plot.getAxis("left").setWidth(48)
        plot.getAxis("right").setWidth(48)
        if bottom:
            plot.getAxis("bottom").setLabel("time (s)")
        else:
            plot.hideAxis("bottom")

    @staticmethod
    def _speed_options(plot) -> None:
        plot.setDownsampling(auto=True, mode="peak")
        plot.setClipToView(True)

    @staticmethod
    def _curve(plot, color):
        import pyqtgraph as pg

        c = plot.plot(pen=pg.mkPen(color, width=1), skipFiniteCheck=True)
        c.opts["autoDownsampleFactor"] = 1.0  # one min/max pair per pixel column, as ours
        return c

    def frame(self) -> None:
        info = self.hub.infos[self.eeg_name]
        ts, x = self.hub.buffers[self.eeg_name].latest(int(self.window_s * info.nominal_srate))
        if len(ts) < 2:
            return
        t = ts - ts[-1]
        now = time.monotonic()
        if now - self._last_scale > 1.0:  # as ours: robust scale and centre once a second
            recent = x[-int(min(len(x), 2 * info.nominal_srate)):]
            med = np.median(recent, axis=0)
            mad = np.median(np.abs(recent - med), axis=0) * 1.4826
            self._scale, self._centre = 1.0 / np.maximum(4.0 * mad, 1e-6), med
            self._last_scale = now
        for i, c in enumerate(self.curves):
            c.setData(t, (x[:, i] - self._centre[i]) * self._scale[i] + (self.n - 1 - i))
        for name, (_, c) in self.periph.items():
            pi = self.hub.infos[name]
            pts, px = self.hub.buffers[name].latest(int(self.window_s * pi.nominal_srate))
            if len(pts) > 1:
                c.setData(pts - ts[-1], px[:, 0])

    def eeg_size(self) -> tuple[int, int]:
        vb = self.eeg_plot.getViewBox()
        return int(vb.width()), int(vb.height())


def measure(app, counter: PaintCounter, seconds: float, tick=None) -> tuple[float, float, int]:
    """(frames/s, CPU s per frame, frames) over ``seconds`` of turning the event loop."""
    c0, p0, t0 = counter.count, time.process_time(), time.monotonic()
    while time.monotonic() - t0 < seconds:
        app.processEvents()
        if tick is not None:
            tick()
    dt, frames = time.monotonic() - t0, counter.count - c0
    return frames / dt, (time.process_time() - p0) / max(frames, 1), frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6, help="alternating rounds (default 6)")
    ap.add_argument("--segment", type=float, default=15.0, help="s per segment (default 15)")
    ap.add_argument("--memory-seconds", type=float, default=600.0,
                    help="then ours alone for this long, for memory (default 600; 0: skip)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "viewer.json")
    args = ap.parse_args()

    from PySide6 import QtWidgets

    from physioaffect.sources import Acquisition
    from physioaffect.viewer.feedback import parse_targets
    from physioaffect.viewer.metrics import MetricsWorker
    from physioaffect.viewer.window import ViewerWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    engine = Acquisition.from_specs(f"sim?eeg_channels=64&rate=1000&prefix=vb{os.getpid()}", hub_seconds=30.0)
    engine.start()
    time.sleep(11.0)  # fill the 10 s window
    win = ViewerWindow(engine, window_s=10.0, targets=parse_targets("faa>0.1"),
                       lsl_markers=False, title="benchmark")
    win.resize(1280, 800)
    win.show()
    ours = PaintCounter(win.glw)
    win.start(0)
    measure(app, ours, 3.0)  # lay out, first metrics
    eeg_name = win._eeg_name or ""
    heights = [int(win.eeg_plot.geometry().height())] + [
        int(p.geometry().height()) for p in win.periph_plots.values()]
    base = PlainPyqtgraph(engine.hub, eeg_name, (win.glw.width(), win.glw.height()), heights)
    theirs = PaintCounter(base.glw)
    vb = win.eeg_plot.getViewBox()
    sizes = {"ours_eeg_plot_px": [int(vb.width()), int(vb.height())],
             "ours_layout_px": [win.glw.width(), win.glw.height()]}
    marker_k = [0]
    next_marker = [time.monotonic() + 2.0]

    def markers() -> None:  # markers keep arriving, as in a session
        if time.monotonic() >= next_marker[0]:
            marker_k[0] += 1
            win.send_marker(f"bench-{marker_k[0]}")
            next_marker[0] = time.monotonic() + 2.0

    rows = []
    for r in range(args.rounds):
        fps, cpu, frames = measure(app, ours, args.segment, markers)
        rows.append({"round": r + 1, "viewer": "ours", "fps": fps, "cpu_s_per_frame": cpu,
                     "frames": frames, "load": os.getloadavg()[0]})
        win.timer.stop()
        win.metrics.stop()
        win.hide()
        base.glw.show()
        base.timer.start(0)
        measure(app, theirs, 1.0)  # settle (first layout, first downsampling)
        if "baseline_eeg_plot_px" not in sizes:
            sizes["baseline_eeg_plot_px"] = list(base.eeg_size())
        fps, cpu, frames = measure(app, theirs, args.segment)
        rows.append({"round": r + 1, "viewer": "pyqtgraph (speed options on)", "fps": fps,
                     "cpu_s_per_frame": cpu, "frames": frames, "load": os.getloadavg()[0]})
        if r == args.rounds - 1:
            base.glw.grab().save(str(ROOT / "benchmarks" / "results" / "viewer_baseline.png"))
        base.timer.stop()
        base.glw.hide()
        win.metrics = MetricsWorker(engine.hub, interval=1.0).start()
        win.show()
        win.start(0)
        measure(app, ours, 1.0)  # settle
        print(f"round {r + 1}: ours {rows[-2]['fps']:.1f} fps, baseline {rows[-1]['fps']:.1f} fps",
              flush=True)
    shot = ROOT / "benchmarks" / "results" / "viewer_64ch_1khz.png"
    win.grab().save(str(shot))

    samples = []  # (t, rss, paints)
    if args.memory_seconds > 0:
        t0 = time.monotonic()
        next_sample = t0
        while True:
            app.processEvents()
            markers()
            now = time.monotonic()
            if now >= next_sample:
                samples.append((now - t0, rss_mb(), ours.count))
                next_sample = now + 5.0
                if samples[-1][0] >= args.memory_seconds:
                    break
    win.shutdown()
    engine.stop()

    ours_fps = [x["fps"] for x in rows if x["viewer"] == "ours"]
    base_fps = [x["fps"] for x in rows if x["viewer"] != "ours"]
    ours_cpu = [x["cpu_s_per_frame"] for x in rows if x["viewer"] == "ours"]
    base_cpu = [x["cpu_s_per_frame"] for x in rows if x["viewer"] != "ours"]
    load = os.getloadavg()
    result = {
        "benchmark": "viewer vs plain pyqtgraph (speed options on): 64 ch EEG at 1 kHz + ECG, "
                     "EDA, PPG, RESP at 1 kHz, offscreen 1280x800 window, 10 s shown",
        "machine": f"{platform.machine()}, {os.cpu_count()} vCPU, no GPU, shared with other "
                   f"jobs (load average {load[0]:.1f} at the end)",
        "baseline_settings": "PlotItem.setDownsampling(auto=True, mode='peak'), "
                             "setClipToView(True), PlotDataItem autoDownsampleFactor=1, "
                             "skipFiniteCheck=True, one PlotDataItem per channel, timer 0",
        "plot_sizes": sizes,
        "rounds": rows,
        "ours_fps_median": float(np.median(ours_fps)),
        "baseline_fps_median": float(np.median(base_fps)),
        "fps_ratio_median": float(np.median(ours_fps) / np.median(base_fps)),
        "fps_ratio_per_round": [a / b for a, b in zip(ours_fps, base_fps, strict=True)],
        "ours_cpu_ms_per_frame_median": 1e3 * float(np.median(ours_cpu)),
        "baseline_cpu_ms_per_frame_median": 1e3 * float(np.median(base_cpu)),
        "goal": "ours >= 3x the baseline's frame rate",
        "screenshot": str(shot.relative_to(ROOT)),
    }
    result["goal_met"] = bool(result["fps_ratio_median"] >= 3.0)
    if len(samples) >= 2:
        s = np.array(samples)
        warm = s[s[:, 0] >= 0.2 * s[-1, 0]]
        slope = float(np.polyfit(warm[:, 0], warm[:, 1], 1)[0]) if len(warm) >= 3 \
            else float("nan")
        result.update({
            "memory_run_s": float(s[-1, 0]),
            "memory_run_fps_mean": float((s[-1, 2] - s[0, 2]) / (s[-1, 0] - s[0, 0])),
            "rss_mb_start": float(s[0, 1]), "rss_mb_end": float(s[-1, 1]),
            "rss_mb_max": float(s[:, 1].max()),
            "rss_growth_mb_per_min_after_warmup": slope * 60.0,
            "rss_series": [[round(a, 1), round(b, 1)] for a, b in s[:, :2]],
        })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("rss_series", "rounds")},
                     indent=2))
    print(f"written to {args.out}")
    sys.stdout.flush()
    os._exit(0)  # skip the interpreter's teardown of Qt objects (see cli/realtime.py)


if __name__ == "__main__":
    main()
