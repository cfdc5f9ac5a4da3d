"""The source protocol and the source-spec syntax shared by every command line.

A source spec is ``kind[:target][?key=value&key=value]``:

- ``sim`` or ``sim?subjects=12&eeg_channels=32&rate=256&seed=1``
- ``brainflow:synthetic`` or ``brainflow:cyton?serial_port=/dev/ttyUSB0``
- ``lsl:EEG`` (a type), ``lsl:MyAmp`` (a name), ``lsl:EEG?timeout=5``
"""

from __future__ import annotations

import abc
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from physioaffect.errors import PhysioAffectError
from physioaffect.streams import Chunk, StreamInfo
from physioaffect.streams.info import UnknownStreamError


class SourceError(PhysioAffectError, RuntimeError):
    """A source could not be opened or read; the message is meant for the operator."""


class SourceSpecError(SourceError, ValueError):
    """A source spec or source option is malformed or out of range."""


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source spec (see the module docstring)."""

    kind: str
    target: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> SourceSpec:
        """Parse ``kind[:target][?key=value&...]``; raises ValueError with the reason."""
        raw = text.strip()
        if not raw:
            raise SourceSpecError("empty source spec; expected e.g. 'sim', 'brainflow:synthetic', 'lsl:EEG'")
        head, _, query = raw.partition("?")
        kind, _, target = head.partition(":")
        kind = kind.strip().lower()
        if not kind:
            raise SourceSpecError(f"source spec {text!r} has no kind before ':'")
        params: dict[str, str] = {}
        if query:
            for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=False):
                if not key:
                    raise SourceSpecError(f"source spec {text!r}: empty parameter name in {query!r}")
                params[key] = value
            if not params and query.strip():
                raise SourceSpecError(
                    f"source spec {text!r}: cannot read parameters {query!r}; expected key=value&key=value"
                )
        return cls(kind=kind, target=target.strip(), params=params, text=raw)

    def param(self, key: str, default: str | None = None) -> str | None:
        return self.params.get(key, default)

    def int_param(self, key: str, default: int) -> int:
        value = self.params.get(key)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise SourceSpecError(
                f"source {self.text!r}: parameter {key}={value!r} must be an integer"
            ) from None

    def float_param(self, key: str, default: float) -> float:
        value = self.params.get(key)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise SourceSpecError(
                f"source {self.text!r}: parameter {key}={value!r} must be a number"
            ) from None

    def check_known(self, known: set[str]) -> None:
        """Refuse parameters the source does not understand (typos must not pass silently)."""
        unknown = sorted(set(self.params) - known)
        if unknown:
            raise SourceSpecError(
                f"source {self.text!r}: unknown parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )


class Source(abc.ABC):
    """Anything that yields chunks for one or more streams.

    Use as a context manager::

        with open_source("sim") as src:
            for chunk in src.read():
                ...

    Subclasses implement :meth:`_start`, :meth:`_read` and :meth:`_stop`;
    :attr:`streams` is valid after :meth:`start`.
    """

    #: Short description for status lines.
    description: str = "source"

    def __init__(self) -> None:
        self._started = False
        self.streams: list[StreamInfo] = []
        self._notes: list[str] = []

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        if self._started:
            return
        self._start()
        self._started = True

    def stop(self) -> None:
        if not self._started:
            return
        try:
            self._stop()
        finally:
            self._started = False

    def prefer_batches(self, interval: float) -> bool:
        """Hint from a consumer that reads every ``interval`` s and wants whatever is
        waiting then, not each sample the moment it arrives (the recorder).

        Returns True when the source can then be read without ever blocking (``read``
        returns at once), so one thread can read it together with other such sources.
        Default: nothing changes, False.
        """
        return False

    @property
    def started(self) -> bool:
        return self._started

    # -- what the acquisition engine asks ----------------------------------------------------
    @property
    def start_timeout_s(self) -> float:
        """Seconds :meth:`start` may wait on purpose (e.g. for streams to appear), beyond
        the engine's own start timeout."""
        return 0.0

    @property
    def next_read_s(self) -> float | None:
        """Seconds within which the source wants to be read again (None: no wish), e.g.
        while it takes a returning stream back; a paced reader then comes sooner."""
        return None

    def note(self, text: str) -> None:
        """Leave a one-line message for the engine (a stream refused, ...)."""
        if not hasattr(self, "_notes"):
            self._notes = []
        self._notes.append(text)

    def take_notes(self) -> list[str]:
        """Messages left since the last call (see :meth:`note`)."""
        notes = getattr(self, "_notes", None)
        out = []
        while notes:  # pop, not swap: another thread of the source may add one meanwhile
            out.append(notes.pop(0))
        return out

    def connection_state(self) -> dict[str, bool]:
        """True (connected) or False (lost) per stream, when the source knows (from its
        ``state`` attribute: ``"connected"``/``"lost"`` or booleans); ``{}`` otherwise."""
        try:
            value = getattr(self, "state", None)
        except Exception:  # noqa: BLE001 - a property that fails must not stop a recording
            return {}
        if not isinstance(value, dict):
            return {}
        return {str(k): (v.lower() not in ("lost", "disconnected", "down")
                         if isinstance(v, str) else bool(v)) for k, v in value.items()}

    def connection_changes(self) -> list[tuple[float, str, bool]] | None:
        """``(LSL time, stream, connected)`` for every change since the last call, from a
        source that records them as they happen; None: compare :meth:`connection_state`."""
        return None

    def clock_offset_of(self, stream: str) -> float | None:
        """The clock offset (s) the source added to a stream's timestamps to put them on the
        LSL clock (``clock_offset`` attribute, a number or a dict by stream), if it says."""
        for attr in ("clock_offsets", "clock_offset"):
            value = getattr(self, attr, None)
            if isinstance(value, dict) and stream in value:
                try:
                    return float(value[stream])
                except (TypeError, ValueError):
                    return None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return None

    def __enter__(self) -> Source:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- data ----------------------------------------------------------------
    def read(self, timeout: float = 0.05) -> list[Chunk]:
        """Chunks that arrived since the last call (waits at most ``timeout`` s for one)."""
        if not self._started:
            raise SourceError(f"{self.description}: read() before start()")
        return self._read(timeout)

    def iter_chunks(self, duration: float | None = None, timeout: float = 0.05) -> Iterator[Chunk]:
        """Yield chunks until ``duration`` seconds of source time have passed (forever if None)."""
        from physioaffect.streams import local_clock

        t_end = None if duration is None else local_clock() + duration
        while t_end is None or local_clock() < t_end:
            yield from self.read(timeout)

    def stream(self, name: str) -> StreamInfo:
        for info in self.streams:
            if info.name == name:
                return info
        raise UnknownStreamError(f"{self.description}: no stream {name!r}; has {[s.name for s in self.streams]}")

    @abc.abstractmethod
    def _start(self) -> None: ...

    @abc.abstractmethod
    def _read(self, timeout: float) -> list[Chunk]: ...

    @abc.abstractmethod
    def _stop(self) -> None: ...
