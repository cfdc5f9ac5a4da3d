"""Live decoding: a trained checkpoint applied to live streams (sliding window, the training
preprocessing applied causally, smoothing) and published as an LSL ``Prediction`` stream.

:func:`load_bundle` reads a checkpoint, :func:`match_streams` checks it against a source,
:class:`OnlineDecoder` decodes a :class:`~physioaffect.streams.StreamHub`, and
:func:`run_decoder` is ``physioaffect decode``.
"""

from physioaffect.realtime.checkpoint import (
    CheckpointMismatchError,
    DecoderBundle,
    DecoderError,
    StreamMatch,
    bundle_for_model,
    load_bundle,
    match_streams,
    save_bundle,
)
from physioaffect.realtime.decoder import (
    PREDICTION_TYPE,
    QUALITY_CHANNEL,
    OnlineDecoder,
    Prediction,
    Smoother,
    StatusEvent,
    prediction_info,
    status_info,
)
from physioaffect.realtime.service import DecodeReport, run_decoder

__all__ = [
    "PREDICTION_TYPE",
    "QUALITY_CHANNEL",
    "CheckpointMismatchError",
    "DecodeReport",
    "DecoderBundle",
    "DecoderError",
    "OnlineDecoder",
    "Prediction",
    "Smoother",
    "StatusEvent",
    "StreamMatch",
    "bundle_for_model",
    "load_bundle",
    "match_streams",
    "prediction_info",
    "run_decoder",
    "save_bundle",
    "status_info",
]
