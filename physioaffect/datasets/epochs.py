"""Any dataset as ``mne.Epochs`` in one call: :func:`to_epochs`.

The trials of a reader (DEAP, SEED, DREAMER, own sessions, and every reader
:func:`~physioaffect.datasets.open_dataset` knows) become an :class:`mne.EpochsArray`: EEG in
volts (the readers hold microvolts), channel positions from the 10-05 template (a dataset's
labels, SEED's ``CB1``/``CB2`` at ``I1``/``I2``), one event id per stimulus, and the provenance
and ratings of every epoch as ``epochs.metadata`` (pandas), so ``epochs["valence > 5"]`` and
``epochs.metadata.groupby("subject")`` work as MNE users expect.

:func:`braindecode_windows` cuts such epochs into windows shaped for braindecode's
``WindowsDataset`` (its window columns and a ``description`` per recording) without losing the
ratings and the subject, as braindecode's ``create_from_mne_epochs`` does.
"""

from __future__ import annotations

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
    natural_key,
    trial_name,
)

__all__ = ["braindecode_windows", "to_epochs"]

#: Readers hold EEG in microvolts; MNE holds volts.
UV_TO_V = 1e-6


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
    stimuli = sorted({str(tr.stimulus) for tr, _, _ in pieces}, key=natural_key)
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


#: Columns braindecode's ``WindowsDataset`` reads from each window's metadata.
BRAINDECODE_WINDOW_COLUMNS = ("i_window_in_trial", "i_start_in_trial", "i_stop_in_trial",
                              "target")
#: Metadata columns that identify one recording: they go to braindecode's ``description``.
BRAINDECODE_DESCRIPTION = ("dataset", "subject", "session", "run")


def braindecode_windows(epochs, window_size_samples: int | None = None,
                        window_stride_samples: int | None = None,
                        drop_last_window: bool = False, target: str = "event",
                        description: Sequence[str] = BRAINDECODE_DESCRIPTION,
                        ) -> list[tuple[object, dict]]:
    """Windows of ``epochs`` shaped for braindecode's datasets, keeping ratings and subject.

    braindecode's ``create_from_mne_epochs`` cuts each epoch into windows the same way but
    replaces ``epochs.metadata`` by its four window columns (the ratings and the subject are
    lost). This gives, per recording (the ``description`` columns of ``epochs.metadata``: one
    ``dataset``/``subject``/``session``), the windows as an ``mne.EpochsArray`` whose metadata has
    braindecode's ``i_window_in_trial``, ``i_start_in_trial``, ``i_stop_in_trial`` and
    ``target`` plus every column of the epoch's metadata (``trial``, ``stimulus``, ``valence``,
    ``arousal`` ...), and the recording's description::

        from braindecode.datasets import BaseConcatDataset, WindowsDataset
        ds = BaseConcatDataset([WindowsDataset(w, description=d)
                                for w, d in braindecode_windows(epochs, 256, 128,
                                                                target="valence")])
        ds.get_metadata()          # windows x (window columns, ratings, subject, session ...)
        ds.split("subject")        # by subject, as for braindecode's own datasets

    Parameters
    ----------
    epochs : mne.Epochs
        With metadata (:func:`to_epochs` gives it).
    window_size_samples, window_stride_samples : int, optional
        Window length and step in samples (default: the whole epoch, one window per trial).
    drop_last_window : bool
        As braindecode: without it a last window ending at the epoch's end is added when the
        stride does not reach it.
    target : str
        ``"event"`` (the epoch's event code, as ``create_from_mne_epochs`` without a mapping)
        or a metadata column (``"valence"``, ``"arousal"``).
    description : sequence of str
        Metadata columns that identify a recording (those present are used).

    Returns
    -------
    list of (mne.EpochsArray, dict)
        One pair per recording, in order of first appearance.
    """
    import mne
    import pandas as pd

    md = epochs.metadata
    if md is None:
        raise DatasetError("braindecode_windows: epochs have no metadata (make them with "
                           "to_epochs, or set epochs.metadata)")
    if target != "event" and target not in md.columns:
        raise DatasetError(f"braindecode_windows: target {target!r} is not a metadata column "
                           f"(columns: {', '.join(map(str, md.columns))}) nor 'event'")
    n_times = len(epochs.times)
    size = n_times if window_size_samples is None else int(window_size_samples)
    stride = size if window_stride_samples is None else int(window_stride_samples)
    if not 1 <= size <= n_times or stride < 1:
        raise DatasetError(f"braindecode_windows: window_size_samples={size} and "
                           f"window_stride_samples={stride} must be 1..{n_times} and >= 1")
    stop = n_times - size
    starts = np.arange(0, stop + 1, stride)
    if not drop_last_window and starts[-1] < stop:
        starts = np.append(starts, stop)
    keys = [c for c in description if c in md.columns]
    groups = md.groupby(keys, sort=False).indices if keys else {(): np.arange(len(md))}
    data = epochs.get_data()
    out = []
    for key, rows in groups.items():
        key = key if isinstance(key, tuple) else (key,)
        meta, chunks = [], []
        for r in rows:
            tgt = epochs.events[r, 2] if target == "event" else md[target].iloc[r]
            first = int(epochs.events[r, 0])
            for i, s in enumerate(starts):
                chunks.append(data[r, :, s:s + size])
                meta.append({"i_window_in_trial": i, "i_start_in_trial": first + int(s),
                             "i_stop_in_trial": first + int(s) + size, "target": tgt,
                             **md.iloc[r].to_dict()})
        wmeta = pd.DataFrame(meta)
        codes = wmeta["target"].to_numpy()
        codes = codes.astype(int) if np.issubdtype(codes.dtype, np.integer) \
            else np.ones(len(wmeta), dtype=int)
        # events on a virtual time line (window starts of different trials may coincide)
        events = np.column_stack([np.arange(len(wmeta)) * (size + 1),
                                  np.zeros(len(wmeta), dtype=int), codes]).astype(int)
        windows = mne.EpochsArray(np.stack(chunks), epochs.info, events=events,
                                  tmin=0.0, metadata=wmeta,
                                  baseline=None, verbose="error")
        desc = {k: (v.item() if hasattr(v, "item") else v) for k, v in zip(keys, key,
                                                                            strict=True)}
        out.append((windows, desc))
    return out
