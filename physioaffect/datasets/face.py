"""Face features of dataset trials: a folder of face videos and/or face-feature CSV files.

Any reader takes ``face=FOLDER`` (``physioaffect train --face FOLDER``). The folder (searched
recursively) holds one file per trial, named after the subject and the trial::

    <subject>_trial<NN>.<ext>            trial NN as the reader numbers it (DEAP: see below)
    <subject>_ses<S>_trial<NN>.<ext>     several sessions per subject (SEED)
    <subject>_<stimulus>.<ext>           by stimulus id (DEAP: s01_video07.csv)

optionally inside a ``<subject>/`` sub-folder (DEAP's ``face_video/s01/s01_trial01.avi``).
``<ext>`` is a video (``avi``, ``mp4``, ``mov``, ``mkv``, ``webm``, ``m4v``) or a ``csv`` in one
of three layouts, told apart by their columns: physioaffect's own (``analyze_video`` tables,
``physioaffect datasets face-features``), OpenFace 2 ``FeatureExtraction`` output, or a py-feat
``Fex`` table (needs ``face_fps``). Where a trial has both, the CSV is used.

Videos are analysed once (:func:`physioaffect.face.analyze_video`, about 130 frames/s on one
core) and their features cached as CSV files keyed by the video's name, size and modification
time, so a second run reads the cache. ``physioaffect datasets face-features`` fills the cache
ahead of training, with progress.

Times: the first frame of a trial's file is ``offset_s`` seconds after the stimulus onset
(default 0: the file starts with the stimulus); a frame's time in :class:`FaceTrack` is relative
to the onset.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from physioaffect.datasets.errors import DatasetError

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v")
CSV_SUFFIX = ".csv"
#: Bumped when the cached feature layout of videos changes (2: the Face layout's pulse_reason
#: channel and issue 28's camera pulse).
FEATURE_CACHE_VERSION = 2
_TRIAL_KEY = re.compile(r"^(?:ses(?P<ses>\d+)_)?trial(?P<trial>\d+)$", re.IGNORECASE)


@dataclass
class FaceTrack:
    """Face features of one trial, one row per video frame.

    Attributes
    ----------
    times : ndarray, shape (n_frames,)
        Seconds from the stimulus onset (negative: before it).
    values : ndarray, shape (n_frames, n_features)
        Feature values; NaN where the frame had no measurable face (see the ``status`` column,
        codes in :data:`physioaffect.streams.face_layout.STATUS_CODES`).
    names : list of str
        Column names: the ``Face`` stream channels, plus a tool's own action-unit or emotion
        columns for imported CSVs.
    source : str
        The file or stream the features came from.
    """

    times: np.ndarray
    values: np.ndarray
    names: list[str]
    source: str

    def column(self, name: str) -> np.ndarray:
        """Values of one feature (raises KeyError naming the available ones)."""
        if name not in self.names:
            raise KeyError(f"{self.source}: no face feature {name!r} (has {', '.join(self.names)})")
        return self.values[:, self.names.index(name)]


@dataclass(frozen=True)
class _Key:
    """What a face file's name says about its trial."""

    session: int | None
    trial: int | None
    stimulus: str | None


