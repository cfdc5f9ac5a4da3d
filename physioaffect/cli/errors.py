"""How every ``physioaffect`` command ends: one line and one exit status per outcome.

======  ==================================================================================
status  meaning
======  ==================================================================================
0       done
1       the command ran to its end and found what it was asked to look for missing or
        failing (``check --require`` without that stream, ``datasets face-features`` with
        videos it could not read); its report says which
2       refused: an operator error (a bad option, a missing or invalid file, a device that
        does not answer, a full disk), as one line ``physioaffect: error: ...`` on stderr,
        never a traceback; nothing already written is lost
130     interrupted (Ctrl-C)
======  ==================================================================================

A bug (any exception that is not a :class:`~physioaffect.errors.PhysioAffectError` or an
``OSError``) keeps its traceback, and Python's status 1.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer

__all__ = ["EXIT_PROBLEMS", "EXIT_REFUSED", "EXIT_INTERRUPTED", "fail", "fail_now",
           "error_line"]

EXIT_PROBLEMS = 1
EXIT_REFUSED = 2
EXIT_INTERRUPTED = 130


def error_line(err: BaseException | str) -> str:
    """The one line an operator error prints."""
    return f"physioaffect: error: {err}"


def fail(err: BaseException | str) -> NoReturn:
    """Refuse: :func:`error_line` on stderr and exit status 2."""
    typer.echo(error_line(err), err=True)
    raise typer.Exit(EXIT_REFUSED)


def fail_now(err: BaseException | str) -> NoReturn:
    """As :func:`fail`, but leave at once without Python's clean-up (after a write error an
    abandoned HDF5 handle could crash it; the journal is closed and synced before)."""
    typer.echo(error_line(err), err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_REFUSED)
