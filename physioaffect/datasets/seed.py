"""Reader of SEED's ``Preprocessed_EEG/`` folder.

45 files ``{subject}_{YYYYMMDD}.mat`` (15 subjects x 3 sessions, variables ``<prefix>_eeg1`` ...
``<prefix>_eeg15``, 62 x N doubles at 200 Hz), ``label.mat`` (``label``, 1 x 15 of 1/0/-1) and
``readme.txt``. Subjects are ordered by number and sessions by date (never by text order);
trial numbers come from the numeric suffix of the variable name; other files are ignored.
The same 15 clips are shown in every session to every subject: stimulus id ``clip01`` ...
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
    file_problem,
    matching_files,
    numeric_array,
    warn_nonfinite,
)
from physioaffect.datasets.matfile import check_mat, load_mat
from physioaffect.datasets.montages import SEED62

SFREQ = 200.0
_FILE = re.compile(r"^(\d+)_(\d{8})\.mat$")
_VAR = re.compile(r"^([A-Za-z]+)_eeg(\d+)$")


class SEEDReader(DatasetReader):
    """SEED preprocessed EEG (``emotion`` rating: 1 positive, 0 neutral, -1 negative).

    Parameters
    ----------
    root : path
        The ``Preprocessed_EEG`` folder.
    validate : bool
        Check file names, ``label.mat``, variable names and shapes (from the file headers,
        without loading the data) and file completeness at construction.
    """

    name = "seed"
    rating_names = ("emotion",)
    has_baseline = False

    def _discover(self) -> list[str]:
        sessions: dict[int, list[tuple[str, str]]] = {}
        for m, p in matching_files(self.root, _FILE):
            sessions.setdefault(int(m.group(1)), []).append((m.group(2), p.name))
        if not sessions:
            from physioaffect.datasets.base import dataset_hint

            raise DatasetError(f"{self.root}: no SEED files {{subject}}_{{YYYYMMDD}}.mat here"
                               f"{dataset_hint(self.root)}")
        label = self.root / "label.mat"
        if not label.is_file():
            why = file_problem(label) if label.is_symlink() or label.exists() else None
            raise DatasetError(f"{label}: {why or 'missing'} (SEED's labels, variable 'label')")
        n = max(sessions)
        missing = [str(i) for i in range(1, n + 1) if i not in sessions]
        if missing:
            raise DatasetError(f"{self.root}: missing subject(s) {', '.join(missing)} "
                               f"(expected files 1_*.mat ... {n}_*.mat)")
        # Sessions by date (text order of YYYYMMDD is chronological).
        self._sessions = {str(s): [name for _, name in sorted(v)] for s, v in sessions.items()}
        return [str(s) for s in sorted(sessions)]

    def files(self) -> list[Path]:
        out = [self.root / "label.mat"]
        for s in self.subjects:
            out += [self.root / n for n in self._sessions[s]]
        return out

    def labels(self) -> np.ndarray:
        """The 15 trial labels from ``label.mat`` as floats (1, 0, -1)."""
        p = self.root / "label.mat"
        check_mat(p)
        mat = load_mat(p)
        if "label" not in mat:
            raise DatasetError(f"{p}: no variable 'label' (found {_user_vars(mat)})")
        lab = np.asarray(numeric_array(mat["label"], str(p), "label", "1 x 15 of 1, 0, -1"),
                         dtype=float)
        if lab.ndim != 2 or lab.shape[0] != 1:
            raise DatasetError(f"{p}: 'label' must be 1 x 15, found {lab.shape}")
        odd = [v for v in lab[0] if v not in (-1.0, 0.0, 1.0)]
        if odd:
            raise DatasetError(f"{p}: 'label' holds {odd[0]:g}; expected SEED's emotion labels "
                               "1 (positive), 0 (neutral), -1 (negative)")
        return lab[0]

    def _trial_vars(self, path: Path, n_labels: int) -> list[tuple[int, str, tuple[int, int]]]:
        from scipy.io import whosmat

        check_mat(path)
        try:
            entries = whosmat(path)
        except Exception as err:  # scipy raises several types on damaged headers
            raise DatasetError(f"{path}: cannot read MATLAB file ({err})") from err
        trials, prefixes = [], set()
        for name, shape, _cls in entries:
            m = _VAR.match(name)
            if not m:
                continue  # e.g. __header__ or other variables: ignored
            prefixes.add(m.group(1))
            trials.append((int(m.group(2)), name, tuple(shape)))
        if not trials:
            raise DatasetError(f"{path}: no variables named <prefix>_eeg1 ... <prefix>_eeg15 "
                               f"(found {', '.join(n for n, _, _ in entries) or 'none'})")
        if len(prefixes) > 1:
            raise DatasetError(f"{path}: mixed variable prefixes {sorted(prefixes)}; expected one")
        trials.sort()
        numbers = [k for k, _, _ in trials]
        if numbers != list(range(1, len(numbers) + 1)) or len(numbers) > n_labels:
            raise DatasetError(f"{path}: trial variables numbered {numbers}, expected 1 ... "
                               f"{n_labels} without gaps (label.mat has {n_labels} labels)")
        for _k, name, shape in trials:
            if len(shape) != 2 or shape[0] != 62:
                raise DatasetError(f"{path}: variable {name} has shape {shape}, expected 62 x N")
        return trials

    def validate(self, deep: bool = False) -> None:
        n_labels = len(self.labels())
        for s in self.subjects:
            for name in self._sessions[s]:
                tv = self._trial_vars(self.root / name, n_labels)
                if deep:
                    mat = load_mat(self.root / name)
                    for _, var, _ in tv:
                        x = numeric_array(mat[var], str(self.root / name), var, "62 x N")
                        warn_nonfinite(x, str(self.root / name), var)

    def _read_subject(self, subject: str) -> SubjectRecording:
        """All sessions of one subject (session 1 = earliest date), trials by numeric suffix."""
        self._check_subject(subject)
        labels = self.labels()
        trials = []
        for sess, name in enumerate(self._sessions[subject], start=1):
            path = self.root / name
            tv = self._trial_vars(path, len(labels))
            mat = load_mat(path, variable_names=[v for _, v, _ in tv])
            for k, var, _shape in tv:
                trials.append(Trial(
                    eeg=numeric_array(mat[var], str(path), var, "62 x N"), sfreq=SFREQ,
                    ch_names=list(SEED62),
                    dataset="seed", subject=subject, session=sess, trial=k,
                    stimulus=f"clip{k:02d}", ratings={"emotion": float(labels[k - 1])},
                ))
        return SubjectRecording("seed", subject, trials,
                                {"files": [str(self.root / n) for n in self._sessions[subject]]})


def _user_vars(mat: dict) -> str:
    return ", ".join(k for k in mat if not k.startswith("__")) or "none"
