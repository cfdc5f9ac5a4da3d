"""Windowed feature tables, and the simulator's scripted affect as ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from physioaffect.features.eeg import differential_entropy, frontal_alpha_asymmetry
from physioaffect.features.windows import feature_table, sliding_windows, window_starts
from physioaffect.preprocessing.quality import SignalInputError
from physioaffect.sources import sim


def test_window_starts_and_views():
    assert list(window_starts(1000, 100, 2.0, 1.0)) == [0, 100, 200, 300, 400, 500, 600, 700, 800]
    assert window_starts(150, 100, 2.0).size == 0
    x = np.arange(3 * 1000, dtype=float).reshape(3, 1000)
    w = sliding_windows(x, 100, 2.0, 0.5)
    assert w.shape == (17, 3, 200)
    assert np.shares_memory(w, x)  # a view, no copy of the recording
    assert np.array_equal(w[5], x[:, 250:450])
    with pytest.raises(SignalInputError, match="shorter"):
        sliding_windows(x[:, :50], 100, 2.0)


@pytest.fixture(scope="module")
def recording():
    cfg = sim.SimConfig(eeg_channels=32, rate=128, periph_rate=256, seed=2, n_trials=8)
    return sim.simulate_subject(cfg, subject=0, t0=100.0)  # a clock that does not start at 0


def _peripherals(rec):
    return {
        k: (rec.signals[k][2][:, 0], rec.signals[k][0].nominal_srate, rec.signals[k][1])
        for k in ("ECG", "GSR", "PPG", "RESP")
    }


def test_table_rows_align_with_eeg_windows_across_rates(recording):
    info, ts, eeg = recording.signals["EEG"]
    names = [c.label for c in info.channels]
    tab = feature_table(
        eeg.T,
        128,
        10.0,
        5.0,
        eeg_timestamps=ts,
        ch_names=names,
        peripherals=_peripherals(recording),
    )
    n_expected = window_starts(ts.size, 128, 10.0, 5.0).size
    assert len(tab) == n_expected
    assert tab["start_s"].iloc[0] == pytest.approx(100.0) and tab["start_s"].diff().iloc[
        1
    ] == pytest.approx(5.0)
    # EEG columns equal the DE of the same EEG slice computed directly.
    k = 7
    a = int(round((tab["start_s"].iloc[k] - ts[0]) * 128))
    de = differential_entropy(eeg[a : a + 1280].T, 128, "torcheeg4")
    assert tab[f"EEG_DE_alpha_{names[3]}"].iloc[k] == pytest.approx(de[3, 1], rel=1e-12)
    # ECG (256 Hz) heart rate in each window equals the rate of the simulator's true beats there.
    beats = recording.beats  # already on the recording's clock (t0 = 100 s)
    for k in range(0, len(tab), 7):
        lo, hi = tab["start_s"].iloc[k], tab["stop_s"].iloc[k]
        inside = beats[(beats >= lo) & (beats < hi)]
        true_rate = np.mean(60.0 / np.diff(inside))
        assert tab["ECG_Rate_Mean"].iloc[k] == pytest.approx(true_rate, abs=1.0)


def test_features_follow_the_scripted_arousal_and_valence(recording):
    """Simulator ground truth: per-trial features rank trials as the scripted affect does."""
    info, ts, eeg = recording.signals["EEG"]
    names = [c.label for c in info.channels]
    tab = feature_table(
        eeg.T,
        128,
        10.0,
        eeg_timestamps=ts,
        ch_names=names,
        peripherals=_peripherals(recording),
        eeg_feature="relpower",
        bands=[("alpha", 8.0, 13.0)],
    )
    posterior = [f"EEG_RBP_alpha_{c}" for c in ("O1", "O2", "Oz", "Pz", "P3", "P4", "PO3", "PO4")]
    tab["alpha_posterior"] = tab[posterior].mean(axis=1)
    rows, arousal, valence, faa = [], [], [], []
    for tr in recording.trials:
        # Skip the first 5 s of each trial: the simulated affect rises smoothly.
        sel = (tab["start_s"] >= tr["onset"] + 5) & (tab["stop_s"] <= tr["offset"])
        rows.append(tab[sel].mean(numeric_only=True))
        arousal.append(tr["arousal"])
        valence.append(tr["valence"])
        a, b = (np.array([tr["onset"] + 5, tr["offset"]]) - ts[0]) * 128
        faa.append(
            frontal_alpha_asymmetry(
                eeg[int(a) : int(b)].T, 128, names, [("F3", "F4"), ("AF3", "AF4"), ("F7", "F8")]
            ).mean()
        )
    per_trial = pd.DataFrame(rows)
    rho = {c: spearmanr(arousal, per_trial[c]).statistic for c in per_trial.columns}
    assert rho["ECG_Rate_Mean"] > 0.8  # heart rate rises with arousal
    assert rho["PPG_Rate_Mean"] > 0.8
    assert rho["RSP_Rate_Mean"] > 0.8  # breathing faster
    assert rho["PPG_Amplitude_Mean"] < -0.8  # vasoconstriction
    assert rho["EDA_Tonic_Mean"] > 0.7  # skin conductance level up
    assert rho["SCR_Peaks_N"] > 0  # more SCRs (a noisy count of a few per trial)
    assert rho["alpha_posterior"] < -0.6  # alpha blocking
    assert spearmanr(valence, faa).statistic > 0.6  # frontal asymmetry follows valence
