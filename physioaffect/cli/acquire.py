"""Commands that touch live sources: ``devices``, ``check``, ``stream``."""

from __future__ import annotations

import sys
import time

import numpy as np
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from physioaffect.cli.errors import EXIT_PROBLEMS

SOURCE_HELP = (
    "Source spec, repeatable: 'sim', 'sim?eeg_channels=32&rate=256&seed=1', "
    "'brainflow:synthetic', 'brainflow:cyton?serial_port=/dev/ttyUSB0', 'lsl:EEG'."
)

console = Console(stderr=True)


def stdout_console() -> Console:
    """Console for results: full width when piped, so tables are not cut to 80 columns."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def source_option(default: list[str] | None = None):
    """The ``--source`` option, the same on every command."""
    return typer.Option(default if default is not None else ["sim"], "--source", "-s", help=SOURCE_HELP)


def devices(
    all_boards: bool = typer.Option(False, "--all", help="Also list every BrainFlow board id."),
) -> None:
    """List the device profiles (BrainFlow boards with their streams) and source kinds."""
    from physioaffect.sources.brainflow import board_description, board_id_of, list_boards
    from physioaffect.sources.profiles import shipped_profiles

    out = stdout_console()
    table = Table(title="BrainFlow device profiles (devices/*.toml)")
    for col in ("spec", "board (id)", "streams", "profile"):
        table.add_column(col)
    for key, prof in shipped_profiles().items():
        bid = board_id_of(prof.board)
        parts = []
        for s in prof.streams:
            rate = board_description(bid, s.preset).get("sampling_rate", "?")
            parts.append(f"{s.name} ({s.type}, {len(s.rows)} ch @ {rate} Hz, {s.unit})")
        table.add_row(f"brainflow:{prof.aliases[0] if prof.aliases else key}", f"{prof.board} ({bid})",
                      "\n".join(parts), prof.path.rsplit("/", 1)[-1])
    out.print(table)
    out.print("Other sources: [bold]sim[/] (built-in simulator: EEG, ECG, EDA, PPG, RESP, Markers), "
              "[bold]lsl:<type|name|source_id>[/] (any LSL stream), "
              "[bold]brainflow:playback?file=F&master_board=B[/].")
    if all_boards:
        out.print(", ".join(f"{name} ({bid})" for name, bid in list_boards()))


def check(
    source: list[str] = source_option(),
    seconds: float = typer.Option(5.0, "--seconds", help="How long to listen, s."),
    require: list[str] = typer.Option([], "--require", help="Stream type that must be present (repeatable), e.g. EEG."),
) -> None:
    """Connect, measure each stream's rate and give a per-channel quality verdict.

    Exits with status 1 when a --require'd stream type is missing or sends nothing.
    """
    from physioaffect.sources.engine import Acquisition
    from physioaffect.streams.quality import channel_quality

    engine = Acquisition.from_specs(source, hub_seconds=max(30.0, seconds + 5.0))
    console.print(f"Listening to {engine.description} for {seconds:g} s ...")
    with engine:
        readers = {}
        t0 = time.monotonic()
        collected: dict[str, list] = {}
        while time.monotonic() - t0 < seconds:
            for name in list(engine.hub.buffers):
                if name not in readers:
                    readers[name] = engine.hub.reader(name, from_oldest=True)
                res = readers[name].read()
                if len(res):
                    collected.setdefault(name, []).append(res)
            time.sleep(0.05)
        infos = dict(engine.hub.infos)
        dropped = dict(engine.hub.device_dropped)
        notes = list(engine.errors)
    for note in notes:
        console.print(f"warning: {note}", highlight=False)
    out = stdout_console()
    table = Table(title=f"check: {engine.description}")
    for col in ("stream", "type", "samples", "rate (nominal)", "dropped", "channels"):
        table.add_column(col)
    present_types = set()
    for name, info in infos.items():
        parts = collected.get(name, [])
        n = sum(len(p) for p in parts)
        if info.channel_format == "string":
            table.add_row(name, info.type, str(n), "irregular", "-", f"{n} markers")
            present_types.add(info.type)
            continue
        ts = np.concatenate([p.timestamps for p in parts]) if parts else np.zeros(0)
        rate = (n - 1) / (ts[-1] - ts[0]) if n > 1 and ts[-1] > ts[0] else 0.0
        x = np.concatenate([p.samples for p in parts]) if parts else np.zeros((0, info.n_channels))
        verdicts = channel_quality(x, info.nominal_srate, info.labels, stream_type=info.type)
        by_verdict: dict[str, list[str]] = {}
        for q in verdicts:
            by_verdict.setdefault(q.verdict, []).append(q.label)
        summary = "; ".join(
            f"{len(labs)} {v}" if v == "plausible" else f"{v}: {', '.join(labs)}"
            for v, labs in by_verdict.items()
        )
        if n > 0:
            present_types.add(info.type)
        table.add_row(name, info.type, str(n), f"{rate:.1f} ({info.nominal_srate:g}) Hz",
                      str(dropped.get(name, 0)), summary)
    out.print(table)
    missing = [t for t in require if t not in present_types]
    if missing:
        console.print(f"[red]required stream type(s) missing or silent: {', '.join(missing)}[/]")
        raise typer.Exit(EXIT_PROBLEMS)


def stream(
    source: list[str] = source_option(),
    duration: float = typer.Option(0.0, "--duration", help="Seconds to publish (0: until Ctrl-C)."),
) -> None:
    """Publish every stream of the source(s) as fully described LSL outlets (plus Markers)."""
    from physioaffect.sinks.lsl import publish
    from physioaffect.sources.engine import Acquisition

    engine = Acquisition.from_specs(source)
    counts: dict[str, int] = {}
    t0 = time.monotonic()

    def render() -> Table:
        table = Table(title=f"LSL outlets from {engine.description} ({time.monotonic() - t0:.0f} s)")
        table.add_column("stream")
        table.add_column("samples sent", justify="right")
        for name, n in list(counts.items()):
            table.add_row(name, str(n))
        return table

    last = [0.0]
    with Live(render(), console=console, auto_refresh=False, transient=False) as live:

        def on_chunk(chunk) -> None:
            if not counts:
                console.print("Publishing: " + ", ".join(
                    f"{i.name} ({i.type}, {i.n_channels} ch, {i.nominal_srate:g} Hz)"
                    for i in engine.infos.values()))
            counts[chunk.stream] = counts.get(chunk.stream, 0) + len(chunk)
            now = time.monotonic()
            if now - last[0] > 0.5:
                last[0] = now
                live.update(render(), refresh=True)

        try:
            publish(engine, duration=duration or None, on_chunk=on_chunk)
        except KeyboardInterrupt:
            pass
        live.update(render(), refresh=True)
    console.print(f"Stopped; sent {sum(counts.values())} samples in {len(counts)} streams.")


def register(app: typer.Typer) -> None:
    """Add the acquisition commands to ``app``."""
    app.command("devices")(devices)
    app.command("check")(check)
    app.command("stream")(stream)
