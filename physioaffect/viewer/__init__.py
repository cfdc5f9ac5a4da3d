"""The live viewer (PySide6 + pyqtgraph): EEG traces decimated to pixels, peripheral signals
with heart/pulse/breathing rates and EDA level, band power and FAA, markers drawn everywhere
and sent from the keyboard, a neurofeedback panel for prediction streams, recording from a
button. ``physioaffect view`` runs :func:`run_viewer`."""

from physioaffect.viewer.feedback import FeedbackTarget, parse_targets, va_from_prediction
from physioaffect.viewer.raster import RasterTraces, minmax_columns, rasterize

__all__ = [
    "FeedbackTarget",
    "RasterTraces",
    "minmax_columns",
    "parse_targets",
    "rasterize",
    "run_viewer",
    "va_from_prediction",
]


def __getattr__(name: str):
    if name == "run_viewer":  # Qt is imported only when the viewer is used
        from physioaffect.viewer.app import run_viewer

        return run_viewer
    raise AttributeError(name)
