"""The live protocol (training.live): a test subject scored the way the live decoder sees them.

Synthetic sessions whose ground truth is known: a subject with an unknown gain whose class shows
as a doubled variance of one channel, so that only a per-subject reference can tell the classes
apart, and a "network" that is a fixed rule on the adapted windows (no training involved)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from physioaffect.preprocessing.alignment import OnlineAdaptation
from physioaffect.training.live import ProtocolScorer, calibration_count, subject_streams

WINDOW_S, FS, N_T = 4.0, 32.0, 128


def _session(order: list[int], gain: float = 7.0, seed: int = 0):
    """Windows ``(n, 2, T)`` of one subject whose trials (20 s, 5 windows each) have the
    labels in ``order``: class 1 doubles channel 0's variance. Returns the arrays, meta and
    labels in recording order."""
    rng = np.random.default_rng(seed)
    xs, meta, y = [], [], []
    for t, lab in enumerate(order):
        for k in range(5):
            w = rng.standard_normal((2, N_T))
            w[0] *= np.sqrt(2.0) if lab else 1.0
            xs.append(gain * w)
            meta.append({"subject": "s1", "session": 1, "trial": t + 1, "stimulus": str(t),
                         "onset_s": k * WINDOW_S})
            y.append(lab)
    return np.stack(xs).astype(np.float32), pd.DataFrame(meta), np.array(y, dtype=float)


def _rule(arrays: dict) -> np.ndarray:
    """The 'network': class 1 when channel 0's variance after the subject's z-score is above 1.
    With both classes in the reference (variances 1 and 2 before scaling by the pooled 1.5),
    class 0 lands at 2/3 and class 1 at 4/3."""
    v = np.var(arrays["eeg"][:, 0], axis=1)
    p1 = (v > 1.0).astype(float)
    return np.stack([1 - p1, p1], axis=1)


def _scorer(x: np.ndarray, meta: pd.DataFrame) -> ProtocolScorer:
    return ProtocolScorer({"eeg": x}, _rule, "subject_zscore", "raw", None,
                          meta["subject"].to_numpy(), None)


def test_a_one_sided_start_recovers_with_online_adaptation_and_not_without():
    """The session starts with three low-arousal stimuli (60 s): a reference frozen after that
    calibration calls almost every later window high; the online reference, which keeps
    averaging, converges to the subject's whole-session one and recovers."""
    labels = [0, 0, 0] + [1, 0] * 8 + [1]  # one-sided start, then both classes
    x, meta, y = _session(labels)
    stream = subject_streams(meta, np.arange(len(y)), y, WINDOW_S)[0]
    scorer = _scorer(x, meta)
    rows = np.arange(len(y))
    acc, low = {}, {}
    for online in (False, True):
        got, pred = scorer.live(stream, rows, 60.0, online)
        assert got.min() >= 15  # the first 60 s (15 windows) calibrate and are not scored
        right = pred.argmax(1) == y[got]
        acc[online] = float(np.mean(right))
        low[online] = float(np.mean(right[y[got] == 0]))  # recall of the class it started with
    assert acc[True] >= 0.9 and low[True] >= 0.9, (acc, low)
    # frozen on a low-only reference, a low window looks "high" about every other time
    assert low[False] <= 0.65 and acc[False] < acc[True] - 0.1, (acc, low)
    # the same subject with the classes mixed from the start: both variants do well
    x2, meta2, y2 = _session([0, 1] * 10, seed=1)
    mixed = subject_streams(meta2, np.arange(len(y2)), y2, WINDOW_S)[0]
    for online in (False, True):
        got, pred = _scorer(x2, meta2).live(mixed, np.arange(len(y2)), 60.0, online)
        assert np.mean(pred.argmax(1) == y2[got]) >= 0.8


def test_one_sided_order_puts_one_class_first_and_keeps_the_rest_in_order():
    x, meta, y = _session([1, 0, 1, 0, 0, 1, 0, 1])
    stream = subject_streams(meta, np.arange(len(y)), y, WINDOW_S)[0]
    assert stream.labels == [1, 0, 1, 0, 0, 1, 0, 1]
    # 60 s of class 0 = three 20 s trials of it
    assert stream.one_sided(0, 60.0) == [1, 3, 4, 0, 2, 5, 6, 7]
    assert stream.one_sided(1, 30.0) == [0, 2, 1, 3, 4, 5, 6, 7]
    assert stream.one_sided(2, 60.0) is None


