"""Remote photoplethysmography: the pulse in the colour of facial skin.

The plane-orthogonal-to-skin method (POS; Wang, den Brinker, Stuijk & de Haan 2017,
"Algorithmic principles of remote PPG", IEEE TBME 64(7):1479-1491, Algorithm 1) projects the
temporally normalised mean skin colour onto a plane orthogonal to the skin tone, which cancels
the intensity changes that motion and lighting cause, and tunes the two projections against each
other per short window. The pulse rate is the spectral peak of the result in 0.7-4 Hz
(42-240 bpm).

A spectral peak exists in noise too, so the rate is reported only when it is believable
(:func:`estimate_pulse`): the window is cut into overlapping sub-windows, each sub-window's peak
gets a harmonic check (a peak whose half frequency carries a quarter of its power or more is
the second harmonic of a pulse at that half frequency), the rate is the median of the
sub-windows' rates, and it is NaN with a reason when the sub-windows disagree by more than
:data:`MAX_SPREAD_BPM` or the signal-to-noise ratio at the median rate is below
:data:`MIN_SNR_DB`. The gate was set on the degraded synthetic videos of
:mod:`physioaffect.face.synthetic` (small skin regions, MJPEG at low quality, noise, low light,
drift, motion, no pulse at all) and checked on other rates by ``benchmarks/bench_face.py``.

Only numpy/scipy: this module works without the ``face`` extra (it needs mean colours, not
images).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal as sps

from physioaffect.face.errors import FaceError

#: Pulse band searched for the rate, Hz (42-240 bpm).
PULSE_BAND_HZ = (0.7, 4.0)
#: Least signal-to-noise ratio (dB, :func:`pulse_rate`) at which a rate is reported. On the
#: degraded synthetic set at 58, 76, 97 and 112 bpm the highest SNR of a wrong estimate was
#: 0.2 dB (no pulse at all); at 52, 67, 88, 104 and 118 bpm an MPEG-4 video gave a stable wrong
#: rate (53 bpm for 118) at 3.4 dB. 4 dB is above both; the benchmark checks it on a third set
#: of rates.
MIN_SNR_DB = 4.0
#: Largest distance (bpm) of a sub-window's rate from their median for the rate to be reported.
MAX_SPREAD_BPM = 4.0
#: Sub-window length and hop (s) of :func:`estimate_pulse`.
SUB_WINDOW_S = 6.0
SUB_STEP_S = 1.0

# POS projection matrix (rows: S1 = G - B, S2 = -2R + G + B) for RGB column order.
_POS_P = np.array([[0.0, 1.0, -1.0], [-2.0, 1.0, 1.0]])


def pos(rgb: np.ndarray, sampling_rate: float, window: float = 1.6) -> np.ndarray:
    """Pulse signal from mean skin colour by POS (Wang et al. 2017, Algorithm 1).

    Parameters
    ----------
    rgb : ndarray, shape (n_samples, 3)
        Mean skin colour per frame in R, G, B column order (any linear scale, e.g. 0-255).
    sampling_rate : float
        Frame rate in Hz (uniform sampling).
    window : float
        Length of the sliding window in seconds (1.6 s in the paper: long enough for one
        pulse at 40 bpm).

    Returns
    -------
    ndarray, shape (n_samples,)
        The overlap-added pulse signal (arbitrary units, zero mean per window). Input shorter
        than one window gives all NaN.
    """
    c = np.asarray(rgb, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 3:
        raise FaceError(f"pos: rgb must have shape (n_samples, 3), got {c.shape}")
    n = c.shape[0]
    win = max(2, int(round(window * sampling_rate)))
    if n < win:
        return np.full(n, np.nan)
    # windows: (n_windows, 3, win); temporal normalisation removes the skin tone (DC) per window
    w = sliding_window_view(c, win, axis=0)
    mean = w.mean(axis=2, keepdims=True)
    cn = w / np.where(mean > 0, mean, np.nan)
    s = np.einsum("pc,kcl->kpl", _POS_P, cn)  # (n_windows, 2, win)
    s1, s2 = s[:, 0, :], s[:, 1, :]
    std1, std2 = s1.std(axis=1, keepdims=True), s2.std(axis=1, keepdims=True)
    alpha = np.divide(std1, std2, out=np.zeros_like(std1), where=std2 > 0)
    h = s1 + alpha * s2
    h -= h.mean(axis=1, keepdims=True)
    out = np.zeros(n)
    n_win = h.shape[0]
    # overlap-add: one vector add per lag is far cheaper than a python loop over windows
    for k in range(win):
        out[k : k + n_win] += h[:, k]
    return np.nan_to_num(out)


@lru_cache(maxsize=64)
def _bandpass_sos(fs_centi_hz: int, lo: float, hi: float) -> np.ndarray:
    # designed once per rate (to 0.01 Hz) and band: the tracker calls this on every frame
    nyq = fs_centi_hz / 200.0
    hi = min(hi, 0.95 * nyq)
    return sps.butter(2, [lo / nyq, hi / nyq], btype="bandpass", output="sos")


def bandpass(x: np.ndarray, sampling_rate: float, band: tuple[float, float] = PULSE_BAND_HZ) -> np.ndarray:
    """Zero-phase 2nd-order Butterworth band-pass in ``band`` Hz (for display and the spectrum)."""
    sos = _bandpass_sos(int(round(sampling_rate * 100)), float(band[0]), float(band[1]))
    if x.shape[0] <= 3 * (2 * sos.shape[0] + 1):
        return x - x.mean()
    return sps.sosfiltfilt(sos, x)


def _spectrum(x: np.ndarray, sampling_rate: float, min_nfft: int) -> tuple[np.ndarray, np.ndarray]:
    """Power spectra of the rows of ``x`` (detrended, Hann-windowed, zero-padded)."""
    x = sps.detrend(x, axis=-1) * np.hanning(x.shape[-1])
    nfft = max(min_nfft, 1 << int(np.ceil(np.log2(x.shape[-1]))))
    return np.fft.rfftfreq(nfft, 1.0 / sampling_rate), np.abs(np.fft.rfft(x, nfft, axis=-1)) ** 2


def _peak(freqs: np.ndarray, power: np.ndarray, band: tuple[float, float]) -> float:
    """Peak frequency of one spectrum in ``band`` with the harmonic check, refined by parabolic
    interpolation on log power; NaN when the band holds fewer than 3 bins."""
    idx = np.flatnonzero((freqs >= band[0]) & (freqs <= band[1]))
    if idx.size < 3:
        return float("nan")
    k = idx[np.argmax(power[idx])]
    # harmonic check: POS keeps the pulse's second harmonic, and in a pulse with a strong
    # dicrotic notch it can outgrow the fundamental; a peak whose half frequency is a local
    # maximum holding a quarter of its power or more is that harmonic
    half = int(round(k / 2))
    if freqs[half] >= band[0] and 0 < half < power.size - 1:
        lo, hi = max(half - 3, 1), min(half + 4, power.size - 1)
        h = lo + int(np.argmax(power[lo:hi]))
        if power[h - 1] <= power[h] >= power[h + 1] and power[h] >= 0.25 * power[k]:
            k = h
    f0 = freqs[k]
    if 0 < k < power.size - 1:
        a, b, c = np.log(power[k - 1 : k + 2] + 1e-300)
        denom = a - 2 * b + c
        if denom < 0:
            f0 = freqs[k] + 0.5 * (a - c) / denom * (freqs[1] - freqs[0])
    return float(f0)


def _snr(freqs: np.ndarray, power: np.ndarray, f0: float, band: tuple[float, float]) -> float:
    """de Haan & Jeanne (2013) SNR in dB: power within 0.1 Hz of ``f0`` and 0.2 Hz of its first
    harmonic against the rest of the band."""
    signal_mask = (np.abs(freqs - f0) <= 0.1) | (np.abs(freqs - 2 * f0) <= 0.2)
    band_mask = (freqs >= band[0]) & (freqs <= max(band[1], 2 * f0 + 0.2))
    p_sig = power[signal_mask & band_mask].sum()
    p_noise = power[~signal_mask & band_mask].sum()
    return float(10 * np.log10(p_sig / p_noise)) if p_noise > 0 else float("inf")


def pulse_rate(
    x: np.ndarray,
    sampling_rate: float,
    band: tuple[float, float] = PULSE_BAND_HZ,
    min_nfft: int = 8192,
) -> tuple[float, float]:
    """Pulse rate of a pulse signal from its spectral peak (with the harmonic check).

    Parameters
    ----------
    x : ndarray, shape (n_samples,)
        Pulse signal (e.g. from :func:`pos`), uniformly sampled.
    sampling_rate : float
        Hz.
    band : (float, float)
        Search band in Hz.
    min_nfft : int
        FFT length at least this (zero-padding) so the peak is located to ~0.01 Hz before
        parabolic interpolation refines it.

    Returns
    -------
    rate : float
        Beats per minute; NaN if the signal is empty, flat or not finite. Not gated: see
        :func:`estimate_pulse` for a rate that says when it does not know.
    snr : float
        dB, power within 0.1 Hz of the peak and 0.2 Hz of its first harmonic against the rest
        of the band (de Haan & Jeanne 2013); a quality figure, > 0 dB is a clear pulse.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size < 8 or not np.all(np.isfinite(x)) or np.ptp(x) == 0:
        return float("nan"), float("nan")
    freqs, power = _spectrum(x, sampling_rate, min_nfft)
    f0 = _peak(freqs, power, band)
    if not np.isfinite(f0):
        return float("nan"), float("nan")
    return float(60.0 * f0), _snr(freqs, power, f0, band)


