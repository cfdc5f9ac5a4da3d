"""Bring LSL streams of given types (``Prediction``, ``Face``) into the viewer whenever they
appear on the network, so the neurofeedback and face panels show up without a restart.

Each type gets one thread that looks for it; once found, an
:class:`~physioaffect.sources.lsl.LSLSource` for it joins the viewer's acquisition engine
(which reads it like any other source, and takes the stream back when it vanishes and
returns).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pylsl

from physioaffect.sources.base import SourceError
from physioaffect.sources.engine import Acquisition
from physioaffect.sources.lsl import LSLSource, predicate_for

__all__ = ["LSLWatcher"]


class LSLWatcher:
    """Looks for LSL streams of ``types`` every ``interval`` s and adds them to ``engine``.

    Parameters
    ----------
    engine : Acquisition
    types : sequence of str
        LSL stream types (or names) to look for.
    interval : float
        Seconds between searches while a type is absent.
    """

    def __init__(self, engine: Acquisition, types: Sequence[str] = ("Prediction", "Face"),
                 interval: float = 1.0):
        self.engine = engine
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
            if pylsl.resolve_bypred(predicate_for(target), 1, min(0.5, self.interval)):
                src = LSLSource(target, timeout=2.0)
                try:
                    self.engine.add_source(src)
                except SourceError:
                    pass  # gone again, or unusable: look again later
                else:
                    self.connected[target] = [s.name for s in src.streams]
                    return
            self._stop.wait(self.interval)
