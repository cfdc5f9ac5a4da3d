"""``physioaffect face``: publish facial features of a video file or camera as an LSL stream."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from physioaffect.cli.errors import EXIT_INTERRUPTED, fail
from physioaffect.errors import PhysioAffectError


def register(app: typer.Typer) -> None:
    """Add the ``face`` command to ``app``."""

    @app.command("face")
    def face(
        video: Path | None = typer.Option(None, "--video", help="Video file to analyse."),
        camera: int | None = typer.Option(None, "--camera", help="Camera index to analyse (0 = first)."),
        start_time: float | None = typer.Option(
            None, "--start-time",
            help="LSL time (s) of the file's first frame; default: now. Frame times are this plus "
            "the container's timestamps.",
        ),
        name: str = typer.Option("face", "--name", help="LSL stream name."),
        duration: float | None = typer.Option(
            None, "--duration", help="Stop after this many seconds of video (default: whole file / until Ctrl-C)."
        ),
        realtime: bool | None = typer.Option(
            None, "--realtime/--fast",
            help="Files: publish each frame at its time (like a camera, default) or as fast as "
            "it is analysed (timestamps stay those of the video).",
        ),
        wait_consumer: float = typer.Option(
            0.0, "--wait-consumer", help="Wait up to this many seconds for an LSL inlet before starting."
        ),
        detector: str = typer.Option("auto", "--detector", help="auto, facemesh or haar."),
    ) -> None:
        """Publish expression, head pose, motion and camera pulse (rPPG) as an LSL stream of type Face.

        One sample per frame; channel 'status' says why a sample is NaN (see docs/face.md).
        """
        if (video is None) == (camera is None):
            fail("give exactly one of --video FILE or --camera N")
        # imported here so that `physioaffect --help` works without the face extra
        from physioaffect.face.publish import publish_face

        try:
            from physioaffect.face.source import VideoSource

            source = VideoSource(
                video if video is not None else int(camera),
                start_time=start_time,
                name=name,
                realtime=True if realtime is None else realtime,
                detector=detector,
            )
            t0 = time.monotonic()
            summary = publish_face(source, duration=duration, wait_consumer=wait_consumer, echo=typer.echo)
        except PhysioAffectError as err:
            fail(err)
        except KeyboardInterrupt:
            typer.echo("stopped", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        counts = ", ".join(f"{k} {v}" for k, v in summary["status_counts"].items())
        typer.echo(
            f"published {summary['samples']} frames as LSL stream {name!r} (type Face) in "
            f"{time.monotonic() - t0:.1f} s; frames by status: {counts or 'none'}"
        )
        sys.stdout.flush()
