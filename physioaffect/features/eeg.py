"""EEG features, vectorised over windows x channels x bands.

Every function takes ``x`` of shape ``(..., n_chans, n_times)`` in microvolts: any number of
leading axes (windows, trials, subjects) is processed in one call, with no Python loop per
window. Windows that contain NaN/inf, are flat or clipped give NaN features and a
:class:`~physioaffect.preprocessing.quality.SignalQualityWarning` that says why. So do

* windows too short for a band: a band needs ``min_cycles`` (default 2) cycles of its lower
  edge, so that the window's frequency resolution (1 / length) resolves the band from DC
  (2 s for a band from 1 Hz, 0.5 s from 4 Hz); DE also needs the band-pass filter's full
  edge padding (28 samples at order 4), Welch band power one full ``segment_s`` segment (1 s);
  Hjorth needs 3 samples;
* EEG whose amplitude contradicts its declared unit (microvolts by default): a median channel
  SD below 0.01 "µV" is volts, every feature is NaN (one rule for every EEG feature).

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
    describe_counts,
    eeg_unit_problem,
    warn_quality,
    window_problems,
)

__all__ = [
    "BANDS",
    "resolve_bands",
    "differential_entropy",
    "gaussian_de",
    "band_covariances",
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
    # The 7 bands named in a comment of EmT's official code (Ding et al. 2024). Its
    # ``bandpower`` computes others (SEED: 1-3, 4-8, 8-12, 12-16, 16-20, 20-28, 30-45 Hz, edges
    # inclusive); EmT's graph inputs use those (physioaffect.features.graphs), not these.
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


def _prepare(x: object, sfreq: float | None) -> np.ndarray:
    arr = as_signal_array(x, "x", min_ndim=2)
    if sfreq is not None:
        check_sfreq(sfreq)
    if arr.shape[-1] < 1:
        raise SignalInputError(f"x: no samples on the last axis, got shape {arr.shape}")
    return arr


def band_min_seconds(bands: Sequence[Band], min_cycles: float = 2.0) -> np.ndarray:
    """Shortest window (s) that gives a band feature: ``min_cycles`` cycles of its lower edge.

    A band starting at 0 Hz needs ``min_cycles`` cycles of its upper edge instead.
    """
    return np.array([min_cycles / (lo if lo > 0 else hi) for _, lo, hi in bands])


def _all_nan(arr: np.ndarray, n_out: int, where: str, reasons: list[str]) -> np.ndarray:
    warn_quality(where, [*reasons, "every feature is NaN"], stacklevel=4)
    return np.full((*arr.shape[:-1], n_out), np.nan)


def _too_short(
    n_times: int, sfreq: float, need_s: np.ndarray, names: Sequence[str], where: str
) -> np.ndarray:
    """Bands the window is too short for (bool per band), with one warning naming them."""
    # a hair of slack: a 1 s window at 128 Hz holds exactly one cycle of 1 Hz
    short = n_times / sfreq < need_s - 0.5 / sfreq
    if short.any():
        bad = ", ".join(f"{n} ({s:g} s)" for n, s, k in zip(names, need_s, short, strict=True) if k)
        warn_quality(
            where,
            [f"window of {n_times / sfreq:.3g} s is too short for {bad}: those features are NaN"],
            stacklevel=4,
        )
    return short


def _blockwise(
    arr: np.ndarray,
    compute: Callable[[np.ndarray], np.ndarray],
    n_out: int,
    where: str,
    clip_fraction: float | None,
    n_jobs: int = 1,
    block_samples: int = 1 << 20,
) -> np.ndarray:
    """Run ``compute`` on blocks of channel windows, checking their quality on the way.

    ``arr`` (..., n_times) is cut along its first axis into blocks of about ``block_samples``
    samples (8 MB of float64: cache-friendly temporaries, and no full copy of a strided
    window view). Each block is flattened to (rows, n_times), unusable rows (NaN/inf, flat,
    clipped) are zeroed so that libraries never see them, ``compute`` maps the block to
    (rows, n_out) and unusable rows become NaN. Blocks run in ``n_jobs`` threads (scipy's
    filters and numpy's reductions release the GIL). One warning sums up the problems.
    """
    if n_jobs is None or n_jobs < 0:
        n_jobs = os.cpu_count() or 1
    lead = arr.shape[:-1]
    out = np.empty((*lead, n_out))
    per_first = max(1, int(np.prod(arr.shape[1:])))
    step = max(1, block_samples // per_first)
    starts = range(0, arr.shape[0], step)

    def run(i0: int) -> dict[str, int]:
        block = np.ascontiguousarray(arr[i0 : i0 + step]).reshape(-1, arr.shape[-1])
        bad, counts = window_problems(block, clip_fraction)
        if bad.any():
            block = block.copy() if np.shares_memory(block, arr) else block
            block[bad] = 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            res = compute(block)
        res[bad] = np.nan
        out[i0 : i0 + step] = res.reshape(*out[i0 : i0 + step].shape)
        return counts

    if n_jobs == 1 or len(starts) == 1:
        all_counts = [run(i) for i in starts]
    else:
        with ThreadPoolExecutor(n_jobs) as pool:
            all_counts = list(pool.map(run, starts))
    total = {k: sum(c[k] for c in all_counts) for k in all_counts[0]}
    reasons = describe_counts(total, int(np.prod(lead)))
    if reasons:
        warn_quality(where, [*reasons, "their features are NaN"], stacklevel=4)
    return out


def differential_entropy(
    x: object,
    sfreq: float,
    bands: str | Sequence[Sequence] = "torcheeg4",
    mode: str = "ln",
    *,
    order: int | None = None,
    units: str = "uV",
    clip_fraction: float | None = 0.05,
    min_cycles: float = 2.0,
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
        Declared units of ``x`` ("uV" or "V"); data whose amplitude contradicts them give NaN.
    clip_fraction : float or None
        Fraction of samples on the window's extreme value above which it counts as clipped
        (None disables the clipping check).
    min_cycles : float
        Cycles of a band's lower edge a window must hold (:func:`band_min_seconds`); shorter
        windows give NaN for that band.
    n_jobs : int
        Threads for filtering (-1: all cores).

    Returns
    -------
    ndarray, shape (..., n_chans, n_bands)
        DE in nats (``"ln"``) or bits (``"torcheeg"``); NaN for unusable windows.
    """
    if mode not in ("ln", "torcheeg"):
        raise SignalInputError(f"mode: expected 'ln' or 'torcheeg', got {mode!r}")
    arr = _prepare(x, sfreq)
    band_list = resolve_bands(bands, sfreq)

    if mode == "torcheeg":
        # Exactly TorchEEG's butter_bandpass: normalised edges, (b, a) form, order 5.
        nyq = 0.5 * sfreq
        ordr = 5 if order is None else order
        filters = [
            signal.butter(ordr, [lo / nyq, hi / nyq], btype="band") for _, lo, hi in band_list
        ]
    else:
        ordr = 4 if order is None else order
        filters = [
            signal.butter(ordr, [lo, hi], btype="bandpass", fs=sfreq, output="sos")
            for _, lo, hi in band_list
        ]

    problem = eeg_unit_problem(arr, units)
    if problem:
        return _all_nan(arr, len(band_list), "differential_entropy", [problem])
    # Each band also needs the filter's full edge padding (scipy's default padlen + 1 samples,
    # 28 at order 4): on fewer samples the variance is the filter's transient.
    n_sections = ordr  # a band-pass of order N is N second-order sections
    need = np.maximum(
        band_min_seconds(band_list, min_cycles), (3 * (2 * n_sections + 1) + 1) / sfreq
    )
    short = _too_short(arr.shape[-1], sfreq, need, [b[0] for b in band_list], "differential_entropy")
    if short.all():
        return np.full((*arr.shape[:-1], len(band_list)), np.nan)

    def compute(block: np.ndarray) -> np.ndarray:
        res = np.empty((block.shape[0], len(filters)))
        for k, filt in enumerate(filters):
            if mode == "torcheeg":
                filtered = signal.lfilter(filt[0], filt[1], block, axis=-1)
                # Same expression and evaluation order as TorchEEG's opt().
                res[:, k] = 1 / 2 * np.log2(2 * np.pi * np.e * np.var(filtered, axis=-1))
            else:
                padlen = min(block.shape[-1] - 1, 3 * (2 * len(filt) + 1))
                filtered = signal.sosfiltfilt(filt, block, axis=-1, padlen=padlen)
                res[:, k] = gaussian_de(np.var(filtered, axis=-1))
        return res

    out = _blockwise(arr, compute, len(filters), "differential_entropy", clip_fraction, n_jobs)
    out[..., short] = np.nan
    return out


def gaussian_de(var: np.ndarray) -> np.ndarray:
    """Differential entropy (nats) of a Gaussian of variance ``var``: ``0.5 ln(2 pi e var)``."""
    return 0.5 * np.log(2 * np.pi * np.e * var)


def band_covariances(x: np.ndarray, sfreq: float, bands: str | Sequence[Sequence] = "torcheeg4",
                     order: int = 4, chunk: int = 256) -> np.ndarray:
    """Spatial covariance of each window in each band: ``(n, n_bands, C, C)``, float32.

    The band-passed windows of :func:`differential_entropy` (``"ln"`` mode: zero-phase
    Butterworth of ``order``), channel means removed: the diagonal is the variance whose
    ``0.5 * ln(2 * pi * e * var)`` is the DE, and ``M C M^T`` is the band covariance of the
    spatially mixed windows ``M x`` (filtering and mixing commute), so DE after a spatial
    transform (Euclidean alignment) needs no second pass over the samples.

    Parameters
    ----------
    x : ndarray, shape (n, C, T)
        Windows in microvolts.
    sfreq : float
        Hz.
    bands : str or list of (name, lo_hz, hi_hz)
    """
    band_list = resolve_bands(bands, sfreq)
    filters = [signal.butter(order, [lo, hi], btype="bandpass", fs=sfreq, output="sos")
               for _, lo, hi in band_list]
    x = np.asarray(x)
    n, c, t = x.shape
    out = np.empty((n, len(filters), c, c), dtype=np.float32)
    for i in range(0, n, chunk):
        block = np.asarray(x[i:i + chunk], dtype=np.float64)
        for k, filt in enumerate(filters):
            padlen = min(t - 1, 3 * (2 * len(filt) + 1))
            f = signal.sosfiltfilt(filt, block, axis=-1, padlen=padlen)
            f -= f.mean(axis=-1, keepdims=True)
            out[i:i + chunk, k] = np.einsum("nct,ndt->ncd", f, f) / t
    return out


def band_power(
    x: object,
    sfreq: float,
    bands: str | Sequence[Sequence] = "emt7",
    relative: bool = False,
    *,
    segment_s: float = 1.0,
    units: str = "uV",
    clip_fraction: float | None = 0.05,
    min_cycles: float = 2.0,
    n_jobs: int = 1,
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
        Welch segment length in seconds (1 s in EmT). A window shorter than one segment gives
        NaN (a shorter segment would silently coarsen the frequency resolution).
    units : str
        Declared units of ``x`` ("uV" or "V"); data whose amplitude contradicts them give NaN.
    min_cycles : float
        Cycles of a band's lower edge a window must hold (:func:`band_min_seconds`).
    n_jobs : int
        Threads (-1: all cores).

    Returns
    -------
    ndarray, shape (..., n_chans, n_bands)
        Power in ``units``**2 (absolute) or a fraction of total power (relative); NaN for
        unusable windows.
    """
    arr = _prepare(x, sfreq)
    band_list = resolve_bands(bands, sfreq)
    nperseg = max(2, int(round(segment_s * sfreq)))
    problem = eeg_unit_problem(arr, units)
    if problem:
        return _all_nan(arr, len(band_list), "band_power", [problem])
    need = np.maximum(band_min_seconds(band_list, min_cycles), nperseg / sfreq)
    short = _too_short(arr.shape[-1], sfreq, need, [b[0] for b in band_list], "band_power")
    if short.all():
        return np.full((*arr.shape[:-1], len(band_list)), np.nan)
    freqs = np.fft.rfftfreq(nperseg, 1.0 / sfreq)
    df = freqs[1] - freqs[0]
    selections = []
    for name, lo, hi in band_list:
        sel = (freqs >= lo) & (freqs <= hi)
        if not sel.any():
            raise SignalInputError(
                f"bands: band {name!r} {lo:g}-{hi:g} Hz holds no Welch bin at {df:g} Hz resolution"
            )
        selections.append(sel)

    def compute(block: np.ndarray) -> np.ndarray:
        _, psd = signal.welch(block, fs=sfreq, nperseg=nperseg, axis=-1)
        res = np.empty((block.shape[0], len(selections)))
        for k, sel in enumerate(selections):
            res[:, k] = (
                simpson(psd[:, sel], dx=df, axis=-1) if sel.sum() > 1 else psd[:, sel][:, 0] * df
            )
        if relative:
            res /= simpson(psd, dx=df, axis=-1)[:, None]
        return res

    out = _blockwise(arr, compute, len(selections), "band_power", clip_fraction, n_jobs)
    out[..., short] = np.nan
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
    if arr.shape[-1] < 3:  # two derivatives of fewer samples have no variance
        return _all_nan(arr, 3, "hjorth", [f"windows of {arr.shape[-1]} samples (3 needed)"])

    def compute(block: np.ndarray) -> np.ndarray:
        d1 = np.diff(block, axis=-1)
        d2 = np.diff(d1, axis=-1)
        v0, v1, v2 = np.var(block, axis=-1), np.var(d1, axis=-1), np.var(d2, axis=-1)
        mobility = np.sqrt(v1 / v0)
        complexity = np.sqrt(v2 / v1) / mobility
        return np.stack([v0, mobility, complexity], axis=-1)

    out = _blockwise(arr, compute, 3, "hjorth", clip_fraction)
    return out