class FaceFolder:
    """Index of a folder of per-trial face videos and CSV files.

    Parameters
    ----------
    root : path
        Folder searched recursively.
    subjects : list of str
        Subject ids of the dataset: a file belongs to the subject whose id starts its name.
    offset_s : float
        Time of each file's first frame relative to its trial's stimulus onset, s.
    fps : float, optional
        Frame rate of the analysed videos, for py-feat CSVs (they store frame numbers only).
    cache_dir : path, optional
        Where features of analysed videos are cached (default
        ``<root's parent>/physioaffect-cache/face``).
    detector : str
        Face detector for videos (``auto``, ``facemesh``, ``haar``).

    Raises
    ------
    DatasetError
        The folder does not exist or holds no face file of any subject.
    """

    def __init__(self, root: str | Path, subjects: list[str], *, offset_s: float = 0.0,
                 fps: float | None = None, cache_dir: str | Path | None = None,
                 detector: str = "auto") -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: face folder does not exist (expected a folder of "
                               "per-trial face videos or face-feature CSV files)")
        self.offset_s = float(offset_s)
        self.fps = fps
        self.detector = detector
        #: Show a progress bar while a video is analysed (set by long-running callers).
        self.progress = False
        self.cache_dir = Path(cache_dir) if cache_dir else \
            self.root.resolve().parent / "physioaffect-cache" / "face"
        self.files: dict[str, dict[_Key, Path]] = {}
        self.unmatched: list[Path] = []
        by_length = sorted(subjects, key=len, reverse=True)  # "s1" must not claim "s10_..."
        for p in sorted(self.root.rglob("*")):
            suffix = p.suffix.lower()
            if not p.is_file() or (suffix != CSV_SUFFIX and suffix not in VIDEO_SUFFIXES):
                continue
            subject = next((s for s in by_length if p.stem.lower().startswith(f"{s.lower()}_")),
                           None)
            if subject is None:
                self.unmatched.append(p)
                continue
            key = _parse_key(p.stem[len(subject) + 1:])
            known = self.files.setdefault(subject, {})
            if key in known and known[key].suffix.lower() == CSV_SUFFIX:
                continue  # a CSV wins over a video of the same trial
            known[key] = p
        if not self.files:
            raise DatasetError(
                f"{self.root}: no face file of any subject here (expected names like "
                f"{subjects[0] if subjects else 's01'}_trial01.avi or .csv, subjects "
                f"{', '.join(subjects[:5])}{' ...' if len(subjects) > 5 else ''})")

    # ------------------------------------------------------------------------------- lookup
    def subjects_with_face(self) -> list[str]:
        return sorted(self.files)

    def find(self, subject: str, *, session: int | None, trial: int | None,
             stimulus: str | None, single_session: bool = True) -> Path | None:
        """The file of one trial, or None.

        A file named by ``ses<S>_trial<NN>`` matches session and trial; ``trial<NN>`` matches
        the trial when the subject has one session; ``<stimulus>`` matches the stimulus id.
        """
        files = self.files.get(subject, {})
        for key in (_Key(session, trial, None), _Key(None, trial, None) if single_session
                    else None, _Key(None, None, (stimulus or "").lower())):
            if key is not None and key in files:
                return files[key]
        return None

    def fingerprint(self) -> list[tuple[str, int, int]]:
        """(name, size, mtime_ns) of every face file: part of a feature cache key."""
        stats = [(p.name, p.stat()) for files in self.files.values()
                 for p in sorted(files.values())]
        return [(name, st.st_size, st.st_mtime_ns) for name, st in stats]

    # ------------------------------------------------------------------------------- loading
    def load(self, path: Path, progress: bool | None = None) -> FaceTrack:
        """Features of one file as a :class:`FaceTrack` (a video is analysed or read from cache).

        Raises
        ------
        DatasetError
            A CSV in no known layout, a py-feat CSV without ``fps``, an unreadable video.
        """
        from physioaffect.face.importers import FaceCSVError, read_face_csv

        if path.suffix.lower() == CSV_SUFFIX:
            try:
                table, _ = read_face_csv(path, fps=self.fps, start_time=self.offset_s)
            except FaceCSVError as err:
                raise DatasetError(str(err)) from None
        else:
            table = self._video_table(path, self.progress if progress is None else progress)
            table = table.assign(time=table["time"] + self.offset_s)
        return track_from_table(table, str(path))

    def cache_path(self, video: Path) -> Path:
        """Where the features of ``video`` are (or will be) cached."""
        st = video.stat()
        key = hashlib.sha256(repr((video.name, st.st_size, st.st_mtime_ns, self.detector,
                                   FEATURE_CACHE_VERSION)).encode()).hexdigest()[:12]
        return self.cache_dir / f"{video.stem}-{key}.csv"

    def _video_table(self, video: Path, progress: bool):
        import pandas as pd

        cached = self.cache_path(video)
        if cached.is_file():
            return pd.read_csv(cached)
        try:
            from physioaffect.face.analysis import analyze_video
            from physioaffect.face.landmarks import FaceExtraError
            from physioaffect.sources.base import SourceError
        except ImportError as err:  # the face extra is not installed
            raise DatasetError(f"{video}: analysing face videos needs the face extra "
                               f"(pip install 'physioaffect[face]'): {err}") from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # truncation: rows say so
                table, _ = analyze_video(video, start_time=0.0, detector=self.detector,
                                         progress=progress)
        except (FaceExtraError, SourceError, ValueError, OSError) as err:
            raise DatasetError(f"{video}: cannot analyse this face video ({err})") from None
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        table.to_csv(tmp, index=False)
        tmp.replace(cached)  # a run killed mid-write leaves no half cache behind
        return table


def track_from_table(table, source: str) -> FaceTrack:
    """A :class:`FaceTrack` from a face table (``time`` column, feature columns, optional
    ``status_name``); non-numeric columns other than ``time`` are dropped."""
    names = [c for c in table.columns if c not in ("time", "status_name")
             and np.issubdtype(table[c].dtype, np.number)]
    return FaceTrack(times=table["time"].to_numpy(dtype=float),
                     values=table[names].to_numpy(dtype=float), names=names, source=source)


def _parse_key(rest: str) -> _Key:
    m = _TRIAL_KEY.match(rest)
    if m:
        ses = m.group("ses")
        return _Key(int(ses) if ses else None, int(m.group("trial")), None)
    return _Key(None, None, rest.lower())


def read_deap_trial_order(path: str | Path) -> dict[tuple[int, int], int]:
    """DEAP's ``participant_ratings.csv``: (participant, presentation trial) -> video id.

    DEAP's face videos are numbered in presentation order (``s01_trial05``: the fifth video
    participant 1 saw) while the preprocessed files are in video order (``Experiment_id``);
    this table links the two.

    Raises
    ------
    DatasetError
        The file is missing or lacks the ``Participant_id``, ``Trial``, ``Experiment_id`` columns.
    """
    import pandas as pd

    path = Path(path)
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: cannot read DEAP participant ratings ({err})") from None
    need = ["Participant_id", "Trial", "Experiment_id"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise DatasetError(f"{path}: not DEAP's participant_ratings.csv: missing column(s) "
                           f"{', '.join(missing)} (expected {', '.join(need)})")
    try:
        return {(int(p), int(t)): int(e) for p, t, e in table[need].itertuples(index=False)}
    except (TypeError, ValueError) as err:
        raise DatasetError(f"{path}: Participant_id, Trial and Experiment_id must be whole "
                           f"numbers ({err})") from None
