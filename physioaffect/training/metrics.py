"""Metrics of a set of predictions (scikit-learn where it has them).

Classification: accuracy, balanced accuracy, macro-F1 (over every class of the task, so a class
missing from one subject's test windows still counts), AUC (binary: score of class 1; multiclass:
one-vs-rest macro; NaN when the test windows hold a single class). Regression: RMSE, Pearson
correlation (PCC) and Lin's concordance correlation coefficient (CCC).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

__all__ = ["classification_metrics", "regression_metrics", "ccc", "metrics_of",
           "CLASSIFICATION_METRICS", "REGRESSION_METRICS"]

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auc")
REGRESSION_METRICS = ("rmse", "pcc", "ccc")


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None,
                           n_classes: int) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro-F1 and AUC.

    Parameters
    ----------
    y_true, y_pred : ndarray of int, shape (n,)
    scores : ndarray, shape (n, n_classes) or None
        Class probabilities (or decision scores); None: AUC is NaN.
    n_classes : int
    """
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    labels = list(range(n_classes))
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred))
        if len(y_true) else float("nan"),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro",
                                   zero_division=0)),
        "auc": float("nan"),
    }
    if scores is not None and len(np.unique(y_true)) > 1:
        s = np.asarray(scores, dtype=float)
        if np.all(np.isfinite(s)):
            if n_classes == 2:
                out["auc"] = float(roc_auc_score(y_true, s[:, 1]))
            elif len(np.unique(y_true)) == n_classes:
                p = np.exp(s - s.max(axis=1, keepdims=True))
                p /= p.sum(axis=1, keepdims=True)
                out["auc"] = float(roc_auc_score(y_true, p, multi_class="ovr", labels=labels))
    return out


def ccc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Lin's concordance correlation coefficient (population moments)."""
    a = np.asarray(y_true, dtype=float)
    b = np.asarray(y_pred, dtype=float)
    if a.size < 2:
        return float("nan")
    ma, mb = a.mean(), b.mean()
    cov = np.mean((a - ma) * (b - mb))
    den = a.var() + b.var() + (ma - mb) ** 2
    return float(2 * cov / den) if den > 0 else float("nan")


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, Pearson correlation and CCC (NaN correlation when either side is constant)."""
    a = np.asarray(y_true, dtype=float)
    b = np.asarray(y_pred, dtype=float)
    rmse = float(np.sqrt(np.mean((a - b) ** 2))) if a.size else float("nan")
    pcc = float("nan")
    if a.size > 1 and a.std() > 0 and b.std() > 0:
        pcc = float(np.corrcoef(a, b)[0, 1])
    return {"rmse": rmse, "pcc": pcc, "ccc": ccc(a, b)}


def metrics_of(pred: pd.DataFrame, task: str, n_classes: int) -> dict[str, float]:
    """Metrics of a predictions table (columns ``y_true``, ``y_pred``, ``score_<k>``)."""
    if task == "regression":
        return regression_metrics(pred["y_true"], pred["y_pred"])
    cols = [f"score_{k}" for k in range(n_classes)]
    scores = pred[cols].to_numpy() if all(c in pred for c in cols) else None
    return classification_metrics(pred["y_true"].to_numpy(), pred["y_pred"].to_numpy(), scores,
                                  n_classes)
