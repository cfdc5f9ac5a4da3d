"""The simulator: deterministic, live == offline, and physiology that follows the script."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import signal as sps
from scipy import stats

from physioaffect.sources import SourceSpec, open_source
from physioaffect.sources.sim import SimConfig, SimSource, simulate_subject, subject_params

CFG = SimConfig(eeg_channels=32, rate=128, seed=3, n_trials=12, stimulus_seconds=30)


@pytest.fixture(scope="module")
def recordings():
    return [simulate_subject(CFG, s) for s in range(4)]


def _trial_slices(rec, kind):
    info, ts, x = rec.signals[kind]
    for tr in rec.trials:
        # skip the first 5 s: affect follows the stimulus with a 2 s time constant
        sel = (ts >= tr["onset"] + 5) & (ts < tr["offset"])
        yield tr, x[sel], info.nominal_srate


def test_deterministic_per_seed():
    a = simulate_subject(SimConfig(rate=128, seed=5), 1, duration=20)
    b = simulate_subject(SimConfig(rate=128, seed=5), 1, duration=20)
    c = simulate_subject(SimConfig(rate=128, seed=6), 1, duration=20)
    for kind in ("EEG", "ECG", "GSR", "PPG", "RESP"):
        np.testing.assert_array_equal(a.signals[kind][2], b.signals[kind][2])
        assert not np.array_equal(a.signals[kind][2], c.signals[kind][2])
    assert a.trials == b.trials


def test_live_source_equals_offline_simulation():
    """The live source (unpaced) releases exactly the offline samples and markers."""
    cfg = SimConfig(eeg_channels=8, rate=128, seed=2, baseline_seconds=2, stimulus_seconds=3,
                    rest_seconds=1, n_trials=3)
    offline = simulate_subject(cfg, 0, duration=12)
    src = SimSource(cfg, subject=0, speed=0)
    got: dict[str, list] = {}
    with src:
        while len(np.concatenate(got.get("sim-EEG", [np.zeros((0, 8))]))) < 12 * 128:
            for ch in src.read():
                got.setdefault(ch.stream, []).append(ch.samples)
    eeg = np.concatenate(got["sim-EEG"])[: 12 * 128]
    np.testing.assert_array_equal(eeg, offline.signals["EEG"][2])
    ecg = np.concatenate(got["sim-ECG"])[: 12 * 128]
    np.testing.assert_array_equal(ecg, offline.signals["ECG"][2])
    markers = [m[0] for m in np.concatenate(got["sim-Markers"])]
    assert markers == [m for _, m in offline.markers]
    first = json.loads(markers[0])
    assert first["event"] == "stimulus_onset" and 1 <= first["arousal"] <= 9


def test_realtime_pacing_follows_the_lsl_clock():
    from physioaffect.streams import local_clock

    with SimSource(SimConfig(eeg_channels=4, rate=256), speed=1.0) as src:
        t0 = local_clock()
        n = 0
        while local_clock() - t0 < 1.0:
            for ch in src.read(0.05):
                if ch.stream == "sim-EEG":
                    n += len(ch)
                    # a sample is never released before its timestamp comes due
                    assert ch.timestamps[-1] <= local_clock() + 1e-3
    assert 230 <= n <= 262


def test_r_peak_rate_equals_scripted_heart_rate(recordings):
    """R-peaks found in the ECG (scipy peak picking, independent of the model) give the
    scripted heart rate of every trial within 1.5 bpm."""
    for rec in recordings[:2]:
        info, ts, x = rec.signals["ECG"]
        fs = info.nominal_srate
        peaks, _ = sps.find_peaks(x[:, 0], height=0.6, distance=int(0.3 * fs))
        t_peaks = ts[peaks]
        state_t, hr = rec.state["time"], rec.state["heart_rate_bpm"]
        for tr in rec.trials:
            sel = (t_peaks >= tr["onset"]) & (t_peaks < tr["offset"])
            measured = 60.0 / np.mean(np.diff(t_peaks[sel]))
            s = (state_t >= tr["onset"]) & (state_t < tr["offset"])
            # mean rate over beats = harmonic mean of the instantaneous rate
            scripted = 1.0 / np.mean(1.0 / hr[s])
            assert abs(measured - scripted) < 1.5, (measured, scripted)
        # and the detected peaks coincide with the model's own R times
        assert np.median(np.min(np.abs(t_peaks[:, None] - rec.beats[None, :]), axis=1)) < 1.5 / fs


def test_heart_rate_and_scr_rise_with_arousal(recordings):
    hr_r, scr_r = [], []
    for rec in recordings:
        ar = [tr["arousal"] for tr in rec.trials]
        hr = []
        for tr in rec.trials:
            s = (rec.state["time"] >= tr["onset"] + 5) & (rec.state["time"] < tr["offset"])
            hr.append(rec.state["heart_rate_bpm"][s].mean())
        eda_level = [x.mean() for _, x, _ in _trial_slices(rec, "GSR")]
        hr_r.append(stats.spearmanr(ar, hr)[0])
        scr_r.append(stats.spearmanr(ar, eda_level)[0])
    assert np.mean(hr_r) > 0.5
    assert np.mean(scr_r) > 0.3


def _band_log_power(x, fs, lo, hi):
    f, p = sps.welch(x, fs=fs, nperseg=int(2 * fs), axis=0)
    sel = (f >= lo) & (f <= hi)
    return np.log(p[sel].mean(axis=0))


def test_posterior_alpha_drops_with_arousal(recordings):
    rs = []
    for rec in recordings:
        labels = rec.signals["EEG"][0].labels
        occ = [labels.index("O1"), labels.index("O2")]
        ar, alpha = [], []
        for tr, x, fs in _trial_slices(rec, "EEG"):
            ar.append(tr["arousal"])
            alpha.append(_band_log_power(x[:, occ], fs, 8, 12).mean())
        rs.append(stats.spearmanr(ar, alpha)[0])
    assert np.mean(rs) < -0.5, rs


def test_valence_shows_in_frontal_alpha_asymmetry(recordings):
    """FAA = ln alpha(F4) - ln alpha(F3) rises with valence (less left-frontal alpha)."""
    rs = []
    for rec in recordings:
        labels = rec.signals["EEG"][0].labels
        f3, f4 = labels.index("F3"), labels.index("F4")
        val, faa = [], []
        for tr, x, fs in _trial_slices(rec, "EEG"):
            lp = _band_log_power(x[:, [f3, f4]], fs, 8, 12)
            val.append(tr["valence"])
            faa.append(lp[1] - lp[0])
        rs.append(stats.spearmanr(val, faa)[0])
    assert np.mean(rs) > 0.4, rs


def test_eeg_has_alpha_peak_blinks_and_line_noise(recordings):
    rec = recordings[0]
    info, _, x = rec.signals["EEG"]
    fs = info.nominal_srate
    f, p = sps.welch(x[:, info.labels.index("O1")], fs=fs, nperseg=int(4 * fs))
    band = (f > 3) & (f < 40)
    peak = f[band][np.argmax(p[band])]
    assert abs(peak - rec.subject["alpha_hz"]) < 1.0
    line = p[np.argmin(np.abs(f - 50))] / np.median(p[(f > 40) & (f < 60)])
    assert line > 3  # a mains peak above the 1/f floor
    # blinks: frontal channels have larger low-frequency excursions than occipital ones
    fp1, o1 = info.labels.index("Fp1"), info.labels.index("O1")
    assert np.percentile(np.abs(x[:, fp1]), 99.9) > 1.5 * np.percentile(np.abs(x[:, o1]), 99.9)


def test_subjects_differ():
    a, b = subject_params(CFG, 0), subject_params(CFG, 1)
    assert a["heart_rate_bpm"] != b["heart_rate_bpm"] and a["alpha_hz"] != b["alpha_hz"]


def test_spec_options_and_errors():
    src = open_source("sim?eeg_channels=14&rate=128&seed=9&subject=2&speed=0")
    assert isinstance(src, SimSource)
    assert src.config.eeg_channels == 14 and src.subject == 2 and src.speed == 0
    assert src.stream("sim-EEG").labels[0] == "AF3"
    with pytest.raises(ValueError, match="unknown parameter.*eeg_chanels"):
        open_source("sim?eeg_chanels=14")
    with pytest.raises(ValueError, match="rate=fast.*must be an integer"):
        open_source("sim?rate=fast")
    with pytest.raises(ValueError, match="unknown source kind 'foo'"):
        open_source("foo:bar")
    with pytest.raises(ValueError, match="subject must be 0-11"):
        open_source("sim?subject=12")
    spec = SourceSpec.parse("brainflow:cyton?serial_port=/dev/ttyUSB0")
    assert (spec.kind, spec.target, dict(spec.params)) == ("brainflow", "cyton", {"serial_port": "/dev/ttyUSB0"})
