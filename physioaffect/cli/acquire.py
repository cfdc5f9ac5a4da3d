"""Commands that touch live sources: ``devices``, ``check``, ``stream``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the acquisition commands to ``app``."""
