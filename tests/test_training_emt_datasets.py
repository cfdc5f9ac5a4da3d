"""EmT's own datasets through the training CLI: FACED with the ``emt_faced`` preset (its bands,
4 s sub-windows at 75 % overlap, 20 s segments, EmT's rating rule) and THU-EP, on fixtures in
the published on-disk formats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from physioaffect.datasets.fixtures import write_faced, write_thu_ep


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "physioaffect.cli.main", *args],
                          capture_output=True, text=True, timeout=600)


def test_faced_with_the_emt_faced_preset_end_to_end(tmp_path: Path):
    root = write_faced(tmp_path / "FACED", n_subjects=3, seconds=21.0, n_trials=6, seed=1)
    r = _cli("train", "--dataset", "faced", "--root", str(root), "--preset", "emt_faced",
             "--protocol", "loso", "--target", "arousal", "--epochs", "1", "--quiet",
             "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    run = tmp_path / "run"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"] == "emt" and cfg["label_rule"] == "emt_gt3"
    assert cfg["windows"]["window_s"] == 20.0
    assert cfg["inputs"]["graphs"] == {"sub_window_s": 4.0, "sub_overlap": 0.75,
                                       "bands": "emt_faced"}
    assert cfg["model_kwargs"]["alpha"] == 0.4 and cfg["model_kwargs"]["n_layers"] == 4
    contract = json.loads((run / "folds" / "loso-01" / "checkpoint" / "contract.json")
                          .read_text())
    assert contract["sfreq"] == 250.0 and len(contract["channels"]) == 32
    # 16 graphs of 7 band powers per 20 s segment, as the official FACED preparation
    assert contract["normalisation"]["eeg"]["keep"] == [2, 3]
    assert len(contract["normalisation"]["eeg"]["mean"][0]) == 7
    pred = pd.read_csv(run / "predictions.csv")
    assert set(pred["model"]) == {"emt", "majority", "logreg", "svm"}
    session = pred[pred.protocol == "session"]
    assert (session.groupby("model").size() == 3 * 6).all()  # one 20 s window per trial


def test_thu_ep_trains(tmp_path: Path):
    root = write_thu_ep(tmp_path / "THU-EP", n_subjects=3, seconds=8.0, n_trials=6, seed=2)
    r = _cli("train", "--dataset", "thu-ep", "--root", str(root), "--model", "eegnet",
             "--protocol", "loso", "--target", "valence", "--epochs", "1", "--quiet",
             "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    labels = json.loads((tmp_path / "run" / "labels.json").read_text())
    assert labels["n_kept"] == 3 * 6 * 2  # two 4 s windows per 8 s trial
