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

A live decoder cannot fit on a session it has not seen yet. :class:`OnlineAdaptation` is the
same adaptation with a *recursive reference*: after a calibration period it keeps updating as
windows arrive (a running mean of spatial covariances for Euclidean alignment, as in the
incremental alignment of Wu's group; running moments for the z-scores), each window adapted
with the reference of everything up to and including itself. The forgetting rule: a window that
ended ``d`` seconds ago weighs ``2 ** (-d / half_life_s)``; with ``half_life_s=None`` (the
default) every window since the start weighs the same, so the reference converges to the
whole-session one and a session that starts with one kind of stimulus recovers as the others
come. Keep a half-life well above a stimulus' length: a reference that follows the current
emotional state removes the very differences the decoder is to detect. The live decoder and the
trainer's live-protocol score both run this class, window by window, so they give equal outputs.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from physioaffect.preprocessing.standardise import (
    NormalisationError,
    RunningMoments,
    Standardiser,
    axis_sums,
    decay,
    fitted_groups,
    group_labels,
)

__all__ = ["AdaptationError", "SubjectStandardiser", "EuclideanAlignment", "make_adapter",
           "ADAPTATION_METHODS", "axis_sums", "SubjectAdaptation", "OnlineAdaptation",
           "RunningCovariance"]


class AdaptationError(NormalisationError):
    """Per-subject adaptation cannot be fitted or applied (one-line message)."""


class SubjectStandardiser(Standardiser):
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

    _name = "subject standardiser"

    def __init__(self, keep: tuple[int, ...] = (1,), log: bool = False,
                 eps: float = 1e-6) -> None:
        super().__init__(keep, log=log, eps=eps, fill=None)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *, rows: np.ndarray | None = None,
            groups: Iterable | None = None, chunk: int = 1024) -> SubjectStandardiser:
        """Statistics of each group's windows among ``rows`` (all by default; ``y`` is
        ignored: labels are never used)."""
        super().fit(X, rows=rows, groups=group_labels(groups, len(X)), chunk=chunk)
        return self


