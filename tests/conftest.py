"""Shared test settings: Qt offscreen, and the location of the real recordings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
# ``../shared/data/real`` beside the repository; PHYSIOAFFECT_REAL_DATA points elsewhere (a git
# worktree lives in another folder than the checkout the data sit beside).
REAL_DATA = Path(os.environ.get("PHYSIOAFFECT_REAL_DATA", REPO.parent / "shared" / "data" / "real"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``../shared/data/real`` beside the repository (skips when absent)."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real recordings not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch thread, then restore the setting.

    Small models are fastest on one thread, and on a shared 2-core machine OpenMP
    workers spin against other jobs (a 10 ms inference can take 400 ms).
    """
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def cli(*args: str) -> list[str]:
    """Command line that runs the physioaffect CLI in a subprocess with this interpreter."""
    return [sys.executable, "-m", "physioaffect.cli.main", *args]


def reference_models():
    """``benchmarks/_reference_models.py`` (re-creations of the published forwards) as a module."""
    import importlib.util

    path = REPO / "benchmarks" / "_reference_models.py"
    spec = importlib.util.spec_from_file_location("_reference_models", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["_reference_models"] = mod
    spec.loader.exec_module(mod)
    return mod


def write_truth_session(path: Path, truth, t0: float, markers: bool = True, **ids):
    """Write a simulated subject (``simulate_subject(..., t0=t0)``) as a session file.

    Every stream of ``truth`` plus its JSON markers go through the recording stage's writer,
    with a fixed clock (UNIX 1.7e9 at LSL ``t0``); ``ids`` are the writer's ``subject``,
    ``task``, ``session``, ``run``. Returns ``path``.
    """
    import numpy as np

    from physioaffect.recording import SessionWriter
    from physioaffect.streams import Chunk, StreamInfo

    w = SessionWriter(path, journal=False,
                      clock={"unix_start": 1.7e9, "lsl_clock_start": t0,
                             "unix_to_lsl_offset": t0 - 1.7e9,
                             "utc_start": "2023-11-14T22:13:20Z"}, **ids)
    for info, ts, x in truth.signals.values():
        w.add_stream(info)
        w.append(Chunk(info.name, ts, x))
    if markers:
        mk = StreamInfo.from_labels("sim-Markers", "Markers", ["Marker"], 0.0, "",
                                    channel_format="string")
        w.add_stream(mk)
        w.append(Chunk(mk.name, [t for t, _ in truth.markers],
                       np.array([[m] for _, m in truth.markers], dtype=object)))
    w.close()
    return path
