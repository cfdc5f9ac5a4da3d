"""EEG features, vectorised over windows x channels x bands.

Every function takes ``x`` of shape ``(..., n_chans, n_times)`` in microvolts: any number of
leading axes (windows, trials, subjects) is processed in one call, with no Python loop per
window. Windows that contain NaN/inf, are flat or clipped give NaN features and a
:class:`~physioaffect.preprocessing.quality.SignalQualityWarning`; EEG whose amplitude looks like
volts is warned about (features are still computed: a unit error is a scale error).

Definitions
-----------
Differential entropy (DE), ``mode="ln"``
    ``0.5 * ln(2 * pi * e * var(xb))`` where ``xb`` is the window band-passed by a zero-phase
    4th-order Butterworth (``scipy.signal.sosfiltfilt`` applied to the window alone, so edge
    transients of the window enter the variance). This is the entropy in nats of a Gaussian with
    the band-passed variance.
Differential entropy, ``mode="torcheeg"``
    TorchEEG 1.1.3 ``BandDifferentialEntropy``: ``butter(order, [lo/(fs/2), hi/(fs/2)],
    btype="band")`` as (b, a), ``lfilter`` applied to each window from zero state (causal, not
    zero-phase), then ``1/2 * log2(2 * pi * e * var)`` (bits, not nats). The arithmetic is the
    same operation for operation, so results are bit-identical to TorchEEG on the same numpy/scipy.
Band power (EmT definition)
    Welch PSD with 1 s Hann segments (50 % overlap, scipy defaults), integrated by Simpson's rule
    over the bins with ``lo <= f <= hi``; relative band power divides by the integral over all
    bins.
Frontal alpha asymmetry
    ``ln(P_alpha(right)) - ln(P_alpha(left))`` per symmetric pair (positive = more left-frontal
    activity, since alpha power is inversely related to activity).
DASM / RASM
    Difference / ratio of a per-channel feature (usually DE) between left and right channels of
    each symmetric pair (Zheng & Lu 2015, SEED).
Hjorth
    activity ``var(x)``, mobility ``sqrt(var(x')/var(x))``, complexity
    ``mobility(x') / mobility(x)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import signal
from scipy.integrate import simpson

from physioaffect.preprocessing.quality import (
    SignalInputError,
    as_signal_array,
    check_sfreq,
    eeg_unit_problem,
    warn_quality,
    window_problems,
)

__all__ = [
    "BANDS",
    "resolve_bands",
    "differential_entropy",
    "band_power",
    "frontal_alpha_asymmetry",
    "dasm",
    "rasm",
    "hjorth",
    "pair_indices",
]

Band = tuple[str, float, float]

#: Band presets: name -> list of (band name, low Hz, high Hz).
BANDS: dict[str, list[Band]] = {
    # SEED (Zheng & Lu 2015): delta 1-3, theta 4-7, alpha 8-13, beta 14-30, gamma 31-50 Hz.
    "seed5": [
        ("delta", 1.0, 3.0),
        ("theta", 4.0, 7.0),
        ("alpha", 8.0, 13.0),
        ("beta", 14.0, 30.0),
        ("gamma", 31.0, 50.0),
    ],
    # TorchEEG BandDifferentialEntropy defaults.
    "torcheeg4": [
        ("theta", 4.0, 8.0),
        ("alpha", 8.0, 14.0),
        ("beta", 14.0, 31.0),
        ("gamma", 31.0, 49.0),
    ],
    # EmT (Ding et al. 2024) rPSD bands, as in its reference code.
    "emt7": [
        ("delta", 1.0, 4.0),
        ("theta", 4.0, 8.0),
        ("alpha", 8.0, 12.0),
        ("low_beta", 12.5, 16.0),
        ("beta", 16.5, 20.0),
        ("high_beta", 20.5, 28.0),
        ("gamma", 30.0, 45.0),
    ],
}


def resolve_bands(bands: str | Sequence[Sequence], sfreq: float | None = None) -> list[Band]:
    """Return a band list from a preset name or a list of ``(name, lo, hi)``.

    Raises
    ------
    SignalInputError
        Unknown preset, malformed band, ``lo >= hi``, or ``hi`` at or above Nyquist.
    """
    if isinstance(bands, str):
        if bands not in BANDS:
            raise SignalInputError(
                f"bands: unknown preset {bands!r}; expected one of {sorted(BANDS)}"
            )
        out = list(BANDS[bands])
    else:
        out = []
        for b in bands:
            if len(b) != 3:
                raise SignalInputError(f"bands: expected (name, lo_hz, hi_hz), got {b!r}")
            name, lo, hi = b
            out.append((str(name), float(lo), float(hi)))
    if not out:
        raise SignalInputError("bands: empty band list")
    for name, lo, hi in out:
        if not (0 <= lo < hi):
            raise SignalInputError(f"bands: band {name!r} needs 0 <= lo < hi, got {lo:g}-{hi:g} Hz")
        if sfreq is not None and hi >= sfreq / 2:
            raise SignalInputError(
                f"bands: band {name!r} {lo:g}-{hi:g} Hz reaches Nyquist of sfreq={sfreq:g} Hz; "
                f"needs sfreq > {2 * hi:g} Hz"
            )
    return out


def _prepare(x: object, sfreq: float | None, units: str, min_times: int = 2) -> np.ndarray:
    arr = as_signal_array(x, "x", min_ndim=2)
    if sfreq is not None:
        check_sfreq(sfreq)
    if arr.shape[-1] < min_times:
        raise SignalInputError(
            f"x: needs at least {min_times} samples on the last axis, got shape {arr.shape}"
        )
    problem = eeg_unit_problem(arr, units)
    if problem:
        warn_quality("EEG units", [problem], stacklevel=4)
    return arr


def _mask_bad(
    arr: np.ndarray, where: str, clip_fraction: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Flag unusable (window, channel) rows, zero them in a copy so libraries never see NaN."""
    bad, reasons = window_problems(
        arr, clip_fraction=1.0 if clip_fraction is None else clip_fraction
    )
    if bad.any():
        warn_quality(where, [*reasons, "their features are NaN"], stacklevel=4)
        arr = arr.copy()
        arr[bad] = 0.0
    return arr, bad


