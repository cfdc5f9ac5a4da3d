"""Evaluation protocols as objects that yield leakage-free folds, and a checker for any fold list.

Every protocol is also a scikit-learn cross-validator (a ``BaseCrossValidator`` that requests
``groups`` for ``split`` under metadata routing, as ``LeaveOneGroupOut`` does):
``cross_val_score(est, X, y, groups=subjects, cv=LOSO())``, or with
``sklearn.set_config(enable_metadata_routing=True)``
``cross_val_score(est, X, y, params={"groups": subjects}, cv=LOSO())``.

A :class:`Fold` holds three disjoint sets of *trial keys* (``"subject|session|trial"``):
windows are assigned to train/val/test through the trial they come from, so the windows of one
trial can never straddle two parts. Protocols build folds by construction so that

- cross-subject protocols: a test subject contributes nothing to train or validation, and
  validation subjects are drawn from the training subjects (held out of training);
- within-subject protocols: trials, not windows, are split;
- leave-stimuli-out: a test stimulus is never seen in train or validation;
- normalisation statistics come from training windows only (:class:`FoldNormaliser`).

:func:`check_folds` verifies these properties for *any* fold list (yours, a paper's, the
training helper's) and raises :class:`LeakageError` listing what leaks.

Validation parts are held-out *training* subjects (trials, stimuli): a protocol keeps
``n_val_subjects`` of them only while at least one training subject remains; where fewer are
left (``LeaveKSubjectsOut(2)`` on 3 subjects: one remains after the test pair) the fold has
fewer or no validation subjects (``fold.info["val_subjects"]``), never no training subject.

Protocols: :class:`LOSO`, :class:`LeaveKSubjectsOut` (``k`` test subjects per fold),
:class:`SubjectKFold` (grouped k-fold over subjects, ``n_splits`` folds), :class:`LeaveStimuliOut`, :class:`SeedWithinSubject` (SEED's first 9 trials
train / last 6 test, per subject and session), :class:`WithinSubjectKFold` (trial-grouped
k-fold inside each subject). ``get_protocol(name, **kw)`` builds one by name.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator

from physioaffect.datasets.base import DatasetError, natural_key
from physioaffect.preprocessing.standardise import Standardiser


class LeakageError(DatasetError):
    """A fold list breaks an evaluation rule (see :func:`check_folds`)."""


def trial_keys(meta: pd.DataFrame) -> np.ndarray:
    """``"subject|session|trial"`` of every window (object array)."""
    for c in ("subject", "session", "trial"):
        if c not in meta.columns:
            raise DatasetError(f"meta: column {c!r} missing (needs subject, session, trial)")
    return (meta["subject"].astype(str) + "|" + meta["session"].astype(str) + "|"
            + meta["trial"].astype(str)).to_numpy()


def _subject_of(key: str) -> str:
    return key.split("|", 1)[0]


@dataclass(frozen=True)
class Fold:
    """One split of trials into train / val / test.

    Attributes
    ----------
    name : str
    train, val, test : frozenset of str
        Trial keys (``subject|session|trial``).
    kind : {"cross_subject", "within_subject"}
        Cross-subject folds must not share subjects between parts.
    stimulus_disjoint : bool
        Leave-stimuli-out folds must not share stimuli between test and train/val.
    """

    name: str
    train: frozenset
    val: frozenset
    test: frozenset
    kind: str = "cross_subject"
    stimulus_disjoint: bool = False
    info: dict = field(default_factory=dict, compare=False)

    def subjects(self, part: str) -> list[str]:
        return sorted({_subject_of(k) for k in getattr(self, part)}, key=natural_key)

    def masks(self, meta: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boolean (train, val, test) masks over the windows of ``meta``."""
        keys = trial_keys(meta)
        return (np.isin(keys, list(self.train)), np.isin(keys, list(self.val)),
                np.isin(keys, list(self.test)))


