"""scikit-learn: the protocols as CV splitters inside cross_val_score / GridSearchCV (and still
leak-free), with metadata routing on and off and scikit-learn's splitter contract (split counts,
disjoint parts, groups requested); the band-feature transformers as estimators (clone, Pipeline,
fitted checks, MNE objects and declared units); DeepEEGClassifier's estimator contract (clone,
get/set_params, pickling)."""

from __future__ import annotations

import copy
import inspect
import pickle

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    BaseCrossValidator,
    GridSearchCV,
    KFold,
    LeaveOneGroupOut,
    cross_val_score,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from physioaffect.datasets import DatasetError
from physioaffect.datasets.protocols import (
    LOSO,
    LeaveKSubjectsOut,
    LeaveStimuliOut,
    SeedWithinSubject,
    SubjectKFold,
    WithinSubjectKFold,
    get_protocol,
)
from physioaffect.features.eeg import band_power, differential_entropy
from physioaffect.features.transformers import BandPower, DifferentialEntropy
from physioaffect.preprocessing.quality import SignalInputError


def _subject_table(n_subj=8, n_trials=6, n_win=4, seed=0):
    """Windows whose label is a property of the subject, and whose only feature is the
    subject's id: a model scores perfectly exactly when the test subject was trained on."""
    rng = np.random.default_rng(seed)
    label = rng.permutation(np.arange(n_subj) % 2)
    rows = [(s, t, f"clip{t}") for s in range(n_subj) for t in range(n_trials) for _ in range(n_win)]
    meta = pd.DataFrame(rows, columns=["subject", "trial", "stimulus"])
    X = meta[["subject"]].to_numpy(dtype=float)
    y = label[meta["subject"].to_numpy()]
    return X, y, meta


def test_protocols_in_cross_val_score_keep_subjects_apart():
    X, y, meta = _subject_table()
    knn = KNeighborsClassifier(n_neighbors=1)
    leaky = cross_val_score(knn, X, y, cv=KFold(4, shuffle=True, random_state=0))
    assert leaky.mean() == 1.0  # the same subjects in train and test: memorised
    loso = cross_val_score(knn, X, y, groups=meta["subject"], cv=LOSO())
    assert len(loso) == 8 and loso.mean() < 0.9  # an unseen subject's id says nothing
    for cv in (LOSO(), SubjectKFold(4), get_protocol("lkso", k=3)):
        for train, test in cv.split(X, y, groups=meta["subject"]):
            assert not set(meta["subject"][train]) & set(meta["subject"][test])
            assert len(train) + len(test) == len(X)  # validation subjects train in sklearn
    assert LOSO().get_n_splits(X, y, meta["subject"]) == 8
    assert SubjectKFold(4).get_n_splits(groups=meta["subject"]) == 4


def test_leave_stimuli_out_and_within_subject_take_the_metadata_frame():
    X, y, meta = _subject_table()
    cv = LeaveStimuliOut(n_splits=3, n_subject_splits=4)
    splits = list(cv.split(X, y, groups=meta))
    assert len(splits) == cv.get_n_splits(X, y, meta) == 3
    for train, test in splits:
        assert not set(meta["stimulus"][train]) & set(meta["stimulus"][test])
        assert not set(meta["subject"][train]) & set(meta["subject"][test])
    for train, test in WithinSubjectKFold(3).split(X, y, groups=meta):
        keys_tr = set(zip(meta["subject"][train], meta["trial"][train], strict=True))
        keys_te = set(zip(meta["subject"][test], meta["trial"][test], strict=True))
        assert not keys_tr & keys_te  # a trial's windows never straddle
    # a subject array cannot keep trials together: refused, naming what is missing
    with pytest.raises(DatasetError, match="trial"):
        next(WithinSubjectKFold(3).split(X, y, groups=meta["subject"]))
    with pytest.raises(DatasetError, match="stimulus"):
        next(cv.split(X, y, groups=meta["subject"]))
    with pytest.raises(DatasetError, match="groups"):
        next(LOSO().split(X, y))
    with pytest.raises(DatasetError, match="rows"):
        next(LOSO().split(X[:-1], y[:-1], groups=meta["subject"]))


