"""Reader of ``DREAMER.mat`` (23 subjects x 18 film clips, 14-channel Emotiv EEG at 128 Hz and
2-lead ECG at 256 Hz, valence/arousal/dominance scores 1-5).

The file is one MATLAB struct ``DREAMER``; it is loaded once (about 450 MB for the real file)
and its nesting is checked entirely before any subject is processed. Each trial gets its own
61 s pre-clip baseline (EEG and ECG). The EEG is as recorded by the Emotiv EPOC (microvolts
with the headset's DC offset of about 4200 uV); the ECG unit is not stated by the dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from physioaffect.datasets.base import (
    DatasetError,
    DatasetReader,
    Signal,
    SubjectRecording,
    Trial,
    check_ratings,
    file_problem,
    numeric_array,
    warn_nonfinite,
)
from physioaffect.datasets.matfile import check_mat, load_mat
from physioaffect.datasets.montages import DREAMER14

TOP_FIELDS = ("Data", "EEG_SamplingRate", "ECG_SamplingRate", "EEG_Electrodes", "noOfSubjects",
              "noOfVideoSequences")
SUBJECT_FIELDS = ("Age", "Gender", "EEG", "ECG", "ScoreValence", "ScoreArousal", "ScoreDominance")
RATINGS = {"valence": "ScoreValence", "arousal": "ScoreArousal", "dominance": "ScoreDominance"}
#: DREAMER's self-assessment scores: integers 1-5.
RATING_RANGE = (1.0, 5.0)


class DREAMERReader(DatasetReader):
    """DREAMER (``root`` is the folder holding ``DREAMER.mat`` or the file itself)."""

    name = "dreamer"
    rating_names = tuple(RATINGS)

    def __init__(self, root: str | Path, *, validate: bool = True, **face) -> None:
        root = Path(root)
        self.file = root if root.suffix == ".mat" else root / "DREAMER.mat"
        self._top: Any = None
        super().__init__(root if root.suffix != ".mat" else root.parent, validate=validate, **face)

    def files(self) -> list[Path]:
        return [self.file]

    def _discover(self) -> list[str]:
        if not self.file.is_file():
            from physioaffect.datasets.base import dataset_hint

            if self.file.is_symlink() or self.file.exists():
                raise DatasetError(f"{self.file}: {file_problem(self.file)}")
            raise DatasetError(f"{self.file}: missing (expected DREAMER.mat){dataset_hint(self.root)}")
        check_mat(self.file)
        from scipy.io import whosmat

        names = [n for n, _, _ in whosmat(self.file)]
        if "DREAMER" not in names:
            raise DatasetError(f"{self.file}: no variable 'DREAMER' (found {', '.join(names)})")
        top = self._load()
        return [str(i + 1) for i in range(top["Data"].shape[1])]

    def _load(self) -> Any:
        if self._top is None:
            mat = load_mat(self.file, squeeze_me=False, struct_as_record=True)
            top = mat["DREAMER"]
            if top.dtype.names is None:
                raise DatasetError(f"{self.file}: 'DREAMER' is not a struct")
            top = top[0, 0]
            missing = [f for f in TOP_FIELDS if f not in top.dtype.names]
            if missing:
                raise DatasetError(f"{self.file}: struct DREAMER lacks field(s) {', '.join(missing)}")
            self._top = top
            self.eeg_sfreq = float(np.asarray(top["EEG_SamplingRate"]).ravel()[0])
            self.ecg_sfreq = float(np.asarray(top["ECG_SamplingRate"]).ravel()[0])
            self.electrodes = [str(np.asarray(e).ravel()[0]) for e in top["EEG_Electrodes"].ravel()]
            if self.electrodes != list(DREAMER14):
                raise DatasetError(f"{self.file}: DREAMER.EEG_Electrodes is {self.electrodes}, "
                                   f"expected {list(DREAMER14)}")
        return self._top

    def _subject_struct(self, i: int) -> Any:
        data = self._load()["Data"]
        s = data[0, i]
        where = f"{self.file}: DREAMER.Data{{{i + 1}}}"
        if getattr(s, "dtype", None) is None or s.dtype.names is None:
            raise DatasetError(f"{where} is not a struct")
        missing = [f for f in SUBJECT_FIELDS if f not in s.dtype.names]
        if missing:
            raise DatasetError(f"{where} lacks field(s) {', '.join(missing)}")
        return s[0, 0]

    def _cells(self, s: Any, i: int, sig: str, part: str, n_ch: int) -> list[np.ndarray]:
        where = f"{self.file}: DREAMER.Data{{{i + 1}}}.{sig}.{part}"
        st = s[sig]
        if st.dtype.names is None or part not in st.dtype.names:
            raise DatasetError(f"{self.file}: DREAMER.Data{{{i + 1}}}.{sig} lacks field {part!r}")
        cells = st[0, 0][part]
        out = []
        for k in range(cells.shape[0]):
            a = numeric_array(np.asarray(cells[k, 0]), str(self.file),
                              f"DREAMER.Data{{{i + 1}}}.{sig}.{part}{{{k + 1}}}", f"time x {n_ch}")
            if a.ndim != 2 or a.shape[1] != n_ch:
                raise DatasetError(f"{where}{{{k + 1}}} has shape {a.shape}, expected time x {n_ch}")
            out.append(a)
        return out

    def validate(self, deep: bool = False) -> None:
        """Check the whole nesting of every subject (the file is in memory already)."""
        n_video = int(np.asarray(self._load()["noOfVideoSequences"]).ravel()[0])
        for i in range(len(self.subjects)):
            s = self._subject_struct(i)
            for sig, n_ch in (("EEG", 14), ("ECG", 2)):
                for part in ("baseline", "stimuli"):
                    cells = self._cells(s, i, sig, part, n_ch)
                    if len(cells) != n_video:
                        raise DatasetError(f"{self.file}: DREAMER.Data{{{i + 1}}}.{sig}.{part} has "
                                           f"{len(cells)} cells, expected {n_video}")
            for f in RATINGS.values():
                if np.asarray(s[f]).size != n_video:
                    raise DatasetError(f"{self.file}: DREAMER.Data{{{i + 1}}}.{f} has "
                                       f"{np.asarray(s[f]).size} scores, expected {n_video}")
            self._scores(s, i)
            if deep:
                for sig, n_ch in (("EEG", 14), ("ECG", 2)):
                    for k, a in enumerate(self._cells(s, i, sig, "stimuli", n_ch)):
                        warn_nonfinite(a, str(self.file),
                                       f"DREAMER.Data{{{i + 1}}}.{sig}.stimuli{{{k + 1}}}")

    def _scores(self, s: Any, i: int) -> dict[str, np.ndarray]:
        """The three score vectors of subject ``i``, checked to be numbers in 1-5."""
        return {k: check_ratings(np.asarray(s[f]).ravel(), str(self.file),
                                 f"DREAMER.Data{{{i + 1}}}.{f}", *RATING_RANGE,
                                 "DREAMER's 1-5 self-assessment scores",
                                 lambda idx: f"clip {idx[0] + 1}")
                for k, f in RATINGS.items()}

    def _read_subject(self, subject: str) -> SubjectRecording:
        """All 18 clips of one subject; EEG (14, n) uV, ECG (2, 2n) at 256 Hz."""
        self._check_subject(subject)
        i = int(subject) - 1
        s = self._subject_struct(i)
        eeg_b = self._cells(s, i, "EEG", "baseline", 14)
        eeg_s = self._cells(s, i, "EEG", "stimuli", 14)
        ecg_b = self._cells(s, i, "ECG", "baseline", 2)
        ecg_s = self._cells(s, i, "ECG", "stimuli", 2)
        scores = self._scores(s, i)
        ecg_names = ["ECG1", "ECG2"]
        trials = []
        for k in range(len(eeg_s)):
            trials.append(Trial(
                eeg=eeg_s[k].T, sfreq=self.eeg_sfreq, ch_names=list(DREAMER14),
                dataset="dreamer", subject=subject, session=1, trial=k + 1,
                stimulus=f"clip{k + 1:02d}",
                ratings={name: float(v[k]) for name, v in scores.items()},
                baseline=eeg_b[k].T,
                peripheral={"ECG": Signal(ecg_s[k].T, self.ecg_sfreq, "a.u.", ecg_names)},
                peripheral_baseline={"ECG": Signal(ecg_b[k].T, self.ecg_sfreq, "a.u.", ecg_names)},
            ))
        info = {"age": _text(s["Age"]), "gender": _text(s["Gender"])}
        return SubjectRecording("dreamer", subject, trials, info)


def _text(v: Any) -> str:
    a = np.asarray(v).ravel()
    return str(a[0]) if a.size else ""
