"""Common data model of every dataset reader.

A reader turns a folder somebody was given (DEAP, SEED, DREAMER, own sessions) into
:class:`SubjectRecording` objects, one subject at a time, each a list of :class:`Trial`.
Everything downstream (windows, labels, protocols) only sees this model.

Conventions
-----------
- EEG arrays are ``(n_chans, n_times)`` float arrays in microvolts, ``eeg`` holds the
  stimulus period only; the pre-stimulus rest (DEAP's 3 s, DREAMER's 61 s baseline
  recording) is in ``baseline``.
- Peripheral signals are :class:`Signal` objects (``data`` ``(n_chans, n_times)``, ``sfreq`` Hz,
  ``unit``, channel names), covering the same stimulus period as ``eeg``.
- Face features (where the dataset has them, see :mod:`physioaffect.datasets.face`) are a
  :class:`~physioaffect.datasets.face.FaceTrack` per trial: one row per video frame, times in
  seconds from the stimulus onset.
- Ratings are floats keyed by name (``valence``, ``arousal``, ``dominance``, ``liking``,
  ``emotion``); a missing rating is ``nan``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from physioaffect.datasets.errors import DatasetError, UnsafePickleError

__all__ = ["DatasetError", "UnsafePickleError", "DatasetReader", "Signal", "SubjectRecording",
           "Trial", "numbered_subjects"]

if TYPE_CHECKING:
    from physioaffect.datasets.face import FaceFolder, FaceTrack


def numbered_subjects(found: dict[int, str], folder: Path, file_name: Callable[[int], str],
                      first: int = 1, last: int | None = None) -> list[str]:
    """Subject ids of numbered files, in number order; gaps from ``first`` to ``last`` are errors.

    Parameters
    ----------
    found : dict of int to str
        Number -> subject id of the files present.
    folder : Path
        Where they are (for the message).
    file_name : callable
        Number -> file name (``lambda i: f"s{i:02d}.dat"``), to name the missing files.
    first, last : int
        The expected numbering (``last`` default: the largest number found).
    """
    last = max(found) if last is None else max(last, max(found))
    missing = [file_name(i) for i in range(first, last + 1) if i not in found]
    if missing:
        raise DatasetError(f"{folder}: missing subject file(s) {', '.join(missing[:5])}"
                           f"{' ...' if len(missing) > 5 else ''} (expected {file_name(first)} "
                           f"... {file_name(last)})")
    return [found[i] for i in sorted(found)]


@dataclass
class Signal:
    """One multi-channel signal.

    Attributes
    ----------
    data : ndarray, shape (n_chans, n_times)
    sfreq : float
        Sampling rate in Hz.
    unit : str
        Physical unit of ``data`` (``"uV"``, ``"a.u."`` where the dataset does not state one).
    ch_names : list of str
    """

    data: np.ndarray
    sfreq: float
    unit: str
    ch_names: list[str]


@dataclass
class Trial:
    """One stimulus presentation of one subject.

    Attributes
    ----------
    eeg : ndarray, shape (n_chans, n_times)
        EEG during the stimulus, microvolts.
    sfreq : float
        EEG sampling rate, Hz.
    ch_names : list of str
        EEG channel names in the order of the rows of ``eeg``.
    baseline : ndarray, shape (n_chans, n_base) or None
        EEG of the pre-stimulus rest belonging to this trial, microvolts.
    peripheral : dict of str to Signal
        Peripheral signals during the stimulus (GSR, ECG, respiration ...).
    peripheral_baseline : dict of str to Signal
        The same signals during the baseline, where the dataset has them.
    ratings : dict of str to float
        Self-reports or labels of the trial (``nan`` if missing).
    face : FaceTrack or None
        Face features of the trial, one row per video frame (None: no face data).
    dataset, subject, session, trial, stimulus :
        Provenance. ``subject`` is a string id (``"s01"``, ``"1"``), ``session`` an int
        (1-based), ``trial`` the 1-based trial number within the session and ``stimulus`` the id
        of the stimulus shown (shared across subjects where all saw the same clips).
    """

    eeg: np.ndarray
    sfreq: float
    ch_names: list[str]
    dataset: str
    subject: str
    session: int
    trial: int
    stimulus: str
    ratings: dict[str, float] = field(default_factory=dict)
    baseline: np.ndarray | None = None
    peripheral: dict[str, Signal] = field(default_factory=dict)
    peripheral_baseline: dict[str, Signal] = field(default_factory=dict)
    face: FaceTrack | None = None

    @property
    def duration(self) -> float:
        """Length of the stimulus period in seconds."""
        return self.eeg.shape[1] / self.sfreq


@dataclass
class SubjectRecording:
    """All trials of one subject (every session), plus subject-level information."""

    dataset: str
    subject: str
    trials: list[Trial]
    info: dict[str, object] = field(default_factory=dict)


class DatasetReader:
    """Base of the readers: list subjects, validate the folder, read one subject at a time.

    Subclasses set ``name`` and implement :meth:`_discover`, :meth:`validate` and
    :meth:`_read_subject`. The constructor validates cheaply (names, headers, sizes, variable
    names) so that a broken folder fails before any long work; ``validate(deep=True)`` loads
    every file.

    Parameters
    ----------
    root : path
        The dataset folder.
    validate : bool
        Cheap checks of every file at construction.
    face : path, optional
        A folder of per-trial face videos or face-feature CSVs (see
        :mod:`physioaffect.datasets.face`); each trial then carries ``face``.
    face_options : dict, optional
        ``offset_s``, ``fps``, ``cache_dir``, ``detector`` of
        :class:`~physioaffect.datasets.face.FaceFolder`.
    """

    name: str = ""
    rating_names: tuple[str, ...] = ()
    #: Whether trials carry a pre-stimulus baseline (needed by ``baseline="keep"/"subtract"``).
    has_baseline: bool = True

    def __init__(self, root: str | Path, *, validate: bool = True,
                 face: str | Path | None = None, face_options: dict | None = None) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise DatasetError(f"{self.root}: folder does not exist (expected a {self.name} folder)")
        self.subjects: list[str] = self._discover()
        self.face: FaceFolder | None = None
        if face is not None:
            from physioaffect.datasets.face import FaceFolder

            self.face = FaceFolder(face, self.subjects, **(face_options or {}))
        if validate:
            self.validate()

    # -- to implement ------------------------------------------------------------------------
    def _discover(self) -> list[str]:
        raise NotImplementedError

    def validate(self, deep: bool = False) -> None:
        """Raise :class:`DatasetError` naming the file and what was expected if the folder is bad."""
        raise NotImplementedError

    def _read_subject(self, subject: str) -> SubjectRecording:
        raise NotImplementedError

    def _face_file(self, trial: Trial, single_session: bool) -> Path | None:
        """The face file of ``trial`` in :attr:`face` (readers override to map numbering)."""
        return self.face.find(trial.subject, session=trial.session, trial=trial.trial,
                              stimulus=trial.stimulus, single_session=single_session)

    # -- shared --------------------------------------------------------------------------------
    def read_subject(self, subject: str) -> SubjectRecording:
        """All trials of one subject (with face features when a face folder was given)."""
        rec = self._read_subject(subject)
        if self.face is not None:
            single = len({tr.session for tr in rec.trials}) <= 1
            for tr in rec.trials:
                path = self._face_file(tr, single)
                if path is not None:
                    tr.face = self.face.load(path)
            rec.info["face_trials"] = sum(tr.face is not None for tr in rec.trials)
        return rec

    def __iter__(self) -> Iterator[SubjectRecording]:
        for s in self.subjects:
            yield self.read_subject(s)

    def __len__(self) -> int:
        return len(self.subjects)

    def fingerprint(self) -> list[tuple[str, int, int]]:
        """(name, size, mtime_ns) of every file the reader uses: part of the cache key."""
        out = []
        for p in self.files():
            st = p.stat()
            out.append((p.name, st.st_size, st.st_mtime_ns))
        return out

    def files(self) -> list[Path]:
        """The files this reader reads (for fingerprints)."""
        raise NotImplementedError

    def _check_subject(self, subject: str) -> None:
        if subject not in self.subjects:
            raise DatasetError(
                f"{self.root}: no subject {subject!r} (subjects: {', '.join(self.subjects)})"
            )
