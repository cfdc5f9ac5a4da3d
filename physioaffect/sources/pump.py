"""A thread that drains a source into a :class:`StreamHub` so that no consumer can
make the source (or a device's own buffer) overflow."""

from __future__ import annotations

import threading

from physioaffect.sources.base import Source
from physioaffect.streams import StreamHub


class SourcePump:
    """Reads ``source`` on its own thread and pushes every chunk into ``hub``.

    The source is started and stopped on the pump thread (LSL and BrainFlow
    handles stay on one thread). Errors end the pump and are kept in :attr:`error`.

    Parameters
    ----------
    source : Source
        A source that is not started yet.
    seconds : float
        Ring-buffer length per stream in seconds.
    """

    def __init__(self, source: Source, seconds: float = 30.0):
        self.source = source
        self.hub = StreamHub([], seconds=seconds)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="physioaffect-pump", daemon=True)

    def start(self, timeout: float = 30.0) -> SourcePump:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self.source.description} did not start within {timeout:g} s")
        if self.error is not None:
            raise self.error
        return self

    def _run(self) -> None:
        try:
            with self.source:
                for info in self.source.streams:
                    self.hub.add_stream(info)
                self._ready.set()
                while not self._stop.is_set():
                    for chunk in self.source.read(0.02):
                        if chunk.stream not in self.hub.buffers:
                            self.hub.add_stream(self.source.stream(chunk.stream))
                        self.hub.push(chunk)
        except BaseException as err:  # noqa: BLE001 - handed to the owner thread
            self.error = err
        finally:
            self._ready.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    def __enter__(self) -> SourcePump:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
