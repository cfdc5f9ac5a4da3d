"""Input checks shared by preprocessing and feature extraction.

Two kinds of problems are told apart:

* **Caller errors** (wrong shape, a non-positive sampling rate, a band above Nyquist) raise
  :class:`SignalInputError` at the public function, with a one-line message naming the argument
  and what was expected.
* **Data problems** (NaN or inf samples, flat lines, clipping, a window too short, EEG that
  looks like volts instead of microvolts) are *not* exceptions: the affected features become NaN
  and a :class:`SignalQualityWarning` says why. :func:`signal_problems` returns the reasons for
  one 1-D signal; :func:`window_problems` does the same, vectorised, for many windows at once.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from physioaffect.errors import PhysioAffectError

__all__ = [
    "SignalInputError",
    "SignalQualityWarning",
    "as_signal_array",
    "check_sfreq",
    "signal_problems",
    "window_problems",
    "describe_counts",
    "fill_short_nan_runs",
    "eeg_unit_problem",
    "flat_tolerance",
    "warn_quality",
]


class SignalInputError(PhysioAffectError, ValueError):
    """A public function received an argument of the wrong shape, type or range."""


class SignalQualityWarning(UserWarning):
    """Features were set to NaN because the input signal is unusable; the message says why."""


def warn_quality(where: str, reasons: Sequence[str], stacklevel: int = 3) -> None:
    """Emit one :class:`SignalQualityWarning` ``"<where>: reason; reason"``."""
    if reasons:
        warnings.warn(
            f"{where}: " + "; ".join(reasons), SignalQualityWarning, stacklevel=stacklevel
        )


def check_sfreq(sfreq: float, name: str = "sfreq", minimum: float | None = None) -> float:
    """Validate a sampling rate in Hz and return it as float.

    Raises
    ------
    SignalInputError
        If ``sfreq`` is not a finite positive number, or below ``minimum``.
    """
    try:
        value = float(sfreq)
    except (TypeError, ValueError):
        raise SignalInputError(f"{name}: expected a sampling rate in Hz, got {sfreq!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise SignalInputError(f"{name}: expected a positive sampling rate in Hz, got {sfreq!r}")
    if minimum is not None and value < minimum:
        raise SignalInputError(f"{name}: {value:g} Hz is below the {minimum:g} Hz this needs")
    return value


def as_signal_array(
    x: object, name: str = "x", min_ndim: int = 1, max_ndim: int | None = None
) -> np.ndarray:
    """Return ``x`` as a floating-point ndarray, checking its number of dimensions.

    Integer input is converted to float64; float32 and float64 are kept as they are (so that
    results can be bit-identical to libraries that see the same dtype).
    """
    if hasattr(x, "get_data") and not isinstance(x, np.ndarray):
        raise SignalInputError(
            f"{name}: expected an array, got {type(x).__name__}; pass raw.get_data()"
        )
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise SignalInputError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise SignalInputError(f"{name}: expected real values, got a complex array")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if arr.ndim < min_ndim or (max_ndim is not None and arr.ndim > max_ndim):
        want = f"{min_ndim}" if max_ndim == min_ndim else f"at least {min_ndim}"
        if max_ndim is not None and max_ndim != min_ndim:
            want = f"{min_ndim} to {max_ndim}"
        raise SignalInputError(f"{name}: expected {want} dimensions, got shape {arr.shape}")
    return arr


def _runs(mask: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a 1-D boolean mask."""
    if not mask.any():
        return np.zeros(0, dtype=int)
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return edges[1::2] - edges[0::2]


def fill_short_nan_runs(
    x: np.ndarray, sfreq: float, max_gap_s: float = 0.25
) -> tuple[np.ndarray, list[str]]:
    """Linearly interpolate NaN runs no longer than ``max_gap_s`` in a 1-D signal.

    Returns the (possibly copied) signal and the reasons it stays unusable (longer NaN runs,
    all NaN). Dropped samples on a wireless link are short; those are repaired, a detached
    electrode is not.
    """
    nan = np.isnan(x)
    if not nan.any():
        return x, []
    if nan.all():
        return x, ["all samples are NaN"]
    longest = _runs(nan).max()
    if longest > max_gap_s * sfreq:
        return x, [f"NaN run of {longest / sfreq:.2f} s (longer than {max_gap_s:g} s)"]
    idx = np.arange(x.size)
    y = x.copy()
    y[nan] = np.interp(idx[nan], idx[~nan], x[~nan])
    return y, []


def flat_tolerance(
    peak: np.ndarray | float, dtype: np.dtype | type = np.float64, resolution: float = 0.0
) -> np.ndarray | float:
    """Largest peak-to-peak range that still counts as a flat line.

    A constant stored in floating point is not always exactly constant after arithmetic (a
    constant -0.0236 mV has a standard deviation of 3.5e-18 from rounding alone), so flatness is
    judged against the resolution of the numbers at the signal's scale: 64 units in the last
    place of the largest magnitude (``64 * eps(dtype) * peak``), or one step of the
    acquisition's ``resolution`` (e.g. an ADC step) when that is larger.

    Parameters
    ----------
    peak : float or ndarray
        Largest absolute value of the signal (per window when an array).
    dtype : numpy dtype
        Storage type of the signal (float32 has a coarser resolution than float64).
    resolution : float
        Known quantisation step of the acquisition in signal units (0: unknown).
    """
    eps = np.finfo(np.dtype(dtype) if np.issubdtype(np.dtype(dtype), np.floating) else np.float64).eps
    return np.maximum(64.0 * eps * np.abs(peak), resolution)


