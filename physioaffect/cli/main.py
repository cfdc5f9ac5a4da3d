"""Entry point of the ``physioaffect`` command.

Each command group lives in its own module under :mod:`physioaffect.cli` and is
registered here, so the stages stay independent of each other.
"""

from __future__ import annotations

import typer

from physioaffect import __version__
from physioaffect.cli import acquire
from physioaffect.cli import face

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
face.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
