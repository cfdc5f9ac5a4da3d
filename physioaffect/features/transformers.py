"""scikit-learn transformers from raw EEG windows to band features.

:class:`DifferentialEntropy` and :class:`BandPower` take windows ``X`` of shape
``(n_windows, n_chans, n_times)`` in microvolts and return ``(n_windows, n_chans * n_bands)``
(channel-major: all bands of the first channel, then the next), so they sit at the head of a
``Pipeline`` before a scaler and a classifier::

    pipe = make_pipeline(DifferentialEntropy(sfreq=128), StandardScaler(), LogisticRegression())
    cross_val_score(pipe, X, y, groups=subjects, cv=LOSO())

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

__all__ = ["BandPower", "DifferentialEntropy"]


class _BandFeatures(TransformerMixin, BaseEstimator):
    """Shared fit/transform of the band-feature transformers."""

    def _windows(self, X: object, fitting: bool) -> np.ndarray:
        arr = np.asarray(X, dtype=np.float64) if not isinstance(X, np.ndarray) else X
        if arr.ndim != 3:
            raise SignalInputError(
                f"{type(self).__name__}: X must be windows (n_windows, n_chans, n_times) in "
                f"microvolts, got shape {arr.shape}")
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
        """``<channel>_<band>`` per output column (channels ``ch0``... without ``ch_names``)."""
        check_is_fitted(self, "bands_")
        names = list(self.ch_names) if self.ch_names is not None else \
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
        Channel labels for :meth:`get_feature_names_out`.
    n_jobs : int
        Filtering threads (-1: all cores).
    """

    def __init__(self, sfreq: float = 128.0, bands: str | Sequence = "torcheeg4",
                 mode: str = "ln", flatten: bool = True,
                 ch_names: Sequence[str] | None = None, n_jobs: int = 1) -> None:
        self.sfreq = sfreq
        self.bands = bands
        self.mode = mode
        self.flatten = flatten
        self.ch_names = ch_names
        self.n_jobs = n_jobs

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
        Fractions of the total power instead of uV^2.
    log : bool
        ``log10`` of the power (band powers span decades; linear models prefer logs).
    segment_s : float
        Welch segment length in s.
    flatten, ch_names, n_jobs
        As :class:`DifferentialEntropy`.
    """

    def __init__(self, sfreq: float = 128.0, bands: str | Sequence = "emt7",
                 relative: bool = False, log: bool = False, segment_s: float = 1.0,
                 flatten: bool = True, ch_names: Sequence[str] | None = None,
                 n_jobs: int = 1) -> None:
        self.sfreq = sfreq
        self.bands = bands
        self.relative = relative
        self.log = log
        self.segment_s = segment_s
        self.flatten = flatten
        self.ch_names = ch_names
        self.n_jobs = n_jobs

    def _features(self, arr: np.ndarray) -> np.ndarray:
        bp = band_power(arr, self.sfreq, self.bands_, self.relative, segment_s=self.segment_s,
                        n_jobs=self.n_jobs)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                bp = np.log10(bp)
        return bp
