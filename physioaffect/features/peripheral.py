"""Peripheral physiology features through NeuroKit2, wrapped so that bad input never crashes.

NeuroKit2 style: ``signal, sampling_rate -> (features, info)``. ``features`` is a dict of
floats (NaN where not computable); ``info`` holds the detected events (sample indices), the
cleaned signal and ``info["reasons"]``, the list of reasons why features are NaN (also emitted as
one :class:`~physioaffect.preprocessing.quality.SignalQualityWarning`).

Every wrapper first checks the sampling rate against what the modality needs, the length, NaN
runs (short runs are interpolated, long ones are not), inf, flat lines and clipping, then calls
only the NeuroKit2 steps it needs (cleaning and peak detection: no ECG delineation, which is
what makes ``ecg_process`` slow), and finally checks that the result is physiological (a heart
rate of 400 bpm means a wrong sampling rate or the wrong channel).

Each modality is two steps, so that one recording is processed once and summarised per window
(see :mod:`physioaffect.features.windows`): :func:`process` finds the events on the whole signal,
:func:`summarise` computes the features of the events inside ``[start, stop)`` samples.

Units: ECG in millivolts (any scale works for peaks), EDA in microsiemens, PPG in arbitrary
units, respiration in arbitrary units, temperature in degrees Celsius. Rates are per minute,
durations in seconds, HRV in milliseconds.

Quality: :func:`window_quality` scores every window (0-1, with reasons; criteria in
:mod:`physioaffect.features.quality`) and :func:`evaluate` applies the gate. The feature
functions (``ecg_features`` ...) take ``quality_threshold`` (default 0.5) and ``low_quality``:
``"nan"`` (default) makes the features of a window below the threshold NaN with the reasons in
``info["reasons"]``; ``"flag"`` keeps them. ``info["quality"]`` and ``info["quality_reasons"]``
hold the score and the failed criteria either way.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from physioaffect.features import quality as sqi
from physioaffect.preprocessing.quality import (
    SignalInputError,
    as_signal_array,
    check_sfreq,
    fill_short_nan_runs,
    signal_problems,
    warn_quality,
)
from physioaffect.streams.signals import SIGNAL_ALIASES, canonical_signal

__all__ = [
    "MODALITIES",
    "ecg_rpeaks",
    "ecg_features",
    "eda_features",
    "ppg_features",
    "rsp_features",
    "temp_features",
    "process",
    "summarise",
    "window_quality",
    "evaluate",
    "feature_names",
    "quality_columns",
    "SCR_MIN_AMPLITUDE_US",
    "scr_peaks",
]


@dataclass(frozen=True)
class _Spec:
    min_rate: float  # Hz below which NeuroKit2's filters cannot work
    min_seconds: float  # shortest window that gives meaningful features
    clip_fraction: float
    features: tuple[str, ...]
    plausible: dict[str, tuple[float, float]]  # feature -> physiological range
    process: Callable[[np.ndarray, float], dict]
    summarise: Callable[[dict, float, int, int], dict]
    quality: Callable[[dict, float, int, int], list]  # -> list of sqi.Criterion


def _nk():
    import neurokit2 as nk  # imported lazily: it takes a second and pulls pandas/matplotlib

    return nk


# --------------------------------------------------------------------------- helpers


def _intervals(
    peaks: np.ndarray, start: int, stop: int, fs: float, lo_s: float, hi_s: float
) -> np.ndarray:
    """Inter-event intervals (s) of consecutive events inside [start, stop), outliers dropped."""
    p = peaks[(peaks >= start) & (peaks < stop)]
    iv = np.diff(p) / fs
    return iv[(iv >= lo_s) & (iv <= hi_s)]


def _amplitudes(x: np.ndarray, peaks: np.ndarray, troughs: np.ndarray) -> np.ndarray:
    """Peak value minus the value of the nearest preceding trough, per peak."""
    if peaks.size == 0 or troughs.size == 0:
        return np.zeros(0)
    j = np.searchsorted(troughs, peaks) - 1
    ok = j >= 0
    return x[peaks[ok]] - x[troughs[j[ok]]]


def _troughs_between(x: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Index of the minimum between consecutive peaks (the pulse foot for PPG)."""
    if peaks.size < 2:
        return np.zeros(0, dtype=int)
    return np.array(
        [a + int(np.argmin(x[a:b])) for a, b in zip(peaks[:-1], peaks[1:], strict=True)]
    )


