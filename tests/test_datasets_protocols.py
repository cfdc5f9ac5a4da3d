"""Protocols yield leakage-free folds; check_folds catches deliberately leaky fold lists; the
fold normaliser uses training windows only; label rules are stated and NaN is dropped, counted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from physioaffect.datasets import DatasetError
from physioaffect.datasets.labels import make_labels
from physioaffect.datasets.protocols import (
    LOSO,
    FoldNormaliser,
    LeakageError,
    LeaveKSubjectsOut,
    LeaveStimuliOut,
    SeedWithinSubject,
    SubjectKFold,
    WithinSubjectKFold,
    check_folds,
    get_protocol,
    trial_keys,
)


def _meta(n_subj=6, n_sess=1, n_trials=15, n_win=3, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(1, n_subj + 1):
        for se in range(1, n_sess + 1):
            for t in range(1, n_trials + 1):
                v = round(float(rng.uniform(1, 9)), 2)
                for w in range(n_win):
                    rows.append((str(s), se, t, f"clip{t:02d}", float(w), v))
    return pd.DataFrame(rows, columns=["subject", "session", "trial", "stimulus", "onset_s",
                                       "valence"])


@pytest.mark.parametrize("proto", [LOSO(n_val_subjects=2), LeaveKSubjectsOut(k=2), SubjectKFold(3),
                                   LeaveStimuliOut(n_splits=3, n_subject_splits=3),
                                   LeaveStimuliOut(n_splits=3, cross_subject=False),
                                   SeedWithinSubject(n_val_trials=1), WithinSubjectKFold(5)])
def test_protocol_folds_are_leak_free_by_construction(proto):
    meta = _meta(n_sess=2)
    folds = proto.folds(meta)  # runs check_folds
    keys = trial_keys(meta)
    for f in folds:
        tr, va, te = f.masks(meta)
        assert te.any() and tr.any()
        assert not (tr & te).any() and not (va & te).any() and not (tr & va).any()
        for k in set(keys[te]):  # every window of a test trial is in test
            assert te[keys == k].all()
        if f.kind == "cross_subject":
            test_s = set(meta["subject"][te])
            assert not test_s & set(meta["subject"][tr | va])
            assert not set(meta["subject"][va]) & set(meta["subject"][tr])
        if f.stimulus_disjoint:
            assert not set(meta["stimulus"][te]) & set(meta["stimulus"][tr | va])


def test_loso_and_lkso_test_every_subject_once():
    meta = _meta(n_subj=7)
    for proto in (LOSO(), LeaveKSubjectsOut(k=3), SubjectKFold(3)):
        folds = proto.folds(meta)
        tested = [s for f in folds for s in f.subjects("test")]
        assert sorted(tested, key=int) == [str(i) for i in range(1, 8)]
        check_folds(folds, meta, require_all_tested=True)
    assert [f.subjects("test") for f in LOSO().folds(meta)][:2] == [["1"], ["2"]]


def test_seed_9_6_split_matches_the_published_protocol():
    meta = _meta(n_subj=2, n_sess=3)
    folds = get_protocol("seed-9-6").folds(meta)
    assert len(folds) == 6
    f = folds[0]
    assert sorted(int(k.split("|")[2]) for k in f.train) == list(range(1, 10))
    assert sorted(int(k.split("|")[2]) for k in f.test) == list(range(10, 16))
    assert {k.split("|")[0] for k in f.train | f.test} == {"1"}


def test_check_folds_catches_leaky_fold_lists():
    meta = _meta(n_subj=5)
    # Subject 3 in train and test.
    with pytest.raises(LeakageError, match=r"subject\(s\) \['3'\] in both train and test"):
        check_folds([{"train": ["1", "2", "3"], "val": ["4"], "test": ["3", "5"]}], meta)
    # Validation from the test subject (early stopping on the test subject).
    with pytest.raises(LeakageError, match=r"in both val and test"):
        check_folds([{"train": ["1", "2", "3"], "val": ["5"], "test": ["5"]}], meta)
    # Validation subject also used for training.
    with pytest.raises(LeakageError, match="validation subjects must be held-out training"):
        check_folds([{"train": ["1", "2", "4"], "val": ["4"], "test": ["5"]}], meta)
    # Within-subject split that puts windows of one trial on both sides.
    leaky = {"kind": "within_subject", "train": ["1|1|1", "1|1|2"], "test": ["1|1|2", "1|1|3"]}
    with pytest.raises(LeakageError, match=r"1 trial\(s\) in both train and test .*1\|1\|2"):
        check_folds([leaky], meta)
    # Leave-stimuli-out fold whose test stimulus was trained on (other subject).
    lso = {"kind": "cross_subject", "stimulus_disjoint": True,
           "train": ["1|1|1", "1|1|2"], "test": ["2|1|2"]}
    with pytest.raises(LeakageError, match=r"clip02.*in both train and test"):
        check_folds([lso], meta)
    # Normalisation fitted on every window, test included.
    folds = LOSO().folds(meta)
    with pytest.raises(LeakageError, match="normalisation statistics use"):
        check_folds(folds, meta, norm_rows=[np.arange(len(meta))] * len(folds))
    with pytest.raises(LeakageError, match="never tested"):
        check_folds(folds[:2], meta, require_all_tested=True)
    with pytest.raises(LeakageError, match="neither a subject nor a trial key"):
        check_folds([{"train": ["1"], "test": ["nobody"]}], meta)
    check_folds([{"train": ["1", "2", "3"], "val": ["4"], "test": ["5"]}], meta)  # clean: passes


def test_fold_normaliser_uses_training_windows_only():
    meta = _meta(n_subj=4)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(len(meta), 3, 4)) + meta["subject"].astype(int).to_numpy()[:, None, None]
    fold = LOSO().folds(meta)[3]
    norm = FoldNormaliser().fit_fold(X, meta, fold)
    tr = fold.masks(meta)[0]
    np.testing.assert_allclose(norm.mean_, X[tr].mean(axis=0))
    np.testing.assert_allclose(norm.scale_, X[tr].std(axis=0) + 1e-8)
    Z = norm.transform(X[tr])
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(norm(X[0]), Z[0] if tr[0] else (X[0] - norm.mean_) / norm.scale_)
    check_folds([fold], meta, norm_rows=[norm.fitted_rows_])


def test_label_rules_are_explicit_and_nan_is_dropped_and_counted():
    meta = pd.DataFrame({"subject": ["a"] * 6 + ["b"] * 6, "session": 1,
                         "trial": [1, 1, 2, 3, 4, 5] * 2,
                         "valence": [5.0, 5.0, 6.0, np.nan, 2.0, 9.0, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                         "dreamer": [3, 3, 4, 2, 1, 5] * 2,
                         "emotion": [1, 1, 0, -1, np.nan, 0] * 2})
    y, keep, rep = make_labels(meta, "gt5", "valence")
    assert rep["dropped_nan"] == 1 and rep["n_kept"] == 11 and not keep[3]
    assert list(y[:5]) == [0, 0, 1, 0, 1]  # 5 is low under > 5
    y, _, _ = make_labels(meta, "ge5", "valence")
    assert list(y[:2]) == [1, 1]
    y3, _, _ = make_labels(meta, "gt3", "dreamer")
    y3e, _, _ = make_labels(meta, "ge3", "dreamer")
    assert (y3 != y3e).sum() == 4 and all(meta["dreamer"][y3 != y3e] == 3)
    # Median of *trial* ratings per subject: b's trials are 1, 2, 3, 4, 5 -> median 3.
    y, keep, rep = make_labels(meta, "median", "valence")
    assert list(y[keep[:6].sum():]) == [0, 0, 0, 0, 1, 1]
    y, keep, rep = make_labels(meta, "posneg", "emotion")
    assert rep["dropped_by_rule"] == 4 and rep["dropped_nan"] == 2 and set(y) == {0, 1}
    y, _, rep = make_labels(meta, "seed3", "emotion")
    assert rep["class_counts"] == {0: 2, 1: 4, 2: 4}
    y, keep, rep = make_labels(meta, "continuous", "valence")
    assert y.dtype == np.float64 and np.isclose(rep["mean"], np.nanmean(meta["valence"]))
    with pytest.raises(DatasetError, match=r"for ratings in \[1, 5\]"):
        make_labels(meta, "gt3", "valence")
    with pytest.raises(DatasetError, match="unknown"):
        make_labels(meta, "gt4", "valence")