class _GroupsSeen(ClassifierMixin, BaseEstimator):
    """Nearest-subject-mean classifier that records the groups its fit received (routing)."""

    def fit(self, X, y, groups=None):
        self.groups_seen_ = None if groups is None else np.asarray(groups)
        self.classes_ = np.unique(y)
        self.means_ = np.array([X[y == c].mean(axis=0) for c in self.classes_])
        return self

    def predict(self, X):
        d = ((np.asarray(X)[:, None, :] - self.means_[None]) ** 2).sum(axis=2)
        return self.classes_[np.argmin(d, axis=1)]


SPLITTERS = [LOSO(), LOSO(n_val_subjects=0), LeaveKSubjectsOut(k=3), SubjectKFold(4),
             LeaveStimuliOut(n_splits=3, n_subject_splits=4), WithinSubjectKFold(3),
             SeedWithinSubject(n_train_trials=3)]


@pytest.mark.parametrize("cv", SPLITTERS, ids=repr)
def test_splitters_follow_the_scikit_learn_contract(cv):
    """What scikit-learn's own splitters guarantee: a BaseCrossValidator, get_n_splits equal to
    the folds split yields, integer indices without overlap inside a fold, deterministic, the
    same after pickling, groups requested for split under metadata routing."""
    X, y, meta = _subject_table()
    meta = meta.assign(session=1)
    assert isinstance(cv, BaseCrossValidator)
    assert cv.get_metadata_routing().split.requests == {"groups": True}
    splits = list(cv.split(X, y, groups=meta))
    assert len(splits) == cv.get_n_splits(X, y, meta) == cv.get_n_splits(groups=meta)
    tested = np.zeros(len(X), dtype=int)
    for train, test in splits:
        assert train.dtype.kind == test.dtype.kind == "i"
        assert len(test) and len(train) and not set(train) & set(test)
        assert len(np.unique(train)) == len(train) and len(np.unique(test)) == len(test)
        tested[test] += 1
    assert tested.max() == 1  # no window is tested twice
    if cv.kind == "cross_subject" and not isinstance(cv, LeaveStimuliOut):
        assert (tested == 1).all()  # subject protocols test every window once
        for train, test in splits:  # and train on every other one (validation joins train)
            assert len(train) + len(test) == len(X)
    again = list(pickle.loads(pickle.dumps(copy.deepcopy(cv))).split(X, y, groups=meta))
    for (a, b), (c, d) in zip(splits, again, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    assert eval(repr(cv)).get_n_splits(groups=meta) == len(splits)  # noqa: S307


@pytest.mark.parametrize("routing", [False, True], ids=["routing-off", "routing-on"])
def test_protocols_with_metadata_routing_on_and_off(routing):
    """``groups=`` without routing, ``params={"groups": ...}`` with it: the same folds and
    scores as scikit-learn's LeaveOneGroupOut; under routing the estimator gets the groups
    only when it asks for them."""
    X, y, meta = _subject_table()
    subjects = meta["subject"].to_numpy()
    with sklearn.config_context(enable_metadata_routing=routing):
        est = KNeighborsClassifier(n_neighbors=3)
        kw = {"params": {"groups": subjects}} if routing else {"groups": subjects}
        ours = cross_val_score(est, X, y, cv=LOSO(), **kw)
        ref = cross_val_score(est, X, y, cv=LeaveOneGroupOut(), **kw)
        np.testing.assert_array_equal(ours, ref)
        splits = [(tuple(a), tuple(b)) for a, b in LOSO().split(X, y, subjects)]
        assert splits == [(tuple(a), tuple(b))
                          for a, b in LeaveOneGroupOut().split(X, y, subjects)]
        search = GridSearchCV(est, {"n_neighbors": [1, 3]}, cv=LeaveKSubjectsOut(3))
        assert search.fit(X, y, groups=subjects).n_splits_ == 3
        if routing:  # the estimator asked for groups: both the splitter and fit get them
            est = _GroupsSeen().set_fit_request(groups=True)
            search = GridSearchCV(est, {}, cv=LOSO()).fit(X, y, groups=subjects)
            assert set(search.best_estimator_.groups_seen_) == set(subjects)
            with pytest.raises(DatasetError, match="groups"):  # no groups given: refused
                cross_val_score(est, X, y, cv=LOSO())
        else:  # without routing groups go to the splitter only (why routing exists)
            search = GridSearchCV(_GroupsSeen(), {}, cv=LOSO()).fit(X, y, groups=subjects)
            assert search.best_estimator_.groups_seen_ is None and search.n_splits_ == 8


def test_leave_k_subjects_out_keeps_training_subjects_before_validation():
    """LeaveKSubjectsOut(2) on 3 subjects: the pair's fold keeps the one remaining subject for
    training (no validation subject); the single's fold holds one of the two out."""
    X, y, meta = _subject_table(n_subj=3)
    meta = meta.assign(session=1)
    folds = LeaveKSubjectsOut(k=2).folds(meta)
    assert sorted(len(f.subjects("test")) for f in folds) == [1, 2]
    for f in folds:
        assert len(f.subjects("train")) >= 1
        n_val = 0 if len(f.subjects("test")) == 2 else 1
        assert len(f.subjects("val")) == n_val == len(f.info["val_subjects"])
    assert len(list(LeaveKSubjectsOut(k=2).split(X, y, meta["subject"]))) == 2
    assert len(list(LOSO(n_val_subjects=5).split(X, y, meta["subject"]))) == 3
    with pytest.raises(DatasetError, match="leave none for training"):
        LeaveKSubjectsOut(k=3).folds(meta)


def _windows(n=48, n_ch=3, fs=128.0, seconds=2.0, seed=1):
    """Noise windows; class 1 carries a 10 Hz (alpha) rhythm on every channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    y = np.arange(n) % 2
    X = rng.normal(0, 5, (n, n_ch, t.size))
    X[y == 1] += 20 * np.sin(2 * np.pi * 10 * t)
    return X, y


def test_transformers_clone_pipeline_and_fitted_checks():
    X, y = _windows()
    de = DifferentialEntropy(sfreq=128.0, bands="torcheeg4", ch_names=["C3", "Cz", "C4"])
    params = set(inspect.signature(DifferentialEntropy.__init__).parameters) - {"self"}
    assert set(de.get_params()) == params
    twin = clone(de)
    assert twin.get_params() == de.get_params() and not hasattr(twin, "bands_")
    with pytest.raises(NotFittedError):
        twin.transform(X)
    # the features of features.eeg, unchanged, flattened channel-major
    out = de.fit_transform(X)
    ref = differential_entropy(X, 128.0, "torcheeg4")
    np.testing.assert_allclose(out, ref.reshape(len(X), -1))
    names = list(de.get_feature_names_out())
    assert names[:4] == ["C3_theta", "C3_alpha", "C3_beta", "C3_gamma"] and len(names) == 12
    alpha = [i for i, nm in enumerate(names) if nm.endswith("_alpha")]
    assert np.all(out[y == 1][:, alpha].mean(0) > out[y == 0][:, alpha].mean(0) + 1)
    bp = BandPower(sfreq=128.0, bands="torcheeg4", relative=True, flatten=False).fit(X)
    np.testing.assert_allclose(bp.transform(X), band_power(X, 128.0, "torcheeg4", relative=True))
    with pytest.raises(SignalInputError, match="channels"):
        bp.transform(X[:, :2])
    with pytest.raises(SignalInputError, match="n_windows, n_chans, n_times"):
        bp.fit(X[0])
    # __init__ stores, fit validates
    bad = BandPower(bands="nope")
    assert bad.bands == "nope"
    with pytest.raises(SignalInputError, match="unknown preset"):
        bad.fit(X)
    # a Pipeline with a scaler and a classifier, pickled and searched over
    pipe = make_pipeline(DifferentialEntropy(sfreq=128.0), StandardScaler(),
                         LogisticRegression())
    pipe.fit(X, y)
    again = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(again.predict(X), pipe.predict(X))
    subjects = np.repeat(np.arange(4), len(X) // 4)
    search = GridSearchCV(pipe, {"differentialentropy__bands": ["torcheeg4", "seed5"]},
                          cv=LOSO(n_val_subjects=0)).fit(X, y, groups=subjects)
    assert search.n_splits_ == 4 and search.best_score_ > 0.9  # alpha is easy to find


def _epochs_of(X_uv, fs=128.0, names=("C3", "Cz", "C4")):
    """An MNE EpochsArray of microvolt windows (in volts, as MNE holds them) with an extra ECG
    channel that the EEG picks must leave out."""
    import mne

    ecg = np.random.default_rng(3).normal(0, 1e-3, (len(X_uv), 1, X_uv.shape[2]))
    info = mne.create_info([*names, "ECG"], fs, ["eeg"] * len(names) + ["ecg"])
    return mne.EpochsArray(np.concatenate([X_uv * 1e-6, ecg], axis=1), info, verbose="error")


@pytest.mark.parametrize("cls", [DifferentialEntropy, BandPower])
def test_volts_in_give_the_same_features_as_microvolts_in(cls):
    """An mne.Epochs (volts), volts or millivolts declared with unit=, and the microvolt array
    (the default for arrays) give the same features; MNE's channel names and rate are used."""
    X, _ = _windows()
    ref = cls(sfreq=128.0).fit_transform(X)
    assert np.isfinite(ref).all()
    epochs = _epochs_of(X)
    est = cls(sfreq=128.0).fit(epochs)
    np.testing.assert_allclose(est.transform(epochs), ref, rtol=1e-9)
    assert list(est.get_feature_names_out())[0].startswith("C3_")
    np.testing.assert_allclose(cls(sfreq=128.0, unit="V").fit_transform(X * 1e-6), ref,
                               rtol=1e-9)
    np.testing.assert_allclose(cls(sfreq=128.0, unit="millivolts").fit_transform(X * 1e-3),
                               ref, rtol=1e-9)
    with pytest.raises(SignalInputError, match="sampled at 128 Hz, sfreq is 256"):
        cls(sfreq=256.0).fit(epochs)
    with pytest.raises(SignalInputError, match="cannot convert unit 'uS'"):
        cls(unit="uS").fit(X)
    with pytest.raises(SignalInputError, match="no channel"):
        cls(picks="eog").fit(epochs)


def test_deep_classifier_contract_clone_params_pickle_and_epochs(one_torch_thread):
    """scikit-learn's estimator checks that need no data, then a fitted classifier pickled and
    fed an mne.Epochs in volts: the same probabilities as the microvolt array."""
    from sklearn.utils.estimator_checks import (
        check_get_params_invariance,
        check_no_attributes_set_in_init,
        check_parameters_default_constructible,
        check_set_params,
    )

    from physioaffect.training.estimator import DeepEEGClassifier

    est = DeepEEGClassifier("eegnet", sfreq=128.0, epochs=1, batch_size=16, verbose=False,
                            device="cpu")
    for check in (check_no_attributes_set_in_init, check_get_params_invariance,
                  check_set_params, check_parameters_default_constructible):
        check("DeepEEGClassifier", est)
    twin = clone(est).set_params(module__F1=4, lr=5e-4)
    assert twin.get_params()["module__F1"] == 4 and est.model_kwargs is None
    X, y = _windows(n=32)
    est.fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    proba = est.predict_proba(X)
    np.testing.assert_allclose(again.predict_proba(X), proba, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(est.predict_proba(_epochs_of(X)), proba, rtol=1e-5, atol=1e-6)
