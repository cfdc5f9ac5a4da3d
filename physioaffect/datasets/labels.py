"""Named label rules: how ratings become classes (or continuous targets), stated and reported.

Never guessed: every experiment names its rule, and :func:`make_labels` returns a report that
says how many windows each class has and how many were dropped, and why. A missing or NaN
rating drops the window (counted); it never becomes a random class.

Rules
-----
``gt5``        DEAP, 1-9 ratings: class 1 if rating > 5 (a rating of exactly 5 is low).
``ge5``        DEAP: class 1 if rating >= 5.
``median``     Per-subject median split: class 1 if the rating is above the median of the
               subject's *trial* ratings (each trial counted once, however many windows it has;
               ratings equal to the median are low).
``gt3``        DREAMER, 1-5 integer scores: class 1 if score > 3 (a 3 is low).
``ge3``        DREAMER: class 1 if score >= 3 (a 3 is high). The two differ on every 3.
``emt_gt3``    FACED / THU-EP, 0-7 ratings, EmT's rule: rating <= 3 -> 0, else 1 (a 3 is low).
``seed3``      SEED 3 classes: -1 negative -> 0, 0 neutral -> 1, 1 positive -> 2.
``posneg``     SEED 2 classes: -1 -> 0, 1 -> 1; neutral trials are dropped (counted).
``continuous`` The rating itself as a float target (regression, CCC).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from physioaffect.datasets.base import DatasetError


@dataclass(frozen=True)
class LabelRule:
    """A named rule; ``scale`` is the rating range it is meant for (checked)."""

    name: str
    description: str
    scale: tuple[float, float] | None
    n_classes: int | None  # None: continuous


RULES: dict[str, LabelRule] = {
    "gt5": LabelRule("gt5", "rating > 5 is high (DEAP)", (1, 9), 2),
    "ge5": LabelRule("ge5", "rating >= 5 is high (DEAP)", (1, 9), 2),
    "median": LabelRule("median", "rating > per-subject median of trial ratings is high", None, 2),
    "gt3": LabelRule("gt3", "score > 3 is high (DREAMER)", (1, 5), 2),
    "ge3": LabelRule("ge3", "score >= 3 is high (DREAMER)", (1, 5), 2),
    "emt_gt3": LabelRule("emt_gt3", "rating <= 3 is low, > 3 high (EmT on FACED/THU-EP, 0-7)",
                         (0, 7), 2),
    "seed3": LabelRule("seed3", "SEED -1/0/1 -> 0/1/2 (negative/neutral/positive)", (-1, 1), 3),
    "posneg": LabelRule("posneg", "SEED -1 -> 0, 1 -> 1, neutral dropped", (-1, 1), 2),
    "continuous": LabelRule("continuous", "the rating as a float target", None, None),
}


def make_labels(meta: pd.DataFrame, rule: str, target: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Targets of every window under a named rule.

    Parameters
    ----------
    meta : DataFrame
        Window metadata with ``subject``, ``session``, ``trial`` and the rating column ``target``.
    rule : str
        A key of :data:`RULES`.
    target : str
        Rating column (``valence``, ``arousal``, ``dominance``, ``liking``, ``emotion``).

    Returns
    -------
    y : ndarray, shape (n_kept,)
        int64 classes, or float64 for ``continuous``.
    keep : ndarray of bool, shape (n_windows,)
        Windows that have a target (``meta[keep]`` aligns with ``y``).
    report : dict
        ``rule``, ``description``, ``target``, ``n_windows``, ``n_kept``, ``dropped_nan``,
        ``dropped_by_rule`` and ``class_counts`` (or ``mean``/``std`` for continuous).
    """
    if rule not in RULES:
        raise DatasetError(f"label rule {rule!r} unknown (expected one of {', '.join(RULES)})")
    if target not in meta.columns:
        ratings = [c for c in meta.columns if c not in ("subject", "session", "trial", "stimulus",
                                                          "onset_s", "_row")]
        raise DatasetError(f"label target {target!r} not in the ratings ({', '.join(ratings)})")
    spec = RULES[rule]
    r = pd.to_numeric(meta[target], errors="coerce").to_numpy(dtype=float)
    nan = ~np.isfinite(r)
    finite = r[~nan]
    if spec.scale is not None and finite.size:
        lo, hi = spec.scale
        if finite.min() < lo or finite.max() > hi:
            raise DatasetError(f"label rule {rule!r} is for ratings in [{lo:g}, {hi:g}]; "
                               f"{target} spans [{finite.min():g}, {finite.max():g}]")
    drop_rule = np.zeros(len(r), dtype=bool)
    if rule == "continuous":
        y_all = r
    elif rule in ("gt5", "gt3", "emt_gt3"):
        y_all = (r > (5 if rule == "gt5" else 3)).astype(float)
    elif rule in ("ge5", "ge3"):
        y_all = (r >= (5 if rule == "ge5" else 3)).astype(float)
    elif rule == "median":
        y_all = np.zeros(len(r))
        trials = meta.assign(_r=r).drop_duplicates(["subject", "session", "trial"])
        med = trials.groupby("subject")["_r"].median()
        y_all = (r > meta["subject"].map(med).to_numpy(dtype=float)).astype(float)
    elif rule == "seed3":
        bad = np.isfinite(r) & ~np.isin(r, (-1, 0, 1))
        if bad.any():
            raise DatasetError(f"label rule 'seed3' expects -1/0/1, found {np.unique(r[bad])}")
        y_all = r + 1
    else:  # posneg
        y_all = (r > 0).astype(float)
        drop_rule = r == 0
    keep = ~nan & ~drop_rule
    y = y_all[keep]
    report: dict = {
        "rule": rule, "description": spec.description, "target": target,
        "n_windows": int(len(r)), "n_kept": int(keep.sum()),
        "dropped_nan": int(nan.sum()), "dropped_by_rule": int((drop_rule & ~nan).sum()),
    }
    if spec.n_classes is None:
        report.update(mean=float(np.mean(y)) if y.size else float("nan"),
                      std=float(np.std(y)) if y.size else float("nan"))
        return y.astype(np.float64), keep, report
    y = y.astype(np.int64)
    report["class_counts"] = {int(c): int((y == c).sum()) for c in range(spec.n_classes)}
    return y, keep, report
