"""The deep networks as a scikit-learn classifier: EEG-Deformer inside GridSearchCV with a
subject splitter learns a planted signal on subjects it never saw; clone, nested parameters,
probabilities, EmT's graph input built from raw windows, early stopping on whole validation
subjects, and one-line refusals of bad input.

The data are made here with numpy, not by the package: each subject has its own noise level,
and windows of class 1 carry a 10 Hz rhythm (random phase) on three of six channels.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, GroupKFold

from physioaffect.models import EEGDeformer, EmT
from physioaffect.training import TrainingError
from physioaffect.training.estimator import DeepEEGClassifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FS, C = 128.0, 6
TINY = {"depth": 2, "n_kernels": 8, "heads": 2, "dim_head": 8, "mlp_dim": 8, "dropout": 0.25}


def planted(n_subjects: int = 6, per_subject: int = 24, seconds: float = 1.0, seed: int = 0):
    """Windows (n, C, T) in microvolts, labels and subject of each window."""
    rng = np.random.default_rng(seed)
    n_times = int(seconds * FS)
    t = np.arange(n_times) / FS
    X, y, groups = [], [], []
    for s in range(n_subjects):
        labels = np.arange(per_subject) % 2
        x = rng.standard_normal((per_subject, C, n_times)) * rng.uniform(8, 12)
        phase = rng.uniform(0, 2 * np.pi, (int(labels.sum()), 1, 1))
        x[labels == 1, :3] += 12.0 * np.sin(2 * np.pi * 10 * t + phase)
        X.append(x)
        y.append(np.where(labels == 1, "rhythm", "none"))
        groups.append(np.full(per_subject, f"sub-{s}"))
    return np.concatenate(X), np.concatenate(y), np.concatenate(groups)


def test_deformer_in_a_grid_search_on_subjects_learns_unseen_subjects() -> None:
    X, y, groups = planted()
    test = np.isin(groups, ["sub-4", "sub-5"])  # never seen by the search or its refit
    est = DeepEEGClassifier("eeg_deformer", TINY, sfreq=FS, epochs=10, batch_size=16,
                            verbose=False)
    search = GridSearchCV(est, {"lr": [1e-3, 3e-3], "module__depth": [1, 2]},
                          cv=GroupKFold(n_splits=2))
    search.fit(X[~test], y[~test], groups=groups[~test])
    best = search.best_estimator_
    assert best.model_kwargs["depth"] == search.best_params_["module__depth"]
    assert isinstance(best.module_, EEGDeformer) and best.module_.depth == best.model_kwargs[
        "depth"]
    proba = search.predict_proba(X[test])
    assert proba.shape == (int(test.sum()), 2)
    assert np.all((proba >= 0) & (proba <= 1)) and np.allclose(proba.sum(axis=1), 1.0)
    assert list(best.classes_) == ["none", "rhythm"]
    assert set(search.predict(X[test])) <= {"none", "rhythm"}
    # 48 windows of two unseen subjects: chance is 0.5 (p < 0.001 of reaching 0.75 by luck)
    assert search.score(X[test], y[test]) >= 0.75


def test_clone_and_nested_parameters() -> None:
    est = DeepEEGClassifier("eeg_deformer", {"depth": 2}, sfreq=FS, epochs=3)
    est.set_params(module__heads=2, lr=5e-4)
    assert est.model_kwargs == {"depth": 2, "heads": 2} and est.lr == 5e-4
    assert est.get_params()["module__heads"] == 2
    copy = clone(est)
    assert copy.get_params(deep=False) == est.get_params(deep=False)
    assert copy.model_kwargs is not est.model_kwargs  # clone copies, never shares
    with pytest.raises(NotFittedError):
        copy.predict(np.zeros((2, C, 128)))
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(no_such_parameter=1)


def test_emt_gets_its_graph_input_and_early_stops_on_validation_subjects() -> None:
    X, y, groups = planted(n_subjects=5, seconds=4.0, seed=1)
    test = groups == "sub-4"
    est = DeepEEGClassifier("emt", {"n_layers": 1, "heads": 2}, sfreq=FS,
                            ch_names=[f"E{i}" for i in range(C)],
                            input_params={"sub_window_s": 2.0, "sub_overlap": 0.5,
                                          "bands": "emt_seed"},
                            epochs=15, batch_size=16, lr=3e-3, validation=1, patience=3,
                            verbose=False)
    est.fit(X[~test], y[~test], groups=groups[~test])
    assert isinstance(est.module_, EmT) and est.input_kind_ == "graphs"
    # 2 s sub-windows every 1 s in 4 s, stopping before one would end at the segment's end
    # (EmT's reference loop): starts at 0 and 1 s; 7 SEED bands per node
    assert est.module_.n_sub_windows == 2 and est.module_.n_features == 7
    assert est.module_.ch_names == [f"E{i}" for i in range(C)]
    # one whole subject held out for early stopping, and the kept epoch is its best
    assert len(est.validation_groups_) == 1 and est.validation_groups_[0] in set(groups[~test])
    val = [row["val_loss"] for row in est.history_]
    assert val[est.best_epoch_ - 1] <= min(val) + 1e-6  # the engine's improvement threshold
    assert len(val) <= est.best_epoch_ + 3  # stopped after patience 3 (or ran out of epochs)
    assert est.score(X[test], y[test]) >= 0.75


def test_bad_input_is_refused_in_one_line() -> None:
    X, y, groups = planted(n_subjects=2, per_subject=8)
    est = DeepEEGClassifier("eegnet", sfreq=FS, epochs=1, batch_size=8, verbose=False)
    cases = [
        (lambda: est.fit(X[:, 0], y), "shape (n_windows, n_channels, n_times)"),
        (lambda: est.fit(X, np.full(len(y), "none")), "one class"),
        (lambda: est.fit(X, y[:-1]), "one label per window"),
        (lambda: clone(est).set_params(validation=0.5).fit(X, y), "needs groups"),
        (lambda: clone(est).set_params(ch_names=["a"]).fit(X, y), "ch_names lists 1"),
        (lambda: clone(est).set_params(model="emt", sfreq=None).fit(X, y), "give sfreq"),
        (lambda: clone(est).set_params(lr=-1).fit(X, y), "optim.lr"),
    ]
    for call, words in cases:
        with pytest.raises(TrainingError) as err:
            call()
        assert words in str(err.value) and "\n" not in str(err.value)
    est.fit(X, y)
    with pytest.raises(TrainingError, match="fitted on 6 x 128"):
        est.predict(X[:, :, :64])
