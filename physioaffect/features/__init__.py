"""Feature extraction: EEG band features, EmT graph sequences, peripheral physiology (NeuroKit2), windowed tables.

Names are imported on first use (PEP 562), so ``physioaffect.features.eeg`` needs only numpy
and scipy (the TorchEEG cross-check runs it in a minimal environment) and matplotlib, pandas
and NeuroKit2 load only when needed. Figures: :mod:`physioaffect.features.figures`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BANDS": "eeg",
    "band_power": "eeg",
    "dasm": "eeg",
    "differential_entropy": "eeg",
    "frontal_alpha_asymmetry": "eeg",
    "hjorth": "eeg",
    "rasm": "eeg",
    "EMT_BANDS": "graphs",
    "emt_band_power": "graphs",
    "emt_graph_sequence": "graphs",
    "emt_sub_window_starts": "graphs",
    "ecg_features": "peripheral",
    "ecg_rpeaks": "peripheral",
    "eda_features": "peripheral",
    "ppg_features": "peripheral",
    "rsp_features": "peripheral",
    "temp_features": "peripheral",
    "feature_table": "windows",
    "sliding_windows": "windows",
    "window_starts": "windows",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"physioaffect.features.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'physioaffect.features' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
