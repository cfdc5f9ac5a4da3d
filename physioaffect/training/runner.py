"""Run every fold of a protocol (serially or as Ray tasks) into one run folder, resumably.

Run folder layout::

    RUN/
      config.json, config.yaml, config.toml   resolved TrainConfig (rerun with --config)
      status.json                             "running" until every fold is done, then "complete"
      labels.json                             label rule, class counts, dropped windows
      folds.json                              train/val/test subjects of every fold
      folds/<fold>/train_state.pt             epoch checkpoint (deleted when the fold finishes)
      folds/<fold>/checkpoint/                network + pipeline + normalisation (load_checkpoint)
      folds/<fold>/predictions.csv            test predictions of the network and the baselines
      folds/<fold>/history.csv                learning curve
      folds/<fold>/search.csv                 trials of the nested model search (``search``)
      folds/<fold>/search_trials.json         finished trials of an unfinished fold (deleted
                                              when the fold finishes)
      folds/<fold>/fold.json                  written last: the fold is finished
      predictions.csv, metrics_folds.csv, metrics_subjects.csv, summary.json, report.md,
      figures/*.png                            written when every fold is finished

A fold is *computed* (:func:`compute_fold`, returning a :class:`FoldResult`) and *written*
(:func:`write_fold`) by the driver, the process that runs :func:`train`: in-process by the
serial executor, from Ray tasks on any node by the Ray executor
(:mod:`physioaffect.training.cluster`), so that both give the same folder.

A killed run continues with ``resume=True``: finished folds are skipped, an unfinished fold
continues from its last finished epoch. A run is reported complete only when ``status.json``
says so, and that is written after the last fold and the report.
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from physioaffect.log import logger, verbose
from physioaffect.training.config import PROTOCOL_ALIASES, TrainConfig, TrainingError
from physioaffect.training.data import (
    AxisNormaliser,
    PreparedData,
    adapt_subjects,
    face_present,
    low_quality_windows,
    prepare_data,
)

__all__ = ["train", "run_fold", "compute_fold", "write_fold", "FoldResult", "deep_label",
           "class_names", "plan_folds"]

_CLASS_NAMES = {"seed3": ["negative", "neutral", "positive"], "posneg": ["negative", "positive"]}
#: Config sections that may differ between a run and its resumption.
_RESUME_FREE = ("executor",)


def class_names(rule: str) -> list[str]:
    from physioaffect.datasets.labels import RULES

    if RULES[rule].n_classes is None:
        return []
    return _CLASS_NAMES.get(rule, ["low", "high"])


def deep_label(cfg: TrainConfig) -> str:
    """Name of the network in tables: ``emt``, or ``emt[eeg+peripheral]`` when fused."""
    if cfg.modalities == ["eeg"] and cfg.model != "fusion":
        return cfg.model
    return f"{cfg.model}[{'+'.join(cfg.modalities)}]"


def _json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n")
    tmp.replace(path)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, frozenset | set):
        return sorted(o)
    raise TypeError(type(o).__name__)


# ---------------------------------------------------------------------------------- quality
def quality_report(cfg: TrainConfig, data: PreparedData) -> dict:
    """Windows below the quality threshold, per subject and signal, and what was done."""
    subjects = data.meta["subject"].astype(str).to_numpy()
    table: dict[str, dict[str, dict[str, int]]] = {}
    for sig, low in low_quality_windows(data, cfg.quality.threshold).items():
        for subj in sorted(set(subjects)):
            rows = subjects == subj
            table.setdefault(subj, {})[sig] = {"windows": int(rows.sum()),
                                               "low_quality": int((low & rows).sum())}
    unusable = [sig for sig, low in low_quality_windows(data, cfg.quality.threshold).items()
                if low.size and low.all()]
    return {"threshold": cfg.quality.threshold, "action": cfg.quality.action,
            "per_subject": table, "unusable_everywhere": unusable}


# ------------------------------------------------------------------------------------ folds
def plan_folds(cfg: TrainConfig, data: PreparedData) -> tuple[list[dict], np.ndarray, dict]:
    """Labels and folds; raises before any training if a fold is unusable.

    Returns
    -------
    folds : list of dict
        ``name``, ``index``, ``train``/``val``/``test`` (row indices into ``data.meta``),
        ``train_subjects``, ``val_subjects``, ``test_subjects``.
    y : ndarray, shape (n,)
        Targets of every window (NaN or -1 where the window has no label).
    label_report : dict
    """
    from physioaffect.datasets.base import DatasetError
    from physioaffect.datasets.labels import make_labels
    from physioaffect.datasets.protocols import get_protocol

    try:
        y_kept, keep, report = make_labels(data.meta, cfg.label_rule, cfg.target)
        protocol = get_protocol(PROTOCOL_ALIASES[cfg.protocol], **cfg.protocol_kwargs)
        folds = protocol.folds(data.meta)
    except (DatasetError, TypeError) as err:
        raise TrainingError(str(err).splitlines()[0]) from None
    y = np.full(len(data.meta), np.nan)
    y[keep] = y_kept
    if cfg.quality.action == "drop" and data.quality:
        low = np.zeros(len(data.meta), dtype=bool)
        for flags in low_quality_windows(data, cfg.quality.threshold).values():
            if not flags.all():  # a signal unusable everywhere (units, window too short) is
                low |= flags     # reported, not a reason to drop every window
        report["dropped_low_quality"] = int((keep & low).sum())
        report["n_kept"] = int((keep & ~low).sum())
        keep = keep & ~low
    n_classes = len(class_names(cfg.label_rule))
    out = []
    for i, f in enumerate(folds):
        tr, va, te = (np.flatnonzero(m & keep) for m in f.masks(data.meta))
        if tr.size == 0 or te.size == 0:
            raise TrainingError(f"fold {f.name}: no labelled {'training' if tr.size == 0 else 'test'}"
                                f" windows after the label rule {cfg.label_rule!r}")
        if n_classes:
            missing = sorted(set(range(n_classes)) - set(y[tr].astype(int)))
            if missing:
                names = [class_names(cfg.label_rule)[k] for k in missing]
                raise TrainingError(
                    f"fold {f.name}: training windows have no class {', '.join(names)} "
                    f"({cfg.target} under rule {cfg.label_rule}); choose another protocol or "
                    "label rule")
        out.append({"name": f.name, "index": i, "train": tr, "val": va, "test": te,
                    "train_subjects": f.subjects("train"), "val_subjects": f.subjects("val"),
                    "test_subjects": f.subjects("test")})
    return out, y, report


# ------------------------------------------------------------------------------- one fold
def _baseline(name: str, task: str, seed: int):
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


def _classical_features(cfg: TrainConfig, data: PreparedData, rows: np.ndarray,
                        fit_rows: np.ndarray) -> np.ndarray:
    """DE (and peripheral and face, when those modalities are used) features, NaN -> training
    mean."""
    parts = []
    if "eeg" in cfg.modalities and data.de is not None:
        parts.append(data.de[rows].reshape(len(rows), -1))
    for name, x in (("peripheral", data.peripheral), ("face", data.face)):
        if name not in cfg.modalities or x is None:
            continue
        p = x[rows].astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an all-NaN feature column: imputed with 0 below
            mean = np.nanmean(x[fit_rows].astype(np.float64), axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        parts.append(np.where(np.isfinite(p), p, mean))
    if not parts:
        return np.zeros((len(rows), 1))
    x = np.concatenate(parts, axis=1).astype(np.float64)
    return np.nan_to_num(x)


def _pred_frame(cfg: TrainConfig, data: PreparedData, fold: dict, model: str, rows: np.ndarray,
                y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None) -> pd.DataFrame:
    m = data.meta.iloc[rows]
    df = pd.DataFrame({"fold": fold["name"], "model": model,
                       "subject": m["subject"].astype(str).to_numpy(),
                       "session": m["session"].to_numpy(), "trial": m["trial"].to_numpy(),
                       "stimulus": m["stimulus"].astype(str).to_numpy(),
                       "onset_s": m["onset_s"].to_numpy(), "y_true": y_true, "y_pred": y_pred})
    if scores is not None:
        for k in range(scores.shape[1]):
            df[f"score_{k}"] = scores[:, k]
    return df


def fold_contract(cfg: TrainConfig, data: PreparedData, fold: dict, info: dict,
                  norms: dict[str, AxisNormaliser], target_scaling: tuple[float, float] | None,
                  seed: int, best_epoch: int, epochs_run: int):
    """The :class:`~physioaffect.models.CheckpointContract` of a trained fold."""
    from physioaffect.models.contract import CheckpointContract

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
        normalisation={k: n.standardisation() for k, n in norms.items()},
        peripheral_signals=tuple(data.peripheral_signals),
        peripheral_features=tuple(data.peripheral_names), face_features=tuple(data.face_names),
        face_min_valid=float(cfg.face.min_valid), target_scaling=target_scaling,
        subject_adaptation={"method": cfg.adaptation.method,
                            "transductive": bool(cfg.adaptation.transductive),
                            "calibration_s": float(cfg.adaptation.calibration_s)},
        quality_gate={"threshold": cfg.quality.threshold, "action": cfg.quality.action},
        provenance={"dataset": cfg.dataset, "fold": fold["name"],
                    "train_subjects": fold["train_subjects"], "val_subjects": fold["val_subjects"],
                    "test_subjects": fold["test_subjects"], "seed": seed,
                    "best_epoch": best_epoch, "epochs_run": epochs_run})


@dataclass
class FoldResult:
    """What a finished fold produced, sent to the driver, which alone writes the run folder.

    Attributes
    ----------
    name : str
        Fold name (``folds/<name>/``).
    summary : dict
        ``fold.json``: metrics per model, epochs, subjects, device, seconds, search choice.
    predictions : DataFrame
        Test windows of the network and the baselines (``predictions.csv``).
    history : list of dict
        Learning curve, one row per epoch (``history.csv``).
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


