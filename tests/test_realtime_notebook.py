"""``notebooks/live_session_analysis.ipynb`` executed (nbclient) on a small live-session file:
the simulator's streams decoded chunk by chunk by the online decoder, written by the
recording stage's SessionWriter."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import matplotlib.image as mpimg
import nbformat
import numpy as np
import torch
from nbclient import NotebookClient

from physioaffect.realtime.analysis import write_live_session
from physioaffect.realtime.demo import train_demo_bundle
from physioaffect.recording import read_session
from physioaffect.sources.sim import SimConfig

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "live_session_analysis.ipynb"


def test_live_session_notebook_runs_on_a_recorded_session(tmp_path, monkeypatch):
    torch.manual_seed(0)
    config = SimConfig(rate=128, eeg_channels=32, n_trials=4, stimulus_seconds=12,
                       rest_seconds=4, baseline_seconds=2, subjects=2, effect=2.0)
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # a spinning second thread is slower on a busy 2-core machine
    try:
        bundle, _ = train_demo_bundle(config, subjects=(0, 1), epochs=6, cycles=1)
    finally:
        torch.set_num_threads(old)
    session_path = write_live_session(tmp_path / "live.h5", bundle, config, seconds=40)
    session = read_session(session_path)
    pred = next(s for s in session.streams.values() if s.info.type == "Prediction")
    # independent look at the file: predictions every 0.25 s, stamped on EEG sample times
    eeg = next(s for s in session.streams.values() if s.info.type == "EEG")
    np.testing.assert_allclose(np.diff(pred.timestamps), 0.25, atol=1.01 / 128)
    assert np.isin(np.round(pred.timestamps, 6), np.round(eeg.timestamps, 6)).all()
    with h5py.File(session_path, "r") as f:
        assert f.attrs["task"] == "live"

    monkeypatch.setenv("PHYSIOAFFECT_LIVE_SESSION", str(session_path))
    monkeypatch.setenv("PHYSIOAFFECT_OUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []) if o.get("output_type") == "stream")
    assert f"{pred.n_samples} predictions from {pred.info.name}" in text
    assert "windows scored:" in text
    for name in ("live_session_timecourse.png", "live_session_blocks.png"):
        img = mpimg.imread(tmp_path / name)
        assert img.shape[0] > 200 and img[..., :3].std() > 0.05
    assert os.path.getsize(tmp_path / "live_session_timecourse.png") > 20_000
