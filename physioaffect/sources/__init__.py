"""Sources: the simulator, BrainFlow boards and LSL streams, named the same way on
every command line (see :class:`SourceSpec`) and opened with :func:`open_source`; the
acquisition engine (:class:`Acquisition`) through which every command reads them."""

from __future__ import annotations

from physioaffect.sources.base import Source, SourceError, SourceSpec, SourceSpecError
from physioaffect.sources.engine import Acquisition, Consumer, EngineEvent, HubConsumer
from physioaffect.sources.multi import MultiSource
from physioaffect.sources.registry import (
    SOURCE_KINDS,
    open_source,
    register_source_kind,
    source_from_spec,
)

__all__ = [
    "SOURCE_KINDS",
    "Acquisition",
    "Consumer",
    "EngineEvent",
    "HubConsumer",
    "MultiSource",
    "Source",
    "SourceError",
    "SourceSpec",
    "SourceSpecError",
    "open_source",
    "register_source_kind",
    "source_from_spec",
]
