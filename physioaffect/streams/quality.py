"""Per-channel signal-quality verdicts for ``physioaffect check``.

Verdicts, in the order they are tested:

- ``no data``: fewer than 2 samples arrived;
- ``non-finite``: NaN or inf values;
- ``flat``: no variation (standard deviation below ``flat_threshold`` in the
  channel's unit, or a constant signal);
- ``saturated``: at least 5 % of samples sit at the channel's extreme values
  (clipped against the rail), or EEG beyond +-1 V (1e6 uV);
- ``line noise``: mains (50 or 60 Hz +-1 Hz) carries more than half of the
  power between 1 Hz and min(100 Hz, Nyquist) (needs >= 1 s at >= 125 Hz);
- ``plausible`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

VERDICTS = ("no data", "non-finite", "flat", "saturated", "line noise", "plausible")


@dataclass(frozen=True)
class ChannelQuality:
    label: str
    verdict: str
    std: float
    line_fraction: float

    @property
    def ok(self) -> bool:
        return self.verdict == "plausible"


def channel_quality(
    samples: np.ndarray, sfreq: float, labels: list[str], flat_threshold: float = 1e-6,
    stream_type: str = "",
) -> list[ChannelQuality]:
    """Verdict per channel of ``samples`` (shape (n_samples, n_channels)) at ``sfreq`` Hz."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    out = []
    n = x.shape[0]
    line = np.full(x.shape[1], np.nan)
    finite_all = np.isfinite(x).all(axis=0)
    if n >= sfreq and sfreq >= 125 and n >= 128:
        xs = np.where(np.isfinite(x), x, 0.0)
        f, pxx = sps.welch(xs - xs.mean(axis=0), fs=sfreq, nperseg=int(min(n, 2 * sfreq)), axis=0)
        band = (f >= 1) & (f <= min(100, sfreq / 2))
        total = pxx[band].sum(axis=0)
        mains = np.zeros(x.shape[1])
        for f0 in (50.0, 60.0):
            sel = band & (np.abs(f - f0) <= 1.0)
            mains = np.maximum(mains, pxx[sel].sum(axis=0))
        line = np.divide(mains, total, out=np.zeros_like(mains), where=total > 0)
    for k, label in enumerate(labels):
        col = x[:, k]
        if n < 2:
            out.append(ChannelQuality(label, "no data", np.nan, np.nan))
            continue
        if not finite_all[k]:
            out.append(ChannelQuality(label, "non-finite", np.nan, np.nan))
            continue
        sd = float(col.std())
        lo, hi = col.min(), col.max()
        at_rail = np.mean((col == lo) | (col == hi)) if hi > lo else 1.0
        if sd <= flat_threshold:
            verdict = "flat"
        elif at_rail >= 0.05 or (stream_type == "EEG" and max(abs(lo), abs(hi)) > 1e6):
            verdict = "saturated"
        elif np.isfinite(line[k]) and line[k] > 0.5:
            verdict = "line noise"
        else:
            verdict = "plausible"
        out.append(ChannelQuality(label, verdict, sd, float(line[k])))
    return out
