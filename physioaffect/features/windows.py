"""Windowed feature tables for a whole recording, aligned with the EEG windows.

The EEG defines the windows: window ``k`` starts at EEG sample ``k * step`` and lasts
``window_s`` seconds. Every other stream is cut at the same *times* (its own timestamps, on the
shared clock), so rows of the table line up across streams even when their rates differ.

Peripheral signals are processed once over the whole recording (cleaning and peak detection),
then each window is summarised from the events inside it: this is both faster than processing
every 10 s window separately and better (no filter edge effects, beats on window borders are
not lost).

Every signal's windows carry a quality score (0-1) and the reasons behind it
(:mod:`physioaffect.features.quality`): columns ``<MOD>_Quality`` and ``<MOD>_Quality_Reasons``
(``EEG_Quality`` is the fraction of good channels). ``low_quality="nan"`` (the default) makes the
features of windows below ``quality_threshold`` (0.5) NaN; ``"flag"`` keeps them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from physioaffect.features import peripheral
from physioaffect.features.eeg import band_power, differential_entropy, resolve_bands
from physioaffect.features.quality import (
    HR_TOLERANCE_BPM,
    QUALITY_THRESHOLD,
    beat_agreement,
    check_low_quality,
    eeg_channel_quality,
    rate_agreement,
)
from physioaffect.preprocessing.quality import (
    SignalInputError,
    as_signal_array,
    check_sfreq,
    eeg_unit_problem,
    warn_quality,
)

__all__ = [
    "window_starts",
    "sliding_windows",
    "peripheral_table",
    "feature_table",
    "quality_column_names",
]


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


def _source(key: str) -> tuple[str, str]:
    """``"ECG"`` -> ("ECG", ""); ``"ECG:V5"`` -> ("ECG", "V5:"), the column prefix of a second
    source of the same modality."""
    mod, _, label = str(key).partition(":")
    return mod, f"{label}:" if label else ""


def _peripheral_part(
    modality: str, signal: object, sampling_rate: float, starts_s: np.ndarray, window_s: float,
    timestamps: object | None,
) -> tuple[pd.DataFrame, dict, np.ndarray, list[str]]:
    """Features, quality score and reasons per window, before any gate; the events (whole
    signal), the sample times and the whole-signal reasons."""
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
    events, reasons = peripheral.process(modality, x, fs)
    a, b = _slices(ts, starts_s, window_s)
    q_col, r_col = peripheral.quality_columns(modality)
    rows, scores, why = [], [], []
    for lo, hi in zip(a, b, strict=True):
        feats, score, more = peripheral.evaluate(
            modality, events, fs, int(lo), int(hi), low_quality="flag"
        )
        rows.append(feats)
        scores.append(score)
        why.append(reasons + more if not events else more)
    table = pd.DataFrame(
        rows,
        columns=list(peripheral.feature_names(modality)),
        index=pd.RangeIndex(len(rows), name="window"),
    )
    table[q_col] = np.asarray(scores, dtype=float)
    table[r_col] = ["; ".join(w) for w in why]
    return table, events, ts, reasons


def _gate(
    table: pd.DataFrame, feature_cols: Sequence[str], q_col: str, threshold: float,
    low_quality: str,
) -> int:
    """NaN the features of windows below the threshold (``low_quality="nan"``); their count."""
    low = table[q_col].to_numpy() < threshold
    if low_quality == "nan" and low.any():
        table.loc[low, list(feature_cols)] = np.nan
    return int(low.sum())


def peripheral_table(
    modality: str,
    signal: object,
    sampling_rate: float,
    starts_s: Sequence[float],
    window_s: float,
    timestamps: object | None = None,
    *,
    quality_threshold: float = QUALITY_THRESHOLD,
    low_quality: str = "nan",
    reasons: bool = False,
) -> pd.DataFrame:
    """Features of one peripheral signal in the given windows, with their signal quality.

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
    quality_threshold : float
        Quality score (0-1) below which a window counts as low quality (default 0.5: it failed
        a criterion of :mod:`physioaffect.features.quality`).
    low_quality : {"nan", "flag"}
        ``"nan"``: the features of low-quality windows are NaN; ``"flag"``: kept, flagged by
        the quality columns.
    reasons : bool
        Also return the reasons column (strings: leave it out where the table is turned into a
        float matrix).

    Returns
    -------
    DataFrame, one row per window: one column per feature (NaN where not computable), then
    ``<MOD>_Quality`` (float 0-1) and, with ``reasons=True``, ``<MOD>_Quality_Reasons`` (str,
    "; "-joined, empty when every criterion passed); see
    :func:`~physioaffect.features.peripheral.quality_columns`.
    """
    check_low_quality(low_quality, quality_threshold)
    name = peripheral._spec(modality)[0]
    table, _, _, why = _peripheral_part(
        name, signal, sampling_rate, np.asarray(starts_s, dtype=float), window_s, timestamps
    )
    q_col, r_col = peripheral.quality_columns(name)
    n_low = _gate(table, peripheral.feature_names(name), q_col, quality_threshold, low_quality)
    if n_low and not why:
        verb = "set to NaN" if low_quality == "nan" else "flagged"
        why = [f"{n_low} of {len(table)} windows below quality {quality_threshold:g} ({verb})"]
    warn_quality(f"{modality} windows", why)
    return table if reasons else table.drop(columns=[r_col])


def quality_column_names(table: pd.DataFrame) -> list[str]:
    """The numeric quality columns (``*_Quality``, 0-1) of a feature table."""
    return [c for c in table.columns if str(c).endswith("_Quality")]


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
    quality_threshold: float = QUALITY_THRESHOLD,
    low_quality: str = "nan",
    hr_tolerance: float = HR_TOLERANCE_BPM,
    time_origin: float | None = None,
) -> pd.DataFrame:
    """One row per EEG window: EEG features per channel and band plus peripheral features,
    each signal with its quality.

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
    peripherals : mapping source -> (signal, sampling_rate) or (signal, sampling_rate, timestamps)
        Other streams on the same clock as the EEG. A source is a modality ("ECG", "PPG" ...)
        or ``"<modality>:<label>"`` for a second source of it (``"ECG:V5"``: a second lead),
        whose columns are prefixed ``"<label>:"``.
    eeg_feature : {"de", "bandpower", "relpower", "none"}
    bands : str or list
        Band preset or list.
    quality_threshold : float
        Quality score (0-1) below which a window of a signal counts as low quality.
    low_quality : {"nan", "flag"}
        ``"nan"``: the features of low-quality windows (and of bad EEG channels) are NaN;
        ``"flag"``: kept, flagged by the quality columns.
    hr_tolerance : float
        bpm. Where two heart-rate sources (ECG leads, PPG) of a window differ by more, both
        windows fail; two ECG leads must also agree beat by beat.
    time_origin : float, optional
        Session start on the timestamps' clock (the LSL clock for streams and session files):
        ``start_s``/``stop_s`` are then seconds from it, and ``start_lsl_s`` keeps the absolute
        start. Default: the timestamps as they are.

    Returns
    -------
    DataFrame with columns ``start_s``, ``stop_s`` (and ``start_lsl_s``), then
    ``EEG_<FEAT>_<band>_<channel>`` ..., ``EEG_Quality`` (fraction of good channels, 0-1),
    ``EEG_Quality_Reasons``, and per peripheral source its features, ``<MOD>_Quality`` and
    ``<MOD>_Quality_Reasons`` (see :mod:`physioaffect.features.quality`).
    """
    check_low_quality(low_quality, quality_threshold)
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
    starts_clock = ts[starts]
    origin = 0.0 if time_origin is None else float(time_origin)
    table = pd.DataFrame({"start_s": starts_clock - origin, "stop_s": starts_clock - origin + window_s})
    if time_origin is not None:
        table["start_lsl_s"] = starts_clock
    table.index.name = "window"
    if x is not None and eeg_feature != "none" and starts.size:
        table = pd.concat(
            [table, _eeg_part(x, fs, window_s, step_s, ch_names, eeg_feature, bands,
                              quality_threshold, low_quality, table.index)],
            axis=1,
        )
    parts: dict[str, tuple[pd.DataFrame, dict, np.ndarray, str, str]] = {}
    for key, spec in (peripherals or {}).items():
        mod, prefix = _source(key)
        name = peripheral._spec(mod)[0]
        pts = spec[2] if len(spec) > 2 else None
        part, events, pts_arr, _ = _peripheral_part(name, spec[0], spec[1], starts_clock, window_s, pts)
        part.index = table.index
        parts[key] = (part, events, pts_arr, name, prefix)
    _cross_check(parts, starts_clock, window_s, hr_tolerance)
    for part, _, _, name, prefix in parts.values():
        q_col, _ = peripheral.quality_columns(name)
        n_low = _gate(part, peripheral.feature_names(name), q_col, quality_threshold, low_quality)
        if n_low:
            verb = "set to NaN" if low_quality == "nan" else "flagged"
            warn_quality(f"{prefix}{name} windows",
                         [f"{n_low} of {len(part)} windows below quality {quality_threshold:g} ({verb})"])
        table = pd.concat([table, part.add_prefix(prefix)], axis=1)
    return table


_HEART_RATE = {"ECG": "ECG_Rate_Mean", "PPG": "PPG_Rate_Mean"}


def _cross_check(
    parts: dict[str, tuple[pd.DataFrame, dict, np.ndarray, str, str]], starts_s: np.ndarray,
    window_s: float, tolerance: float,
) -> None:
    """Flag both windows where two heart-rate sources disagree (in place, before any gate)."""
    hr = [(k, p) for k, p in parts.items() if p[3] in _HEART_RATE]
    for i, (ka, (ta, ea, tsa, ma, _)) in enumerate(hr):
        for kb, (tb, eb, tsb, mb, _) in hr[i + 1:]:
            scores, reasons = rate_agreement(
                ta[_HEART_RATE[ma]].to_numpy(), tb[_HEART_RATE[mb]].to_numpy(), (ka, kb), tolerance
            )
            if ma == mb == "ECG" and ea and eb:
                s2, r2 = beat_agreement(tsa[ea["peaks"]], tsb[eb["peaks"]], starts_s, window_s,
                                        (ka, kb))
                scores = np.fmin(scores, s2)
                reasons = ["; ".join(r for r in pair if r) for pair in zip(reasons, r2, strict=True)]
            for table, mod in ((ta, ma), (tb, mb)):
                q_col, r_col = peripheral.quality_columns(mod)
                table[q_col] = np.fmin(table[q_col].to_numpy(), np.nan_to_num(scores, nan=1.0))
                table[r_col] = [
                    "; ".join(r for r in (old, new) if r)
                    for old, new in zip(table[r_col], reasons, strict=True)
                ]


def _eeg_part(
    x: np.ndarray, fs: float, window_s: float, step_s: float | None,
    ch_names: Sequence[str] | None, eeg_feature: str, bands: str | Sequence,
    quality_threshold: float, low_quality: str, index: pd.Index,
) -> pd.DataFrame:
    win = sliding_windows(x, fs, window_s, step_s)
    band_list = resolve_bands(bands, fs)
    names = list(ch_names) if ch_names is not None else [f"ch{i}" for i in range(x.shape[0])]
    if len(names) != x.shape[0]:
        raise SignalInputError(f"ch_names: expected {x.shape[0]} labels, got {len(names)}")
    if eeg_feature == "de":
        values, tag = differential_entropy(win, fs, band_list), "DE"
    elif eeg_feature in ("bandpower", "relpower"):
        values = band_power(win, fs, band_list, relative=eeg_feature == "relpower")
        tag = "BP" if eeg_feature == "bandpower" else "RBP"
    else:
        raise SignalInputError(
            f"eeg_feature: expected 'de', 'bandpower', 'relpower' or 'none', got {eeg_feature!r}"
        )
    unit = eeg_unit_problem(win, "uV")
    if unit:
        scores, bad = np.zeros(len(win)), np.ones(win.shape[:2], dtype=bool)
        reasons = [unit] * len(win)
    else:
        scores, bad, reasons = eeg_channel_quality(win, names)
    if low_quality == "nan":
        values = values.copy()
        values[bad] = np.nan
        values[scores < quality_threshold] = np.nan
    cols = {
        f"EEG_{tag}_{band}_{ch}": values[:, c, k]
        for k, (band, _, _) in enumerate(band_list)
        for c, ch in enumerate(names)
    }
    cols["EEG_Quality"] = scores
    cols["EEG_Quality_Reasons"] = reasons
    return pd.DataFrame(cols, index=index)