def signal_problems(
    x: np.ndarray,
    sfreq: float,
    *,
    min_seconds: float = 0.0,
    clip_fraction: float = 0.05,
    resolution: float = 0.0,
) -> list[str]:
    """Reasons why a 1-D signal cannot give features; empty when it can.

    Parameters
    ----------
    x : ndarray, shape (n_times,)
        The signal, NaN runs already repaired by :func:`fill_short_nan_runs` where possible.
    sfreq : float
        Sampling rate in Hz.
    min_seconds : float
        Shortest usable duration in seconds.
    clip_fraction : float
        The signal counts as clipped when more than this fraction of samples sit exactly on its
        maximum or on its minimum (an amplifier or ADC rail). Signals with fewer than 20 distinct
        values are not judged (coarse quantisation would look like clipping).
    resolution : float
        Quantisation step of the acquisition in signal units (0: unknown); a signal that varies
        by no more than this, or than rounding at its scale, is flat (:func:`flat_tolerance`).
    """
    reasons: list[str] = []
    n = x.shape[-1]
    if n / sfreq < min_seconds:
        reasons.append(f"too short: {n / sfreq:.2f} s < {min_seconds:g} s needed")
    if n == 0:
        return reasons or ["empty signal"]
    if np.isinf(x).any():
        reasons.append("contains inf")
    nan = np.isnan(x)
    if nan.all():
        reasons.append("all samples are NaN")
        return reasons
    if nan.any():
        reasons.append(f"contains NaN ({nan.mean():.1%} of samples)")
    finite = x[np.isfinite(x)]
    if finite.size:
        hi, lo = float(finite.max()), float(finite.min())
        if hi - lo <= flat_tolerance(max(abs(hi), abs(lo)), x.dtype, resolution):
            reasons.append(f"flat line (constant {lo:.6g}: no variation beyond rounding)")
            return reasons
    if finite.size >= 20 and clip_fraction < 1:
        hi, lo = finite.max(), finite.min()
        frac = max(np.mean(finite == hi), np.mean(finite == lo))
        if frac > clip_fraction and np.unique(finite[:: max(1, finite.size // 5000)]).size >= 20:
            reasons.append(f"clipped: {frac:.0%} of samples on the signal's extreme value")
    return reasons


def window_problems(
    windows: np.ndarray, clip_fraction: float | None = 0.05
) -> tuple[np.ndarray, dict[str, int]]:
    """Vectorised quality check of many windows (two to four passes over the data).

    Parameters
    ----------
    windows : ndarray, shape (..., n_times)
    clip_fraction : float or None
        See :func:`signal_problems`; None disables the clipping check.

    Returns
    -------
    bad : ndarray of bool, shape (...)
        True where the window is unusable.
    counts : dict
        Number of windows per problem: ``"NaN/inf samples"``, ``"flat line"``, ``"clipped"``.
    """
    with np.errstate(invalid="ignore"):
        hi = windows.max(axis=-1)
        lo = windows.min(axis=-1)
    # NaN propagates into max/min and inf shows up in them: no separate isfinite pass needed.
    nonfinite = ~(np.isfinite(hi) & np.isfinite(lo))
    with np.errstate(invalid="ignore"):
        # judged against rounding at the window's scale, not exact equality (flat_tolerance)
        flat = ~nonfinite & (
            hi - lo <= flat_tolerance(np.maximum(np.abs(hi), np.abs(lo)), windows.dtype)
        )
    bad = nonfinite | flat
    counts = {"NaN/inf samples": int(nonfinite.sum()), "flat line": int(flat.sum()), "clipped": 0}
    if clip_fraction is not None and windows.shape[-1] >= 20:
        limit = clip_fraction * windows.shape[-1]
        at_hi = np.count_nonzero(windows == hi[..., None], axis=-1)
        at_lo = np.count_nonzero(windows == lo[..., None], axis=-1)
        clipped = ~bad & (np.maximum(at_hi, at_lo) > limit)
        counts["clipped"] = int(clipped.sum())
        bad |= clipped
    return bad, counts


def describe_counts(counts: dict[str, int], total: int) -> list[str]:
    """Reasons such as ``"flat line in 3 of 120 channel windows"`` for non-zero counts."""
    return [f"{kind} in {n} of {total} channel windows" for kind, n in counts.items() if n]


def eeg_unit_problem(x: np.ndarray, units: str = "uV") -> str | None:
    """Detect EEG whose amplitude does not match the declared unit.

    Scalp EEG has a standard deviation of a few to a few hundred microvolts. A median channel
    standard deviation below 0.01 in data declared as microvolts means it is almost certainly in
    volts (factor 1e6 too small); above 0.01 in data declared as volts, almost certainly
    microvolts.

    Returns
    -------
    str or None
        A reason to warn about, or None when the amplitude fits the unit.
    """
    # A spread of at most 256 channel windows decides; the whole array would cost a full pass
    # (and a reshape of a strided view a full copy).
    n_rows = int(np.prod(x.shape[:-1]))
    pick = np.unique(np.linspace(0, max(n_rows - 1, 0), 256).astype(int))
    rows = x[np.unravel_index(pick, x.shape[:-1])] if x.ndim > 1 else x[None]
    with np.errstate(invalid="ignore"):
        std = np.std(rows, axis=-1)
    std = std[np.isfinite(std) & (std > 0)]
    if std.size == 0:
        return None
    med = float(np.median(std))
    if units in ("uV", "µV", "microvolts") and med < 1e-2:
        return (
            f"EEG declared in microvolts has a median channel SD of {med:.3g}: it looks like volts; "
            "multiply by 1e6"
        )
    if units in ("V", "volts") and med > 1e-2:
        return (
            f"EEG declared in volts has a median channel SD of {med:.3g}: it looks like microvolts"
        )
    return None
