"""``physioaffect features`` end to end, in a real subprocess."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "physioaffect.cli.main", "features", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin", "QT_QPA_PLATFORM": "offscreen"},
    )


def test_features_command_on_the_simulator(tmp_path):
    out = tmp_path / "feat"
    res = _run("sim?seed=2&eeg_channels=14&rate=128", "--duration", "60", "--out", str(out))
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out / "features.csv", index_col=0)
    assert len(table) == 6  # 60 s in 10 s windows
    assert {"EEG_DE_alpha_O1", "ECG_Rate_Mean", "SCR_Peaks_N", "RSP_Rate_Mean"} <= set(
        table.columns
    )
    assert table["ECG_Rate_Mean"].between(40, 120).all()
    for name in ("psd.png", "topomap.png", "peripheral.png", "pipeline.json"):
        assert (out / name).stat().st_size > 1000 or name == "pipeline.json"
    assert "wrote" in res.stdout and str(out) in res.stdout
    assert np.isfinite(table.filter(like="EEG_DE").to_numpy()).all()


def test_features_command_reports_a_bad_source_without_traceback(tmp_path):
    res = _run(str(tmp_path / "missing.edf"), "--out", str(tmp_path / "x"))
    assert res.returncode == 2  # an operator error, as for every other command
    assert "no such file" in res.stderr and "Traceback" not in res.stderr
    assert res.stderr.startswith("physioaffect: error:")
    res = _run("sim?colour=red", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_single_channel_eeg_file(tmp_path):
    """One EEG channel (an EDF written by MNE): no average reference of the channel with
    itself, no topomap, finite DE with quality."""
    import mne

    from physioaffect.sources.sim import SimConfig, simulate_subject

    rec = simulate_subject(SimConfig(eeg_channels=14, rate=128, seed=1), 0, duration=40)
    info, _, x = rec.signals["EEG"]
    k = info.labels.index("O1")
    raw = mne.io.RawArray(x[:, [k]].T.astype(float) * 1e-6, mne.create_info(["O1"], 128.0, "eeg"),
                          verbose=False)
    path = tmp_path / "one.edf"
    mne.export.export_raw(path, raw, fmt="edf", verbose=False)
    out = tmp_path / "feat"
    res = _run(str(path), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "no average reference" in res.stderr and "no topomap" in res.stderr
    assert "Traceback" not in res.stderr
    table = pd.read_csv(out / "features.csv", index_col=0)
    assert len(table) == 4
    assert np.isfinite(table.filter(like="EEG_DE").to_numpy()).all()
    assert (table["EEG_Quality"] == 1.0).all()
    assert table["start_s"].tolist() == [0.0, 10.0, 20.0, 30.0] and "start_lsl_s" not in table
    assert not (out / "topomap.png").exists() and (out / "psd.png").exists()


def test_window_times_are_relative_to_the_session_start(tmp_path):
    """A session recorded 369 s into the LSL clock: start_s from 0 like the figures, the LSL
    time in start_lsl_s."""
    from physioaffect.recording.writer import SessionWriter
    from physioaffect.sources.sim import SimConfig, simulate_subject
    from physioaffect.streams.info import Chunk

    rec = simulate_subject(SimConfig(eeg_channels=4, rate=128, seed=1), 0, duration=30, t0=369.0)
    path = tmp_path / "sub-01_task-x_physio.h5"
    clock = {"unix_start": 0.0, "lsl_clock_start": 369.0, "unix_to_lsl_offset": 0.0,
             "utc_start": "1970-01-01T00:00:00Z"}
    w = SessionWriter(path, subject="01", task="x", journal=False, clock=clock)
    for kind in ("EEG", "ECG"):
        info, ts, x = rec.signals[kind]
        w.add_stream(info)
        w.append(Chunk(info.name, ts, x))
    w.close()
    out = tmp_path / "feat"
    res = _run(str(path), "--out", str(out))
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out / "features.csv", index_col=0)
    np.testing.assert_allclose(table["start_s"], [0.0, 10.0, 20.0])
    np.testing.assert_allclose(table["start_lsl_s"], [369.0, 379.0, 389.0])
    assert table["ECG_Rate_Mean"].between(40, 120).all() and (table["ECG_Quality"] >= 0.5).all()