def _mean(v: np.ndarray) -> float:
    return float(np.mean(v)) if v.size else float("nan")


def _slope_per_s(x: np.ndarray, fs: float) -> float:
    n = x.size
    if n < 2:
        return float("nan")
    t = np.arange(n) / fs
    t = t - t.mean()
    return float(np.dot(t, x - x.mean()) / np.dot(t, t))


# --------------------------------------------------------------------------- ECG


def _ecg_process(x: np.ndarray, fs: float) -> dict:
    nk = _nk()
    cleaned = nk.ecg_clean(x, sampling_rate=fs, method="neurokit")
    _, info = nk.ecg_peaks(cleaned, sampling_rate=fs, method="neurokit", correct_artifacts=False)
    return {"raw": x, "cleaned": np.asarray(cleaned),
            "peaks": np.asarray(info["ECG_R_Peaks"], dtype=int)}


def _ecg_summarise(ev: dict, fs: float, start: int, stop: int) -> dict:
    rr = _intervals(ev["peaks"], start, stop, fs, 60 / 250, 60 / 25)
    out = dict.fromkeys(_ECG_FEATURES, float("nan"))
    if rr.size >= 2:
        nn = rr * 1000.0
        sd = np.diff(nn)
        out.update(
            ECG_Rate_Mean=float(np.mean(60.0 / rr)),
            ECG_Rate_SD=float(np.std(60.0 / rr, ddof=1)),
            HRV_MeanNN=float(np.mean(nn)),
            HRV_SDNN=float(np.std(nn, ddof=1)),
            HRV_RMSSD=float(np.sqrt(np.mean(sd**2))),
            # Task Force definition: NN50 count over the number of NN intervals.
            HRV_pNN50=float(np.sum(np.abs(sd) > 50) / nn.size * 100),
        )
    # Frequency-domain HRV needs minutes of beats: LF (0.04-0.15 Hz) is meaningless in 10 s.
    if (stop - start) / fs >= 60 and rr.size >= 30:
        p = ev["peaks"][(ev["peaks"] >= start) & (ev["peaks"] < stop)]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hf = _nk().hrv_frequency(p - start, sampling_rate=fs, normalize=False)
            for key in ("HRV_LF", "HRV_HF", "HRV_LFHF"):
                out[key] = float(hf[key].iloc[0])
        except Exception:  # noqa: BLE001 - NaN is the documented outcome for this window
            pass
    return out


def _ecg_quality(ev: dict, fs: float, start: int, stop: int) -> list:
    out = sqi.raw_window_criteria(ev["raw"][start:stop], 0.05)
    if out:
        return out
    out = sqi.beat_criteria(ev["cleaned"], ev["peaks"], fs, start, stop, "ECG")
    k = sqi.kurtosis(ev["cleaned"][start:stop])
    out.append((sqi.score_at_least(k, sqi.KURTOSIS_MIN, 2 * sqi.KURTOSIS_MIN),
                f"kurtosis {k:.1f} (under {sqi.KURTOSIS_MIN:g}: noise, not QRS complexes)"))
    return out


_ECG_FEATURES = (
    "ECG_Rate_Mean",
    "ECG_Rate_SD",
    "HRV_MeanNN",
    "HRV_SDNN",
    "HRV_RMSSD",
    "HRV_pNN50",
    "HRV_LF",
    "HRV_HF",
    "HRV_LFHF",
)

# --------------------------------------------------------------------------- EDA


