"""Signal-quality indices (SQI) per window: a score in 0-1 and the reasons behind it.

Every window of every signal gets a score. It is the minimum over a few criteria, each mapped so
that its published threshold falls exactly on **0.5**: a window scores 0.5 or more when it passes
every criterion, and below 0.5 as soon as one fails, with one reason per failed criterion. The
default quality threshold, :data:`QUALITY_THRESHOLD`, is therefore 0.5; a stricter caller raises
it (a score of 0.8 means every criterion is comfortably inside its limit). Hard failures (flat
line, NaN, clipping, a window with no beats) score 0.

Criteria and where they come from:

ECG and PPG (Orphanidou et al. 2015, "Signal-quality indices for the electrocardiogram and
photoplethysmogram: derivation and applications to wireless monitoring", IEEE JBHI
19(3):832-838):
    * mean heart rate 40-180 bpm;
    * longest beat-to-beat gap under 3 s;
    * longest over shortest beat interval under 2.2;
    * template correlation: the mean Pearson correlation of each beat (one median beat interval
      centred on the detected peak) with the window's average beat, at least 0.66 for ECG and
      0.86 for PPG. This is NeuroKit2's ``ecg_quality(method="averageQRS")`` and
      ``ppg_quality(method="templatematch")`` per window, vectorised (tests compare the two).
ECG only: kurtosis SQI (kSQI; Li, Clifford & Moody 2008, "Robust heart rate estimation from
    multiple asynchronous noisy sources using signal quality indices and a Kalman filter",
    Physiol. Meas. 29:15-32): the kurtosis of a clean ECG window exceeds 5 (QRS complexes are
    rare, tall events); Gaussian noise has 3.
EDA (Kleckner et al. 2018, "Simple, transparent, and flexible automated quality assessment
    procedures for ambulatory electrodermal activity data", IEEE TBME 65(7):1460-1467): samples
    outside 0.05-60 µS or changing faster than 10 µS/s are invalid, and so is everything within
    5 s of them; a window with more than 5 % invalid samples fails. Out-of-range values also
    catch EDA that is not in microsiemens (raw ADC counts, siemens).
Respiration: a rate of 3-60 breaths per minute from at least 2 breaths in reach of the window.
Temperature: 20-45 °C skin temperature.
Every signal: the window is not flat (:func:`~physioaffect.preprocessing.quality.flat_tolerance`),
    not clipped, and has no NaN.
Agreement of redundant sources (:func:`rate_agreement`, :func:`beat_agreement`): two sources
    of the heart rate (two ECG leads, ECG and PPG) within :data:`HR_TOLERANCE_BPM` (5 bpm) of
    each other; two ECG leads also see the same beats (at least 90 % of each lead's R-peaks
    within 100 ms of one in the other). Where they disagree, both windows fail: which one is
    wrong is not known from the rates alone.
EEG (:func:`eeg_channel_quality`), per channel and window, the bad-channel criteria of the
    preprocessing (PREP, Bigdely-Shamlo et al. 2015, Front. Neuroinform. 9:16): non-finite,
    flat (also for more than half the window), clipped, peak-to-peak amplitude above 500 µV, or
    a robust z-score of the log standard deviation across channels beyond 5 (with 4 or more
    channels; the robust spread is floored at 0.3, so an SD is flagged only when at least 4.5
    times, or under a 4.5th of, the median channel's). The window's EEG score is the
    fraction of good channels.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from physioaffect.preprocessing.quality import flat_tolerance

__all__ = [
    "QUALITY_THRESHOLD",
    "HR_TOLERANCE_BPM",
    "LOW_QUALITY_OPTIONS",
    "Criterion",
    "combine",
    "score_at_least",
    "score_at_most",
    "template_correlation",
    "beat_criteria",
    "kurtosis",
    "raw_window_criteria",
    "eda_invalid_mask",
    "rate_agreement",
    "beat_agreement",
    "eeg_channel_quality",
    "check_low_quality",
]

#: Default quality threshold: windows scoring below it failed at least one criterion.
QUALITY_THRESHOLD = 0.5
#: Largest difference between two heart-rate sources of the same window that counts as agreement.
HR_TOLERANCE_BPM = 5.0
#: What happens to the features of a window below the threshold.
LOW_QUALITY_OPTIONS = ("nan", "flag")

# Orphanidou et al. 2015 (see the module docstring).
HR_RANGE_BPM = (40.0, 180.0)
MAX_GAP_S = 3.0
MAX_RR_RATIO = 2.2
TEMPLATE_CORR = {"ECG": 0.66, "PPG": 0.86}
KURTOSIS_MIN = 5.0
# Kleckner et al. 2018.
EDA_RANGE_US = (0.05, 60.0)
EDA_MAX_SLOPE_US_S = 10.0
EDA_SPREAD_S = 5.0
EDA_MAX_INVALID = 0.05
# EEG.
EEG_MAX_PTP_UV = 500.0
EEG_BAD_Z = 5.0
BEAT_MATCH_S = 0.1
BEAT_MATCH_MIN = 0.9

Criterion = tuple[float, str]  # (score 0-1 with the threshold at 0.5, reason when it fails)


def check_low_quality(low_quality: str, quality_threshold: float) -> None:
    """Validate the two quality options shared by the feature functions."""
    from physioaffect.preprocessing.quality import SignalInputError

    if low_quality not in LOW_QUALITY_OPTIONS:
        raise SignalInputError(
            f"low_quality: expected one of {LOW_QUALITY_OPTIONS}, got {low_quality!r}"
        )
    if not 0.0 <= float(quality_threshold) <= 1.0:
        raise SignalInputError(
            f"quality_threshold: expected a number in 0-1, got {quality_threshold!r}"
        )


def score_at_least(value: float, threshold: float, best: float) -> float:
    """Score of a criterion ``value >= threshold``: 0.5 at the threshold, 1 at ``best``."""
    if not np.isfinite(value):
        return 0.0
    return float(np.clip(0.5 + 0.5 * (value - threshold) / (best - threshold), 0.0, 1.0))


def score_at_most(value: float, threshold: float, best: float) -> float:
    """Score of a criterion ``value <= threshold``: 0.5 at the threshold, 1 at ``best``."""
    return score_at_least(-value, -threshold, -best) if np.isfinite(value) else 0.0


def combine(criteria: Sequence[Criterion]) -> tuple[float, list[str]]:
    """The window's score (minimum over the criteria) and the reasons of those that failed."""
    if not criteria:
        return 1.0, []
    score = float(min(c[0] for c in criteria))
    return score, [reason for s, reason in criteria if s < 0.5]


