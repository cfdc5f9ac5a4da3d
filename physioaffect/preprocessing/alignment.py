"""Per-subject adaptation of EEG (and feature) windows, fitted on a subject's own unlabelled data.

Between subjects, EEG differs in amplitude, spatial covariance (head size, electrode contact,
skull) and feature offsets far more than it differs between emotional states within a subject.
A network trained on some subjects and tested on another then learns "who" before "how aroused".
The field's standard remedies, both fitted on the windows of one subject without labels:

- :class:`SubjectStandardiser`: z-score each subject's windows with that subject's own mean and
  standard deviation (per channel, per channel and band ...). Common for DE and band-power
  features (e.g. the SEED and FACED baselines).
- :class:`EuclideanAlignment`: He & Wu (2019), "Transfer learning for brain-computer interfaces:
  a Euclidean space data alignment approach", IEEE TBME 67(2). Each subject's windows are
  multiplied by ``R^-1/2``, where ``R`` is the mean spatial covariance of that subject's
  windows, so that every subject's mean covariance becomes the identity.

Both follow scikit-learn's ``fit/transform`` with the subject of each window passed as
``groups``; :meth:`transform` of a group never seen in :meth:`fit` raises. Fitting on a *test*
subject's windows uses that subject's data (not its labels): a protocol that does so is
transductive, and training says so in its config and report.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from physioaffect.errors import PhysioAffectError

__all__ = ["AdaptationError", "SubjectStandardiser", "EuclideanAlignment", "make_adapter",
           "ADAPTATION_METHODS", "axis_sums"]


class AdaptationError(PhysioAffectError, ValueError):
    """Per-subject adaptation cannot be fitted or applied (one-line message)."""


def _groups(groups: Iterable | None, n: int) -> np.ndarray:
    if groups is None:  # one group (a single subject)
        return np.full(n, "all")
    g = np.asarray(list(groups) if not isinstance(groups, np.ndarray) else groups).astype(str)
    if g.shape != (n,):
        raise AdaptationError(f"groups: expected one subject per window ({n}), got shape "
                              f"{g.shape}")
    return g


def _output(X: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """The array a transform writes into (each chunk is read before it is overwritten)."""
    if out is None:
        return np.empty(X.shape, dtype=np.float32)
    if out.shape != X.shape or out.dtype != np.float32:
        raise AdaptationError(f"out: expected float32 of shape {X.shape}, got {out.dtype} "
                              f"{out.shape}")
    return out


def axis_sums(X: np.ndarray, rows: np.ndarray, keep: tuple[int, ...], chunk: int = 1024,
              prepare=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum, sum of squares and count of the finite values of ``X[rows]`` per ``keep`` axes.

    Read ``chunk`` rows at a time (a large array is never copied whole), in float64, after
    ``prepare`` (e.g. a logarithm) if given. NaN and inf are left out. The z-scores of
    :class:`SubjectStandardiser` and of training's ``AxisNormaliser`` are built on it.
    """
    reduce = tuple(a for a in range(X.ndim) if a not in keep)
    s = s2 = cnt = 0.0
    for i in range(0, rows.size, chunk):
        b = X[rows[i:i + chunk]]
        b = prepare(b) if prepare is not None else np.asarray(b, dtype=np.float64)
        ok = np.isfinite(b)
        b = np.where(ok, b, 0.0)
        s = s + b.sum(axis=reduce)
        s2 = s2 + (b * b).sum(axis=reduce)
        cnt = cnt + ok.sum(axis=reduce)
    return s, s2, cnt


class _PerSubject:
    """What the per-subject adapters share: scikit-learn's ``fit_transform`` and the refusal of
    subjects that were never fitted."""

    _name = "adapter"
    _kept = "statistics"  # what fit keeps per subject (named in the refusal)

    def _fitted(self) -> dict:
        raise NotImplementedError

    def fit_transform(self, X: np.ndarray, y: np.ndarray | None = None, *,
                      groups: Iterable | None = None) -> np.ndarray:
        return self.fit(X, groups=groups).transform(X, groups)

    def _check(self, g: np.ndarray) -> dict:
        fitted = self._fitted()
        if fitted is None:
            raise AdaptationError(f"{self._name}: transform before fit")
        unseen = sorted(set(np.unique(g).tolist()) - set(fitted))
        if unseen:
            raise AdaptationError(f"{self._name}: no {self._kept} for subject(s) "
                                  f"{', '.join(map(str, unseen))} (fit on their windows first)")
        return fitted


