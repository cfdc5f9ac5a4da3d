"""Commands of the recording stage: ``record``, ``mark``, ``info``, ``recover``, ``export``,
``import``."""

from __future__ import annotations

import json
import signal
import sys
import time
import warnings
from pathlib import Path

import typer

from physioaffect.cli.errors import fail, fail_now
from physioaffect.errors import PhysioAffectError
from physioaffect.recording.errors import DiskFullError, RecordingError


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _status_table(rec, writer, final: bool = False):
    from rich.table import Table

    title = (f"{'recorded' if final else 'recording'} {writer.path.name}  "
             f"{rec.elapsed:7.1f} s  {_human_bytes(writer.file_size)}")
    from rich import box

    table = Table(title=title, title_justify="left", expand=False, box=box.SIMPLE_HEAD,
                  padding=(0, 1))
    table.add_column("stream", no_wrap=True, overflow="ellipsis", ratio=3)
    table.add_column("type", no_wrap=True, min_width=4, max_width=7)
    for col, width in (("samples", 8), ("Hz", 6), ("nominal", 7), ("dropped", 7), ("gaps", 4)):
        table.add_column(col, justify="right", no_wrap=True, min_width=width)
    table.add_column("state", no_wrap=True, min_width=4)
    table.add_column("last marker", overflow="ellipsis", no_wrap=True, ratio=2)
    for row in rec.status():
        table.add_row(row.name, row.type, str(row.samples),
                      f"{row.rate:.1f}" if row.nominal else "-",
                      f"{row.nominal:g}" if row.nominal else "irreg.",
                      str(row.dropped), str(row.gaps),
                      "ok" if row.connected else "[red]LOST[/red]", row.last_marker)
    return table


def _plain_status(rec, writer) -> str:
    parts = [f"{rec.elapsed:7.1f} s", _human_bytes(writer.file_size)]
    for row in rec.status():
        if row.nominal:
            parts.append(f"{row.name} {row.samples} ({row.rate:.0f} Hz, {row.dropped} dropped"
                         f"{', LOST' if not row.connected else ''})")
        else:
            parts.append(f"{row.name} {row.samples}")
    return " | ".join(parts)


def check_record_options(duration: float | None, mark_port: int | None, compression: str,
                         require_timeout: float) -> None:
    """Refuse record options that cannot work, before anything is opened."""
    import math

    from physioaffect.recording.markers import check_port

    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise RecordingError(f"--duration must be a positive number of seconds, got {duration!r} "
                             f"(leave it out to record until Ctrl-C)")
    if not (math.isfinite(require_timeout) and require_timeout >= 0):
        raise RecordingError(f"--require-timeout must be a number of seconds >= 0, "
                             f"got {require_timeout!r}")
    if mark_port is not None:
        check_port(mark_port, "--mark-port")
    if compression not in ("gzip", "lzf", "none"):
        raise RecordingError(f"--compression must be none, gzip or lzf, got {compression!r}")


