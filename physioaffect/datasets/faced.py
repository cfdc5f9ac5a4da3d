"""Reader of FACED (Chen et al., Scientific Data 2023; CC-BY 4.0), the processed release.

Layout (``root`` is the FACED folder)::

    Processed_data/sub000.pkl ... sub122.pkl   one pickled float64 ndarray (28, 32, 7500) each
    Rating/subNNN/After_remarks.mat            ratings (EmT's layout; FACED ships the same file
                                               as Data/subNNN/After_remarks.mat and in Code.zip
                                               as After_remarks/subNNN/, both looked for too)

- ``Processed_data``: 28 clips x 32 channels x 30 s at 250 Hz, microvolts (FACED's
  preprocessing scales every subject to uV, band-passes 0.05-47 Hz, interpolates bad channels,
  removes ocular ICA components and re-references to the common average). The clips are in
  *video-index* order (FACED's ``Stimuli_info.xlsx``): trial ``k`` is video ``k``, the same
  clip for every subject (stimulus id ``video01`` ... ``video28``). Read with the package's
  restricted unpickler: the pickle may only rebuild numpy arrays.
- ``After_remarks.mat`` (MATLAB v5/v7): struct array ``After_remark`` (28 x 1) with fields
  ``score, trial, vid, Accuracy, ResponseTime`` in *presentation* order; ``score`` holds 12
  ratings on a 0-7 scale, ``vid`` the video index of that presentation. Ratings are joined to the
  EEG through ``vid``, never by position (positions differ per subject). EmT's official loader
  pairs them by position; this reader does not.
- Rating names: arousal, valence, familiarity and liking are items 9-12 (0-based 8-11) in every
  description. The first eight are emotion items; FACED's README lists them as joy, tenderness,
  inspiration, amusement, anger, disgust, fear, sadness (used here), EmT's code comment as anger,
  disgust, fear, sadness, amusement, joy, inspiration, tenderness.
- Channels (``faced32``): Fp1 Fp2 Fz F3 F4 F7 F8 FC1 FC2 FC5 FC6 Cz C3 C4 T7 T8 A1 A2 CP1 CP2
  CP5 CP6 Pz P3 P4 P7 P8 PO3 PO4 Oz O1 O2.

EmT's binary labels: ``<= 3 -> 0``, else 1 (label rule ``emt_gt3``).
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
from physioaffect.datasets.matfile import check_mat, load_mat
from physioaffect.datasets.montages import FACED32
from physioaffect.datasets.safe_pickle import check_pickle_file, safe_load

SFREQ = 250.0
#: The 12 items of ``After_remark(i).score``, in order (FACED's README).
RATINGS = ("joy", "tenderness", "inspiration", "amusement", "anger", "disgust", "fear",
           "sadness", "arousal", "valence", "familiarity", "liking")
REMARK_FIELDS = ("score", "trial", "vid", "Accuracy", "ResponseTime")
#: FACED's ratings: integers on a 0-7 scale.
RATING_RANGE = (0.0, 7.0)
#: Folders holding ``subNNN/After_remarks.mat``, first found wins (EmT's layout first).
RATING_FOLDERS = ("Rating", "Data", "After_remarks")
_FILE = re.compile(r"^sub(\d{3})\.pkl$")


class FACEDReader(DatasetReader):
    """FACED processed EEG with the per-clip self-reports.

    Parameters
    ----------
    root : path
        The FACED folder (holding ``Processed_data`` and ``Rating`` or ``Data``).
    validate : bool
        Cheap checks at construction: file names without gaps, a rating file per subject,
        pickle header and STOP byte, MATLAB completeness and the ``After_remark`` variable.
    """

    name = "faced"
    rating_names = RATINGS
    has_baseline = False

    def _discover(self) -> list[str]:
        data = self.root / "Processed_data"
        if not data.is_dir():
            from physioaffect.datasets.base import dataset_hint

            raise DatasetError(f"{self.root}: no Processed_data folder (expected FACED's "
                               f"Processed_data/subNNN.pkl){dataset_hint(self.root)}")
        found = {int(m.group(1)): p.stem for m, p in matching_files(data, _FILE)}
        if not found:
            raise DatasetError(f"{data}: no FACED files sub000.pkl ... sub122.pkl here")
        subjects = numbered_subjects(found, data, lambda i: f"sub{i:03d}.pkl", first=0)
        self._ratings = {s: self._rating_file(s) for s in subjects}
        return subjects

    def _rating_file(self, subject: str) -> Path:
        for folder in RATING_FOLDERS:
            p = self.root / folder / subject / "After_remarks.mat"
            if p.is_file():
                return p
            if p.is_symlink() or p.exists():  # there, but a link loop, a folder ...
                raise DatasetError(f"{p}: {file_problem(p)}")
        first = self.root / RATING_FOLDERS[0] / subject / "After_remarks.mat"
        others = ", ".join(f"{f}/{subject}/" for f in RATING_FOLDERS[1:])
        raise DatasetError(f"{first}: missing (FACED's ratings of {subject}; also looked in "
                           f"{others})")

    def path(self, subject: str) -> Path:
        return self.root / "Processed_data" / f"{subject}.pkl"

    def files(self) -> list[Path]:
        return [p for s in self.subjects for p in (self.path(s), self._ratings[s])]

    def validate(self, deep: bool = False) -> None:
        """Cheap checks of every file; ``deep=True`` also loads each and checks shapes."""
        from scipy.io import whosmat

        for s in self.subjects:
            check_pickle_file(self.path(s), "a pickled numpy array")
            r = self._ratings[s]
            check_mat(r)
            try:
                names = [n for n, _, _ in whosmat(r)]
            except Exception as err:  # scipy raises several types on damaged headers
                raise DatasetError(f"{r}: cannot read MATLAB file ({err})") from err
            if "After_remark" not in names:
                raise DatasetError(f"{r}: no variable 'After_remark' (found "
                                   f"{', '.join(names) or 'none'})")
            if deep:
                data, _, _ = self._load(s)
                warn_nonfinite(data, str(self.path(s)), "data")

    def _scores(self, subject: str, n_trials: int) -> tuple[np.ndarray, list[int]]:
        """Ratings ``(n_trials, 12)`` in video order and the presentation order of the videos."""
        p = self._ratings[subject]
        remark = load_mat(p, squeeze_me=False, struct_as_record=True).get("After_remark")
        if remark is None or remark.dtype.names is None:
            raise DatasetError(f"{p}: 'After_remark' must be a struct array with field 'score'")
        if "score" not in remark.dtype.names:
            raise DatasetError(f"{p}: struct 'After_remark' lacks field 'score' (has "
                               f"{', '.join(remark.dtype.names)})")
        elems = remark.ravel()
        if elems.size != n_trials:
            raise DatasetError(f"{p}: 'After_remark' has {elems.size} elements, "
                               f"{self.path(subject).name} has {n_trials} trials")
        scores = np.full((n_trials, len(RATINGS)), np.nan)
        if "vid" in remark.dtype.names:
            vids = []
            for i, e in enumerate(elems):
                v = np.asarray(e["vid"], dtype=float).ravel()
                if v.size != 1 or v[0] != round(v[0]) or not 1 <= v[0] <= n_trials:
                    raise DatasetError(f"{p}: After_remark({i + 1}).vid is {v.tolist()}, "
                                       f"expected one video index in 1..{n_trials}")
                vids.append(int(v[0]))
            if sorted(vids) != list(range(1, n_trials + 1)):
                dup = sorted({v for v in vids if vids.count(v) > 1})
                raise DatasetError(f"{p}: field 'vid' repeats video(s) {dup}; expected each of "
                                   f"1..{n_trials} once")
        else:  # no video index: the elements are taken in video order (EmT's assumption)
            vids = list(range(1, n_trials + 1))
        for i, e in enumerate(elems):
            sc = check_ratings(np.asarray(e["score"]).ravel(), str(p),
                               f"After_remark({i + 1}).score", *RATING_RANGE,
                               "FACED's 0-7 ratings", lambda idx: f"item {idx[0] + 1}")
            if sc.size == 0:
                continue  # no rating for this clip: NaN (dropped and counted by labels)
            if sc.size != len(RATINGS):
                raise DatasetError(f"{p}: After_remark({i + 1}).score has {sc.size} values, "
                                   f"expected {len(RATINGS)} ratings")
            scores[vids[i] - 1] = sc
        return scores, vids

    def _load(self, subject: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
        p = self.path(subject)
        data = safe_load(p)
        if not isinstance(data, np.ndarray) or data.ndim != 3 or data.shape[1] != len(FACED32):
            raise DatasetError(f"{p}: expected an array of trials x {len(FACED32)} channels x "
                               f"samples, found {getattr(data, 'shape', type(data).__name__)}")
        if not np.issubdtype(data.dtype, np.floating):
            raise DatasetError(f"{p}: expected a float array, found dtype {data.dtype}")
        scores, vids = self._scores(subject, data.shape[0])
        return data, scores, vids

    def _read_subject(self, subject: str) -> SubjectRecording:
        """All clips of one subject in video order; EEG arrays are views into the file's array."""
        self._check_subject(subject)
        data, scores, vids = self._load(subject)
        trials = [Trial(
            eeg=data[k], sfreq=SFREQ, ch_names=list(FACED32), dataset="faced", subject=subject,
            session=1, trial=k + 1, stimulus=f"video{k + 1:02d}",
            ratings={name: float(scores[k, i]) for i, name in enumerate(RATINGS)},
        ) for k in range(data.shape[0])]
        return SubjectRecording("faced", subject, trials, {
            "file": str(self.path(subject)), "ratings_file": str(self._ratings[subject]),
            "presentation_order": vids})
