"""Training honours every field of the declared preprocessing or refuses it by name, and the
checkpoint's pipeline is what the live decoder runs (or refuses to run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from physioaffect.datasets import open_dataset
from physioaffect.preprocessing import PipelineConfig
from physioaffect.training import TrainConfig, TrainingError
from physioaffect.training.data import prepare_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIM = {"subjects": 2, "n_trials": 4, "stimulus_seconds": 8.0, "eeg_channels": 14, "rate": 128,
       "seed": 2, "rest_seconds": 2.0, "baseline_seconds": 2.0}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "physioaffect.cli.main", *args],
                          capture_output=True, text=True, timeout=120)


def test_training_windows_are_the_declared_pipeline(tmp_path: Path):
    """Band-pass + average reference + decimation 128 -> 64 Hz, honoured in training."""
    pipe = {"l_freq": 1.0, "h_freq": 25.0, "filter_order": 3, "reference": "average",
            "resample_sfreq": 64.0}
    cfg = TrainConfig(dataset="sim", root=str(tmp_path / "sim"), model="eegnet", sim=SIM,
                      preprocessing=pipe, windows={"window_s": 4.0},
                      cache_dir=str(tmp_path / "cache")).resolve()
    # the classical baselines' DE bands reach 49 Hz: at 64 Hz they are refused by name
    with pytest.raises(TrainingError, match="de_bands: .*64 Hz after preprocessing"):
        prepare_data(cfg)
    cfg.baselines = ["majority"]
    data = prepare_data(cfg)
    assert data.sfreq == 64.0 and data.raw.shape[1:] == (14, 256)
    assert data.info["source_sfreq"] == 128.0
    # independent computation on subject 01, trial 1: scipy filters, mean reference, keep
    # every second sample
    tr = open_dataset("sim", tmp_path / "sim").read_subject("01").trials[0]
    sos = signal.butter(3, [1.0, 25.0], "bandpass", fs=128, output="sos")
    y = signal.sosfilt(sos, np.asarray(tr.eeg, dtype=np.float64), axis=-1)
    y = (y - y.mean(axis=0, keepdims=True))[:, ::2]
    first = np.flatnonzero((data.meta["subject"].astype(str) == "01").to_numpy()
                           & (data.meta["trial"] == tr.trial).to_numpy())
    for row in first:
        start = int(round(data.meta["onset_s"].iloc[row] * 64))
        np.testing.assert_allclose(data.raw[row], y[:, start:start + 256], atol=1e-3)


@pytest.mark.parametrize("field, value", [
    ("ica_eog", True), ("baseline", "subtract"), ("reject_uv", 150.0), ("epoch_tmax", 3.0)])
def test_fields_training_cannot_honour_are_refused_by_name(tmp_path, field, value):
    cfg = TrainConfig(dataset="sim", root=str(tmp_path), preprocessing={field: value})
    with pytest.raises(TrainingError, match=f"preprocessing.{field}"):
        cfg.resolve()


def test_cli_refuses_an_unhonoured_field_in_one_line(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("dataset: sim\nroot: %s\npreprocessing:\n  ica_eog: true\n" % (tmp_path / "s"))
    r = _cli("train", "--config", str(conf), "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "preprocessing.ica_eog" in r.stderr
    assert not (tmp_path / "s").exists()  # refused before the simulator wrote anything


def test_decode_refuses_a_zero_phase_checkpoint_unless_asked(tmp_path):
    import torch

    from physioaffect.models import create
    from physioaffect.realtime import bundle_for_model, save_bundle
    from physioaffect.sources.sim import SimConfig, stream_infos

    torch.manual_seed(0)
    labels = stream_infos(SimConfig(rate=128, eeg_channels=8))["EEG"].labels
    model = create("eegnet", n_chans=8, n_outputs=2, n_times=256, sfreq=128)
    zero = PipelineConfig(l_freq=1.0, h_freq=40.0, phase="zero", detect_bads=False)
    path = save_bundle(bundle_for_model(model, zero, labels, 128.0, 256), tmp_path / "ck")
    src = "sim?eeg_channels=8&rate=128&speed=4"
    r = _cli("decode", "--checkpoint", str(path), "--source", src, "--duration", "2")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "cannot run live" in r.stderr and "phase: causal" in r.stderr
    assert "--allow-noncausal" in r.stderr and "decoding" not in r.stderr  # no stream opened
    r = _cli("decode", "--checkpoint", str(path), "--source", src, "--duration", "3",
             "--allow-noncausal", "--name", "zero-phase-test")
    assert r.returncode == 0, r.stderr
    assert "NOT as trained" in r.stderr
