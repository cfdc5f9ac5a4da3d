"""Reader of THU-EP (Tsinghua University emotional profile dataset), as EmT's official code reads it.

Layout (``root`` is the THU-EP folder)::

    EEG data/sub_1.mat ... sub_N.mat   MATLAB v7.3 (HDF5), variable ``data``
    Ratings/ratings.mat                MATLAB v7.3 (HDF5), variable ``ratings``

- ``data`` as h5py returns it: ``(time, channel, stimulus, band)``, 32 channels at 250 Hz, the
  broadband signal at band index 5 (the other five are band-passed copies; only index 5 is read).
  Channel order ``faced32`` (the same as FACED's). The release does not state the unit; the EEG
  is taken as microvolts (the feature functions warn when amplitudes look like volts).
- ``ratings`` as h5py returns it: ``(12 ratings, stimulus, subject)``; subject ``sub_N`` is column
  ``N - 1``. The 12 items in EmT's order: anger, disgust, fear, sadness, amusement, joy,
  inspiration, tenderness, arousal, valence, familiarity, liking (0-7 scale).
- Stimuli are in the same order for every subject (EmT pairs ``data[:, :, k]`` with
  ``ratings[:, k, subject]``): stimulus id ``video01`` ... .

Both files are opened with h5py (``physioaffect.datasets.matfile.open_mat73``); a file with a
v7.3 MATLAB header but no HDF5 inside, a missing variable or a wrong shape is a one-line
:class:`DatasetError` naming the file and the variable. EmT's binary labels: ``<= 3 -> 0``,
else 1 (label rule ``emt_gt3``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from physioaffect.datasets.base import (
    DatasetError,
    DatasetReader,
    SubjectRecording,
    Trial,
    check_ratings,
    file_problem,
    matching_files,
    numbered_subjects,
    warn_nonfinite,
)
from physioaffect.datasets.matfile import mat73_array, open_mat73
from physioaffect.datasets.montages import FACED32

SFREQ = 250.0
BROADBAND = 5
RATINGS = ("anger", "disgust", "fear", "sadness", "amusement", "joy", "inspiration",
           "tenderness", "arousal", "valence", "familiarity", "liking")
EEG_FOLDER = "EEG data"
RATINGS_FILE = Path("Ratings") / "ratings.mat"
#: THU-EP's ratings: integers on a 0-7 scale.
RATING_RANGE = (0.0, 7.0)
_FILE = re.compile(r"^sub_(\d+)\.mat$")


class THUEPReader(DatasetReader):
    """THU-EP EEG (broadband band of ``data``) with the 12 ratings per stimulus.

    Parameters
    ----------
    root : path
        The THU-EP folder (holding ``EEG data`` and ``Ratings``).
    validate : bool
        Cheap checks at construction: file names without gaps, ``Ratings/ratings.mat`` present,
        every file a v7.3 (HDF5) MATLAB file with its variable of the expected shape (from the
        HDF5 headers, without reading the data).
    """

    name = "thu-ep"
    rating_names = RATINGS
    has_baseline = False

    def _discover(self) -> list[str]:
        folder = self.root / EEG_FOLDER
        if not folder.is_dir():
            from physioaffect.datasets.base import dataset_hint

            raise DatasetError(f"{self.root}: no '{EEG_FOLDER}' folder (expected THU-EP's "
                               f"'{EEG_FOLDER}/sub_N.mat'){dataset_hint(self.root)}")
        found = {int(m.group(1)): p.stem for m, p in matching_files(folder, _FILE)}
        if not found:
            raise DatasetError(f"{folder}: no THU-EP files sub_1.mat ... here")
        subjects = numbered_subjects(found, folder, lambda i: f"sub_{i}.mat")
        ratings = self.root / RATINGS_FILE
        if not ratings.is_file():
            why = file_problem(ratings) if ratings.is_symlink() or ratings.exists() else None
            raise DatasetError(f"{ratings}: {why or 'missing'} (THU-EP's ratings, variable "
                               "'ratings')")
        return subjects

    def path(self, subject: str) -> Path:
        return self.root / EEG_FOLDER / f"{subject}.mat"

    def files(self) -> list[Path]:
        return [self.root / RATINGS_FILE, *(self.path(s) for s in self.subjects)]

    def _ratings_shape(self) -> tuple[int, ...]:
        path = self.root / RATINGS_FILE
        with open_mat73(path) as f:
            shape = mat73_array(f, "ratings", 3, str(path)).shape
        if shape[0] != len(RATINGS):
            raise DatasetError(f"{path}: variable 'ratings' has shape {shape}, expected "
                               f"({len(RATINGS)} ratings, stimulus, subject)")
        n_sub = int(_FILE.match(self.path(self.subjects[-1]).name).group(1))
        if shape[2] < n_sub:
            raise DatasetError(f"{path}: variable 'ratings' has {shape[2]} subjects, "
                               f"{EEG_FOLDER}/ has sub_{n_sub}.mat")
        return shape

    def _check_data(self, subject: str, n_stimuli: int) -> None:
        path = self.path(subject)
        with open_mat73(path) as f:
            shape = mat73_array(f, "data", 4, str(path)).shape
        if shape[1] != len(FACED32) or shape[2] != n_stimuli or shape[3] <= BROADBAND:
            raise DatasetError(
                f"{path}: variable 'data' has shape {shape}, expected (time, {len(FACED32)} "
                f"channels, {n_stimuli} stimuli, bands with the broadband one at index "
                f"{BROADBAND})")

    def validate(self, deep: bool = False) -> None:
        """Headers of every file (shapes, variable names); ``deep=True`` reads every array."""
        n_stimuli = self._ratings_shape()[1]
        for s in self.subjects:
            self._check_data(s, n_stimuli)
            if deep:
                data, _ = self._load(s)
                warn_nonfinite(data, str(self.path(s)), "data")

    def _load(self, subject: str) -> tuple[np.ndarray, np.ndarray]:
        """Broadband EEG ``(time, channel, stimulus)`` and ratings ``(12, stimulus)``."""
        rpath, path = self.root / RATINGS_FILE, self.path(subject)
        col = int(_FILE.match(path.name).group(1)) - 1
        n_stimuli = self._ratings_shape()[1]
        self._check_data(subject, n_stimuli)
        ratings = check_ratings(_read(rpath, "ratings", (slice(None), slice(None), col)),
                                str(rpath), "ratings", *RATING_RANGE, "THU-EP's 0-7 ratings",
                                lambda idx: f"{RATINGS[idx[0]]} of stimulus {idx[1] + 1}, "
                                            f"{subject}")
        data = _read(path, "data", (slice(None), slice(None), slice(None), BROADBAND))
        return data, ratings

    def _read_subject(self, subject: str) -> SubjectRecording:
        """All stimuli of one subject; EEG ``(32, n_times)`` per trial."""
        self._check_subject(subject)
        data, ratings = self._load(subject)
        trials = [Trial(
            eeg=np.ascontiguousarray(data[:, :, k].T), sfreq=SFREQ, ch_names=list(FACED32),
            dataset="thu-ep", subject=subject, session=1, trial=k + 1,
            stimulus=f"video{k + 1:02d}",
            ratings={name: float(ratings[i, k]) for i, name in enumerate(RATINGS)},
        ) for k in range(data.shape[2])]
        return SubjectRecording("thu-ep", subject, trials, {
            "file": str(self.path(subject)), "ratings_file": str(self.root / RATINGS_FILE)})


def _read(path: Path, variable: str, index: tuple) -> np.ndarray:
    try:
        with open_mat73(path) as f:
            return np.asarray(f[variable][index], dtype=np.float64)
    except (OSError, ValueError) as err:  # damaged chunks surface only when read
        raise DatasetError(f"{path}: cannot read variable {variable!r} ({err})") from err
