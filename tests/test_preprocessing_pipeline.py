"""EEG preprocessing: serialisable config, filters, streaming equivalence, bads, ICA, epochs."""

from __future__ import annotations

import json

import mne
import numpy as np
import pytest
from scipy import signal

from physioaffect.preprocessing import (
    PipelineConfig,
    SignalInputError,
    SignalQualityWarning,
    StreamingFilter,
    StreamingPipeline,
    apply_baseline,
    design_sos,
    detect_bad_channels,
    filter_array,
    make_epochs,
    normalise_to_baseline,
    preprocess_array,
    preprocess_raw,
)

FS = 256
NAMES = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "T7", "T8"]


def _eeg(seconds: float = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    common = 10 * np.sin(2 * np.pi * 10 * t)
    return rng.standard_normal((len(NAMES), t.size)) * 8 + common


def _power_at(x: np.ndarray, f: float) -> float:
    freqs, psd = signal.welch(x, FS, nperseg=FS * 2, axis=-1)
    return float(psd[..., np.argmin(np.abs(freqs - f))].mean())


def test_config_roundtrip_and_hash():
    cfg = PipelineConfig(
        l_freq=0.5, h_freq=40, reference="mastoids", resample_sfreq=128, phase="causal"
    )
    again = PipelineConfig.from_json(cfg.to_json())
    assert again == cfg and hash(again) == hash(cfg)
    assert again.config_hash() == cfg.config_hash()
    assert json.loads(cfg.to_json())["mastoids"] == list(cfg.mastoids)
    assert PipelineConfig(h_freq=40).config_hash() != PipelineConfig(h_freq=41).config_hash()
    with pytest.raises(SignalInputError, match="unknown fields"):
        PipelineConfig.from_dict({**cfg.to_dict(), "colour": "red"})
    with pytest.raises(SignalInputError, match="reference"):
        PipelineConfig(reference="cz")
    with pytest.raises(SignalInputError, match="l_freq"):
        PipelineConfig(l_freq=50, h_freq=40)


def test_streaming_filter_equals_one_shot_causal_filter():
    cfg = PipelineConfig(phase="causal")
    x = _eeg(10).T  # (n_samples, n_channels) as stream chunks
    sf = StreamingFilter.from_config(cfg, FS, x.shape[1])
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.choice(np.arange(1, x.shape[0]), 40, replace=False))
    out = np.concatenate([sf.process(c) for c in np.split(x, cuts)] + [sf.process(x[:0])])
    one_shot = signal.sosfilt(design_sos(cfg, FS), x, axis=0)
    assert np.array_equal(out, one_shot)  # bit-identical
    assert np.array_equal(out, filter_array(x, FS, cfg, axis=0))
    sf.reset()
    assert np.array_equal(sf.process(x[:100]), one_shot[:100])
    with pytest.raises(SignalInputError, match="chunk"):
        sf.process(np.zeros((10, 3)))


_LIVE_OPTIONS = {
    "band-pass": dict(l_freq=1.0, h_freq=45.0, notch_freq=None, reference="none"),
    "high-pass": dict(l_freq=0.5, h_freq=None, notch_freq=None, reference="none"),
    "low-pass": dict(l_freq=None, h_freq=30.0, notch_freq=None, reference="none"),
    "notch": dict(l_freq=None, h_freq=None, notch_freq=50.0, reference="none"),
    "notch+band-pass": dict(l_freq=1.0, h_freq=45.0, notch_freq=50.0, reference="none"),
    "order-2": dict(l_freq=4.0, h_freq=8.0, filter_order=2, notch_freq=None, reference="none"),
    "average": dict(l_freq=1.0, h_freq=45.0, notch_freq=None, reference="average"),
    "mastoids": dict(l_freq=1.0, h_freq=45.0, notch_freq=None, reference="mastoids"),
    "decimate-2": dict(l_freq=1.0, h_freq=45.0, notch_freq=None, reference="none",
                       resample_sfreq=128.0),
    "decimate-4+anti-alias": dict(l_freq=1.0, h_freq=45.0, notch_freq=50.0,
                                  reference="average", resample_sfreq=64.0),
}


