"""The online decoder: a sliding window over the live EEG, the training preprocessing applied
causally, model inference, smoothing, and a ``Prediction`` LSL stream.

Timing
------
Every incoming chunk is filtered as it arrives (:class:`~physioaffect.preprocessing.StreamingPipeline`
keeps the filter state, so the live signal is exactly what the causal offline pipeline gives).
A prediction is due every ``sfreq / rate`` samples of *data*; it is computed from the window
that ends at that sample, stamped with that sample's timestamp (the window's end time on the
LSL clock), and published at once. A chunk holding several due points gives a prediction for
each; after a stall only the newest four are decoded so the decoder never falls behind.

Quality
-------
Every prediction carries the signal quality of the window it was decoded from
(:attr:`Prediction.quality`, 0-1, and :attr:`Prediction.quality_reasons`): the EEG
bad-channel criteria of :func:`physioaffect.features.quality.eeg_channel_quality` on the
filtered window in microvolts (the fraction of good channels), and, for a fusion model, the
lowest quality of the peripheral signals it used. The ``Prediction`` stream publishes it as its
last channel, ``quality``, after the model's outputs (whose order is unchanged, so readers that
take the outputs by label or by their first ``n_outputs`` columns keep working). A window below
:data:`~physioaffect.features.quality.QUALITY_THRESHOLD` is still decoded and published: the
quality channel flags it, and the status stream says which channels were bad when the flag
turns on.

Dropouts
--------
When the EEG stops arriving for ``stale_s`` seconds, or comes back after a gap in its
timestamps, or the ring buffer reports samples that were overwritten before the decoder read
them, the decoder publishes a ``paused`` status and no predictions: after a gap the filter and
the window restart, and predictions resume only when a full window (plus the filter's settling
time) of new data is in. Nothing is interpolated or repeated.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from physioaffect.preprocessing import PipelineConfig, StreamingPipeline
from physioaffect.realtime.checkpoint import DecoderBundle, DecoderError, StreamMatch, match_streams
from physioaffect.streams import IRREGULAR_RATE, StreamHub, StreamInfo, local_clock

__all__ = [
    "QUALITY_CHANNEL",
    "OnlineDecoder",
    "Prediction",
    "Smoother",
    "StatusEvent",
    "prediction_info",
    "status_info",
]

#: Stream type of the decoder's output.
PREDICTION_TYPE = "Prediction"


@dataclass
class Prediction:
    """One published prediction.

    Attributes
    ----------
    time : float
        Timestamp (LSL s) of the window's last sample.
    values : ndarray, shape (n_outputs,)
        Class probabilities or continuous ratings, after smoothing.
    raw : ndarray, shape (n_outputs,)
        Before smoothing.
    arrived : float
        ``local_clock()`` when the window's last sample was read from the hub.
    published : float
        ``local_clock()`` right after the prediction was handed to the outlet.
    quality : float
        Signal quality of the decoded window, 0-1 (see the module docstring).
    quality_reasons : str
        The failed quality criteria ("" when none failed).
    """

    time: float
    values: np.ndarray
    raw: np.ndarray
    arrived: float
    published: float = 0.0
    quality: float = float("nan")
    quality_reasons: str = ""

    def sample(self) -> np.ndarray:
        """The ``Prediction`` stream sample: the smoothed outputs, then the quality."""
        return np.append(self.values, self.quality)

    @property
    def latency(self) -> float:
        """Seconds from the last sample arriving to publication."""
        return self.published - self.arrived


@dataclass
class StatusEvent:
    """A change of the decoder's state (``running`` or ``paused``) and why."""

    time: float
    state: str
    reason: str

    def to_json(self) -> str:
        return json.dumps({"event": "decoder_status", "state": self.state, "reason": self.reason},
                          separators=(",", ":"))


#: Label of the ``Prediction`` stream's last channel: the decoded window's quality (0-1).
QUALITY_CHANNEL = "quality"