def _trials_by_subject(meta: pd.DataFrame) -> dict[str, list[str]]:
    keys = pd.unique(trial_keys(meta))
    out: dict[str, list[str]] = {}
    for k in keys:
        out.setdefault(_subject_of(k), []).append(k)
    return dict(sorted(out.items(), key=lambda kv: natural_key(kv[0])))


def n_validation(requested: int, available: int) -> int:
    """How many of ``available`` held-out candidates go to validation: up to ``requested``,
    always leaving one for training (0 when only one is available)."""
    return max(0, min(int(requested), available - 1))


class Protocol(BaseCrossValidator):
    """Base of the protocols: leakage-free :class:`Fold` objects, and a scikit-learn splitter.

    Two faces of one split:

    - ``folds(meta)``: the list of :class:`Fold` (train / val / test trial keys), checked by
      :func:`check_folds`; ``fold.masks(meta)`` gives window masks. The training code uses this.
    - ``split(X, y=None, groups=None)`` / ``get_n_splits(X, y, groups)``: scikit-learn's CV
      splitter interface, so ``cross_val_score(est, X, y, groups=subjects, cv=LOSO())`` and
      ``GridSearchCV(..., cv=LOSO())`` work. It yields ``(train, test)`` row indices of the same
      checked folds; the validation part (held-out *training* subjects or trials, never test
      ones) joins the training indices, since scikit-learn knows only two parts. Under
      metadata routing (``sklearn.set_config(enable_metadata_routing=True)``) the splitter
      requests ``groups`` (``params={"groups": subjects}``), like scikit-learn's group
      splitters; the estimator gets them too only if it asks
      (``est.set_fit_request(groups=True)``).

    ``groups`` says which window belongs to whom: a 1-D array of subject ids (one per row of
    ``X``), or a DataFrame with ``subject`` and, where a protocol needs them, ``session``,
    ``trial`` (within-subject protocols, so that the windows of one trial stay together) and
    ``stimulus`` (leave-stimuli-out): the ``meta`` of a window set, row-aligned with ``X``.
    """

    name = ""
    kind = "cross_subject"
    #: Columns ``groups`` must carry besides ``subject`` (a subject array is not enough).
    requires: tuple[str, ...] = ()
    # scikit-learn metadata routing: split consumes groups (as GroupsConsumerMixin declares it)
    __metadata_request__split = {"groups": True}  # noqa: RUF012

    def iter_folds(self, meta: pd.DataFrame) -> Iterator[Fold]:
        """Yield the folds of ``meta`` (unchecked; :meth:`folds` checks them)."""
        raise NotImplementedError

    def folds(self, meta: pd.DataFrame) -> list[Fold]:
        folds = list(self.iter_folds(meta))
        check_folds(folds, meta)
        return folds

    def describe(self) -> str:
        return self.name

    def __repr__(self) -> str:
        import inspect

        params = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in params if hasattr(self, p))
        return f"{type(self).__name__}({args})"

    # -- scikit-learn splitter -----------------------------------------------------------
    def _meta_from_groups(self, X: object, groups: object) -> pd.DataFrame:
        if groups is None:
            raise DatasetError(
                f"{self.name}: pass groups= to split (a subject id per row of X, or the window "
                "metadata DataFrame with subject, session, trial, stimulus columns)")
        if isinstance(groups, pd.DataFrame):
            meta = groups.reset_index(drop=True).copy()
        else:
            arr = np.asarray(groups)
            if arr.ndim != 1:
                raise DatasetError(f"{self.name}: groups must be 1-D subject ids or a DataFrame, "
                                   f"got an array of shape {arr.shape}")
            meta = pd.DataFrame({"subject": arr})
        n = len(meta) if X is None else _n_rows(X)
        if len(meta) != n:
            raise DatasetError(f"{self.name}: groups has {len(meta)} rows for {n} rows of X")
        missing = [c for c in ("subject", *self.requires) if c not in meta.columns]
        if missing:
            raise DatasetError(
                f"{self.name}: groups needs column(s) {missing} (pass the window metadata "
                "DataFrame as groups; a subject array is enough only for cross-subject protocols)")
        meta["subject"] = meta["subject"].astype(str)
        if "session" not in meta.columns:
            meta["session"] = 1
        if "trial" not in meta.columns:
            # Cross-subject splits move whole subjects: each window may stand for its own trial.
            meta["trial"] = np.arange(len(meta))
        return meta

    def split(self, X: object, y: object = None,
              groups: object = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """scikit-learn splitter: ``(train, test)`` row indices of every checked fold.

        Parameters
        ----------
        X : array_like, shape (n_samples, ...)
            Only its length is used.
        y : ignored
        groups : array_like of shape (n_samples,) or DataFrame
            Subject id per row, or the window metadata (see the class docstring).
        """
        meta = self._meta_from_groups(X, groups)
        for fold in self.folds(meta):
            train, val, test = fold.masks(meta)
            yield np.flatnonzero(train | val), np.flatnonzero(test)

    def get_n_splits(self, X: object = None, y: object = None, groups: object = None) -> int:
        """Number of folds for these ``groups`` (scikit-learn splitter interface)."""
        return len(self.folds(self._meta_from_groups(X, groups)))


def _n_rows(X: object) -> int:
    shape = getattr(X, "shape", None)
    return int(shape[0]) if shape is not None else len(X)  # type: ignore[arg-type]


class _SubjectGroups(Protocol):
    """Cross-subject protocols: subject groups as test sets, validation from the rest."""

    def __init__(self, n_val_subjects: int = 1, seed: int = 0) -> None:
        self.n_val_subjects = n_val_subjects
        self.seed = seed

    def _groups(self, subjects: list[str]) -> list[list[str]]:
        raise NotImplementedError

    def iter_folds(self, meta: pd.DataFrame) -> Iterator[Fold]:
        by_subj = _trials_by_subject(meta)
        subjects = list(by_subj)
        groups = self._groups(subjects)
        rng = np.random.default_rng(self.seed)
        for i, test_subj in enumerate(groups):
            rest = [s for s in subjects if s not in test_subj]
            if not rest:
                raise DatasetError(f"{self.name}: {len(subjects)} subject(s) leave none for "
                                   f"training after {len(test_subj)} test subject(s)")
            n_val = n_validation(self.n_val_subjects, len(rest))
            val_subj = list(rng.choice(rest, n_val, replace=False)) if n_val else []
            train_subj = [s for s in rest if s not in val_subj]
            yield Fold(
                name=f"{self.name}-{i + 1:02d}",
                train=frozenset(k for s in train_subj for k in by_subj[s]),
                val=frozenset(k for s in val_subj for k in by_subj[s]),
                test=frozenset(k for s in test_subj for k in by_subj[s]),
                kind="cross_subject",
                info={"test_subjects": [str(t) for t in test_subj],
                      "val_subjects": sorted(map(str, val_subj), key=natural_key)},
            )


class LOSO(_SubjectGroups):
    """Leave-one-subject-out; ``n_val_subjects`` training subjects held out for validation."""

    name = "loso"

    def _groups(self, subjects: list[str]) -> list[list[str]]:
        return [[s] for s in subjects]


class LeaveKSubjectsOut(_SubjectGroups):
    """Grouped k-fold over subjects: subjects shuffled (``seed``) into groups of ``k``.

    Every subject is tested exactly once; the last group may be smaller.
    """

    name = "lkso"

    def __init__(self, k: int = 4, n_val_subjects: int = 1, seed: int = 0) -> None:
        super().__init__(n_val_subjects, seed)
        if k < 1:
            raise DatasetError(f"leave-k-subjects-out: k must be >= 1, got {k}")
        self.k = k

    def _groups(self, subjects: list[str]) -> list[list[str]]:
        order = list(np.random.default_rng(self.seed + 1).permutation(subjects))
        return [sorted(order[i:i + self.k], key=natural_key) for i in range(0, len(order), self.k)]


class SubjectKFold(_SubjectGroups):
    """Grouped k-fold over subjects with ``n_splits`` folds (group sizes differ by at most one)."""

    name = "subject-kfold"

    def __init__(self, n_splits: int = 5, n_val_subjects: int = 1, seed: int = 0) -> None:
        super().__init__(n_val_subjects, seed)
        if n_splits < 2:
            raise DatasetError(f"subject k-fold: n_splits must be >= 2, got {n_splits}")
        self.n_splits = n_splits

    def _groups(self, subjects: list[str]) -> list[list[str]]:
        if len(subjects) < self.n_splits:
            raise DatasetError(f"subject k-fold: {len(subjects)} subjects for {self.n_splits} folds")
        order = np.random.default_rng(self.seed + 1).permutation(subjects)
        return [sorted(map(str, g), key=natural_key) for g in np.array_split(order, self.n_splits)]


class LeaveStimuliOut(Protocol):
    """Stimuli split into ``n_splits`` groups; each group is the test set once.

    With ``cross_subject=True`` (default) subjects are split too (``n_subject_splits`` groups,
    paired with the stimulus groups round-robin): test = test subjects x test stimuli, train =
    other subjects x other stimuli, validation = ``n_val_subjects`` held-out training subjects x
    training stimuli. With ``cross_subject=False`` all subjects are in every part and validation
    takes ``n_val_stimuli`` of the training stimuli.
    """

    name = "lso"

    def __init__(self, n_splits: int = 5, cross_subject: bool = True, n_subject_splits: int = 5,
                 n_val_subjects: int = 1, n_val_stimuli: int = 1, seed: int = 0) -> None:
        self.n_splits = n_splits
        self.cross_subject = cross_subject
        self.n_subject_splits = n_subject_splits
        self.n_val_subjects = n_val_subjects
        self.n_val_stimuli = n_val_stimuli
        self.seed = seed
        self.kind = "cross_subject" if cross_subject else "within_subject"
        self.requires = ("stimulus",)

    def iter_folds(self, meta: pd.DataFrame) -> Iterator[Fold]:
        if "stimulus" not in meta.columns:
            raise DatasetError("leave-stimuli-out: meta needs a 'stimulus' column")
        keys = trial_keys(meta)
        stim_of = dict(zip(keys, meta["stimulus"].astype(str).to_numpy(), strict=False))
        stimuli = sorted(set(stim_of.values()), key=natural_key)
        if len(stimuli) < self.n_splits:
            raise DatasetError(f"leave-stimuli-out: {len(stimuli)} stimuli for {self.n_splits} splits")
        rng = np.random.default_rng(self.seed)
        groups = [list(g) for g in np.array_split(rng.permutation(stimuli), self.n_splits)]
        subjects = sorted({_subject_of(k) for k in keys}, key=natural_key)
        subj_groups = [list(g) for g in np.array_split(rng.permutation(subjects),
                                                       min(self.n_subject_splits, len(subjects)))]
        for i, test_stim in enumerate(groups):
            train_stim = [s for s in stimuli if s not in test_stim]
            if self.cross_subject:
                test_subj = subj_groups[i % len(subj_groups)]
                rest = [s for s in subjects if s not in test_subj]
                n_val = n_validation(self.n_val_subjects, len(rest))
                val_subj = list(rng.choice(rest, n_val, replace=False)) if n_val else []
                train_subj = [s for s in rest if s not in val_subj]
                val_stim = train_stim
            else:
                test_subj = train_subj = val_subj = subjects
                n_val = n_validation(self.n_val_stimuli, len(train_stim))
                val_stim = list(rng.choice(train_stim, n_val, replace=False)) if n_val else []
                train_stim = [s for s in train_stim if s not in val_stim]

            def pick(subs: list[str], stims: list[str]) -> frozenset:
                ss, st = set(subs), set(stims)
                return frozenset(k for k, s in stim_of.items() if _subject_of(k) in ss and s in st)

            yield Fold(name=f"lso-{i + 1:02d}", train=pick(train_subj, train_stim),
                       val=pick(val_subj, val_stim), test=pick(test_subj, test_stim),
                       kind=self.kind, stimulus_disjoint=True,
                       info={"test_stimuli": sorted(test_stim, key=natural_key),
                             "test_subjects": sorted(test_subj, key=natural_key)})


class SeedWithinSubject(Protocol):
    """SEED's published split: per subject and session, trials 1-9 train, 10-15 test.

    ``n_val_trials`` of the last training trials (e.g. 1: trial 9) go to validation instead.
    """

    name = "seed-9-6"
    kind = "within_subject"
    requires = ("session", "trial")

    def __init__(self, n_train_trials: int = 9, n_val_trials: int = 0) -> None:
        self.n_train_trials = n_train_trials
        self.n_val_trials = n_val_trials

    def iter_folds(self, meta: pd.DataFrame) -> Iterator[Fold]:
        trials = meta[["subject", "session", "trial"]].drop_duplicates()
        for (subj, sess), g in sorted(trials.groupby(["subject", "session"]),
                                      key=lambda kv: (natural_key(kv[0][0]), kv[0][1])):
            nums = sorted(g["trial"].astype(int))
            tr = [t for t in nums if t <= self.n_train_trials]
            te = [t for t in nums if t > self.n_train_trials]
            val = tr[len(tr) - self.n_val_trials:] if self.n_val_trials else []
            tr = [t for t in tr if t not in val]

            def k(ts: list[int], subj: str = str(subj), sess: object = sess) -> frozenset:
                return frozenset(f"{subj}|{sess}|{t}" for t in ts)

            yield Fold(name=f"seed96-{subj}-{sess}", train=k(tr), val=k(val), test=k(te),
                       kind="within_subject", info={"subject": str(subj), "session": int(sess)})


class WithinSubjectKFold(Protocol):
    """Trial-grouped k-fold inside each subject (for comparison with cross-subject numbers).

    Each subject's trials are shuffled (``seed``) into ``n_splits`` groups; fold ``i`` tests
    group ``i`` of every subject, validation takes ``n_val_trials`` random training trials.
    """

    name = "within-kfold"
    kind = "within_subject"
    requires = ("trial",)

    def __init__(self, n_splits: int = 5, n_val_trials: int = 1, seed: int = 0) -> None:
        self.n_splits = n_splits
        self.n_val_trials = n_val_trials
        self.seed = seed

    def iter_folds(self, meta: pd.DataFrame) -> Iterator[Fold]:
        rng = np.random.default_rng(self.seed)
        by_subj = _trials_by_subject(meta)
        parts = {}
        for s, keys in by_subj.items():
            if len(keys) < self.n_splits:
                raise DatasetError(f"within-subject k-fold: subject {s} has {len(keys)} trials "
                                   f"for {self.n_splits} folds")
            parts[s] = [list(p) for p in np.array_split(rng.permutation(keys), self.n_splits)]
        for i in range(self.n_splits):
            train, val, test = set(), set(), set()
            for s in by_subj:
                te = parts[s][i]
                rest = [k for j, p in enumerate(parts[s]) if j != i for k in p]
                n_val = n_validation(self.n_val_trials, len(rest))
                va = list(rng.choice(rest, n_val, replace=False)) if n_val else []
                test.update(te)
                val.update(va)
                train.update(k for k in rest if k not in va)
            yield Fold(name=f"within-{i + 1:02d}", train=frozenset(train), val=frozenset(val),
                       test=frozenset(test), kind="within_subject")


PROTOCOLS = {"loso": LOSO, "lkso": LeaveKSubjectsOut, "subject-kfold": SubjectKFold,
             "lso": LeaveStimuliOut,
             "seed-9-6": SeedWithinSubject, "within-kfold": WithinSubjectKFold}


def get_protocol(name: str, **kwargs: object) -> Protocol:
    """Protocol by name (``loso``, ``lkso``, ``subject-kfold``, ``lso``, ``seed-9-6``,
    ``within-kfold``)."""
    if name not in PROTOCOLS:
        raise DatasetError(f"protocol {name!r} unknown (expected one of {', '.join(PROTOCOLS)})")
    return PROTOCOLS[name](**kwargs)


# ----------------------------------------------------------------------------------- checker
def _as_fold(f: Fold | dict, meta: pd.DataFrame, by_subj: dict[str, list[str]], i: int) -> Fold:
    if isinstance(f, Fold):
        return f
    if not isinstance(f, dict) or "train" not in f or "test" not in f:
        raise LeakageError(f"fold {i + 1}: expected a Fold or a dict with 'train', 'val', 'test'")

    def keys(items: Sequence) -> frozenset:
        out = set()
        for it in items:
            it = str(it)
            if "|" in it:
                out.add(it)
            elif it in by_subj:
                out.update(by_subj[it])
            else:
                raise LeakageError(f"fold {i + 1}: {it!r} is neither a subject nor a trial key")
        return frozenset(out)

    kind = f.get("kind")
    if kind is None:  # subject lists mean a cross-subject fold
        kind = "cross_subject" if all("|" not in str(x) for p in ("train", "test")
                                      for x in f[p]) else "within_subject"
    return Fold(name=str(f.get("name", f"fold-{i + 1}")), train=keys(f["train"]),
                val=keys(f.get("val", ())), test=keys(f["test"]), kind=kind,
                stimulus_disjoint=bool(f.get("stimulus_disjoint", False)))


def check_folds(folds: Sequence[Fold | dict], meta: pd.DataFrame,
                norm_rows: Sequence[np.ndarray] | None = None,
                require_all_tested: bool = False) -> None:
    """Verify that a fold list cannot leak; raise :class:`LeakageError` naming every violation.

    Parameters
    ----------
    folds : list of Fold or dict
        Dicts may list subjects (cross-subject) or trial keys under ``train``/``val``/``test``.
    meta : DataFrame
        Window metadata (subject, session, trial, stimulus).
    norm_rows : list of index arrays, optional
        Per fold, the window rows whose statistics a normaliser was fitted on: must all be
        training windows of that fold.
    require_all_tested : bool
        Every subject of ``meta`` must be a test subject in some fold (LOSO-style coverage).

    Checks: parts non-empty (train, test); no trial in two parts (a trial's windows never
    straddle); cross-subject folds share no subject between parts (validation subjects are
    held-out training subjects, never test subjects); stimulus-disjoint folds share no stimulus
    between test and train/val; every key exists in ``meta``; normalisation rows are training
    rows.
    """
    by_subj = _trials_by_subject(meta)
    all_keys = {k for ks in by_subj.values() for k in ks}
    keys = trial_keys(meta)
    stim_of = (dict(zip(keys, meta["stimulus"].astype(str).to_numpy(), strict=False))
               if "stimulus" in meta.columns else {})
    problems: list[str] = []
    tested: set[str] = set()
    if not folds:
        raise LeakageError("no folds to check")
    for i, f0 in enumerate(folds):
        f = _as_fold(f0, meta, by_subj, i)
        tag = f"fold {f.name}"
        parts = {"train": f.train, "val": f.val, "test": f.test}
        for p in ("train", "test"):
            if not parts[p]:
                problems.append(f"{tag}: empty {p} set")
        unknown = (f.train | f.val | f.test) - all_keys
        if unknown:
            problems.append(f"{tag}: {len(unknown)} trial(s) not in the data, e.g. {sorted(unknown)[:3]}")
        for a, b in (("train", "test"), ("val", "test"), ("train", "val")):
            both = parts[a] & parts[b]
            if both:
                problems.append(f"{tag}: {len(both)} trial(s) in both {a} and {b} "
                                f"(windows of one trial straddle the split), e.g. {sorted(both)[:3]}")
        if f.kind == "cross_subject":
            subj = {p: {_subject_of(k) for k in v} for p, v in parts.items()}
            for a, b in (("train", "test"), ("val", "test"), ("train", "val")):
                both = subj[a] & subj[b]
                if both:
                    what = ("validation subjects must be held-out training subjects"
                            if b == "val" else "the test subject contributes to " + a)
                    problems.append(f"{tag}: subject(s) {sorted(both, key=natural_key)} in both {a} "
                                    f"and {b} ({what})")
            tested |= subj["test"]
        else:
            tested |= {_subject_of(k) for k in f.test}
        if f.stimulus_disjoint and stim_of:
            st = {p: {stim_of.get(k) for k in v} for p, v in parts.items()}
            for a in ("train", "val"):
                both = st[a] & st["test"]
                if both:
                    problems.append(f"{tag}: stimulus/stimuli {sorted(both, key=natural_key)[:5]} in "
                                    f"both {a} and test (leave-stimuli-out)")
        if norm_rows is not None:
            rows = np.asarray(norm_rows[i])
            if rows.dtype == bool:
                rows = np.flatnonzero(rows)
            train_mask = np.isin(keys, list(f.train))
            bad = rows[~train_mask[rows]]
            if bad.size:
                problems.append(f"{tag}: normalisation statistics use {bad.size} window(s) outside "
                                "the training set")
    if require_all_tested:
        never = set(by_subj) - tested
        if never:
            problems.append(f"subject(s) {sorted(never, key=natural_key)} never tested")
    if problems:
        raise LeakageError(f"{len(problems)} leakage problem(s): " + "; ".join(problems))


# -------------------------------------------------------------------------------- normaliser
class FoldNormaliser(Standardiser):
    """Standardise features with statistics of the training windows only (sklearn-style).

    The package's :class:`~physioaffect.preprocessing.standardise.Standardiser` with statistics
    per channel and per feature (every axis but the first, the window axis) and float64
    output: ``(x - mean) / std``, NaN ignored in the statistics and kept in the output.
    ``fit_fold`` remembers which rows it used so :func:`check_folds` can verify them
    (``norm_rows=[n.fitted_rows_ for n in normalisers]``).
    """

    _name = "FoldNormaliser"

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__((1,), eps=eps, fill=None, dtype=np.float64)

    def fit(self, X: np.ndarray, y: object = None) -> FoldNormaliser:
        X = np.asarray(X, dtype=float)
        if X.shape[0] == 0:
            raise DatasetError("FoldNormaliser.fit: no training windows")
        self.keep = tuple(range(1, X.ndim))
        super().fit(X)
        return self

    @property
    def mean_(self) -> np.ndarray:
        return self.standardisation().mean

    @property
    def scale_(self) -> np.ndarray:
        return self.standardisation().scale

    def fit_fold(self, X: np.ndarray, meta: pd.DataFrame, fold: Fold) -> FoldNormaliser:
        """Fit on the training windows of ``fold`` (rows of ``meta`` aligned with ``X``)."""
        train, _, _ = fold.masks(meta)
        self.fitted_rows_ = np.flatnonzero(train)
        return self.fit(np.asarray(X)[train])

    def transform(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "stats_"):
            raise DatasetError("FoldNormaliser: call fit before transform")
        return super().transform(np.asarray(X, dtype=float))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        # One window (no window axis), for WindowDataset(transform=...).
        return self.transform(np.asarray(x, dtype=float)[None])[0]
