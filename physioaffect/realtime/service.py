"""``physioaffect decode``: sources -> acquisition engine (hub) -> :class:`OnlineDecoder` -> LSL
``Prediction`` outlet."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from physioaffect.log import logger, verbose
from physioaffect.realtime.checkpoint import DecoderBundle, load_bundle, match_streams
from physioaffect.realtime.decoder import (
    OnlineDecoder,
    Prediction,
    StatusEvent,
    live_pipeline,
    pipeline_note,
    prediction_info,
    status_info,
)
from physioaffect.sinks.lsl import LSLOutlet
from physioaffect.sources.engine import SAID, Acquisition, Consumer, EngineEvent
from physioaffect.streams import Chunk, local_clock

__all__ = ["DecodeReport", "run_decoder"]


@dataclass
class DecodeReport:
    """What a decoding run did."""

    predictions: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    stream: str = ""

    def latency_summary(self) -> dict[str, float]:
        """Median, p95 and max latency in ms (NaN when nothing was decoded)."""
        if not self.latencies_ms:
            return {"median_ms": float("nan"), "p95_ms": float("nan"), "max_ms": float("nan")}
        a = np.asarray(self.latencies_ms)
        return {"median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)),
                "max_ms": float(a.max())}


@verbose
def run_decoder(
    sources: Sequence[str], checkpoint: str | DecoderBundle, rate: float = 4.0,
    smooth: float = 0.0, duration: float | None = None, name: str = "physioaffect-prediction",
    stop: threading.Event | None = None, echo: Callable[[str], None] | None = None,
    threads: int = 1, allow_noncausal: bool = False, calibration_s: float | None = None,
    online: bool | None = None, eeg_unit: str | None = None, *,
    verbose: bool | str | int | None = None,
) -> DecodeReport:
    """Decode live until ``duration`` s pass or ``stop`` is set; publish over LSL.

    Parameters
    ----------
    sources : sequence of str
        Source specs (``sim``, ``lsl:EEG``, ``brainflow:synthetic``...).
    checkpoint : str or DecoderBundle
        Path of a checkpoint (see :func:`load_bundle`) or a loaded bundle.
    rate : float
        Predictions per second.
    smooth : float
        Smoothing time constant, s.
    duration : float, optional
        Seconds to run (None: until ``stop``/Ctrl-C).
    name : str
        Name of the prediction stream (its status stream is ``<name>-status``).
    threads : int
        Torch intra-op threads (1 keeps latency steady on a shared 2-core machine).
    allow_noncausal : bool
        Decode a checkpoint whose training pipeline cannot run live (zero-phase filters ...)
        with its causal equivalent; the status and the stream metadata say so.
    calibration_s : float, optional
        For a checkpoint trained with per-subject adaptation: seconds of the new subject's
        signal to adapt on before the first prediction (None: the checkpoint's own,
        ``contract.subject_adaptation["calibration_s"]``). Ignored for other checkpoints.
    online : bool, optional
        Keep updating that adaptation after the calibration (None: as the checkpoint says,
        which training chose on validation subjects).
    eeg_unit : str, optional
        Unit of EEG channels that declare none (a stream without units is refused otherwise).
    echo : callable, optional
        Receives the progress lines instead of the package logger (the command line's).
    verbose : bool, str, int or None
        Level of the package logger for this call (:func:`physioaffect.set_log_level`);
        progress lines are INFO, warnings WARNING.

    Raises
    ------
    CheckpointMismatchError
        The source's EEG channels or rate do not fit the checkpoint (before any decoding).
    """
    import torch

    torch.set_num_threads(max(1, int(threads)))
    say = echo if echo is not None else logger.info
    warn = (lambda m: echo(f"warning: {m}")) if echo is not None else logger.warning
    bundle = checkpoint if isinstance(checkpoint, DecoderBundle) else load_bundle(checkpoint)
    live_pipeline(bundle, allow_noncausal)  # refused here, before any stream is opened
    if bundle.contract.live_problems():
        warn(pipeline_note(bundle))
    stop = stop or threading.Event()
    report = DecodeReport(stream=name)
    # the outlets exist before the source is found, so consumers can connect ahead of the data
    info = prediction_info(bundle, rate, name, source=" + ".join(sources))
    outlet = LSLOutlet(info)
    status_outlet = LSLOutlet(status_info(name))
    engine = Acquisition.from_specs(list(sources), hub_seconds=30.0)
    engine.subscribe(_Warnings(warn))
    engine.start()
    try:
        match = match_streams(bundle, list(engine.hub.infos.values()), eeg_unit=eeg_unit)

        def publish(p: Prediction) -> None:
            outlet.push(Chunk(name, np.array([p.time]), p.sample()[None].astype(np.float32)))

        def on_status(ev: StatusEvent) -> None:
            status_outlet.push(Chunk(status_outlet.info.name, np.array([ev.time]),
                                     np.array([[ev.to_json()]], dtype=object)))
            report.status.append(f"{ev.state}: {ev.reason}")
            say(f"decoder {ev.state}: {ev.reason}")

        dec = OnlineDecoder(engine.hub, bundle, rate=rate, smooth=smooth, on_prediction=publish,
                            on_status=on_status, match=match, allow_noncausal=allow_noncausal,
                            calibration_s=calibration_s, online=online)
        say(f"decoding {match.eeg.name} ({len(bundle.ch_names)} ch, {dec.fs:g} Hz, "
            f"{bundle.window_s:g} s windows) -> LSL stream {name!r} (type Prediction, "
            f"{', '.join(bundle.output_labels())}) at {rate:g} Hz")
        if dec.calibrating:
            after = ("then updated with every window (online)" if dec.adaptation.online
                     else "then frozen")
            say(f"calibrating on the subject's first {dec.calibration_s:g} s "
                f"({dec.adaptation_method} adaptation, as in training; {after}); predictions "
                "follow")
        else:  # warm the model up so the first window is not slower than the rest
            dec.infer(np.zeros((len(bundle.ch_names), bundle.n_times), dtype=np.float32))
        t_end = None if duration is None else time.monotonic() + duration
        next_report = time.monotonic() + 10.0
        try:
            while not stop.is_set() and (t_end is None or time.monotonic() < t_end):
                if not dec.step():
                    time.sleep(0.001)
                if time.monotonic() >= next_report:
                    lat = np.asarray(dec.latencies[-100:]) * 1000
                    if lat.size:
                        say(f"{dec.predictions} predictions, latency median "
                            f"{np.median(lat):.1f} ms, p95 {np.percentile(lat, 95):.1f} ms, "
                            f"state {dec.state}")
                    next_report = time.monotonic() + 10.0
        except KeyboardInterrupt:  # Ctrl-C ends a run normally, with its summary
            say("decoder interrupted")
        dec.close()
        report.predictions = dec.predictions
        report.latencies_ms = [1000 * v for v in dec.latencies]
        on_status(StatusEvent(local_clock(), "stopped", "decoder stopped"))
        time.sleep(0.2)  # let inlets fetch the last samples before the outlets go
    finally:
        engine.stop()
    return report


class _Warnings(Consumer):
    """Says what the engine notes (a stream lost or back, a source error, a refused stream)."""

    def __init__(self, warn: Callable[[str], None]):
        self.warn = warn

    def on_event(self, event: EngineEvent) -> None:
        if event.kind not in SAID:  # (the engine logs those itself)
            self.warn(event.text if event.kind not in ("connected", "disconnected")
                      else f"stream {event.text}")


def summary_json(report: DecodeReport) -> str:
    """One-line JSON summary of a run (printed by the CLI)."""
    return json.dumps({"stream": report.stream, "predictions": report.predictions,
                       **report.latency_summary()})
