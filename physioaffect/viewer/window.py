"""The viewer window (PySide6 + pyqtgraph).

Left: scrolling EEG traces (decimated to pixels and scrolled incrementally,
:mod:`physioaffect.viewer.raster`) at one shared sensitivity (microvolts per lane, with a
scale bar), every channel labelled, per-channel gains and a channel selection; then ECG (heart
rate), EDA (tonic level and responses), PPG (pulse rate) and respiration (breathing rate), each
in its stream's unit, all on one time axis in seconds whose 0 is the newest EEG sample; markers
are drawn as vertical lines on every trace.

Right: stream status, the record button, the channel list and gain controls, band-power bars
with frontal alpha asymmetry, the neurofeedback panel when targets are given (target bars with
thresholds; the valence-arousal plane with the current state and its trail once a prediction
stream is present) and the face panel with a Face stream.

Keys 1-9 send markers: an LSL ``Markers`` outlet (``physioaffect-viewer-markers``) and a
stream of the acquisition engine (so the hub shows them and a recording started from the
viewer holds them).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from physioaffect.recording import SessionWriter, choose_session_path
from physioaffect.recording.recorder import Recorder
from physioaffect.sinks.lsl import LSLOutlet
from physioaffect.sources.engine import Acquisition
from physioaffect.streams import (
    IRREGULAR_RATE,
    Chunk,
    RingReader,
    StreamInfo,
    local_clock,
)
from physioaffect.streams.units import unit_symbol
from physioaffect.viewer.feedback import FeedbackTarget, metric_values, va_from_prediction
from physioaffect.viewer.metrics import MetricsWorker, quality_note
from physioaffect.viewer.raster import ColumnCache, RasterTraces

__all__ = ["VIEWER_MARKERS", "ViewerWindow", "default_marker_keys"]

#: The stream the viewer's marker keys publish to (LSL) and write into the hub.
VIEWER_MARKERS = StreamInfo.from_labels(
    "physioaffect-viewer-markers", "Markers", ["marker"], IRREGULAR_RATE, "",
    channel_format="string", source_id="physioaffect-viewer-markers",
    device={"manufacturer": "physioaffect", "model": "viewer keyboard"},
)

_PERIPHERAL = (("ECG", "ECG", "mV"), ("GSR", "EDA", "\u00b5S"), ("PPG", "PPG", "a.u."),
               ("RESP", "Respiration", "a.u."))
_BG = "#101418"
_PALETTE = np.array([0xFF8FB8FF, 0xFFA6E3A1, 0xFFF9E2AF, 0xFFF5C2E7], dtype=np.uint32)
_PERIPH_COLORS = ("#f38ba8", "#89dceb", "#fab387", "#a6e3a1")
#: Height of each peripheral plot in pixels (title and plot); the EEG takes the rest.
_PERIPH_HEIGHT = 74
#: Empty margin left of the oldest sample, as a fraction of the window: the scale bar's place.
_LEFT_MARGIN = 0.07


def _unit_symbol(unit: str) -> str:
    return str(unit_symbol(unit, "a.u."))


def nice_value(x: float) -> float:
    """The 1-2-5 number (1, 2, 5, 10, 20, ...) nearest above ``x`` (a readable scale)."""
    if not np.isfinite(x) or x <= 0:
        return 1.0
    exp = np.floor(np.log10(x))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10 ** exp >= x * 0.999:
            return float(m * 10 ** exp)
    return float(10 ** (exp + 1))


def default_marker_keys() -> dict[str, str]:
    """Keys 1-9 send ``key-1`` .. ``key-9``."""
    return {str(i): f"key-{i}" for i in range(1, 10)}


def _marker_label(text: str) -> str:
    try:
        obj = json.loads(text)
    except (ValueError, TypeError):
        return text[:24]
    if isinstance(obj, dict):
        ev = str(obj.get("event", ""))
        extra = ""
        if "arousal" in obj and "valence" in obj:
            extra = f" v{obj['valence']:.0f}/a{obj['arousal']:.0f}"
        return (ev.replace("stimulus_", "") + extra)[:24]
    return text[:24]


class _MarkerLines:
    """A pool of vertical lines on one plot (re-used every frame: no growth)."""

    def __init__(self, plot: pg.PlotItem, labels: bool, size: int = 40):
        self.lines = []
        for _ in range(size):
            line = pg.InfiniteLine(angle=90, movable=False,
                                   pen=pg.mkPen((255, 170, 60, 200), width=1))
            if labels:
                line.label = pg.InfLineLabel(line, text="", position=0.98, anchor=(0, 0),
                                             color=(255, 190, 90))
            line.setVisible(False)
            plot.addItem(line, ignoreBounds=True)
            self.lines.append(line)
        self.labels = labels

    def show(self, items: Sequence[tuple[float, str]]) -> None:
        for i, line in enumerate(self.lines):
            if i < len(items):
                x, text = items[i]
                line.setPos(x)
                if self.labels and line.label.format != text:
                    line.label.setFormat(text)
                line.setVisible(True)
            elif line.isVisible():
                line.setVisible(False)


class ViewerWindow(QtWidgets.QMainWindow):
    """Live view of the streams of an acquisition engine (read from its hub).

    Parameters
    ----------
    engine : Acquisition
        With a hub (``hub_seconds``); more sources may join it (an
        :class:`~physioaffect.viewer.watch.LSLWatcher`). The record button subscribes a
        :class:`~physioaffect.recording.recorder.Recorder` to it.
    window_s : float
        Seconds of signal shown.
    targets : sequence of FeedbackTarget
        Neurofeedback goals (shown when their metric is available).
    marker_keys : mapping
        Key text -> marker text (default :func:`default_marker_keys`).
    record_dir : path
        Where the record button writes session files.
    lsl_markers : bool
        Publish marker keys as an LSL outlet.
    metrics_interval : float
        Seconds between metric updates (heart rate, band power ...).
    title : str
    subject, task : str
        Identifiers of recordings started from the viewer.
    marker_stream : str
        Name of the LSL marker outlet of the marker keys.
    """

    def __init__(
        self, engine: Acquisition, window_s: float = 10.0, targets: Sequence[FeedbackTarget] = (),
        marker_keys: Mapping[str, str] | None = None, record_dir: str | Path = ".",
        lsl_markers: bool = True, metrics_interval: float = 1.0, title: str = "physioaffect",
        subject: str = "live", task: str = "viewer", marker_stream: str = VIEWER_MARKERS.name,
    ):
        super().__init__()
        if engine.hub is None:
            raise ValueError("the viewer needs an acquisition engine with a hub (hub_seconds)")
        self.engine = engine
        self.hub = hub = engine.hub
        self.window_s = float(window_s)
        self.targets = list(targets)
        self.marker_keys = dict(default_marker_keys() if marker_keys is None else marker_keys)
        self.record_dir = Path(record_dir)
        self.subject, self.task = subject, task
        self.recorder: Recorder | None = None
        self.last_recording: Path | None = None
        #: Why the last recording failed (None when it did not).
        self.record_error: str | None = None
        self.frames = 0
        self.markers_sent: list[tuple[float, str]] = []
        self.setWindowTitle(f"physioaffect view \u2014 {title}")
        self.resize(1280, 800)
        pg.setConfigOptions(antialias=False, background=_BG, foreground="#c8ccd4")

        self.marker_info = dataclasses.replace(VIEWER_MARKERS, name=marker_stream,
                                               source_id=marker_stream)
        self.marker_outlet = LSLOutlet(self.marker_info) if lsl_markers else None
        engine.add_local_stream(self.marker_info, "physioaffect view")

        self.metrics = MetricsWorker(hub, interval=metrics_interval).start()
        self._eeg_name: str | None = None
        self._gain: np.ndarray = np.ones(0)
        self._lane_uv = 0.0
        self._eeg_unit = "\u00b5V"
        self._centre: np.ndarray = np.zeros(0)
        self._visible: np.ndarray = np.zeros(0, dtype=int)
        self._last_scale_update = 0.0
        self._marker_readers: dict[str, RingReader] = {}
        self._markers: collections.deque[tuple[float, str]] = collections.deque(maxlen=200)
        self._pred_name: str | None = None
        self._pred_reader: RingReader | None = None
        self._trail: collections.deque[tuple[float, float, float]] = collections.deque(maxlen=120)
        self._on_target: collections.deque[tuple[float, bool]] = collections.deque(maxlen=600)
        self._last_counts: dict[str, tuple[int, float]] = {}
        self._t_ref = 0.0
        self._last_status = 0.0
        self._snapshot_id = None

        self._build()
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.refresh)

    # -- layout ----------------------------------------------------------------------------
    def _build(self) -> None:
        central = QtWidgets.QWidget()
        lay = QtWidgets.QHBoxLayout(central)
        lay.setContentsMargins(4, 4, 4, 4)
        self.glw = pg.GraphicsLayoutWidget()
        lay.addWidget(self.glw, 3)
        self.eeg_plot = self.glw.addPlot(row=0, col=0)
        self.eeg_plot.setMenuEnabled(False)
        self.eeg_plot.setMouseEnabled(False, False)
        self.eeg_plot.hideButtons()
        self.eeg_plot.setTitle("EEG", size="9pt")
        # channel labels alternate between the left and the right axis: twice the room each
        self.eeg_plot.showAxis("right")
        for side_name in ("left", "right"):
            ax = self.eeg_plot.getAxis(side_name)
            ax.setWidth(48)
            ax.setStyle(tickLength=0, tickFont=QtGui.QFont("DejaVu Sans", 7))
        self.eeg_plot.getAxis("right").setPen(pg.mkPen(None))  # labels only, no spine
        self.eeg_plot.getAxis("right").setTextPen(pg.mkPen("#c8ccd4"))
        self.eeg_plot.getAxis("bottom").setLabel("time (s)")
        self.eeg_plot.setXRange(-self.window_s * (1 + _LEFT_MARGIN), 0, padding=0)
        self.traces = RasterTraces()
        self.eeg_plot.addItem(self.traces)
        self._eeg_columns = ColumnCache()
        # amplitude scale bar in the empty margin left of the oldest sample
        self.scale_bar = pg.PlotCurveItem(pen=pg.mkPen("#e0e0e0", width=2))
        self.eeg_plot.addItem(self.scale_bar, ignoreBounds=True)
        self.scale_text = pg.TextItem("", color="#e0e0e0", anchor=(0.5, 1.0))
        self.scale_text.setFont(QtGui.QFont("DejaVu Sans", 7))
        self.eeg_plot.addItem(self.scale_text, ignoreBounds=True)
        self.eeg_markers = _MarkerLines(self.eeg_plot, labels=True)
        self.periph_plots: dict[str, pg.PlotItem] = {}
        self.periph_traces: dict[str, RasterTraces] = {}
        self.periph_columns: dict[str, ColumnCache] = {}
        self.periph_markers: dict[str, _MarkerLines] = {}
        self._periph_range: dict[str, tuple[float, float]] = {}
        self._periph_units: dict[str, str] = {}
        last = len(_PERIPHERAL)
        for row, (kind, title, _unit) in enumerate(_PERIPHERAL, start=1):
            p = self.glw.addPlot(row=row, col=0)
            p.setMenuEnabled(False)
            p.setMouseEnabled(False, False)
            p.hideButtons()
            p.setTitle(title, size="8pt")
            p.setXLink(self.eeg_plot)
            p.showAxis("right")  # same plot width as the EEG (whose right axis holds labels)
            p.getAxis("right").setWidth(48)
            p.getAxis("right").setStyle(showValues=False, tickLength=0)
            p.getAxis("right").setPen(pg.mkPen(None))
            p.getAxis("right").setTicks([[], []])  # a spacer: no ticks, no values
            p.getAxis("left").setWidth(48)
            p.getAxis("left").setStyle(tickFont=QtGui.QFont("DejaVu Sans", 7))
            if row == last:
                p.getAxis("bottom").setLabel("time (s)")
            else:
                p.hideAxis("bottom")
            p.setFixedHeight(_PERIPH_HEIGHT + (30 if row == last else 0))
            tr = RasterTraces()
            p.addItem(tr)
            self.periph_plots[kind] = p
            self.periph_traces[kind] = tr
            self.periph_columns[kind] = ColumnCache()
            self.periph_markers[kind] = _MarkerLines(p, labels=False, size=20)
        self._periph_color = {k: np.array([int("FF" + c[1:], 16)], dtype=np.uint32)
                              for (k, _, _), c in zip(_PERIPHERAL, _PERIPH_COLORS, strict=True)}

        side = QtWidgets.QWidget()
        side.setFixedWidth(318)
        sl = QtWidgets.QVBoxLayout(side)
        sl.setSpacing(4)
        sl.setContentsMargins(2, 2, 2, 2)
        self.status_label = QtWidgets.QLabel("waiting for streams")
        self.status_label.setWordWrap(True)
        self.status_label.setStyleSheet("font-size: 8pt;")
        sl.addWidget(self.status_label)
        rec_row = QtWidgets.QHBoxLayout()
        self.record_button = QtWidgets.QPushButton("\u25cf Record")
        self.record_button.setCheckable(True)
        self.record_button.toggled.connect(self._toggle_record)
        rec_row.addWidget(self.record_button)
        self.record_label = QtWidgets.QLabel("")
        self.record_label.setStyleSheet("font-size: 8pt;")
        rec_row.addWidget(self.record_label, 1)
        sl.addLayout(rec_row)

        self.channel_list = QtWidgets.QListWidget()
        self.channel_list.setMaximumHeight(72)
        self.channel_list.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.channel_list.itemChanged.connect(self._channels_changed)
        self.channel_list.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        sl.addWidget(self.channel_list)
        gain_row = QtWidgets.QHBoxLayout()
        for text, factor in (("gain \u00d72", 2.0), ("gain \u00f72", 0.5), ("reset", 0.0)):
            b = QtWidgets.QPushButton(text)
            b.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
            b.clicked.connect(lambda _=False, f=factor: self.scale_channels(f))
            gain_row.addWidget(b)
        sl.addLayout(gain_row)

        self.band_plot = pg.PlotWidget()
        self.band_plot.setFixedHeight(94)
        self.band_plot.setMenuEnabled(False)
        self.band_plot.setMouseEnabled(False, False)
        self.band_plot.hideButtons()
        self.band_plot.setTitle("band power (log10 \u00b5V\u00b2)", size="8pt")
        self.band_bars = pg.BarGraphItem(x=np.arange(5), height=np.zeros(5), width=0.7,
                                         brush="#89b4fa")
        self.band_plot.addItem(self.band_bars)
        sl.addWidget(self.band_plot)
        self.faa_label = QtWidgets.QLabel("FAA: collecting")
        self.faa_label.setWordWrap(True)
        self.faa_label.setStyleSheet("font-size: 8pt;")
        sl.addWidget(self.faa_label)

        self.nf_box = QtWidgets.QGroupBox("neurofeedback")
        nl = QtWidgets.QVBoxLayout(self.nf_box)
        nl.setContentsMargins(2, 2, 2, 2)
        self.va_plot = pg.PlotWidget()
        self.va_plot.setFixedHeight(140)
        self.va_plot.setMenuEnabled(False)
        self.va_plot.setMouseEnabled(False, False)
        self.va_plot.hideButtons()
        self.va_plot.setXRange(1, 9, padding=0.02)
        self.va_plot.setYRange(1, 9, padding=0.02)
        self.va_plot.setLabel("bottom", "valence")
        self.va_plot.setLabel("left", "arousal")
        for v in (5.0,):
            self.va_plot.addItem(pg.InfiniteLine(v, angle=90, pen=pg.mkPen("#555", width=1)))
            self.va_plot.addItem(pg.InfiniteLine(v, angle=0, pen=pg.mkPen("#555", width=1)))
        self.trail_curve = pg.PlotCurveItem(pen=pg.mkPen((137, 180, 250, 140), width=2))
        self.va_plot.addItem(self.trail_curve)
        self.va_point = pg.ScatterPlotItem(size=16, brush=pg.mkBrush("#f9e2af"),
                                           pen=pg.mkPen("w"))
        self.va_plot.addItem(self.va_point)
        nl.addWidget(self.va_plot)
        self.pred_label = QtWidgets.QLabel("")
        self.pred_label.setStyleSheet("font-size: 8pt;")
        self.pred_label.setWordWrap(True)
        nl.addWidget(self.pred_label)
        # the valence-arousal plane needs a decoder; feature targets work without one
        self.va_plot.setVisible(False)
        self.pred_label.setVisible(False)
        self.target_bars: list[tuple[QtWidgets.QLabel, QtWidgets.QProgressBar]] = []
        for tgt in self.targets:
            lab = QtWidgets.QLabel(tgt.text)
            lab.setWordWrap(True)
            lab.setStyleSheet("font-size: 8pt;")
            bar = QtWidgets.QProgressBar()
            bar.setRange(0, 1000)
            bar.setTextVisible(False)
            bar.setFixedHeight(12)
            nl.addWidget(lab)
            nl.addWidget(bar)
            self.target_bars.append((lab, bar))
        self.reward_label = QtWidgets.QLabel("")
        self.reward_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        nl.addWidget(self.reward_label)
        self.nf_box.setVisible(bool(self.targets))
        sl.addWidget(self.nf_box)

        self.face_box = QtWidgets.QGroupBox("face")
        fl = QtWidgets.QVBoxLayout(self.face_box)
        fl.setContentsMargins(2, 2, 2, 2)
        self.face_plot = pg.PlotWidget()
        self.face_plot.setFixedHeight(56)
        self.face_plot.setMenuEnabled(False)
        self.face_plot.hideButtons()
        self.face_curves: list[pg.PlotCurveItem] = []
        fl.addWidget(self.face_plot)
        self.face_label = QtWidgets.QLabel("")
        self.face_label.setStyleSheet("font-size: 8pt;")
        fl.addWidget(self.face_label)
        self.face_box.setVisible(False)
        sl.addWidget(self.face_box)
        sl.addStretch(1)
        self.help_label = QtWidgets.QLabel("keys 1-9: marker")
        self.help_label.setStyleSheet("font-size: 8pt; color: #888;")
        sl.addWidget(self.help_label)
        # the panel scrolls rather than stretching the window past the screen (or clipping
        # text) when many streams and panels are up at once
        self.side_scroll = QtWidgets.QScrollArea()
        self.side_scroll.setWidget(side)
        self.side_scroll.setWidgetResizable(True)
        self.side_scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.side_scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.side_scroll.setFixedWidth(side.width() + 14)
        lay.addWidget(self.side_scroll, 0)
        self.setCentralWidget(central)
        self.setStyleSheet(f"QMainWindow, QWidget {{ background: {_BG}; color: #c8ccd4; }}"
                           "QPushButton { background: #283040; border: 1px solid #445; "
                           "padding: 3px; } QPushButton:checked { background: #a03030; }"
                           "QGroupBox { border: 1px solid #334; margin-top: 14px; padding-top: 4px; }"
                           "QGroupBox::title { subcontrol-origin: margin; left: 6px; }")
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)

    # -- streams --------------------------------------------------------------------------
    def _first(self, kind: str) -> StreamInfo | None:
        for info in list(self.hub.infos.values()):
            if info.type.upper() == kind and info.channel_format != "string":
                return info
        return None

    def _setup_eeg(self, info: StreamInfo) -> None:
        self._eeg_name = info.name
        n = info.n_channels
        self._gain = np.ones(n)
        self._lane_uv = 0.0  # microvolts per lane, shared by all channels (set from the data)
        self._centre = np.zeros(n)
        self._visible = np.arange(n)
        self._eeg_unit = _unit_symbol(info.channels[0].unit) if info.channels else "\u00b5V"
        self.channel_list.blockSignals(True)
        self.channel_list.clear()
        for label in info.labels:
            item = QtWidgets.QListWidgetItem(label)
            item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(QtCore.Qt.CheckState.Checked)
            self.channel_list.addItem(item)
        self.channel_list.blockSignals(False)
        self._update_ticks()

    def _channels_changed(self, *_: object) -> None:
        checked = [i for i in range(self.channel_list.count())
                   if self.channel_list.item(i).checkState() == QtCore.Qt.CheckState.Checked]
        self.set_visible_channels(checked)

    def set_visible_channels(self, indices: Sequence[int]) -> None:
        """Show only these EEG channels (indices into the stream's channels)."""
        self._visible = np.asarray(sorted(set(int(i) for i in indices)), dtype=int)
        self._update_ticks()

    def scale_channels(self, factor: float, indices: Sequence[int] | None = None) -> None:
        """Multiply the gain of the selected channels (all if none) by ``factor`` (0: reset).

        Channels drawn at another gain than the scale bar's carry it in their label (``x2``).
        """
        if indices is None:
            rows = [self.channel_list.row(it) for it in self.channel_list.selectedItems()]
            indices = rows or list(range(len(self._gain)))
        idx = np.asarray(list(indices), dtype=int)
        if factor == 0:
            self._gain[idx] = 1.0
        else:
            self._gain[idx] *= factor
        self._update_ticks()

    def _update_ticks(self) -> None:
        info = self.hub.infos.get(self._eeg_name or "")
        if info is None:
            return
        n = len(self._visible)
        height = max(100, int(self.eeg_plot.getViewBox().height()))
        # labels alternate left / right, so each side needs a label every other lane:
        # at least 11 px between labels on a side
        step = max(1, int(np.ceil(n * 11 / (2 * height))))
        left, right = [], []
        for k, c in enumerate(self._visible):
            if k % step:
                continue
            g = float(self._gain[c]) if len(self._gain) > c else 1.0
            text = info.labels[c] + ("" if g == 1.0 else f" \u00d7{g:g}")
            (left if (k // step) % 2 == 0 else right).append((float(n - 1 - k), text))
        self.eeg_plot.getAxis("left").setTicks([left, []])
        self.eeg_plot.getAxis("right").setTicks([right, []])
        self.eeg_plot.setYRange(-0.7, max(n, 1) - 0.3, padding=0)

    # -- markers --------------------------------------------------------------------------
    def send_marker(self, text: str) -> None:
        """Publish a marker (LSL outlet + hub marker stream + recording)."""
        t = local_clock()
        chunk = Chunk(self.marker_info.name, np.array([t]), np.array([[text]], dtype=object))
        if self.marker_outlet is not None:
            self.marker_outlet.push(chunk)
        self.engine.push_local(chunk)
        self.markers_sent.append((t, text))

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 - Qt API
        text = event.text()
        if text and text in self.marker_keys:
            self.send_marker(self.marker_keys[text])
            event.accept()
            return
        super().keyPressEvent(event)

    def _collect_markers(self) -> None:
        for name, info in list(self.hub.infos.items()):
            if info.type != "Markers" or name.endswith("-status"):
                continue
            reader = self._marker_readers.get(name)
            if reader is None:
                reader = self._marker_readers[name] = self.hub.reader(name, from_oldest=True)
            res = reader.read()
            for t, row in zip(res.timestamps, res.samples, strict=False):
                self._markers.append((float(t), str(row[0])))

    # -- recording ------------------------------------------------------------------------
    def _toggle_record(self, on: bool) -> None:
        if on:
            self.start_recording()
        else:
            self.stop_recording()

    def start_recording(self) -> Path:
        """Start writing every stream to a new session file in ``record_dir``."""
        if self.recorder is None:
            try:
                path = choose_session_path(self.record_dir, self.subject, self.task, None, None,
                                           create=True)
                writer = SessionWriter(path, subject=self.subject, task=self.task, config={
                    "recorded_by": "physioaffect view", "sources": self.engine.description})
                try:
                    self.recorder = Recorder(self.engine, writer, markers=self.marker_info,
                                             origin="physioaffect view").start()
                except BaseException:
                    writer.abort()
                    raise
            except Exception as err:  # noqa: BLE001 - shown to the operator, viewer goes on
                self.record_label.setText(f"cannot record: {err}")
                self.record_button.blockSignals(True)
                self.record_button.setChecked(False)
                self.record_button.blockSignals(False)
                raise
            self.record_button.blockSignals(True)
            self.record_button.setChecked(True)
            self.record_button.setText("\u25a0 Stop")
            self.record_button.blockSignals(False)
        return self.recorder.writer.path

    def stop_recording(self) -> Path | None:
        """Finish the current recording; returns its path."""
        if self.recorder is None:
            return None
        rec, self.recorder = self.recorder, None
        try:
            path = rec.close()
            self.record_label.setText(f"saved {path.name}")
        except Exception as err:  # noqa: BLE001 - shown to the operator
            self.record_label.setText(f"recording failed: {err}")
            self.record_error = str(err)
            path = None
        self.last_recording = path
        self.record_button.blockSignals(True)
        self.record_button.setChecked(False)
        self.record_button.setText("\u25cf Record")
        self.record_button.blockSignals(False)
        return path

    # -- drawing --------------------------------------------------------------------------
    def start(self, interval_ms: int = 16) -> None:
        """Start refreshing (``interval_ms`` between frames; 0 = as fast as possible)."""
        self.timer.start(interval_ms)

    def refresh(self) -> None:
        """Draw one frame from the hub's current contents."""
        eeg = self._first("EEG")
        if eeg is not None and eeg.name != self._eeg_name:
            self._setup_eeg(eeg)
        t_ref = self._reference_time(eeg)
        self._t_ref = t_ref
        self._collect_markers()
        marks = [(t - t_ref, _marker_label(txt)) for t, txt in self._markers
                 if -self.window_s <= t - t_ref <= 0.5]
        if eeg is not None:
            self._draw_eeg(eeg, t_ref)
            self.eeg_markers.show(marks)
        for kind, _title, _unit in _PERIPHERAL:
            info = self._first(kind) or (self._first("EDA") if kind == "GSR" else None)
            self._draw_peripheral(kind, info, t_ref)
            self.periph_markers[kind].show(marks[:20])
        self._draw_prediction()
        self._draw_face(t_ref)
        now = time.monotonic()
        if now - self._last_status > 0.5:
            self._update_status()
            self._update_metrics()
            self._update_ticks()
            self._update_targets()
            self._last_status = now
        self.frames += 1

    def _reference_time(self, eeg: StreamInfo | None) -> float:
        names = [eeg.name] if eeg is not None else [
            n for n, i in self.hub.infos.items() if i.is_regular]
        latest = []
        for n in names:
            buf = self.hub.buffers[n]
            if buf.total_written:
                latest.append(float(buf.latest(1)[0][-1]))
        return max(latest) if latest else local_clock()

    def _columns_x(self, name: str, cache: ColumnCache, fs: float, t_ref: float,
                   n_window: int) -> tuple[float, float]:
        """Plot x range of a column cache: its newest column ends where its samples end."""
        ts, _ = self.hub.buffers[name].latest(1)
        newest = float(ts[-1]) - t_ref if len(ts) else 0.0
        total = self.hub.buffers[name].total_written
        right = newest - (total - 1 - cache.end) / fs
        return right - n_window / fs, right

    def _draw_eeg(self, info: StreamInfo, t_ref: float) -> None:
        fs = info.nominal_srate
        buf = self.hub.buffers[info.name]
        if buf.total_written < 2 or len(self._visible) == 0:
            self.traces.clear()
            return
        now = time.monotonic()
        if now - self._last_scale_update > 1.0 or len(self._centre) != info.n_channels:
            self._rescale(buf, fs)
            self._last_scale_update = now
        vb = self.eeg_plot.getViewBox()
        width, height = int(vb.width()), int(vb.height())
        n_window = int(round(self.window_s * fs))
        # the traces take the plot width minus the scale bar's margin
        n_cols = max(2, int(round(width / (1 + _LEFT_MARGIN))))
        vis = self._visible
        all_visible = len(vis) == info.n_channels
        changed = self._eeg_columns.update(buf, n_window, n_cols, None if all_visible else vis)
        n = len(vis)
        offsets = (n - 1 - np.arange(n)).astype(np.float64)
        gains = self._gain[vis] / self._lane_uv
        colors = _PALETTE[np.arange(n) % len(_PALETTE)]
        x0, x1 = self._columns_x(info.name, self._eeg_columns, fs, t_ref, n_window)
        self.traces.scroll(self._eeg_columns.lo, self._eeg_columns.hi, changed, (x0, x1),
                           (-0.7, n - 0.3), offsets, gains, colors, height,
                           centre=self._centre[vis].astype(np.float32))
        self._draw_scale_bar(n)

    def _rescale(self, buf: object, fs: float) -> None:
        """Centre (median) per channel and one shared sensitivity, from the last 2 s.

        The lane height is a 1-2-5 number of microvolts near 4 robust SDs of a typical
        channel; it changes only when the data leave a factor of 1.6 around it, so the
        scale bar stays put.
        """
        _, x = buf.latest(int(2 * fs))  # type: ignore[attr-defined]
        if len(x) < 2:
            return
        med = np.median(x, axis=0)
        mad = np.median(np.abs(x - med), axis=0) * 1.4826
        self._centre = med
        vis_mad = mad[self._visible] if len(self._visible) else mad
        target = 4.0 * float(np.median(vis_mad)) if np.isfinite(vis_mad).any() else 1.0
        target = max(target, 1e-3)
        if not self._lane_uv or not (self._lane_uv / 1.6 <= target <= self._lane_uv * 1.6):
            self._lane_uv = nice_value(target)

    def _draw_scale_bar(self, n: int) -> None:
        """A vertical bar of a round number of microvolts, left of the oldest sample."""
        lanes = 4.0 if n >= 8 else 1.0
        uv = lanes * self._lane_uv
        x = -self.window_s * (1 + _LEFT_MARGIN / 2)
        y0 = -0.5
        if getattr(self, "_bar_state", None) != (uv, n, x):
            self.scale_bar.setData([x, x], [y0, y0 + lanes])
            self.scale_text.setText(f"{uv:g} {self._eeg_unit}")
            self.scale_text.setPos(x, y0 + lanes + 0.2)
            self.eeg_plot.setTitle(
                f"EEG \u2014 {n} channels, {self._lane_uv:g} {self._eeg_unit} per lane "
                f"(bar: {uv:g} {self._eeg_unit})", size="9pt")
            self._bar_state = (uv, n, x)

    def _draw_peripheral(self, kind: str, info: StreamInfo | None, t_ref: float) -> None:
        traces = self.periph_traces[kind]
        if info is None:
            traces.clear()
            return
        buf = self.hub.buffers[info.name]
        if buf.total_written < 2:
            traces.clear()
            return
        plot = self.periph_plots[kind]
        if self._periph_units.get(kind) is None:
            unit = _unit_symbol(info.channels[0].unit) if info.channels else "a.u."
            self._periph_units[kind] = unit
            plot.getAxis("left").setLabel(unit)
        fs = info.nominal_srate
        vb = plot.getViewBox()
        width, height = int(vb.width()), int(vb.height())
        n_window = int(round(self.window_s * fs))
        cache = self.periph_columns[kind]
        changed = cache.update(buf, n_window, max(2, int(round(width / (1 + _LEFT_MARGIN)))),
                               np.array([0]))
        y_range = self._periph_y_range(kind, cache)
        x0, x1 = self._columns_x(info.name, cache, fs, t_ref, n_window)
        traces.scroll(cache.lo, cache.hi, changed, (x0, x1), y_range, np.zeros(1), np.ones(1),
                      self._periph_color[kind], height)

    def _periph_y_range(self, kind: str, cache: ColumnCache) -> tuple[float, float]:
        """The y range of a peripheral plot: all of the shown data plus 10 %, changed only when
        the data leave it or use less than half of it (a steady axis, few full redraws)."""
        lo, hi = np.nanmin(cache.lo) if np.isfinite(cache.lo).any() else 0.0, \
            np.nanmax(cache.hi) if np.isfinite(cache.hi).any() else 1.0
        cur = self._periph_range.get(kind)
        span = max(float(hi - lo), 1e-6)
        if cur is None or lo < cur[0] or hi > cur[1] or span < 0.5 * (cur[1] - cur[0]):
            cur = (float(lo) - 0.1 * span, float(hi) + 0.1 * span)
            self._periph_range[kind] = cur
            self.periph_plots[kind].setYRange(cur[0], cur[1], padding=0)
        return cur

    def _draw_prediction(self) -> None:
        info = next((i for i in list(self.hub.infos.values()) if i.type == "Prediction"), None)
        if info is None:
            return
        if info.name != self._pred_name:
            self._pred_name = info.name
            self._pred_reader = self.hub.reader(info.name, from_oldest=True)
            self._trail.clear()
            self.nf_box.setVisible(True)
            self.va_plot.setVisible(True)
            self.pred_label.setVisible(True)
        assert self._pred_reader is not None
        res = self._pred_reader.read()
        for t, row in zip(res.timestamps, res.samples, strict=False):
            va = va_from_prediction(info.labels, row)
            self._trail.append((float(t), va.get("valence", np.nan), va.get("arousal", np.nan)))
            self._last_pred = (info.labels, row, va)
        if not self._trail:
            self.pred_label.setText(f"{info.name}: waiting for predictions")
            return
        tr = np.array(self._trail)
        v = np.nan_to_num(tr[:, 1], nan=5.0)
        a = np.nan_to_num(tr[:, 2], nan=5.0)
        self.trail_curve.setData(v, a)
        self.va_point.setData([v[-1]], [a[-1]])
        labels, row, va = self._last_pred
        age = self._t_ref - tr[-1, 0]
        stale = age > 2.0
        parts = [f"{lab} {val:.2f}" for lab, val in zip(labels, row, strict=False)]
        self.pred_label.setText(
            (f"PAUSED (no prediction for {age:.1f} s) " if stale else "") + ", ".join(parts))
        if len(res):  # a new decoded state moves the target bars at once
            self._update_targets()

    def _decoded_state(self) -> dict[str, float]:
        """The latest decoded valence/arousal, empty without a fresh prediction."""
        if not self._trail or not hasattr(self, "_last_pred"):
            return {}
        if self._t_ref - self._trail[-1][0] > 2.0:
            return {}
        return dict(self._last_pred[2])

    def _heart_rate(self) -> float:
        vals = self.metrics.snapshot.values
        for kind, key in (("ECG", "heart_rate"), ("PPG", "pulse_rate")):
            info = self._first(kind)
            if info is not None:
                v = float(vals.get(info.name, {}).get(key, np.nan))
                if np.isfinite(v):
                    return v
        return float("nan")

    def _update_targets(self) -> None:
        """Target bars from the current metrics: features (FAA, relative alpha, heart rate) need
        no decoder; valence/arousal targets wait for a prediction stream."""
        if not self.targets:
            return
        snap = self.metrics.snapshot.values.get(self._eeg_name or "", {})
        vals = metric_values(snap, self._decoded_state(), heart_rate=self._heart_rate())
        all_met = True
        for tgt, (lab, bar) in zip(self.targets, self.target_bars, strict=False):
            v = vals.get(tgt.metric, float("nan"))
            met = tgt.met(v)
            lo = tgt.threshold - tgt.span / 2
            frac = 0.5 if not np.isfinite(v) else float(np.clip((v - lo) / tgt.span, 0, 1))
            bar.setValue(int(1000 * frac))
            color = "#40a040" if met else "#a04040" if met is False else "#555"
            bar.setStyleSheet(f"QProgressBar::chunk {{ background: {color}; }}")
            if np.isfinite(v):
                lab.setText(f"{tgt.text}: {v:.2f}")
            else:
                needs = "waiting for a prediction stream" if tgt.metric in ("valence", "arousal") \
                    else "collecting signal"
                lab.setText(f"{tgt.text}: n/a ({needs})")
            all_met = all_met and bool(met)
        self._on_target.append((self._t_ref, all_met))
        recent = [m for t, m in self._on_target if self._t_ref - t <= 30]
        share = 100.0 * sum(recent) / max(1, len(recent))
        self.reward_label.setText(
            f"{'ON TARGET' if all_met else 'keep going'} \u2014 {share:.0f}% of the last 30 s")
        self.reward_label.setStyleSheet(
            f"font-weight: bold; padding: 4px; background: {'#2f6f2f' if all_met else '#3a3a3a'};")

    def _draw_face(self, t_ref: float) -> None:
        info = next((i for i in list(self.hub.infos.values()) if i.type == "Face"), None)
        if info is None:
            return
        if not self.face_box.isVisible():
            self.face_box.setVisible(True)
        ts, x = self.hub.buffers[info.name].latest(int(self.window_s * max(info.nominal_srate,
                                                                           1.0)))
        cols = [i for i, u in enumerate(info.units) if u == "ratio"][:4]
        while len(self.face_curves) < len(cols):
            c = pg.PlotCurveItem(pen=pg.mkPen(pg.intColor(len(self.face_curves), 6), width=1))
            self.face_plot.addItem(c)
            self.face_curves.append(c)
        for c, curve in zip(cols, self.face_curves, strict=False):
            curve.setData(ts - t_ref, np.nan_to_num(x[:, c]))
        if len(ts):
            labels = info.labels
            last = x[-1]
            get = {lab: last[i] for i, lab in enumerate(labels)}
            self.face_label.setText(
                f"faces {get.get('n_faces', np.nan):.0f}  rPPG pulse "
                f"{get.get('pulse_rate', np.nan):.0f} bpm  "
                + " ".join(f"{labels[c]} {last[c]:.2f}" for c in cols[:2]))

    def _update_metrics(self) -> None:
        snap = self.metrics.snapshot
        if snap is self._snapshot_id:
            return
        self._snapshot_id = snap
        vals = snap.values
        eeg = vals.get(self._eeg_name or "", {})
        if eeg.get("bands"):
            names = [b[0] for b in eeg["bands"]]
            heights = [b[1] for b in eeg["bands"]]
            self.band_bars.setOpts(x=np.arange(len(heights)), height=heights)
            self.band_plot.getAxis("bottom").setTicks([list(enumerate(names)), []])
            self.band_plot.setYRange(min(0.0, min(heights)), max(heights) + 0.2, padding=0)
            faa = eeg.get("faa", float("nan"))
            rel = eeg.get("relative") or []
            alpha = rel[names.index("alpha")] if "alpha" in names and rel else float("nan")
            pair = eeg.get("faa_pair") or ("F3", "F4")
            self.faa_label.setText(
                f"FAA (ln alpha {pair[1]} \u2212 ln alpha {pair[0]}): {faa:+.3f}<br>"
                f"relative alpha: {alpha:.2f}")
        elif "collecting" in eeg:
            have, need = eeg["collecting"]
            self.faa_label.setText(f"FAA: collecting EEG ({have:.0f} of {need:.0f} s)")
        titles = {"ECG": ("ECG", "heart_rate", "HR {:.0f} bpm"),
                  "GSR": ("EDA", None, None), "PPG": ("PPG", "pulse_rate", "pulse {:.0f} bpm"),
                  "RESP": ("Respiration", "breath_rate", "{:.1f} breaths/min")}
        for kind, (title, key, fmt) in titles.items():
            info = self._first(kind) or (self._first("EDA") if kind == "GSR" else None)
            if info is None:
                self.periph_plots[kind].setTitle(f"{title}: no stream", size="8pt")
                continue
            m = vals.get(info.name, {})
            if "collecting" in m:
                have, need = m["collecting"]
                text = f"{title}: collecting ({have:.0f} of {need:.0f} s)"
            elif kind == "GSR":
                tonic, scr = m.get("tonic", np.nan), m.get("scr_per_min", np.nan)
                text = "EDA: " + (f"tonic {tonic:.2f} \u00b5S" if np.isfinite(tonic) else "-")
                if np.isfinite(scr):
                    text += f", {scr:.0f} responses/min"
            else:
                v = m.get(key, np.nan) if key else np.nan
                text = f"{title}: " + (fmt.format(v) if np.isfinite(v) else "no rate found")
            self.periph_plots[kind].setTitle(text + quality_note(m), size="8pt")

    def _update_status(self) -> None:
        now = time.monotonic()
        parts = []
        for name, info in list(self.hub.infos.items()):
            if name == self.marker_info.name:
                continue
            n = self.hub.buffers[name].total_written
            prev = self._last_counts.get(name)
            if prev is None or prev[0] != n:
                self._last_counts[name] = (n, now)
                age = 0.0
            else:
                age = now - prev[1]
            if not info.is_regular:
                parts.append(f"{name}: {n}")
                continue
            if age > 1.0:
                parts.append(f"<span style='color:#f38ba8'>{name}: LOST {age:.0f} s</span>")
            else:
                parts.append(f"{name}: ok")
        # streams flow on as few lines as the panel's width allows
        self.status_label.setText(" \u00b7 ".join(parts) if parts else "waiting for streams")
        if self.recorder is not None:
            self.record_label.setText(f"{self.recorder.writer.path.name}: "
                                      f"{self.recorder.samples} samples")

    def stream_age(self, name: str) -> float:
        """Seconds since the stream last delivered (as of the last status update)."""
        prev = self._last_counts.get(name)
        return float("inf") if prev is None else time.monotonic() - prev[1]

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the timer, the metrics thread and any recording."""
        self.timer.stop()
        self.metrics.stop()
        if self.recorder is not None:
            self.stop_recording()