# --------------------------------------------------------------------------- beats


def template_correlation(
    x: np.ndarray, peaks: np.ndarray, half_width: int
) -> tuple[float, int]:
    """Mean correlation of each beat with the average beat (Orphanidou 2015).

    Parameters
    ----------
    x : ndarray, shape (n_times,)
        Cleaned signal.
    peaks : ndarray of int
        Beat fiducials (R-peaks, pulse peaks) whose whole segment lies inside ``x``.
    half_width : int
        Samples each side of the peak (half a median beat interval).

    Returns
    -------
    mean_correlation : float
        NaN with fewer than 2 beats.
    n_beats : int
        Beats used.
    """
    p = peaks[(peaks - half_width >= 0) & (peaks + half_width < x.size)]
    if p.size < 2 or half_width < 2:
        return float("nan"), int(p.size)
    beats = x[p[:, None] + np.arange(-half_width, half_width + 1)[None, :]]
    beats = beats - beats.mean(axis=1, keepdims=True)
    template = beats.mean(axis=0)
    norm = np.linalg.norm(beats, axis=1) * np.linalg.norm(template)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = beats @ template / norm
    corr = np.where(norm > 0, corr, 0.0)
    return float(np.mean(corr)), int(p.size)


def beat_criteria(
    x: np.ndarray, peaks: np.ndarray, fs: float, start: int, stop: int, kind: str
) -> list[Criterion]:
    """Orphanidou's feasibility rules and template correlation for the beats in a window.

    Parameters
    ----------
    x : ndarray
        Cleaned signal of the whole recording.
    peaks : ndarray of int
        Beat indices in the whole recording.
    fs : float
        Hz.
    start, stop : int
        The window, samples.
    kind : {"ECG", "PPG"}
    """
    p = peaks[(peaks >= start) & (peaks < stop)]
    dur = (stop - start) / fs
    if p.size < 3:
        return [(0.0, f"{p.size} beats detected in {dur:.1f} s (3 needed; wrong sampling rate "
                       "or channel?)")]
    rr = np.diff(p) / fs
    # gaps at the window's edges count too: a beat missing at the start is a gap
    edge_gap = max((p[0] - start) / fs, (stop - 1 - p[-1]) / fs)
    rate = 60.0 / float(np.mean(rr))
    lo, hi = HR_RANGE_BPM
    gap = max(float(rr.max()), edge_gap)
    ratio = float(rr.max() / rr.min()) if rr.min() > 0 else float("inf")
    half = int(round(0.5 * float(np.median(rr)) * fs))
    corr, _ = template_correlation(x[start:stop], p - start, half)
    c0 = TEMPLATE_CORR[kind]
    out: list[Criterion] = [
        (min(score_at_least(rate, lo, lo + 10), score_at_most(rate, hi, hi - 20)),
         f"beat rate {rate:.0f} bpm outside {lo:g}-{hi:g}"),
        (score_at_most(gap, MAX_GAP_S, 1.5), f"gap of {gap:.1f} s without a beat (over {MAX_GAP_S:g} s)"),
        (score_at_most(ratio, MAX_RR_RATIO, 1.2),
         f"beat intervals differ {ratio:.1f}-fold (over {MAX_RR_RATIO:g}): missed or extra beats"),
        (score_at_least(corr, c0, 1.0),
         f"beats correlate {corr:.2f} with their template (under {c0:g})"),
    ]
    return out


