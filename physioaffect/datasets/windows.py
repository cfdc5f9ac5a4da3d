"""Cut trials into windows under a declared configuration, keeping provenance.

A :class:`WindowConfig` says everything that decides the numbers (window length and step,
baseline handling, feature set, bands, DE definition); its hash keys the on-disk cache.
:func:`subject_windows` turns one :class:`~physioaffect.datasets.base.SubjectRecording` into a
:class:`WindowSet`: ``X`` plus a metadata table (subject, session, trial, stimulus, onset,
ratings) that protocols use to split without leakage.

Windows are taken inside one trial only (never across trial borders), starting at stimulus
onset; the last incomplete window of a trial is dropped (as TorchEEG does).

Baseline handling (DEAP's 3 s pre-trial rest, DREAMER's 61 s baseline recording):

- ``none``: ignored.
- ``keep``: the baseline is cut into window-length chunks which are averaged sample by sample
  (TorchEEG's ``num_baseline`` chunks of ``baseline_chunk_size``), the result goes through the
  same feature step and is stored per window in ``X_baseline``.
- ``subtract``: as ``keep``, then ``X - X_baseline`` (TorchEEG's ``BaselineRemoval``).

In ``compat="torcheeg"`` mode DE uses TorchEEG 1.1.3's exact definition (order-5 ``lfilter``,
log2) and ``keep``: values are identical to ``DEAPDataset`` with ``BandDifferentialEntropy``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from physioaffect.datasets.base import DatasetError, SubjectRecording, Trial
from physioaffect.features.eeg import band_power, differential_entropy, resolve_bands
from physioaffect.features.windows import window_starts

FEATURES = ("de", "band_power", "raw")
BASELINES = ("none", "keep", "subtract")
CONFIG_VERSION = 1


@dataclass(frozen=True)
class WindowConfig:
    """Everything that determines the prepared windows.

    Attributes
    ----------
    window_s, step_s : float
        Window length and hop in seconds (``step_s`` None: no overlap).
    baseline : {"none", "keep", "subtract"}
        See module docstring.
    features : {"de", "band_power", "raw"}
        ``de``: differential entropy per channel and band (n_chans, n_bands);
        ``band_power``: Welch band power (n_chans, n_bands); ``raw``: EEG (n_chans, n_times)
        stored as float32.
    bands : str
        Band preset of :mod:`physioaffect.features.eeg` (``torcheeg4``: theta 4-8, alpha 8-14,
        beta 14-31, gamma 31-49 Hz).
    de_mode : {"ln", "torcheeg"}
        DE definition (nats with zero-phase filtering, or TorchEEG's bits with ``lfilter``).
    """

    window_s: float = 1.0
    step_s: float | None = None
    baseline: str = "none"
    features: str = "de"
    bands: str = "torcheeg4"
    de_mode: str = "ln"
    relative_power: bool = False
    extra: dict = field(default_factory=dict, hash=False, compare=True)

    def __post_init__(self) -> None:
        if self.features not in FEATURES:
            raise DatasetError(f"features: expected one of {FEATURES}, got {self.features!r}")
        if self.baseline not in BASELINES:
            raise DatasetError(f"baseline: expected one of {BASELINES}, got {self.baseline!r}")
        if self.de_mode not in ("ln", "torcheeg"):
            raise DatasetError(f"de_mode: expected 'ln' or 'torcheeg', got {self.de_mode!r}")
        if self.window_s <= 0 or (self.step_s is not None and self.step_s <= 0):
            raise DatasetError(f"window/step must be positive, got {self.window_s}/{self.step_s}")

    @classmethod
    def torcheeg_compat(cls, window_s: float = 1.0) -> WindowConfig:
        """TorchEEG's DEAPDataset + BandDifferentialEntropy (values identical)."""
        return cls(window_s=window_s, baseline="keep", features="de", bands="torcheeg4",
                   de_mode="torcheeg")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["version"] = CONFIG_VERSION
        return d

    def key(self, *parts: object) -> str:
        """Hash of the configuration and ``parts`` (dataset name, file fingerprints)."""
        blob = json.dumps([self.to_dict(), *parts], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class WindowSet:
    """Windows of one or more subjects.

    Attributes
    ----------
    X : ndarray
        (n_windows, n_chans, n_bands) features or (n_windows, n_chans, n_times) raw EEG (uV).
    meta : DataFrame
        One row per window: ``subject`` (str), ``session``, ``trial`` (int), ``stimulus`` (str),
        ``onset_s`` (window start after stimulus onset, s) and one column per rating.
    ch_names : list of str
    sfreq : float
        EEG sampling rate (Hz) the windows were cut at.
    feature_names : list of str
        Band names (features) or empty (raw).
    X_baseline : ndarray or None
        Same shape as ``X``: the trial's baseline after the same feature step (``keep``).
    """

    X: np.ndarray
    meta: pd.DataFrame
    ch_names: list[str]
    sfreq: float
    feature_names: list[str]
    X_baseline: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.X)

    def subset(self, mask: np.ndarray) -> WindowSet:
        """Rows selected by a boolean mask or index array."""
        return WindowSet(self.X[mask], self.meta[mask].reset_index(drop=True)
                         if mask.dtype == bool else self.meta.iloc[mask].reset_index(drop=True),
                         self.ch_names, self.sfreq, self.feature_names,
                         None if self.X_baseline is None else self.X_baseline[mask])

    @staticmethod
    def concat(sets: list[WindowSet]) -> WindowSet:
        if not sets:
            raise DatasetError("no windows to concatenate")
        base = None
        if all(s.X_baseline is not None for s in sets):
            base = np.concatenate([s.X_baseline for s in sets])
        return WindowSet(np.concatenate([s.X for s in sets]),
                         pd.concat([s.meta for s in sets], ignore_index=True),
                         sets[0].ch_names, sets[0].sfreq, sets[0].feature_names, base)


def _baseline_segment(trial: Trial, win: int) -> np.ndarray | None:
    """Average of the window-length chunks of the trial's baseline, (n_chans, win)."""
    b = trial.baseline
    if b is None or b.shape[1] == 0:
        return None
    n_chunks = b.shape[1] // win
    if n_chunks == 0:
        raise DatasetError(f"{trial.dataset} subject {trial.subject} trial {trial.trial}: baseline "
                           f"of {b.shape[1]} samples is shorter than one {win}-sample window")
    return b[:, : n_chunks * win].reshape(b.shape[0], n_chunks, win).mean(axis=1)


def _features(x: np.ndarray, sfreq: float, cfg: WindowConfig, n_jobs: int = 1) -> np.ndarray:
    if cfg.features == "raw":
        return x.astype(np.float32)
    if cfg.features == "de":
        # TorchEEG computes DE on every window however it looks: keep its values in compat mode.
        clip = None if cfg.de_mode == "torcheeg" else 0.05
        return differential_entropy(x, sfreq, bands=cfg.bands, mode=cfg.de_mode,
                                    clip_fraction=clip, n_jobs=n_jobs)
    return band_power(x, sfreq, bands=cfg.bands, relative=cfg.relative_power)


def feature_names(cfg: WindowConfig, sfreq: float) -> list[str]:
    if cfg.features == "raw":
        return []
    return [b[0] for b in resolve_bands(cfg.bands, sfreq)]


def subject_windows(rec: SubjectRecording, cfg: WindowConfig, n_jobs: int = 1) -> WindowSet:
    """Windows of every trial of one subject, features computed in one vectorised call.

    ``n_jobs`` threads filter in parallel (values do not depend on it).

    Raises
    ------
    DatasetError
        If trials disagree on channels/sampling rate, or a baseline is needed but missing.
    """
    if not rec.trials:
        raise DatasetError(f"{rec.dataset} subject {rec.subject}: no trials")
    sfreq = rec.trials[0].sfreq
    ch_names = rec.trials[0].ch_names
    win = int(round(cfg.window_s * sfreq))
    step = int(round((cfg.window_s if cfg.step_s is None else cfg.step_s) * sfreq))
    segs, bases, rows = [], [], []
    rating_keys = _rating_keys(rec)
    for tr in rec.trials:
        if tr.sfreq != sfreq or tr.ch_names != ch_names:
            raise DatasetError(f"{rec.dataset} subject {rec.subject} trial {tr.trial}: channels or "
                               "sampling rate differ from the subject's first trial")
        starts = window_starts(tr.eeg.shape[1], sfreq, cfg.window_s, cfg.step_s)
        if starts.size == 0:
            continue
        view = np.lib.stride_tricks.sliding_window_view(tr.eeg, win, axis=-1)[:, ::step][:, : starts.size]
        segs.append(np.moveaxis(view, 1, 0))  # (n_w, n_chans, win), still a view
        if cfg.baseline != "none":
            b = _baseline_segment(tr, win)
            if b is None:
                raise DatasetError(f"{rec.dataset} subject {rec.subject} trial {tr.trial}: baseline "
                                   f"'{cfg.baseline}' requested but the dataset has no baseline")
            bases.append(b)
        ratings = [tr.ratings.get(k, np.nan) for k in rating_keys]
        for s in starts:
            rows.append((tr.subject, tr.session, tr.trial, tr.stimulus, s / sfreq, *ratings))
    if not segs:
        raise DatasetError(f"{rec.dataset} subject {rec.subject}: every trial is shorter than one "
                           f"{cfg.window_s:g} s window")
    X = _features(np.concatenate(segs), sfreq, cfg, n_jobs)
    counts = [len(s) for s in segs]
    X_base = None
    if bases:
        fb = _features(np.stack(bases), sfreq, cfg, n_jobs)
        X_base = np.repeat(fb, counts, axis=0)
        if cfg.baseline == "subtract":
            X = X - X_base
            X_base = None
    meta = pd.DataFrame(rows, columns=["subject", "session", "trial", "stimulus", "onset_s",
                                       *rating_keys])
    return WindowSet(X, meta, list(ch_names), float(sfreq), feature_names(cfg, sfreq), X_base)


def _rating_keys(rec: SubjectRecording) -> list[str]:
    keys: list[str] = []
    for tr in rec.trials:
        for k in tr.ratings:
            if k not in keys:
                keys.append(k)
    return keys
