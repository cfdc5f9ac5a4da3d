"""EEG preprocessing as a declared, serialisable pipeline.

A :class:`PipelineConfig` says everything the offline and the live paths do to EEG; it is saved
with every dataset cache and checkpoint (``to_dict``/``to_json``), and ``config_hash()`` names it
in cache keys. :func:`preprocess_raw` applies it to an :class:`mne.io.Raw`,
:func:`preprocess_array` to a ``(n_chans, n_times)`` array in microvolts, and
:class:`StreamingFilter` / :class:`StreamingPipeline` apply the same filters causally chunk by
chunk for the live path.

Order of the steps
------------------
1. bad-channel detection on a band-passed copy (robust z-score of the log channel SD, plus flat
   and non-finite channels),
2. notch and band-pass: Butterworth second-order sections designed once by :func:`design_sos`
   and applied through MNE's ``Raw.filter`` (``method="iir"``): ``phase="zero"`` runs them
   forward and backward, ``phase="causal"`` forward only (MNE's ``phase="forward"``, exactly
   what :class:`StreamingFilter` does live), so ``raw.info["highpass"]``/``["lowpass"]`` tell
   the truth,
3. interpolation of bad channels (spherical splines, MNE; needs channel positions),
4. optional ICA removal of ocular components when EOG channels are present (MNE FastICA and
   ``find_bads_eog``),
5. re-referencing through MNE's ``set_eeg_reference`` (average, mastoids, or none),
6. resampling: zero-phase pipelines use MNE's ``Raw.resample`` (polyphase); causal pipelines
   decimate by an integer factor after a causal anti-alias low-pass (:func:`decimation_factor`),
   which :class:`StreamingPipeline` reproduces chunk by chunk.

The causal steps (2, 5 and 6 with ``phase="causal"``) are what the live path runs; a pipeline
with bad-channel detection, ICA or a zero-phase filter cannot be reproduced live
(:func:`live_problems` says why).

Epoching from markers with peak-to-peak rejection is :func:`make_epochs`; baseline handling
(subtract a baseline mean, or divide band power by the baseline's, as DEAP/DREAMER studies do)
is :func:`apply_baseline` and :func:`normalise_to_baseline`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import signal

from physioaffect.preprocessing.quality import (
    SignalInputError,
    as_signal_array,
    check_sfreq,
    eeg_unit_problem,
    warn_quality,
)

__all__ = [
    "PipelineConfig",
    "design_sos",
    "filter_array",
    "detect_bad_channels",
    "preprocess_raw",
    "preprocess_array",
    "make_epochs",
    "apply_baseline",
    "normalise_to_baseline",
    "StreamingFilter",
    "StreamingPipeline",
    "decimation_factor",
    "live_problems",
]

_REFERENCES = ("average", "mastoids", "none")
_PHASES = ("zero", "causal")
_BASELINES = ("none", "subtract", "ratio", "db")


@dataclass(frozen=True)
class PipelineConfig:
    """Declared EEG preprocessing. All frequencies in Hz, times in seconds, amplitudes in uV.

    Attributes
    ----------
    l_freq, h_freq : float or None
        Band-pass edges (None disables that side).
    filter_order : int
        Butterworth order of the band-pass (per side).
    phase : {"zero", "causal"}
        Zero-phase (offline only) or causal (identical to the live :class:`StreamingFilter`).
        Use "causal" when a model trained offline will be decoded live.
    notch_freq : float or None
        Line frequency to notch (50 or 60); harmonics below ``h_freq`` are notched too.
    notch_q : float
        Quality factor of the notch (bandwidth = freq / Q).
    reference : {"average", "mastoids", "none"}
    mastoids : tuple of str
        Labels used by ``reference="mastoids"`` (the first pair present is used).
    detect_bads : bool
        Detect bad channels.
    bad_z : float
        Robust z-score of the log channel SD beyond which a channel is bad.
    interpolate_bads : bool
        Interpolate bad channels (otherwise they are only marked).
    ica_eog : bool
        Remove ocular ICA components when EOG channels are present.
    ica_n_components : float or int or None
        Passed to :class:`mne.preprocessing.ICA` (None: as many as the data's rank; a
        variance fraction such as 0.99 can drop the ocular component before it is found).
    resample_sfreq : float or None
        Target rate in Hz.
    epoch_tmin, epoch_tmax : float
        Epoch window around each marker, seconds.
    reject_uv : float or None
        Reject epochs whose peak-to-peak amplitude exceeds this (uV) in any EEG channel.
    baseline : {"none", "subtract", "ratio", "db"}
        Baseline handling (see :func:`apply_baseline`, :func:`normalise_to_baseline`).
    baseline_window : tuple of float
        Baseline window (start, stop) in seconds relative to the marker.
    random_state : int
        Seed for ICA.
    """

    l_freq: float | None = 1.0
    h_freq: float | None = 45.0
    filter_order: int = 4
    phase: str = "zero"
    notch_freq: float | None = 50.0
    notch_q: float = 30.0
    reference: str = "average"
    mastoids: tuple[str, ...] = ("M1", "M2", "A1", "A2", "TP9", "TP10")
    detect_bads: bool = True
    bad_z: float = 5.0
    interpolate_bads: bool = True
    ica_eog: bool = False
    ica_n_components: float | int | None = None
    resample_sfreq: float | None = None
    epoch_tmin: float = 0.0
    epoch_tmax: float = 1.0
    reject_uv: float | None = None
    baseline: str = "none"
    baseline_window: tuple[float, float] = (-3.0, 0.0)
    random_state: int = 97
    version: int = field(default=1)

    def __post_init__(self) -> None:
        def bad(name: str, want: str) -> SignalInputError:
            return SignalInputError(
                f"PipelineConfig.{name}: expected {want}, got {getattr(self, name)!r}"
            )

        if self.phase not in _PHASES:
            raise bad("phase", f"one of {_PHASES}")
        if self.reference not in _REFERENCES:
            raise bad("reference", f"one of {_REFERENCES}")
        if self.baseline not in _BASELINES:
            raise bad("baseline", f"one of {_BASELINES}")
        for name in ("l_freq", "h_freq", "notch_freq", "resample_sfreq", "reject_uv"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v > 0):
                raise bad(name, "a positive number or None")
        if self.l_freq is not None and self.h_freq is not None and self.l_freq >= self.h_freq:
            raise bad("l_freq", f"a value below h_freq={self.h_freq}")
        if not (isinstance(self.filter_order, int) and 1 <= self.filter_order <= 10):
            raise bad("filter_order", "an integer 1-10")
        if self.epoch_tmax <= self.epoch_tmin:
            raise bad("epoch_tmax", f"a value above epoch_tmin={self.epoch_tmin}")
        if len(self.baseline_window) != 2 or self.baseline_window[0] >= self.baseline_window[1]:
            raise bad("baseline_window", "(start, stop) with start < stop")

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are an error (a newer config)."""
        if not isinstance(data, dict):
            raise SignalInputError(f"PipelineConfig: expected a dict, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise SignalInputError(
                f"PipelineConfig: unknown fields {unknown}; written by a newer version?"
            )
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PipelineConfig:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SignalInputError(f"PipelineConfig: invalid JSON ({err})") from None
        return cls.from_dict(data)

    def config_hash(self) -> str:
        """16 hex digits of the SHA-256 of the canonical JSON: a stable cache key."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------ filters


def decimation_factor(config: PipelineConfig, sfreq: float) -> int:
    """Integer factor by which a causal pipeline decimates ``sfreq`` (1: no resampling).

    A causal pipeline cannot resample with a symmetric (look-ahead) kernel, so it keeps every
    k-th sample after a causal anti-alias low-pass; ``sfreq / resample_sfreq`` must then be a
    whole number. Zero-phase pipelines resample with MNE and return 1 here.

    Raises
    ------
    SignalInputError
        ``resample_sfreq`` above ``sfreq`` or not an integer divisor of it (causal pipeline).
    """
    fs = check_sfreq(sfreq)
    target = config.resample_sfreq
    if config.phase != "causal" or target is None or abs(target - fs) < 1e-9:
        return 1
    k = fs / target
    if target > fs or abs(k - round(k)) > 1e-9:
        raise SignalInputError(
            f"PipelineConfig.resample_sfreq: a causal pipeline decimates by a whole factor; "
            f"{target:g} Hz does not divide {fs:g} Hz (choose e.g. {fs / max(2, round(k)):g} Hz, "
            "or phase='zero' for offline-only resampling)"
        )
    return int(round(k))


def _anti_alias_hz(config: PipelineConfig, sfreq: float) -> float | None:
    """Edge of the causal anti-alias low-pass added before decimation (None: not needed)."""
    k = decimation_factor(config, sfreq)
    if k == 1:
        return None
    edge = 0.4 * sfreq / k  # 80 % of the new Nyquist frequency
    if config.h_freq is not None and config.h_freq <= edge:
        return None  # the band-pass already removes what would alias
    return edge


def design_sos(config: PipelineConfig, sfreq: float) -> np.ndarray:
    """Second-order sections of the notch(es), the band-pass and, for a causal pipeline that
    decimates, an anti-alias low-pass (Butterworth, order 8, at 80 % of the new Nyquist
    frequency, only when ``h_freq`` does not already lie below it).

    Returns
    -------
    ndarray, shape (n_sections, 6)
        Empty (0, 6) when the config filters nothing.

    Raises
    ------
    SignalInputError
        A cut-off at or above Nyquist.
    """
    fs = check_sfreq(sfreq)
    nyq = fs / 2
    parts = []
    if config.notch_freq is not None:
        top = config.h_freq if config.h_freq is not None else nyq
        f = config.notch_freq
        while f < min(top + config.notch_freq / 2, nyq):
            b, a = signal.iirnotch(f, config.notch_q, fs=fs)
            parts.append(signal.tf2sos(b, a))
            f += config.notch_freq
    lo, hi = config.l_freq, config.h_freq
    if lo is not None and lo >= nyq:  # scipy's message would not name the field
        raise SignalInputError(
            f"PipelineConfig.l_freq={lo:g} Hz is at or above Nyquist ({nyq:g} Hz at {fs:g} Hz)"
        )
    if hi is not None and hi >= nyq:
        if lo is None:
            raise SignalInputError(
                f"PipelineConfig.h_freq={hi:g} Hz is at or above Nyquist ({nyq:g} Hz)"
            )
        hi = None  # low-pass above Nyquist: nothing to remove
    if lo is not None and hi is not None:
        parts.append(
            signal.butter(config.filter_order, [lo, hi], btype="bandpass", fs=fs, output="sos")
        )
    elif lo is not None:
        parts.append(signal.butter(config.filter_order, lo, btype="highpass", fs=fs, output="sos"))
    elif hi is not None:
        parts.append(signal.butter(config.filter_order, hi, btype="lowpass", fs=fs, output="sos"))
    alias = _anti_alias_hz(config, fs)
    if alias is not None:
        parts.append(signal.butter(8, alias, btype="lowpass", fs=fs, output="sos"))
    return np.concatenate(parts) if parts else np.zeros((0, 6))


def live_problems(config: PipelineConfig) -> list[str]:
    """Why a pipeline cannot be reproduced on live streams (empty: it can).

    The live path runs the causal filters, the re-reference and the decimation of
    :class:`StreamingPipeline`; it cannot look ahead (zero-phase filters), find bad channels in a
    recording it has not seen, or apply an ICA fitted on another recording.
    """
    problems = []
    if config.phase != "causal":
        problems.append("phase='zero' filters look ahead in time")
    if config.detect_bads:
        problems.append("detect_bads finds bad channels on the whole recording")
    if config.ica_eog:
        problems.append("ica_eog fits an ICA on the whole recording")
    return problems


def filter_array(x: object, sfreq: float, config: PipelineConfig, axis: int = -1) -> np.ndarray:
    """Apply the config's notch and band-pass along ``axis`` (zero-phase or causal per config).

    Parameters
    ----------
    x : array_like, shape (..., n_times)
    sfreq : float
        Hz.

    Returns
    -------
    ndarray, same shape, float64.
    """
    arr = np.asarray(as_signal_array(x, "x"), dtype=np.float64)
    sos = design_sos(config, sfreq)
    if len(sos) == 0:
        return arr.copy()
    if config.phase == "causal":
        return signal.sosfilt(sos, arr, axis=axis)
    padlen = min(arr.shape[axis] - 1, 3 * (2 * len(sos) + 1))
    return signal.sosfiltfilt(sos, arr, axis=axis, padlen=padlen)


class StreamingFilter:
    """Causal SOS filter that keeps its state between chunks.

    Filtering a recording chunk by chunk gives the same output as one
    ``scipy.signal.sosfilt(sos, x, axis=0)`` over the concatenated signal (the state carried
    between calls is exactly the filter's delay line).

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6)
        Second-order sections, e.g. :func:`design_sos`.
    n_channels : int
        Channels per sample.

    Examples
    --------
    >>> f = StreamingFilter.from_config(PipelineConfig(phase="causal"), sfreq=256, n_channels=8)
    >>> y = f.process(chunk)  # chunk: (n_samples, 8), as stream chunks are
    """

    def __init__(self, sos: np.ndarray, n_channels: int):
        self.sos = np.atleast_2d(np.asarray(sos, dtype=np.float64))
        if self.sos.size and self.sos.shape[1] != 6:
            raise SignalInputError(f"sos: expected shape (n_sections, 6), got {self.sos.shape}")
        if int(n_channels) < 1:
            raise SignalInputError(f"n_channels: expected >= 1, got {n_channels!r}")
        self.n_channels = int(n_channels)
        self.reset()

    @classmethod
    def from_config(cls, config: PipelineConfig, sfreq: float, n_channels: int) -> StreamingFilter:
        """The filter :func:`filter_array` applies with ``phase="causal"``."""
        return cls(design_sos(config, sfreq), n_channels)

    def reset(self) -> None:
        """Forget the past (zero initial state, as a one-shot ``sosfilt``)."""
        self._zi = np.zeros((len(self.sos), 2, self.n_channels))

    def process(self, chunk: object) -> np.ndarray:
        """Filter one chunk.

        Parameters
        ----------
        chunk : array_like, shape (n_samples, n_channels)
            Samples in time order; any length including 0.

        Returns
        -------
        ndarray, shape (n_samples, n_channels), float64.
        """
        x = np.asarray(chunk, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise SignalInputError(
                f"chunk: expected shape (n_samples, {self.n_channels}), got {x.shape}"
            )
        if len(self.sos) == 0 or x.shape[0] == 0:
            return x.copy()
        y, self._zi = signal.sosfilt(self.sos, x, axis=0, zi=self._zi)
        return y


class StreamingPipeline:
    """The causal pipeline for the live path: filter, re-reference and decimate, per chunk.

    Matches :func:`preprocess_array` with ``phase="causal"``, ``detect_bads=False`` and
    ``ica_eog=False`` sample for sample, for chunks of any size (the offline order is filter,
    reference, decimate too). Bad channels found offline can be passed as ``bads`` (excluded
    from the average reference, as offline).

    Parameters
    ----------
    config : PipelineConfig
        Must be causal (see :func:`live_problems`).
    sfreq : float
        Rate of the incoming samples, Hz.
    ch_names : list of str
    bads : list of str

    Attributes
    ----------
    sfreq_out : float
        Rate of the output samples (``sfreq`` divided by :func:`decimation_factor`).
    """

    def __init__(
        self,
        config: PipelineConfig,
        sfreq: float,
        ch_names: Sequence[str],
        bads: Sequence[str] = (),
    ):
        problems = live_problems(config)
        if config.phase != "causal":
            raise SignalInputError(
                "config.phase: the live path needs phase='causal' to match training"
            )
        if problems:
            raise SignalInputError(f"config: cannot run live ({'; '.join(problems)})")
        self.config = config
        self.ch_names = list(ch_names)
        self.filter = StreamingFilter.from_config(config, sfreq, len(self.ch_names))
        self._ref = _reference_matrix(self.ch_names, config, bads)
        self.decimate = decimation_factor(config, sfreq)
        self.sfreq_out = float(sfreq) / self.decimate
        self._phase = 0

    def reset(self) -> None:
        """Start over, as at the first sample of a recording (filter state and decimation)."""
        self.filter.reset()
        self._phase = 0

    def process(self, chunk: object, timestamps: object | None = None):
        """Filter, re-reference and decimate a ``(n_samples, n_channels)`` chunk in microvolts.

        Returns
        -------
        y : ndarray, shape (n_kept, n_channels)
            ``n_kept == n_samples`` without decimation.
        ts : ndarray, shape (n_kept,)
            Only when ``timestamps`` (one per input sample) are given: those of the kept samples.
        """
        y = self.filter.process(chunk)
        if self._ref is not None:
            y = y @ self._ref.T
        keep = None
        if self.decimate > 1:
            first = (-self._phase) % self.decimate  # index of the next sample to keep
            keep = slice(first, None, self.decimate)
            self._phase = (self._phase + len(y)) % self.decimate
            y = y[keep]
        if timestamps is None:
            return y
        ts = np.asarray(timestamps, dtype=np.float64)
        return y, (ts if keep is None else ts[keep])


def _reference_matrix(
    ch_names: Sequence[str], config: PipelineConfig, bads: Sequence[str] = ()
) -> np.ndarray | None:
    """Matrix R with ``referenced = R @ data`` (None for no re-referencing)."""
    n = len(ch_names)
    if config.reference == "none":
        return None
    if config.reference == "average":
        good = np.array([c not in set(bads) for c in ch_names], dtype=float)
        if good.sum() == 0:
            raise SignalInputError(
                "reference: every channel is bad; cannot build an average reference"
            )
        if good.sum() < 2:  # the signal minus itself: zero everywhere
            raise SignalInputError(
                f"reference='average' needs 2 or more good channels, got {int(good.sum())} of "
                f"{n}; use reference='none'"
            )
        return np.eye(n) - np.outer(np.ones(n), good / good.sum())
    lower = [c.lower() for c in ch_names]
    ms = [m.lower() for m in config.mastoids]
    pairs = [(ms[i], ms[i + 1]) for i in range(0, len(ms) - 1, 2)]
    for a, b in pairs:
        if a in lower and b in lower:
            w = np.zeros(n)
            w[[lower.index(a), lower.index(b)]] = 0.5
            return np.eye(n) - np.outer(np.ones(n), w)
    raise SignalInputError(
        f"reference='mastoids': none of the mastoid pairs {config.mastoids} is among the channels {list(ch_names)}"
    )


# ------------------------------------------------------------------------------ bad channels


def detect_bad_channels(
    x: object, sfreq: float, ch_names: Sequence[str], z: float = 5.0
) -> tuple[list[str], dict[str, str]]:
    """Bad channels by a robust z-score of the log standard deviation (1-40 Hz).

    Parameters
    ----------
    x : array_like, shape (n_chans, n_times)
    sfreq : float
    ch_names : list of str
    z : float
        Threshold on ``|log SD - median| / (1.4826 * MAD)``.

    Returns
    -------
    bads : list of str
    why : dict label -> reason
    """
    arr = as_signal_array(x, "x", min_ndim=2, max_ndim=2)
    if arr.shape[0] != len(ch_names):
        raise SignalInputError(f"ch_names: {len(ch_names)} labels for {arr.shape[0]} channels")
    why: dict[str, str] = {}
    finite = np.isfinite(arr).all(axis=1)
    for i in np.flatnonzero(~finite):
        why[ch_names[i]] = "non-finite samples"
    clean = np.where(np.isfinite(arr), arr, 0.0)
    hi = min(40.0, 0.45 * sfreq)
    sos = signal.butter(4, [1.0, hi], btype="bandpass", fs=sfreq, output="sos")
    filt = signal.sosfiltfilt(sos, clean, axis=-1) if arr.shape[1] > 30 else clean
    sd = filt.std(axis=1)
    for i in np.flatnonzero(finite & (sd <= 1e-12 * max(1.0, float(np.nanmax(sd))))):
        why[ch_names[i]] = "flat"
    ok = finite & (sd > 0)
    if ok.sum() >= 3:
        logsd = np.log(sd[ok])
        med = np.median(logsd)
        mad = 1.4826 * np.median(np.abs(logsd - med))
        mad = max(mad, 0.1)  # channels of near-equal SD should not make a tiny spread look huge
        scores = (logsd - med) / mad
        for i, s in zip(np.flatnonzero(ok), scores, strict=True):
            if abs(s) > z:
                why[ch_names[i]] = f"SD robust z-score {s:+.1f}"
    bads = [c for c in ch_names if c in why]
    return bads, why


# ------------------------------------------------------------------------------ MNE pipeline


def preprocess_raw(
    raw: Any, config: PipelineConfig, *, copy: bool = True
) -> tuple[Any, dict[str, Any]]:
    """Apply a pipeline to an :class:`mne.io.Raw` (EEG in volts, MNE's convention).

    Returns
    -------
    raw : mne.io.Raw
        Processed (a copy unless ``copy=False``).
    report : dict
        ``bads`` (list), ``bad_reasons`` (dict), ``interpolated`` (list), ``ica_excluded``
        (list of component indices), ``sfreq`` (final rate), ``config_hash``.
    """
    import mne

    if not isinstance(raw, mne.io.BaseRaw):
        raise SignalInputError(f"raw: expected an mne.io.Raw, got {type(raw).__name__}")
    raw = raw.copy() if copy else raw
    raw.load_data(verbose=False)
    picks = mne.pick_types(raw.info, eeg=True, exclude=[])
    if picks.size == 0:
        raise SignalInputError("raw: no EEG channels (channel types must be 'eeg')")
    eeg_names = [raw.ch_names[i] for i in picks]
    sfreq = float(raw.info["sfreq"])
    report: dict[str, Any] = {"bads": [], "bad_reasons": {}, "interpolated": [], "ica_excluded": []}

    data = raw.get_data(picks=picks)
    if data.shape[1] < 3:
        raise SignalInputError(
            f"raw: {data.shape[1]} samples are too few to filter (need 3 or more)"
        )
    if config.l_freq is not None and data.shape[1] / sfreq < 3 / config.l_freq:
        warn_quality(
            "preprocess",
            [
                f"{data.shape[1] / sfreq:.2f} s of data is shorter than the {3 / config.l_freq:g} s "
                f"the {config.l_freq:g} Hz high-pass needs to settle; edges are distorted"
            ],
        )
    # MNE keeps volts: microvolt numbers stored as volts are 1e6 too large.
    problem = eeg_unit_problem(data, "V")
    if problem:
        warn_quality("preprocess_raw", [problem])
    if config.detect_bads:
        bads, why = detect_bad_channels(data * 1e6, sfreq, eeg_names, config.bad_z)
        report["bads"], report["bad_reasons"] = bads, why
        raw.info["bads"] = sorted(set(raw.info["bads"]) | set(bads))
        if bads:
            warn_quality("preprocess", [f"bad channels {why}"])
    # Non-finite samples would poison every filter; bad channels are zeroed before filtering.
    raw._data[picks] = np.where(np.isfinite(data), data, 0.0)
    _filter_with_mne(raw, picks, config, sfreq)

    bads_now = [b for b in raw.info["bads"] if b in eeg_names]
    if bads_now and config.interpolate_bads:
        if raw.get_montage() is None:
            _try_standard_montage(raw)
        if raw.get_montage() is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                raw.interpolate_bads(reset_bads=True, verbose=False)
            report["interpolated"] = bads_now
        else:
            warn_quality(
                "preprocess",
                [f"no channel positions: bad channels {bads_now} kept marked, not interpolated"],
            )

    if config.ica_eog and mne.pick_types(raw.info, eog=True).size:
        report["ica_excluded"] = _ica_remove_eog(raw, config)

    if config.reference != "none":
        _reference_with_mne(raw, eeg_names, config)

    if config.resample_sfreq is not None and config.resample_sfreq != sfreq:
        raw = _resample(raw, config, sfreq)
    report["sfreq"] = float(raw.info["sfreq"])
    report["config_hash"] = config.config_hash()
    return raw, report


def _filter_with_mne(raw: Any, picks: np.ndarray, config: PipelineConfig, sfreq: float) -> None:
    """Apply :func:`design_sos` through MNE's ``Raw.filter`` so that ``info`` records the band.

    MNE's IIR ``phase="forward"`` is one ``sosfilt`` pass from a zero state, exactly what
    :class:`StreamingFilter` computes live; ``phase="zero"`` is MNE's forward-backward pass.
    """
    sos = design_sos(config, sfreq)
    if len(sos) == 0:
        return
    mne_phase = "forward" if config.phase == "causal" else "zero"
    lo = config.l_freq
    hi = config.h_freq if config.h_freq is not None and config.h_freq < sfreq / 2 else None
    alias = _anti_alias_hz(config, sfreq)
    if alias is not None:
        hi = alias if hi is None else min(hi, alias)
    if lo is None and hi is None:
        # a notch alone: no band edge for MNE's filter, and no info field describes a notch
        func = signal.sosfilt if config.phase == "causal" else signal.sosfiltfilt
        raw._data[picks] = func(sos, raw._data[picks], axis=-1)
        return
    raw.filter(lo, hi, picks=picks, method="iir", iir_params={"sos": sos}, phase=mne_phase,
               verbose=False)


def _reference_with_mne(raw: Any, eeg_names: list[str], config: PipelineConfig) -> None:
    """Re-reference with MNE's ``set_eeg_reference`` (records ``custom_ref_applied``)."""
    good = [c for c in eeg_names if c not in raw.info["bads"]]
    if config.reference == "average":
        if len(good) < 2:
            warn_quality("preprocess", [
                f"average reference skipped: {len(good)} good EEG channel(s) (the average of one "
                "channel is the channel itself, and would leave zeros)"])
            return
        raw.set_eeg_reference("average", projection=False, verbose=False)
        return
    lower = {c.lower(): c for c in eeg_names}
    ms = [m.lower() for m in config.mastoids]
    for a, b in zip(ms[0::2], ms[1::2], strict=False):
        if a in lower and b in lower:
            raw.set_eeg_reference([lower[a], lower[b]], projection=False, verbose=False)
            return
    raise SignalInputError(
        f"reference='mastoids': none of the mastoid pairs {config.mastoids} is among the "
        f"channels {eeg_names}"
    )


def _resample(raw: Any, config: PipelineConfig, sfreq: float) -> Any:
    """Zero-phase pipelines: MNE's polyphase ``Raw.resample``. Causal pipelines: keep every
    k-th sample (the anti-alias low-pass is already in the filter), as the live path does."""
    import mne

    k = decimation_factor(config, sfreq)
    if k == 1:
        raw.resample(config.resample_sfreq, method="polyphase", verbose=False)
        return raw
    info = raw.info.copy()
    new_fs = sfreq / k
    with info._unlock():  # MNE has no Raw.decimate; the new rate and band are set by hand
        info["sfreq"] = new_fs
        info["lowpass"] = min(float(info["lowpass"]), new_fs / 2)
    out = mne.io.RawArray(raw.get_data()[:, ::k], info, first_samp=raw.first_samp // k,
                          verbose=False)
    out.set_annotations(raw.annotations)
    return out


def _try_standard_montage(raw: Any) -> None:
    import mne

    with warnings.catch_warnings():
        # The template's name changes across MNE versions; its positions do not.
        warnings.simplefilter("ignore", FutureWarning)
        montage = mne.channels.make_standard_montage("standard_1005")
    known = {c.lower() for c in montage.ch_names}
    eeg = [raw.ch_names[i] for i in mne.pick_types(raw.info, eeg=True, exclude=[])]
    if all(c.lower() in known for c in eeg):
        raw.set_montage(montage, match_case=False, on_missing="ignore", verbose=False)


def _ica_remove_eog(raw: Any, config: PipelineConfig) -> list[int]:
    import mne

    fit_raw = raw.copy().filter(l_freq=1.0, h_freq=None, picks="eeg", verbose=False)
    n_eeg = len(mne.pick_types(raw.info, eeg=True, exclude="bads"))
    n_comp = config.ica_n_components
    if isinstance(n_comp, int):
        n_comp = min(n_comp, n_eeg - 1)
    ica = mne.preprocessing.ICA(
        n_components=n_comp,
        method="fastica",
        random_state=config.random_state,
        max_iter="auto",
        verbose=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ica.fit(fit_raw, picks="eeg", verbose=False)
        inds, _ = ica.find_bads_eog(fit_raw, verbose=False)
    ica.exclude = list(inds)
    if inds:
        ica.apply(raw, verbose=False)
    return [int(i) for i in inds]


def preprocess_array(
    x: object,
    sfreq: float,
    ch_names: Sequence[str],
    config: PipelineConfig,
    *,
    eog: object | None = None,
    montage: Any | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Apply a pipeline to an EEG array in microvolts.

    Parameters
    ----------
    x : array_like, shape (n_chans, n_times)
        EEG in microvolts.
    sfreq : float
        Hz.
    ch_names : list of str
    config : PipelineConfig
    eog : array_like, shape (n_eog, n_times), optional
        EOG in microvolts (used by ``ica_eog``).
    montage : mne.channels.DigMontage, optional
        Channel positions for interpolation (default: standard 10-05 if all labels are known).

    Returns
    -------
    y : ndarray, shape (n_chans, n_times_out)
        Processed EEG in microvolts.
    report : dict
        As :func:`preprocess_raw`.
    """
    import mne

    arr = as_signal_array(x, "x", min_ndim=2, max_ndim=2)
    fs = check_sfreq(sfreq)
    if arr.shape[0] != len(ch_names):
        raise SignalInputError(f"ch_names: {len(ch_names)} labels for {arr.shape[0]} channels")
    problem = eeg_unit_problem(arr, "uV")
    if problem:
        warn_quality("preprocess_array", [problem])
    names, types, data = list(ch_names), ["eeg"] * len(ch_names), [arr]
    if eog is not None:
        e = np.atleast_2d(as_signal_array(eog, "eog"))
        if e.shape[1] != arr.shape[1]:
            raise SignalInputError(f"eog: expected {arr.shape[1]} samples, got shape {e.shape}")
        names += [f"EOG{i}" for i in range(e.shape[0])]
        types += ["eog"] * e.shape[0]
        data.append(e)
    info = mne.create_info(names, fs, types)
    raw = mne.io.RawArray(np.concatenate(data) * 1e-6, info, verbose=False)
    if montage is not None:
        raw.set_montage(montage, on_missing="ignore", verbose=False)
    raw, report = preprocess_raw(raw, config, copy=False)
    return raw.get_data(picks="eeg") * 1e6, report


def make_epochs(
    raw: Any,
    onsets_s: Sequence[float],
    config: PipelineConfig,
    event_codes: Sequence[int] | None = None,
) -> Any:
    """Epochs around markers with peak-to-peak rejection.

    Parameters
    ----------
    raw : mne.io.Raw
    onsets_s : sequence of float
        Marker times in seconds from the start of ``raw``.
    config : PipelineConfig
        ``epoch_tmin``, ``epoch_tmax``, ``reject_uv``, ``baseline`` and ``baseline_window``
        ("subtract" applies MNE's baseline correction).
    event_codes : sequence of int, optional
        Event code per marker (default 1).

    Returns
    -------
    mne.Epochs (data loaded; rejected epochs dropped, see ``epochs.drop_log``).
    """
    import mne

    sfreq = float(raw.info["sfreq"])
    onsets = np.asarray(onsets_s, dtype=float)
    codes = (
        np.ones(onsets.size, dtype=int)
        if event_codes is None
        else np.asarray(event_codes, dtype=int)
    )
    if codes.size != onsets.size:
        raise SignalInputError(f"event_codes: expected {onsets.size} codes, got {codes.size}")
    samples = np.round(onsets * sfreq).astype(int) + raw.first_samp
    events = np.column_stack([samples, np.zeros_like(samples), codes])
    baseline = None
    if config.baseline == "subtract":
        b0, b1 = config.baseline_window
        if b0 < config.epoch_tmin or b1 > config.epoch_tmax:
            raise SignalInputError(
                "baseline_window: must lie inside [epoch_tmin, epoch_tmax] for 'subtract'"
            )
        baseline = (b0, b1)
    reject = None if config.reject_uv is None else {"eeg": config.reject_uv * 1e-6}
    return mne.Epochs(
        raw,
        events,
        tmin=config.epoch_tmin,
        tmax=config.epoch_tmax,
        baseline=baseline,
        reject=reject,
        preload=True,
        verbose=False,
    )


def apply_baseline(x: object, sfreq: float, tmin: float, window: tuple[float, float]) -> np.ndarray:
    """Subtract the mean of a baseline window from each channel.

    Parameters
    ----------
    x : array_like, shape (..., n_times)
    sfreq : float
    tmin : float
        Time of the first sample (s) relative to the marker.
    window : (start, stop)
        Baseline window in seconds relative to the marker.
    """
    arr = as_signal_array(x, "x")
    times = tmin + np.arange(arr.shape[-1]) / check_sfreq(sfreq)
    # Both ends inclusive, as MNE's baseline correction.
    sel = (times >= window[0] - 1e-9) & (times <= window[1] + 1e-9)
    if not sel.any():
        raise SignalInputError(
            f"window: baseline {window} s holds no sample of an epoch starting at {tmin:g} s"
        )
    return arr - arr[..., sel].mean(axis=-1, keepdims=True)


def normalise_to_baseline(
    features: object, baseline_features: object, mode: str = "ratio"
) -> np.ndarray:
    """Relate features (e.g. band power) to the same features of a baseline period.

    ``"ratio"``: ``f / b`` (DEAP/DREAMER convention); ``"db"``: ``10*log10(f / b)``;
    ``"subtract"``: ``f - b``. ``baseline_features`` broadcasts against ``features`` (e.g. one
    baseline per trial of shape (n_chans, n_bands)).
    """
    f = as_signal_array(features, "features")
    b = as_signal_array(baseline_features, "baseline_features")
    try:
        np.broadcast_shapes(f.shape, b.shape)
    except ValueError:
        raise SignalInputError(
            f"baseline_features: shape {b.shape} does not broadcast to {f.shape}"
        ) from None
    with np.errstate(divide="ignore", invalid="ignore"):
        if mode == "ratio":
            out = f / b
        elif mode == "db":
            out = 10 * np.log10(f / b)
        elif mode == "subtract":
            out = f - b
        else:
            raise SignalInputError(f"mode: expected 'ratio', 'db' or 'subtract', got {mode!r}")
    return np.where(np.isfinite(out), out, np.nan)