def window_covariances(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spatial covariances ``X X^T / T`` of windows ``(n, C, T)`` (channel means removed), in
    float64, and which windows are usable (every sample finite)."""
    b = np.asarray(X, dtype=np.float64)
    ok = np.isfinite(b).all(axis=(1, 2))
    b = np.where(ok[:, None, None], b, 0.0)
    b = b - b.mean(axis=2, keepdims=True)
    return np.einsum("nct,ndt->ncd", b, b) / max(b.shape[2], 1), ok


def inverse_sqrt(r: np.ndarray, shrinkage: float, who: str = "subject") -> np.ndarray:
    """``R^-1/2`` of a mean covariance after shrinkage towards ``trace(R)/C * I``."""
    n_ch = r.shape[0]
    tr = np.trace(r) / n_ch
    if not tr > 0:
        raise AdaptationError(f"euclidean alignment: {who}'s EEG is flat")
    r = (1 - shrinkage) * r + shrinkage * tr * np.eye(n_ch)
    w, v = np.linalg.eigh(r)
    w = np.maximum(w, tr * 1e-10)
    return (v * (1.0 / np.sqrt(w))) @ v.T


class EuclideanAlignment:
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

    _name = "euclidean alignment"

    def __init__(self, shrinkage: float = 1e-3) -> None:
        self.shrinkage = shrinkage

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *, rows: np.ndarray | None = None,
            groups: Iterable | None = None, chunk: int = 512) -> EuclideanAlignment:
        """Mean covariance and its inverse square root per group, from the windows among
        ``rows`` (all by default; ``y`` ignored)."""
        if np.ndim(X) != 3:
            raise AdaptationError(f"euclidean alignment: expected windows (n, channels, "
                                  f"samples), got shape {np.shape(X)}")
        g = group_labels(groups, len(X))
        use = np.arange(len(X)) if rows is None else np.asarray(rows, dtype=int)
        self.matrices_: dict[str, np.ndarray] = {}
        n_ch = X.shape[1]
        for name in np.unique(g[use]):
            rows = use[g[use] == name]
            acc = np.zeros((n_ch, n_ch))
            used = 0
            for i in range(0, rows.size, chunk):
                cov, ok = window_covariances(X[rows[i:i + chunk]])
                acc += cov[ok].sum(axis=0)
                used += int(ok.sum())
            if used == 0:
                raise AdaptationError(f"euclidean alignment: subject {name} has no window "
                                      "without missing samples")
            self.matrices_[str(name)] = inverse_sqrt(acc / used, self.shrinkage,
                                                     f"subject {name}")
        return self

    def _check(self, g: np.ndarray) -> dict:
        return fitted_groups(getattr(self, "matrices_", None), g, self._name, "matrix",
                             AdaptationError)

    def transform(self, X: np.ndarray, groups: Iterable | None = None,
                  chunk: int = 512, out: np.ndarray | None = None) -> np.ndarray:
        """float32 ``R^-1/2 X`` of each window with its group's matrix (into ``out`` if given:
        float32 of ``X``'s shape, which may be ``X`` itself: a DEAP-sized run keeps one copy)."""
        g = group_labels(groups, len(X))
        matrices = self._check(g)
        out = _output(X, out)
        for name in np.unique(g):
            rows = np.flatnonzero(g == name)
            for i in range(0, rows.size, chunk):
                r = rows[i:i + chunk]
                out[r] = align(matrices[str(name)], X[r])
        return out

    def fit_transform(self, X: np.ndarray, y: np.ndarray | None = None, *,
                      groups: Iterable | None = None) -> np.ndarray:
        return self.fit(X, groups=groups).transform(X, groups)


def align(matrix: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``matrix @ x`` for every window ``x`` of ``X`` ``(n, C, T)``, computed in float64."""
    return np.einsum("cd,ndt->nct", matrix, np.asarray(X, dtype=np.float64))


def _output(X: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """The array a transform writes into (each chunk is read before it is overwritten)."""
    if out is None:
        return np.empty(np.shape(X), dtype=np.float32)
    if out.shape != np.shape(X) or out.dtype != np.float32:
        raise AdaptationError(f"out: expected float32 of shape {np.shape(X)}, got {out.dtype} "
                              f"{out.shape}")
    return out


class RunningCovariance:
    """Recursive reference of Euclidean alignment: a running mean of window covariances.

    Parameters
    ----------
    shrinkage : float
        As in :class:`EuclideanAlignment`.
    half_life_s : float or None
        Forgetting (see the module docstring); None: every window weighs the same.
    """

    def __init__(self, shrinkage: float = 1e-3, half_life_s: float | None = None) -> None:
        self.shrinkage = shrinkage
        self.half_life_s = half_life_s
        self._acc: np.ndarray | None = None
        self._w = 0.0
        self._t: float | None = None
        self._matrix: np.ndarray | None = None
        self.n_windows = 0

    def update(self, x: np.ndarray, t_end: float) -> None:
        """Add one window ``(C, T)`` ending at ``t_end`` (s); a window with missing samples is
        left out, as in :meth:`EuclideanAlignment.fit`."""
        cov, ok = window_covariances(np.asarray(x)[None])
        if not ok[0]:
            return
        w = decay(self._t, t_end, self.half_life_s)
        self._acc = cov[0] if self._acc is None else w * self._acc + cov[0]
        self._w = w * self._w + 1.0
        self._t = float(t_end)
        self._matrix = None
        self.n_windows += 1

    def matrix(self) -> np.ndarray:
        """``R^-1/2`` of the current reference."""
        if self._acc is None:
            raise AdaptationError("euclidean alignment: no complete window yet")
        if self._matrix is None:
            self._matrix = inverse_sqrt(self._acc / self._w, self.shrinkage, "the subject")
        return self._matrix


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


def _check_method(method: str, eeg_kind: str | None) -> None:
    if method not in ADAPTATION_METHODS:
        raise AdaptationError(f"adaptation method: expected one of "
                              f"{', '.join(ADAPTATION_METHODS)}, got {method!r}")
    if method == "euclidean" and eeg_kind not in ("raw", None):
        raise AdaptationError(f"adaptation method euclidean aligns raw EEG; this network "
                              f"takes {eeg_kind} inputs (use subject_zscore)")


#: Axes with their own statistics per input (besides raw EEG, which depends on the method).
_KEEP = {"graphs": (2, 3), "de": (1, 2), "peripheral": (1,), "face": (1,)}


class SubjectAdaptation:
    """Per-subject adaptation of every input of a network or baseline, by one method.

    One object serves training (fitted on all subjects' windows, each subject with its own
    statistics) and evaluation on new subjects' whole sessions; the live decoder uses
    :class:`OnlineAdaptation`. What each input gets:

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

    KEEP = _KEEP

    def __init__(self, method: str, eeg_kind: str | None = "raw") -> None:
        _check_method(method, eeg_kind)
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


class OnlineAdaptation:
    """One subject's adaptation with a recursive reference, updated window by window.

    The live decoder's adaptation, and the trainer's emulation of it (both call :meth:`step`
    on the same windows in recording order, so they give equal outputs). Same inputs and
    statistics as :class:`SubjectAdaptation`; see the module docstring for the forgetting rule.

    Parameters
    ----------
    method : {"none", "subject_zscore", "euclidean"}
    eeg_kind : {"raw", "graphs"} or None
    half_life_s : float or None
        Seconds after which a window counts half in the reference (None: no forgetting).
    online : bool
        Whether the reference keeps updating after :meth:`end_calibration` (False: it is
        frozen there, the calibrate-then-freeze variant).
    """

    KEEP = _KEEP

    def __init__(self, method: str, eeg_kind: str | None = "raw",
                 half_life_s: float | None = None, online: bool = True) -> None:
        _check_method(method, eeg_kind)
        if half_life_s is not None and not half_life_s > 0:
            raise AdaptationError(f"half_life_s must be > 0 s or None, got {half_life_s}")
        self.method = method
        self.eeg_kind = eeg_kind
        self.half_life_s = half_life_s
        self.online = bool(online)
        self.frozen = False
        self.refs_: dict[str, RunningCovariance | RunningMoments] = {}
        self.n_windows = 0
        self.first_t: float | None = None
        self.last_t: float | None = None

    def _make(self, name: str, ndim: int):
        h = self.half_life_s
        if name == "eeg" and self.eeg_kind == "graphs":
            return RunningMoments(self.KEEP["graphs"], log=True, half_life_s=h)
        if name == "eeg" and self.method == "euclidean":
            return RunningCovariance(half_life_s=h)
        if name == "eeg":
            return RunningMoments((1,), half_life_s=h)
        return RunningMoments(self.KEEP.get(name, (1,)), half_life_s=h)

    def update(self, window: dict[str, np.ndarray | None], t_end: float) -> None:
        """Add one window (each input without its window axis) that ends at ``t_end`` (s)."""
        if self.method == "none" or self.frozen:
            return
        for name, x in window.items():
            if x is None:
                continue
            ref = self.refs_.get(name)
            if ref is None:
                ref = self.refs_[name] = self._make(name, np.ndim(x) + 1)
            ref.update(x, t_end)
        self.n_windows += 1
        self.first_t = float(t_end) if self.first_t is None else self.first_t
        self.last_t = float(t_end)

    def transform(self, arrays: dict[str, np.ndarray | None]) -> dict[str, np.ndarray | None]:
        """Batched inputs adapted with the current reference (float32)."""
        out = {}
        for name, x in arrays.items():
            ref = self.refs_.get(name)
            if ref is None or x is None:
                out[name] = x
            elif isinstance(ref, RunningCovariance):
                out[name] = align(ref.matrix(), x).astype(np.float32)
            else:
                out[name] = ref.standardisation().transform(x, fill=None)
        return out

    def step(self, window: dict[str, np.ndarray | None], t_end: float
             ) -> dict[str, np.ndarray | None]:
        """Update with one window (unless frozen), then return it adapted (window axis of 1)."""
        self.update(window, t_end)
        return self.transform({k: None if v is None else np.asarray(v)[None]
                               for k, v in window.items()})

    def stream(self, arrays: dict[str, np.ndarray | None], times: np.ndarray
               ) -> dict[str, np.ndarray | None]:
        """:meth:`step` over batched windows in order (``times``: each window's end, s)."""
        n = len(times)
        if n == 0:
            return {k: None if v is None else np.asarray(v[:0], dtype=np.float32)
                    for k, v in arrays.items()}
        outs: dict[str, list] = {}
        for i in range(n):
            res = self.step({k: None if v is None else v[i] for k, v in arrays.items()},
                            float(times[i]))
            for k, v in res.items():
                outs.setdefault(k, []).append(v)
        return {k: None if v[0] is None else np.concatenate(v) for k, v in outs.items()}

    def end_calibration(self) -> OnlineAdaptation:
        """The calibration period is over: the reference freezes unless :attr:`online`."""
        self.frozen = not self.online
        return self

    @property
    def fitted(self) -> bool:
        return self.method == "none" or bool(self.refs_)
