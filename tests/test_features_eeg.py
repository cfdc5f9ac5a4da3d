"""EEG features against closed forms, independent computations and TorchEEG's definition."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import signal
from scipy.integrate import simpson

from physioaffect.features.eeg import (
    BANDS,
    band_power,
    dasm,
    differential_entropy,
    frontal_alpha_asymmetry,
    hjorth,
    rasm,
)
from physioaffect.preprocessing.quality import SignalInputError, SignalQualityWarning

FS = 128


def _torcheeg_port(eeg: np.ndarray, sampling_rate: int = 128, order: int = 5) -> np.ndarray:
    """Line-by-line port of TorchEEG 1.1.3 BandDifferentialEntropy.apply for one window
    (transforms/numpy/band.py: BandTransform.apply + BandDifferentialEntropy.opt).

    Kept deliberately un-vectorised: one Python loop per band and per channel, as TorchEEG.
    The benchmark also compares against the unmodified TorchEEG source.
    """
    band_dict = {"theta": [4, 8], "alpha": [8, 14], "beta": [14, 31], "gamma": [31, 49]}
    band_list = []
    for low, high in band_dict.values():
        c_list = []
        for c in eeg:
            nyq = 0.5 * sampling_rate
            b, a = signal.butter(order, [low / nyq, high / nyq], btype="band")
            c_list.append(1 / 2 * np.log2(2 * np.pi * np.e * np.var(signal.lfilter(b, a, c))))
        band_list.append(np.array(c_list))
    return np.stack(band_list, axis=-1)


def test_torcheeg_mode_is_bit_identical_to_torcheeg_code():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 14, FS)) * 20  # (subjects, windows, chans, times)
    ours = differential_entropy(x, FS, "torcheeg4", mode="torcheeg", n_jobs=2)
    ref = np.stack([[_torcheeg_port(w) for w in s] for s in x])
    assert ours.shape == (3, 5, 14, 4)
    assert np.array_equal(ours, ref)  # bit for bit, not allclose
    # float32 input (as many loaders give) is bit-identical too
    x32 = x[0].astype(np.float32)
    assert np.array_equal(
        differential_entropy(x32, FS, mode="torcheeg"), np.stack([_torcheeg_port(w) for w in x32])
    )


def test_band_presets():
    assert [b[0] for b in BANDS["torcheeg4"]] == ["theta", "alpha", "beta", "gamma"]
    assert BANDS["torcheeg4"][1][1:] == (8.0, 14.0)
    assert len(BANDS["seed5"]) == 5 and len(BANDS["emt7"]) == 7
    for bands in BANDS.values():
        assert all(lo < hi for _, lo, hi in bands)


def _enbw_filtfilt(lo: float, hi: float, fs: float, order: int = 4) -> float:
    """Noise bandwidth in Hz of the zero-phase Butterworth (|H|^4 integrated over 0..fs/2)."""
    sos = signal.butter(order, [lo, hi], btype="bandpass", fs=fs, output="sos")
    f, h = signal.sosfreqz(sos, worN=1 << 16, fs=fs)
    return float(np.trapezoid(np.abs(h) ** 4, f))


def test_de_of_white_noise_matches_closed_form():
    rng = np.random.default_rng(1)
    sigma = 7.0
    x = rng.standard_normal((64, 60 * FS)) * sigma  # 64 channels x 60 s
    de = differential_entropy(x, FS, "torcheeg4", mode="ln")
    for k, (_, lo, hi) in enumerate(BANDS["torcheeg4"]):
        # White noise of variance s^2 has PSD s^2/(fs/2) per Hz on 0..fs/2.
        var = sigma**2 * _enbw_filtfilt(lo, hi, FS) / (FS / 2)
        expected = 0.5 * np.log(2 * np.pi * np.e * var)
        assert abs(np.mean(de[:, k]) - expected) < 0.01
    # Unfiltered closed form through an all-pass-like wide band is the Gaussian entropy:
    # DE scales as ln(sigma): doubling sigma adds ln 2 exactly.
    de2 = differential_entropy(2 * x, FS, "torcheeg4", mode="ln")
    assert np.allclose(de2 - de, np.log(2), atol=1e-9)


def test_10hz_sine_peaks_in_alpha():
    t = np.arange(4 * FS) / FS
    rng = np.random.default_rng(2)
    x = 20 * np.sin(2 * np.pi * 10 * t) + rng.standard_normal((3, t.size))
    for preset in ("seed5", "torcheeg4", "emt7"):
        names = [b[0] for b in BANDS[preset]]
        bp = band_power(x, FS, preset)
        assert np.all(np.argmax(bp, axis=-1) == names.index("alpha"))
        de = differential_entropy(x, FS, preset)
        assert np.all(np.argmax(de, axis=-1) == names.index("alpha"))
    rel = band_power(x, FS, "emt7", relative=True)
    assert np.all(rel[..., 2] > 0.8)  # alpha holds most of the power
    assert np.all(rel.sum(-1) <= 1.0 + 1e-9)
    # Absolute band power of a sine of amplitude A is A^2/2. EmT integrates the Hann-windowed
    # Welch PSD with Simpson's rule, whose 4/3, 2/3, 4/3 weights on the peak bins (Hann
    # leakage 1/6, 2/3, 1/6) give 8/9 of it for a sine centred on an even Simpson node.
    assert np.allclose(bp[..., 2], 8 / 9 * 20**2 / 2, rtol=0.02)


def test_band_power_matches_emt_reference_computation():
    """EmT: welch(nperseg=fs) per window, Simpson over lo<=f<=hi, / Simpson over all bins."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 2 * FS)) * 10
    ours = band_power(x, FS, "emt7", relative=True)
    for w in range(4):
        freqs, psd = signal.welch(x[w], FS, nperseg=FS)
        df = freqs[1] - freqs[0]
        for k, (_, lo, hi) in enumerate(BANDS["emt7"]):
            idx = (freqs >= lo) & (freqs <= hi)
            ref = simpson(psd[:, idx], dx=df) / simpson(psd, dx=df)
            assert np.allclose(ours[w, :, k], ref, rtol=1e-12)


