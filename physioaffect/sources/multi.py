"""Several sources read as one (``--source a --source b``)."""

from __future__ import annotations

from collections.abc import Sequence

from physioaffect.sources.base import Source, SourceError
from physioaffect.streams import Chunk, local_clock


class MultiSource(Source):
    """Reads several sources in turn; stream names must not collide."""

    def __init__(self, sources: Sequence[Source]):
        super().__init__()
        self.sources = list(sources)
        self.description = " + ".join(s.description for s in self.sources)
        self._last_state: dict[str, bool] = {}

    def _start(self) -> None:
        started = []
        try:
            for src in self.sources:
                src.start()
                started.append(src)
        except BaseException:
            for src in reversed(started):
                src.stop()
            raise
        self._refresh()

    def _refresh(self) -> None:
        names: dict[str, str] = {}
        streams = []
        for src in self.sources:
            for info in src.streams:
                if info.name in names and names[info.name] != src.description:
                    raise SourceError(
                        f"stream name {info.name!r} comes from both {names[info.name]} and "
                        f"{src.description}; give one a prefix (e.g. sim?prefix=simB)"
                    )
                names[info.name] = src.description
                streams.append(info)
        self.streams = streams

    def _read(self, timeout: float) -> list[Chunk]:
        per = timeout / max(1, len(self.sources))
        out = []
        for src in self.sources:
            out += src.read(per)
        if len(self.streams) != sum(len(s.streams) for s in self.sources):
            self._refresh()
        return out

    # the engine's questions, answered for every part
    @property
    def next_read_s(self) -> float | None:
        hints = [h for h in (s.next_read_s for s in self.sources) if h is not None]
        return min(hints) if hints else None

    def take_notes(self) -> list[str]:
        return [*super().take_notes(), *(n for s in self.sources for n in s.take_notes())]

    def connection_state(self) -> dict[str, bool]:
        return {k: v for s in self.sources for k, v in s.connection_state().items()}

    def connection_changes(self) -> list[tuple[float, str, bool]] | None:
        out: list[tuple[float, str, bool]] = []
        for s in self.sources:
            changes = s.connection_changes()
            if changes is None:  # this part only shows its state: compare with the last
                last = self._last_state
                for name, up in s.connection_state().items():
                    if last.get(name, True) != up:
                        out.append((local_clock(), name, up))
                    last[name] = up
            else:
                out += changes
        return out

    def clock_offset_of(self, stream: str) -> float | None:
        for s in self.sources:
            if any(info.name == stream for info in s.streams):
                return s.clock_offset_of(stream)
        return None

    def _stop(self) -> None:
        errors = []
        for src in reversed(self.sources):
            try:
                src.stop()
            except Exception as err:  # noqa: BLE001 - stop the others, then report
                errors.append(err)
        if errors:
            raise errors[0]