def register(app: typer.Typer) -> None:
    """Add the recording commands to ``app``."""

    @app.command("record")
    def record(
        source: list[str] = typer.Option(..., "--source", "-s",
                                         help="Source spec (repeatable): sim, brainflow:synthetic, lsl:EEG, ..."),
        subject: str = typer.Option(..., "--subject", help="Subject id (letters and digits)."),
        session: str = typer.Option(..., "--session", help="Session id (letters and digits)."),
        task: str = typer.Option(..., "--task", help="Task name (letters and digits)."),
        run: int = typer.Option(None, "--run", help="Run number (default: the first free one)."),
        duration: float = typer.Option(None, "--duration", help="Seconds to record (default: until Ctrl-C)."),
        out: Path = typer.Option(None, "--out", "-o", help="Folder for the BIDS-like file name, or a .h5 path."),
        require: list[str] = typer.Option([], "--require", help="Stream type that must be present before recording starts (repeatable)."),
        require_timeout: float = typer.Option(10.0, "--require-timeout", help="Seconds to wait for --require streams."),
        marker_keys: str = typer.Option(None, "--marker-keys", help="Keyboard markers, e.g. '1=baseline,2=stimulus' (default: 1-9 send key-1..key-9; '' disables)."),
        mark_port: int = typer.Option(None, "--mark-port", help="UDP port for `physioaffect mark` (default 16571)."),
        compression: str = typer.Option("none", "--compression", help="none (lightest), gzip (level 1: files ~28 % smaller, ~3x the writing CPU) or lzf."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No live status line."),
    ) -> None:
        """Record every stream of the sources into one crash-safe session file."""
        from physioaffect.recording.markers import (
            DEFAULT_MARK_PORT,
            KeyboardMarkers,
            MarkerListener,
            parse_marker_keys,
        )
        from physioaffect.recording.naming import choose_session_path
        from physioaffect.recording.recorder import Recorder
        from physioaffect.recording.writer import SessionWriter
        from physioaffect.sources import source_from_spec
        from physioaffect.sources.base import SourceError
        from physioaffect.sources.engine import Acquisition

        try:
            check_record_options(duration, mark_port, compression, require_timeout)
            keys = parse_marker_keys(None if marker_keys is None else marker_keys) \
                if marker_keys != "" else {}
            sources = [source_from_spec(s) for s in source]
            path = choose_session_path(
                out, subject, task, session, run, create=True,
                on_create=lambda q: typer.echo(f"created output folder {q}", err=True))
        except PhysioAffectError as err:
            fail(err)

        warnings.filterwarnings("ignore", message=".*was lost; reconnecting.*")
        # the recording pace: every LSL inlet is read by one thread every 0.5 s
        engine = Acquisition(sources, pace=0.5)
        held: dict = {"rec": None, "n": 0}

        def _on_signal(signum, frame):  # first Ctrl-C/TERM: finish cleanly; second: abort
            held["n"] += 1
            if held["rec"] is not None:
                held["rec"].stop()
            if held["n"] > 1:
                raise KeyboardInterrupt

        def _mark(text: str, t: float, origin: str) -> None:
            held["rec"].add_marker(text, t, origin)

        def _dropped(count: int, total: int) -> None:
            held["rec"].add_event("markers-dropped", f"{count} `physioaffect mark` datagram(s) "
                                  f"dropped by the system (a burst faster than the recorder "
                                  f"could take them; {total} in all)")

        old_int = signal.signal(signal.SIGINT, _on_signal)
        old_term = signal.signal(signal.SIGTERM, _on_signal)
        keyboard = writer = rec = listener = None
        err_out: Exception | None = None
        try:  # the port first: a busy port is refused before any source is opened
            listener = MarkerListener(_mark, port=DEFAULT_MARK_PORT if mark_port is None
                                      else mark_port, on_dropped=_dropped)
        except RecordingError as err:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)
            fail(err)
        try:
            try:
                engine.start()
                if require:
                    engine.wait_for_types(require, require_timeout,
                                          cancelled=lambda: held["n"] > 0)
                if not any(not engine.is_local(name) for name in engine.infos):
                    raise RecordingError("nothing to record: every stream of the sources was "
                                         "refused (see above)")
            except (RecordingError, SourceError) as err:
                engine.stop()
                fail(err)
            config = {
                "sources": list(source), "duration": duration, "require": list(require),
                "marker_keys": keys, "mark_port": listener.port, "compression": compression,
                "command": " ".join(sys.argv),
            }
            try:
                writer = SessionWriter(path, subject=subject, task=task, session=session,
                                       run=run or _run_from(path), config=config,
                                       compression=compression)
                rec = held["rec"] = Recorder(engine, writer)
            except (RecordingError, SourceError) as err:
                engine.stop()
                if writer is not None:
                    writer.abort()
                fail(err)
            if held["n"]:
                rec.stop()
            listener.start()
            keyboard = KeyboardMarkers(keys, _mark).start()
            from rich.console import Console

            console = Console(stderr=True)
            console.print(f"recording to {path}  (Ctrl-C stops; `physioaffect mark TEXT` adds a "
                          f"marker on port {listener.port}"
                          + (f"; keys {', '.join(keys)} add markers" if keyboard.active else "")
                          + ")")

            def end() -> None:  # the listener's last datagrams (and the drop count) go in
                listener.stop()
                keyboard.stop()

            if quiet:
                rec.run(duration, on_end=end)
            elif console.is_terminal:
                from rich.live import Live

                with Live(_status_table(rec, writer), console=console, refresh_per_second=4) as live:
                    rec.run(duration, on_status=lambda r: live.update(_status_table(r, writer)),
                            on_end=end)
            else:
                last = [0.0]

                def plain(r):
                    if time.monotonic() - last[0] >= 5.0:
                        last[0] = time.monotonic()
                        console.print(_plain_status(r, writer), highlight=False)

                rec.run(duration, on_status=plain, on_end=end)
            writer.close()
        except (DiskFullError, RecordingError) as err:
            err_out = err
        except KeyboardInterrupt:
            err_out = RecordingError("aborted by a second interrupt; run `physioaffect recover "
                                     f"{path}` to rebuild the file from its journal")
        finally:
            engine.stop()
            for thing in (listener, keyboard):
                if thing is not None:
                    thing.stop()
            if writer is not None and not writer.closed:
                writer.abort()
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)
        if err_out is not None:
            if writer is not None and writer.must_exit_hard:
                # an HDF5 handle was abandoned after a write error: skip HDF5's cleanup,
                # which could crash on a full disk (the journal is closed and synced)
                fail_now(err_out)
            fail(err_out)
        from rich.console import Console

        Console(stderr=True, width=None if sys.stderr.isatty() else 140).print(
            _status_table(rec, writer, final=True))
        for e in rec.errors[-5:]:
            typer.echo(f"warning: {e}", err=True)
        typer.echo(f"session file: {path.resolve()}")

    @app.command("mark")
    def mark(
        text: str = typer.Argument(..., help="Marker text (e.g. stimulus-onset or a JSON object)."),
        port: int = typer.Option(None, "--port", help="UDP port of the recorder (default 16571)."),
    ) -> None:
        """Send a marker to a running `physioaffect record` (same machine)."""
        from physioaffect.recording.markers import DEFAULT_MARK_PORT, send_mark

        try:
            t = send_mark(text, DEFAULT_MARK_PORT if port is None else port)
        except RecordingError as err:
            fail(err)
        typer.echo(f"marked {text!r} at LSL time {t:.4f} s")

    @app.command("info")
    def info(file: Path = typer.Argument(..., help="Session file (.h5).")) -> None:
        """Streams, durations, rates, markers and gaps of a session file."""
        from physioaffect.recording.reader import (
            damaged_error,
            describe_session,
            open_session_h5,
            read_session,
        )
        from physioaffect.recording.verify import find_damage

        try:
            session = read_session(file, load_samples=False)
            with open_session_h5(file) as f:  # every sample against the checksums
                if find_damage(f):
                    raise damaged_error(Path(file), f)
            typer.echo(describe_session(session))
        except RecordingError as err:
            fail(err)

    @app.command("recover")
    def recover(
        file: Path = typer.Argument(..., help="Session file (or its .journal) to rebuild."),
        keep: bool = typer.Option(False, "--keep", help="Keep the journal and the damaged file."),
    ) -> None:
        """Rebuild a session file from its journal after a crash, kill or power cut."""
        from physioaffect.recording.recover import recover_session
        from physioaffect.recording.writer import hdf5_abandoned

        try:
            report = recover_session(file, keep=keep)
        except RecordingError as err:
            if hdf5_abandoned():
                # an HDF5 handle was abandoned after a write error (a full disk): HDF5's
                # cleanup at exit could crash on it; the journal is untouched
                fail_now(err)
            fail(err)
        typer.echo(report.message)

    @app.command("export")
    def export(
        file: Path = typer.Argument(..., help="Session file (.h5)."),
        to: str = typer.Option(..., "--to", help="edf, bdf, fif or bids."),
        out: Path = typer.Option(None, "--out", "-o", help="Output file (edf/bdf/fif) or BIDS root (bids)."),
        sfreq: float = typer.Option(None, "--sfreq", help="Common rate in Hz (default: the EEG rate)."),
        bids_metadata: Path = typer.Option(
            None, "--bids-metadata",
            help="JSON file of BIDS fields a recording cannot know, per sidecar "
                 '({"dataset_description": {"License": ...}, "eeg": {"InstitutionName": ...}}).'),
        subject: str = typer.Option(None, "--subject", help="bids: subject label to use "
                                    "instead of the session's (letters and digits)."),
        task: str = typer.Option(None, "--task", help="bids: task label to use instead of "
                                 "the session's."),
    ) -> None:
        """Export a session to EDF+, BDF+, FIF or BIDS (EEG + _physio.tsv.gz + _events.tsv)."""
        from physioaffect.recording import export as ex
        from physioaffect.recording.reader import read_session

        to = to.lower()
        if to not in ("edf", "bdf", "fif", "bids"):
            fail(RecordingError(f"--to must be edf, bdf, fif or bids, got {to!r}"))
        try:
            sess = read_session(file)
            stem = file.name[:-3] if file.name.endswith(".h5") else file.stem
            if to in ("edf", "bdf"):
                target = out or file.with_name(f"{stem}.{to}")
                ex.export_edf(sess, target, bdf=(to == "bdf"), sfreq=sfreq)
                typer.echo(f"wrote {target}")
            elif to == "fif":
                target = out or file.with_name(f"{stem}_raw.fif")
                ex.export_fif(sess, target, sfreq=sfreq)
                typer.echo(f"wrote {target}")
            else:
                root = out or file.parent / "bids"
                meta = None
                if bids_metadata is not None:
                    try:
                        meta = json.loads(bids_metadata.read_text(encoding="utf-8"))
                    except ValueError as err:
                        raise RecordingError(f"{bids_metadata}: not valid JSON ({err})") from None
                written = ex.export_bids(sess, root, metadata=meta, subject=subject, task=task)
                for p in written["eeg"] + written["physio"]:
                    typer.echo(f"wrote {p}")
                typer.echo(f"BIDS dataset: {Path(root).resolve()}")
        except (PhysioAffectError, OSError) as err:
            fail(err)

    @app.command("import")
    def import_(
        file: Path = typer.Argument(..., help="XDF file (e.g. from LabRecorder)."),
        subject: str = typer.Option(..., "--subject"),
        task: str = typer.Option(..., "--task"),
        session: str = typer.Option(None, "--session"),
        run: int = typer.Option(None, "--run"),
        out: Path = typer.Option(None, "--out", "-o", help="Folder or .h5 path."),
        no_dejitter: bool = typer.Option(False, "--no-dejitter", help="Keep the XDF timestamps as recorded."),
    ) -> None:
        """Turn an XDF file into a session file."""
        from physioaffect.recording.naming import choose_session_path
        from physioaffect.recording.xdf import import_xdf

        try:
            path = choose_session_path(out, subject, task, session, run)
            import_xdf(file, path, subject=subject, task=task, session=session,
                       run=run or _run_from(path), dejitter=not no_dejitter)
        except RecordingError as err:
            fail(err)
        typer.echo(f"session file: {path.resolve()}")


def _run_from(path: Path) -> int | None:
    """The run number chosen for a BIDS-like file name (None for a custom name)."""
    import re

    m = re.search(r"_run-(\d+)_", path.name)
    return int(m.group(1)) if m else None
