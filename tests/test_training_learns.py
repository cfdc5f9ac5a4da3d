"""Every deep model learns across subjects with the default recipe: a small LOSO run on a
DEAP-format folder where each network beats the trivial baseline of the same folds by a margin
random weights cannot reach.

The folder is written here with numpy and pickle (not the package's fixtures): 1/f background,
band-limited 16-24 Hz activity whose amplitude rises with arousal, and a different gain and
channel mixing per subject (which per-subject adaptation must undo). Default training options
(Fourier-surrogate augmentation, precise batch norm, AdamW + cosine, early stopping on
validation subjects) with the input's per-subject adaptation, scored with the live protocol
(each test subject calibrated on its first 40 s); only the data are small (4 subjects x 12 trials x
12 s, 8 channels, 4 s windows every 2 s) and the networks are their small configurations, so
that the file runs in about two minutes on 2 cores. The full-size networks on the README example
are measured by ``benchmarks/bench_training.py``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.signal import butter, sosfilt

from physioaffect.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHANNELS = ["Fp1", "F3", "C3", "P3", "O1", "Fp2", "C4", "O2"]

MODELS = {
    "eeg_deformer": {"depth": 1},
    "emt": {"n_layers": 1, "K": 2, "heads": 2, "dim_head": 8},
    "eegnet": {},
    "shallow_convnet": {"pool_time_length": 16, "pool_time_stride": 4},
    "fusion": {"eeg_kwargs": {"depth": 1}, "d_model": 16, "heads": 2},
}


N_TRIALS, SECONDS, FS = 12, 12, 128


def _subject(index: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([5, index])
    n = (3 + SECONDS) * FS
    arousal = np.where(np.arange(N_TRIALS) % 2 == 0, 2.0, 8.0) + rng.uniform(-1, 1, N_TRIALS)
    labels = np.column_stack([rng.uniform(1, 9, N_TRIALS), arousal,
                              rng.uniform(1, 9, (N_TRIALS, 2))])
    mix = np.eye(32) + 0.3 * rng.standard_normal((32, 32))  # the subject's head and cap
    gain = [0.5, 1.0, 2.0, 4.0][index - 1]
    sos = butter(4, [16, 24], btype="band", fs=FS, output="sos")
    data = np.zeros((N_TRIALS, 40, n))
    for k in range(N_TRIALS):
        spec = np.fft.rfft(rng.standard_normal((32, n)), axis=-1)
        f = np.maximum(np.fft.rfftfreq(n, 1 / FS), 0.5)
        background = np.fft.irfft(spec / f ** 0.6, n=n, axis=-1)
        background *= 8 / background.std()
        beta = sosfilt(sos, rng.standard_normal((32, n)), axis=-1)
        beta *= (4 if arousal[k] > 5 else 1.5) / beta.std()
        data[k, :32] = gain * (mix @ (background + beta))
        data[k, 32:] = rng.standard_normal((8, n))
        data[k, 36] += 100 + 10 * arousal[k] * gain  # GSR: arousal, scaled per subject
    return {"labels": labels, "data": data}

#: EEGNet learns slowly (its official training runs hundreds of epochs); fast on CPU
EPOCHS = {"eegnet": 30}


@pytest.fixture(scope="module")
def deap(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("learns")
    (root / "data").mkdir()
    for s in range(1, 5):
        with open(root / "data" / f"s{s:02d}.dat", "wb") as f:
            pickle.dump(_subject(s), f, protocol=2)
    return root


@pytest.mark.parametrize("model", sorted(MODELS))
def test_each_deep_model_beats_the_trivial_baseline_across_subjects(deap: Path, model: str):
    cfg = TrainConfig(
        dataset="deap", root=str(deap / "data"), model=model, protocol="loso",
        target="arousal", channels=CHANNELS, model_kwargs=MODELS[model],
        modalities=["eeg", "peripheral"] if model == "fusion" else ["eeg"],
        windows={"window_s": 4.0, "step_s": 2.0},
        optim={"epochs": EPOCHS.get(model, 8), "batch_size": 16},
        inputs={"graphs": {"sub_window_s": 2.0, "sub_overlap": 0.5}},
        baselines=["majority"], compute={"threads": 1}, seed=0,
        # the subjects differ in gain and mixing: the input's adaptation (the candidate that
        # adaptation "auto" tries beside none; one network per fold keeps the test short),
        # calibrated on each test subject's first 40 s as the live decoder would be
        adaptation={"method": "subject_zscore" if model == "emt" else "euclidean",
                    "calibration_s": 40.0},
        cache_dir=str(deap / "cache"))
    run = train(cfg, out=deap / model, progress=False)
    every = pd.read_csv(run / "predictions.csv")
    session = every[every.protocol == "session"]
    assert int((session.model == "majority").sum()) == 4 * N_TRIALS * 5
    # the score a live user gets: windows after each test subject's first 40 s (9 of 12
    # trials), the adaptation fitted on those 40 s only
    pred = every[every.protocol == "live"]
    acc = {m: float((g.y_true == g.y_pred).mean()) for m, g in pred.groupby("model")}
    n = int((pred.model == "majority").sum())
    # 4 test subjects x ~9 trials x 5 windows, balanced: a random classifier scores 0.5 with a
    # standard deviation of 0.5 / sqrt(36 trials) = 0.08, so 0.8 is out of its reach
    assert n >= 4 * 8 * 5
    assert acc["majority"] <= 0.6
    network = next(m for m in acc if m != "majority")  # fusion: "fusion[eeg+peripheral]"
    assert network.startswith(model) and acc[network] >= 0.8, acc
