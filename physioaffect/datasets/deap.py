"""Reader of DEAP's ``data_preprocessed_python/`` folder (``s01.dat`` ... ``s32.dat``).

Each file is a Python 2 pickle of ``{"data": (40, 40, 8064), "labels": (40, 4)}`` (128 Hz,
3 s pre-trial baseline then 60 s). It is read with the restricted unpickler of
:mod:`physioaffect.datasets.safe_pickle`. Trials in the preprocessed files are in video order
(DEAP's ``Experiment_id``), so trial ``k`` shows the same music video to every subject: the
stimulus id is ``video01`` ... ``video40``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from physioaffect.datasets.base import (
    DatasetError,
    DatasetReader,
    Signal,
    SubjectRecording,
    Trial,
    check_ratings,
    dataset_hint,
    matching_files,
    numbered_subjects,
    numeric_array,
    rating_names,
    warn_nonfinite,
)
from physioaffect.datasets.montages import DEAP32, DEAP_PERIPHERAL
from physioaffect.datasets.safe_pickle import check_pickle_file, safe_load

SFREQ = 128.0
BASELINE_SAMPLES = 384  # 3 s at 128 Hz
N_CHANNELS = 40
RATINGS = ("valence", "arousal", "dominance", "liking")
#: DEAP's self-assessment manikins: continuous 1-9.
RATING_RANGE = (1.0, 9.0)
_FILE = re.compile(r"^s(\d{2})\.dat$")
# Peripheral groups: name -> (channel indices, unit). DEAP's preprocessed files do not state
# units for GSR/respiration/plethysmograph/temperature; they are given as recorded (a.u.).
PERIPHERAL = {
    "EOG": ((32, 33), "uV"),
    "EMG": ((34, 35), "uV"),
    "GSR": ((36,), "a.u."),
    "RESP": ((37,), "a.u."),
    "PPG": ((38,), "a.u."),
    "TEMP": ((39,), "a.u."),
}


class DEAPReader(DatasetReader):
    """DEAP preprocessed Python files.

    Parameters
    ----------
    root : path
        The ``data_preprocessed_python`` folder.
    validate : bool
        Check names, pickle headers and completeness of every file at construction.
    expected_subjects : int, optional
        Require exactly this many subjects (32 for the real dataset).
    face : path, optional
        DEAP's face videos (``face_video/``, participants 1-22) or per-trial face-feature CSVs
        (see :mod:`physioaffect.datasets.face`). Files named ``sNN_trialMM`` are numbered in
        presentation order, as DEAP's face videos are; they are matched with the preprocessed
        trials (video order) through DEAP's ``participant_ratings.csv``. Files named
        ``sNN_videoMM`` are matched by video id directly.
    face_trial_order : path, optional
        DEAP's ``participant_ratings.csv`` (``Participant_id, Trial, Experiment_id``). Default:
        looked for beside the face folder and the dataset folder (and in ``metadata_csv/``).
    face_options : dict, optional
        See :class:`~physioaffect.datasets.face.FaceFolder`.
    """

    name = "deap"
    rating_names = RATINGS

    def __init__(self, root: str | Path, *, validate: bool = True,
                 expected_subjects: int | None = None, face: str | Path | None = None,
                 face_trial_order: str | Path | None = None,
                 face_options: dict | None = None) -> None:
        self.expected_subjects = expected_subjects
        super().__init__(root, validate=validate, face=face, face_options=face_options)
        self._video_to_trial: dict[tuple[int, int], int] = {}
        if self.face is not None:
            self._load_face_order(face_trial_order)

    def _load_face_order(self, order: str | Path | None) -> None:
        from physioaffect.datasets.face import read_deap_trial_order

        numbered = any(k.trial is not None for f in self.face.files.values() for k in f)
        if order is None:
            places = [self.face.root, self.face.root.parent, self.root, self.root.parent]
            found = [d / sub / "participant_ratings.csv" for d in places
                     for sub in ("", "metadata_csv")]
            order = next((p for p in found if p.is_file()), None)
        if order is None:
            if numbered:
                raise DatasetError(
                    f"{self.face.root}: DEAP face files named sNN_trialMM are numbered in "
                    "presentation order, the preprocessed trials in video order: give DEAP's "
                    "participant_ratings.csv (--face-trial-order) to match them, or name the "
                    "files sNN_videoMM")
            return
        presentation = read_deap_trial_order(order)
        self._video_to_trial = {(p, e): t for (p, t), e in presentation.items()}

    def _face_file(self, trial: Trial, single_session: bool) -> Path | None:
        by_video = self.face.find(trial.subject, session=None, trial=None,
                                  stimulus=trial.stimulus)
        if by_video is not None or not self._video_to_trial:
            return by_video
        shown_as = self._video_to_trial.get((int(trial.subject[1:]), trial.trial))
        if shown_as is None:
            return None
        return self.face.find(trial.subject, session=None, trial=shown_as, stimulus=None)

    def _discover(self) -> list[str]:
        found = {int(m.group(1)): p.name[:-4] for m, p in matching_files(self.root, _FILE)}
        if not found:
            raise DatasetError(f"{self.root}: no DEAP files s01.dat ... s32.dat here{dataset_hint(self.root)}")
        return numbered_subjects(found, self.root, lambda i: f"s{i:02d}.dat",
                                 last=self.expected_subjects)

    def path(self, subject: str) -> Path:
        return self.root / f"{subject}.dat"

    def files(self) -> list[Path]:
        return [self.path(s) for s in self.subjects]

    def validate(self, deep: bool = False) -> None:
        """Cheap checks of every file; ``deep=True`` also unpickles each and checks shapes."""
        for s in self.subjects:
            check_pickle_file(self.path(s), "a protocol-2 pickle of a dict")
            if deep:
                data, _ = self._load(s)
                warn_nonfinite(data, str(self.path(s)), "data")

    def _load(self, subject: str) -> tuple[np.ndarray, np.ndarray]:
        p = self.path(subject)
        obj = safe_load(p, encoding="bytes")
        if isinstance(obj, dict):  # Python 2 str keys arrive as bytes with encoding="bytes"
            obj = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
        if not isinstance(obj, dict) or "data" not in obj or "labels" not in obj:
            keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise DatasetError(f"{p}: expected a dict with 'data' and 'labels', found {keys}")
        data, labels = obj["data"], obj["labels"]
        data = numeric_array(data, str(p), "data", "trials x 40 channels x samples")
        if data.ndim != 3 or data.shape[1] != N_CHANNELS:
            raise DatasetError(f"{p}: 'data' must be trials x 40 channels x samples, "
                               f"found {getattr(data, 'shape', type(data).__name__)}")
        if data.shape[2] <= BASELINE_SAMPLES:
            raise DatasetError(f"{p}: 'data' has {data.shape[2]} samples per trial, "
                               f"expected more than the {BASELINE_SAMPLES}-sample baseline (8064)")
        if not isinstance(labels, np.ndarray) or labels.shape != (data.shape[0], 4):
            raise DatasetError(f"{p}: 'labels' must be {data.shape[0]} x 4 (valence, arousal, "
                               f"dominance, liking), found {getattr(labels, 'shape', None)}")
        labels = check_ratings(labels, str(p), "labels", *RATING_RANGE,
                               "DEAP's 1-9 self-assessment ratings", rating_names(RATINGS))
        return data, labels

    def _read_subject(self, subject: str) -> SubjectRecording:
        """All 40 trials of one subject; arrays are views into the file's data array."""
        self._check_subject(subject)
        data, labels = self._load(subject)
        trials = []
        for t in range(data.shape[0]):
            per, per_b = {}, {}
            for name, (idx, unit) in PERIPHERAL.items():
                sl = slice(idx[0], idx[-1] + 1)
                names = [DEAP_PERIPHERAL[i - 32] for i in idx]
                per[name] = Signal(data[t, sl, BASELINE_SAMPLES:], SFREQ, unit, names)
                per_b[name] = Signal(data[t, sl, :BASELINE_SAMPLES], SFREQ, unit, names)
            trials.append(Trial(
                eeg=data[t, :32, BASELINE_SAMPLES:], sfreq=SFREQ, ch_names=list(DEAP32),
                dataset="deap", subject=subject, session=1, trial=t + 1,
                stimulus=f"video{t + 1:02d}",
                ratings={k: float(labels[t, i]) for i, k in enumerate(RATINGS)},
                baseline=data[t, :32, :BASELINE_SAMPLES],
                peripheral=per, peripheral_baseline=per_b,
            ))
        return SubjectRecording("deap", subject, trials, {"file": str(self.path(subject))})
