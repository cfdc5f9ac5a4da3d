"""Signal quality flows into training: low-quality windows are counted per subject and signal,
their peripheral features treated as missing (mask) or the windows left out (drop), and a
signal unusable in every window is reported instead of emptying the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from physioaffect.datasets.fixtures import deap_subject_arrays, write_deap
from physioaffect.datasets.safe_pickle import dump_py2
from physioaffect.training import TrainConfig, train
from physioaffect.training.data import prepare_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = dict(dataset="deap", model="eeg_deformer", modalities=["eeg", "peripheral"],
            protocol="loso", target="arousal", windows={"window_s": 4.0},
            channels=["Fp1", "F3", "O1", "Fp2", "F4", "O2"],
            model_kwargs={"depth": 1, "heads": 2, "dim_head": 8, "mlp_dim": 8},
            optim={"epochs": 1, "batch_size": 16, "patience": 0}, compute={"threads": 1},
            baselines=["majority", "logreg"])


@pytest.fixture(scope="module")
def deap(tmp_path_factory) -> Path:
    """3 subjects; subject 2's plethysmograph is flat (a detached sensor) during trial 2."""
    root = write_deap(tmp_path_factory.mktemp("deapq") / "data", n_subjects=3, seconds=8.0,
                      n_trials=6, seed=1)
    arrays = deap_subject_arrays(2, 6, 8.0, 1)
    arrays["data"][1, 38, :] = -0.0236  # a constant, non-integer value: flat
    with open(root / "s02.dat", "wb") as f:
        dump_py2({"labels": arrays["labels"], "data": arrays["data"]}, f)
    return root


def test_mask_counts_and_hides_low_quality_windows(deap: Path, tmp_path: Path):
    cfg = TrainConfig(root=str(deap), cache_dir=str(tmp_path / "c"), **BASE)
    data = prepare_data(cfg.resolve())
    subj = data.meta["subject"].astype(str).to_numpy()
    trial = data.meta["trial"].to_numpy()
    flat = (subj == "s02") & (trial == 2)
    assert (data.quality["PPG"][flat] < 0.5).all() and (data.quality["PPG"][~flat] >= 0.5).all()
    ppg_cols = [i for i, n in enumerate(data.peripheral_names) if n.startswith("PPG_")]
    assert np.isnan(data.peripheral[np.ix_(flat, ppg_cols)]).all()
    assert np.isfinite(data.peripheral[np.ix_(~flat, ppg_cols)]).any(axis=1).all()
    run = train(cfg, out=tmp_path / "mask", progress=False)
    q = json.loads((run / "quality.json").read_text())
    assert q["per_subject"]["s02"]["PPG"] == {"windows": 12, "low_quality": 2}
    assert q["per_subject"]["s01"]["PPG"]["low_quality"] == 0
    # the fixture's GSR is in arbitrary units and its 8 s trials are shorter than respiration
    # and temperature need: low everywhere, reported rather than used as good numbers
    assert set(q["unusable_everywhere"]) == {"GSR", "RESP", "TEMP"}
    report = (run / "report.md").read_text()
    assert "## Signal quality" in report and "| s02 |" in report and "2 / 12" in report


def test_drop_leaves_low_quality_windows_out(deap: Path, tmp_path: Path):
    cfg = TrainConfig(root=str(deap), cache_dir=str(tmp_path / "c"),
                      quality={"action": "drop"}, **BASE)
    run = train(cfg, out=tmp_path / "drop", progress=False)
    labels = json.loads((run / "labels.json").read_text())
    assert labels["dropped_low_quality"] == 2 and labels["n_kept"] == 3 * 6 * 2 - 2
    pred = __import__("pandas").read_csv(run / "predictions.csv", dtype={"subject": str})
    s02 = pred[(pred.subject == "s02") & (pred.model == "majority")]
    assert 2 not in set(s02["trial"])
