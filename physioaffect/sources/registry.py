"""Source specs to sources: the built-in kinds, the kinds later stages register (``video``),
and :func:`open_source` for one or several specs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from physioaffect.sources.base import Source, SourceSpec, SourceSpecError
from physioaffect.sources.multi import MultiSource

SOURCE_KINDS = ("sim", "brainflow", "lsl")

# Source kinds that later stages provide (``video`` from physioaffect.face); a stage
# registers its kind when imported, so this stage never imports a later one.
_REGISTERED: dict[str, Callable[[SourceSpec], Source]] = {}


def register_source_kind(kind: str, factory: Callable[[SourceSpec], Source]) -> None:
    """Make ``kind:...`` specs open with ``factory(spec)`` (e.g. ``video`` for cameras)."""
    _REGISTERED[kind.lower()] = factory


def source_from_spec(spec: str | SourceSpec) -> Source:
    """Build (not start) one source from its spec text."""
    if isinstance(spec, str):
        spec = SourceSpec.parse(spec)
    if spec.kind == "sim":
        from physioaffect.sources.sim import SimSource

        if spec.target:
            raise SourceSpecError(f"source {spec.text!r}: sim takes options after '?', not ':{spec.target}'")
        return SimSource.from_spec(spec)
    if spec.kind == "brainflow":
        from physioaffect.sources.brainflow import BrainFlowSource

        return BrainFlowSource.from_spec(spec)
    if spec.kind == "lsl":
        from physioaffect.sources.lsl import LSLSource

        return LSLSource.from_spec(spec)
    if spec.kind in _REGISTERED:
        return _REGISTERED[spec.kind](spec)
    kinds = [*SOURCE_KINDS, *sorted(_REGISTERED)]
    raise SourceSpecError(
        f"unknown source kind {spec.kind!r} in {spec.text!r}; expected one of {', '.join(kinds)} "
        "(e.g. sim, brainflow:synthetic, lsl:EEG)"
    )


def open_source(specs: str | Sequence[str]) -> Source:
    """One source for one spec, or a :class:`MultiSource` combining several.

    The returned source is not started: use it as a context manager.
    """
    if isinstance(specs, str):
        specs = [specs]
    if not specs:
        specs = ["sim"]
    sources = [source_from_spec(s) for s in specs]
    return sources[0] if len(sources) == 1 else MultiSource(sources)
