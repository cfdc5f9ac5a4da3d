"""Shared test settings: Qt offscreen, and the location of the real recordings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``../shared/data/real`` beside the repository (skips when absent)."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real recordings not found at {REAL_DATA}")
    return REAL_DATA


def cli(*args: str) -> list[str]:
    """Command line that runs the physioaffect CLI in a subprocess with this interpreter."""
    return [sys.executable, "-m", "physioaffect.cli.main", *args]
