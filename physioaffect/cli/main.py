"""Entry point of the ``physioaffect`` command.

Each command group lives in its own module under :mod:`physioaffect.cli` and is
registered here, so the stages stay independent of each other.
"""

from __future__ import annotations

import sys

import typer

import physioaffect.face  # noqa: F401  (registers the `video:` source kind; cheap, no OpenCV)
from physioaffect import __version__
from physioaffect.cli import (
    acquire,
    datasets,
    face,
    features,
    models,
    realtime,
    recording,
    training,
)
from physioaffect.cli.errors import EXIT_INTERRUPTED, EXIT_REFUSED, error_line
from physioaffect.errors import PhysioAffectError

app = typer.Typer(
    name="physioaffect",
    help="Affective computing from physiological signals: acquire, record, preprocess, "
    "learn across subjects, decode live.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"physioaffect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """physioaffect command line."""


acquire.register(app)
datasets.register(app)
face.register(app)
recording.register(app)
models.register(app)
training.register(app)
realtime.register(app)
features.register(app)


#: Errors meant for the operator: printed as one line, no traceback. Every package error
#: derives from PhysioAffectError; OSError is the machine's answer (file missing, disk full,
#: permission). Anything else is a bug and keeps its traceback.
USER_ERRORS = (PhysioAffectError, OSError)


def main() -> None:
    """Run the CLI; operator errors become one line on stderr and exit status 2 (the exit
    statuses: :mod:`physioaffect.cli.errors`)."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("physioaffect: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except USER_ERRORS as err:
        typer.echo(error_line(err), err=True)
        sys.exit(EXIT_REFUSED)


if __name__ == "__main__":
    main()