#: Smallest skin-conductance response counted, µS (trough to peak of the phasic signal).
#: Minimum amplitude criteria of 0.01-0.05 µS are in use (Dawson, Schell & Filion 2017, "The
#: electrodermal system", Handbook of Psychophysiology, 4th ed.; Boucsein et al. 2012,
#: "Publication recommendations for electrodermal measurements", Psychophysiology
#: 49:1017-1034); 0.05 µS, the upper end, is the one for recordings whose noise or resolution
#: reaches 0.01-0.02 µS (a 12-bit PLUX/BITalino EDA sensor steps by 0.006 µS, and counting from
#: 0.01 µS there finds 12 "responses" a minute in its quantisation noise). NeuroKit2's
#: ``amplitude_min=0.1`` is relative to the largest response in the signal, so a calm recording
#: turns its noise into responses.
SCR_MIN_AMPLITUDE_US = 0.05
_EDA_RATE = 16.0  # Hz: EDA is low-passed at 3 Hz, so 16 Hz holds it without aliasing
_SCR_MAX_RISE_S = 5.0  # onset searched at most this long before the peak (rise 0.5-5 s)


def _eda_process(x: np.ndarray, fs: float) -> dict:
    from scipy import signal as sps

    # NeuroKit2's eda_clean("neurokit"), the same filter: 4th-order Butterworth low-pass at
    # 3 Hz, zero phase (skipped below 7 Hz, as NeuroKit2 does at <= 6 Hz)
    if fs > 7.0:
        sos = sps.butter(4, 3.0, btype="lowpass", output="sos", fs=fs)
        cleaned = sps.sosfiltfilt(sos, x)
    else:
        cleaned = x.copy()
    # The phasic split and the response search run at ~16 Hz: below 3 Hz nothing is lost, and
    # a 0.05 Hz high-pass and the peak search are 16-60x cheaper than at 256-1000 Hz.
    q = max(1, int(fs // _EDA_RATE))
    low = cleaned[::q]
    fs_low = fs / q
    # NeuroKit2's eda_phasic("highpass") (Biopac's method): 5th-order Butterworth at 0.05 Hz
    sos_hp = sps.butter(5, 0.05, btype="highpass", output="sos", fs=fs_low)
    if low.size > 3 * (2 * sos_hp.shape[0] + 1):
        phasic = sps.sosfiltfilt(sos_hp, low)
    else:
        phasic = low - low.mean()
    peaks, onsets, amplitude = scr_peaks(phasic, fs_low, SCR_MIN_AMPLITUDE_US)
    return {
        "raw": x,
        "cleaned": cleaned,
        "phasic": np.repeat(phasic, q)[: x.size],
        "invalid": sqi.eda_invalid_mask(cleaned, fs),
        "peaks": peaks * q,
        "onsets": onsets * q,
        "amplitude": amplitude,
        "rise_time": (peaks - onsets) / fs_low,
    }


def scr_peaks(
    phasic: np.ndarray, fs: float, min_amplitude: float = SCR_MIN_AMPLITUDE_US
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Skin-conductance responses of a phasic EDA signal, with an absolute amplitude threshold.

    A response is a peak of the phasic signal that rises at least ``min_amplitude`` µS above
    its onset: the lowest point in the ``5 s`` before it and after the previous response's
    peak. Candidates are the peaks whose prominence reaches the threshold
    (:func:`scipy.signal.find_peaks`), so noise wiggles on a rising response do not split it.

    Parameters
    ----------
    phasic : ndarray, shape (n_times,)
        Phasic EDA in µS (high-passed, e.g. at 0.05 Hz).
    fs : float
        Hz.
    min_amplitude : float
        µS, trough to peak (:data:`SCR_MIN_AMPLITUDE_US`).

    Returns
    -------
    peaks, onsets : ndarray of int
        Sample indices.
    amplitude : ndarray
        µS, peak minus onset.
    """
    from scipy import signal as sps

    win = int(round(_SCR_MAX_RISE_S * fs))
    cand, _ = sps.find_peaks(phasic, prominence=min_amplitude, wlen=4 * win + 1)
    peaks, onsets, amps = [], [], []
    last = 0
    for p in cand:
        lo = max(last, p - win)
        if p - lo < 2:
            continue
        o = lo + int(np.argmin(phasic[lo:p]))
        amp = float(phasic[p] - phasic[o])
        if amp >= min_amplitude:
            peaks.append(int(p))
            onsets.append(o)
            amps.append(amp)
            last = int(p)
    return (np.asarray(peaks, dtype=int), np.asarray(onsets, dtype=int),
            np.asarray(amps, dtype=float))


def _eda_quality(ev: dict, fs: float, start: int, stop: int) -> list:
    out = sqi.raw_window_criteria(ev["raw"][start:stop], 0.1)
    return out or sqi.eda_criteria(ev["cleaned"], ev["invalid"], start, stop)


def _eda_summarise(ev: dict, fs: float, start: int, stop: int) -> dict:
    sel = (ev["peaks"] >= start) & (ev["peaks"] < stop)
    dur_min = (stop - start) / fs / 60.0
    cleaned = ev["cleaned"][start:stop]
    return {
        "EDA_Tonic_Mean": float(np.mean(cleaned)) if cleaned.size else float("nan"),
        "EDA_Tonic_Slope": _slope_per_s(cleaned, fs),
        "SCR_Peaks_N": float(sel.sum()),
        "SCR_Peaks_Rate": float(sel.sum() / dur_min) if dur_min > 0 else float("nan"),
        "SCR_Amplitude_Mean": _mean(ev["amplitude"][sel]),
        "SCR_RiseTime_Mean": _mean(ev["rise_time"][sel]),
    }


_EDA_FEATURES = (
    "EDA_Tonic_Mean",
    "EDA_Tonic_Slope",
    "SCR_Peaks_N",
    "SCR_Peaks_Rate",
    "SCR_Amplitude_Mean",
    "SCR_RiseTime_Mean",
)

# --------------------------------------------------------------------------- PPG


def _ppg_process(x: np.ndarray, fs: float) -> dict:
    nk = _nk()
    cleaned = np.asarray(nk.ppg_clean(x, sampling_rate=fs, method="elgendi"))
    info = nk.ppg_findpeaks(cleaned, sampling_rate=fs, method="elgendi")
    peaks = np.asarray(info["PPG_Peaks"], dtype=int)
    return {"raw": x, "cleaned": cleaned, "peaks": peaks,
            "troughs": _troughs_between(cleaned, peaks)}


def _ppg_quality(ev: dict, fs: float, start: int, stop: int) -> list:
    out = sqi.raw_window_criteria(ev["raw"][start:stop], 0.05)
    return out or sqi.beat_criteria(ev["cleaned"], ev["peaks"], fs, start, stop, "PPG")


def _ppg_summarise(ev: dict, fs: float, start: int, stop: int) -> dict:
    ibi = _intervals(ev["peaks"], start, stop, fs, 60 / 250, 60 / 25)
    p = ev["peaks"][(ev["peaks"] >= start) & (ev["peaks"] < stop)]
    amp = _amplitudes(ev["cleaned"], p, ev["troughs"])
    return {
        "PPG_Rate_Mean": float(np.mean(60.0 / ibi)) if ibi.size >= 1 else float("nan"),
        "PPG_Rate_SD": float(np.std(60.0 / ibi, ddof=1)) if ibi.size >= 2 else float("nan"),
        "PPG_Amplitude_Mean": _mean(amp),
    }


_PPG_FEATURES = ("PPG_Rate_Mean", "PPG_Rate_SD", "PPG_Amplitude_Mean")

# --------------------------------------------------------------------------- respiration


def _rsp_process(x: np.ndarray, fs: float) -> dict:
    nk = _nk()
    cleaned = np.asarray(nk.rsp_clean(x, sampling_rate=fs, method="khodadad2018"))
    _, info = nk.rsp_peaks(cleaned, sampling_rate=fs, method="khodadad2018")
    return {
        "raw": x,
        "cleaned": cleaned,
        "peaks": np.asarray(info["RSP_Peaks"], dtype=int),
        "troughs": np.asarray(info["RSP_Troughs"], dtype=int),
    }


def _breath_intervals(peaks: np.ndarray, fs: float, start: int, stop: int) -> np.ndarray:
    """Breath intervals (s) that overlap ``[start, stop)``: the breaths inside plus the one
    before and the one after the window, when within the longest breath (20 s) of its edges.

    A 10 s window holds only one or two breaths at rest (12-20 per minute); the intervals
    across its edges give the rate of the breaths the window is part of.
    """
    reach = int(round(20.0 * fs))
    i0 = int(np.searchsorted(peaks, start, side="left"))
    i1 = int(np.searchsorted(peaks, stop, side="left"))
    if i0 > 0 and peaks[i0 - 1] >= start - reach:
        i0 -= 1
    if i1 < peaks.size and peaks[i1] < stop + reach:
        i1 += 1
    iv = np.diff(peaks[i0:i1]) / fs
    return iv[(iv >= 1.0) & (iv <= 20.0)]  # 3-60 breaths per minute


def _rsp_summarise(ev: dict, fs: float, start: int, stop: int) -> dict:
    iv = _breath_intervals(ev["peaks"], fs, start, stop)
    p = ev["peaks"][(ev["peaks"] >= start) & (ev["peaks"] < stop)]
    amp = _amplitudes(ev["cleaned"], p, ev["troughs"])
    return {
        "RSP_Rate_Mean": float(60.0 / np.mean(iv)) if iv.size >= 1 else float("nan"),
        "RSP_Amplitude_Mean": _mean(amp),
    }


def _rsp_quality(ev: dict, fs: float, start: int, stop: int) -> list:
    out = sqi.raw_window_criteria(ev["raw"][start:stop], 0.1)
    if out:
        return out
    n = _breath_intervals(ev["peaks"], fs, start, stop).size
    return [(1.0 if n >= 1 else 0.0, "no breath interval in reach of the window (20 s)")]


_RSP_FEATURES = ("RSP_Rate_Mean", "RSP_Amplitude_Mean")

# --------------------------------------------------------------------------- temperature


def _temp_process(x: np.ndarray, fs: float) -> dict:
    return {"raw": x, "cleaned": x}


def _temp_quality(ev: dict, fs: float, start: int, stop: int) -> list:
    # a steady skin temperature is a good reading: no flatness test here, only range and NaN
    seg = ev["raw"][start:stop]
    if seg.size == 0 or not np.isfinite(seg).all():
        return [(0.0, "NaN or empty window")]
    m = float(np.mean(seg))
    return [(min(sqi.score_at_least(m, 20, 30), sqi.score_at_most(m, 45, 37)),
             f"mean {m:.1f} °C outside the 20-45 °C of skin")]


def _temp_summarise(ev: dict, fs: float, start: int, stop: int) -> dict:
    seg = ev["cleaned"][start:stop]
    return {
        "TEMP_Mean": float(np.mean(seg)) if seg.size else float("nan"),
        "TEMP_Slope": _slope_per_s(seg, fs) * 60.0,  # degrees C per minute
    }


_TEMP_FEATURES = ("TEMP_Mean", "TEMP_Slope")

MODALITIES: dict[str, _Spec] = {
    "ECG": _Spec(
        64.0, 4.0, 0.05, _ECG_FEATURES, {"ECG_Rate_Mean": (25, 250)}, _ecg_process,
        _ecg_summarise, _ecg_quality,
    ),
    # EDA and temperature change slowly: a level held for a while is not yet clipping.
    "EDA": _Spec(8.0, 5.0, 0.1, _EDA_FEATURES, {}, _eda_process, _eda_summarise, _eda_quality),
    "PPG": _Spec(
        25.0, 6.0, 0.05, _PPG_FEATURES, {"PPG_Rate_Mean": (25, 250)}, _ppg_process,
        _ppg_summarise, _ppg_quality,
    ),
    "RESP": _Spec(
        10.0, 10.0, 0.1, _RSP_FEATURES, {"RSP_Rate_Mean": (3, 60)}, _rsp_process,
        _rsp_summarise, _rsp_quality,
    ),
    "TEMP": _Spec(
        0.1, 10.0, 0.25, _TEMP_FEATURES, {"TEMP_Mean": (20, 45)}, _temp_process,
        _temp_summarise, _temp_quality,
    ),
}
def _spec(modality: str) -> tuple[str, _Spec]:
    key = canonical_signal(modality)
    if key not in MODALITIES:
        raise SignalInputError(
            f"modality: expected one of {sorted(MODALITIES)} (or {sorted(SIGNAL_ALIASES)}), "
            f"got {modality!r}"
        )
    return key, MODALITIES[key]


def feature_names(modality: str) -> tuple[str, ...]:
    """Names of the features :func:`summarise` returns for ``modality``."""
    return _spec(modality)[1].features


def quality_columns(modality: str) -> tuple[str, str]:
    """Names of the quality columns of a modality in feature tables.

    ``<MOD>_Quality`` (float 0-1, see :mod:`physioaffect.features.quality`; below the
    threshold, 0.5 by default, the window failed a criterion) and ``<MOD>_Quality_Reasons``
    (str, the failed criteria joined by "; ", empty when none failed).
    """
    name, _ = _spec(modality)
    return f"{name}_Quality", f"{name}_Quality_Reasons"


def _as_1d(signal: object) -> np.ndarray:
    arr = as_signal_array(signal, "signal", min_ndim=1, max_ndim=2)
    if arr.ndim == 2:
        if 1 not in arr.shape:
            raise SignalInputError(
                f"signal: expected one channel (n_times,), got shape {arr.shape}"
            )
        arr = arr.reshape(-1)
    return np.asarray(arr, dtype=np.float64)


def process(
    modality: str, signal: object, sampling_rate: float, *, min_seconds: float | None = None
) -> tuple[dict, list[str]]:
    """Check a whole signal and detect its events once.

    Parameters
    ----------
    modality : {"ECG", "EDA", "PPG", "RESP", "TEMP"}
        Also accepts "GSR", "RSP", "BVP", "SKT".
    signal : array_like, shape (n_times,)
    sampling_rate : float
        Hz.
    min_seconds : float, optional
        Shortest acceptable duration; defaults to the modality's.

    Returns
    -------
    events : dict
        ``cleaned`` signal and event sample indices (``peaks``, ``troughs``, ``onsets`` ...);
        empty when the signal is unusable.
    reasons : list of str
        Why the signal is unusable (empty when it is usable).

    Raises
    ------
    SignalInputError
        Wrong shape or an invalid sampling rate (caller errors); data problems never raise.
    """
    name, spec = _spec(modality)
    x = _as_1d(signal)
    fs = check_sfreq(sampling_rate, "sampling_rate")
    reasons: list[str] = []
    if fs < spec.min_rate:
        reasons.append(f"sampling rate {fs:g} Hz is below the {spec.min_rate:g} Hz {name} needs")
    x, nan_reasons = fill_short_nan_runs(x, fs)
    reasons += nan_reasons
    if not nan_reasons:
        reasons += signal_problems(
            x,
            fs,
            min_seconds=spec.min_seconds if min_seconds is None else min_seconds,
            clip_fraction=spec.clip_fraction,
        )
    if reasons:
        return {}, reasons
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NeuroKit2's own warnings are replaced by ours
            events = spec.process(x, fs)
    except Exception as err:  # noqa: BLE001 - turned into a NaN result with the reason
        return {}, [f"neurokit2 could not process the {name} signal ({type(err).__name__}: {err})"]
    return events, []


def summarise(
    modality: str, events: dict, sampling_rate: float, start: int = 0, stop: int | None = None
) -> tuple[dict, list[str]]:
    """Features of the events inside samples ``[start, stop)``.

    Returns the feature dict (NaN where not computable) and the reasons for implausible
    values, which are set to NaN (e.g. a heart rate outside 25-250 bpm).
    """
    _, spec = _spec(modality)
    if not events:
        return dict.fromkeys(spec.features, float("nan")), []
    n = events["cleaned"].size
    stop = n if stop is None else min(int(stop), n)
    feats = spec.summarise(events, float(sampling_rate), max(int(start), 0), stop)
    reasons = []
    for key, (lo, hi) in spec.plausible.items():
        v = feats.get(key, float("nan"))
        if np.isfinite(v) and not lo <= v <= hi:
            reasons.append(
                f"{key}={v:.1f} outside the physiological {lo:g}-{hi:g}; wrong sampling rate or channel?"
            )
            # An implausible rate invalidates everything derived from the same events.
            feats = dict.fromkeys(feats, float("nan"))
    return feats, reasons


def window_quality(
    modality: str, events: dict, sampling_rate: float, start: int = 0, stop: int | None = None
) -> tuple[float, list[str]]:
    """Signal-quality index of samples ``[start, stop)``: a score in 0-1 and the failed criteria.

    See :mod:`physioaffect.features.quality` for the criteria per modality. A signal that
    :func:`process` rejected (no events) scores 0.
    """
    _, spec = _spec(modality)
    if not events:
        return 0.0, []
    n = events["cleaned"].size
    stop = n if stop is None else min(int(stop), n)
    return sqi.combine(spec.quality(events, float(sampling_rate), max(int(start), 0), stop))


def evaluate(
    modality: str,
    events: dict,
    sampling_rate: float,
    start: int = 0,
    stop: int | None = None,
    *,
    quality_threshold: float = sqi.QUALITY_THRESHOLD,
    low_quality: str = "nan",
) -> tuple[dict, float, list[str]]:
    """Features, quality score and reasons of one window, the quality gate applied.

    Parameters
    ----------
    quality_threshold : float
        Score (0-1) below which the window counts as low quality.
    low_quality : {"nan", "flag"}
        ``"nan"``: the features of a low-quality window are NaN (the reasons say why);
        ``"flag"``: they are kept, and the score and reasons flag them.

    Returns
    -------
    features : dict
    score : float
        0-1; 0 when the signal was unusable or a value implausible.
    reasons : list of str
        Implausible values and failed quality criteria.
    """
    feats, implausible = summarise(modality, events, sampling_rate, start, stop)
    score, reasons = window_quality(modality, events, sampling_rate, start, stop)
    if implausible:
        score, reasons = 0.0, implausible + reasons
    if score < quality_threshold and low_quality == "nan":
        feats = dict.fromkeys(feats, float("nan"))
    return feats, score, reasons


def _features(
    modality: str, signal: object, sampling_rate: float, quality_threshold: float,
    low_quality: str,
) -> tuple[dict, dict]:
    name, _ = _spec(modality)
    sqi.check_low_quality(low_quality, quality_threshold)
    events, reasons = process(name, signal, sampling_rate)
    feats, score, why = evaluate(name, events, sampling_rate, quality_threshold=quality_threshold,
                                 low_quality=low_quality)
    if score < quality_threshold and low_quality == "nan":
        reasons = reasons + [r for r in why if r not in reasons]
    if not reasons and all(np.isnan(v) for v in feats.values()):
        n_events = len(events.get("peaks", ()))
        reasons = [
            f"no usable {name} events ({n_events} detected, none at a physiological rate; "
            "wrong sampling rate or channel?)"
        ]
    warn_quality(f"{name.lower()}_features", reasons, stacklevel=4)
    info = {"reasons": reasons, "quality": score, "quality_reasons": why,
            "sampling_rate": float(sampling_rate), **events}
    info.pop("raw", None)
    return feats, info


def ecg_rpeaks(signal: object, sampling_rate: float) -> np.ndarray:
    """R-peak sample indices of an ECG (NeuroKit2 ``ecg_clean`` + ``ecg_peaks``, method "neurokit").

    Parameters
    ----------
    signal : array_like, shape (n_times,)
        ECG, any unit.
    sampling_rate : float
        Hz (64 Hz or more).

    Returns
    -------
    ndarray of int, shape (n_peaks,)
        Empty (with a warning saying why) when the signal is unusable.
    """
    events, reasons = process("ECG", signal, sampling_rate)
    warn_quality("ecg_rpeaks", reasons)
    return events.get("peaks", np.zeros(0, dtype=int))


def ecg_features(
    signal: object, sampling_rate: float, *, quality_threshold: float = sqi.QUALITY_THRESHOLD,
    low_quality: str = "nan",
) -> tuple[dict, dict]:
    """Heart rate and HRV of one ECG window.

    Returns ``(features, info)``: ``ECG_Rate_Mean``/``_SD`` (bpm), ``HRV_MeanNN``, ``HRV_SDNN``,
    ``HRV_RMSSD`` (ms), ``HRV_pNN50`` (%) from 3 or more beats; ``HRV_LF``, ``HRV_HF`` (ms^2),
    ``HRV_LFHF`` only for windows of 60 s or more. ``info["peaks"]`` holds R-peak indices.
    Quality options: see the module docstring.
    """
    return _features("ECG", signal, sampling_rate, quality_threshold, low_quality)


def eda_features(
    signal: object, sampling_rate: float, *, quality_threshold: float = sqi.QUALITY_THRESHOLD,
    low_quality: str = "nan",
) -> tuple[dict, dict]:
    """Skin conductance level and responses of one EDA window (microsiemens).

    ``EDA_Tonic_Mean`` (uS), ``EDA_Tonic_Slope`` (uS/s), ``SCR_Peaks_N``, ``SCR_Peaks_Rate``
    (per min), ``SCR_Amplitude_Mean`` (uS), ``SCR_RiseTime_Mean`` (s). Cleaning and the
    phasic split are NeuroKit2's filters (3 Hz low-pass; 0.05 Hz high-pass); responses are
    counted from :data:`SCR_MIN_AMPLITUDE_US` (0.05 µS) trough to peak (:func:`scr_peaks`).
    The signal must be in microsiemens: other scales fail the quality check (NaN).
    """
    return _features("EDA", signal, sampling_rate, quality_threshold, low_quality)


def ppg_features(
    signal: object, sampling_rate: float, *, quality_threshold: float = sqi.QUALITY_THRESHOLD,
    low_quality: str = "nan",
) -> tuple[dict, dict]:
    """Pulse rate (bpm) and pulse amplitude (foot to peak, input units) of one PPG window."""
    return _features("PPG", signal, sampling_rate, quality_threshold, low_quality)


def rsp_features(
    signal: object, sampling_rate: float, *, quality_threshold: float = sqi.QUALITY_THRESHOLD,
    low_quality: str = "nan",
) -> tuple[dict, dict]:
    """Breathing rate (breaths/min) and amplitude (trough to peak) of one respiration window."""
    return _features("RESP", signal, sampling_rate, quality_threshold, low_quality)


def temp_features(
    signal: object, sampling_rate: float, *, quality_threshold: float = sqi.QUALITY_THRESHOLD,
    low_quality: str = "nan",
) -> tuple[dict, dict]:
    """Mean skin temperature (degrees C) and its slope (degrees C per minute)."""
    return _features("TEMP", signal, sampling_rate, quality_threshold, low_quality)