def kurtosis(x: np.ndarray) -> float:
    """Pearson kurtosis (3 for Gaussian noise) of a 1-D window."""
    d = x - x.mean()
    v = float(np.mean(d * d))
    return float(np.mean(d**4) / v**2) if v > 0 else float("nan")


# --------------------------------------------------------------------------- any signal


def raw_window_criteria(raw: np.ndarray, clip_fraction: float) -> list[Criterion]:
    """Flat, clipped and NaN checks of one window of the raw signal (hard failures: score 0)."""
    n = raw.size
    if n == 0:
        return [(0.0, "empty window")]
    finite = np.isfinite(raw)
    if not finite.all():
        return [(0.0, f"{1 - finite.mean():.0%} of the window is NaN or inf")]
    hi, lo = float(raw.max()), float(raw.min())
    if hi - lo <= flat_tolerance(max(abs(hi), abs(lo)), raw.dtype):
        return [(0.0, f"flat line (constant {lo:.6g})")]
    if n >= 20:
        frac = max(np.count_nonzero(raw == hi), np.count_nonzero(raw == lo)) / n
        if frac > clip_fraction and np.unique(raw[:: max(1, n // 2000)]).size >= 20:
            return [(0.0, f"clipped: {frac:.0%} of the window on its extreme value")]
    return []


# --------------------------------------------------------------------------- EDA


def eda_invalid_mask(eda_us: np.ndarray, fs: float) -> np.ndarray:
    """Kleckner et al. (2018) invalid samples of a (low-passed) EDA signal in microsiemens.

    Out of 0.05-60 µS, or changing faster than 10 µS/s, and everything within 5 s of such a
    sample.
    """
    lo, hi = EDA_RANGE_US
    bad = ~np.isfinite(eda_us) | (eda_us < lo) | (eda_us > hi)
    slope = np.abs(np.gradient(eda_us) * fs) if eda_us.size > 1 else np.zeros_like(eda_us)
    bad |= slope > EDA_MAX_SLOPE_US_S
    if not bad.any():
        return bad
    # spread by +-5 s with a running count (no per-sample loop)
    k = int(round(EDA_SPREAD_S * fs))
    c = np.concatenate([[0], np.cumsum(bad)])
    idx = np.arange(eda_us.size)
    return (c[np.minimum(idx + k + 1, eda_us.size)] - c[np.maximum(idx - k, 0)]) > 0


def eda_criteria(
    cleaned: np.ndarray, invalid: np.ndarray, start: int, stop: int
) -> list[Criterion]:
    """Kleckner et al. (2018) criterion for one EDA window (``invalid`` from
    :func:`eda_invalid_mask` on the same samples)."""
    seg = invalid[start:stop]
    if seg.size == 0:
        return [(0.0, "empty window")]
    frac = float(seg.mean())
    if frac <= EDA_MAX_INVALID:
        return [(score_at_most(frac, EDA_MAX_INVALID, 0.0), "")]
    level = cleaned[start:stop]
    lo, hi = EDA_RANGE_US
    why = f"{frac:.0%} of the window invalid by Kleckner 2018 rules"
    med = float(np.median(level))
    if not lo <= med <= hi:
        why += f" (level {med:.3g} outside {lo:g}-{hi:g} µS: not microsiemens?)"
    else:
        why += f" (out of {lo:g}-{hi:g} µS or faster than {EDA_MAX_SLOPE_US_S:g} µS/s nearby)"
    return [(score_at_most(frac, EDA_MAX_INVALID, 0.0), why)]


# --------------------------------------------------------------------------- agreement


def rate_agreement(
    rate_a: np.ndarray, rate_b: np.ndarray, names: tuple[str, str],
    tolerance: float = HR_TOLERANCE_BPM,
) -> tuple[np.ndarray, list[str]]:
    """Score per window of two heart-rate sources agreeing within ``tolerance`` bpm.

    Returns
    -------
    scores : ndarray, shape (n_windows,)
        0.5 at the tolerance, 1 when equal; NaN where either rate is NaN (nothing to compare).
    reasons : list of str
        Per window, the disagreement ("" when they agree or cannot be compared).
    """
    a = np.asarray(rate_a, dtype=float)
    b = np.asarray(rate_b, dtype=float)
    diff = np.abs(a - b)
    scores = np.where(np.isfinite(diff), np.clip(1.0 - 0.5 * diff / tolerance, 0.0, 1.0), np.nan)
    reasons = [
        f"{names[0]} {x:.0f} bpm and {names[1]} {y:.0f} bpm differ by {d:.0f} bpm "
        f"(over {tolerance:g})" if np.isfinite(d) and d > tolerance else ""
        for x, y, d in zip(a, b, diff, strict=True)
    ]
    return scores, reasons


def beat_agreement(
    peaks_a_s: np.ndarray, peaks_b_s: np.ndarray, starts_s: np.ndarray, window_s: float,
    names: tuple[str, str], tol_s: float = BEAT_MATCH_S,
) -> tuple[np.ndarray, list[str]]:
    """Score per window of two ECG leads seeing the same beats.

    The share of each lead's beats in the window with a beat of the other lead within
    ``tol_s``; the smaller share must be at least 0.9 (score 0.5 there, 1 at full agreement).

    Parameters
    ----------
    peaks_a_s, peaks_b_s : ndarray
        Beat times (s, same clock) of the two leads.
    starts_s : ndarray
        Window starts (s).
    window_s : float
        Window length (s).
    """
    a = np.sort(np.asarray(peaks_a_s, dtype=float))
    b = np.sort(np.asarray(peaks_b_s, dtype=float))

    def matched(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if y.size == 0:
            return np.zeros(x.size, bool)
        j = np.clip(np.searchsorted(y, x), 1, max(y.size - 1, 1))
        near = np.minimum(np.abs(y[j] - x), np.abs(y[j - 1] - x))
        return near <= tol_s

    ma, mb = matched(a, b), matched(b, a)
    scores = np.full(len(starts_s), np.nan)
    reasons = [""] * len(starts_s)
    for k, t0 in enumerate(starts_s):
        ia = (a >= t0) & (a < t0 + window_s)
        ib = (b >= t0) & (b < t0 + window_s)
        if not ia.any() and not ib.any():
            continue
        share = min(ma[ia].mean() if ia.any() else 0.0, mb[ib].mean() if ib.any() else 0.0)
        scores[k] = score_at_least(share, BEAT_MATCH_MIN, 1.0)
        if share < BEAT_MATCH_MIN:
            reasons[k] = (
                f"{names[0]} and {names[1]} agree on only {share:.0%} of their beats "
                f"(within {tol_s * 1000:.0f} ms; {BEAT_MATCH_MIN:.0%} needed)"
            )
    return scores, reasons


# --------------------------------------------------------------------------- EEG


def eeg_channel_quality(
    windows: np.ndarray, ch_names: Sequence[str] | None = None, *,
    clip_fraction: float | None = 0.05, max_ptp_uv: float = EEG_MAX_PTP_UV,
    bad_z: float = EEG_BAD_Z,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Bad-channel criteria per channel and window, and the window's EEG score.

    Parameters
    ----------
    windows : ndarray, shape (n_windows, n_chans, n_times)
        EEG in microvolts.
    ch_names : list of str, optional
        Labels for the reasons.

    Returns
    -------
    scores : ndarray, shape (n_windows,)
        Fraction of good channels (0-1).
    bad : ndarray of bool, shape (n_windows, n_chans)
    reasons : list of str
        Per window, the bad channels and why ("" when all are good).
    """
    from physioaffect.preprocessing.quality import window_problems

    w = np.asarray(windows)
    n_win, n_ch = w.shape[0], w.shape[1]
    names = list(ch_names) if ch_names is not None else [f"ch{i}" for i in range(n_ch)]
    why = np.full((n_win, n_ch), "", dtype=object)
    nonfinite_or_flat, _ = window_problems(w, None)
    with np.errstate(invalid="ignore"):
        hi, lo = w.max(axis=-1), w.min(axis=-1)
    ptp = hi - lo
    flat = nonfinite_or_flat & np.isfinite(ptp)
    why[~np.isfinite(ptp)] = "NaN/inf"
    why[flat] = "flat"
    bad = nonfinite_or_flat.copy()
    if clip_fraction is not None and w.shape[-1] >= 20:
        clipped, _ = window_problems(w, clip_fraction)
        clipped &= ~bad
        why[clipped] = "clipped"
        bad |= clipped
    # a lead that drops out for part of the window: half of its sample steps are exactly zero
    stuck = ~bad & (np.count_nonzero(np.diff(w, axis=-1) == 0, axis=-1) > 0.5 * (w.shape[-1] - 1))
    why[stuck] = "flat for over half the window"
    bad |= stuck
    big = ~bad & (ptp > max_ptp_uv)
    for i, j in zip(*np.nonzero(big), strict=True):
        why[i, j] = f"peak-to-peak {ptp[i, j]:.0f} µV > {max_ptp_uv:g}"
    bad |= big
    if n_ch >= 4:
        with np.errstate(invalid="ignore", divide="ignore"):
            logsd = np.log(np.where(bad, np.nan, w.std(axis=-1)))
        with warnings.catch_warnings():  # windows whose channels are all bad already: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(logsd, axis=1, keepdims=True)
            # the spread is floored at 0.3: channels of near-equal SD must not make a normal
            # 1.6-fold difference (occipital alpha) look extreme; flagged are SDs at least
            # e^(5 * 0.3) = 4.5 times the median channel's, or under a 4.5th of it
            mad = np.maximum(1.4826 * np.nanmedian(np.abs(logsd - med), axis=1, keepdims=True),
                             0.3)
        z = (logsd - med) / mad
        out = np.isfinite(z) & (np.abs(z) > bad_z)
        for i, j in zip(*np.nonzero(out), strict=True):
            why[i, j] = f"SD robust z {z[i, j]:+.1f}"
        bad |= out
    scores = 1.0 - bad.mean(axis=1)
    reasons = [
        "; ".join(f"{names[j]}: {why[i, j]}" for j in np.flatnonzero(bad[i])) for i in range(n_win)
    ]
    return scores, bad, reasons