def test_vectorised_over_windows_equals_one_window_at_a_time():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 5, 2 * FS)) * 10  # 2 s: two cycles of delta's 1 Hz
    for fn in (
        lambda a: differential_entropy(a, FS, "seed5"),
        lambda a: band_power(a, FS, "seed5"),
        lambda a: hjorth(a),
    ):
        batch = fn(x)
        single = np.stack([fn(w) for w in x])
        assert np.allclose(batch, single, rtol=1e-12, atol=0)


def test_hjorth_of_a_sine_matches_closed_form():
    f = 6.0
    t = np.arange(20 * FS) / FS
    x = np.sin(2 * np.pi * f * t)[None]
    act, mob, comp = hjorth(x)[0]
    assert act == pytest.approx(0.5, rel=1e-3)
    # Mobility of a sampled sine: sqrt(var(diff)/var(x)) = 2 sin(pi f / fs).
    assert mob == pytest.approx(2 * np.sin(np.pi * f / FS), rel=1e-3)
    assert comp == pytest.approx(1.0, abs=1e-2)


def test_faa_dasm_rasm_follow_the_asymmetry():
    ch = ["F3", "F4", "O1", "O2"]
    pairs = [("F3", "F4"), ("O1", "O2")]
    t = np.arange(10 * FS) / FS
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, t.size))
    alpha = np.sin(2 * np.pi * 10 * t)
    x[0] += 5 * alpha  # F3 (left): strong alpha
    x[1] += 10 * alpha  # F4 (right): twice the amplitude: 4x the power
    faa = frontal_alpha_asymmetry(x, FS, ch, [("F3", "F4")])
    assert faa.shape == (1,)
    assert faa[0] == pytest.approx(np.log(4), abs=0.1)
    de = differential_entropy(x, FS, "torcheeg4")
    d = dasm(de, ch, pairs)
    assert d.shape == (2, 4)
    assert np.allclose(d, de[[0, 2]] - de[[1, 3]])
    assert d[0, 1] == pytest.approx(-np.log(2), abs=0.1)  # 0.5*ln(power ratio 1/4)
    assert np.allclose(rasm(de, ch, pairs), de[[0, 2]] / de[[1, 3]])
    with pytest.raises(SignalInputError, match="Cz"):
        dasm(de, ch, [("Cz", "F4")])


# ------------------------------------------------------------------ bad input