def _fit_network(cfg: TrainConfig, data: PreparedData, y: np.ndarray, tr: np.ndarray,
                 va: np.ndarray, te: np.ndarray, seed: int, state_path: Path | None = None,
                 progress: Any = None) -> dict[str, Any]:
    """Train a fresh network on rows ``tr`` with early stopping on rows ``va``; ``te`` are the
    rows it will be tested on (a search trial: its validation rows), never trained on.

    The training body of a fold, and of each trial of a model search (same code, so a
    search scores exactly what a fold would train).

    Returns
    -------
    dict
        ``net`` (best validation state loaded), ``info`` (:func:`build_network`'s), ``norms``,
        ``take`` (rows -> normalised inputs), ``kind``, ``device``, ``target_scaling``,
        ``history``, ``best_epoch``.
    """
    from physioaffect.training.engine import build_network, fit, resolve_device, seed_everything

    task = cfg.task
    n_classes = len(class_names(cfg.label_rule))

    # The network: fresh per fold, normalised with training-subject statistics only.
    device = resolve_device(cfg)
    seed_everything(seed)
    net, info = build_network(
        cfg, n_chans=len(data.ch_names), n_times=data.n_times, sfreq=data.sfreq,
        n_outputs=1 if task == "regression" else n_classes,
        eeg_input=None if data.eeg_input is None else data.eeg_input[:2],
        n_peripheral=0 if data.peripheral is None else int(data.peripheral.shape[1]),
        n_face=0 if data.face is None else int(data.face.shape[1]))
    from physioaffect.models.inputs import input_kind

    norms: dict[str, AxisNormaliser] = {}
    arrays: dict[str, np.ndarray] = {}
    if "eeg" in info["modalities"]:
        arrays["eeg"] = data.eeg_input
        norms["eeg"] = AxisNormaliser(input_kind(info["input"]).norm_axes).fit(
            data.eeg_input, rows=tr)
    if "peripheral" in info["modalities"]:
        arrays["peripheral"] = data.peripheral
        norms["peripheral"] = AxisNormaliser((1,)).fit(data.peripheral, rows=tr)
        # windows without any usable peripheral feature: the branch is masked, not fed zeros
        per_mask = np.isfinite(data.peripheral).any(axis=1).astype(np.float32)
    if "face" in info["modalities"]:
        arrays["face"] = data.face
        norms["face"] = AxisNormaliser((1,)).fit(data.face, rows=tr)
        face_mask = face_present(data.face).astype(np.float32)

    def take(rows: np.ndarray) -> dict[str, np.ndarray]:
        out = {k: norms[k].transform(v[rows]) for k, v in arrays.items()}
        if "face" in arrays:
            out["face_present"] = face_mask[rows]
        if "peripheral" in arrays and info["fusion"]:
            out["peripheral_present"] = per_mask[rows]
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
        net, kind, cfg, seed, (take(tr), ty(tr)), (take(va), ty(va)) if va.size else None,
        device, state_path=state_path, on_epoch=progress)
    return {"net": net, "info": info, "norms": norms, "take": take, "kind": kind,
            "device": device, "target_scaling": target_scaling, "history": history,
            "best_epoch": best_epoch}


