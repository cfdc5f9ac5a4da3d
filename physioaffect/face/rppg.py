"""Remote photoplethysmography: the pulse in the colour of facial skin.

Three published ways to turn the mean skin colour of each frame into a pulse signal:

- ``pos``: plane-orthogonal-to-skin (Wang, den Brinker, Stuijk & de Haan 2017, "Algorithmic
  principles of remote PPG", IEEE TBME 64(7):1479-1491, Algorithm 1): the temporally normalised
  colour is projected onto a plane orthogonal to the skin tone, which cancels the intensity
  changes that motion and lighting cause, and the two projections are tuned against each other
  in 1.6 s windows that are overlap-added.
- ``chrom``: chrominance (de Haan & Jeanne 2013, "Robust pulse rate from chrominance-based
  rPPG", IEEE TBME 60(10):2878-2886): two colour-difference signals ``X = 3R - 2G`` and
  ``Y = 1.5R + G - 1.5B`` of the normalised colour, band-passed, combined as
  ``X - (sd X / sd Y) Y`` in Hann-windowed 1.6 s windows overlap-added at half a window.
- ``green``: the green channel (Verkruysse, Svaasand & Nelson 2008, "Remote plethysmographic
  imaging using ambient light", Optics Express 16(26):21434-21445), where the blood-volume pulse
  is strongest; no correction for motion or light.

The pulse rate is the spectral peak of the band-passed signal in 42-180 bpm
(:data:`PULSE_BAND_HZ`), with a harmonic check. A spectral peak exists in noise too, so
:class:`PulseTracker` reports it only when the window says there is a pulse: the
signal-to-noise ratio at the peak (de Haan & Jeanne 2013, with the signal bands widened to the
window's frequency resolution, :func:`pulse_snr`) must reach :func:`snr_gate`, a threshold set
for each window length so that traces without any pulse pass in at most 0.5 % of windows
(``benchmarks/calibrate_face_pulse_gate.py``; real and degraded videos are the check, not the
calibration). A withheld rate comes with a reason (:data:`PULSE_REASONS`): no face, warm-up,
too few skin pixels, too dark, too much motion, or an SNR below the gate.

Only numpy/scipy: this module works without the ``face`` extra (it needs mean colours, not
images).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal as sps

from physioaffect.face.errors import FaceError
from physioaffect.streams.face_layout import PULSE_REASON_CODES

#: Pulse band searched for the rate, Hz (42-180 bpm: resting and moderately raised heart rates;
#: a wider band gives noise more room for a peak).
PULSE_BAND_HZ = (0.7, 3.0)
#: Window of POS and CHROM, s (1.6 s in both papers: long enough for one beat at 40 bpm).
METHOD_WINDOW_S = 1.6
#: Parts of the skin region (of those with skin pixels throughout the window) whose own spectral
#: peak must lie within the window's resolution of the rate (:class:`PulseTracker`).
MIN_AGREEING_REGIONS = 2
#: Keys of :data:`PULSE_REASON_CODES`: why a rate is (not) reported.
PULSE_REASONS = tuple(PULSE_REASON_CODES)

#: Least SNR (dB, :func:`pulse_snr`) at which a rate is reported, per method, as
#: ``(window length s, dB)`` pairs interpolated linearly (flat outside): the 99.5th percentile
#: of the SNR at the spectral peak of colour traces without a pulse (white sensor noise, 1/f
#: illumination changes, 1/f colour drift), so at most 0.5 % of pulse-free windows pass.
#: Written by ``benchmarks/calibrate_face_pulse_gate.py`` (results/face_pulse_gate.json); no
#: video, real or synthetic, was used to set it.
SNR_GATE_DB: dict[str, tuple[tuple[float, float], ...]] = {
    "pos": ((4.0, 10.7), (5.0, 8.2), (6.0, 6.2), (7.0, 4.8), (8.0, 4.2), (9.0, 3.0), (10.0, 2.5),
            (12.0, 2.4)),
    "chrom": ((4.0, 11.2), (5.0, 8.6), (6.0, 6.7), (7.0, 5.4), (8.0, 4.1), (9.0, 3.5), (10.0, 2.6),
              (12.0, 2.4)),
    "green": ((4.0, 11.6), (5.0, 8.2), (6.0, 6.9), (7.0, 5.8), (8.0, 4.6), (9.0, 3.5), (10.0, 2.8),
              (12.0, 2.5)),
}

# POS projection matrix (rows: S1 = G - B, S2 = -2R + G + B) for RGB column order.
_POS_P = np.array([[0.0, 1.0, -1.0], [-2.0, 1.0, 1.0]])
# CHROM colour-difference signals (rows: X = 3R - 2G, Y = 1.5R + G - 1.5B).
_CHROM_XY = np.array([[3.0, -2.0, 0.0], [1.5, 1.0, -1.5]])


def _colour_trace(rgb: np.ndarray, what: str) -> np.ndarray:
    c = np.asarray(rgb, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 3:
        raise FaceError(f"{what}: rgb must have shape (n_samples, 3), got {c.shape}")
    return c


def _window_samples(window: float, sampling_rate: float) -> int:
    return max(2, int(round(window * sampling_rate)))


def pos(rgb: np.ndarray, sampling_rate: float, window: float = METHOD_WINDOW_S) -> np.ndarray:
    """Pulse signal from mean skin colour by POS (Wang et al. 2017, Algorithm 1).

    Parameters
    ----------
    rgb : ndarray, shape (n_samples, 3)
        Mean skin colour per frame in R, G, B column order (any linear scale, e.g. 0-255).
    sampling_rate : float
        Frame rate in Hz (uniform sampling).
    window : float
        Length of the sliding window in seconds (1.6 s in the paper).

    Returns
    -------
    ndarray, shape (n_samples,)
        The overlap-added pulse signal (arbitrary units, zero mean per window; every window
        starting at every sample, as the paper's algorithm). Input shorter than one window
        gives all NaN.
    """
    c = _colour_trace(rgb, "pos")
    n = c.shape[0]
    win = _window_samples(window, sampling_rate)
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


def chrom(
    rgb: np.ndarray,
    sampling_rate: float,
    window: float = METHOD_WINDOW_S,
    band: tuple[float, float] = PULSE_BAND_HZ,
) -> np.ndarray:
    """Pulse signal from mean skin colour by CHROM (de Haan & Jeanne 2013).

    In each window (half a window apart, the last one ending at the last sample): the colour
    normalised by its mean, ``X = 3R - 2G`` and ``Y = 1.5R + G - 1.5B``, both band-passed
    (:func:`bandpass`, zero phase), ``S = X - (sd X / sd Y) Y``, Hann-windowed and
    overlap-added.

    Parameters
    ----------
    rgb : ndarray, shape (n_samples, 3)
        Mean skin colour per frame, R, G, B.
    sampling_rate : float
        Hz (uniform sampling).
    window : float
        Window length, s (1.6 s as in the paper's implementation: 32 frames at 20 frames/s).
    band : (float, float)
        Band-pass, Hz.

    Returns
    -------
    ndarray, shape (n_samples,)
        Pulse signal (arbitrary units); all NaN for input shorter than one window.
    """
    c = _colour_trace(rgb, "chrom")
    n = c.shape[0]
    win = _window_samples(window, sampling_rate)
    win += win % 2  # even, so two half-window hops tile it
    if n < win:
        return np.full(n, np.nan)
    hop = win // 2
    starts = np.arange(0, n - win + 1, hop)
    if starts[-1] != n - win:
        starts = np.append(starts, n - win)  # the newest samples get a window of their own
    w = c[starts[:, None] + np.arange(win)]  # (n_windows, win, 3)
    mean = w.mean(axis=1, keepdims=True)
    cn = w / np.where(mean > 0, mean, np.nan)
    xy = np.einsum("pc,klc->kpl", _CHROM_XY, cn)  # (n_windows, 2, win)
    xy = _bandpass_rows(np.nan_to_num(xy), sampling_rate, band)
    x, y = xy[:, 0], xy[:, 1]
    sx, sy = x.std(axis=1, keepdims=True), y.std(axis=1, keepdims=True)
    alpha = np.divide(sx, sy, out=np.zeros_like(sx), where=sy > 0)
    s = (x - alpha * y) * np.hanning(win)
    out = np.zeros(n)
    for k, start in enumerate(starts):
        out[start : start + win] += s[k]
    return out


def green(rgb: np.ndarray, sampling_rate: float) -> np.ndarray:
    """Pulse signal from the green channel (Verkruysse et al. 2008): ``-(G / mean G - 1)``.

    The sign makes a rise in blood volume (more green absorbed, a darker green) positive, like
    a contact PPG; the rate does not depend on it.

    Parameters
    ----------
    rgb : ndarray, shape (n_samples, 3)
        Mean skin colour per frame, R, G, B.
    sampling_rate : float
        Hz (unused: the signal is per sample; kept so every method has one signature).

    Returns
    -------
    ndarray, shape (n_samples,)
    """
    g = _colour_trace(rgb, "green")[:, 1]
    m = g.mean() if g.size else 0.0
    if not m > 0:
        return np.full(g.shape, np.nan)
    return -(g / m - 1.0)


#: The pulse-signal methods by name (``PulseTracker(method=...)``).
METHODS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "pos": pos,
    "chrom": chrom,
    "green": green,
}


def pulse_signal(rgb: np.ndarray, sampling_rate: float, method: str = "pos") -> np.ndarray:
    """The pulse signal of ``rgb`` by one of :data:`METHODS` (``pos``, ``chrom``, ``green``)."""
    try:
        fn = METHODS[method]
    except KeyError:
        raise FaceError(f"rPPG method must be one of {', '.join(METHODS)}, got {method!r}") from None
    return fn(rgb, sampling_rate)


@lru_cache(maxsize=64)
def _bandpass_sos(fs_centi_hz: int, lo: float, hi: float) -> np.ndarray:
    # designed once per rate (to 0.01 Hz) and band: the tracker calls this on every frame
    nyq = fs_centi_hz / 200.0
    hi = min(hi, 0.95 * nyq)
    return sps.butter(2, [lo / nyq, hi / nyq], btype="bandpass", output="sos")


def _bandpass_rows(x: np.ndarray, sampling_rate: float, band: tuple[float, float]) -> np.ndarray:
    sos = _bandpass_sos(int(round(sampling_rate * 100)), float(band[0]), float(band[1]))
    if x.shape[-1] <= 3 * (2 * sos.shape[0] + 1):
        return x - x.mean(axis=-1, keepdims=True)
    return sps.sosfiltfilt(sos, x, axis=-1)


def bandpass(x: np.ndarray, sampling_rate: float, band: tuple[float, float] = PULSE_BAND_HZ) -> np.ndarray:
    """Zero-phase 2nd-order Butterworth band-pass in ``band`` Hz (for display and the spectrum)."""
    return _bandpass_rows(np.asarray(x, dtype=np.float64), sampling_rate, band)


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


def pulse_snr(
    freqs: np.ndarray, power: np.ndarray, f0: float, duration: float,
    band: tuple[float, float] = PULSE_BAND_HZ,
) -> float:
    """Signal-to-noise ratio of a pulse at ``f0`` in a power spectrum, dB.

    de Haan & Jeanne (2013): the power within ``d`` of ``f0`` and ``2 d`` of its first harmonic
    against the rest of the band, with ``d = max(0.1 Hz, 1 / duration)``: the paper's 0.1 Hz
    for windows of 10 s and longer, the window's frequency resolution for shorter ones (a
    pulse's peak in a 6 s window is ~0.17 Hz wide whatever its quality).

    Parameters
    ----------
    freqs, power : ndarray
        One spectrum (Hz, power).
    f0 : float
        Pulse frequency, Hz.
    duration : float
        Length of the analysed window, s.
    band : (float, float)
        Hz; extended to cover the harmonic's band.
    """
    d = max(0.1, 1.0 / duration)
    signal_mask = (np.abs(freqs - f0) <= d) | (np.abs(freqs - 2 * f0) <= 2 * d)
    band_mask = (freqs >= band[0]) & (freqs <= max(band[1], 2 * f0 + 2 * d))
    p_sig = power[signal_mask & band_mask].sum()
    p_noise = power[~signal_mask & band_mask].sum()
    if p_noise <= 0 or p_sig <= 0:
        return float("inf") if p_noise <= 0 else float("-inf")
    return float(10 * np.log10(p_sig / p_noise))


def pulse_rate(
    x: np.ndarray,
    sampling_rate: float,
    band: tuple[float, float] = PULSE_BAND_HZ,
    min_nfft: int = 4096,
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
        :class:`PulseTracker` and :func:`estimate_pulse` for a rate that says when it does
        not know.
    snr : float
        dB, :func:`pulse_snr` over the signal's duration.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size < 8 or not np.all(np.isfinite(x)) or np.ptp(x) == 0:
        return float("nan"), float("nan")
    freqs, power = _spectrum(x[None], sampling_rate, min_nfft)
    f0 = _peak(freqs, power[0], band)
    if not np.isfinite(f0):
        return float("nan"), float("nan")
    return float(60.0 * f0), pulse_snr(freqs, power[0], f0, x.size / sampling_rate, band)


def analyse_window(
    rgb: np.ndarray, sampling_rate: float, method: str = "pos", band: tuple[float, float] = PULSE_BAND_HZ,
) -> tuple[np.ndarray, float, float]:
    """Pulse signal, ungated rate and SNR of one window of skin colour.

    Parameters
    ----------
    rgb : ndarray, shape (n_samples, 3)
        Mean skin colour, R, G, B, uniformly sampled.
    sampling_rate : float
        Hz.
    method : str
        One of :data:`METHODS`.
    band : (float, float)
        Hz.

    Returns
    -------
    pulse : ndarray, shape (n_samples,)
        The method's pulse signal, band-passed.
    rate : float
        bpm, the spectral peak (:func:`pulse_rate`).
    snr : float
        dB (:func:`pulse_snr` over the window).
    """
    x = bandpass(np.nan_to_num(pulse_signal(rgb, sampling_rate, method)), sampling_rate, band)
    rate, snr = pulse_rate(x, sampling_rate, band)
    return x, rate, snr


def snr_gate(duration: float, method: str = "pos") -> float:
    """Least :func:`pulse_snr` (dB) for a rate of ``method`` from a window of ``duration`` s
    (:data:`SNR_GATE_DB`)."""
    try:
        table = np.array(SNR_GATE_DB[method])
    except KeyError:
        raise FaceError(f"rPPG method must be one of {', '.join(SNR_GATE_DB)}, got {method!r}") from None
    return float(np.interp(duration, table[:, 0], table[:, 1]))


def estimate_pulse(
    rgb: np.ndarray,
    sampling_rate: float,
    *,
    method: str = "pos",
    band: tuple[float, float] = PULSE_BAND_HZ,
    min_snr: float | None = None,
) -> tuple[float, float, str]:
    """Pulse rate of one window of skin colour that is NaN, with the reason, when the window
    does not show a pulse.

    Parameters
    ----------
    rgb : ndarray, shape (n_samples, 3)
        Mean skin colour, uniformly sampled.
    sampling_rate : float
        Hz.
    method : str
        One of :data:`METHODS`.
    band : (float, float)
        Hz.
    min_snr : float, optional
        dB; default :func:`snr_gate` for the window's length and the method.

    Returns
    -------
    rate : float
        bpm, NaN when not believable.
    snr : float
        dB at the peak (reported either way).
    reason : str
        ``"ok"``, or ``"low_snr"`` (a key of :data:`PULSE_REASON_CODES`).
    """
    x, rate, snr = analyse_window(rgb, sampling_rate, method, band)
    gate = snr_gate(x.size / sampling_rate, method) if min_snr is None else min_snr
    if not (np.isfinite(rate) and snr >= gate):
        return float("nan"), snr, "low_snr"
    return rate, snr, "ok"


@dataclass
class SkinSample:
    """Mean colour and bookkeeping of one frame's skin region (what the tracker needs).

    Attributes
    ----------
    rgb : ndarray, shape (3,)
        Mean R, G, B of the skin pixels (0-255 for 8-bit video).
    pixels : int
        Skin pixels averaged (0: unknown, the size check is skipped).
    luma : float
        Mean grey level of those pixels, 0-255 (NaN: unknown, the darkness check is skipped).
    centre : (float, float) or None
        Centre of the skin region in pixels (None: unknown, the motion check is skipped).
    regions : ndarray, shape (n_regions, 3), or None
        Mean R, G, B of each part of the skin region on its own (forehead, right cheek, left
        cheek; NaN rows for a part without skin pixels); None: unknown, the parts' check is
        skipped.
    """

    rgb: np.ndarray
    pixels: int = 0
    luma: float = float("nan")
    centre: tuple[float, float] | None = None
    regions: np.ndarray | None = None


@dataclass
class PulseEstimate:
    """One frame's rPPG output.

    Attributes
    ----------
    rppg : float
        Latest pulse-signal sample (a.u., band-passed, unit variance over the window).
    rate : float
        Pulse rate in bpm over the window; NaN unless ``reason`` is ``"ok"``.
    snr : float
        dB, :func:`pulse_snr` of the window (NaN before the warm-up ends).
    reason : str
        A key of :data:`PULSE_REASON_CODES`: ``"ok"`` or why ``rate`` is NaN.
    detail : str
        The reason in words with its numbers ("" when ``ok``).
    window : float
        Seconds of history the estimate used.
    """

    rppg: float = float("nan")
    rate: float = float("nan")
    snr: float = float("nan")
    reason: str = "warming_up"
    detail: str = ""
    window: float = 0.0

    @property
    def reason_code(self) -> int:
        """``reason`` as the code of the ``pulse_reason`` channel."""
        return PULSE_REASON_CODES[self.reason]


class PulseTracker:
    """Online pulse rate from one skin sample per frame: available after a short warm-up,
    NaN with a reason whenever the window does not show a pulse.

    Each frame, the last ``window`` seconds of skin colour (fewer during the warm-up, at least
    ``min_window``) are put on a uniform time grid, turned into a pulse signal by ``method``
    (POS and CHROM overlap-add their 1.6 s windows), band-passed to ``band``, and the rate is
    the spectrum's peak. It is reported when, over the window, the skin region is large
    enough, bright enough and steady enough, the SNR at the peak reaches the calibrated gate
    for the window's length (:func:`snr_gate`), and the parts of the skin region (forehead
    and cheeks, when the samples carry them) confirm it: at least
    :data:`MIN_AGREEING_REGIONS` of them, each on its own, have their spectral peak within
    ``1 / window`` Hz (the spectrum's resolution) of the rate. A pulse is the same in every
    part of the face, while sensor noise, compression blocks and landmark jitter are not, so a
    noise peak that clears the SNR gate is rarely found again in a second part.

    Parameters
    ----------
    method : {"pos", "chrom", "green"}
        Pulse-signal method (:data:`METHODS`).
    window : float
        Longest history, s.
    min_window : float
        Warm-up: seconds of uninterrupted face before a rate can be reported.
    max_gap : float
        A gap between usable frames longer than this (s) restarts the history, because a
        spectrum across a long hole would be made up.
    band : (float, float)
        Pulse band, Hz (42-180 bpm by default).
    min_snr : float, optional
        A fixed SNR gate in dB instead of the calibrated :func:`snr_gate`.
    min_skin_px : int
        Least median number of skin pixels over the window (``too_small``): below 30 x 30
        pixels the pulse of an 8-bit, compressed video is not recoverable (issue 28: no method,
        deep models included, was within 16 bpm on 25 x 25 px skin).
    min_luma : float
        Least median grey level of the skin over the window (``too_dark``): at 30 of 255 a
        1 % pulse is a third of one 8-bit step.
    max_motion : float
        Largest RMS displacement of the skin region at pulse frequencies (band-passed to
        ``band``), as a fraction of the region's size (square root of its pixels), over the
        window (``motion``). A still sitter measures about 0.01 (landmark jitter); 0.05 is a
        nod of about 10 % of the region at 1-2 Hz, where the region's edges move through the
        pulse band.
    min_agreeing_regions : int
        Parts of the skin region that must confirm the rate on their own (0: no check; it is
        skipped anyway for samples without parts).
    hold : float
        Seconds for which the windows must pass every check, frame after frame, before a rate
        is reported (and again after any failure): noise that clears the gates does so in
        flickers of a frame or two, a pulse steadily.
    """

    def __init__(
        self,
        method: str = "pos",
        window: float = 10.0,
        min_window: float = 6.0,
        max_gap: float = 0.25,
        band: tuple[float, float] = PULSE_BAND_HZ,
        min_snr: float | None = None,
        min_skin_px: int = 900,
        min_luma: float = 30.0,
        max_motion: float = 0.05,
        min_agreeing_regions: int = MIN_AGREEING_REGIONS,
        hold: float = 0.3,
    ) -> None:
        if method not in METHODS:
            raise FaceError(f"PulseTracker: method must be one of {', '.join(METHODS)}, got {method!r}")
        if not 0 < min_window <= window:
            raise FaceError(f"PulseTracker: need 0 < min_window <= window, got {min_window} and {window} s")
        if not 0 < band[0] < band[1]:
            raise FaceError(f"PulseTracker: band must be (low, high) Hz with 0 < low < high, got {band}")
        self.method = method
        self.window = float(window)
        self.min_window = float(min_window)
        self.max_gap = float(max_gap)
        self.band = (float(band[0]), float(band[1]))
        self.min_snr = None if min_snr is None else float(min_snr)
        self.min_skin_px = int(min_skin_px)
        self.min_luma = float(min_luma)
        self.max_motion = float(max_motion)
        self.min_agreeing_regions = int(min_agreeing_regions)
        self.hold = float(hold)
        self._passing_since: float | None = None
        # per frame: time, R, G, B, pixels, luma, centre x, centre y; and the parts' colours
        self._rows: deque[tuple[float, ...]] = deque()
        self._regions: deque[np.ndarray | None] = deque()

    def reset(self) -> None:
        self._rows.clear()
        self._regions.clear()
        self._passing_since = None

    def update(self, t: float, sample: SkinSample | np.ndarray | None) -> PulseEstimate:
        """Add one frame.

        Parameters
        ----------
        t : float
            Frame time in seconds (LSL clock).
        sample : SkinSample, ndarray of shape (3,), or None
            The frame's skin (a bare array is its mean R, G, B); None when the frame has no
            usable face.

        Returns
        -------
        PulseEstimate
            ``reason`` ``face_lost`` for a frame without skin, ``warming_up`` until the
            history holds ``min_window`` s.
        """
        if sample is not None and not isinstance(sample, SkinSample):
            sample = SkinSample(np.asarray(sample, dtype=np.float64))
        if sample is None or not np.all(np.isfinite(sample.rgb)):
            self._passing_since = None
            return PulseEstimate(reason="face_lost", detail="no skin in this frame")
        rows = self._rows
        if rows and (t - rows[-1][0] > self.max_gap or t <= rows[-1][0]):
            self.reset()
        cx, cy = sample.centre if sample.centre is not None else (np.nan, np.nan)
        rgb = np.asarray(sample.rgb, dtype=np.float64)
        rows.append((float(t), rgb[0], rgb[1], rgb[2], float(sample.pixels), float(sample.luma),
                     float(cx), float(cy)))
        self._regions.append(None if sample.regions is None else np.asarray(sample.regions, dtype=np.float64))
        while t - rows[0][0] > self.window:
            rows.popleft()
            self._regions.popleft()
        span = t - rows[0][0]
        if span < METHOD_WINDOW_S:
            return PulseEstimate(detail=f"{span:.1f} s of face (< {self.min_window:g} s)", window=span)
        h = np.array(rows)
        n = h.shape[0]
        fs = (n - 1) / span
        # frames arrive with jitter (and rare single drops): put them on a uniform grid, which
        # the spectrum needs; gaps longer than max_gap never get here (history restarts)
        grid = h[0, 0] + np.arange(n) / fs
        uniform = np.column_stack([np.interp(grid, h[:, 0], h[:, i]) for i in (1, 2, 3)])
        x, rate, snr = analyse_window(uniform, fs, self.method, self.band)
        sd = x.std()
        rppg = float(x[-1] / sd) if sd > 0 else float("nan")
        if span < self.min_window:
            return PulseEstimate(rppg=rppg, detail=f"{span:.1f} s of face (< {self.min_window:g} s)",
                                 window=span)
        est = PulseEstimate(rppg=rppg, snr=snr, window=span, reason="ok")
        pixels = h[:, 4][h[:, 4] > 0]
        luma = h[:, 5][np.isfinite(h[:, 5])]
        gate = snr_gate(span, self.method) if self.min_snr is None else self.min_snr
        if pixels.size and np.median(pixels) < self.min_skin_px:
            est.reason = "too_small"
            est.detail = (f"{np.median(pixels):.0f} skin pixels (< {self.min_skin_px}, "
                          f"{np.sqrt(self.min_skin_px):.0f} x {np.sqrt(self.min_skin_px):.0f})")
        elif luma.size and np.median(luma) < self.min_luma:
            est.reason = "too_dark"
            est.detail = f"skin grey level {np.median(luma):.0f} (< {self.min_luma:g} of 255)"
        elif (motion := self._motion(h, grid, fs, pixels)) > self.max_motion:
            est.reason = "motion"
            est.detail = (f"skin region moved {100 * motion:.1f} % of its size (RMS at pulse "
                          f"frequencies; > {100 * self.max_motion:g} %)")
        elif not (np.isfinite(rate) and snr >= gate):
            est.reason = "low_snr"
            est.detail = f"pulse SNR {snr:.1f} dB below {gate:.1f} dB for a {span:.1f} s window"
        elif (agree := self._regions_agree(h[:, 0], grid, fs, rate, span)) is not None and not agree[0]:
            est.reason = "low_snr"
            est.detail = (f"the {rate:.0f} bpm peak (SNR {snr:.1f} dB) is not found again in "
                          f"{self.min_agreeing_regions} parts of the skin on their own (their peaks: "
                          f"{', '.join(f'{r:.0f}' for r in agree[1])} bpm)")
        if est.reason != "ok":
            self._passing_since = None
            return est
        if self._passing_since is None:
            self._passing_since = t
        if t - self._passing_since + 1e-9 < self.hold:
            est.reason = "low_snr"
            est.detail = (f"the {rate:.0f} bpm peak has passed every check for "
                          f"{t - self._passing_since:.2f} s of the {self.hold:g} s a rate needs")
            return est
        est.rate = rate
        return est

    def _regions_agree(self, t: np.ndarray, grid: np.ndarray, fs: float, rate: float,
                       span: float) -> tuple[bool, list[float]] | None:
        """Whether enough parts of the skin show their own peak near ``rate`` (and their
        rates); None when the samples carry no parts (the check is skipped). Parts without
        skin in some frame of the window do not vote, so too few parts mean no rate."""
        if self.min_agreeing_regions <= 0 or any(r is None for r in self._regions):
            return None
        parts = np.stack(self._regions)  # (n, n_regions, 3)
        if parts.ndim != 3 or parts.shape[2] != 3:
            return None
        rates = []
        for k in range(parts.shape[1]):
            trace = parts[:, k, :]
            if not np.all(np.isfinite(trace)):
                continue  # a part without skin in some frame does not vote
            uniform = np.column_stack([np.interp(grid, t, trace[:, i]) for i in range(3)])
            rates.append(analyse_window(uniform, fs, self.method, self.band)[1])
        if len(rates) < self.min_agreeing_regions:
            return False, rates  # too few parts with skin throughout to confirm anything
        near = sum(abs(r - rate) <= 60.0 / span for r in rates if np.isfinite(r))
        return near >= self.min_agreeing_regions, rates

    def _motion(self, h: np.ndarray, grid: np.ndarray, fs: float, pixels: np.ndarray) -> float:
        """RMS displacement of the skin region's centre in the pulse band / region size."""
        if not pixels.size or not np.all(np.isfinite(h[:, 6:8])):
            return 0.0
        xy = np.column_stack([np.interp(grid, h[:, 0], h[:, i]) for i in (6, 7)])
        moved = bandpass(xy.T, fs, self.band)
        return float(np.sqrt((moved**2).sum(axis=0).mean()) / np.sqrt(np.median(pixels)))
