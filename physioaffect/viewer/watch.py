"""Pull LSL streams of given types (``Prediction``, ``Face``) into the viewer's hub whenever
they appear on the network, so the neurofeedback and face panels show up without a restart.

Each type gets one thread that owns its :class:`~physioaffect.sources.lsl.LSLSource` (liblsl
objects stay on one thread); the source reconnects a stream that vanishes and returns.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence

from physioaffect.sources.base import SourceError
from physioaffect.sources.lsl import LSLSource
from physioaffect.streams import StreamHub

__all__ = ["LSLWatcher"]


class LSLWatcher:
    """Looks for LSL streams of ``types`` every ``interval`` s and pumps them into ``hub``.

    Parameters
    ----------
    hub : StreamHub
    types : sequence of str
        LSL stream types (or names) to look for.
    interval : float
        Seconds between searches while a type is absent.
    """

    def __init__(self, hub: StreamHub, types: Sequence[str] = ("Prediction", "Face"),
                 interval: float = 1.0):
        self.hub = hub
        self.types = list(types)
        self.interval = interval
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(t,), daemon=True,
                                          name=f"viewer-watch-{t}") for t in self.types]
        self.connected: dict[str, list[str]] = {t: [] for t in self.types}

    def start(self) -> LSLWatcher:
        for th in self._threads:
            th.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(timeout=5.0)

    def _run(self, target: str) -> None:
        while not self._stop.is_set():
            src = LSLSource(target, timeout=min(0.5, self.interval))
            try:
                src.start()
            except SourceError:
                self._stop.wait(self.interval)
                continue
            try:
                for info in src.streams:
                    if info.name not in self.hub.infos:
                        self.hub.add_stream(info)
                self.connected[target] = [s.name for s in src.streams]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a lost stream shows as stale in the viewer
                    while not self._stop.is_set():
                        for chunk in src.read(0.05):
                            if chunk.stream not in self.hub.buffers:
                                self.hub.add_stream(src.stream(chunk.stream))
                            self.hub.push(chunk)
            finally:
                src.stop()
