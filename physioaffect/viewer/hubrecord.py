"""Record what the viewer shows: the streams of a :class:`StreamHub` into the recording stage's
crash-safe :class:`~physioaffect.recording.SessionWriter` (journal + HDF5), started and stopped
from the viewer's button.

The sources already run (a pump fills the hub), so the recorder takes a reader per stream from
the moment recording starts and appends on its own thread; streams that appear later are
declared when they appear, and samples a slow disk made the reader miss are written down as
dropped, never silently skipped.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from physioaffect.recording import SessionWriter, choose_session_path
from physioaffect.streams import Chunk, RingReader, StreamHub

__all__ = ["HubRecorder"]


class HubRecorder:
    """Writes every stream of ``hub`` to a new session file until :meth:`stop`.

    Parameters
    ----------
    hub : StreamHub
    out : path
        A folder (a BIDS-like name is chosen) or a ``.h5`` path.
    subject, task : str
    session : str, optional
    config : dict, optional
        Stored in the file as the configuration that produced it.
    """

    def __init__(self, hub: StreamHub, out: str | Path, subject: str = "live",
                 task: str = "viewer", session: str | None = None, config: dict | None = None):
        self.hub = hub
        path = choose_session_path(Path(out), subject, task, session, None)
        self.writer = SessionWriter(path, subject=subject, task=task, session=session,
                                    config=config or {"recorded_by": "physioaffect view"})
        self.path = self.writer.path
        self._readers: dict[str, RingReader] = {}
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.samples = 0
        self._thread = threading.Thread(target=self._run, name="viewer-recorder", daemon=True)

    def start(self) -> HubRecorder:
        self._declare_new()
        self._thread.start()
        return self

    def _declare_new(self) -> None:
        for name, info in list(self.hub.infos.items()):
            if name not in self._readers:
                self.writer.add_stream(info, {"source": "physioaffect view"})
                self._readers[name] = self.hub.reader(name)

    def _drain(self) -> None:
        for name, reader in list(self._readers.items()):
            res = reader.read()
            if res.missed:
                t = float(res.timestamps[0]) if len(res) else time.time()
                self.writer.add_dropped(name, t, int(res.missed))
            if len(res):
                self.writer.append(Chunk(name, res.timestamps, res.samples))
                self.samples += len(res)

    def _run(self) -> None:
        try:
            while not self._stop.wait(0.05):
                self._declare_new()
                self._drain()
                self.writer.tick()
            self._drain()
            self.writer.close()
        except BaseException as err:  # noqa: BLE001 - shown by the viewer
            self.error = err
            try:
                self.writer.abort()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> Path:
        """Finish the file (the journal is folded into the HDF5) and return its path."""
        self._stop.set()
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.path


def marker_chunk(stream: str, text: str, t: float) -> Chunk:
    """A one-marker chunk (string stream)."""
    return Chunk(stream, np.array([t]), np.array([[text]], dtype=object))
