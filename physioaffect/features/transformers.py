"""scikit-learn transformers from raw EEG windows to band features.

:class:`DifferentialEntropy` and :class:`BandPower` take windows ``X`` of shape
``(n_windows, n_chans, n_times)`` and return ``(n_windows, n_chans * n_bands)`` (channel-major:
all bands of the first channel, then the next), so they sit at the head of a ``Pipeline``
before a scaler and a classifier::

    pipe = make_pipeline(DifferentialEntropy(sfreq=128), StandardScaler(), LogisticRegression())
    cross_val_score(pipe, X, y, groups=subjects, cv=LOSO())

Units at the MNE boundary: ``X`` may be an array in the unit ``unit`` declares (default
microvolts, the package's EEG unit, as before) or an ``mne.Epochs`` (or ``mne.io.Raw``, one
window) in MNE's volts, whose EEG channels (``picks``), rate and channel names are read from the
object; the values are turned into microvolts through
:func:`physioaffect.streams.units.unit_factor` before the features, so ``epochs`` and
``epochs.get_data() * 1e6`` give the same features, and so do ``epochs.get_data()`` with
``unit="V"``.

They follow scikit-learn's estimator contract: ``__init__`` only stores its arguments (so
``get_params``/``clone``/``GridSearchCV`` work), ``fit`` checks the input and learns the channel
count and band list (attributes ending in ``_``), ``transform`` refuses to run before ``fit``
(``check_is_fitted``) and checks the channel count. The features are those of
:func:`physioaffect.features.eeg.differential_entropy` and
:func:`~physioaffect.features.eeg.band_power`, unchanged; unusable windows (NaN, flat, clipped)
give NaN features and a :class:`~physioaffect.preprocessing.quality.SignalQualityWarning`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from physioaffect.features.eeg import band_power, differential_entropy, resolve_bands
from physioaffect.preprocessing.quality import SignalInputError
from physioaffect.streams.units import UnitError, unit_factor

__all__ = ["BandPower", "DifferentialEntropy", "as_microvolt_windows"]


def _is_mne(X: object) -> bool:
    return hasattr(X, "info") and hasattr(X, "get_data") and hasattr(X, "ch_names")


def _pick_indices(X: object, picks: str | Sequence[str] | None, owner: str) -> list[int]:
    """Channel indices of an MNE object for channel types or channel names (None: all)."""
    names = list(X.ch_names)  # type: ignore[attr-defined]
    if picks is None:
        return list(range(len(names)))
    wanted = [picks] if isinstance(picks, str) else list(picks)
    types = X.get_channel_types()  # type: ignore[attr-defined]
    idx = [i for i, (n, t) in enumerate(zip(names, types, strict=True))
           if t in wanted or n in wanted]
    if not idx:
        raise SignalInputError(f"{owner}: no channel of {X.__class__.__name__} matches "
                               f"picks={picks!r} (channel types: {sorted(set(types))})")
    return idx


def as_microvolt_windows(X: object, unit: str | None = None,
                         picks: str | Sequence[str] | None = "eeg", owner: str = "X",
                         ) -> tuple[np.ndarray, float | None, list[str] | None]:
    """Windows ``(n_windows, n_chans, n_times)`` in microvolts from an array or an MNE object.

    Parameters
    ----------
    X : array_like or mne.Epochs or mne.io.Raw
        An array in ``unit``; an ``Epochs`` (each epoch a window) or a ``Raw`` (one window)
        in ``unit`` (default volts, MNE's unit), its channels ``picks``.
    unit : str, optional
        Unit of the values (``"uV"``, ``"mV"``, ``"V"`` ...; default ``"uV"`` for arrays, ``"V"``
        for MNE objects), converted with :func:`~physioaffect.streams.units.unit_factor`.
    picks : str or list of str or None
        MNE objects only: channel types or names to use (default ``"eeg"``; None: all).
    owner : str
        Names the caller in error messages.

    Returns
    -------
    windows : ndarray
        float64 microvolts (the array itself when it already is float64 microvolts).
    sfreq : float or None
        The MNE object's sampling rate in Hz (None for arrays).
    ch_names : list of str or None
        The MNE object's picked channel names (None for arrays).
    """
    sfreq, names = None, None
    if _is_mne(X):
        idx = _pick_indices(X, picks, owner)
        arr = np.asarray(X.get_data(picks=idx), dtype=np.float64)  # type: ignore[attr-defined]
        if arr.ndim == 2:  # a Raw: the whole recording as one window
            arr = arr[None]
        sfreq = float(X.info["sfreq"])  # type: ignore[attr-defined]
        names = [X.ch_names[i] for i in idx]  # type: ignore[attr-defined]
        unit = "V" if unit is None else unit
    else:
        arr = X if isinstance(X, np.ndarray) and X.dtype == np.float64 \
            else np.asarray(X, dtype=np.float64)
        unit = "uV" if unit is None else unit
    try:
        factor = unit_factor(unit, "uV", what=f"{owner}: unit")
    except UnitError as err:
        raise SignalInputError(str(err)) from None
    return (arr * factor if factor != 1.0 else arr), sfreq, names


class _BandFeatures(TransformerMixin, BaseEstimator):
    """Shared fit/transform of the band-feature transformers."""

    def _windows(self, X: object, fitting: bool) -> np.ndarray:
        name = type(self).__name__
        arr, sfreq, names = as_microvolt_windows(X, self.unit, self.picks, name)
        if arr.ndim != 3:
            raise SignalInputError(
                f"{name}: X must be windows (n_windows, n_chans, n_times) in {self.unit or 'uV'}"
                f", or mne.Epochs, got shape {arr.shape}")
        if sfreq is not None and abs(sfreq - float(self.sfreq)) > 1e-9 * sfreq:
            raise SignalInputError(f"{name}: X is sampled at {sfreq:g} Hz, sfreq is "
                                   f"{self.sfreq:g} Hz (give {name}(sfreq={sfreq:g}))")
        if fitting:
            self.ch_names_ = list(self.ch_names) if self.ch_names is not None else names
        if not fitting and arr.shape[1] != self.n_channels_:
            raise SignalInputError(
                f"{type(self).__name__}: X has {arr.shape[1]} channels, fitted on "
                f"{self.n_channels_}")
        return arr

    def fit(self, X: object, y: object = None) -> _BandFeatures:
        """Check ``X`` and remember its channel count and the bands (nothing is learned
        from the values: the features are fixed functions of each window)."""
        arr = self._windows(X, fitting=True)
        self.bands_ = resolve_bands(self.bands, self.sfreq)
        self.n_channels_ = int(arr.shape[1])
        self.n_features_in_ = int(arr.shape[1])
        if self.ch_names is not None and len(self.ch_names) != self.n_channels_:
            raise SignalInputError(f"{type(self).__name__}: {len(self.ch_names)} ch_names for "
                                   f"{self.n_channels_} channels")
        return self

    def transform(self, X: object) -> np.ndarray:
        """Band features of each window, ``(n_windows, n_chans * n_bands)`` (or
        ``(n_windows, n_chans, n_bands)`` with ``flatten=False``)."""
        check_is_fitted(self, "bands_")
        arr = self._windows(X, fitting=False)
        feats = self._features(arr)
        return feats.reshape(feats.shape[0], -1) if self.flatten else feats

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """``<channel>_<band>`` per output column (``ch_names``, else an MNE object's channel
        names, else ``ch0``...)."""
        check_is_fitted(self, "bands_")
        names = self.ch_names_ if getattr(self, "ch_names_", None) is not None else \
            [f"ch{i}" for i in range(self.n_channels_)]
        return np.array([f"{c}_{b[0]}" for c in names for b in self.bands_], dtype=object)

    def _features(self, arr: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class DifferentialEntropy(_BandFeatures):
    """Differential entropy per channel and band (see :func:`~physioaffect.features.eeg.differential_entropy`).

    Parameters
    ----------
    sfreq : float
        Sampling rate of the windows in Hz.
    bands : str or list of (name, lo_hz, hi_hz)
        Band preset (``"torcheeg4"``, ``"seed5"``, ``"emt7"``) or explicit bands.
    mode : {"ln", "torcheeg"}
        Nats after zero-phase filtering, or TorchEEG's bits (bit-identical).
    flatten : bool
        Return ``(n, n_chans * n_bands)`` (default, for scikit-learn models) or
        ``(n, n_chans, n_bands)``.
    ch_names : list of str, optional
        Channel labels for :meth:`get_feature_names_out` (default: an MNE object's).
    n_jobs : int
        Filtering threads (-1: all cores).
    unit : str, optional
        Unit of ``X``'s values: default ``"uV"`` for arrays, ``"V"`` for ``mne.Epochs``/``Raw``
        (any spelling :func:`~physioaffect.streams.units.unit_symbol` knows: ``"V"``,
        ``"mV"``, ``"µV"``, ``"microvolts"``); converted to microvolts before the features.
    picks : str or list of str or None
        Channels of an MNE object (types or names; default ``"eeg"``, None: all).
    """

    def __init__(self, sfreq: float = 128.0, bands: str | Sequence = "torcheeg4",
                 mode: str = "ln", flatten: bool = True,
                 ch_names: Sequence[str] | None = None, n_jobs: int = 1,
                 unit: str | None = None, picks: str | Sequence[str] | None = "eeg") -> None:
        self.sfreq = sfreq
        self.bands = bands
        self.mode = mode
        self.flatten = flatten
        self.ch_names = ch_names
        self.n_jobs = n_jobs
        self.unit = unit
        self.picks = picks

    def _features(self, arr: np.ndarray) -> np.ndarray:
        return differential_entropy(arr, self.sfreq, self.bands_, self.mode, n_jobs=self.n_jobs)


class BandPower(_BandFeatures):
    """Welch band power per channel and band (see :func:`~physioaffect.features.eeg.band_power`).

    Parameters
    ----------
    sfreq : float
        Sampling rate of the windows in Hz.
    bands : str or list of (name, lo_hz, hi_hz)
        Band preset or explicit bands.
    relative : bool
        Fractions of the total power instead of uV^2 (the power is in uV^2 whatever ``unit``).
    log : bool
        ``log10`` of the power (band powers span decades; linear models prefer logs).
    segment_s : float
        Welch segment length in s.
    flatten, ch_names, n_jobs, unit, picks
        As :class:`DifferentialEntropy`.
    """

    def __init__(self, sfreq: float = 128.0, bands: str | Sequence = "emt7",
                 relative: bool = False, log: bool = False, segment_s: float = 1.0,
                 flatten: bool = True, ch_names: Sequence[str] | None = None,
                 n_jobs: int = 1, unit: str | None = None,
                 picks: str | Sequence[str] | None = "eeg") -> None:
        self.sfreq = sfreq
        self.bands = bands
        self.relative = relative
        self.log = log
        self.segment_s = segment_s
        self.flatten = flatten
        self.ch_names = ch_names
        self.n_jobs = n_jobs
        self.unit = unit
        self.picks = picks

    def _features(self, arr: np.ndarray) -> np.ndarray:
        bp = band_power(arr, self.sfreq, self.bands_, self.relative, segment_s=self.segment_s,
                        n_jobs=self.n_jobs)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                bp = np.log10(bp)
        return bp
