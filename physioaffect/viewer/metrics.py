"""Numbers the viewer shows beside the traces: heart and pulse rate, EDA tonic level and
responses, breathing rate (each with its signal quality), EEG band power and frontal alpha
asymmetry.

They come from the feature stage (NeuroKit2 wrappers and the Welch band power), computed on
the last few seconds of each stream on a background thread about once a second, so the
drawing never waits for them. Signals are first decimated to at most 250 Hz (anti-aliased),
which is plenty for rates and levels and keeps a 1 kHz stream cheap.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import signal as sps

from physioaffect.features import peripheral as periph
from physioaffect.features.eeg import band_power, frontal_alpha_asymmetry
from physioaffect.streams import StreamHub, StreamInfo

__all__ = ["BANDS", "MetricsWorker", "eeg_metrics", "peripheral_metrics", "quality_note"]

#: Bands shown as bars (name, low Hz, high Hz).
BANDS = (("delta", 1.0, 4.0), ("theta", 4.0, 8.0), ("alpha", 8.0, 13.0), ("beta", 13.0, 30.0),
         ("gamma", 30.0, 45.0))


def _decimate(x: np.ndarray, fs: float, max_fs: float = 250.0) -> tuple[np.ndarray, float]:
    q = int(fs // max_fs)
    if q <= 1 or x.shape[0] < 30 * q:
        return x, fs
    # the FIR is applied without padding: remove the level first, or its edges become steps
    # (a 4 uS EDA level would swing by 1.5 uS at both ends)
    mean = x.mean(axis=0)
    return sps.decimate(x - mean, q, ftype="fir", axis=0, zero_phase=True) + mean, fs / q


def peripheral_metrics(kind: str, x: np.ndarray, fs: float) -> dict[str, object]:
    """Summary numbers of one peripheral signal, with their signal quality.

    Parameters
    ----------
    kind : str
        "ECG", "EDA" (or "GSR"), "PPG", "RESP", or another spelling
        :func:`physioaffect.streams.signals.canonical_signal` knows ("BVP", "RSP" ...).
    x : ndarray, shape (n_times,)
    fs : float
        Hz.

    Returns
    -------
    dict
        ECG: ``heart_rate`` (bpm); PPG: ``pulse_rate`` (bpm); GSR: ``tonic`` (uS) and
        ``scr_per_min``; RESP: ``breath_rate`` (breaths/min). Every kind also has ``quality``
        (0-1, :mod:`physioaffect.features.quality`) and ``reasons`` (str, the failed criteria).
        Values of a window below the quality threshold are NaN: the reasons say why.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    x, fs = _decimate(x, fs)
    funcs = {"ECG": (periph.ecg_features, {"heart_rate": "ECG_Rate_Mean"}),
             "PPG": (periph.ppg_features, {"pulse_rate": "PPG_Rate_Mean"}),
             "EDA": (periph.eda_features, {"tonic": "EDA_Tonic_Mean",
                                           "scr_per_min": "SCR_Peaks_Rate"}),
             "RESP": (periph.rsp_features, {"breath_rate": "RSP_Rate_Mean"})}
    func, keys = funcs.get(periph_key(kind), (None, {}))
    if func is None:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f, info = func(x, fs)
    out: dict[str, object] = {k: float(f.get(v, np.nan)) for k, v in keys.items()}
    out["quality"] = float(info.get("quality", 0.0))
    out["reasons"] = "; ".join(info.get("quality_reasons") or info.get("reasons") or [])
    return out


def quality_note(metrics: dict, width: int = 70) -> str:
    """The quality part of a metric's title: " · quality 0.93", or the reason it is low."""
    from physioaffect.features.quality import QUALITY_THRESHOLD

    q = metrics.get("quality")
    if q is None:
        return ""
    if q >= QUALITY_THRESHOLD:
        return f" \u00b7 quality {q:.2f}"
    why = str(metrics.get("reasons") or "unusable signal")
    return f" \u00b7 LOW QUALITY {q:.2f}: " + (why if len(why) <= width else why[: width - 1] + "\u2026")


