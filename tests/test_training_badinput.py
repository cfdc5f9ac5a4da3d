"""Training input a careless operator or a hostile file gives: a resumed run whose epoch
checkpoint is not a safe file, and EEG holding NaN samples (trained, and said so)."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

from physioaffect.datasets.fixtures import deap_subject_arrays, write_deap
from physioaffect.datasets.safe_pickle import dump_py2
from physioaffect.training import TrainConfig, train


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "physioaffect.cli.main", *args],
                          capture_output=True, text=True, timeout=300)


class _Payload:
    """Unpickling this would run a shell command (it must never be unpickled)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


TINY = dict(windows={"window_s": 4.0}, optim={"epochs": 2, "batch_size": 16, "patience": 0},
            compute={"threads": 1}, baselines=["majority", "logreg"],
            channels=["Fp1", "F3", "O1", "Fp2", "F4", "O2"], model="eegnet",
            model_kwargs={"F1": 4, "D": 1}, protocol="loso", target="valence")


def test_nan_eeg_trains_and_the_report_says_so_then_a_bad_resume_is_refused(tmp_path: Path):
    root = write_deap(tmp_path / "deap", n_subjects=3, seconds=8.0, n_trials=6, seed=1)
    arrays = deap_subject_arrays(2, 6, 8.0, 1)
    arrays["data"][1, 0, 500:600] = float("nan")  # a dropout in Fp1 during trial 2
    with open(root / "s02.dat", "wb") as f:
        dump_py2({"labels": arrays["labels"], "data": arrays["data"]}, f)
    cfg = TrainConfig(dataset="deap", root=str(root), cache_dir=str(tmp_path / "cache"), **TINY)
    run = train(cfg, out=tmp_path / "run", progress=False)
    report = (run / "report.md").read_text()
    assert "WARNING: 1 of 36 EEG windows hold NaN or infinite samples** (s02: 1)" in report

    # a run folder to resume whose last fold has an epoch checkpoint that is a pickle bomb
    copy = tmp_path / "resumed"
    shutil.copytree(run, copy)
    (copy / "folds" / "loso-03" / "fold.json").unlink()
    (copy / "status.json").write_text(json.dumps({"status": "running"}))
    marker = tmp_path / "pwned"
    with open(copy / "folds" / "loso-03" / "train_state.pt", "wb") as f:
        pickle.dump({"model": _Payload(marker)}, f)
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps(cfg.resolve().to_dict()))
    r = _cli("train", "--config", str(conf), "--out", str(copy), "--resume")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "train_state.pt: not a safe epoch checkpoint" in errors[0]
    assert "objects other than tensors" in errors[0]
    assert not marker.exists()
