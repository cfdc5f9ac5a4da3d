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
    assert res.returncode == 1
    assert "no such file" in res.stderr and "Traceback" not in res.stderr
    res = _run("sim?colour=red", "--out", str(tmp_path / "x"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