def test_calibration_windows_precede_every_scored_window_in_time():
    """Spy on the reference: every window the adaptation has seen when a window is scored
    ended no later than that window; the calibration is the decoder's rule (windows until
    their span reaches calibration_s); trials are laid end to end in recording order."""
    x, meta, y = _session([0, 1, 0, 1, 1, 0])
    shuffled = np.random.default_rng(3).permutation(len(y))  # rows given in any order
    stream = subject_streams(meta, shuffled, y, WINDOW_S)[0]
    rows, t_end = stream.arrange()
    assert np.all(np.diff(t_end) > 0) and t_end[0] == WINDOW_S
    assert list(rows) == list(range(len(y)))  # trial 1's windows first, by onset
    n_calib = calibration_count(t_end, WINDOW_S, 30.0)
    assert n_calib == 8  # windows end at 4, 8, ... s: the 8th (32 s) is the first to reach 30 s
    seen: list[float] = []
    scored: list[tuple[float, float]] = []

    class Spy(OnlineAdaptation):
        def update(self, window, t):
            seen.append(t)
            super().update(window, t)

    def predict(arrays):
        return _rule(arrays)

    scorer = ProtocolScorer({"eeg": x}, predict, "subject_zscore", "raw", None,
                            meta["subject"].to_numpy(), None)
    scorer._adapter = lambda online: Spy("subject_zscore", "raw", None, online)
    orig_step = Spy.step

    def step(self, window, t):
        out = orig_step(self, window, t)
        scored.append((t, max(seen)))
        return out

    Spy.step = step
    try:
        got, pred = scorer.live(stream, np.arange(len(y)), 30.0, online=True)
    finally:
        Spy.step = orig_step
    calib_times = seen[:n_calib]
    assert len(got) == len(y) - n_calib and len(scored) == len(got)
    assert max(calib_times) <= min(t for t, _ in scored)
    assert all(latest <= t for t, latest in scored)  # nothing from the future


def test_calibration_count_is_the_decoders_rule():
    t = np.arange(1, 21) * 0.5 + 1.5  # 2 s windows every 0.5 s: first ends at 2 s
    # span after window i = t_i - (t_0 - 2): reaches 4 s at the 5th window (2 + 4 * 0.5)
    assert calibration_count(t, 2.0, 4.0) == 5
    assert calibration_count(t, 2.0, 100.0) == len(t)
    assert calibration_count(np.zeros(0), 2.0, 4.0) == 0


@pytest.mark.parametrize("half_life", [None, 30.0])
def test_running_reference_equals_the_weighted_batch_statistics(half_life):
    """The recursive reference after n windows equals the weighted mean covariance (Euclidean)
    and weighted moments (z-score) computed in one go with weights 2**(-(t_n - t_i)/h)."""
    from physioaffect.preprocessing.alignment import inverse_sqrt, window_covariances

    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 3, 64)) * np.array([1.0, 3.0, 0.5])[None, :, None]
    t = np.cumsum(rng.uniform(1, 8, 12))
    w = np.ones(12) if half_life is None else 2.0 ** (-(t[-1] - t) / half_life)
    ea = OnlineAdaptation("euclidean", "raw", half_life)
    zs = OnlineAdaptation("subject_zscore", "raw", half_life)
    for i in range(12):
        ea.update({"eeg": x[i]}, t[i])
        zs.update({"eeg": x[i]}, t[i])
    cov, _ = window_covariances(x)
    r = np.einsum("n,ncd->cd", w, cov) / w.sum()
    np.testing.assert_allclose(ea.refs_["eeg"].matrix(), inverse_sqrt(r, 1e-3), rtol=1e-10)
    mean = np.einsum("n,nct->c", w, x) / (w.sum() * 64)
    var = np.einsum("n,nct->c", w, x ** 2) / (w.sum() * 64) - mean ** 2
    st = zs.refs_["eeg"].standardisation()
    np.testing.assert_allclose(st.mean, mean, rtol=1e-10)
    np.testing.assert_allclose(st.scale, np.sqrt(var) + 1e-6, rtol=1e-10)