class SubjectStandardiser(_PerSubject):
    """Z-score every subject's windows with that subject's own statistics.

    Parameters
    ----------
    keep : tuple of int
        Axes of the batched array with their own statistics (``(1,)``: per channel of
        ``(n, C, T)`` EEG or per feature of ``(n, F)`` features; ``(2, 3)``: per channel and
        band of EmT graph sequences ``(n, S, C, F)``).
    log : bool
        Take the natural logarithm first (band powers are log-normal; their z-scores are not).
        Values <= 0 become NaN.
    eps : float
        Added to each standard deviation.

    Notes
    -----
    NaN values are left out of the statistics and stay NaN. A subject whose values of a
    feature are all NaN keeps NaN there (the training normaliser turns it into the mean).
    """

    def __init__(self, keep: tuple[int, ...] = (1,), log: bool = False, eps: float = 1e-6) -> None:
        self.keep = tuple(keep)
        self.log = log
        self.eps = eps

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                x = np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), np.nan)
        return x

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            groups: Iterable | None = None, chunk: int = 1024) -> SubjectStandardiser:
        """Statistics of each group's windows (``y`` is ignored: labels are never used)."""
        g = _groups(groups, len(X))
        self.stats_: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in np.unique(g):
            s, s2, cnt = axis_sums(X, np.flatnonzero(g == name), self.keep, chunk,
                                   self._prepare)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)
                var = np.maximum(s2 / np.maximum(cnt, 1) - np.nan_to_num(mean) ** 2, 0.0)
            self.stats_[str(name)] = (mean, np.sqrt(var) + self.eps)
        return self

    def transform(self, X: np.ndarray, groups: Iterable | None = None,
                  chunk: int = 1024, out: np.ndarray | None = None) -> np.ndarray:
        """float32 copy of ``X`` with each group's statistics applied (into ``out`` if given:
        float32 of ``X``'s shape, which may be ``X`` itself)."""
        g = _groups(groups, len(X))
        self._check(g)
        out = _output(X, out)
        shape = [1] * X.ndim
        for a in self.keep:
            shape[a] = X.shape[a]
        for name in np.unique(g):
            mean, scale = self.stats_[str(name)]
            mean, scale = mean.reshape(shape), scale.reshape(shape)
            rows = np.flatnonzero(g == name)
            for i in range(0, rows.size, chunk):
                r = rows[i:i + chunk]
                out[r] = (self._prepare(X[r]) - mean) / scale
        return out

    _name = "subject standardiser"

    def _fitted(self) -> dict | None:
        return getattr(self, "stats_", None)


class EuclideanAlignment(_PerSubject):
    """Euclidean alignment (He & Wu 2019) of raw EEG windows ``(n, C, T)`` per subject.

    ``R_s`` is the mean of the spatial covariances ``X X^T / T`` of subject ``s``'s windows
    (each window's channel means removed); :meth:`transform` returns ``R_s^-1/2 X``. After it,
    each subject's mean covariance is the identity, so amplitude and spatial-mixing differences
    between subjects are gone, while differences between a subject's windows (what the labels
    are about) remain.

    Parameters
    ----------
    shrinkage : float
        ``R <- (1 - a) R + a * trace(R)/C * I`` before the inverse square root (0-1): keeps it
        well conditioned for rank-deficient data (average reference, few windows).
    """

    def __init__(self, shrinkage: float = 1e-3) -> None:
        self.shrinkage = shrinkage

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            groups: Iterable | None = None, chunk: int = 512) -> EuclideanAlignment:
        """Mean covariance and its inverse square root per group (``y`` ignored)."""
        if np.ndim(X) != 3:
            raise AdaptationError(f"euclidean alignment: expected windows (n, channels, "
                                  f"samples), got shape {np.shape(X)}")
        g = _groups(groups, len(X))
        self.matrices_: dict[str, np.ndarray] = {}
        n_ch = X.shape[1]
        for name in np.unique(g):
            rows = np.flatnonzero(g == name)
            acc = np.zeros((n_ch, n_ch))
            used = 0
            for i in range(0, rows.size, chunk):
                b = np.asarray(X[rows[i:i + chunk]], dtype=np.float64)
                b = b[np.isfinite(b).all(axis=(1, 2))]
                if not len(b):
                    continue
                b = b - b.mean(axis=2, keepdims=True)
                acc += np.einsum("nct,ndt->cd", b, b) / b.shape[2]
                used += len(b)
            if used == 0:
                raise AdaptationError(f"euclidean alignment: subject {name} has no window "
                                      "without missing samples")
            r = acc / used
            tr = np.trace(r) / n_ch
            if not tr > 0:
                raise AdaptationError(f"euclidean alignment: subject {name}'s EEG is flat")
            r = (1 - self.shrinkage) * r + self.shrinkage * tr * np.eye(n_ch)
            w, v = np.linalg.eigh(r)
            w = np.maximum(w, tr * 1e-10)
            self.matrices_[str(name)] = (v * (1.0 / np.sqrt(w))) @ v.T
        return self

    def transform(self, X: np.ndarray, groups: Iterable | None = None,
                  chunk: int = 512, out: np.ndarray | None = None) -> np.ndarray:
        """float32 ``R^-1/2 X`` of each window with its group's matrix (into ``out`` if given:
        float32 of ``X``'s shape, which may be ``X`` itself: a DEAP-sized run keeps one copy)."""
        g = _groups(groups, len(X))
        matrices = self._check(g)
        out = _output(X, out)
        for name in np.unique(g):
            m = matrices[str(name)]
            rows = np.flatnonzero(g == name)
            for i in range(0, rows.size, chunk):
                r = rows[i:i + chunk]
                out[r] = np.einsum("cd,ndt->nct", m, np.asarray(X[r], dtype=np.float64))
        return out

    _name = "euclidean alignment"
    _kept = "matrix"

    def _fitted(self) -> dict | None:
        return getattr(self, "matrices_", None)