@pytest.mark.parametrize("option", sorted(_LIVE_OPTIONS))
def test_streaming_pipeline_equals_offline_pipeline_for_any_chunk_size(option):
    """Offline (MNE) and live (chunks of 1, 7, 32, 1000 samples) give the same model input."""
    names = NAMES[:-2] + ["M1", "M2"] if option == "mastoids" else NAMES
    cfg = PipelineConfig(phase="causal", detect_bads=False, **_LIVE_OPTIONS[option])
    x = _eeg(12, seed=4) + 40  # a DC offset for the high-pass to settle from
    offline, report = preprocess_array(x, FS, names, cfg)
    scale = np.abs(offline[:, 2 * offline.shape[1] // 12:]).max()
    for size in (1, 7, 32, 1000):
        live = StreamingPipeline(cfg, FS, names)
        ts = np.arange(x.shape[1]) / FS
        parts = [live.process(x.T[i:i + size], ts[i:i + size]) for i in range(0, x.shape[1], size)]
        online = np.concatenate([p[0] for p in parts]).T
        kept_ts = np.concatenate([p[1] for p in parts])
        assert online.shape == offline.shape, (option, size)
        assert report["sfreq"] == live.sfreq_out
        assert np.allclose(kept_ts, np.arange(offline.shape[1]) / live.sfreq_out)
        # from the start (both filters start from rest), after the 2 s the filters take to settle
        err = np.abs(online - offline)[:, int(2 * live.sfreq_out):].max()
        assert err < 1e-6 * scale, (option, size, err / scale)


def test_live_refuses_what_it_cannot_reproduce():
    with pytest.raises(SignalInputError, match="causal"):
        StreamingPipeline(PipelineConfig(phase="zero"), FS, NAMES)
    with pytest.raises(SignalInputError, match="detect_bads"):
        StreamingPipeline(PipelineConfig(phase="causal", detect_bads=True), FS, NAMES)
    with pytest.raises(SignalInputError, match="resample_sfreq"):
        StreamingPipeline(PipelineConfig(phase="causal", detect_bads=False, resample_sfreq=100),
                          FS, NAMES)


def test_mne_info_tells_the_truth_after_preprocessing():
    x = _eeg(10)
    raw = mne.io.RawArray(x * 1e-6, mne.create_info(NAMES, FS, "eeg"), verbose=False)
    for phase in ("zero", "causal"):
        cfg = PipelineConfig(l_freq=1.0, h_freq=45.0, phase=phase, reference="average",
                             detect_bads=False, resample_sfreq=128.0)
        out, report = preprocess_raw(raw, cfg)
        assert out.info["highpass"] == pytest.approx(1.0)
        assert out.info["lowpass"] == pytest.approx(45.0)
        assert out.info["custom_ref_applied"]
        assert out.info["sfreq"] == 128.0 and report["sfreq"] == 128.0
        # the data really are average-referenced and band-limited
        assert np.abs(out.get_data().mean(axis=0)).max() < 1e-12
        assert out.n_times == x.shape[1] // 2


def test_average_reference_of_one_channel_is_skipped_not_zeroed():
    x = _eeg(10)[:1]
    with pytest.warns(SignalQualityWarning, match="average reference skipped"):
        y, _ = preprocess_array(x, FS, NAMES[:1], PipelineConfig(detect_bads=False,
                                                               reference="average"))
    assert np.std(y[:, FS * 2:]) > 1.0


def test_bandpass_and_notch_remove_what_they_should():
    t = np.arange(20 * FS) / FS
    x = _eeg(20) + 30 * np.sin(2 * np.pi * 50 * t) + 30 * np.sin(2 * np.pi * 100 * t) + 200
    for phase in ("zero", "causal"):
        y = filter_array(x, FS, PipelineConfig(phase=phase, h_freq=110))
        assert _power_at(y[:, FS * 2 :], 50) < 1e-3 * _power_at(x, 50)
        assert _power_at(y[:, FS * 2 :], 100) < 1e-3 * _power_at(x, 100)
        assert abs(y[:, FS * 2 :].mean()) < 1.0  # DC offset gone (high-pass)
        assert _power_at(y, 10) == pytest.approx(_power_at(x, 10), rel=0.1)  # alpha kept


def test_zero_phase_keeps_timing_causal_delays():
    x = np.zeros((1, 4 * FS))
    x[0, 2 * FS] = 1.0
    zero = filter_array(x, FS, PipelineConfig(notch_freq=None))
    causal = filter_array(x, FS, PipelineConfig(notch_freq=None, phase="causal"))
    assert np.argmax(np.abs(zero[0])) == 2 * FS
    assert np.argmax(np.abs(causal[0])) > 2 * FS


def test_average_and_mastoid_reference():
    x = _eeg(5)
    y, _ = preprocess_array(x, FS, NAMES, PipelineConfig(detect_bads=False, reference="average"))
    assert np.allclose(y.mean(axis=0), 0, atol=1e-9)
    names = NAMES[:-2] + ["M1", "M2"]
    y, _ = preprocess_array(x, FS, names, PipelineConfig(detect_bads=False, reference="mastoids"))
    assert np.allclose(y[-2] + y[-1], 0, atol=1e-9)  # each mastoid = -(the other) after re-ref
    with pytest.raises(SignalInputError, match="mastoid"):
        preprocess_array(x, FS, NAMES, PipelineConfig(detect_bads=False, reference="mastoids"))


def test_bad_channels_detected_and_interpolated():
    x = _eeg(20)
    x[3] *= 40  # F4: a loose electrode
    x[8] = 0.0  # O1: flat
    x[5, 100:110] = np.nan  # C4: dropout
    bads, why = detect_bad_channels(x, FS, NAMES)
    assert set(bads) == {"F4", "O1", "C4"}
    assert why["O1"] == "flat" and "non-finite" in why["C4"]
    with pytest.warns(SignalQualityWarning, match="bad channels"):
        y, report = preprocess_array(x, FS, NAMES, PipelineConfig(reference="none"))
    assert set(report["interpolated"]) == {"F4", "O1", "C4"}
    assert np.isfinite(y).all()
    # Interpolated F4 now has an ordinary amplitude (neighbours share a 10 Hz rhythm).
    sd = y.std(axis=1)
    assert sd[3] < 3 * np.median(sd) and sd[8] > 0.1 * np.median(sd)


def test_resample_and_report():
    y, report = preprocess_array(
        _eeg(4), FS, NAMES, PipelineConfig(resample_sfreq=128, detect_bads=False)
    )
    assert y.shape == (len(NAMES), 4 * 128)
    assert (
        report["sfreq"] == 128
        and report["config_hash"]
        == PipelineConfig(resample_sfreq=128, detect_bads=False).config_hash()
    )


def test_ica_removes_blinks_when_eog_present():
    fs, n_s = 128, 40
    rng = np.random.default_rng(3)
    t = np.arange(n_s * fs) / fs
    blinks = np.zeros(t.size)
    for onset in rng.uniform(1, n_s - 1, 20):
        blinks += 150 * np.exp(-((t - onset) ** 2) / (2 * 0.08**2))
    weights = np.array([1.0, 0.9, 0.6, 0.55, 0.2, 0.2, 0.05, 0.05, 0.02, 0.02, 0.1, 0.1])
    band = signal.butter(4, [2, 30], "bandpass", fs=fs, output="sos")
    brain = (
        rng.standard_normal((12, 12))
        @ signal.sosfiltfilt(band, rng.standard_normal((12, t.size)))
        * 3
    )
    x = brain + weights[:, None] * blinks
    eog = blinks[None] + rng.standard_normal((1, t.size))
    cfg = PipelineConfig(ica_eog=True, detect_bads=False, reference="none")
    y, report = preprocess_array(x, fs, NAMES, cfg, eog=eog)
    assert report["ica_excluded"]
    fp1_before = np.corrcoef(filter_array(x, fs, cfg)[0], blinks)[0, 1]
    fp1_after = np.corrcoef(y[0], blinks)[0, 1]
    assert fp1_before > 0.6 and abs(fp1_after) < 0.1
    # Without EOG channels the ICA step is skipped, not an error.
    _, report = preprocess_array(x, fs, NAMES, cfg)
    assert report["ica_excluded"] == []


def test_epochs_reject_by_amplitude_and_baseline():
    x = _eeg(30)
    x[2, 10 * FS + 50] += 500  # artifact inside the second epoch
    raw = mne.io.RawArray(x * 1e-6, mne.create_info(NAMES, FS, "eeg"), verbose=False)
    cfg = PipelineConfig(
        epoch_tmin=-1.0,
        epoch_tmax=2.0,
        reject_uv=150,
        baseline="subtract",
        baseline_window=(-1.0, 0.0),
    )
    epochs = make_epochs(raw, [5.0, 10.0, 15.0, 20.0], cfg)
    assert len(epochs) == 3 and epochs.drop_log[1]  # the artifact epoch is dropped
    data = epochs.get_data()
    base = data[..., : FS + 1]  # -1..0 s, both ends included as MNE does
    assert np.allclose(base.mean(axis=-1), 0, atol=1e-12)
    # Array baseline subtraction agrees with MNE's
    raw_epochs = make_epochs(raw, [5.0], PipelineConfig(epoch_tmin=-1.0, epoch_tmax=2.0))
    ours = apply_baseline(raw_epochs.get_data()[0], FS, -1.0, (-1.0, 0.0))
    assert np.allclose(ours, data[0], atol=1e-15)


def test_normalise_to_baseline():
    f = np.array([[2.0, 4.0], [1.0, 0.0]])
    b = np.array([[1.0, 2.0], [1.0, 0.0]])
    assert np.allclose(normalise_to_baseline(f, b, "ratio")[0], [2, 2])
    assert np.isnan(normalise_to_baseline(f, b, "ratio")[1, 1])  # 0/0 -> NaN, not a crash
    assert np.allclose(normalise_to_baseline(f, b, "db")[0], 10 * np.log10(2))
    assert np.allclose(normalise_to_baseline(f, b, "subtract"), f - b)
    with pytest.raises(SignalInputError, match="broadcast"):
        normalise_to_baseline(f, np.ones(3))


def test_preprocess_raw_validates_input():
    with pytest.raises(SignalInputError, match="mne.io.Raw"):
        preprocess_raw(np.zeros((2, 10)), PipelineConfig())
    raw = mne.io.RawArray(np.zeros((1, 100)), mne.create_info(["ECG"], FS, "ecg"), verbose=False)
    with pytest.raises(SignalInputError, match="no EEG"):
        preprocess_raw(raw, PipelineConfig())
    with pytest.raises(SignalInputError, match="Nyquist"):
        design_sos(PipelineConfig(l_freq=None, h_freq=200), FS)


def test_bad_input_classes_in_preprocessing():
    x = _eeg(10)
    # wrong units: volts where microvolts are expected, and microvolts stored in a Raw as volts
    with pytest.warns(SignalQualityWarning, match="looks like volts"):
        preprocess_array(x * 1e-6, FS, NAMES, PipelineConfig(detect_bads=False))
    raw = mne.io.RawArray(x, mne.create_info(NAMES, FS, "eeg"), verbose=False)
    with pytest.warns(SignalQualityWarning, match="looks like microvolts"):
        preprocess_raw(raw, PipelineConfig(detect_bads=False))
    # too short: a clear error below 3 samples, a warning below the high-pass settling time
    with pytest.raises(SignalInputError, match="too few"):
        preprocess_array(x[:, :2], FS, NAMES, PipelineConfig())
    with pytest.warns(SignalQualityWarning, match="settle"):
        preprocess_array(x[:, :FS], FS, NAMES, PipelineConfig(detect_bads=False))
    # wrong rate: a cut-off above Nyquist, or no rate at all
    with pytest.raises(SignalInputError, match="Nyquist"):
        design_sos(PipelineConfig(l_freq=None, h_freq=45), 64)
    with pytest.raises(SignalInputError, match="sampling rate"):
        preprocess_array(x, 0, NAMES, PipelineConfig())
    # shape
    with pytest.raises(SignalInputError, match="labels"):
        preprocess_array(x, FS, NAMES[:-1], PipelineConfig())
    # inf and an all-NaN channel are bad channels, interpolated; the output is finite
    x = x.copy()
    x[1, 50] = np.inf
    x[6] = np.nan
    with pytest.warns(SignalQualityWarning, match="bad channels"):
        y, report = preprocess_array(x, FS, NAMES, PipelineConfig())
    assert {"Fp2", "P3"} <= set(report["bads"]) and np.isfinite(y).all()


def test_montage_pairs_and_positions_from_the_montage_module():
    from physioaffect.features.eeg import dasm, differential_entropy
    from physioaffect.streams.montage import load_montage

    mont = load_montage("deap32")
    x = np.random.default_rng(0).standard_normal((5, len(mont.ch_names), 128)) * 10
    de = differential_entropy(x, 128)
    d = dasm(de, mont.ch_names, mont.pairs)
    idx = mont.pair_indices()
    assert d.shape == (5, len(mont.pairs), 4)
    assert np.allclose(d, de[:, idx[:, 0]] - de[:, idx[:, 1]])
    # Interpolation uses the montage's positions.
    x = np.random.default_rng(1).standard_normal((len(mont.ch_names), 10 * FS)) * 10
    x[3] = 0.0
    with pytest.warns(SignalQualityWarning):
        y, report = preprocess_array(x, FS, mont.ch_names, PipelineConfig(), montage=mont.to_mne())
    assert report["interpolated"] == [mont.ch_names[3]] and y[3].std() > 1