def compute_fold(cfg_dict: dict, fold: dict, data: PreparedData, y: np.ndarray,
                 state_path: Path | None = None, progress: Any = None,
                 search: dict | None = None) -> FoldResult:
    """Train and test one fold; returns its :class:`FoldResult` and writes nothing outside the
    process's temporary folder (and ``state_path``).

    Parameters
    ----------
    cfg_dict : dict
        :meth:`TrainConfig.to_dict` of the run (with a search's chosen setting applied).
    fold : dict
        A fold of :func:`plan_folds` (row indices into ``data``).
    state_path : Path or None
        Epoch checkpoint of the network's training: continued from if it exists, rewritten
        after every epoch.
    progress : callable(dict) or None
        Called with each epoch's history row.
    search : dict or None
        The nested search behind ``cfg_dict`` (:func:`physioaffect.training.search.choose`):
        stored in the summary, its trials in ``trials``.
    """
    import torch

    from physioaffect.models.contract import save_checkpoint
    from physioaffect.training.engine import predict_arrays
    from physioaffect.training.metrics import metrics_of

    cfg = TrainConfig.from_dict(cfg_dict)
    if cfg.compute.threads:
        torch.set_num_threads(cfg.compute.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    t_start = time.perf_counter()
    task = cfg.task
    names = class_names(cfg.label_rule)
    n_classes = len(names)
    seed = cfg.seed + 1000 * fold["index"]
    tr, va, te = (np.asarray(fold[k], dtype=int) for k in ("train", "val", "test"))
    trva = np.concatenate([tr, va])
    y_te = y[te] if task == "regression" else y[te].astype(int)
    frames = []

    # Baselines on the same folds (training + validation windows; no hyper-parameters chosen).
    for b in cfg.baselines:
        est = _baseline(b, task, seed)
        xf = _classical_features(cfg, data, trva, trva)
        xt = _classical_features(cfg, data, te, trva)
        yb = y[trva] if task == "regression" else y[trva].astype(int)
        est.fit(xf, yb)
        pred = est.predict(xt)
        scores = None
        if task == "classification":
            if hasattr(est, "predict_proba"):
                scores = est.predict_proba(xt)
            else:
                d = est.decision_function(xt)
                scores = np.stack([-d, d], axis=1) if d.ndim == 1 else d
        frames.append(_pred_frame(cfg, data, fold, b, te, y_te, pred, scores))

    first_epoch: list[int] = []  # a fold resumed from its epoch checkpoint starts after it

    def on_epoch(row: dict) -> None:
        if not first_epoch and not row.get("final"):
            first_epoch.append(int(row["epoch"]))
        if progress is not None:
            progress(row)

    fitted = _fit_network(cfg, data, y, tr, va, te, seed, state_path, on_epoch)
    net, info, norms, kind, device = (fitted[k] for k in ("net", "info", "norms", "kind",
                                                          "device"))
    target_scaling, history, best_epoch = (fitted[k] for k in ("target_scaling", "history",
                                                               "best_epoch"))
    out = predict_arrays(net, kind, fitted["take"](te), device, cfg.compute.amp)
    label = deep_label(cfg)
    if task == "regression":
        pred = out.reshape(len(out), -1)[:, 0] * target_scaling[1] + target_scaling[0]
        frames.append(_pred_frame(cfg, data, fold, label, te, y_te, pred, None))
    else:
        prob = torch.softmax(torch.as_tensor(out), dim=1).numpy()
        frames.append(_pred_frame(cfg, data, fold, label, te, y_te, prob.argmax(1), prob))

    contract = fold_contract(cfg, data, fold, info, norms, target_scaling, seed, best_epoch,
                             len(history))
    with tempfile.TemporaryDirectory(prefix="physioaffect-checkpoint-") as tmp:
        save_checkpoint(net.cpu(), tmp, contract)
        checkpoint = {f.name: f.read_bytes() for f in sorted(Path(tmp).iterdir()) if f.is_file()}
    preds = pd.concat(frames, ignore_index=True)
    metrics = {m: metrics_of(g, task, n_classes) for m, g in preds.groupby("model", sort=False)}
    summary = {"name": fold["name"], "index": fold["index"], "metrics": metrics,
               "best_epoch": best_epoch, "epochs_run": len(history),
               "stopped": history[-1].get("stopped", "") if history else "",
               "resumed_from_epoch": first_epoch[0] - 1 if first_epoch else len(history),
               "n_train": int(tr.size), "n_val": int(va.size), "n_test": int(te.size),
               "train_subjects": fold["train_subjects"], "val_subjects": fold["val_subjects"],
               "test_subjects": fold["test_subjects"], "device": str(device),
               "seconds": time.perf_counter() - t_start}
    trials: list[dict] = []
    if search is not None:
        summary["search"] = {k: v for k, v in search.items() if k != "trials"}
        trials = list(search.get("trials", []))
    return FoldResult(fold["name"], summary, preds, history, checkpoint, trials)


def write_fold(run_dir: str | Path, result: FoldResult) -> bool:
    """Write a finished fold into ``run_dir/folds/<name>/`` (only the driver calls this).

    ``fold.json`` is written last and marks the fold finished; the fold's epoch checkpoint is
    then deleted. A fold already written is left as it is (a second result of the same fold,
    e.g. from an attempt whose node was declared dead, is dropped).

    Returns
    -------
    bool
        Whether this call wrote the fold.
    """
    fold_dir = Path(run_dir) / "folds" / result.name
    done = fold_dir / "fold.json"
    if done.exists():
        return False
    ckpt = fold_dir / "checkpoint"
    ckpt.mkdir(parents=True, exist_ok=True)
    for name, blob in result.checkpoint.items():
        if Path(name).name != name or name.startswith("."):
            raise TrainingError(f"fold {result.name}: checkpoint file name {name!r} is not a "
                                "plain file name")
        _write_bytes(ckpt / name, blob)
    result.predictions.to_csv(fold_dir / "predictions.csv", index=False)
    pd.DataFrame(result.history).to_csv(fold_dir / "history.csv", index=False)
    if result.trials:
        pd.DataFrame(_trial_table(result.trials)).to_csv(fold_dir / "search.csv", index=False)
    _json(done, result.summary)
    for name in ("train_state.pt", TRIALS_NAME):  # the fold's unfinished state, now done
        if (fold_dir / name).exists():
            (fold_dir / name).unlink()
    return True


#: Finished search trials of an unfinished fold (a resumed run does not run them again).
TRIALS_NAME = "search_trials.json"


def stored_trials(fold_dir: Path) -> dict[tuple[int, int], dict]:
    """Search trials of ``fold_dir`` finished before the run was stopped, by (setting, inner)."""
    path = Path(fold_dir) / TRIALS_NAME
    if not path.is_file():
        return {}
    try:
        rows = json.loads(path.read_text())
        return {(int(t["setting"]), int(t["inner"])): t for t in rows}
    except (ValueError, KeyError, TypeError):  # a damaged file: the trials run again
        return {}


def store_trial(fold_dir: Path, trial: dict) -> None:
    """Keep a finished search trial of an unfinished fold (the driver only)."""
    known = stored_trials(fold_dir)
    known[(int(trial["setting"]), int(trial["inner"]))] = trial
    Path(fold_dir).mkdir(parents=True, exist_ok=True)
    _json(Path(fold_dir) / TRIALS_NAME, sorted(known.values(),
                                               key=lambda t: (t["setting"], t["inner"])))


def _trial_table(trials: list[dict]) -> list[dict]:
    """Rows of ``search.csv``: one per trial (setting x inner fold), hyper-parameters as
    columns."""
    rows = []
    for t in trials:
        row = {"setting": t["setting"], "inner_fold": t["inner"]}
        row.update(t["params"])
        row.update({k: t[k] for k in ("metric", "score", "best_epoch", "epochs_run")})
        row["train_subjects"] = " ".join(t["train_subjects"])
        row["val_subjects"] = " ".join(t["val_subjects"])
        rows.append(row)
    return rows


def _write_bytes(path: Path, blob: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)


def run_fold(cfg_dict: dict, fold: dict, data: PreparedData, y: np.ndarray, run_dir: str,
             progress: Any = None, search: dict | None = None,
             on_trial: Any = None) -> dict:
    """Compute one fold in this process and write it into ``run_dir`` (the serial executor).

    Safe to call again on a finished fold (returns the stored summary) or on an interrupted one
    (continues from its epoch checkpoint ``folds/<name>/train_state.pt``).

    Parameters
    ----------
    search : dict or None
        The fold's nested search (:func:`physioaffect.training.search.plan_search`): its
        trials run here first, then the fold trains with the chosen setting.
    on_trial : callable(dict) or None
        Called with each finished search trial (progress).
    """
    fold_dir = Path(run_dir) / "folds" / fold["name"]
    done = fold_dir / "fold.json"
    if done.exists():
        return json.loads(done.read_text())
    fold_dir.mkdir(parents=True, exist_ok=True)
    chosen = None
    if search is not None:
        from physioaffect.training.search import choose, run_trial

        known = stored_trials(fold_dir)  # a resumed fold: trials finished before the stop
        trials = []
        for t in search["trials"]:
            done_trial = known.get((t["setting"], t["inner"]))
            if done_trial is None:
                done_trial = run_trial(cfg_dict, t, data, y)
                store_trial(fold_dir, done_trial)
            trials.append(done_trial)
            if on_trial is not None:
                on_trial(done_trial)
        cfg_dict, chosen = choose(cfg_dict, search, trials)
    result = compute_fold(cfg_dict, fold, data, y, state_path=fold_dir / "train_state.pt",
                          progress=progress, search=chosen)
    write_fold(run_dir, result)
    return result.summary


# -------------------------------------------------------------------------------- the run
def default_run_dir(cfg: TrainConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.dataset}-{cfg.model}-{cfg.protocol}-{cfg.target}-{stamp}"


def _check_resume(saved: dict, cfg: TrainConfig, run_dir: Path) -> TrainConfig:
    old = TrainConfig.from_dict(saved, where=str(run_dir / "config.json")).resolve().to_dict()
    new = cfg.to_dict()
    diff = [k for k in new if k not in _RESUME_FREE and old.get(k) != new[k]]
    if diff:
        raise TrainingError(f"{run_dir}: --resume with a different configuration "
                            f"(fields {', '.join(diff)}); resume with the same options or "
                            "use another --out")
    return TrainConfig.from_dict({**old, **{k: new[k] for k in _RESUME_FREE}}).resolve()


@verbose
def train(cfg: TrainConfig, out: str | Path | None = None, resume: bool = False,
          progress: bool = True, console: Any = None, *, verbose: Any = None) -> Path:
    """Run every fold of ``cfg`` into a run folder; returns the folder.

    Parameters
    ----------
    cfg : TrainConfig
        Resolved here (unknown names fail before any data is read).
    out : path or None
        Run folder (default ``runs/<dataset>-<model>-<protocol>-<target>-<time>``). It must not
        exist unless ``resume``.
    resume : bool
        Continue an interrupted run in ``out`` (the configuration must match).
    progress : bool
        Progress per fold and epoch: bars on a terminal console, else one plain line per epoch
        (on ``console``, or through the package logger at INFO).
    console : rich.console.Console or None
        Where the CLI shows progress (None: the ``physioaffect`` logger).
    verbose : bool, str, int or None
        Log level for this call (MNE's convention; see :func:`physioaffect.set_log_level`).

    Raises
    ------
    TrainingError
        Bad names, an existing run folder without ``resume``, a fold without a class,
        unreadable data: all before training starts.
    """
    cfg = cfg.resolve()
    run_dir = Path(out) if out is not None else default_run_dir(cfg)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not resume:
            raise TrainingError(f"{run_dir}: run folder exists (use --resume to continue it, "
                                "or another --out)")
        cfg_path = run_dir / "config.json"
        if not cfg_path.is_file():
            raise TrainingError(f"{run_dir}: not a run folder (no config.json) - cannot resume")
        cfg = _check_resume(json.loads(cfg_path.read_text()), cfg, run_dir)
        status = json.loads((run_dir / "status.json").read_text()) \
            if (run_dir / "status.json").exists() else {}
        if status.get("status") == "complete":
            _say(console, f"run already complete: {run_dir}")
            return run_dir
    elif resume:
        raise TrainingError(f"{run_dir}: nothing to resume (folder does not exist)")
    if cfg.executor.kind == "ray" and cfg.executor.address:
        from physioaffect.training.cluster import check_address

        check_address(cfg.executor.address)  # in seconds, before the data are prepared
    # Data and folds first: a bad protocol or label rule fails without leaving a run folder.
    _say(console, f"preparing {cfg.dataset} windows from {cfg.root} ...")
    data = prepare_data(cfg, progress=progress)
    data.info["adaptation"] = adapt_subjects(cfg, data)
    folds, y, label_report = plan_folds(cfg, data)
    searches: dict[str, dict] = {}
    if cfg.search.space:
        from physioaffect.training.search import plan_search

        searches = plan_search(cfg, data, folds, y)
    ray_executor = None
    if cfg.executor.kind == "ray":  # connects and probes every node before the folder exists
        from physioaffect.training.cluster import RayExecutor

        ray_executor = RayExecutor(cfg, console)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir)
    _json(run_dir / "status.json", {"status": "running", "started": time.time()})
    _json(run_dir / "labels.json", label_report)
    _json(run_dir / "quality.json", quality_report(cfg, data))
    _json(run_dir / "folds.json", [{k: f[k] for k in ("name", "train_subjects", "val_subjects",
                                                      "test_subjects")}
                                   | {"n_train": int(f["train"].size), "n_val": int(f["val"].size),
                                      "n_test": int(f["test"].size)} for f in folds])
    _json(run_dir / "data.json", {"n_windows": len(data.meta), "channels": data.ch_names,
                                  "sfreq": data.sfreq, "n_times": data.n_times,
                                  "subjects": sorted(data.meta["subject"].astype(str).unique()),
                                  "peripheral_features": data.peripheral_names,
                                  "face_features": data.face_names, **data.info})
    cfg_dict = cfg.to_dict()
    t0 = time.perf_counter()
    if ray_executor is not None:
        summaries = ray_executor.run(cfg_dict, folds, data, y, run_dir, searches)
    else:
        summaries = _run_serial(cfg, cfg_dict, folds, data, y, run_dir, progress, console,
                                searches)
    from physioaffect.training.report import write_report

    write_report(run_dir)
    _json(run_dir / "status.json", {"status": "complete", "folds": len(summaries),
                                    "seconds": time.perf_counter() - t0,
                                    "finished": time.time()})
    return run_dir