def _good(n_win: int = 6) -> np.ndarray:
    return np.random.default_rng(6).standard_normal((n_win, 4, FS)) * 10


@pytest.mark.parametrize(
    "corrupt,reason",
    [
        (lambda w: w.__setitem__((1, 2, 5), np.nan), "NaN"),
        (lambda w: w.__setitem__((1, 2, 5), np.inf), "NaN/inf"),
        (lambda w: w.__setitem__((1, 2), 3.0), "flat"),
        (lambda w: w.__setitem__((1, 2), np.clip(w[1, 2], -5, 5)), "clipped"),
    ],
)
def test_bad_windows_give_nan_with_a_reason(corrupt, reason):
    w = _good()
    corrupt(w)
    for fn in (
        lambda a: differential_entropy(a, FS, mode="torcheeg"),
        lambda a: differential_entropy(a, FS),
        lambda a: band_power(a, FS, "torcheeg4", relative=True),
        hjorth,
    ):
        with pytest.warns(SignalQualityWarning, match=reason):
            out = fn(w)
        assert np.isnan(out[1, 2]).all()
        assert np.isfinite(np.delete(out.reshape(-1, out.shape[-1]), 1 * 4 + 2, axis=0)).all()


def test_eeg_in_volts_gives_nan_with_the_reason():
    """One rule for every EEG feature: amplitude that contradicts the unit is NaN, not a
    number 1e12 too small."""
    for fn in (
        lambda a, **k: differential_entropy(a, FS, **k),
        lambda a, **k: band_power(a, FS, "torcheeg4", **k),
    ):
        with pytest.warns(SignalQualityWarning, match="looks like volts"):
            assert np.isnan(fn(_good() * 1e-6)).all()
        with pytest.warns(SignalQualityWarning, match="looks like microvolts"):
            assert np.isnan(fn(_good(), units="V")).all()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert np.isfinite(fn(_good())).all()  # microvolt-scale data: no warning


def test_short_eeg_windows_give_nan_with_the_minimum_stated():
    """A band needs 2 cycles of its lower edge; Welch band power also one full 1 s segment."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, int(1.5 * FS))) * 10  # two 1.5 s windows
    with pytest.warns(SignalQualityWarning, match=r"1.5 s is too short for delta \(2 s\)"):
        de = differential_entropy(x, FS, "seed5")
    assert np.isnan(de[..., 0]).all() and np.isfinite(de[..., 1:]).all()  # theta from 4 Hz: 0.5 s
    with pytest.warns(SignalQualityWarning, match="too short for delta"):
        bp = band_power(x, FS, "seed5")
    assert np.isnan(bp[..., 0]).all() and np.isfinite(bp[..., 1:]).all()
    twelve = x[..., :12]  # 12 samples: shorter than every band and than a Welch segment
    for fn in (lambda a: differential_entropy(a, FS, "torcheeg4"), lambda a: band_power(a, FS)):
        with pytest.warns(SignalQualityWarning, match="too short"):
            assert np.isnan(fn(twelve)).all()
    with pytest.warns(SignalQualityWarning, match="3 needed"):
        assert np.isnan(hjorth(x[..., :2])).all()
    # exactly two cycles is enough: a 2 s window keeps delta from 1 Hz
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(differential_entropy(rng.standard_normal((4, 2 * FS)), FS, "seed5")).all()


def test_caller_errors_are_clear():
    with pytest.raises(SignalInputError, match="Nyquist"):
        differential_entropy(_good(), 64, "torcheeg4")  # gamma 31-49 Hz at 64 Hz: wrong rate
    with pytest.raises(SignalInputError, match="sampling rate"):
        band_power(_good(), -128)
    with pytest.raises(SignalInputError, match="dimensions"):
        differential_entropy(np.zeros(128), FS)
    with pytest.raises(SignalInputError, match="no samples"):
        differential_entropy(np.zeros((2, 0)), FS)
    with pytest.raises(SignalInputError, match="unknown preset"):
        band_power(_good(), FS, "seed7")
    with pytest.raises(SignalInputError, match="mode"):
        differential_entropy(_good(), FS, mode="log10")
    with pytest.raises(SignalInputError, match="numeric"):
        hjorth(np.array([["a", "b", "c"]]))
