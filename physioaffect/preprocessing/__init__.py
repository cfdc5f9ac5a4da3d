"""EEG preprocessing: a declared, serialisable pipeline (MNE) and its causal streaming variant."""

from physioaffect.preprocessing.pipeline import (
    PipelineConfig,
    StreamingFilter,
    StreamingPipeline,
    apply_baseline,
    design_sos,
    detect_bad_channels,
    filter_array,
    make_epochs,
    normalise_to_baseline,
    preprocess_array,
    preprocess_raw,
)
from physioaffect.preprocessing.quality import SignalInputError, SignalQualityWarning

__all__ = [
    "PipelineConfig",
    "StreamingFilter",
    "StreamingPipeline",
    "SignalInputError",
    "SignalQualityWarning",
    "apply_baseline",
    "design_sos",
    "detect_bad_channels",
    "filter_array",
    "make_epochs",
    "normalise_to_baseline",
    "preprocess_array",
    "preprocess_raw",
]
