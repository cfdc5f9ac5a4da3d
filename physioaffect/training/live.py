"""The live protocol: a test subject scored the way the live decoder will see them.

A live decoder meets a new person with nothing of their session yet. With a checkpoint trained
with per-subject adaptation it collects the first ``calibration_s`` of the session (no
predictions meanwhile), fits the subject's reference on exactly those windows and then decodes;
with ``online`` adaptation the reference keeps updating with every window that arrives
(:class:`~physioaffect.preprocessing.alignment.OnlineAdaptation`). This module emulates exactly
that on a dataset:

- each test subject's windows are put in **recording order** (sessions, then trials in the order
  they were presented, then onsets; every window of the subject, labelled or not, as the decoder
  sees them all) on one clock: the time since the subject's first stimulus started, stimuli
  laid end to end (:class:`SubjectStream`);
- the reference is fitted on the windows of the first ``calibration_s`` only
  (:func:`calibration_count`, the decoder's own rule), then frozen or updated window by window;
- only windows after the calibration are scored: each is predicted from calibration windows
  (and, online, earlier windows) that precede it in time, never from later ones.

Besides the default calibration it scores calibration lengths of 30 s to 5 min and a
**one-sided start**: the session begins with stimuli of one class only (as many as fill the
calibration), the rest following in their order. The whole-session transductive score (each
test subject's reference fitted on all of its windows) is computed beside it and named as such.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["SubjectStream", "subject_streams", "calibration_count", "live_rows",
           "stream_adapted", "score_stream", "ProtocolScorer", "prediction_frame",
           "score_protocols", "CALIBRATION_CURVE_S", "LIVE", "SESSION", "protocol_name"]

#: Calibration lengths (s) of the accuracy-against-calibration curve.
CALIBRATION_CURVE_S = (30.0, 60.0, 120.0, 300.0)
#: Protocol names in prediction tables.
LIVE = "live"
SESSION = "session"


def protocol_name(calibration_s: float, default_s: float, start: str | None = None) -> str:
    """Name of a live-protocol variant: ``live`` (default calibration, recording order),
    ``live_120s``, ``live_onesided_high`` ..."""
    name = LIVE if abs(calibration_s - default_s) < 1e-9 else f"{LIVE}_{calibration_s:g}s"
    return name if start is None else f"{name}_onesided_{start}"


def calibration_count(t_end: np.ndarray, window_s: float, calibration_s: float) -> int:
    """How many of a session's first windows (ends ``t_end`` in s, ascending) calibrate.

    The live decoder's rule: windows are collected until the signal they span, from the first
    window's start to the newest window's end, reaches ``calibration_s``; the window that
    reaches it is the last one of the calibration. Returns ``len(t_end)`` when the session is
    shorter.
    """
    t = np.asarray(t_end, dtype=float)
    if t.size == 0:
        return 0
    span = t - (t[0] - float(window_s))
    reached = np.flatnonzero(span >= float(calibration_s) - 1e-9)
    return int(reached[0]) + 1 if reached.size else int(t.size)


@dataclass
class SubjectStream:
    """One subject's windows in recording order, trial by trial.

    Attributes
    ----------
    subject : str
    trials : list of ndarray
        Row indices (into the prepared data) of each trial's windows by onset; trials in
        recording order.
    onsets : list of ndarray
        Each window's onset within its trial (s).
    labels : list
        One label per trial (the first labelled window's; NaN when the trial has none).
    window_s : float
    """

    subject: str
    trials: list[np.ndarray]
    onsets: list[np.ndarray]
    labels: list
    window_s: float

    def arrange(self, order: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows and window end times (s since the session's first stimulus started) with
        the trials in ``order`` (indices into :attr:`trials`; recording order by default),
        the stimuli laid end to end."""
        order = list(range(len(self.trials))) if order is None else list(order)
        rows, ends, t0 = [], [], 0.0
        for k in order:
            end = self.onsets[k] + self.window_s
            rows.append(self.trials[k])
            ends.append(t0 + end)
            t0 += float(end.max()) if end.size else 0.0
        if not rows:
            return np.zeros(0, dtype=int), np.zeros(0)
        return np.concatenate(rows), np.concatenate(ends)

    def one_sided(self, cls, calibration_s: float) -> list[int] | None:
        """Trial order of a session that starts with class ``cls`` only: trials of that class
        (in recording order) until they fill ``calibration_s``, then every other trial in
        recording order. None when the subject has no trial of that class."""
        first: list[int] = []
        span = 0.0
        for k, lab in enumerate(self.labels):
            if span >= calibration_s:
                break
            if lab == cls:
                first.append(k)
                end = self.onsets[k] + self.window_s
                span += float(end.max()) if end.size else 0.0
        if not first:
            return None
        return first + [k for k in range(len(self.trials)) if k not in first]


def subject_streams(meta: pd.DataFrame, rows: np.ndarray, y: np.ndarray, window_s: float
                    ) -> list[SubjectStream]:
    """The :class:`SubjectStream` of every subject among ``rows`` (all their windows).

    Recording order: session, then the ``order`` column where the dataset provides the
    presentation order, else the trial number, then the onset within the trial.
    """
    m = meta.iloc[rows]
    order_col = "order" if "order" in m.columns else "trial"
    keys = pd.DataFrame({"row": rows, "subject": m["subject"].astype(str).to_numpy(),
                         "session": pd.to_numeric(m["session"], errors="coerce").fillna(0)
                         .to_numpy(),
                         "order": pd.to_numeric(m[order_col], errors="coerce").fillna(0)
                         .to_numpy(),
                         "trial": m["trial"].astype(str).to_numpy(),
                         "onset": m["onset_s"].to_numpy(dtype=float)})
    keys = keys.sort_values(["subject", "session", "order", "trial", "onset"], kind="stable")
    out = []
    for subject, g in keys.groupby("subject", sort=False):
        trials, onsets, labels = [], [], []
        for _, t in g.groupby(["session", "order", "trial"], sort=False):
            r = t["row"].to_numpy()
            trials.append(r)
            onsets.append(t["onset"].to_numpy())
            lab = y[r]
            ok = np.isfinite(lab.astype(float))
            labels.append(lab[ok][0] if ok.any() else np.nan)
        out.append(SubjectStream(str(subject), trials, onsets, labels, float(window_s)))
    return out


def live_rows(stream: SubjectStream, calibration_s: float, order: list[int] | None = None
              ) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows and end times of a session in ``order``, and how many of them calibrate."""
    rows, t_end = stream.arrange(order)
    return rows, t_end, calibration_count(t_end, stream.window_s, calibration_s)


def stream_adapted(adapter, arrays: dict[str, np.ndarray | None], t_end: np.ndarray,
                   n_calib: int) -> dict[str, np.ndarray | None]:
    """Adapted arrays of the windows after the calibration (the live decoder's procedure).

    ``adapter`` (:class:`~physioaffect.preprocessing.alignment.OnlineAdaptation`, fresh) is
    updated with the first ``n_calib`` windows, its calibration ended, then run window by window
    over the rest (updating only if it is online). ``arrays`` hold every window in recording
    order.
    """
    for i in range(n_calib):
        adapter.update({k: None if v is None else v[i] for k, v in arrays.items()},
                       float(t_end[i]))
    adapter.end_calibration()
    return adapter.stream({k: None if v is None else v[n_calib:] for k, v in arrays.items()},
                          t_end[n_calib:])


def score_stream(arrays: dict[str, np.ndarray | None], t_end: np.ndarray, n_calib: int,
                 scored: np.ndarray, make_adapter: Callable[[], object | None],
                 predict: Callable[[dict], np.ndarray]) -> np.ndarray | None:
    """Predictions of the ``scored`` windows (boolean over every window, recording order) that
    come after the calibration; None when no scored window is left."""
    after = np.asarray(scored, dtype=bool).copy()
    after[:n_calib] = False
    if not after.any():
        return None
    adapter = make_adapter()
    if adapter is None:
        return predict({k: None if v is None else v[after] for k, v in arrays.items()})
    adapted = stream_adapted(adapter, arrays, t_end, n_calib)
    keep = after[n_calib:]
    return predict({k: None if v is None else v[keep] for k, v in adapted.items()})


class ProtocolScorer:
    """Predictions of one trained model (network or baseline) under every protocol.

    Parameters
    ----------
    arrays : dict
        Unadapted inputs of every window (model arrays of the network, or the baseline's
        feature arrays), indexed by row.
    predict : callable(dict) -> ndarray
        Adapted inputs of some windows -> probabilities ``(n, k)`` or values ``(n,)``.
    method : str
        Adaptation method the model was trained with (``none``: inductive).
    eeg_kind : str or None
        Input kind of ``arrays["eeg"]`` (``raw``, ``graphs``).
    session : SubjectAdaptation or None
        Whole-session statistics of every subject (the session protocol).
    subjects : ndarray of str
        Subject of every row.
    half_life_s : float or None
        Forgetting of the online reference.
    make_adapter : callable(online) or None
        A fresh live reference (default: an
        :class:`~physioaffect.preprocessing.alignment.OnlineAdaptation` of ``method``).
    """

    def __init__(self, arrays: dict, predict: Callable[[dict], np.ndarray], method: str,
                 eeg_kind: str | None, session, subjects: np.ndarray,
                 half_life_s: float | None,
                 make_adapter: Callable[[bool], object] | None = None) -> None:
        self.arrays, self.predict, self.method = arrays, predict, method
        self.eeg_kind, self.session, self.subjects = eeg_kind, session, subjects
        self.half_life_s = half_life_s
        self.make_adapter = make_adapter

    def _adapter(self, online: bool):
        from physioaffect.preprocessing.alignment import OnlineAdaptation

        if self.method == "none":
            return None
        if self.make_adapter is not None:
            return self.make_adapter(online)
        return OnlineAdaptation(self.method, self.eeg_kind, self.half_life_s, online)

    def _take(self, rows: np.ndarray) -> dict:
        return {k: None if v is None else np.asarray(v[rows], dtype=np.float32)
                for k, v in self.arrays.items()}

    def live(self, stream: SubjectStream, scored_rows: np.ndarray, calibration_s: float,
             online: bool, order: list[int] | None = None
             ) -> tuple[np.ndarray, np.ndarray | None]:
        """Scored rows after the calibration and their predictions (None: none left)."""
        rows, t_end, n_calib = live_rows(stream, calibration_s, order)
        scored = np.isin(rows, scored_rows)
        pred = score_stream(self._take(rows), t_end, n_calib, scored,
                            lambda: self._adapter(online), self.predict)
        after = scored.copy()
        after[:n_calib] = False
        return rows[after], pred

    def whole_session(self, rows: np.ndarray) -> np.ndarray:
        """Predictions of ``rows``, each subject adapted with its whole session."""
        arrays = self._take(rows)
        if self.method != "none":
            arrays = self.session.transform(arrays, self.subjects[rows], in_place=True)
        return self.predict(arrays)


def prediction_frame(meta: pd.DataFrame, tag: dict, model: str, protocol: str,
                     rows: np.ndarray, y: np.ndarray, task: str, pred: np.ndarray
                     ) -> pd.DataFrame:
    """Rows of a predictions table: ``tag`` columns (fold or checkpoint), model, protocol,
    provenance, ``y_true``, ``y_pred`` and ``score_<k>``."""
    m = meta.iloc[rows]
    y_true = y[rows] if task == "regression" else y[rows].astype(int)
    df = pd.DataFrame({**tag, "model": model, "protocol": protocol,
                       "subject": m["subject"].astype(str).to_numpy(),
                       "session": m["session"].to_numpy(), "trial": m["trial"].to_numpy(),
                       "stimulus": m["stimulus"].astype(str).to_numpy(),
                       "onset_s": m["onset_s"].to_numpy(), "y_true": y_true})
    if task == "regression":
        df["y_pred"] = np.asarray(pred, dtype=float).reshape(len(rows))
    else:
        p = np.asarray(pred, dtype=float)
        df["y_pred"] = p.argmax(1)
        for k in range(p.shape[1]):
            df[f"score_{k}"] = p[:, k]
    return df


def score_protocols(meta: pd.DataFrame, tag: dict, label: str, scorer: ProtocolScorer,
                    online: bool, streams: list[SubjectStream], rows: np.ndarray, y: np.ndarray,
                    task: str, calibration_s: float, class_names: list[str],
                    full: bool) -> list[pd.DataFrame]:
    """Prediction tables of one model on some subjects' scored ``rows``: the whole session,
    the live protocol, and (``full``) the calibration curve and the one-sided starts."""
    cal = calibration_s
    frames = [prediction_frame(meta, tag, label, SESSION, rows, y, task,
                               scorer.whole_session(rows))]
    lengths = [cal] + ([c for c in CALIBRATION_CURVE_S if abs(c - cal) > 1e-9] if full else [])
    for c in lengths:
        for s in streams:
            got, pred = scorer.live(s, rows, c, online)
            if pred is not None:
                frames.append(prediction_frame(meta, tag, label, protocol_name(c, cal), got, y,
                                               task, pred))
    if full and task == "classification":
        for k, cls in enumerate(class_names):
            for s in streams:
                order = s.one_sided(k, cal)
                if order is None:
                    continue
                got, pred = scorer.live(s, rows, cal, online, order)
                if pred is not None:
                    frames.append(prediction_frame(meta, tag, label,
                                                   protocol_name(cal, cal, cls), got, y, task,
                                                   pred))
    return frames
