"""One fold: baselines, the network (with the adaptation chosen on validation subjects), scores.

:func:`compute_fold` trains and scores one fold of a protocol and returns a :class:`FoldResult`
that only the driver writes (:mod:`physioaffect.training.rundir`). Every model of the fold is
scored on the test subjects

- with the **live protocol** (:mod:`physioaffect.training.live`; the headline): each test
  subject's session in recording order, the adaptation fitted on its first ``calibration_s``
  only (and updated online if chosen), the windows after the calibration scored; also with
  calibration lengths of 30 s to 5 min and a one-sided start;
- with the **session** protocol: each test subject's adaptation fitted on all of its windows
  (transductive), every window scored (what earlier reports called the score).

Per-subject adaptation (``adaptation.method``): the training and validation subjects are each
adapted with statistics of their own whole session. With ``auto`` the choice among none /
offline / online is made on the validation subjects with the live protocol, the test subjects
taking no part in it: with ``evidence: baseline`` (default) a classical model adapted the way the
network would be decides none against adapted, so one network is trained, and that network
decides offline against online; with ``evidence: network`` two networks are trained, one
without adaptation and one with the input's method.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from physioaffect.preprocessing.standardise import Standardiser
from physioaffect.training.config import TrainConfig
from physioaffect.training.data import PreparedData, fit_subject_adaptation
from physioaffect.training.live import ProtocolScorer, score_protocols, subject_streams

__all__ = ["compute_fold", "fit_network", "FoldResult", "class_names", "deep_label",
           "fold_contract", "VARIANTS", "ClassicalBaseline", "make_baseline", "feature_arrays"]

_CLASS_NAMES = {"seed3": ["negative", "neutral", "positive"], "posneg": ["negative", "positive"]}
#: Adaptation variants a fold can choose among, simplest first (ties go to the simpler).
VARIANTS = ("none", "offline", "online")


def class_names(rule: str) -> list[str]:
    from physioaffect.datasets.labels import RULES

    if RULES[rule].n_classes is None:
        return []
    return _CLASS_NAMES.get(rule, ["low", "high"])


def deep_label(cfg: TrainConfig) -> str:
    """Name of the network in tables: ``emt``, or ``emt[eeg+peripheral]`` when fused."""
    if cfg.modalities == ["eeg"] and not cfg.multimodal:
        return cfg.model
    return f"{cfg.model}[{'+'.join(cfg.modalities)}]"


@dataclass
class FoldResult:
    """What a finished fold produced, sent to the driver, which alone writes the run folder.

    Attributes
    ----------
    name : str
        Fold name (``folds/<name>/``).
    summary : dict
        ``fold.json``: metrics per model and protocol, epochs, subjects, the adaptation chosen
        and why, device, seconds, search choice.
    predictions : DataFrame
        Test windows of the network and the baselines under every protocol
        (``predictions.csv``, column ``protocol``).
    history : list of dict
        Learning curve, one row per epoch and network (``history.csv``).
    checkpoint : dict of str -> bytes
        The files of the checkpoint folder (``config.json``, ``model.safetensors``,
        ``contract.json``: :func:`physioaffect.models.save_checkpoint`'s format), by name.
    trials : list of dict
        Trials of the nested model search (``search.csv``); empty without a search.
    """

    name: str
    summary: dict
    predictions: pd.DataFrame
    history: list[dict]
    checkpoint: dict[str, bytes]
    trials: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------------------- the network
def _network_arrays(data: PreparedData, modalities: list[str]) -> dict[str, np.ndarray]:
    """The (unadapted) model arrays of every window for a network taking ``modalities``."""
    out = {}
    if "eeg" in modalities:
        out["eeg"] = data.eeg_input
    if "peripheral" in modalities:
        out["peripheral"] = data.peripheral
    if "face" in modalities:
        out["face"] = data.face
    return out


def fit_network(cfg: TrainConfig, data: PreparedData, y: np.ndarray, tr: np.ndarray,
                va: np.ndarray, seed: int, state_path: Path | None = None,
                progress: Any = None, adaptation: Any = None,
                threads: Any = None) -> dict[str, Any]:
    """Train a fresh network on rows ``tr`` with early stopping on rows ``va``.

    The training body of a fold, and of each trial of a model search (same code, so a search
    scores exactly what a fold would train).

    Parameters
    ----------
    adaptation : SubjectAdaptation or None
        Fitted per subject on whole sessions (:func:`fit_subject_adaptation`); every window
        is adapted with its own subject's statistics before the training normalisation.
    threads : ThreadPolicy or None
        Adjusted every epoch (:mod:`physioaffect.compute`).

    Returns
    -------
    dict
        ``net`` (best validation state loaded), ``info`` (:func:`build_network`'s), ``norms``
        (fitted :class:`Standardiser` per input), ``device``, ``target_scaling``, ``history``,
        ``best_epoch``.
    """
    from physioaffect.models.inputs import input_kind
    from physioaffect.training.engine import build_network, fit, resolve_device, seed_everything

    task = cfg.task
    n_classes = len(class_names(cfg.label_rule))
    device = resolve_device(cfg)
    seed_everything(seed)
    net, info = build_network(
        cfg, n_chans=len(data.ch_names), n_times=data.n_times, sfreq=data.sfreq,
        n_outputs=1 if task == "regression" else n_classes,
        eeg_input=None if data.eeg_input is None else data.eeg_input[:2],
        n_peripheral=0 if data.peripheral is None else int(data.peripheral.shape[1]),
        n_face=0 if data.face is None else int(data.face.shape[1]))
    arrays = _network_arrays(data, info["modalities"])
    subjects = data.meta["subject"].astype(str).to_numpy()

    def adapted(rows: np.ndarray) -> dict[str, np.ndarray]:
        out = {k: np.asarray(v[rows], dtype=np.float32) for k, v in arrays.items()}
        if adaptation is not None:  # copies above: adapted in place
            out = adaptation.transform(out, subjects[rows], in_place=True)
        return out

    x_tr = adapted(tr)
    axes = {"eeg": input_kind(info["input"]).norm_axes if info["input"] else (1,)}
    norms = {k: Standardiser(axes.get(k, (1,))).fit(v) for k, v in x_tr.items()}

    def take(rows: np.ndarray, x: dict | None = None) -> dict[str, np.ndarray]:
        x = adapted(rows) if x is None else x
        out = {k: norms[k].transform(v, out=v) for k, v in x.items()}  # in place
        if "face" in x:
            from physioaffect.models.feeding import face_present

            out["face_present"] = face_present(data.face[rows]).astype(np.float32)
        if "peripheral" in x and info["fusion"]:
            out["peripheral_present"] = np.isfinite(data.peripheral[rows]).any(axis=1) \
                .astype(np.float32)
        return out

    target_scaling = None
    if task == "regression":
        target_scaling = (float(np.mean(y[tr])), float(np.std(y[tr]) or 1.0))

        def ty(rows: np.ndarray) -> np.ndarray:
            return ((y[rows] - target_scaling[0]) / target_scaling[1]).astype(np.float32)
    else:
        def ty(rows: np.ndarray) -> np.ndarray:
            return y[rows].astype(np.int64)

    kind = "fusion" if info["fusion"] else "single"
    net, history, best_epoch = fit(
        net, kind, cfg, seed, (take(tr, x_tr), ty(tr)), (take(va), ty(va)) if va.size else None,
        device, state_path=state_path, on_epoch=progress, threads=threads)
    return {"net": net, "info": info, "norms": norms, "device": device,
            "target_scaling": target_scaling, "history": history, "best_epoch": best_epoch}


def fold_contract(cfg: TrainConfig, data: PreparedData, fold: dict, fitted: dict,
                  seed: int, adaptation: dict):
    """The :class:`~physioaffect.models.CheckpointContract` of a trained network.

    ``adaptation``: the contract's ``subject_adaptation`` (method, online, half-life,
    calibration, how it was chosen).
    """
    from physioaffect.models.contract import CheckpointContract

    info = fitted["info"]
    eeg = "eeg" in info["modalities"]
    return CheckpointContract(
        model=info["network"], trained_as=cfg.model, label=deep_label(cfg),
        modalities=tuple(info["modalities"]), task=cfg.task, target=cfg.target,
        label_rule=cfg.label_rule, class_names=tuple(class_names(cfg.label_rule)),
        channels=tuple(data.ch_names) if eeg else (),
        sfreq=float(data.info.get("source_sfreq", data.sfreq)) if eeg else 0.0,
        pipeline=cfg.preprocessing, window_s=float(cfg.windows.window_s) if eeg else 0.0,
        step_s=cfg.windows.step_s if eeg else None, n_times=data.n_times if eeg else 0,
        input_kind=info["input"], input_params=dict(cfg.inputs.get(info["input"], {}))
        if info["input"] else {},
        normalisation={k: n.standardisation() for k, n in fitted["norms"].items()},
        peripheral_signals=tuple(data.peripheral_signals),
        peripheral_features=tuple(data.peripheral_names), face_features=tuple(data.face_names),
        face_min_valid=float(cfg.face.min_valid), target_scaling=fitted["target_scaling"],
        subject_adaptation=adaptation,
        quality_gate={"threshold": cfg.quality.threshold, "action": cfg.quality.action},
        provenance={"dataset": cfg.dataset, "fold": fold["name"],
                    "train_subjects": fold["train_subjects"], "val_subjects": fold["val_subjects"],
                    "test_subjects": fold["test_subjects"], "seed": seed,
                    "best_epoch": fitted["best_epoch"], "epochs_run": len(fitted["history"])})


# -------------------------------------------------------------------------------- scoring
def _metric(task: str, y_true: np.ndarray, pred: np.ndarray) -> float:
    """The live-protocol choice's metric: accuracy, or CCC for regression."""
    from physioaffect.training.metrics import ccc

    if task == "regression":
        return ccc(y_true, pred)
    return float(np.mean(np.asarray(pred).argmax(1) == y_true.astype(int))) if len(y_true) \
        else float("nan")


def _choose(cfg: TrainConfig, scorers: dict[str, tuple[ProtocolScorer, bool]], streams,
            va: np.ndarray, y: np.ndarray, meta: pd.DataFrame | None = None
            ) -> tuple[str, dict]:
    """The variant chosen on the validation subjects with the live protocol.

    A live session may start with any kind of stimulus: for a classifier each variant is
    scored over the session in recording order and over each one-sided start (the session
    beginning with one class only, :meth:`SubjectStream.one_sided`), so that the choice holds
    whatever the first minutes bring. The simplest variant (``none`` < ``offline`` <
    ``online``) whose accuracy is within one standard error of the best one's is kept (the
    one-standard-error rule, Breiman et al. 1984): a validation subject or two cannot tell
    apart variants closer than that, and the simpler one is the safer bet. The standard error
    is that of the best variant's mean accuracy over trials (a trial's windows are not
    independent of each other).

    Returns
    -------
    choice : str
    why : dict
        Score of each variant (None where no validation window follows the calibration) and
        ``se``, the standard error used.
    """
    cal = cfg.adaptation.calibration_s
    starts: list = [None]
    if cfg.task == "classification":
        starts += list(range(len(class_names(cfg.label_rule))))
    trial_of = None if meta is None else \
        (meta["subject"].astype(str) + "/" + meta["session"].astype(str) + "/"
         + meta["trial"].astype(str)).to_numpy()
    scores: dict[str, float] = {}
    per_trial: dict[str, np.ndarray] = {}
    for name, (scorer, online) in scorers.items():
        per_start, trials = [], []
        for start in starts:
            yt, yp, rows_all = [], [], []
            for s in streams:
                order = None if start is None else s.one_sided(start, cal)
                if start is not None and order is None:
                    continue
                rows, pred = scorer.live(s, va, cal, online, order)
                if pred is not None:
                    yt.append(y[rows])
                    yp.append(pred)
                    rows_all.append(rows)
            if not yt:
                continue
            y_true, y_pred = np.concatenate(yt), np.concatenate(yp)
            per_start.append(_metric(cfg.task, y_true, y_pred))
            if cfg.task == "classification" and trial_of is not None:
                right = pd.Series(y_pred.argmax(1) == y_true.astype(int))
                trials.append(right.groupby(trial_of[np.concatenate(rows_all)]).mean())
        scores[name] = float(np.mean(per_start)) if per_start else float("nan")
        if trials:
            per_trial[name] = pd.concat(trials).to_numpy(dtype=float)
    finite = [v for v in VARIANTS if v in scores and np.isfinite(scores[v])]
    # NaN (no validation window after the calibration) is stored as null
    shown: dict = {k: float(v) if np.isfinite(v) else None for k, v in scores.items()}
    if not finite:
        return next(iter(scorers)), shown
    best = max(finite, key=lambda v: (scores[v], -VARIANTS.index(v)))
    se = 0.0
    if best in per_trial and len(per_trial[best]) > 1:
        se = float(np.std(per_trial[best], ddof=1) / np.sqrt(len(per_trial[best])))
        shown["se"] = se
    choice = next(v for v in finite if scores[v] >= scores[best] - se)
    return choice, shown


# ------------------------------------------------------------------------------ baselines
def make_baseline(name: str, task: str, seed: int):
    from physioaffect.models import make_linear_svm, make_logistic_regression, make_majority

    if task == "regression":
        from sklearn.dummy import DummyRegressor
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from physioaffect.models import FlattenFeatures

        # Regression: majority -> training mean, logreg -> ridge, svm -> linear SVR.
        if name == "majority":
            return DummyRegressor(strategy="mean")
        if name == "logreg":
            return make_pipeline(FlattenFeatures(), StandardScaler(), Ridge(alpha=1.0))
        from sklearn.svm import LinearSVR

        return make_pipeline(FlattenFeatures(), StandardScaler(),
                             LinearSVR(random_state=seed, max_iter=10000))
    if name == "majority":
        return make_majority()
    if name == "logreg":
        return make_logistic_regression()
    model = make_linear_svm()
    model.set_params(clf__random_state=seed)
    return model


def feature_arrays(cfg: TrainConfig, data: PreparedData) -> dict[str, np.ndarray]:
    """The classical baselines' inputs: DE, and peripheral and face features when used."""
    out = {}
    if "eeg" in cfg.modalities and data.de is not None:
        out["de"] = data.de
    if "peripheral" in cfg.modalities and data.peripheral is not None:
        out["peripheral"] = data.peripheral
    if "face" in cfg.modalities and data.face is not None:
        out["face"] = data.face
    return out


class ClassicalBaseline:
    """A classical baseline on (adapted) feature arrays: NaN features get the training mean."""

    def __init__(self, est, task: str) -> None:
        self.est, self.task = est, task

    @staticmethod
    def _matrix(arrays: dict) -> np.ndarray:
        parts = [np.asarray(v, dtype=np.float64).reshape(len(v), -1)
                 for v in arrays.values() if v is not None]
        return np.concatenate(parts, axis=1)

    def fit(self, arrays: dict, y: np.ndarray) -> ClassicalBaseline:
        x = self._matrix(arrays)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an all-NaN column: imputed with 0
            mean = np.nanmean(x, axis=0) if len(x) else np.zeros(x.shape[1])
        self.mean_ = np.where(np.isfinite(mean), mean, 0.0)
        self.est.fit(self._fill(x), y)
        return self

    def _fill(self, x: np.ndarray) -> np.ndarray:
        return np.nan_to_num(np.where(np.isfinite(x), x, self.mean_))

    def predict(self, arrays: dict) -> np.ndarray:
        x = self._fill(self._matrix(arrays))
        if self.task == "regression":
            return np.asarray(self.est.predict(x), dtype=float)
        if hasattr(self.est, "predict_proba"):
            return self.est.predict_proba(x)
        d = self.est.decision_function(x)
        return np.stack([-d, d], axis=1) if d.ndim == 1 else d


def _baseline_frames(cfg: TrainConfig, data: PreparedData, fold: dict, y: np.ndarray,
                     tr: np.ndarray, va: np.ndarray, te: np.ndarray, seed: int, session: Any,
                     val_streams, test_streams) -> tuple[list[pd.DataFrame], dict]:
    """Test predictions of every baseline, and the adaptation each one chose.

    A classical baseline follows the network's rule: with ``auto`` it is fitted on the
    training subjects with and without per-subject z-scores of its features, the variant with
    the best live-protocol score on the validation subjects is kept and refitted on training
    and validation subjects.
    """
    trva = np.concatenate([tr, va])
    frames, chosen = [], {}
    for b in cfg.baselines:
        choice, why, fitted = _classical(cfg, data, y, tr, va, seed, session, val_streams, b)
        chosen[b] = {"variant": choice, "validation": why}
        frames += score_protocols(data.meta, {"fold": fold["name"]}, b,
                                  fitted(choice, trva), choice == "online", test_streams, te,
                                  y, cfg.task, cfg.adaptation.calibration_s,
                                  class_names(cfg.label_rule), full=False)
    return frames, chosen


def _classical(cfg: TrainConfig, data: PreparedData, y: np.ndarray, tr: np.ndarray,
               va: np.ndarray, seed: int, session: Any, val_streams: list, name: str):
    """A classical baseline's adaptation variant, chosen on the validation subjects.

    Returns
    -------
    choice : str
        Among :data:`VARIANTS` (``none`` for the majority baseline).
    why : dict
        Live-protocol score of each variant on the validation subjects (empty: no choice).
    fitted : callable(variant, rows) -> ProtocolScorer
        The baseline of a variant fitted on ``rows``.
    """
    arrays = feature_arrays(cfg, data)
    usable = bool(arrays)
    if not arrays:  # no features (a majority baseline alone): one constant column
        arrays = {"constant": np.zeros((len(data.meta), 1), np.float32)}
    subjects = data.meta["subject"].astype(str).to_numpy()
    methods = ["none"] if name == "majority" or not usable else _methods(cfg, va)
    variants = _variants(cfg, methods, va)

    def fitted(variant: str, rows: np.ndarray) -> ProtocolScorer:
        method = _method_of(variant, methods)
        x = {k: np.asarray(v[rows], dtype=np.float32) for k, v in arrays.items()}
        if method != "none":
            x = session.transform(x, subjects[rows], in_place=True)
        yb = y[rows] if cfg.task == "regression" else y[rows].astype(int)
        model = ClassicalBaseline(make_baseline(name, cfg.task, seed), cfg.task).fit(x, yb)
        return ProtocolScorer(arrays, model.predict, method, None, session, subjects,
                              cfg.adaptation.half_life_s)

    if len(variants) == 1:
        return variants[0], {}, fitted
    on_train = {m: fitted(m if m == "none" else "offline", tr) for m in methods}
    scorers = {v: (on_train[_method_of(v, methods)], v == "online") for v in variants}
    choice, why = _choose(cfg, scorers, val_streams, va, y, data.meta)
    return choice, why, fitted


def _aligned_evidence(cfg: TrainConfig, data: PreparedData, y: np.ndarray, tr: np.ndarray,
                      va: np.ndarray, seed: int, session: Any, val_streams: list
                      ) -> tuple[str, dict]:
    """Euclidean alignment or none for a network on raw EEG, weighed with logistic regression
    on the DE of the windows aligned as the network's would be
    (:mod:`physioaffect.training.evidence`): fitted on the training subjects (each aligned with
    its whole session), scored with the live protocol on the validation subjects."""
    from physioaffect.features.eeg import band_covariances, resolve_bands
    from physioaffect.training.evidence import AlignedBandVariance, aligned_de

    subjects = data.meta["subject"].astype(str).to_numpy()
    rows = np.flatnonzero(np.isin(subjects, np.unique(subjects[np.concatenate([tr, va])])))
    n_bands = len(resolve_bands(cfg.de_bands, data.sfreq))
    n_ch = data.raw.shape[1]
    bandcov = np.zeros((len(subjects), n_bands, n_ch, n_ch), np.float32)  # indexed by row
    bandcov[rows] = band_covariances(data.raw[rows], data.sfreq, cfg.de_bands)
    matrices = session.adapters_["eeg"].matrices_
    yb = y[tr] if cfg.task == "regression" else y[tr].astype(int)

    def fit(aligned: bool) -> ClassicalBaseline:
        cov = bandcov[tr]
        if not aligned:
            de = aligned_de(cov, None)
        else:
            de = np.empty((len(tr), cov.shape[2], cov.shape[1]), np.float32)
            for s in np.unique(subjects[tr]):
                part = subjects[tr] == s
                de[part] = aligned_de(cov[part], matrices[s])
        return ClassicalBaseline(make_baseline("logreg", cfg.task, seed), cfg.task).fit(
            {"de": de}, yb)

    def predict_with(model: ClassicalBaseline):
        def run(arrays: dict) -> np.ndarray:
            de = arrays["de"] if "de" in arrays else aligned_de(arrays["bandcov"], None)
            return model.predict({"de": de})
        return run

    arrays = {"eeg": data.raw, "bandcov": bandcov}
    half = cfg.adaptation.half_life_s
    none = ProtocolScorer(arrays, predict_with(fit(False)), "none", "raw", None, subjects, half)
    aligned = ProtocolScorer(arrays, predict_with(fit(True)), "euclidean", "raw", None,
                             subjects, half, lambda online: AlignedBandVariance(half, online))
    variants = _variants(cfg, ["none", "euclidean"], va)
    scorers = {v: (none if v == "none" else aligned, v == "online") for v in variants}
    return _choose(cfg, scorers, val_streams, va, y, data.meta)


def _methods(cfg: TrainConfig, va: np.ndarray, input_kind: str | None = None) -> list[str]:
    """Adaptation methods to train with: ``none`` and/or the input's method."""
    ad = cfg.adaptation
    if ad.method == "none":
        return ["none"]
    if ad.method == "auto":
        return ["none", ad.candidate(input_kind)] if va.size else ["none"]
    return [ad.method]


def _variants(cfg: TrainConfig, methods: list[str], va: np.ndarray) -> list[str]:
    """Variants among :data:`VARIANTS` that the trained methods allow."""
    out = ["none"] if "none" in methods else []
    if any(m != "none" for m in methods):
        online = cfg.adaptation.online
        if online is None:
            out += ["offline", "online"] if va.size else ["online"]
        else:
            out.append("online" if online else "offline")
    return out


def _method_of(variant: str, methods: list[str]) -> str:
    return "none" if variant == "none" else next(m for m in methods if m != "none")


# ---------------------------------------------------------------------------- one fold
def compute_fold(cfg_dict: dict, fold: dict, data: PreparedData, y: np.ndarray,
                 state_path: Path | None = None, progress: Any = None,
                 search: dict | None = None) -> FoldResult:
    """Train and test one fold; returns its :class:`FoldResult` and writes nothing outside the
    process's temporary folder (and the epoch checkpoints beside ``state_path``).

    Parameters
    ----------
    cfg_dict : dict
        :meth:`TrainConfig.to_dict` of the run (with a search's chosen setting applied).
    fold : dict
        A fold of :func:`physioaffect.training.runner.plan_folds` (row indices into ``data``).
    state_path : Path or None
        Epoch checkpoint of the network's training: continued from if it exists, rewritten
        after every epoch (one per network when ``auto`` trains two: ``train_state-none.pt``
        ...).
    progress : callable(dict) or None
        Called with each epoch's history row.
    search : dict or None
        The nested search behind ``cfg_dict``: stored in the summary, its trials in ``trials``.
    """
    import torch

    from physioaffect.compute import ThreadPolicy
    from physioaffect.models.contract import save_checkpoint
    from physioaffect.models.feeding import normalise, predict
    from physioaffect.training.metrics import metrics_of

    cfg = TrainConfig.from_dict(cfg_dict)
    threads = ThreadPolicy(cfg.compute.threads)
    threads.adjust()
    torch.use_deterministic_algorithms(True, warn_only=True)
    t_start = time.perf_counter()
    names = class_names(cfg.label_rule)
    seed = cfg.seed + 1000 * fold["index"]
    tr, va, te = (np.asarray(fold[k], dtype=int) for k in ("train", "val", "test"))
    subjects = data.meta["subject"].astype(str).to_numpy()
    ad = cfg.adaptation

    def streams_of(who: list[str]):
        rows = np.flatnonzero(np.isin(subjects, list(who)))
        return subject_streams(data.meta, rows, y, cfg.windows.window_s)

    val_streams = streams_of(fold["val_subjects"]) if va.size else []
    test_streams = streams_of(fold["test_subjects"])
    session = None
    if ad.method != "none":  # whole-session statistics of the fold's subjects, per subject
        who = [*fold["train_subjects"], *fold["val_subjects"], *fold["test_subjects"]]
        session = fit_subject_adaptation(cfg, data, np.flatnonzero(np.isin(subjects, who)),
                                         ad.candidate(data.eeg_kind))

    frames, baseline_choice = _baseline_frames(cfg, data, fold, y, tr, va, te, seed, session,
                                               val_streams, test_streams)

    first_epoch: list[int] = []  # a fold resumed from its epoch checkpoint starts after it
    methods = _methods(cfg, va, data.eeg_kind)
    evidence = None
    if len(methods) > 1 and ad.evidence == "baseline" and data.de is not None:
        # auto weighed with a classical model adapted the way the network would be: one
        # network per fold, trained the way the evidence did best on the validation subjects
        if "euclidean" in methods:
            variant, why = _aligned_evidence(cfg, data, y, tr, va, seed, session, val_streams)
            proxy = {"variant": variant, "validation": why,
                     "model": "DE of the Euclidean-aligned windows + logistic regression"}
        else:
            proxy = baseline_choice.get("logreg")
            if proxy is None:
                variant, why, _ = _classical(cfg, data, y, tr, va, seed, session, val_streams,
                                             "logreg")
                proxy = {"variant": variant, "validation": why}
            proxy = {**proxy, "model": "per-subject z-scored DE + logistic regression"}
        evidence = proxy
        methods = ["none"] if proxy["variant"] == "none" else [m for m in methods if m != "none"]
    variants = _variants(cfg, methods, va)
    nets: dict[str, dict] = {}
    history: list[dict] = []
    for method in methods:
        def on_epoch(row: dict, method: str = method) -> None:
            row = {**row, "adaptation": method} if len(methods) > 1 else row
            if not first_epoch and not row.get("final"):
                first_epoch.append(int(row["epoch"]))
            if progress is not None:
                progress(row)

        # the first network keeps the fold's epoch checkpoint (the one a Ray driver holds);
        # a second one has its own beside it
        path = state_path
        if state_path is not None and method != methods[0]:
            path = state_path.with_name(f"{state_path.stem}-{method}{state_path.suffix}")
        nets[method] = fit_network(cfg, data, y, tr, va, seed, path, on_epoch,
                                   session if method != "none" else None, threads)
        history += [{**r, "adaptation": method} for r in nets[method]["history"]]

    def scorer_of(method: str) -> tuple[ProtocolScorer, Any]:
        fitted = nets[method]
        settings = {"method": method, "transductive": method != "none",
                    "calibration_s": float(ad.calibration_s), "online": False,
                    "half_life_s": ad.half_life_s}
        contract = fold_contract(cfg, data, fold, fitted, seed, settings)
        net = fitted["net"]

        def run(arrays: dict) -> np.ndarray:
            return predict(net, contract, normalise(contract, arrays))

        arrays = _network_arrays(data, fitted["info"]["modalities"])
        scorer = ProtocolScorer(arrays, run, method, data.eeg_kind, session, subjects,
                                ad.half_life_s)
        return scorer, contract

    built = {m: scorer_of(m) for m in methods}
    choice, why = variants[0], {}
    if len(variants) > 1:
        scorers = {v: (built[_method_of(v, methods)][0], v == "online") for v in variants}
        choice, why = _choose(cfg, scorers, val_streams, va, y, data.meta)
    method = _method_of(choice, methods)
    scorer, contract = built[method]
    reason = _reason(cfg, variants, choice, why, va, evidence)
    contract = dataclasses.replace(contract, subject_adaptation={
        **contract.subject_adaptation, "online": choice == "online",
        "chosen": {"variant": choice, "candidates": variants, "validation": why,
                   "reason": reason}})
    label = deep_label(cfg)
    frames += score_protocols(data.meta, {"fold": fold["name"]}, label, scorer,
                              choice == "online", test_streams, te, y, cfg.task,
                              ad.calibration_s, names, full=True)
    fitted = nets[method]
    with tempfile.TemporaryDirectory(prefix="physioaffect-checkpoint-") as tmp:
        save_checkpoint(fitted["net"].cpu(), tmp, contract)
        checkpoint = {f.name: f.read_bytes() for f in sorted(Path(tmp).iterdir()) if f.is_file()}
    preds = pd.concat(frames, ignore_index=True)
    metrics = {m: {p: metrics_of(gp, cfg.task, len(names))
                   for p, gp in g.groupby("protocol", sort=False)}
               for m, g in preds.groupby("model", sort=False)}
    fh = fitted["history"]
    summary = {"name": fold["name"], "index": fold["index"], "metrics": metrics,
               "adaptation": {"variant": choice, "method": method, "candidates": variants,
                              "validation": why, "reason": reason,
                              "calibration_s": float(ad.calibration_s),
                              "half_life_s": ad.half_life_s, "baselines": baseline_choice},
               "best_epoch": fitted["best_epoch"], "epochs_run": len(fh),
               "stopped": fh[-1].get("stopped", "") if fh else "",
               "resumed_from_epoch": first_epoch[0] - 1 if first_epoch else len(fh),
               "n_train": int(tr.size), "n_val": int(va.size), "n_test": int(te.size),
               "train_subjects": fold["train_subjects"], "val_subjects": fold["val_subjects"],
               "test_subjects": fold["test_subjects"], "device": str(fitted["device"]),
               "threads": threads.threads, "seconds": time.perf_counter() - t_start}
    trials: list[dict] = []
    if search is not None:
        summary["search"] = {k: v for k, v in search.items() if k != "trials"}
        trials = list(search.get("trials", []))
    return FoldResult(fold["name"], summary, preds, history, checkpoint, trials)


def _reason(cfg: TrainConfig, variants: list[str], choice: str, why: dict,
            va: np.ndarray, evidence: dict | None = None) -> str:
    """Why the fold's adaptation is what it is, in a sentence."""
    metric = "CCC" if cfg.task == "regression" else "accuracy"
    if evidence is not None:
        shown = _scores(evidence["validation"])
        first = (f"no adaptation against per-subject adaptation weighed with "
                 f"{evidence.get('model', 'DE + logistic regression')}'s live-protocol "
                 f"{metric} on the validation subjects, mean over recording order and "
                 f"one-sided starts, the simplest within one standard error of the best "
                 f"({shown}): {'none' if choice == 'none' else 'adapted'}")
        if len(variants) == 1:
            return first
        return f"{first}; then {_reason(cfg, variants, choice, why, va)}"
    if len(variants) == 1:
        if cfg.adaptation.method == "auto" and not va.size:
            return "no validation subject to choose on: inductive (none)"
        if cfg.adaptation.method == "none":
            return "adaptation.method: none"
        if cfg.adaptation.online is None:
            return (f"adaptation.method: {cfg.adaptation.method}; no validation subject to "
                    "choose offline or online on: online")
        return "as configured"
    if all(v is None for k, v in why.items() if k != "se"):
        return (f"no validation window after the first {cfg.adaptation.calibration_s:g} s "
                f"(sessions too short to calibrate): {choice}, the simplest candidate")
    return (f"{choice}: the simplest within one standard error of the best live-protocol "
            f"{metric} of the network on the validation subjects, mean over recording order "
            f"and one-sided starts ({_scores(why)})")


def _scores(why: dict) -> str:
    return ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} n/a" for k, v in why.items())