def _say(console: Any, msg: str) -> None:
    """A progress message: on the CLI's console, else through the package logger."""
    if console is not None:
        console.print(msg)
    else:
        logger.info(msg)


def _epoch_line(fold: str, row: dict, epochs: int) -> str:
    """One plain line per epoch: fold, epoch, losses, validation metric."""
    parts = [f"fold {fold} epoch {row['epoch']}/{epochs}", f"train_loss {row['train_loss']:.4f}"]
    if "val_loss" in row:
        parts.append(f"val_loss {row['val_loss']:.4f}")
    if "val_accuracy" in row:
        parts.append(f"val_accuracy {row['val_accuracy']:.3f}")
    parts.append(f"{row.get('seconds', 0.0):.1f} s")
    return ", ".join(parts)


def _fold_line(cfg: TrainConfig, s: dict) -> str:
    """One plain line when a fold ends: kept epoch, why it stopped, test metric vs baselines."""
    label = deep_label(cfg)
    key = "accuracy" if cfg.task == "classification" else "ccc"
    scores = ", ".join(f"{m} {v.get(key, float('nan')):.3f}" for m, v in s["metrics"].items())
    return (f"fold {s['name']} done: kept epoch {s['best_epoch']} of {s['epochs_run']} "
            f"({s.get('stopped', '')}); test {key}: {scores}"
            if label in s["metrics"] else f"fold {s['name']} done")