def eeg_metrics(x: np.ndarray, fs: float, labels: list[str]) -> dict[str, object]:
    """Band power averaged over channels, and frontal alpha asymmetry.

    Parameters
    ----------
    x : ndarray, shape (n_times, n_chans)
        EEG in microvolts.
    fs : float
    labels : list of str

    Returns
    -------
    dict
        ``bands`` (list of (name, log10 power in uV^2)), ``relative`` (fractions of the
        summed band power), ``faa`` (ln alpha F4 - ln alpha F3, NaN without that pair),
        ``faa_pair`` (the (left, right) labels used, None without one) and
        ``per_channel_alpha`` (n_chans,) alpha power.
    """
    arr = np.asarray(x, dtype=np.float64).T
    arr = arr - arr.mean(axis=1, keepdims=True)
    bands = [b for b in BANDS if b[2] < fs / 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bp = band_power(arr, fs, bands=[list(b) for b in bands], segment_s=1.0)  # (C, B)
    mean = np.nanmean(bp, axis=0)
    total = float(np.nansum(mean))
    faa = float("nan")
    faa_pair = None
    low = [c.lower() for c in labels]
    for left, right in (("F3", "F4"), ("F7", "F8"), ("AF3", "AF4"), ("Fp1", "Fp2")):
        if left.lower() in low and right.lower() in low:
            faa_pair = (left, right)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                faa = float(np.asarray(frontal_alpha_asymmetry(
                    arr, fs, labels, pairs=[(labels[low.index(left.lower())],
                                             labels[low.index(right.lower())])]))
                            .reshape(-1)[0])
            break
    alpha_i = [b[0] for b in bands].index("alpha") if any(b[0] == "alpha" for b in bands) else 0
    return {
        "bands": [(b[0], float(np.log10(max(m, 1e-12)))) for b, m in zip(bands, mean, strict=False)],
        "relative": [float(m / total) if total > 0 else float("nan") for m in mean],
        "faa": faa,
        "faa_pair": faa_pair,
        "per_channel_alpha": bp[:, alpha_i],
    }


@dataclass
class MetricsSnapshot:
    """The latest metrics per stream name (replaced as a whole, read without locks)."""

    values: dict[str, dict] = field(default_factory=dict)


class MetricsWorker:
    """Computes metrics of the hub's streams about once per ``interval`` s on a thread.

    Parameters
    ----------
    hub : StreamHub
    seconds : float
        Length of signal analysed, s.
    interval : float
        Seconds between updates.
    """

    def __init__(self, hub: StreamHub, seconds: float = 10.0, interval: float = 1.0,
                 eeg_seconds: float = 2.0):
        self.hub = hub
        self.seconds = seconds
        self.eeg_seconds = eeg_seconds
        self.interval = interval
        self.snapshot = MetricsSnapshot()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="viewer-metrics", daemon=True)

    def start(self) -> MetricsWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def compute_once(self) -> MetricsSnapshot:
        values: dict[str, dict] = {}
        for name, info in list(self.hub.infos.items()):
            try:
                values[name] = self._one(info)
            except Exception as err:  # noqa: BLE001 - one odd stream must not stop the others
                values[name] = {"error": f"{type(err).__name__}: {err}"}
        self.snapshot = MetricsSnapshot(values)
        return self.snapshot

    def _one(self, info: StreamInfo) -> dict:
        if not info.is_regular or info.channel_format == "string":
            return {}
        kind = info.type.upper()
        fs = info.nominal_srate
        buf = self.hub.buffers[info.name]
        if kind == "EEG":
            _, x = buf.latest(int(self.eeg_seconds * fs))
            if x.shape[0] < int(self.eeg_seconds * fs * 0.9):
                return {"collecting": (x.shape[0] / fs, self.eeg_seconds)}
            return eeg_metrics(x, fs, info.labels)
        if kind in ("ECG", "GSR", "EDA", "PPG", "RESP"):
            # breathing is slow: a rate needs several breaths
            seconds = max(self.seconds, 25.0) if kind == "RESP" else self.seconds
            _, x = buf.latest(int(seconds * fs))
            # as soon as the feature stage can compute the rate (its shortest window)
            need = periph.MODALITIES[periph_key(kind)].min_seconds
            if x.shape[0] < int(np.ceil(need * fs)):
                return {"collecting": (x.shape[0] / fs, need)}
            return peripheral_metrics(kind, x[:, 0], fs)
        return {}

    def _run(self) -> None:
        # first numbers at once (then every interval): a rate shows as soon as it is computable
        while True:
            self.compute_once()
            if self._stop.wait(self.interval):
                return


def periph_key(kind: str) -> str:
    """The feature stage's modality name of a stream type (``GSR`` is ``EDA``)."""
    from physioaffect.streams.signals import canonical_signal

    return canonical_signal(kind) or kind.upper()