def prediction_info(bundle: DecoderBundle, rate: float, name: str = "physioaffect-prediction",
                    source: str = "") -> StreamInfo:
    """The ``Prediction`` stream: one channel per output, then ``quality`` (0-1, the decoded
    window's signal quality); nominal rate = update rate."""
    unit = "probability" if bundle.task == "classification" else "rating 1-9"
    labels = list(bundle.output_labels())
    return StreamInfo.from_labels(
        name, PREDICTION_TYPE, [*labels, QUALITY_CHANNEL], float(rate),
        [unit] * len(labels) + ["0-1"],
        channel_types=PREDICTION_TYPE, source_id=f"{name}-{bundle.target}",
        device={"manufacturer": "physioaffect", "model": "online decoder",
                "checkpoint": bundle.path, "target": bundle.target, "task": bundle.task,
                "window_s": f"{bundle.window_s:g}", "input": source,
                "pipeline": pipeline_note(bundle)},
    )


def status_info(name: str = "physioaffect-prediction") -> StreamInfo:
    """The decoder's status stream (``Markers``, JSON strings with ``event: decoder_status``)."""
    return StreamInfo.from_labels(f"{name}-status", "Markers", ["status"], IRREGULAR_RATE, "",
                                  channel_format="string", source_id=f"{name}-status")


class Smoother:
    """Exponential moving average with a time constant in seconds (0 = no smoothing).

    Parameters
    ----------
    tau : float
        Time constant, s.
    """

    def __init__(self, tau: float):
        if tau < 0:
            raise DecoderError(f"smoothing time constant must be >= 0 s, got {tau}")
        self.tau = float(tau)
        self.reset()

    def reset(self) -> None:
        self._value: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, t: float, x: np.ndarray) -> np.ndarray:
        if self.tau == 0 or self._value is None or self._t is None:
            self._value, self._t = np.array(x, dtype=np.float64), t
            return self._value.copy()
        a = 1.0 - np.exp(-max(t - self._t, 0.0) / self.tau)
        self._value = self._value + a * (np.asarray(x, dtype=np.float64) - self._value)
        self._t = t
        return self._value.copy()


