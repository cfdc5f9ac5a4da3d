"""Any dataset as ``mne.Epochs`` in one call: :func:`to_epochs`.

The trials of a reader (DEAP, SEED, DREAMER, own sessions, and every reader
:func:`~physioaffect.datasets.open_dataset` knows) become an :class:`mne.EpochsArray`: EEG in
volts (the readers hold microvolts), channel positions from the 10-05 template (a dataset's
labels, SEED's ``CB1``/``CB2`` at ``I1``/``I2``), one event id per stimulus, and the provenance
and ratings of every epoch as ``epochs.metadata`` (pandas), so ``epochs["valence > 5"]`` and
``epochs.metadata.groupby("subject")`` work as MNE users expect.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from physioaffect.datasets.base import (
    DatasetError,
    DatasetReader,
    SubjectRecording,
    Trial,
    TrialsDroppedWarning,
    trial_name,
)

__all__ = ["to_epochs"]

#: Readers hold EEG in microvolts; MNE holds volts.
UV_TO_V = 1e-6


def _natural(s: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(s)))


def _recordings(dataset: str | DatasetReader | Iterable[SubjectRecording],
                root: str | Path | None, subjects: Sequence[str] | None,
                options: dict) -> Iterable[SubjectRecording]:
    if isinstance(dataset, str):
        if root is None:
            raise DatasetError(f"to_epochs: dataset {dataset!r} given by name needs root "
                               "(the dataset folder)")
        from physioaffect.datasets import open_dataset

        dataset = open_dataset(dataset, root, **options)
    if isinstance(dataset, DatasetReader):
        wanted = list(dataset.subjects) if subjects is None else [str(s) for s in subjects]
        return (dataset.read_subject(s) for s in wanted)
    recs = list(dataset)
    if subjects is not None:
        keep = {str(s) for s in subjects}
        recs = [r for r in recs if r.subject in keep]
    return recs


def _segments(tr: Trial, tmin: float, tmax: float | None, window_s: float | None,
              step_s: float | None) -> tuple[list[tuple[float, np.ndarray]], str]:
    """(onset s after the stimulus onset, EEG (n_chans, n_times) uV) pieces of one trial, and
    why there are none (empty when there are)."""
    fs = tr.sfreq
    if window_s is not None:
        n = int(round(window_s * fs))
        hop = int(round((step_s or window_s) * fs))
        if n < 1 or hop < 1:
            raise DatasetError(f"to_epochs: window_s={window_s} s / step_s={step_s} s give no "
                               f"sample at {fs:g} Hz")
        starts = range(0, tr.eeg.shape[1] - n + 1, hop)
        pieces = [(k / fs, tr.eeg[:, k:k + n]) for k in starts]
        return pieces, "" if pieces else f"shorter than window_s={window_s:g} s"
    n_pre = int(round(-tmin * fs))
    x = tr.eeg
    if n_pre > 0:
        base = tr.baseline
        if base is None or base.shape[1] < n_pre:
            have = 0.0 if base is None else base.shape[1] / fs
            return [], f"{have:g} s of baseline for tmin={tmin:g} s"
        x = np.concatenate([base[:, base.shape[1] - n_pre:], x], axis=1)
    n_post = x.shape[1] - n_pre if tmax is None else int(round(tmax * fs)) + 1
    if x.shape[1] < n_pre + n_post:
        return [], f"{(x.shape[1] - n_pre) / fs:g} s long, shorter than tmax={tmax:g} s"
    return [(tmin, x[:, :n_pre + n_post])], ""


def _read_all(recordings: Iterable[SubjectRecording], dropped: list[str]
              ) -> Iterable[SubjectRecording]:
    """The recordings, with the readers' TrialsDroppedWarning names moved into ``dropped`` (to
    be said once, with to_epochs' own); every other warning passes on."""
    it = iter(recordings)
    while True:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TrialsDroppedWarning)
            rec = next(it, None)
        for w in caught:
            if isinstance(w.message, TrialsDroppedWarning):
                dropped += w.message.trials
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if rec is None:
            return
        yield rec


