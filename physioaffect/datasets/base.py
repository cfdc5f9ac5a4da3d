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

import errno
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from physioaffect.datasets.errors import DatasetError, UnsafePickleError
from physioaffect.log import logger

__all__ = ["DatasetError", "UnsafePickleError", "DatasetReader", "Signal", "SubjectRecording",
           "Trial", "numbered_subjects", "matching_files", "file_problem", "numeric_array",
           "check_ratings", "warn_nonfinite", "rating_names"]

if TYPE_CHECKING:
    from physioaffect.datasets.face import FaceFolder, FaceTrack


def natural_key(s: object) -> tuple:
    """Sort key that orders numbers inside names by value (``s2`` before ``s10``)."""
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(s)))

class TrialsDroppedWarning(UserWarning):
    """Trials left out because they are incomplete (one warning naming them all).

    Attributes
    ----------
    trials : list of str
        One entry per trial: ``"<dataset> subject <s> session <k> trial <t> (<why>)"``.
    """

    def __init__(self, what: str, trials: list[str]) -> None:
        self.trials = list(trials)
        shown = "; ".join(self.trials[:10]) + (" ..." if len(self.trials) > 10 else "")
        super().__init__(f"{what}: {len(self.trials)} trial(s) left out: {shown}")


def trial_name(dataset: str, subject: str, session: object, trial: object, why: str) -> str:
    """``"<dataset> subject <s> session <k> trial <t> (<why>)"`` for warnings."""
    return f"{dataset} subject {subject} session {session} trial {trial} ({why})"


def dataset_hint(root: Path) -> str:
    """`` (this looks like a SEED folder: use dataset 'seed')`` when the files in ``root``
    belong to another dataset than the one asked for ("" when they look like none)."""
    names = {p.name for p in root.iterdir()}
    if any(re.match(r"^s\d{2}\.dat$", n) for n in names):
        return " (this looks like a DEAP data_preprocessed_python folder: use dataset 'deap')"
    if "DREAMER.mat" in names:
        return " (this looks like a DREAMER folder: use dataset 'dreamer')"
    if "label.mat" in names or any(re.match(r"^\d+_\d{8}\.mat$", n) for n in names):
        return " (this looks like a SEED Preprocessed_EEG folder: use dataset 'seed')"
    if "Processed_data" in names:
        return " (this looks like a FACED folder: use dataset 'faced')"
    if "EEG data" in names:
        return " (this looks like a THU-EP folder: use dataset 'thu-ep')"
    if any(re.match(r"^s\d{2}\.mat$", n) for n in names):
        return " (these are DEAP MATLAB files; point at data_preprocessed_python instead)"
    return ""


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


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a data file (None: it can), said for a message."""
    try:
        st = path.stat()  # follows symbolic links
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a symbolic link loop; replace it with the file or remove it"
        if path.is_symlink():
            return (f"a broken symbolic link (to {os.readlink(path)}); replace it with the file "
                    "or remove it")
        return f"cannot be read ({err.strerror or err})"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a folder or a device?); rename or remove it"
    if not os.access(path, os.R_OK):
        return "not readable (permission denied); fix its permissions"
    return None


def matching_files(folder: Path, pattern: re.Pattern[str]) -> list[tuple[re.Match[str], Path]]:
    """The entries of ``folder`` whose names match ``pattern``, each checked to be a readable file.

    A name that matches but is a symbolic link loop, a broken link, a folder or an unreadable
    file is refused naming it (a reader that skipped it would report a smaller folder as OK).
    """
    out = []
    for p in sorted(folder.iterdir()):
        m = pattern.match(p.name)
        if m is None:
            continue
        problem = file_problem(p)
        if problem is not None:
            raise DatasetError(f"{p}: {problem}")
        out.append((m, p))
    return out


def numeric_array(value: Any, where: str, name: str, expected: str) -> np.ndarray:
    """``value`` if it is an ndarray of real numbers (integers or floats), else one line.

    ``where`` names the file, ``name`` the field or variable, ``expected`` its layout (for the
    message). Object arrays (strings in a crafted pickle), text and complex numbers are refused.
    """
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
        return value
    found = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
    raise DatasetError(f"{where}: '{name}' must be an array of numbers ({expected}), found "
                       f"{found}")


def check_ratings(values: Any, where: str, name: str, lo: float, hi: float, scale: str,
                  describe: Callable[[tuple[int, ...]], str] | None = None) -> np.ndarray:
    """Ratings as floats, refused when a value is infinite or outside ``[lo, hi]``.

    NaN stays (a missing rating, dropped and counted by the labels). ``describe`` turns the index
    of the first bad value into words (``"trial 3, valence"``); ``scale`` says what was expected.
    """
    v = np.asarray(numeric_array(np.asarray(values), where, name, scale), dtype=np.float64)
    bad = np.isinf(v) | (v < lo) | (v > hi)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        at = describe(idx) if describe else f"index {idx}"
        raise DatasetError(f"{where}: '{name}' has {int(bad.sum())} value(s) outside "
                           f"[{lo:g}, {hi:g}] (first: {v[idx]:g} at {at}); expected {scale}")
    return v


def warn_nonfinite(values: np.ndarray, where: str, name: str) -> int:
    """Say (one warning line) how many samples of ``values`` are NaN or infinite; returns it.

    Such samples are not refused: the windows holding them are marked unusable and counted
    when windows are prepared.
    """
    n = int(values.size - np.count_nonzero(np.isfinite(values)))
    if n:
        logger.warning(f"{where}: {n} NaN or infinite samples in '{name}' (windows holding "
                       "them are marked unusable)")
    return n


def rating_names(names: Sequence[str]) -> Callable[[tuple[int, ...]], str]:
    """``describe`` for :func:`check_ratings` of a (trial, rating) table."""
    return lambda idx: (f"trial {idx[0] + 1}, {names[idx[1]]}" if len(idx) == 2
                        else f"index {idx}")


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
        (1-based), ``trial`` the trial number within the session as the dataset numbers it
        (1-based for the published datasets; own sessions: the markers' own ``trial``, which
        the simulator counts from 0) and ``stimulus`` the id of the stimulus shown (shared
        across subjects where all saw the same clips).
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