def _trial_line(t: dict) -> str:
    """One plain line per finished search trial."""
    params = ", ".join(f"{k}={v}" for k, v in t["params"].items())
    return (f"fold {t['fold']} search: setting {t['setting'] + 1} ({params}), inner fold "
            f"{t['inner'] + 1}: {t['metric']} {t['score']:.4f}")


def _choice_line(s: dict) -> str:
    """One plain line with a fold's chosen search setting."""
    c = s.get("search")
    if not c:
        return ""
    params = ", ".join(f"{k}={v}" for k, v in c["chosen"].items())
    return (f"fold {s['name']} search chose {params} (mean {c['metric']} "
            f"{c['scores'][c['chosen_setting']]:.4f} on validation subjects)")


def _run_serial(cfg, cfg_dict, folds, data, y, run_dir, progress, console,
                searches=None) -> list[dict]:
    searches = searches or {}

    def one(f: dict, on_epoch: Any = None, on_trial: Any = None) -> dict:
        return run_fold(cfg_dict, f, data, y, str(run_dir), progress=on_epoch,
                        search=searches.get(f["name"]), on_trial=on_trial)

    if not progress:
        return [one(f) for f in folds]
    terminal = console is not None and getattr(console, "is_terminal", False)
    say = (lambda m: console.print(m, soft_wrap=True)) if console is not None else logger.info
    if not terminal:  # a log file: one plain line per epoch and per fold, flushed as they come
        out = []
        for i, f in enumerate(folds):
            say(f"fold {f['name']} ({i + 1}/{len(folds)}): training on "
                f"{len(f['train_subjects'])} subjects, validating on "
                f"{', '.join(f['val_subjects']) or 'none'}, testing {', '.join(f['test_subjects'])}")

            def on_epoch(row: dict, name: str = f["name"],
                         budget: int = cfg.optim.epochs_for(len(f["train"]))) -> None:
                if not row.get("final"):
                    say(_epoch_line(name, row, budget))

            s = one(f, on_epoch, lambda t: say(_trial_line(t)))
            if s.get("search"):
                say(_choice_line(s))
            say(_fold_line(cfg, s))
            out.append(s)
        return out
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    out = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        t_folds = bar.add_task("folds", total=len(folds), info="")
        for f in folds:
            t_ep = bar.add_task(f"  {f['name']} epochs",
                                total=cfg.optim.epochs_for(len(f["train"])), info="")

            def on_epoch(row: dict, t_ep: int = t_ep) -> None:
                info = f"train {row['train_loss']:.3f}"
                if "val_loss" in row:
                    info += f" val {row['val_loss']:.3f}"
                if "val_accuracy" in row:
                    info += f" acc {row['val_accuracy']:.2f}"
                bar.update(t_ep, completed=row["epoch"], info=info)

            s = one(f, on_epoch, lambda t: bar.console.print(_trial_line(t)))
            if s.get("search"):
                bar.console.print(_choice_line(s))
            # the bar ends at the epochs actually run, and says why
            bar.update(t_ep, total=s["epochs_run"], completed=s["epochs_run"],
                       info=f"kept epoch {s['best_epoch']}; {s.get('stopped', '')}")
            m = s["metrics"].get(deep_label(cfg), {})
            key = "accuracy" if "accuracy" in m else "ccc"
            bar.update(t_folds, advance=1,
                       info=f"last {f['name']}: {key} {m.get(key, float('nan')):.3f}")
            out.append(s)
    return out
