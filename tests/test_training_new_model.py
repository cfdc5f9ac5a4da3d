"""A new network is one class plus one registration: a toy model registered here is trained,
evaluated on other data and decoded live without any change to the training, evaluation or
decoding code (they ask the model registry, never branch on model names)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from physioaffect.models import REGISTRY, EEGModel, ModelSpec, register_model
from physioaffect.models.inputs import RAW
from physioaffect.training import TrainConfig, evaluate, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class LogPowerNet(EEGModel):
    """Log power of each channel, then a linear layer: a network in a dozen lines."""

    def __init__(self, n_chans: int, n_outputs: int, n_times: int, sfreq: float,
                 hidden: int = 8) -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq)
        self._remember_config(locals())
        self.net = nn.Sequential(nn.Linear(n_chans, hidden), nn.ReLU(), nn.Linear(hidden,
                                                                                   n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.log(x.pow(2).mean(dim=-1) + 1e-3))


@pytest.fixture(scope="module")
def toy_model():
    register_model(ModelSpec("log_power_net", LogPowerNet, "log channel power + MLP",
                             "(batch, n_chans, n_times) raw EEG", RAW))
    yield "log_power_net"
    REGISTRY.pop("log_power_net")


SIM = {"subjects": 4, "n_trials": 8, "stimulus_seconds": 12.0, "eeg_channels": 14, "rate": 128,
       "seed": 5, "rest_seconds": 4.0, "baseline_seconds": 4.0}


def test_a_registered_model_trains_evaluates_and_decodes(toy_model, tmp_path: Path):
    cfg = TrainConfig(dataset="sim", root=str(tmp_path / "sim"), model=toy_model,
                      protocol="loso", target="arousal", sim=SIM, baselines=["majority"],
                      windows={"window_s": 4.0}, optim={"epochs": 3, "batch_size": 16},
                      adaptation={"method": "euclidean"},
                      compute={"threads": 1}, cache_dir=str(tmp_path / "cache"))
    run = train(cfg, out=tmp_path / "run", progress=False)
    pred = pd.read_csv(run / "predictions.csv")
    assert set(pred["model"]) == {"log_power_net", "majority"}
    contract = json.loads((run / "folds" / "loso-01" / "checkpoint" / "contract.json")
                          .read_text())
    assert contract["model"] == "log_power_net" and contract["input_kind"] == "raw"

    ev = evaluate(run / "folds" / "loso-01", "sim", tmp_path / "sim", tmp_path / "eval",
                  cache_dir=str(tmp_path / "cache"))
    scored = pd.read_csv(ev / "predictions.csv")
    # the network, and the baselines evaluate fits on the other evaluated subjects
    assert len(scored) > 0 and set(scored["model"]) == {"log_power_net", "majority", "logreg"}

    from physioaffect.realtime import run_decoder

    got = []
    stop = threading.Event()
    report = run_decoder(["sim?eeg_channels=14&rate=128&seed=5&speed=4"],
                         str(run / "folds" / "loso-01"), rate=4.0, duration=4.0, stop=stop,
                         echo=got.append, name="toy-prediction", calibration_s=4.0)
    # trained with Euclidean alignment: 4 s of calibration, then predictions
    assert any("calibrating" in line for line in got), got
    assert report.predictions > 0, got
    assert np.isfinite(report.latency_summary()["median_ms"])