#: Adaptation methods by name (``none`` leaves the windows as they are).
ADAPTATION_METHODS = ("none", "subject_zscore", "euclidean")


def make_adapter(method: str, keep: tuple[int, ...] = (1,), log: bool = False):
    """The adapter of ``method`` (None for ``none``)."""
    if method == "none":
        return None
    if method == "subject_zscore":
        return SubjectStandardiser(keep, log=log)
    if method == "euclidean":
        return EuclideanAlignment()
    raise AdaptationError(f"adaptation method: expected one of {', '.join(ADAPTATION_METHODS)}, "
                          f"got {method!r}")


class SubjectAdaptation:
    """Per-subject adaptation of every input of a network or baseline, by one method.

    One object serves training (fitted on all subjects' windows, each subject with its own
    statistics), evaluation on new subjects and the live decoder (fitted on a calibration
    period of the new subject). What each input gets:

    ============  =========================  ===========================================
    input         ``subject_zscore``         ``euclidean``
    ============  =========================  ===========================================
    ``eeg`` raw   z-score per channel        Euclidean alignment
    ``eeg`` graphs  z-score of log band power per channel and band (both methods)
    ``de``        z-score per channel and band (both methods; DE is already a log)
    ``peripheral``, ``face``   z-score per feature (both methods)
    ============  =========================  ===========================================

    Parameters
    ----------
    method : {"none", "subject_zscore", "euclidean"}
    eeg_kind : {"raw", "graphs"} or None
        Input kind of the network's EEG branch (what ``eeg`` arrays hold).
    """

    #: Axes with their own statistics per input (besides raw EEG, which depends on the method).
    KEEP = {"graphs": (2, 3), "de": (1, 2), "peripheral": (1,), "face": (1,)}

    def __init__(self, method: str, eeg_kind: str | None = "raw") -> None:
        if method not in ADAPTATION_METHODS:
            raise AdaptationError(f"adaptation method: expected one of "
                                  f"{', '.join(ADAPTATION_METHODS)}, got {method!r}")
        if method == "euclidean" and eeg_kind not in ("raw", None):
            raise AdaptationError(f"adaptation method euclidean aligns raw EEG; this network "
                                  f"takes {eeg_kind} inputs (use subject_zscore)")
        self.method = method
        self.eeg_kind = eeg_kind
        self.adapters_: dict[str, object] = {}

    def _make(self, name: str):
        if name == "eeg":
            if self.eeg_kind == "graphs":
                return SubjectStandardiser(self.KEEP["graphs"], log=True)
            return make_adapter(self.method)
        return SubjectStandardiser(self.KEEP.get(name, (1,)))

    def fit(self, arrays: dict[str, np.ndarray], groups: Iterable | None = None
            ) -> SubjectAdaptation:
        """Fit every input's adapter on its windows, each group (subject) on its own."""
        self.adapters_ = {}
        if self.method == "none":
            return self
        for name, x in arrays.items():
            if x is None:
                continue
            self.adapters_[name] = self._make(name).fit(x, groups=groups)
        return self

    def transform(self, arrays: dict[str, np.ndarray | None], groups: Iterable | None = None,
                  in_place: bool = False) -> dict[str, np.ndarray | None]:
        """Adapted float32 copies (inputs without a fitted adapter pass unchanged); with
        ``in_place``, writable float32 arrays are overwritten instead of copied."""
        out = {}
        for name, x in arrays.items():
            a = self.adapters_.get(name)
            if a is None or x is None:
                out[name] = x
                continue
            here = in_place and isinstance(x, np.ndarray) and x.dtype == np.float32 \
                and x.flags.writeable
            out[name] = a.transform(x, groups, out=x if here else None)
        return out

    @property
    def fitted(self) -> bool:
        return self.method == "none" or bool(self.adapters_)
