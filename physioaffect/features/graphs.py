"""EmT's node features: relative Welch band power of every sub-window, as the official code.

EmT (Ding et al., IEEE TNNLS 2025) takes a *sequence of graphs* per segment: the segment is cut
into overlapping sub-windows, each sub-window is one graph with one node per channel, and each
node's features are relative band powers. This module computes them exactly as the official
preparation code does (github.com/yi-ding-cs/EmT, ``classification/base/preprocessing.py``
``bandpower`` and ``prepare_data.py`` ``sliding_window``; the regression code's
``bandpower_multiple`` is the same function):

Band power
    ``scipy.signal.welch(x, fs, nperseg=fs)`` (1 s Hann segments, 50 % overlap, constant
    detrend, density scaling: scipy's defaults), then for each band the bins with
    ``lo <= f <= hi`` (both edges inclusive: at 1 Hz resolution a bin at 12 Hz counts in
    8-12 Hz *and* in 12-16 Hz) are integrated with ``scipy.integrate.simpson(..., dx=df)``.
    Relative power divides by the Simpson integral of the whole spectrum, 0 Hz to Nyquist. A band
    holding a single bin integrates to 0 (that is what ``simpson`` returns for one sample).
Sub-windows
    ``win = round(sub_window_s * sfreq)`` samples, ``step = int(win * (1 - sub_overlap))``
    (truncated, as ``int()`` in the official code), starts ``0, step, 2 step, ...`` while
    ``start + win < n_times``: the official loop stops *before* a window would end exactly at the
    segment's end. A 20 s segment at 200 Hz with 2 s sub-windows at 75 % overlap gives 36
    graphs, a 20 s segment at 250 Hz with 4 s sub-windows (FACED) 16.

Band presets (:data:`EMT_BANDS`): ``emt_seed`` (1-3, 4-8, 8-12, 12-16, 16-20, 20-28, 30-45 Hz, the
official SEED script), ``emt_faced`` = ``emt_thu_ep`` (the same with 1-4 Hz first, the official
FACED and THU-EP scripts) and ``emt_mahnob`` (0.3-4, 4-8, 8-12, 12-18, 18-30, 30-45 Hz, the
official MAHNOB-HCI regression configuration). The 12.5-16, 16.5-20, 20.5-28 Hz bands listed in a
comment of the official ``get_filter_banks`` are not what its code computes.

Simpson's rule and scipy versions: with an even number of bins (1-4 Hz and 30-45 Hz at 1 Hz
resolution, and the whole 0-125 Hz spectrum at 250 Hz) scipy >= 1.11 integrates the last
interval with Cartwright's correction, scipy < 1.11 (``simps``, ``even="avg"``) averaged two
trapezoid-ended rules. This module calls the installed ``scipy.integrate.simpson``, as the official
classification code does. Relative powers computed with an old scipy therefore differ; at 250 Hz
in every band (the total's bin count is even), not only in 1-4 and 30-45 Hz.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from physioaffect.preprocessing.quality import (
    SignalInputError,
    as_signal_array,
    check_sfreq,
    describe_counts,
    warn_quality,
    window_problems,
)

__all__ = ["EMT_BANDS", "emt_bands", "emt_sub_window_starts", "emt_band_power",
           "emt_graph_sequence"]

Band = tuple[str, float, float]

#: EmT band presets of the official preparation code: name -> [(band, lo Hz, hi Hz), ...].
EMT_BANDS: dict[str, list[Band]] = {
    "emt_seed": [("delta", 1.0, 3.0), ("theta", 4.0, 8.0), ("alpha", 8.0, 12.0),
                 ("beta1", 12.0, 16.0), ("beta2", 16.0, 20.0), ("beta3", 20.0, 28.0),
                 ("gamma", 30.0, 45.0)],
    "emt_faced": [("delta", 1.0, 4.0), ("theta", 4.0, 8.0), ("alpha", 8.0, 12.0),
                  ("beta1", 12.0, 16.0), ("beta2", 16.0, 20.0), ("beta3", 20.0, 28.0),
                  ("gamma", 30.0, 45.0)],
    "emt_mahnob": [("delta", 0.3, 4.0), ("theta", 4.0, 8.0), ("alpha", 8.0, 12.0),
                   ("beta1", 12.0, 18.0), ("beta2", 18.0, 30.0), ("gamma", 30.0, 45.0)],
}
EMT_BANDS["emt_thu_ep"] = EMT_BANDS["emt_faced"]


def emt_bands(bands: str | Sequence[Sequence], sfreq: float | None = None) -> list[Band]:
    """Resolve ``bands``: a key of :data:`EMT_BANDS`, of ``features.eeg.BANDS``, or a list.

    Raises
    ------
    SignalInputError
        Unknown preset, malformed band, ``lo >= hi`` or a band reaching Nyquist.
    """
    from physioaffect.features.eeg import resolve_bands

    if isinstance(bands, str) and bands in EMT_BANDS:
        bands = EMT_BANDS[bands]
    elif isinstance(bands, str):
        from physioaffect.features.eeg import BANDS

        if bands not in BANDS:
            raise SignalInputError(f"bands: unknown preset {bands!r}; expected one of "
                                   f"{sorted(set(EMT_BANDS) | set(BANDS))}")
    return resolve_bands(bands, sfreq)


def emt_sub_window_starts(n_times: int, sfreq: float, sub_window_s: float,
                          sub_overlap: float) -> tuple[np.ndarray, int]:
    """Start samples of EmT's sub-windows in a segment, and the sub-window length.

    The official sliding window: ``step = int(win * (1 - sub_overlap))``, windows while
    ``start + win < n_times`` (a window ending exactly at the segment's end is not taken).

    Parameters
    ----------
    n_times : int
        Segment length in samples.
    sfreq : float
        Sampling rate in Hz.
    sub_window_s : float
        Sub-window length in seconds (official: 2 s for SEED/THU-EP, 4 s for FACED).
    sub_overlap : float
        Fractional overlap of consecutive sub-windows in ``[0, 1)`` (official: 0.75).

    Returns
    -------
    starts : ndarray of int
    win : int
        Sub-window length in samples.

    Raises
    ------
    SignalInputError
        If the overlap is outside ``[0, 1)`` or not one sub-window fits.
    """
    sfreq = check_sfreq(sfreq)
    if not 0.0 <= sub_overlap < 1.0:
        raise SignalInputError(f"sub_overlap: expected a fraction in [0, 1), got {sub_overlap!r}")
    win = int(round(sub_window_s * sfreq))
    step = max(1, int(win * (1.0 - sub_overlap)))
    if win < 2 or win >= n_times:
        raise SignalInputError(
            f"sub_window_s: a sub-window of {sub_window_s:g} s ({win} samples at {sfreq:g} Hz) "
            f"needs a segment longer than it; the segment has {n_times} samples (EmT's sliding "
            "window takes no window that ends exactly at the segment's end)")
    return np.arange(0, n_times - win, step), win


def emt_band_power(
    x: object,
    sfreq: float,
    bands: str | Sequence[Sequence] = "emt_seed",
    *,
    relative: bool = True,
    clip_fraction: float | None = 0.05,
) -> np.ndarray:
    """Band power of each row of ``x`` as EmT's official ``bandpower`` computes it.

    Parameters
    ----------
    x : array_like, shape (..., n_times)
        Signals (EEG in microvolts; relative power does not depend on the unit). Any number of
        leading axes.
    sfreq : float
        Sampling rate in Hz; the Welch segment is ``round(sfreq)`` samples (1 s), shortened to
        ``n_times`` when the signal is shorter.
    bands : str or list of (name, lo_hz, hi_hz)
        A key of :data:`EMT_BANDS` (or of ``features.eeg.BANDS``) or explicit bands; edges are
        inclusive at both ends.
    relative : bool
        Divide by the Simpson integral of the whole spectrum (0 Hz to Nyquist); else absolute
        power in ``unit**2``.
    clip_fraction : float or None
        Rows with more than this fraction of samples on their extreme value count as clipped
        (None: no clipping check).

    Returns
    -------
    ndarray, shape (..., n_bands), float64
        NaN for unusable rows (NaN/inf samples, flat, clipped), with one
        :class:`~physioaffect.preprocessing.quality.SignalQualityWarning` saying how many.
    """
    from scipy.integrate import simpson
    from scipy.signal import welch

    arr = as_signal_array(x, "x", min_ndim=1)
    sfreq = check_sfreq(sfreq)
    if arr.shape[-1] < 4:
        raise SignalInputError(f"x: needs at least 4 samples on the last axis, got {arr.shape}")
    band_list = emt_bands(bands, sfreq)
    nperseg = min(int(round(sfreq)), arr.shape[-1])
    freqs = np.fft.rfftfreq(nperseg, 1.0 / sfreq)
    df = freqs[1] - freqs[0]
    masks = []
    for name, lo, hi in band_list:
        sel = (freqs >= lo) & (freqs <= hi)
        if not sel.any():
            raise SignalInputError(f"bands: band {name!r} {lo:g}-{hi:g} Hz holds no Welch bin at "
                                   f"{df:g} Hz resolution")
        masks.append(sel)
    lead = arr.shape[:-1]
    rows = arr.reshape(-1, arr.shape[-1])
    bad, counts = window_problems(rows, clip_fraction)
    if bad.any():
        rows = rows.copy()
        rows[bad] = 0.0  # libraries never see NaN/inf; these rows become NaN below
    out = np.empty((rows.shape[0], len(masks)))
    # Blocks of about 8 MB keep Welch's segment copies small for long stacks of windows.
    step = max(1, (1 << 20) // max(1, rows.shape[1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(0, rows.shape[0], step):
            block = rows[i:i + step].astype(np.float64, copy=False)  # the official dtype
            _, psd = welch(block, fs=sfreq, nperseg=nperseg, axis=-1)
            for k, sel in enumerate(masks):
                out[i:i + step, k] = simpson(psd[:, sel], dx=df, axis=-1)
            if relative:
                out[i:i + step] /= simpson(psd, dx=df, axis=-1)[:, None]
    out[bad] = np.nan
    reasons = describe_counts(counts, rows.shape[0])
    if reasons:
        warn_quality("emt_band_power", [*reasons, "their band powers are NaN"], stacklevel=3)
    return out.reshape(*lead, len(masks))


def emt_graph_sequence(
    windows: object,
    sfreq: float,
    sub_window_s: float = 2.0,
    sub_overlap: float = 0.75,
    bands: str | Sequence[Sequence] = "emt_seed",
    *,
    relative: bool = True,
    dtype: type = np.float32,
    chunk: int | None = None,
) -> np.ndarray:
    """EmT graph sequences of EEG windows (segments), as the official preparation code makes them.

    Parameters
    ----------
    windows : array_like, shape (n, n_chans, n_times)
        EEG segments (microvolts), e.g. 20 s windows.
    sfreq : float
        Sampling rate in Hz.
    sub_window_s, sub_overlap : float
        Sub-window length (s) and overlap (:func:`emt_sub_window_starts`).
    bands : str or list of (name, lo_hz, hi_hz)
        Band preset (``emt_seed``, ``emt_faced``/``emt_thu_ep``, ``emt_mahnob``) or bands.
    relative : bool
        Relative band power (EmT's ``rPSD``, the default) or absolute (``PSD``).
    dtype : numpy dtype
        Output dtype (float32 halves the memory of a training set).
    chunk : int or None
        Segments processed per block (None: as many as fit in about 32 MB of sub-windows).

    Returns
    -------
    ndarray, shape (n, n_sub_windows, n_chans, n_bands)
        One graph per sub-window; NaN nodes where a channel's sub-window is unusable (one
        warning for the whole call).
    """
    arr = as_signal_array(windows, "windows", min_ndim=3, max_ndim=3)
    starts, win = emt_sub_window_starts(arr.shape[-1], sfreq, sub_window_s, sub_overlap)
    n, n_ch = arr.shape[:2]
    n_bands = len(emt_bands(bands, sfreq))
    out = np.empty((n, len(starts), n_ch, n_bands), dtype=dtype)
    if chunk is None:
        chunk = max(1, (4 << 20) // max(1, len(starts) * n_ch * win))
    caught: list[warnings.WarningMessage] = []
    for i in range(0, n, chunk):
        block = arr[i:i + chunk]
        view = np.lib.stride_tricks.sliding_window_view(block, win, axis=-1)[:, :, starts]
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            feats = emt_band_power(np.moveaxis(view, 2, 1), sfreq, bands, relative=relative)
        caught += got
        out[i:i + chunk] = feats
    n_bad = int(np.isnan(out).any(axis=-1).sum())
    if n_bad:
        warn_quality("emt_graph_sequence",
                     [f"{n_bad} of {out.shape[0] * out.shape[1] * out.shape[2]} channel "
                      "sub-windows unusable (NaN/inf, flat or clipped); their nodes are NaN"])
    for w in caught:  # anything else (not the per-block quality summary) passes through
        if not str(w.message).startswith("emt_band_power"):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out