def _map_chunks(
    func: Callable[[np.ndarray], np.ndarray], x2d: np.ndarray, n_jobs: int
) -> np.ndarray:
    """Apply ``func`` to row blocks of a 2-D array, in threads (scipy filters release the GIL)."""
    if n_jobs is None or n_jobs < 0:
        n_jobs = os.cpu_count() or 1
    rows = x2d.shape[0]
    # Blocks of about 4M samples keep temporary arrays cache- and memory-friendly.
    n_blocks = max(n_jobs, int(np.ceil(x2d.size / 4_000_000)))
    n_blocks = min(n_blocks, rows)
    if n_blocks <= 1:
        return func(x2d)
    blocks = np.array_split(np.arange(rows), n_blocks)
    if n_jobs == 1:
        return np.concatenate([func(x2d[b[0] : b[-1] + 1]) for b in blocks])
    with ThreadPoolExecutor(n_jobs) as pool:
        parts = list(pool.map(lambda b: func(x2d[b[0] : b[-1] + 1]), blocks))
    return np.concatenate(parts)


def differential_entropy(
    x: object,
    sfreq: float,
    bands: str | Sequence[Sequence] = "torcheeg4",
    mode: str = "ln",
    *,
    order: int | None = None,
    units: str = "uV",
    clip_fraction: float | None = 0.05,
    n_jobs: int = 1,
) -> np.ndarray:
    """Differential entropy per channel and band.

    Parameters
    ----------
    x : array_like, shape (..., n_chans, n_times)
        EEG windows in ``units`` (microvolts by default).
    sfreq : float
        Sampling rate in Hz.
    bands : str or list of (name, lo_hz, hi_hz)
        Preset name from :data:`BANDS` or explicit bands.
    mode : {"ln", "torcheeg"}
        ``"ln"``: ``0.5*ln(2*pi*e*var)`` (nats) after zero-phase 4th-order Butterworth
        ``sosfiltfilt`` of each window. ``"torcheeg"``: bit-identical to TorchEEG's
        ``BandDifferentialEntropy`` (order-5 Butterworth (b, a) ``lfilter`` from zero state,
        ``0.5*log2(2*pi*e*var)`` in bits).
    order : int, optional
        Butterworth order; default 4 for ``"ln"`` and 5 (TorchEEG's) for ``"torcheeg"``.
    units : str
        Declared units of ``x``, only used to warn when the amplitude does not fit.
    clip_fraction : float or None
        Fraction of samples on the window's extreme value above which it counts as clipped
        (None disables the clipping check).
    n_jobs : int
        Threads for filtering (-1: all cores).

    Returns
    -------
    ndarray, shape (..., n_chans, n_bands)
        DE in nats (``"ln"``) or bits (``"torcheeg"``); NaN for unusable windows.
    """
    if mode not in ("ln", "torcheeg"):
        raise SignalInputError(f"mode: expected 'ln' or 'torcheeg', got {mode!r}")
    arr = _prepare(x, sfreq, units)
    band_list = resolve_bands(bands, sfreq)
    arr, bad = _mask_bad(arr, "differential_entropy", clip_fraction)
    lead = arr.shape[:-1]
    x2d = arr.reshape(-1, arr.shape[-1])
    out = np.empty((x2d.shape[0], len(band_list)))
    for k, (_, lo, hi) in enumerate(band_list):
        if mode == "torcheeg":
            ordr = 5 if order is None else order
            # Exactly TorchEEG's butter_bandpass: normalised edges, (b, a) form.
            nyq = 0.5 * sfreq
            b, a = signal.butter(ordr, [lo / nyq, hi / nyq], btype="band")

            def _one(block: np.ndarray, b: np.ndarray = b, a: np.ndarray = a) -> np.ndarray:
                filtered = signal.lfilter(b, a, block, axis=-1)
                # Same expression and evaluation order as TorchEEG's opt().
                return 1 / 2 * np.log2(2 * np.pi * np.e * np.var(filtered, axis=-1))
        else:
            ordr = 4 if order is None else order
            sos = signal.butter(ordr, [lo, hi], btype="bandpass", fs=sfreq, output="sos")

            def _one(block: np.ndarray, sos: np.ndarray = sos) -> np.ndarray:
                padlen = min(block.shape[-1] - 1, 3 * (2 * len(sos) + 1))
                filtered = signal.sosfiltfilt(sos, block, axis=-1, padlen=padlen)
                return 0.5 * np.log(2 * np.pi * np.e * np.var(filtered, axis=-1))

        with np.errstate(divide="ignore", invalid="ignore"):
            out[:, k] = _map_chunks(_one, x2d, n_jobs)
    out = out.reshape(*lead, len(band_list))
    out[bad] = np.nan
    return out


