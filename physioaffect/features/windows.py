"""Windowed feature tables for a whole recording, aligned with the EEG windows.

The EEG defines the windows: window ``k`` starts at EEG sample ``k * step`` and lasts
``window_s`` seconds. Every other stream is cut at the same *times* (its own timestamps, on the
shared clock), so rows of the table line up across streams even when their rates differ.

Peripheral signals are processed once over the whole recording (cleaning and peak detection),
then each window is summarised from the events inside it: this is both faster than processing
every 10 s window separately and better (no filter edge effects, beats on window borders are
not lost).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from physioaffect.features import peripheral
from physioaffect.features.eeg import band_power, differential_entropy, resolve_bands
from physioaffect.preprocessing.quality import (
    SignalInputError,
    as_signal_array,
    check_sfreq,
    warn_quality,
)

__all__ = ["window_starts", "sliding_windows", "peripheral_table", "feature_table"]


def window_starts(
    n_times: int, sfreq: float, window_s: float, step_s: float | None = None
) -> np.ndarray:
    """Start sample of every full window.

    Parameters
    ----------
    n_times : int
        Samples in the recording.
    sfreq : float
        Hz.
    window_s, step_s : float
        Window length and hop in seconds (``step_s`` defaults to ``window_s``: no overlap).

    Returns
    -------
    ndarray of int, shape (n_windows,)
    """
    fs = check_sfreq(sfreq)
    win = int(round(window_s * fs))
    step = int(round((window_s if step_s is None else step_s) * fs))
    if win < 1 or step < 1:
        raise SignalInputError(
            f"window_s/step_s: need at least one sample, got {window_s!r}/{step_s!r} s at {fs:g} Hz"
        )
    if n_times < win:
        return np.zeros(0, dtype=int)
    return np.arange(0, n_times - win + 1, step, dtype=int)


def sliding_windows(
    x: object, sfreq: float, window_s: float, step_s: float | None = None
) -> np.ndarray:
    """Cut ``(..., n_chans, n_times)`` into ``(n_windows, ..., n_chans, n_win)`` without copying.

    A read-only strided view: pass it straight to the feature functions (they never write to
    their input).
    """
    arr = as_signal_array(x, "x", min_ndim=1)
    starts = window_starts(arr.shape[-1], sfreq, window_s, step_s)
    win = int(round(window_s * float(sfreq)))
    if starts.size == 0:
        raise SignalInputError(
            f"x: {arr.shape[-1]} samples are shorter than one {window_s:g} s window"
        )
    step = int(starts[1] - starts[0]) if starts.size > 1 else 1
    # Basic slicing (not fancy indexing) keeps this a view of ``x``.
    view = np.lib.stride_tricks.sliding_window_view(arr, win, axis=-1)[..., ::step, :][
        ..., : starts.size, :
    ]
    return np.moveaxis(view, -2, 0)


def _slices(ts: np.ndarray, starts_s: np.ndarray, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    a = np.searchsorted(ts, starts_s, side="left")
    b = np.searchsorted(ts, starts_s + window_s, side="left")
    return a, b


def peripheral_table(
    modality: str,
    signal: object,
    sampling_rate: float,
    starts_s: Sequence[float],
    window_s: float,
    timestamps: object | None = None,
) -> pd.DataFrame:
    """Features of one peripheral signal in the given windows.

    Parameters
    ----------
    modality : str
        "ECG", "EDA" (or "GSR"), "PPG", "RESP", "TEMP".
    signal : array_like, shape (n_times,)
    sampling_rate : float
        Hz.
    starts_s : sequence of float
        Window start times in seconds on the same clock as ``timestamps``.
    window_s : float
        Window length in seconds.
    timestamps : array_like, shape (n_times,), optional
        Sample times in seconds; default ``arange(n) / sampling_rate``.

    Returns
    -------
    DataFrame, one row per window, one column per feature (NaN where not computable).
    """
    x = peripheral._as_1d(signal)
    fs = check_sfreq(sampling_rate, "sampling_rate")
    ts = (
        np.arange(x.size) / fs
        if timestamps is None
        else np.asarray(timestamps, dtype=float).reshape(-1)
    )
    if ts.size != x.size:
        raise SignalInputError(
            f"timestamps: expected {x.size} values to match signal, got {ts.size}"
        )
    starts = np.asarray(starts_s, dtype=float)
    events, reasons = peripheral.process(modality, x, fs)
    a, b = _slices(ts, starts, window_s)
    rows, implausible = [], 0
    for lo, hi in zip(a, b, strict=True):
        feats, why = peripheral.summarise(modality, events, fs, int(lo), int(hi))
        implausible += bool(why)
        rows.append(feats)
    if implausible:
        reasons.append(
            f"{implausible} of {len(rows)} windows had physiologically implausible values (set to NaN)"
        )
    warn_quality(f"{modality} windows", reasons)
    return pd.DataFrame(
        rows,
        columns=list(peripheral.feature_names(modality)),
        index=pd.RangeIndex(len(rows), name="window"),
    )


def feature_table(
    eeg: object | None,
    eeg_sfreq: float,
    window_s: float = 10.0,
    step_s: float | None = None,
    *,
    eeg_timestamps: object | None = None,
    ch_names: Sequence[str] | None = None,
    peripherals: Mapping[str, tuple] | None = None,
    eeg_feature: str = "de",
    bands: str | Sequence = "torcheeg4",
) -> pd.DataFrame:
    """One row per EEG window: EEG features per channel and band plus peripheral features.

    Parameters
    ----------
    eeg : array_like, shape (n_chans, n_times), or None
        EEG in microvolts; with None, windows are laid on ``eeg_timestamps`` alone.
    eeg_sfreq : float
        EEG rate in Hz.
    window_s, step_s : float
        Window length and hop in seconds.
    eeg_timestamps : array_like, shape (n_times,), optional
        EEG sample times (s); default ``arange(n_times) / eeg_sfreq``.
    ch_names : list of str, optional
        EEG labels for column names (default ``ch0``, ``ch1`` ...).
    peripherals : mapping modality -> (signal, sampling_rate) or (signal, sampling_rate, timestamps)
        Other streams on the same clock as the EEG.
    eeg_feature : {"de", "bandpower", "relpower", "none"}
    bands : str or list
        Band preset or list.

    Returns
    -------
    DataFrame with columns ``start_s``, ``stop_s``, ``EEG_<FEAT>_<band>_<channel>`` ... and the
    peripheral feature columns.
    """
    fs = check_sfreq(eeg_sfreq, "eeg_sfreq")
    if eeg is not None:
        x = as_signal_array(eeg, "eeg", min_ndim=2, max_ndim=2)
        n_times = x.shape[-1]
    elif eeg_timestamps is not None:
        x, n_times = None, np.asarray(eeg_timestamps).size
    else:
        raise SignalInputError("eeg: give the EEG array or eeg_timestamps to lay the windows on")
    ts = (
        np.arange(n_times) / fs
        if eeg_timestamps is None
        else np.asarray(eeg_timestamps, dtype=float).reshape(-1)
    )
    if ts.size != n_times:
        raise SignalInputError(
            f"eeg_timestamps: expected {n_times} values to match the EEG, got {ts.size}"
        )
    starts = window_starts(n_times, fs, window_s, step_s)
    table = pd.DataFrame({"start_s": ts[starts], "stop_s": ts[starts] + window_s})
    table.index.name = "window"
    if x is not None and eeg_feature != "none" and starts.size:
        win = sliding_windows(x, fs, window_s, step_s)
        band_list = resolve_bands(bands, fs)
        if eeg_feature == "de":
            values, tag = differential_entropy(win, fs, band_list), "DE"
        elif eeg_feature in ("bandpower", "relpower"):
            values = band_power(win, fs, band_list, relative=eeg_feature == "relpower")
            tag = "BP" if eeg_feature == "bandpower" else "RBP"
        else:
            raise SignalInputError(
                f"eeg_feature: expected 'de', 'bandpower', 'relpower' or 'none', got {eeg_feature!r}"
            )
        names = list(ch_names) if ch_names is not None else [f"ch{i}" for i in range(x.shape[0])]
        if len(names) != x.shape[0]:
            raise SignalInputError(f"ch_names: expected {x.shape[0]} labels, got {len(names)}")
        cols = {
            f"EEG_{tag}_{band}_{ch}": values[:, c, k]
            for k, (band, _, _) in enumerate(band_list)
            for c, ch in enumerate(names)
        }
        table = pd.concat([table, pd.DataFrame(cols, index=table.index)], axis=1)
    for modality, spec in (peripherals or {}).items():
        sig, rate = spec[0], spec[1]
        pts = spec[2] if len(spec) > 2 else None
        part = peripheral_table(
            modality, sig, rate, table["start_s"].to_numpy(), window_s, timestamps=pts
        )
        part.index = table.index
        table = pd.concat([table, part], axis=1)
    return table
