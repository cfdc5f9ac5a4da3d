"""Helpers shared by the recording tests (and a check of the helper itself)."""

from __future__ import annotations

import numpy as np


def start_in(ref: np.ndarray, rows: np.ndarray, n: int = 64) -> int:
    """Index in ``ref`` where ``rows`` (its first ``n``) start; raises if nowhere.

    Several rows are matched: a slow signal (EDA, respiration) repeats float32 values.
    """
    rows = rows[:n]
    for k in np.flatnonzero((ref == rows[0]).all(axis=1)):
        if len(ref) - k >= len(rows) and np.array_equal(ref[k:k + len(rows)], rows):
            return int(k)
    raise AssertionError("the recorded samples do not occur in the reference signal")


def test_start_in_skips_repeated_values():
    ref = np.array([[1.0], [2.0], [1.0], [3.0], [4.0]], dtype=np.float32)
    assert start_in(ref, ref[2:]) == 2