def _welch(arr: np.ndarray, sfreq: float, segment_s: float) -> tuple[np.ndarray, np.ndarray]:
    nperseg = min(arr.shape[-1], max(2, int(round(segment_s * sfreq))))
    return signal.welch(arr, fs=sfreq, nperseg=nperseg, axis=-1)


def band_power(
    x: object,
    sfreq: float,
    bands: str | Sequence[Sequence] = "emt7",
    relative: bool = False,
    *,
    segment_s: float = 1.0,
    units: str = "uV",
    clip_fraction: float | None = 0.05,
) -> np.ndarray:
    """Band power by Welch's method, the EmT definition.

    Parameters
    ----------
    x : array_like, shape (..., n_chans, n_times)
        EEG windows in ``units``.
    sfreq : float
        Sampling rate in Hz.
    bands : str or list of (name, lo_hz, hi_hz)
        Preset or explicit bands.
    relative : bool
        Divide by the total power (integral over all Welch bins, 0 to Nyquist).
    segment_s : float
        Welch segment length in seconds (1 s in EmT; shortened to the window if longer).

    Returns
    -------
    ndarray, shape (..., n_chans, n_bands)
        Power in ``units``**2 (absolute) or a fraction of total power (relative); NaN for
        unusable windows.
    """
    arr = _prepare(x, sfreq, units, min_times=4)
    band_list = resolve_bands(bands, sfreq)
    arr, bad = _mask_bad(arr, "band_power", clip_fraction)
    freqs, psd = _welch(arr, sfreq, segment_s)
    df = freqs[1] - freqs[0]
    out = np.empty((*psd.shape[:-1], len(band_list)))
    for k, (name, lo, hi) in enumerate(band_list):
        sel = (freqs >= lo) & (freqs <= hi)
        if sel.sum() < 1:
            raise SignalInputError(
                f"bands: band {name!r} {lo:g}-{hi:g} Hz holds no Welch bin at {df:g} Hz resolution"
            )
        out[..., k] = (
            simpson(psd[..., sel], dx=df, axis=-1) if sel.sum() > 1 else psd[..., sel][..., 0] * df
        )
    if relative:
        total = simpson(psd, dx=df, axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = out / total[..., None]
    out[bad] = np.nan
    return out


def pair_indices(ch_names: Sequence[str], pairs: Sequence[Sequence[str]]) -> np.ndarray:
    """Indices ``(n_pairs, 2)`` of (left, right) channel pairs in ``ch_names``.

    Raises
    ------
    SignalInputError
        A label of a pair is not among ``ch_names``.
    """
    lookup = {str(c).lower(): i for i, c in enumerate(ch_names)}
    idx = []
    for pair in pairs:
        if len(pair) != 2:
            raise SignalInputError(f"pairs: expected (left, right) labels, got {pair!r}")
        row = []
        for label in pair:
            if str(label).lower() not in lookup:
                raise SignalInputError(
                    f"pairs: channel {label!r} is not in ch_names {list(ch_names)}"
                )
            row.append(lookup[str(label).lower()])
        idx.append(row)
    if not idx:
        raise SignalInputError("pairs: no symmetric channel pairs given")
    return np.asarray(idx, dtype=int)


def _check_feature_channels(features: np.ndarray, ch_names: Sequence[str]) -> np.ndarray:
    feats = as_signal_array(features, "features", min_ndim=2)
    if feats.shape[-2] != len(ch_names):
        raise SignalInputError(
            f"features: expected shape (..., n_chans={len(ch_names)}, n_bands), got {feats.shape}"
        )
    return feats


def dasm(features: object, ch_names: Sequence[str], pairs: Sequence[Sequence[str]]) -> np.ndarray:
    """Differential asymmetry: ``features[left] - features[right]`` per pair.

    Parameters
    ----------
    features : array_like, shape (..., n_chans, n_bands)
        Per-channel features, usually :func:`differential_entropy`.
    ch_names : list of str
        Channel labels matching axis -2.
    pairs : list of (left_label, right_label)
        Symmetric pairs, e.g. a montage's ``.pairs``.

    Returns
    -------
    ndarray, shape (..., n_pairs, n_bands)
    """
    feats = _check_feature_channels(features, ch_names)
    idx = pair_indices(ch_names, pairs)
    return feats[..., idx[:, 0], :] - feats[..., idx[:, 1], :]


def rasm(features: object, ch_names: Sequence[str], pairs: Sequence[Sequence[str]]) -> np.ndarray:
    """Rational asymmetry: ``features[left] / features[right]`` per pair.

    Shapes as in :func:`dasm`. A zero right-hand feature gives NaN (not inf).
    """
    feats = _check_feature_channels(features, ch_names)
    idx = pair_indices(ch_names, pairs)
    right = feats[..., idx[:, 1], :]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = feats[..., idx[:, 0], :] / right
    out[right == 0] = np.nan
    return out


def frontal_alpha_asymmetry(
    x: object,
    sfreq: float,
    ch_names: Sequence[str],
    pairs: Sequence[Sequence[str]] = (("F3", "F4"),),
    band: tuple[float, float] = (8.0, 13.0),
    *,
    units: str = "uV",
) -> np.ndarray:
    """Frontal alpha asymmetry ``ln P_alpha(right) - ln P_alpha(left)`` per pair.

    Parameters
    ----------
    x : array_like, shape (..., n_chans, n_times)
        EEG windows.
    sfreq : float
        Sampling rate in Hz.
    ch_names : list of str
        Labels of axis -2.
    pairs : list of (left_label, right_label)
        Frontal pairs, e.g. ``[("F3", "F4"), ("F7", "F8"), ("AF3", "AF4")]``.
    band : (lo_hz, hi_hz)
        Alpha band.

    Returns
    -------
    ndarray, shape (..., n_pairs)
        Positive values mean relatively more left-frontal activity (less left alpha).
    """
    arr = as_signal_array(x, "x", min_ndim=2)
    if arr.shape[-2] != len(ch_names):
        raise SignalInputError(
            f"x: axis -2 has {arr.shape[-2]} channels but ch_names has {len(ch_names)}"
        )
    idx = pair_indices(ch_names, pairs)
    power = band_power(arr, sfreq, [("alpha", band[0], band[1])], units=units)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(power[..., idx[:, 1]]) - np.log(power[..., idx[:, 0]])


def hjorth(x: object, *, clip_fraction: float | None = 0.05) -> np.ndarray:
    """Hjorth parameters of each channel window.

    Parameters
    ----------
    x : array_like, shape (..., n_chans, n_times)

    Returns
    -------
    ndarray, shape (..., n_chans, 3)
        Activity (units**2), mobility and complexity (dimensionless, per sample; multiply
        mobility by ``sfreq / (2*pi)`` for a frequency in Hz).
    """
    arr = as_signal_array(x, "x", min_ndim=2)
    if arr.shape[-1] < 3:
        raise SignalInputError(
            f"x: Hjorth needs at least 3 samples on the last axis, got shape {arr.shape}"
        )
    arr, bad = _mask_bad(arr, "hjorth", clip_fraction)
    d1 = np.diff(arr, axis=-1)
    d2 = np.diff(d1, axis=-1)
    v0, v1, v2 = np.var(arr, axis=-1), np.var(d1, axis=-1), np.var(d2, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mobility = np.sqrt(v1 / v0)
        complexity = np.sqrt(v2 / v1) / mobility
    out = np.stack([v0, mobility, complexity], axis=-1)
    out[bad] = np.nan
    return out