class PeripheralFeatures:
    """Peripheral features for a fusion checkpoint, refreshed on a worker thread.

    NeuroKit2 features of the last ``window_s`` seconds of each peripheral stream (events found
    on the last ``context_s`` seconds), in the checkpoint's feature order, about once per
    ``interval``; a stream that is absent or silent for ``stale_s`` contributes NaN. When no
    feature is finite, :meth:`latest` returns None and the decoder masks the modality.

    Parameters
    ----------
    hub : StreamHub
    streams : dict
        Stream type -> StreamInfo (from :func:`match_streams`).
    feature_names : list of str
        Column order of the checkpoint's peripheral input.
    window_s : float
    """

    def __init__(self, hub: StreamHub, streams: dict[str, StreamInfo], feature_names: list[str],
                 window_s: float, interval: float = 1.0, context_s: float = 10.0,
                 stale_s: float = 2.0, quality_gate: dict | None = None):
        gate = dict(quality_gate or {"threshold": 0.5, "action": "mask"})
        self.quality_threshold = float(gate.get("threshold", 0.5))
        # as in training: low-quality features are missing unless the model kept them
        self.low_quality = "flag" if gate.get("action") == "keep" else "nan"
        self.hub = hub
        self.streams = dict(streams)
        self.names = list(feature_names)
        self.window_s = float(window_s)
        self.interval = interval
        self.context_s = max(context_s, window_s)
        self.stale_s = stale_s
        self._row: np.ndarray | None = None
        self._quality: tuple[float, str] = (float("nan"), "")
        self._seen: dict[str, tuple[int, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="decoder-periph")

    def start(self) -> PeripheralFeatures:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def latest(self) -> np.ndarray | None:
        """``(1, n_features)`` float32, or None when no feature could be computed."""
        return self._row

    def quality(self) -> tuple[float, str]:
        """Lowest quality (0-1) of the peripheral windows behind :meth:`latest`, and why."""
        return self._quality

    def compute(self) -> np.ndarray | None:
        import warnings

        from physioaffect.features.peripheral import quality_columns
        from physioaffect.features.windows import peripheral_table
        from physioaffect.streams.signals import canonical_signal  # the training mapping

        row = np.full(len(self.names), np.nan, dtype=np.float32)
        col = {n: i for i, n in enumerate(self.names)}
        scores: list[float] = []
        why: list[str] = []
        now = time.monotonic()
        for kind, info in self.streams.items():
            mod = canonical_signal(kind)
            buf = self.hub.buffers.get(info.name)
            if mod is None or buf is None:
                continue
            n = buf.total_written
            last = self._seen.get(info.name)
            if last is None or last[0] != n:
                self._seen[info.name] = (n, now)
            elif now - last[1] > self.stale_s:
                continue  # silent stream: its features stay NaN
            fs = info.nominal_srate
            ts, x = buf.latest(int(self.context_s * fs))
            if len(ts) < int(0.9 * self.window_s * fs):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tab = peripheral_table(mod, x[:, 0].astype(np.float64), fs,
                                       [float(ts[-1]) - self.window_s + 1.0 / fs],
                                       self.window_s, timestamps=ts, reasons=True,
                                       quality_threshold=self.quality_threshold,
                                       low_quality=self.low_quality)
            for name in tab.columns:
                if name in col:
                    row[col[name]] = float(tab[name].iloc[0])
            q_col, r_col = quality_columns(mod)
            scores.append(float(tab[q_col].iloc[0]))
            if tab[r_col].iloc[0]:
                why.append(f"{kind}: {tab[r_col].iloc[0]}")
        self._quality = (min(scores) if scores else float("nan"), "; ".join(why))
        return row[None] if np.isfinite(row).any() else None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._row = self.compute()
            except Exception:  # noqa: BLE001 - a failing feature masks the modality
                self._row = None
            self._stop.wait(self.interval)


class FaceWindowFeatures:
    """Face features of a fusion checkpoint from a live ``Face`` stream.

    The same window summary as in training (:func:`physioaffect.features.face.face_window_table`)
    over the ``window_s`` seconds ending at the EEG window's last sample, in the checkpoint's
    feature order. Computed on the decoder's thread: a few hundred frames, well under a
    millisecond.

    Parameters
    ----------
    hub : StreamHub
    stream : StreamInfo or None
        The ``Face`` stream (None: no camera; the face branch stays masked).
    feature_names : list of str
        Column order of the checkpoint's face input.
    window_s : float
    min_valid : float
        Least fraction of frames with a face (as in training).
    """

    def __init__(self, hub: StreamHub, stream: StreamInfo | None, feature_names: list[str],
                 window_s: float, min_valid: float = 0.5) -> None:
        self.hub = hub
        self.stream = stream
        self.names = list(feature_names)
        self.window_s = float(window_s)
        self.min_valid = float(min_valid)
        self._take: np.ndarray | None = None  # checkpoint column -> stream feature (-1: none)
        if stream is not None:
            from physioaffect.features.face import face_feature_names

            have = {n: i for i, n in enumerate(face_feature_names(list(stream.labels)))}
            self._take = np.array([have.get(n, -1) for n in self.names], dtype=int)

    def at(self, t_end: float) -> np.ndarray | None:
        """``(1, n_features)`` float32 for the window ending at ``t_end`` (LSL s), or None when
        there is no face stream, no frame in the window, or too few frames with a face."""
        from physioaffect.features.face import face_window_values

        if self.stream is None or self._take is None:
            return None
        buf = self.hub.buffers.get(self.stream.name)
        if buf is None:
            return None
        rate = self.stream.nominal_srate or 30.0
        ts, x = buf.latest(int(np.ceil(self.window_s * rate * 1.5)) + 2)
        if len(ts) == 0:
            return None
        summary = face_window_values(ts, x, list(self.stream.labels), [t_end - self.window_s],
                                     self.window_s, min_valid=self.min_valid)[0]
        row = np.where(self._take >= 0, summary[np.maximum(self._take, 0)], np.nan)
        row = row.astype(np.float32)
        return row[None] if np.isfinite(row[:-1]).any() else None


def live_pipeline(bundle: DecoderBundle, allow_noncausal: bool = False) -> PipelineConfig:
    """The pipeline the live path runs for ``bundle``.

    A checkpoint trained with a causal pipeline is decoded with exactly that pipeline. One
    trained with a pipeline that cannot run live (zero-phase filters, bad-channel detection, ICA)
    is refused, unless ``allow_noncausal``: then its causal equivalent runs (same band, causal
    filter, no detection or ICA), and the decoder says so in its status and stream metadata.

    Raises
    ------
    DecoderError
        The checkpoint's pipeline cannot run live and ``allow_noncausal`` is False.
    """
    config = bundle.pipeline
    problems = bundle.contract.live_problems()
    if not problems:
        return config
    if not allow_noncausal:
        raise DecoderError(
            f"{bundle.path or 'checkpoint'}: its preprocessing cannot run live "
            f"({'; '.join(problems)}): the model would see other inputs than in training. Train "
            "a live-able model with preprocessing phase: causal, detect_bads: false, ica_eog: "
            "false (the training default), or decode anyway with --allow-noncausal")
    data = config.to_dict()
    data.update(phase="causal", detect_bads=False, interpolate_bads=False, ica_eog=False)
    return PipelineConfig.from_dict(data)


def pipeline_note(bundle: DecoderBundle) -> str:
    """How the live inputs relate to the training inputs (status line, stream metadata)."""
    problems = bundle.contract.live_problems()
    if not problems:
        return "causal pipeline as trained"
    return f"NOT as trained: causal equivalent of a non-causal training pipeline ({'; '.join(problems)})"


class OnlineDecoder:
    """Decodes one EEG stream of a :class:`StreamHub` with a :class:`DecoderBundle`.

    Parameters
    ----------
    hub : StreamHub
        Filled by the acquisition engine (:class:`~physioaffect.sources.Acquisition`).
    bundle : DecoderBundle
    rate : float
        Predictions per second of data.
    smooth : float
        Smoothing time constant, s (0: none).
    stale_s : float
        Seconds without new EEG after which the decoder reports ``paused``.
    warmup_s : float
        Filter settling time, s, added to the first window after a start or a gap.
    on_prediction, on_status : callable
        Called (on the decoder's thread) with each :class:`Prediction` / :class:`StatusEvent`.
    match : StreamMatch, optional
        Precomputed stream mapping (else :func:`match_streams` on the hub's streams).
    allow_noncausal : bool
        Decode a checkpoint whose pipeline cannot run live with its causal equivalent.
    calibration_s : float, optional
        Seconds of the new subject's signal a per-subject-adapted checkpoint calibrates on
        before its first prediction (default: the checkpoint's).
    online : bool, optional
        Whether that adaptation keeps updating after the calibration (default: the
        checkpoint's, which the training chose on validation subjects).
    eeg_unit : str, optional
        Unit of the EEG stream when the stream does not declare one (refused otherwise).

    Adaptation
    ----------
    The calibration and the online updates run
    :class:`~physioaffect.preprocessing.alignment.OnlineAdaptation` on exactly the windows the
    decoder decodes (one per ``1 / rate`` s), the same code as training's live-protocol score
    (:mod:`physioaffect.training.live`), so the two give equal outputs for equal windows.
    """

    def __init__(
        self, hub: StreamHub, bundle: DecoderBundle, rate: float = 4.0, smooth: float = 0.0,
        stale_s: float = 0.5, warmup_s: float = 1.0,
        on_prediction: Callable[[Prediction], None] | None = None,
        on_status: Callable[[StatusEvent], None] | None = None,
        match: StreamMatch | None = None, allow_noncausal: bool = False,
        calibration_s: float | None = None, online: bool | None = None,
        eeg_unit: str | None = None,
    ):
        if not rate > 0:
            raise DecoderError(f"decoding rate must be > 0 Hz, got {rate}")
        self.hub = hub
        self.bundle = bundle
        self.contract = bundle.contract
        self.pipeline_config = live_pipeline(bundle, allow_noncausal)
        self.pipeline_note = pipeline_note(bundle)
        self.match = match or match_streams(bundle, list(hub.infos.values()), eeg_unit=eeg_unit)
        if self.match.eeg is None:
            raise DecoderError(f"{bundle.path}: the live decoder needs an EEG branch")
        self.eeg = self.match.eeg
        self.fs = float(self.eeg.nominal_srate)
        self.rate = float(rate)
        self.smoother = Smoother(smooth)
        self.stale_s = float(stale_s)
        self.on_prediction = on_prediction
        self.on_status = on_status
        self.picks = np.asarray(self.match.picks, dtype=int)
        # the stream's units -> the contract's (a stream in volts reaches the network in uV)
        self.scale = np.asarray(self.match.scale, dtype=np.float64) \
            if self.match.scale is not None else None
        ch = [self.eeg.labels[i] for i in self.picks]
        self._pipeline = StreamingPipeline(self.pipeline_config, self.fs, ch)
        self.model_fs = self._pipeline.sfreq_out
        self.n_window = int(bundle.n_times)  # at the model rate, after decimation
        self.hop = self.model_fs / self.rate
        self.warmup_n = int(round(warmup_s * self.model_fs))
        self.max_backlog = 4  # due points decoded from one chunk at most
        self._cap = self.n_window + self.max_backlog * (int(np.ceil(self.hop)) + 1) + 2
        self._buf = np.zeros((self._cap, len(self.picks)), dtype=np.float32)
        self._bts = np.zeros(self._cap, dtype=np.float64)
        self._reader = hub.reader(self.eeg.name)
        self.model = bundle.model
        self.peripheral: PeripheralFeatures | None = None
        self.modalities_used: tuple[str, ...] = ("eeg",)
        if "peripheral" in self.contract.modalities:
            self.peripheral = PeripheralFeatures(hub, self.match.peripheral,
                                                 list(self.contract.peripheral_features),
                                                 bundle.window_s,
                                                 quality_gate=dict(self.contract.quality_gate)
                                                 ).start()
        self.face: FaceWindowFeatures | None = None
        if "face" in self.contract.modalities:
            self.face = FaceWindowFeatures(hub, self.match.face,
                                           list(self.contract.face_features), bundle.window_s,
                                           self.contract.face_min_valid)
        from physioaffect.models.feeding import adaptation_method, start_adaptation

        # A checkpoint trained with per-subject adaptation first calibrates on the subject's
        # own unlabelled signal (no predictions meanwhile), then decodes adapted windows.
        self.adaptation_method = adaptation_method(self.contract)
        if calibration_s is None:
            calibration_s = float((self.contract.subject_adaptation or {}).get(
                "calibration_s", 60.0))
        if not calibration_s > 0 and self.adaptation_method != "none":
            raise DecoderError(f"calibration_s must be > 0 s for a checkpoint trained with "
                               f"per-subject adaptation {self.adaptation_method!r}, got "
                               f"{calibration_s}")
        self.calibration_s = float(calibration_s) if self.adaptation_method != "none" else 0.0
        self.adaptation = start_adaptation(self.contract, online=online)
        self.calibrated = self.adaptation is None
        self.state = "starting"
        self.reason = ""
        self.predictions = 0
        self.latencies: list[float] = []
        self._low_quality = False
        self._last_data_wall = time.monotonic()
        self._last_ts: float | None = None
        self._reset("start")

    # -- state ---------------------------------------------------------------------------
    def _reset(self, why: str) -> None:
        self._pipeline.reset()
        self._count = 0  # samples in the buffer since the last reset
        self._next_at = float(self.n_window + self.warmup_n)
        self.smoother.reset()
        self._last_ts = None

    def _set_state(self, state: str, reason: str) -> None:
        if state == self.state and reason == self.reason:
            return
        self.state, self.reason = state, reason
        if self.on_status is not None:
            self.on_status(StatusEvent(local_clock(), state, reason))

    # -- work ------------------------------------------------------------------------------
    def step(self) -> list[Prediction]:
        """Read what is new in the hub, filter it, and decode every due window (the newest).

        Returns the predictions made (already passed to ``on_prediction``).
        """
        res = self._reader.read()
        now_wall = time.monotonic()
        if len(res) == 0:
            if now_wall - self._last_data_wall > self.stale_s and self.state != "paused-stale":
                self._set_state("paused", f"no data from {self.eeg.name} for "
                                          f"{now_wall - self._last_data_wall:.1f} s")
                self.state = "paused-stale"
                self._reset("stale")
            return []
        arrived = local_clock()
        self._last_data_wall = now_wall
        ts, x = res.timestamps, res.samples[:, self.picks]
        if self.scale is not None:
            x = x * self.scale
        finite = np.isfinite(x).all(axis=1)
        if not finite.all():  # NaN/inf from a device: a gap, never fed to the filter
            keep = np.flatnonzero(finite)
            ts, x = ts[keep], x[keep]
            self._set_state("paused", f"{self.eeg.name} delivered non-finite samples")
            self._reset("nan")
            if len(ts) == 0:
                return []
        if res.missed:
            self._set_state("paused", f"decoder missed {res.missed} samples of {self.eeg.name}")
            self._reset("missed")
        elif self._last_ts is not None and ts[0] - self._last_ts > 2.5 / self.fs:
            gap = ts[0] - self._last_ts
            self._set_state("paused", f"gap of {gap:.2f} s in {self.eeg.name}; waiting for a "
                                      f"full window")
            self._reset("gap")
        elif self.state == "paused-stale":
            self._set_state("paused", f"{self.eeg.name} is back; waiting for a full window")
        self._last_ts = float(ts[-1])
        y, ts = self._pipeline.process(x, ts)
        y = y.astype(np.float32)
        n = len(ts)
        if n == 0:
            return []
        before = self._count
        self._push(ts, y)
        self._count += n
        if self._count < self._next_at:
            return []
        # every due point inside this chunk (a device may deliver several hops at once);
        # after a stall only the newest few, so the decoder never falls behind real time
        k = int(np.floor((self._count - self._next_at) / self.hop))
        dues = [self._next_at + j * self.hop for j in range(max(0, k - self.max_backlog + 1),
                                                             k + 1)]
        self._next_at = dues[-1] + self.hop
        preds = []
        for due in dues:
            end = min(max(int(round(due)), before + 1), self._count)
            offset = self._count - end  # samples after the window's end in the buffer
            if offset + self.n_window > self._cap:
                continue  # older than the buffer keeps
            pred = self._decode(offset, arrived)
            if pred is not None:
                preds.append(pred)
        if self.calibrating:
            self._set_state("calibrating", self._calibration_note())
            return preds
        used = "+".join(self.modalities_used)
        masked = [m for m in self.bundle.modalities if m not in self.modalities_used]
        note = "" if not self.contract.live_problems() else f"; {self.pipeline_note}"
        self._set_state("running", f"decoding from {used}"
                        + (f" ({', '.join(masked)} masked: no usable stream)" if masked else "")
                        + note)
        return preds

    def _push(self, ts: np.ndarray, y: np.ndarray) -> None:
        n = len(ts)
        if n >= self._cap:
            self._buf[:] = y[-self._cap:]
            self._bts[:] = ts[-self._cap:]
            return
        self._buf[:-n] = self._buf[n:]
        self._buf[-n:] = y
        self._bts[:-n] = self._bts[n:]
        self._bts[-n:] = ts

    def window(self, offset: int = 0) -> tuple[np.ndarray, float]:
        """The current model input ``(n_chans, n_times)`` (preprocessed, at the model rate)
        ending ``offset`` samples back, and the timestamp of its last sample."""
        stop = self._cap - offset
        x = self._buf[stop - self.n_window: stop].T
        t_end = float(self._bts[stop - 1])
        return np.ascontiguousarray(x, dtype=np.float32), t_end

    def window_quality(self, offset: int = 0) -> tuple[float, str]:
        """Quality (0-1) and failed criteria of the filtered EEG window ending ``offset``
        samples back, in microvolts: the fraction of channels that pass the bad-channel
        criteria (:func:`~physioaffect.features.quality.eeg_channel_quality`)."""
        from physioaffect.features.quality import eeg_channel_quality

        stop = self._cap - offset
        x = self._buf[stop - self.n_window: stop].T[None]
        scores, _, reasons = eeg_channel_quality(x, [self.eeg.labels[i] for i in self.picks])
        return float(scores[0]), reasons[0]

    @property
    def calibrating(self) -> bool:
        """True while the per-subject adaptation is still collecting its calibration signal."""
        return not self.calibrated

    def _calibration_note(self) -> str:
        return (f"calibrating per-subject adaptation ({self.adaptation_method}) on the "
                f"subject's own signal: {self._calibrated_s():.0f} of {self.calibration_s:.0f} "
                "s; no predictions until done")

    def _calibrated_s(self) -> float:
        a = self.adaptation
        if a is None or a.first_t is None:
            return 0.0
        return a.last_t - a.first_t + self.bundle.window_s

    def _inputs_now(self, t_end: float | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        per = self.peripheral.latest() if self.peripheral is not None else None
        face = self.face.at(t_end) if self.face is not None and t_end is not None else None
        return per, face

    def _arrays(self, x: np.ndarray, t_end: float | None, fill: bool
                ) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
        """Model arrays of one window and the modalities they hold (``fill``: a missing
        peripheral or face row is NaN, as in training, instead of leaving its branch out)."""
        from physioaffect.models.feeding import model_arrays

        per, face = self._inputs_now(t_end)
        c = self.contract
        if fill:
            if per is None and "peripheral" in c.modalities:
                per = np.full((1, len(c.peripheral_features)), np.nan, np.float32)
            if face is None and "face" in c.modalities:
                face = np.full((1, len(c.face_features)), np.nan, np.float32)
        absent = {"peripheral": per is None, "face": face is None}
        use = tuple(m for m in c.modalities if not absent.get(m, False))
        contract = c if use == c.modalities else dataclasses.replace(c, modalities=use)
        return model_arrays(contract, x[None], per, face, "live window"), use

    def calibrate(self, x: np.ndarray, t_end: float) -> bool:
        """Add one preprocessed window ``(n_chans, n_times)`` ending at ``t_end`` (LSL s) to
        the calibration; when ``calibration_s`` of signal is collected the calibration ends
        (the reference then freezes, or keeps updating when the adaptation is online).

        Returns
        -------
        bool
            True once calibrated.
        """
        if self.calibrated:
            return True
        arrays, _ = self._arrays(x, t_end, fill=True)
        self.adaptation.update({k: v[0] for k, v in arrays.items()}, float(t_end))
        if self._calibrated_s() >= self.calibration_s - 1e-9:
            self.adaptation.end_calibration()
            self.calibrated = True
        return self.calibrated

    def infer(self, x: np.ndarray, t_end: float | None = None) -> np.ndarray:
        """Model output for one window ``(n_chans, n_times)`` ending at ``t_end`` (LSL s):
        probabilities or ratings.

        The window is fed as training fed it (:mod:`physioaffect.models.feeding`: the
        contract's input kind, the subject's adaptation, which an online adaptation first
        updates with this window, the training normalisation); a fusion model without usable
        peripheral or face features runs with that branch masked.
        """
        from physioaffect.models.feeding import normalise, predict

        arrays, use = self._arrays(x, t_end, fill=False)
        contract = self.contract if use == self.contract.modalities else \
            dataclasses.replace(self.contract, modalities=use)
        if self.adaptation is not None:
            if not self.calibrated:
                raise DecoderError("infer: the per-subject adaptation is not calibrated yet")
            window = {k: v[0] for k, v in arrays.items()}
            arrays = self.adaptation.step(window, float(t_end if t_end is not None else 0.0))
        self.modalities_used = use
        with torch.inference_mode():
            y = predict(self.model, contract, normalise(contract, arrays))
        return np.atleast_1d(np.asarray(y[0], dtype=np.float64))

    def close(self) -> None:
        """Stop the peripheral feature thread (if any)."""
        if self.peripheral is not None:
            self.peripheral.stop()

    def _decode(self, offset: int, arrived: float) -> Prediction | None:
        from physioaffect.features.quality import QUALITY_THRESHOLD

        x, t_end = self.window(offset)
        if self.calibrating:
            self.calibrate(x, t_end)
            return None
        raw = self.infer(x, t_end)
        values = self.smoother(t_end, raw)
        quality, why = self.window_quality(offset)
        if self.peripheral is not None and "peripheral" in self.modalities_used:
            pq, pwhy = self.peripheral.quality()
            if np.isfinite(pq) and pq < quality:
                quality, why = pq, pwhy
        pred = Prediction(t_end, values, raw, arrived, quality=quality, quality_reasons=why)
        low = quality < QUALITY_THRESHOLD
        if low != self._low_quality:  # say so once when the flag turns on (and off)
            self._low_quality = low
            if self.on_status is not None:
                self.on_status(StatusEvent(local_clock(), "low-quality" if low else "quality-ok",
                                           why if low else f"window quality {quality:.2f}"))
        try:
            if self.on_prediction is not None:
                self.on_prediction(pred)
        finally:  # counted even when Ctrl-C/SIGTERM lands while it is being published, so a
            # run's summary never counts fewer predictions than its consumers received
            pred.published = local_clock()
            self.latencies.append(pred.latency)
            self.predictions += 1
        return pred

    def run(self, stop: threading.Event, poll: float = 0.001,
            duration: float | None = None) -> None:
        """Call :meth:`step` until ``stop`` is set or ``duration`` s have passed."""
        t_end = None if duration is None else time.monotonic() + duration
        while not stop.is_set() and (t_end is None or time.monotonic() < t_end):
            if not self.step():
                time.sleep(poll)
