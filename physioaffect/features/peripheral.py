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
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from physioaffect.preprocessing.quality import (
    SignalInputError,
    as_signal_array,
    check_sfreq,
    fill_short_nan_runs,
    signal_problems,
    warn_quality,
)

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
    "feature_names",
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
    return {"cleaned": np.asarray(cleaned), "peaks": np.asarray(info["ECG_R_Peaks"], dtype=int)}


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


def _eda_process(x: np.ndarray, fs: float) -> dict:
    nk = _nk()
    cleaned = np.asarray(nk.eda_clean(x, sampling_rate=fs, method="neurokit"))
    comp = nk.eda_phasic(cleaned, sampling_rate=fs, method="highpass")
    phasic = comp["EDA_Phasic"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, info = nk.eda_peaks(phasic, sampling_rate=fs, method="neurokit", amplitude_min=0.1)
    peaks = np.asarray(info["SCR_Peaks"], dtype=float)
    keep = np.isfinite(peaks)
    return {
        "cleaned": cleaned,
        "tonic": comp["EDA_Tonic"].to_numpy(),
        "phasic": phasic,
        "peaks": peaks[keep].astype(int),
        "onsets": np.asarray(info["SCR_Onsets"], dtype=float)[keep],
        "amplitude": np.asarray(info["SCR_Amplitude"], dtype=float)[keep],
        "rise_time": np.asarray(info["SCR_RiseTime"], dtype=float)[keep],
    }


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
    return {"cleaned": cleaned, "peaks": peaks, "troughs": _troughs_between(cleaned, peaks)}


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
        "cleaned": cleaned,
        "peaks": np.asarray(info["RSP_Peaks"], dtype=int),
        "troughs": np.asarray(info["RSP_Troughs"], dtype=int),
    }


def _rsp_summarise(ev: dict, fs: float, start: int, stop: int) -> dict:
    iv = _intervals(ev["peaks"], start, stop, fs, 60 / 60, 60 / 3)
    p = ev["peaks"][(ev["peaks"] >= start) & (ev["peaks"] < stop)]
    amp = _amplitudes(ev["cleaned"], p, ev["troughs"])
    return {
        "RSP_Rate_Mean": float(60.0 / np.mean(iv)) if iv.size >= 1 else float("nan"),
        "RSP_Amplitude_Mean": _mean(amp),
    }


_RSP_FEATURES = ("RSP_Rate_Mean", "RSP_Amplitude_Mean")

# --------------------------------------------------------------------------- temperature


def _temp_process(x: np.ndarray, fs: float) -> dict:
    return {"cleaned": x}


def _temp_summarise(ev: dict, fs: float, start: int, stop: int) -> dict:
    seg = ev["cleaned"][start:stop]
    return {
        "TEMP_Mean": float(np.mean(seg)) if seg.size else float("nan"),
        "TEMP_Slope": _slope_per_s(seg, fs) * 60.0,  # degrees C per minute
    }


_TEMP_FEATURES = ("TEMP_Mean", "TEMP_Slope")

MODALITIES: dict[str, _Spec] = {
    "ECG": _Spec(
        64.0, 4.0, 0.05, _ECG_FEATURES, {"ECG_Rate_Mean": (25, 250)}, _ecg_process, _ecg_summarise
    ),
    # EDA and temperature change slowly: a level held for a while is not yet clipping.
    "EDA": _Spec(8.0, 5.0, 0.1, _EDA_FEATURES, {}, _eda_process, _eda_summarise),
    "PPG": _Spec(
        25.0, 6.0, 0.05, _PPG_FEATURES, {"PPG_Rate_Mean": (25, 250)}, _ppg_process, _ppg_summarise
    ),
    "RESP": _Spec(
        10.0, 10.0, 0.1, _RSP_FEATURES, {"RSP_Rate_Mean": (3, 60)}, _rsp_process, _rsp_summarise
    ),
    "TEMP": _Spec(
        0.1, 10.0, 0.25, _TEMP_FEATURES, {"TEMP_Mean": (20, 45)}, _temp_process, _temp_summarise
    ),
}
_ALIASES = {"GSR": "EDA", "RSP": "RESP", "SKT": "TEMP", "BVP": "PPG"}


def _spec(modality: str) -> tuple[str, _Spec]:
    key = _ALIASES.get(modality.upper(), modality.upper())
    if key not in MODALITIES:
        raise SignalInputError(
            f"modality: expected one of {sorted(MODALITIES)} (or {sorted(_ALIASES)}), got {modality!r}"
        )
    return key, MODALITIES[key]


def feature_names(modality: str) -> tuple[str, ...]:
    """Names of the features :func:`summarise` returns for ``modality``."""
    return _spec(modality)[1].features


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


def _features(modality: str, signal: object, sampling_rate: float) -> tuple[dict, dict]:
    name, _ = _spec(modality)
    events, reasons = process(name, signal, sampling_rate)
    feats, more = summarise(name, events, sampling_rate)
    reasons = reasons + more
    if not reasons and all(np.isnan(v) for v in feats.values()):
        n_events = len(events.get("peaks", ()))
        reasons = [
            f"no usable {name} events ({n_events} detected, none at a physiological rate; "
            "wrong sampling rate or channel?)"
        ]
    warn_quality(f"{name.lower()}_features", reasons, stacklevel=4)
    info = {"reasons": reasons, "sampling_rate": float(sampling_rate), **events}
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


def ecg_features(signal: object, sampling_rate: float) -> tuple[dict, dict]:
    """Heart rate and HRV of one ECG window.

    Returns ``(features, info)``: ``ECG_Rate_Mean``/``_SD`` (bpm), ``HRV_MeanNN``, ``HRV_SDNN``,
    ``HRV_RMSSD`` (ms), ``HRV_pNN50`` (%) from 3 or more beats; ``HRV_LF``, ``HRV_HF`` (ms^2),
    ``HRV_LFHF`` only for windows of 60 s or more. ``info["peaks"]`` holds R-peak indices.
    """
    return _features("ECG", signal, sampling_rate)


def eda_features(signal: object, sampling_rate: float) -> tuple[dict, dict]:
    """Skin conductance level and responses of one EDA window (microsiemens).

    ``EDA_Tonic_Mean`` (uS), ``EDA_Tonic_Slope`` (uS/s), ``SCR_Peaks_N``, ``SCR_Peaks_Rate``
    (per min), ``SCR_Amplitude_Mean`` (uS), ``SCR_RiseTime_Mean`` (s). Phasic/tonic split by
    NeuroKit2's high-pass method; SCRs of at least 0.1 of the largest (NeuroKit2 default).
    """
    return _features("EDA", signal, sampling_rate)


def ppg_features(signal: object, sampling_rate: float) -> tuple[dict, dict]:
    """Pulse rate (bpm) and pulse amplitude (foot to peak, input units) of one PPG window."""
    return _features("PPG", signal, sampling_rate)


def rsp_features(signal: object, sampling_rate: float) -> tuple[dict, dict]:
    """Breathing rate (breaths/min) and amplitude (trough to peak) of one respiration window."""
    return _features("RESP", signal, sampling_rate)


def temp_features(signal: object, sampling_rate: float) -> tuple[dict, dict]:
    """Mean skin temperature (degrees C) and its slope (degrees C per minute)."""
    return _features("TEMP", signal, sampling_rate)
