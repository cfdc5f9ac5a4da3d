"""``physioaffect view``: acquire the sources (the acquisition engine, with a hub), show the
viewer window, record from it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from physioaffect.sources.engine import Acquisition
from physioaffect.viewer.feedback import FeedbackTarget

__all__ = ["run_viewer"]


def run_viewer(
    sources: Sequence[str], duration: float | None = None, screenshot: str | Path | None = None,
    window_s: float = 10.0, targets: Sequence[FeedbackTarget] = (),
    marker_keys: Mapping[str, str] | None = None, record_dir: str | Path = ".",
    watch: Sequence[str] = ("Prediction", "Face"), fps: float = 30.0,
    echo: Callable[[str], None] | None = None, record: bool = False,
) -> dict[str, object]:
    """Run the viewer until the window closes or ``duration`` s pass.

    Parameters
    ----------
    sources : sequence of str
        Source specs (``sim``, ``lsl:EEG``, ``brainflow:synthetic``, ...).
    duration : float, optional
        Close after this many seconds (for scripted runs and screenshots).
    screenshot : path, optional
        PNG written just before closing.
    window_s : float
        Seconds of signal shown.
    targets : sequence of FeedbackTarget
    marker_keys : mapping, optional
        Key -> marker text (default keys 1-9).
    record_dir : path
        Folder of the record button's session files.
    watch : sequence of str
        LSL stream types pulled in whenever they appear (prediction and face streams).
    fps : float
        Frame rate asked of the refresh timer.
    record : bool
        Start recording at once (as the record button does) until the window closes.

    Returns
    -------
    dict
        ``frames`` drawn, ``seconds`` run, ``screenshot`` path (or None), ``streams`` seen,
        ``recording`` (the session file written, or None).
    """
    import signal
    import threading
    import time

    from PySide6 import QtCore, QtWidgets

    from physioaffect.viewer.watch import LSLWatcher
    from physioaffect.viewer.window import ViewerWindow

    say = echo or (lambda _m: None)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    engine = Acquisition.from_specs(list(sources), hub_seconds=30.0).start()
    present = {i.type for i in engine.infos.values()}
    watcher = LSLWatcher(engine, [t for t in watch if t not in present]).start()
    win = ViewerWindow(engine, window_s=window_s, targets=targets, marker_keys=marker_keys,
                       record_dir=record_dir, title=" + ".join(sources))
    shot: dict[str, object] = {"screenshot": None}
    t0 = time.monotonic()

    def finish() -> None:
        if screenshot is not None:
            win.refresh()
            path = Path(screenshot)
            path.parent.mkdir(parents=True, exist_ok=True)
            if not win.grab().save(str(path)):
                raise OSError(f"{path}: could not write the screenshot")
            shot["screenshot"] = str(path)
            say(f"screenshot written to {path}")
        win.close()

    old_term = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM closes the window like its close button (a recording is finished first)
        old_term = signal.signal(signal.SIGTERM,
                                 lambda *_: QtCore.QTimer.singleShot(0, finish))
    try:
        win.show()
        win.start(int(1000 / fps) if fps > 0 else 0)
        if duration is not None:
            QtCore.QTimer.singleShot(int(duration * 1000), finish)
        say(f"viewer: {len(engine.infos)} streams from {', '.join(sources)}")
        if record:
            say(f"recording to {win.start_recording()}")
        app.exec()
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        win.shutdown()
        watcher.stop()
        engine.stop()
    frames = win.frames
    # delete the window while Qt still runs (a teardown at interpreter exit can crash)
    win.deleteLater()
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)
    app.processEvents()
    return {"frames": frames, "seconds": time.monotonic() - t0,
            "screenshot": shot["screenshot"], "streams": sorted(engine.infos),
            "recording": win.last_recording, "record_error": win.record_error}
