"""Commands of the live stage: ``decode`` (checkpoint -> LSL Prediction stream) and ``view``
(the Qt viewer with neurofeedback)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import typer

from physioaffect.cli.errors import fail
from physioaffect.errors import PhysioAffectError

SOURCE_HELP = "Source spec (repeatable): sim, sim?rate=128&eeg_channels=32, lsl:EEG, brainflow:synthetic"


def decode(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="Trained checkpoint (folder)."),
    source: list[str] = typer.Option(["sim"], "--source", "-s", help=SOURCE_HELP),
    rate: float = typer.Option(4.0, "--rate", help="Predictions per second."),
    smooth: float = typer.Option(0.0, "--smooth", help="Smoothing time constant in seconds (0: none)."),
    duration: float = typer.Option(0.0, "--duration", help="Seconds to run (0: until Ctrl-C)."),
    name: str = typer.Option("physioaffect-prediction", "--name", help="Name of the LSL Prediction stream."),
    threads: int = typer.Option(1, "--threads", help="Torch threads for inference."),
    allow_noncausal: bool = typer.Option(
        False, "--allow-noncausal",
        help="Decode a checkpoint whose training preprocessing cannot run live (zero-phase "
             "filters, bad-channel detection, ICA) with its causal equivalent; the status "
             "line and the Prediction stream's metadata say so."),
    calibration: float = typer.Option(
        0.0, "--calibration",
        help="Seconds of the new subject's signal a checkpoint trained with per-subject "
             "adaptation calibrates on before its first prediction (0: the checkpoint's "
             "own, 60 s by default)."),
    online: bool = typer.Option(
        None, "--online/--offline",
        help="After the calibration, keep updating the per-subject adaptation with every "
             "window (online) or freeze it (offline); default: what training chose for the "
             "checkpoint on validation subjects."),
    eeg_unit: str = typer.Option(
        None, "--eeg-unit",
        help="Unit of EEG channels whose stream declares none (uV, mV, V); a stream without "
             "units is refused otherwise. Declared units are converted to the checkpoint's."),
) -> None:
    """Decode live streams with a trained model and publish an LSL 'Prediction' stream."""
    from physioaffect.realtime import run_decoder
    from physioaffect.realtime.service import summary_json

    def _terminate(signum, frame):  # SIGTERM ends the run like Ctrl-C: summary printed
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        report = run_decoder(source, str(checkpoint), rate=rate, smooth=smooth,
                             duration=duration or None, name=name, threads=threads,
                             echo=lambda m: typer.echo(m, err=True),
                             allow_noncausal=allow_noncausal,
                             calibration_s=calibration or None, online=online,
                             eeg_unit=eeg_unit)
    except PhysioAffectError as err:
        fail(err)
    except KeyboardInterrupt:
        typer.echo("decoder interrupted", err=True)
        return
    typer.echo(summary_json(report))


def view(
    source: list[str] = typer.Option(["sim"], "--source", "-s", help=SOURCE_HELP),
    duration: float = typer.Option(0.0, "--duration", help="Close after this many seconds (0: stay open)."),
    screenshot: Path = typer.Option(None, "--screenshot", help="PNG written before closing (with --duration)."),
    window: float = typer.Option(10.0, "--window", help="Seconds of signal shown."),
    targets: str = typer.Option("", "--targets", help="Neurofeedback goals, e.g. 'faa>0.1,hr<70' (faa, alpha, hr need no "
                                                  "decoder) or 'arousal<4' (needs a Prediction stream)."),
    marker_keys: str = typer.Option("", "--marker-keys", help="Keys to markers, e.g. '1=baseline,2=stimulus' (default 1-9 -> key-1..key-9)."),
    record_dir: Path = typer.Option(Path("."), "--record-dir", help="Folder for recordings started with the Record button."),
    fps: float = typer.Option(30.0, "--fps", help="Refresh rate asked of the viewer."),
    record: bool = typer.Option(False, "--record", help="Start recording at once (as the Record button does) into --record-dir, until the viewer closes."),
) -> None:
    """Show live streams: EEG, ECG/EDA/PPG/respiration, band power, markers, neurofeedback."""
    from physioaffect.recording.markers import parse_marker_keys
    from physioaffect.viewer.app import run_viewer
    from physioaffect.viewer.feedback import parse_targets

    try:
        tgts = parse_targets(targets)
        keys = parse_marker_keys(marker_keys) if marker_keys else None
        result = run_viewer(source, duration=duration or None, screenshot=screenshot,
                            window_s=window, targets=tgts, marker_keys=keys,
                            record_dir=record_dir, fps=fps, record=record,
                            echo=lambda m: typer.echo(m, err=True))
    except (PhysioAffectError, OSError) as err:
        fail(err)
    typer.echo(f"viewer closed after {result['seconds']:.1f} s, {result['frames']} frames")
    if result["recording"] is not None:
        typer.echo(f"session file: {Path(result['recording']).resolve()}")
    elif record:
        typer.echo(f"physioaffect: error: the recording failed: {result['record_error']}",
                   err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    # Qt/pyqtgraph objects torn down by the interpreter's final garbage collection can crash
    # (a PySide6 refcount bug seen here); everything is saved and closed by now.
    os._exit(0)


def register(app: typer.Typer) -> None:
    """Add the live commands to ``app``."""
    app.command("decode")(decode)
    app.command("view")(view)