def estimate_pulse(
    x: np.ndarray,
    sampling_rate: float,
    *,
    sub_window: float = SUB_WINDOW_S,
    step: float = SUB_STEP_S,
    min_snr: float = MIN_SNR_DB,
    max_spread: float = MAX_SPREAD_BPM,
    band: tuple[float, float] = PULSE_BAND_HZ,
) -> tuple[float, float, str]:
    """Pulse rate that is NaN, with the reason, when the signal does not show one.

    Parameters
    ----------
    x : ndarray, shape (n_samples,)
        Pulse signal (POS, band-passed), uniformly sampled, at least ``sub_window`` long.
    sampling_rate : float
        Hz.
    sub_window, step : float
        Sub-window length and hop, s: the rate is the median of the sub-windows' peaks (each
        with the harmonic check of :func:`pulse_rate`).
    min_snr : float
        dB; at the median rate, over the whole signal.
    max_spread : float
        bpm; the largest distance of a sub-window's rate from the median.
    band : (float, float)
        Hz.

    Returns
    -------
    rate : float
        bpm, NaN when not believable.
    snr : float
        dB at the median rate (reported either way).
    reason : str
        Why the rate is NaN ("" when it is not).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    win = int(round(sub_window * sampling_rate))
    if n < 8 or not np.all(np.isfinite(x)) or np.ptp(x) == 0:
        return float("nan"), float("nan"), "no pulse signal (empty, flat or not finite)"
    if n < win:
        return float("nan"), float("nan"), f"{n / sampling_rate:.1f} s of signal (< {sub_window:g} s)"
    hop = max(1, int(round(step * sampling_rate)))
    starts = np.arange(n - win, -1, -hop)[::-1]  # aligned with the newest sample
    freqs, power = _spectrum(sliding_window_view(x, win)[starts], sampling_rate, 4096)
    rates = np.array([60.0 * _peak(freqs, p, band) for p in power])
    med = float(np.median(rates))
    f_all, p_all = _spectrum(x[None], sampling_rate, 8192)
    snr = _snr(f_all, p_all[0], med / 60.0, band)
    spread = float(np.max(np.abs(rates - med)))
    if not np.isfinite(med):
        return float("nan"), snr, "no spectral peak in the pulse band"
    if snr < min_snr:
        return float("nan"), snr, f"SNR {snr:.1f} dB below {min_snr:g} dB"
    if rates.size > 1 and spread > max_spread:
        return (float("nan"), snr,
                f"sub-window rates spread {spread:.0f} bpm around {med:.0f} (over {max_spread:g})")
    return med, snr, ""


@dataclass
class PulseEstimate:
    """One frame's rPPG output.

    Attributes
    ----------
    rppg : float
        Latest pulse-signal sample (a.u., band-passed, unit variance over the window).
    rate : float
        Pulse rate in bpm over the last ``window`` seconds.
    snr : float
        dB, see :func:`pulse_rate`.
    reason : str
        Why ``rate`` is NaN ("" when it is not, or while the history is too short).
    """

    rppg: float = float("nan")
    rate: float = float("nan")
    snr: float = float("nan")
    reason: str = ""


class PulseTracker:
    """Online POS pulse estimation from one mean skin colour per frame.

    Parameters
    ----------
    window : float
        Seconds of history the rate is estimated from.
    min_window : float
        Seconds of uninterrupted face needed before a rate is reported (NaN before).
    max_gap : float
        A gap between usable frames longer than this (s) restarts the history, because a
        spectrum across a long hole would be made up.
    pos_window : float
        POS window in seconds (see :func:`pos`).
    min_snr, max_spread : float
        The quality gate of :func:`estimate_pulse` (dB, bpm).
    """

    def __init__(
        self,
        window: float = 10.0,
        min_window: float = 6.0,
        max_gap: float = 0.25,
        pos_window: float = 1.6,
        min_snr: float = MIN_SNR_DB,
        max_spread: float = MAX_SPREAD_BPM,
    ) -> None:
        if min_window > window:
            raise FaceError(f"PulseTracker: min_window {min_window} s exceeds window {window} s")
        self.window = float(window)
        self.min_window = float(min_window)
        self.max_gap = float(max_gap)
        self.pos_window = float(pos_window)
        self.min_snr = float(min_snr)
        self.max_spread = float(max_spread)
        self._t: deque[float] = deque()
        self._rgb: deque[np.ndarray] = deque()

    def reset(self) -> None:
        self._t.clear()
        self._rgb.clear()

    def update(self, t: float, rgb: np.ndarray | None) -> PulseEstimate:
        """Add one frame.

        Parameters
        ----------
        t : float
            Frame time in seconds (LSL clock).
        rgb : ndarray, shape (3,), or None
            Mean skin colour (R, G, B); None when the frame has no usable face.

        Returns
        -------
        PulseEstimate
            NaN fields while the history is too short or the frame has no face.
        """
        if rgb is None or not np.all(np.isfinite(rgb)):
            return PulseEstimate()
        if self._t and (t - self._t[-1] > self.max_gap or t <= self._t[-1]):
            self.reset()
        self._t.append(float(t))
        self._rgb.append(np.asarray(rgb, dtype=np.float64))
        while self._t and t - self._t[0] > self.window:
            self._t.popleft()
            self._rgb.popleft()
        span = self._t[-1] - self._t[0]
        if span < self.pos_window:
            return PulseEstimate()
        ts = np.fromiter(self._t, dtype=np.float64, count=len(self._t))
        rgb_hist = np.stack(self._rgb)
        fs = (len(ts) - 1) / span
        # frames arrive with jitter (and rare single drops): put them on a uniform grid, which
        # the spectrum needs; gaps longer than max_gap never get here (history restarts)
        grid = ts[0] + np.arange(len(ts)) / fs
        uniform = np.column_stack([np.interp(grid, ts, rgb_hist[:, i]) for i in range(3)])
        h = bandpass(pos(uniform, fs, self.pos_window), fs)
        sd = h.std()
        rppg = float(h[-1] / sd) if sd > 0 else float("nan")
        if span < self.min_window:
            return PulseEstimate(rppg=rppg)
        rate, snr, reason = estimate_pulse(h, fs, sub_window=min(SUB_WINDOW_S, self.min_window),
                                           min_snr=self.min_snr, max_spread=self.max_spread)
        return PulseEstimate(rppg=rppg, rate=rate, snr=snr, reason=reason)