def to_epochs(
    dataset: str | DatasetReader | Iterable[SubjectRecording],
    root: str | Path | None = None,
    subjects: Sequence[str] | None = None,
    *,
    tmin: float = 0.0,
    tmax: float | None = None,
    window_s: float | None = None,
    step_s: float | None = None,
    verbose: str | bool | None = "error",
    **reader_options: object,
):
    """The EEG trials of a dataset as ``mne.EpochsArray`` with metadata and montage.

    Parameters
    ----------
    dataset : str, DatasetReader or iterable of SubjectRecording
        A reader name (``"deap"``, ``"seed"``, ``"dreamer"``, ``"sessions"`` ...: anything
        :func:`~physioaffect.datasets.open_dataset` opens, then ``root`` is needed), an open
        reader, or subject recordings already read.
    root : path, optional
        Dataset folder when ``dataset`` is a name.
    subjects : list of str, optional
        Subject ids (default: every subject, read one at a time).
    tmin : float
        Start of each trial epoch in s relative to the stimulus onset; negative values take
        that much of the trial's pre-stimulus baseline (DEAP 3 s, DREAMER 61 s; own sessions
        opened by name read ``baseline_s=-tmin`` s unless ``baseline_s`` is given). Trials
        with less baseline are left out.
    tmax : float, optional
        End in s after the stimulus onset (default: the shortest trial, so every trial fits;
        trials shorter than ``tmax`` are left out).
    window_s, step_s : float, optional
        Instead of one epoch per trial, consecutive windows of ``window_s`` s every ``step_s``
        s (default ``window_s``) from the stimulus onset, as the window cache cuts them
        (the last incomplete window is dropped); ``metadata["onset_s"]`` is each window's start.
    verbose : bool, str or None
        MNE's verbosity.
    **reader_options
        Passed to :func:`~physioaffect.datasets.open_dataset` (e.g. ``baseline_s`` for own
        sessions).

    Returns
    -------
    mne.EpochsArray
        Data in volts, channel type ``eeg``, positions set where the labels are known.
        ``epochs.event_id`` maps each stimulus id to an event code (``epochs["video07"]``);
        ``epochs.metadata`` has ``dataset, subject, session, trial, stimulus, onset_s`` and one
        column per rating (``valence``, ``arousal`` ...; NaN where a trial has none).

    Raises
    ------
    DatasetError
        No trials, channels or sampling rates that differ between trials, or a baseline too
        short for ``tmin``.
    """
    import mne
    import pandas as pd

    from physioaffect.streams.montage import dig_montage

    if window_s is not None and tmin != 0.0:
        raise DatasetError("to_epochs: tmin applies to whole trials; windows start at the "
                           "stimulus onset (give either window_s or tmin)")
    if tmax is not None and tmax <= tmin:
        raise DatasetError(f"to_epochs: tmax={tmax} s must be after tmin={tmin} s")
    if (isinstance(dataset, str) and dataset == "sessions" and tmin < 0
            and "baseline_s" not in reader_options):
        reader_options["baseline_s"] = -tmin  # each trial's baseline: just what tmin asks for
    pieces: list[tuple[Trial, float, np.ndarray]] = []
    ch_names: list[str] | None = None
    sfreq: float | None = None
    dropped: list[str] = []

    def drop(tr: Trial, why: str) -> None:
        dropped.append(trial_name(tr.dataset, tr.subject, tr.session, tr.trial, why))

    kept: list[Trial] = []
    for rec in _read_all(_recordings(dataset, root, subjects, reader_options), dropped):
        for tr in rec.trials:
            if ch_names is None:
                ch_names, sfreq = list(tr.ch_names), float(tr.sfreq)
            elif list(tr.ch_names) != ch_names or float(tr.sfreq) != sfreq:
                raise DatasetError(
                    f"to_epochs: {tr.dataset} subject {tr.subject} trial {tr.trial} has "
                    f"{len(tr.ch_names)} channels at {tr.sfreq:g} Hz, the first trial "
                    f"{len(ch_names)} at {sfreq:g} Hz (epochs need one channel set and rate)")
            if window_s is None and tmax is None:
                # cut once the shortest trial is known; a trial without the baseline tmin asks
                # for must not set it
                segs, why = _segments(tr, tmin, None, None, None)
                if segs:
                    kept.append(tr)
                else:
                    drop(tr, why)
                continue
            segs, why = _segments(tr, tmin, tmax, window_s, step_s)
            if not segs:
                drop(tr, why)
            pieces += [(tr, onset, x) for onset, x in segs]
    if window_s is None and tmax is None and kept and sfreq is not None:
        shortest = min(tr.eeg.shape[1] for tr in kept)
        tmax = (shortest - 1) / sfreq
        pieces = [(tr, onset, x) for tr in kept
                  for onset, x in _segments(tr, tmin, tmax, None, None)[0]]
    if dropped:
        warnings.warn(TrialsDroppedWarning("to_epochs", dropped), stacklevel=2)
    if not pieces or ch_names is None or sfreq is None:
        raise DatasetError("to_epochs: no trials to make epochs of"
                           + (f" ({len(dropped)} left out: {dropped[0]} ...)" if dropped else ""))
    n_times = pieces[0][2].shape[1]
    data = np.empty((len(pieces), len(ch_names), n_times))
    for i, (_, _, x) in enumerate(pieces):
        data[i] = x
    data *= UV_TO_V
    stimuli = sorted({str(tr.stimulus) for tr, _, _ in pieces}, key=_natural)
    event_id = {s: k + 1 for k, s in enumerate(stimuli)}
    ratings = sorted({k for tr, _, _ in pieces for k in tr.ratings})
    rows = []
    for tr, onset, _ in pieces:
        row = {"dataset": tr.dataset, "subject": str(tr.subject), "session": int(tr.session),
               "trial": int(tr.trial), "stimulus": str(tr.stimulus), "onset_s": float(onset)}
        row.update({r: float(tr.ratings.get(r, np.nan)) for r in ratings})
        rows.append(row)
    metadata = pd.DataFrame(rows)
    # events on a virtual time line: epoch i starts n_times + 1 samples after epoch i - 1
    events = np.column_stack([np.arange(len(pieces)) * (n_times + 1),
                              np.zeros(len(pieces), dtype=int),
                              [event_id[str(tr.stimulus)] for tr, _, _ in pieces]]).astype(int)
    info = mne.create_info(ch_names, sfreq, "eeg", verbose=verbose)
    epoch_tmin = tmin if window_s is None else 0.0
    epochs = mne.EpochsArray(data, info, events=events, tmin=epoch_tmin, event_id=event_id,
                             metadata=metadata, baseline=None, verbose=verbose)
    montage = dig_montage(ch_names)
    if montage is not None:
        epochs.set_montage(montage, on_missing="ignore", verbose=verbose)
    datasets = sorted({tr.dataset for tr, _, _ in pieces})
    with epochs.info._unlock():
        epochs.info["description"] = (f"physioaffect.datasets.to_epochs: {', '.join(datasets)}, "
                                      f"{metadata['subject'].nunique()} subject(s)")
    return epochs
