"""A one-glance PNG of prepared windows: windows per subject, split by class if labels are given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def windows_figure(meta: pd.DataFrame, path: str | Path, y: np.ndarray | None = None,
                   keep: np.ndarray | None = None, title: str = "") -> Path:
    """Save a bar chart of windows per subject (stacked by class when ``y`` is given).

    Parameters
    ----------
    meta : DataFrame
        Window metadata (``subject`` column).
    path : path
        PNG to write.
    y, keep : ndarray, optional
        Classes of the kept windows and the keep mask, as returned by
        :func:`physioaffect.datasets.labels.make_labels`; dropped windows are drawn grey.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from physioaffect.datasets.base import natural_key

    subjects = sorted(meta["subject"].astype(str).unique(), key=natural_key)
    subj = meta["subject"].astype(str).to_numpy()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(subjects) + 2), 3.5), dpi=100)
    x = np.arange(len(subjects))
    bottom = np.zeros(len(subjects))
    if y is None:
        counts = np.array([(subj == s).sum() for s in subjects])
        ax.bar(x, counts, color="tab:blue", label="windows")
    else:
        keep = np.ones(len(meta), dtype=bool) if keep is None else np.asarray(keep)
        cls = np.full(len(meta), -1, dtype=np.int64)
        cls[keep] = np.asarray(y).astype(np.int64) if np.asarray(y).dtype.kind in "iub" else 0
        for c in sorted(set(cls[keep].tolist())):
            counts = np.array([((subj == s) & (cls == c)).sum() for s in subjects])
            ax.bar(x, counts, bottom=bottom, label=f"class {c}")
            bottom += counts
        dropped = np.array([((subj == s) & ~keep).sum() for s in subjects])
        if dropped.any():
            ax.bar(x, dropped, bottom=bottom, color="lightgrey", label="dropped")
    ax.set_xticks(x, subjects, rotation=90 if len(subjects) > 12 else 0, fontsize=8)
    ax.set_xlabel("subject")
    ax.set_ylabel("windows")
    ax.set_title(title or "prepared windows per subject", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
