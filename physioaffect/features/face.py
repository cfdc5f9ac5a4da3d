"""Face features per window: frame-level face measures summarised over the same time span as
an EEG window, the way :func:`physioaffect.features.windows.peripheral_table` summarises
peripheral signals.

Input is any face table (one row per video frame): the ``Face`` stream's channels, or imported
OpenFace/py-feat columns. Bookkeeping channels (status, face box, the raw rPPG waveform) are
not affect features and are left out; every other column gives a window mean and standard
deviation. A frame counts as valid when at least one of its features is finite; a window with
less than ``min_valid`` valid frames gets NaN features (the person looked away, the camera
dropped out) rather than a summary of a few frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from physioaffect.preprocessing.quality import SignalInputError
from physioaffect.streams.face_layout import BOOKKEEPING_LABELS

VALID_FRACTION = "face_valid_fraction"


def face_feature_columns(names: Sequence[str]) -> list[str]:
    """Frame-level columns of ``names`` that are summarised (all but the bookkeeping ones)."""
    return [n for n in names if n not in BOOKKEEPING_LABELS]


def face_feature_names(names: Sequence[str]) -> list[str]:
    """Window-level feature names made from frame-level columns ``names``, in output order."""
    out = []
    for n in face_feature_columns(names):
        out += [f"face_{n}_mean", f"face_{n}_std"]
    return [*out, VALID_FRACTION]


def face_window_values(times: np.ndarray, values: np.ndarray, names: Sequence[str],
                       starts_s: Sequence[float], window_s: float,
                       min_valid: float = 0.5) -> np.ndarray:
    """:func:`face_window_table` as a plain array ``(n_windows, len(face_feature_names(names)))``
    (the live decoder's path: no DataFrame per prediction)."""
    times = np.asarray(times, dtype=float).reshape(-1)
    values = np.asarray(values, dtype=float).reshape(times.size, -1)
    if values.shape[1] != len(names):
        raise SignalInputError(f"face values have {values.shape[1]} columns but {len(names)} names")
    cols = [list(names).index(n) for n in face_feature_columns(names)]
    x = values[:, cols]
    valid = np.isfinite(x).any(axis=1)
    starts = np.asarray(starts_s, dtype=float).reshape(-1)
    order = np.argsort(times, kind="stable")
    times, x, valid = times[order], x[order], valid[order]
    lo = np.searchsorted(times, starts, side="left")
    hi = np.searchsorted(times, starts + window_s, side="left")
    out = np.full((starts.size, 2 * len(cols) + 1), np.nan)
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        n_valid = int(valid[a:b].sum())
        frac = n_valid / (b - a) if b > a else 0.0
        out[i, -1] = frac
        if b > a and frac >= min_valid:
            block = x[a:b][valid[a:b]]
            ok = np.isfinite(block)
            cnt = ok.sum(axis=0)
            filled = np.where(ok, block, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = filled.sum(axis=0) / cnt
                var = (np.where(ok, block - mean, 0.0) ** 2).sum(axis=0) / cnt
            out[i, 0:-1:2] = mean
            out[i, 1:-1:2] = np.sqrt(var)
    return out


def face_window_table(times: np.ndarray, values: np.ndarray, names: Sequence[str],
                      starts_s: Sequence[float], window_s: float,
                      min_valid: float = 0.5) -> pd.DataFrame:
    """Mean and standard deviation of every face feature in each window.

    Parameters
    ----------
    times : ndarray, shape (n_frames,)
        Frame times in seconds, on the clock of ``starts_s``.
    values : ndarray, shape (n_frames, n_columns)
        Frame-level values (NaN where not measurable).
    names : sequence of str
        Column names of ``values``.
    starts_s : sequence of float
        Window starts in seconds.
    window_s : float
        Window length in seconds; a window holds frames with ``start <= t < start + window_s``.
    min_valid : float
        Least fraction of valid frames, relative to the frames the window holds, for a summary;
        a window with no frame at all has fraction 0.

    Returns
    -------
    DataFrame
        One row per window, columns :func:`face_feature_names` (``face_<name>_mean``,
        ``face_<name>_std`` ..., ``face_valid_fraction``).
    """
    out = face_window_values(times, values, names, starts_s, window_s, min_valid)
    return pd.DataFrame(out, columns=face_feature_names(names),
                        index=pd.RangeIndex(out.shape[0], name="window"))
