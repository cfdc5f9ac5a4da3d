"""Z-scores: one concept for every normalisation in the package.

A z-score keeps its own mean and scale along some axes of a batched array (``keep``): ``(1,)``
per channel of raw EEG ``(n, C, T)`` or per feature of ``(n, F)`` features, ``(2, 3)`` per
channel and band of EmT graph sequences ``(n, S, C, F)``. The same two classes serve

- training's normalisation of network inputs with statistics of the training windows of a fold
  (:class:`Standardiser` fitted on ``rows``; stored in the checkpoint as a
  :class:`Standardisation`);
- per-subject adaptation, each subject z-scored with its own statistics
  (:class:`Standardiser` fitted with ``groups``);
- the protocol-level feature normaliser of :mod:`physioaffect.datasets.protocols`;
- the live decoder's running statistics (:class:`RunningMoments`).

Statistics are computed in float64 from chunks of rows (a DEAP-sized array is never copied
whole) with NaN and inf left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from physioaffect.errors import PhysioAffectError

__all__ = ["Standardisation", "Standardiser", "RunningMoments", "axis_sums",
           "NormalisationError", "fitted_groups", "group_labels"]


class NormalisationError(PhysioAffectError, ValueError):
    """A z-score cannot be fitted or applied (one-line message)."""


def axis_sums(X: np.ndarray, rows: np.ndarray, keep: tuple[int, ...], chunk: int = 1024,
              prepare=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum, sum of squares and count of the finite values of ``X[rows]`` per ``keep`` axes.

    Reads ``chunk`` rows at a time (a large array is never copied whole), in float64, after
    ``prepare`` (e.g. a logarithm) if given. NaN and inf are left out.
    """
    reduce = tuple(a for a in range(np.ndim(X)) if a not in keep)
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


