"""Signal-quality indices: flags on constructed disagreements and artefacts, checked against
ground truth (the simulator's beats, MIT-BIH's two leads) and against NeuroKit2's own index.

The standard every window must meet: its rate is right (within 5 bpm of the truth) or its quality
is below the threshold with a reason.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import REAL_DATA
from scipy import signal as sps

from physioaffect.features import peripheral as P
from physioaffect.features import quality as Q
from physioaffect.features.windows import feature_table, peripheral_table
from physioaffect.preprocessing.quality import SignalInputError, SignalQualityWarning
from physioaffect.sources.sim import SimConfig, simulate_subject

FS = 256
MITBIH = REAL_DATA / "mitbih" / "100"


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SignalQualityWarning)
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def sim_ecg_ppg():
    rec = simulate_subject(SimConfig(eeg_channels=1, rate=FS, seed=4, n_trials=2), 0, duration=120)
    ts = rec.signals["ECG"][1]
    ecg = rec.signals["ECG"][2][:, 0].astype(float)
    ppg = rec.signals["PPG"][2][:, 0].astype(float)
    return ts, ecg, ppg, rec.beats


@pytest.fixture(scope="module")
def mitbih_two_leads():
    if not MITBIH.with_suffix(".dat").exists():
        pytest.skip(f"MIT-BIH record 100 not found in {MITBIH.parent}")
    wfdb = pytest.importorskip("wfdb", reason="reads the MIT-BIH record (a test dependency)")
    rec = wfdb.rdrecord(str(MITBIH), sampto=360 * 120)
    return rec.p_signal[:, 0].copy(), rec.p_signal[:, 1].copy(), float(rec.fs)


def _true_rate(beats: np.ndarray, starts: np.ndarray, window_s: float) -> np.ndarray:
    out = []
    for t0 in starts:
        b = beats[(beats >= t0) & (beats < t0 + window_s)]
        out.append(60.0 / np.mean(np.diff(b)))
    return np.array(out)


def _right_or_flagged(table: pd.DataFrame, rate_col: str, q_col: str, truth: np.ndarray) -> None:
    ok = (np.abs(table[rate_col].to_numpy() - truth) <= 5.0) | (table[q_col].to_numpy() < 0.5)
    assert ok.all(), table.loc[~ok, [rate_col, q_col]]


def test_ecg_and_ppg_disagreeing_flags_both_windows(sim_ecg_ppg):
    """Planted missed weak pulses (30-40 s) and a motion burst (62-68 s) in the PPG."""
    ts, ecg, ppg, beats = sim_ecg_ppg
    ev, _ = P.process("PPG", ppg, FS)
    bad = ppg.copy()
    for p in ev["peaks"][(ev["peaks"] > 32 * FS) & (ev["peaks"] < 38 * FS)][::2]:
        a, b = p - int(0.35 * FS), p + int(0.35 * FS)  # the pulse sinks into its baseline
        bad[a:b] = np.linspace(bad[a], bad[b - 1], b - a)
    rng = np.random.default_rng(4)
    burst = sps.sosfilt(sps.butter(2, [0.3, 3], "bandpass", fs=FS, output="sos"),
                        rng.standard_normal(6 * FS))
    bad[62 * FS:68 * FS] += burst / burst.std() * 3 * ppg.std() * np.hanning(burst.size)
    per = {"ECG": (ecg, FS, ts), "PPG": (bad, FS, ts)}
    flag = _quiet(feature_table, None, FS, 10.0, eeg_timestamps=ts, peripherals=per,
                  low_quality="flag")
    truth = _true_rate(beats, flag["start_s"].to_numpy(), 10.0)
    for mod in ("ECG", "PPG"):
        _right_or_flagged(flag, f"{mod}_Rate_Mean", f"{mod}_Quality", truth)
    for k in (3, 6):  # 30-40 s and 60-70 s: both sources flagged, the disagreement named
        assert flag["ECG_Quality"][k] < 0.5 and flag["PPG_Quality"][k] < 0.5
        assert "ECG" in flag["ECG_Quality_Reasons"][k] and "differ by" in flag["ECG_Quality_Reasons"][k]
        assert abs(flag["PPG_Rate_Mean"][k] - truth[k]) > 5  # the flag was needed
    clean = [k for k in range(len(flag)) if k not in (3, 6)]
    assert (flag.loc[clean, ["ECG_Quality", "PPG_Quality"]] >= 0.5).all().all()
    # the default gate: the flagged windows' features are NaN, the others untouched
    with pytest.warns(SignalQualityWarning, match="2 of 12 windows below quality 0.5"):
        gated = feature_table(None, FS, 10.0, eeg_timestamps=ts, peripherals=per)
    assert gated.loc[[3, 6], ["ECG_Rate_Mean", "HRV_RMSSD", "PPG_Rate_Mean"]].isna().all().all()
    pd.testing.assert_frame_equal(gated.loc[clean], flag.loc[clean])


def test_noise_bursts_in_one_ecg_lead(mitbih_two_leads):
    """MIT-BIH 100, two leads: EMG-like noise (43-47 s) and electrode motion (82-86 s) planted
    in V5 only."""
    mlii, v5, fs = mitbih_two_leads
    rng = np.random.default_rng(1)
    n = int(4 * fs)
    noisy = v5.copy()
    noisy[int(43 * fs):int(43 * fs) + n] += rng.standard_normal(n)
    noisy[int(82 * fs):int(82 * fs) + n] += (3 * np.sin(2 * np.pi * 0.4 * np.arange(n) / fs)
                                             + rng.standard_normal(n))
    ts = np.arange(mlii.size) / fs
    tab = _quiet(feature_table, None, fs, 10.0, eeg_timestamps=ts, low_quality="flag",
                 peripherals={"ECG": (mlii, fs), "ECG:V5": (noisy, fs)})
    assert (tab["V5:ECG_Quality"][[4, 8]] < 0.5).all()
    assert (tab["ECG_Quality"][[4, 8]] < 0.5).all()  # the clean lead is flagged too: which is
    assert "agree on only" in tab["ECG_Quality_Reasons"][4]  # right is unknown from two leads
    rest = [k for k in range(len(tab)) if k not in (4, 8)]
    assert (tab.loc[rest, ["ECG_Quality", "V5:ECG_Quality"]] >= 0.5).all().all()
    # milder bursts: right or flagged, window by window (reference: the clean lead's rate)
    milder = v5.copy()
    milder[int(43 * fs):int(43 * fs) + n] += 0.3 * rng.standard_normal(n)
    part = _quiet(peripheral_table, "ECG", milder, fs, tab["start_s"], 10.0, low_quality="flag")
    _right_or_flagged(part, "ECG_Rate_Mean", "ECG_Quality", tab["ECG_Rate_Mean"].to_numpy())


def test_template_correlation_matches_neurokit(mitbih_two_leads):
    """Our vectorised Orphanidou template correlation against NeuroKit2's own
    ``ecg_quality(method="templatematch")`` (a loop over pandas epochs) on clean and noisy
    MIT-BIH windows."""
    nk = pytest.importorskip("neurokit2")
    _, v5, fs = mitbih_two_leads
    rng = np.random.default_rng(0)
    for amp in (0.0, 0.2, 0.5):
        ev, _ = P.process("ECG", v5[: int(30 * fs)] + amp * rng.standard_normal(int(30 * fs)), fs)
        a, b = int(10 * fs), int(20 * fs)
        x, pk = ev["cleaned"][a:b], ev["peaks"][(ev["peaks"] >= a) & (ev["peaks"] < b)] - a
        ours, _ = Q.template_correlation(x, pk, int(0.5 * np.median(np.diff(pk))))
        try:
            theirs = nk.ecg_quality(x, rpeaks=pk, sampling_rate=int(fs), method="templatematch")
        except ValueError:
            pytest.skip(f"NeuroKit2 {nk.__version__} has no templatematch ECG quality")
        assert ours == pytest.approx(float(np.mean(theirs[pk[:-1]])), abs=0.05), amp


def test_window_quality_is_not_fooled_by_a_flat_stretch(sim_ecg_ppg):
    """An electrode off for 12 s inside a good recording: those windows score 0 'flat'."""
    ts, ecg, _, _ = sim_ecg_ppg
    x = ecg.copy()
    x[40 * FS:52 * FS] = -0.0236  # a constant of a non-integer value
    tab = _quiet(peripheral_table, "ECG", x, FS, np.arange(0, 110, 10.0) + ts[0], 10.0,
                 timestamps=ts, reasons=True)
    assert tab["ECG_Quality"][4] == 0 and "flat" in tab["ECG_Quality_Reasons"][4]
    assert np.isnan(tab["ECG_Rate_Mean"][4])
    assert tab["ECG_Quality"][[0, 1, 2, 7, 8]].min() >= 0.5


@pytest.mark.parametrize("func", [P.ecg_features, P.eda_features, P.ppg_features,
                                  P.rsp_features, P.temp_features], ids=lambda f: f.__name__)
def test_flat_signals_of_non_integer_value(func):
    """A constant -0.0236 (std 3.5e-18 by rounding), and the same constant through a zero-phase
    filter (values differing by ~1e-17): flat, NaN, and the reason says so (not the rate)."""
    const = np.full(FS * 30, -0.0236)
    assert 0 < np.std(const) < 1e-15  # rounding, the case a `std <= 0` test missed
    filtered = sps.sosfiltfilt(sps.butter(4, 20, fs=FS, output="sos"), const)
    for x in (const, filtered, const.astype(np.float32)):
        with pytest.warns(SignalQualityWarning, match="flat"):
            feats, info = func(x, FS)
        assert all(np.isnan(v) for v in feats.values())
        assert not any("sampling rate" in r for r in info["reasons"])


def test_respiration_rate_in_every_normal_window():
    """Breath intervals across window edges: a rate in every 10 s window, equal to the
    simulator's breathing rate (affect effects off: a constant rate)."""
    from physioaffect.sources.sim.model import subject_params

    cfg = SimConfig(eeg_channels=1, rate=64, seed=2, n_trials=2, effect=0.0)
    rec = simulate_subject(cfg, 0, duration=120)
    _, ts, resp = rec.signals["RESP"]
    starts = np.arange(0, 111, 10.0) + ts[0]
    tab = _quiet(peripheral_table, "RESP", resp[:, 0], 64, starts, 10.0, timestamps=ts)
    assert list(tab.columns) == ["RSP_Rate_Mean", "RSP_Amplitude_Mean", "RESP_Quality"]
    truth = subject_params(cfg, 0)["resp_rate_bpm"]
    assert tab["RSP_Rate_Mean"].notna().all()
    np.testing.assert_allclose(tab["RSP_Rate_Mean"], truth, atol=1.5)
    assert (tab["RESP_Quality"] >= 0.5).all()


