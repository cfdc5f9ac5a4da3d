"""Several sources read as one (``--source a --source b``)."""

from __future__ import annotations

from collections.abc import Sequence

from physioaffect.sources.base import Source, SourceError
from physioaffect.streams import Chunk


class MultiSource(Source):
    """Reads several sources in turn; stream names must not collide."""

    def __init__(self, sources: Sequence[Source]):
        super().__init__()
        self.sources = list(sources)
        self.description = " + ".join(s.description for s in self.sources)

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

    def _stop(self) -> None:
        errors = []
        for src in reversed(self.sources):
            try:
                src.stop()
            except Exception as err:  # noqa: BLE001 - stop the others, then report
                errors.append(err)
        if errors:
            raise errors[0]