def _moments(s, s2, cnt, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean (NaN where nothing was counted) and scale (std + eps) from sums."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, s / np.maximum(cnt, 1e-300), np.nan)
        var = np.maximum(s2 / np.maximum(cnt, 1e-300) - np.nan_to_num(mean) ** 2, 0.0)
    return mean, np.sqrt(var) + eps


def _log(x: np.ndarray) -> np.ndarray:
    """Natural logarithm in float64; values <= 0 become NaN (band powers are log-normal)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), np.nan)


@dataclass(frozen=True, eq=False)
class Standardisation:
    """Fitted z-score statistics of one batched array.

    ``transform(x) = (prepare(x) - mean) / scale`` with ``mean`` and ``scale`` broadcast along
    the ``keep`` axes; ``prepare`` is the natural logarithm when ``log``.

    Attributes
    ----------
    keep : tuple of int
        Axes of the batched input with their own statistics (e.g. ``(1,)``: per channel).
    mean, scale : ndarray
        Shape = the sizes of the ``keep`` axes; ``scale > 0``.
    log : bool
        Take the logarithm first.
    """

    keep: tuple[int, ...]
    mean: np.ndarray
    scale: np.ndarray
    log: bool = False

    @classmethod
    def identity(cls, keep: tuple[int, ...], shape: tuple[int, ...]) -> Standardisation:
        return cls(tuple(keep), np.zeros(shape), np.ones(shape))

    def _shape(self, ndim: int) -> list[int]:
        shape = [1] * ndim
        for a, n in zip(self.keep, np.shape(self.mean), strict=True):
            shape[a] = n
        return shape

    def transform(self, x: np.ndarray, fill: float | None = 0.0,
                  out: np.ndarray | None = None, dtype=np.float32) -> np.ndarray:
        """Normalised copy of ``x`` in ``dtype`` (into ``out`` if given, which may be ``x``).

        Parameters
        ----------
        fill : float or None
            What NaN and inf become (0: the mean); None keeps them NaN.
        """
        shape = self._shape(np.ndim(x))
        if self.log:
            y = ((_log(x) - self.mean.reshape(shape)) / self.scale.reshape(shape))
            out = _into(out, np.shape(x), dtype)
            out[...] = y
        elif out is None:
            # in place on one copy: a DEAP-sized fold is ~1 GB, temporaries would double it
            out = np.array(x, dtype=dtype, copy=True)
        else:
            out = _into(out, np.shape(x), dtype)
            if out is not x:
                out[...] = x
        if not self.log:
            out -= self.mean.reshape(shape).astype(dtype)
            out /= self.scale.reshape(shape).astype(dtype)
        if fill is not None:
            np.nan_to_num(out, copy=False, nan=fill, posinf=fill, neginf=fill)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {"keep": list(self.keep), "mean": np.asarray(self.mean).tolist(),
             "scale": np.asarray(self.scale).tolist()}
        if self.log:
            d["log"] = True
        return d

    @classmethod
    def from_dict(cls, d: Any, name: str = "standardisation") -> Standardisation:
        """From :meth:`to_dict`; raises :class:`NormalisationError` naming the bad field."""
        def fail(field: str, want: str, got: Any) -> NormalisationError:
            shown = repr(got)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            return NormalisationError(f"field {name + '.' + field!r} must be {want}, got {shown}")

        if not isinstance(d, dict):
            raise fail("", "an object", d)
        keep = d.get("keep")
        if not isinstance(keep, list | tuple) or not keep or \
                not all(isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in keep):
            raise fail("keep", "a non-empty list of axes >= 1", keep)
        try:
            mean = np.asarray(d.get("mean"), dtype=np.float64)
            scale = np.asarray(d.get("scale"), dtype=np.float64)
        except (TypeError, ValueError):
            raise fail("mean", "nested lists of numbers", d.get("mean")) from None
        if mean.ndim != len(keep) or mean.shape != scale.shape:
            raise fail("scale", f"an array of the shape of 'mean' {mean.shape} with {len(keep)} "
                       "axes", scale.shape)
        if not np.isfinite(mean).all():
            raise fail("mean", "finite numbers", "non-finite values")
        if not (np.isfinite(scale).all() and (scale > 0).all()):
            raise fail("scale", "finite numbers > 0", float(np.min(scale)))
        log = d.get("log", False)
        if not isinstance(log, bool):
            raise fail("log", "true or false", log)
        return cls(tuple(int(a) for a in keep), mean, scale, log)


def _into(out: np.ndarray | None, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != tuple(shape) or out.dtype != dtype:
        raise NormalisationError(f"out: expected {np.dtype(dtype).name} of shape "
                                 f"{tuple(shape)}, got {out.dtype} {out.shape}")
    return out


def group_labels(groups: Iterable | None, n: int) -> np.ndarray:
    """One group label (subject) per window as text; all ``"all"`` without groups."""
    if groups is None:  # one group
        return np.full(n, "all")
    g = np.asarray(list(groups) if not isinstance(groups, np.ndarray) else groups).astype(str)
    if g.shape != (n,):
        raise NormalisationError(f"groups: expected one group (subject) per window ({n}), got "
                                 f"shape {g.shape}")
    return g


def fitted_groups(fitted: dict | None, g: np.ndarray, who: str, what: str,
                  error: type[NormalisationError] = NormalisationError) -> dict:
    """``fitted`` (per-group state of a per-subject transform), or ``error`` naming the
    groups of ``g`` it was never fitted on."""
    if fitted is None:
        raise error(f"{who}: transform before fit")
    unseen = sorted(set(np.unique(g).tolist()) - set(fitted))
    if unseen:
        raise error(f"{who}: no {what} for subject(s) {', '.join(map(str, unseen))} (fit on "
                    "their windows first)")
    return fitted


class Standardiser:
    """Z-score with statistics fitted on some windows (scikit-learn's ``fit/transform``).

    Without ``groups`` one set of statistics is fitted (e.g. on a fold's training ``rows``:
    the network input's normalisation); with ``groups`` each group (subject) gets its own, and
    :meth:`transform` applies each window's group's statistics (per-subject adaptation).

    Parameters
    ----------
    keep : tuple of int
        Axes of the batched array with their own statistics.
    log : bool
        Take the natural logarithm first (values <= 0 become NaN).
    eps : float
        Added to each standard deviation (a constant feature is not divided by zero).
    fill : float or None
        What NaN becomes after :meth:`transform` (0: the mean); None keeps it NaN.
    dtype : numpy dtype
        Of what :meth:`transform` returns (float32 by default: network inputs).

    Attributes
    ----------
    stats_ : dict of str -> Standardisation
        Fitted statistics per group (the single key ``"all"`` without groups).
    """

    _name = "standardiser"

    def __init__(self, keep: tuple[int, ...] = (1,), log: bool = False, eps: float = 1e-6,
                 fill: float | None = 0.0, dtype=np.float32) -> None:
        self.keep = tuple(keep)
        self.log = log
        self.eps = eps
        self.fill = fill
        self.dtype = dtype

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        return _log(x) if self.log else np.asarray(x, dtype=np.float64)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *, rows: np.ndarray | None = None,
            groups: Iterable | None = None, chunk: int = 1024) -> Standardiser:
        """Statistics of ``X[rows]`` (all rows by default), per group if ``groups`` (one per
        row of ``X``). ``y`` is ignored: labels are never used."""
        rows = np.arange(len(X)) if rows is None else np.asarray(rows, dtype=int)
        if rows.size == 0:
            raise NormalisationError(f"{self._name}: no windows to fit on")
        g = group_labels(groups, len(X))[rows]
        self.stats_: dict[str, Standardisation] = {}
        for name in np.unique(g):
            s, s2, cnt = axis_sums(X, rows[g == name], self.keep, chunk, self._prepare)
            mean, scale = _moments(s, s2, cnt, self.eps)
            if self.fill is not None:  # an unseen feature is the mean (else it stays NaN)
                mean = np.nan_to_num(mean)
            self.stats_[str(name)] = Standardisation(self.keep, mean, scale, self.log)
        self.n_samples_fit_ = int(rows.size)
        return self

    def _check(self, g: np.ndarray) -> dict[str, Standardisation]:
        return fitted_groups(getattr(self, "stats_", None), g, self._name, "statistics")

    def standardisation(self, group: str = "all") -> Standardisation:
        """The fitted statistics (of one group)."""
        return self._check(np.array([group]))[group]

    def transform(self, X: np.ndarray, groups: Iterable | None = None, chunk: int = 1024,
                  out: np.ndarray | None = None) -> np.ndarray:
        """float32 z-scores of ``X`` with each window's group's statistics (into ``out`` if
        given: float32 of ``X``'s shape, which may be ``X`` itself)."""
        g = group_labels(groups, len(X))
        stats = self._check(g)
        out = _into(out, np.shape(X), self.dtype)
        for name in np.unique(g):
            st = stats[str(name)]
            rows = np.flatnonzero(g == name)
            if not self.log and rows.size == len(X):  # one group: in place, no temporaries
                st.transform(X, self.fill, out=out, dtype=self.dtype)
                continue
            for i in range(0, rows.size, chunk):
                r = rows[i:i + chunk]
                out[r] = st.transform(X[r], self.fill, dtype=self.dtype)
        return out

    def fit_transform(self, X: np.ndarray, y: np.ndarray | None = None, *,
                      groups: Iterable | None = None) -> np.ndarray:
        return self.fit(X, groups=groups).transform(X, groups)


class RunningMoments:
    """Mean and standard deviation per ``keep`` axes of a stream of windows, with forgetting.

    After windows ``x_1 .. x_n`` ending at times ``t_1 .. t_n`` (s), the statistics are the
    weighted moments with weight ``2 ** (-(t_n - t_i) / half_life_s)`` for window ``i`` (every
    window weighs the same when ``half_life_s`` is None): the live decoder's recursive
    reference for z-scores.

    Parameters
    ----------
    keep, log, eps :
        As in :class:`Standardiser`.
    half_life_s : float or None
        Seconds after which a window counts half (None: no forgetting).
    """

    def __init__(self, keep: tuple[int, ...] = (1,), log: bool = False, eps: float = 1e-6,
                 half_life_s: float | None = None) -> None:
        self.keep = tuple(keep)
        self.log = log
        self.eps = eps
        self.half_life_s = half_life_s
        self.reset()

    def reset(self) -> None:
        self._s = self._s2 = self._cnt = None
        self._t: float | None = None
        self.n_windows = 0

    def update(self, x: np.ndarray, t_end: float) -> None:
        """Add one window (no window axis: ``x`` is ``X[i]``) that ends at ``t_end`` s."""
        x = x[None]
        s, s2, cnt = axis_sums(x, np.zeros(1, dtype=int), self.keep,
                               prepare=_log if self.log else None)
        if self._s is None:
            self._s, self._s2, self._cnt = s, s2, cnt
        else:
            w = decay(self._t, t_end, self.half_life_s)
            self._s = w * self._s + s
            self._s2 = w * self._s2 + s2
            self._cnt = w * self._cnt + cnt
        self._t = float(t_end)
        self.n_windows += 1

    def standardisation(self) -> Standardisation:
        if self._s is None:
            raise NormalisationError("running moments: no window yet")
        mean, scale = _moments(self._s, self._s2, self._cnt, self.eps)
        return Standardisation(self.keep, mean, scale, self.log)


def decay(t_prev: float | None, t_now: float, half_life_s: float | None) -> float:
    """Weight left to a sum of windows up to ``t_prev`` at ``t_now`` (1 without forgetting)."""
    if half_life_s is None or t_prev is None:
        return 1.0
    return float(2.0 ** (-max(t_now - t_prev, 0.0) / half_life_s))