def test_eeg_quality_flags_the_bad_channel_of_a_window():
    rng = np.random.default_rng(0)
    names = ["F3", "F4", "C3", "C4", "P3", "P4"]
    x = rng.standard_normal((6, 128 * 40)) * 10
    x[2, 128 * 12:128 * 14] += 800 * np.hanning(256)  # a 800 µV artefact in C3, window 1
    x[4, 128 * 23:128 * 30] = 3.5  # P3 stuck for 7 s of window 2 (20-30 s)
    tab = _quiet(feature_table, x, 128, 10.0, ch_names=names)
    assert tab["EEG_Quality"].tolist() == pytest.approx([1, 5 / 6, 5 / 6, 1])
    assert "C3: peak-to-peak" in tab["EEG_Quality_Reasons"][1]
    assert tab["EEG_Quality_Reasons"][2] == "P3: flat for over half the window"
    assert np.isnan(tab["EEG_DE_alpha_C3"][1]) and np.isfinite(tab["EEG_DE_alpha_C4"][1])
    flag = _quiet(feature_table, x, 128, 10.0, ch_names=names, low_quality="flag")
    assert np.isfinite(flag["EEG_DE_alpha_C3"][1])
    # the unit rule: EEG in volts scores 0 with the reason, every EEG feature NaN
    volts = _quiet(feature_table, x * 1e-6, 128, 10.0, ch_names=names)
    assert (volts["EEG_Quality"] == 0).all() and "looks like volts" in volts["EEG_Quality_Reasons"][0]
    assert volts.filter(like="EEG_DE").isna().all().all()


def test_quality_options_are_checked():
    with pytest.raises(SignalInputError, match="low_quality"):
        P.ecg_features(np.zeros(FS * 10), FS, low_quality="drop")
    with pytest.raises(SignalInputError, match="quality_threshold"):
        peripheral_table("ECG", np.zeros(FS * 10), FS, [0.0], 10.0, quality_threshold=2)
