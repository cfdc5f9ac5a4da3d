"""Re-score trained checkpoints on other data (another dataset, new sessions, transfer).

:func:`evaluate` takes a run folder (every fold checkpoint) or one checkpoint, checks that the
new data has the checkpoint's channels and sampling rate *before* reading it all, prepares the
windows with the checkpoint's own preprocessing pipeline and window length, and scores them as
``train`` scores its test subjects:

- the **live protocol** (the headline; :mod:`physioaffect.training.live`): each evaluated
  subject's session in recording order, the checkpoint's per-subject adaptation fitted on its
  first ``calibration_s`` and updated online if the checkpoint says so, exactly as
  ``physioaffect decode`` would;
- the **whole-session** score (transductive: each subject's adaptation fitted on all of its
  windows, labelled or not);
- the trivial and classical **baselines** on the same windows: training-fold majority and
  differential entropy + logistic regression, each evaluated subject predicted by a baseline
  fitted on the *other* evaluated subjects (leave-one-subject-out inside the evaluated data);
- a **warning** naming the evaluated subjects that a checkpoint was trained or validated on
  (same dataset): their scores are not cross-subject.

Cross-dataset example (DEAP -> DREAMER): train on DEAP with ``channels`` set to the 14 DREAMER
channels, then ``physioaffect evaluate RUN --dataset dreamer --root DREAMER_FOLDER``. The label
rule follows the new dataset (``gt3`` for DREAMER) unless given.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from physioaffect.datasets.base import natural_key
from physioaffect.log import logger
from physioaffect.training.config import (
    FACE_FROM_STREAMS,
    TrainConfig,
    TrainingError,
    default_label_rule,
)
from physioaffect.training.fold import class_names
from physioaffect.training.live import (
    LIVE,
    SESSION,
    ProtocolScorer,
    score_protocols,
    subject_streams,
)

__all__ = ["evaluate"]


def evaluate(source: str | Path, dataset: str, root: str | Path, out: str | Path,
             target: str | None = None, label_rule: str | None = None,
             cache_dir: str | None = None, max_subjects: int = 0,
             face: str | Path | None = None, face_trial_order: str | Path | None = None,
             face_fps: float | None = None, face_offset_s: float = 0.0) -> Path:
    """Score every checkpoint of ``source`` on ``dataset`` at ``root``; returns ``out``.

    ``face*``: the new data's face folder, for checkpoints trained with face features (see
    :class:`~physioaffect.training.TrainConfig`); without it their face branch is masked.

    Raises
    ------
    TrainingError
        No checkpoint, an existing ``out``, missing channels, another sampling rate, or a
        target the new data does not rate: before any window is prepared.
    """
    from physioaffect.datasets.base import DatasetError
    from physioaffect.datasets.labels import make_labels
    from physioaffect.training.checkpoint import (
        check_compatible,
        find_checkpoints,
        load_checkpoint,
        read_contract,
    )
    from physioaffect.training.config import FaceSettings, WindowSettings
    from physioaffect.training.data import open_reader, prepare_data
    from physioaffect.training.metrics import metrics_of

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise TrainingError(f"{out}: output folder exists (choose another --out)")
    ckpts = find_checkpoints(source)
    contracts = [read_contract(ck) for ck in ckpts]  # every contract validated before any data
    c0 = contracts[0]
    dataset0 = str(c0.provenance.get("dataset", ""))
    target = target or c0.target
    if label_rule is None:
        label_rule = c0.label_rule if dataset == dataset0 else \
            default_label_rule(dataset, target)
    modalities = list(c0.modalities)
    if ("face" in modalities and "eeg" in modalities and not face
            and dataset.lower() not in FACE_FROM_STREAMS):  # scored with the face branch masked
        modalities = [m for m in modalities if m != "face"]
    cfg = TrainConfig(dataset=dataset, root=str(root), model="eeg_deformer", target=target,
                      label_rule=label_rule, modalities=modalities, channels=None,
                      windows=WindowSettings(c0.window_s, c0.step_s),
                      preprocessing=c0.pipeline, baselines=["majority", "logreg"],
                      cache_dir=cache_dir,
                      max_subjects=max_subjects,
                      face=FaceSettings(folder=str(face) if face else None,
                                        trial_order=str(face_trial_order)
                                        if face_trial_order else None,
                                        fps=face_fps, offset_s=face_offset_s,
                                        min_valid=c0.face_min_valid))
    cfg = cfg.resolve()
    # Cheap compatibility check on one subject before preparing everything.
    reader = open_reader(cfg)
    try:
        first = reader.read_subject(reader.subjects[0])
    except DatasetError as err:
        raise TrainingError(str(err)) from None
    tr = first.trials[0]
    if "eeg" in c0.modalities:
        for c in contracts:
            check_compatible(c, tr.ch_names, tr.sfreq, f"{root}")
        cfg = dataclasses.replace(cfg, channels=list(c0.channels))
    data = prepare_data(cfg)
    try:
        y_kept, keep, report = make_labels(data.meta, label_rule, target)
    except DatasetError as err:
        raise TrainingError(str(err)) from None
    y = np.full(len(data.meta), np.nan)
    y[keep] = y_kept
    rows = np.flatnonzero(keep)
    subjects = data.meta["subject"].astype(str).to_numpy()
    streams = subject_streams(data.meta, np.arange(len(data.meta)), y, c0.window_s)
    frames, summary, overlap = [], {}, {}
    for ck in ckpts:
        model, contract = load_checkpoint(ck)
        names = class_names(label_rule)
        if contract.task == "classification" and len(contract.class_names) != len(names):
            raise TrainingError(f"{ck}: the checkpoint has {contract.n_classes} classes, the "
                                f"label rule {label_rule!r} gives {len(names)} "
                                "(choose --label-rule)")
        fold = str(contract.provenance.get("fold", ck.parent.name))
        seen = _trained_on(contract, dataset, set(subjects[rows]))
        if seen:
            overlap[fold] = seen
            logger.warning("%s: subject(s) %s of the evaluated data were training or validation "
                           "subjects of this checkpoint: their scores are not cross-subject",
                           fold, ", ".join(seen))
        scorer, online = _network_scorer(model, contract, data, subjects)
        cal = float((contract.subject_adaptation or {}).get("calibration_s", 60.0))
        tag = {"checkpoint": fold}
        frames += score_protocols(data.meta, tag, contract.label or contract.model, scorer,
                                  online, streams, rows, y, contract.task, cal, names,
                                  full=True)
        frames += _baselines(data, y, rows, subjects, contract.task, names, tag, streams, cal,
                             cfg.seed)
        summary[fold] = {"adaptation": _adaptation_of(contract),
                         "trained_on_evaluated_subjects": seen}
    out.mkdir(parents=True, exist_ok=True)
    pred = pd.concat(frames, ignore_index=True)
    pred.to_csv(out / "predictions.csv", index=False)
    n_classes = len(class_names(label_rule))
    task = "regression" if label_rule == "continuous" else "classification"
    for fold, g in pred.groupby("checkpoint", sort=False):
        per = {}
        for (m, proto), gm in g.groupby(["model", "protocol"], sort=False):
            per.setdefault(m, {})[proto] = {
                "overall": metrics_of(gm, task, n_classes),
                "per_subject": {s: metrics_of(gs, task, n_classes)
                                for s, gs in gm.groupby("subject")}}
        summary[fold]["models"] = per
        net = next(iter(per))  # the network comes first
        head = LIVE if LIVE in per[net] else SESSION
        summary[fold]["overall"] = per[net][head]["overall"]
        summary[fold]["per_subject"] = per[net][head]["per_subject"]
        summary[fold]["headline_protocol"] = head
    info = {"source": str(source), "dataset": dataset, "root": str(root), "target": target,
            "label_rule": label_rule, "labels": report, "channels": list(c0.channels),
            "trained_on_evaluated_subjects": overlap, "checkpoints": summary}
    (out / "evaluation.json").write_text(json.dumps(info, indent=2, default=_nan_none) + "\n")
    (out / "report.md").write_text(_report(source, dataset, root, target, label_rule, rows,
                                           c0, summary, overlap, task))
    return out


def _nan_none(o):
    if isinstance(o, np.floating | np.integer):
        return o.item()
    raise TypeError(type(o).__name__)


def _trained_on(contract, dataset: str, evaluated: set[str]) -> list[str]:
    """Evaluated subjects the checkpoint was trained or validated on (same dataset)."""
    prov = contract.provenance or {}
    if str(prov.get("dataset", "")).lower() != str(dataset).lower():
        return []
    used = {str(s) for s in [*(prov.get("train_subjects") or []),
                             *(prov.get("val_subjects") or [])]}
    return sorted(used & evaluated, key=natural_key)


def _adaptation_of(contract) -> dict:
    ad = dict(contract.subject_adaptation or {})
    return {k: ad.get(k) for k in ("method", "online", "half_life_s", "calibration_s")}


def _network_scorer(model, contract, data, subjects: np.ndarray):
    """A :class:`ProtocolScorer` for a checkpoint's network (its inputs built once)."""
    from physioaffect.models.feeding import adaptation_method, model_arrays, normalise, predict
    from physioaffect.preprocessing.alignment import SubjectAdaptation

    per = face_x = None
    every = np.arange(len(data.meta))
    if "peripheral" in contract.modalities:
        per = _in_order(contract.peripheral_features, data.peripheral_names, data.peripheral,
                        every)
    if "face" in contract.modalities and data.face is not None:
        face_x = _in_order(contract.face_features, data.face_names, data.face, every)
    eeg = data.raw if "eeg" in contract.modalities else None
    arrays = model_arrays(contract, eeg, per, face_x, "evaluate")
    method = adaptation_method(contract)
    kind = None if "eeg" not in contract.modalities else (
        "graphs" if (contract.input_kind or "raw") != "raw" else "raw")
    session = None
    if method != "none":  # every window of each subject, labelled or not
        session = SubjectAdaptation(method, kind).fit(arrays, subjects)

    def run(x: dict) -> np.ndarray:
        return predict(model, contract, normalise(contract, x))

    ad = contract.subject_adaptation or {}
    scorer = ProtocolScorer(arrays, run, method, kind, session, subjects, ad.get("half_life_s"))
    return scorer, bool(ad.get("online", False))


def _baselines(data, y: np.ndarray, rows: np.ndarray, subjects: np.ndarray, task: str,
               names: list[str], tag: dict, streams, cal: float, seed: int) -> list:
    """Majority and DE + logistic regression, each evaluated subject predicted by a baseline
    fitted on the other evaluated subjects (nothing when only one subject is evaluated)."""
    from physioaffect.training.fold import ClassicalBaseline, make_baseline

    if data.de is None or len(set(subjects[rows])) < 2:
        return []
    arrays = {"de": data.de}
    frames = []
    for b in ("majority", "logreg"):
        for s in streams:
            test = rows[subjects[rows] == s.subject]
            train = rows[subjects[rows] != s.subject]
            if not test.size or not train.size:
                continue
            yb = y[train] if task == "regression" else y[train].astype(int)
            if task == "classification" and len(np.unique(yb)) < 2 and b != "majority":
                continue
            fitted = ClassicalBaseline(make_baseline(b, task, seed), task).fit(
                {"de": data.de[train]}, yb)
            scorer = ProtocolScorer(arrays, fitted.predict, "none", None, None, subjects, None)
            frames += score_protocols(data.meta, tag, b, scorer, False, [s], test, y, task,
                                      cal, names, full=False)
    return frames


def _report(source, dataset, root, target, label_rule, rows, c0, summary: dict,
            overlap: dict, task: str) -> str:
    key = "ccc" if task == "regression" else "accuracy"
    lines = [f"# Evaluation of {source} on {dataset} ({root})", "",
             f"target `{target}`, rule `{label_rule}`, {len(rows)} labelled windows, "
             f"{len(c0.channels)} channels", ""]
    if overlap:
        who = "; ".join(f"{k}: {', '.join(v)}" for k, v in overlap.items())
        lines += [f"**WARNING: evaluated subjects the checkpoints were trained or validated on "
                  f"({who}). Their scores are not cross-subject.**", ""]
    ad = next(iter(summary.values()))["adaptation"]
    if ad.get("method", "none") == "none":
        lines.append("- per-subject adaptation: none (the checkpoints were trained without)")
    else:
        how = "updated online with every window" if ad.get("online") else \
            "then frozen"
        lines.append(f"- per-subject adaptation `{ad['method']}`: live = fitted on each "
                     f"subject's first {ad.get('calibration_s', 60):g} s in recording order, "
                     f"{how} (as `physioaffect decode`); session = fitted on all of each "
                     "subject's windows, labelled or not (**transductive**)")
    lines.append("- baselines: training-fold majority and DE + logistic regression, each "
                 "subject predicted by a baseline fitted on the other evaluated subjects")
    if any(s.get("headline_protocol") == SESSION for s in summary.values()):
        lines.append("- **no live-protocol score** for some checkpoints: no evaluated window "
                     "follows the calibration period (sessions shorter than it); their "
                     "`overall` is the whole-session score")
    lines += ["", f"| checkpoint | model | live {key} | session {key} |", "|---|---|---|---|"]
    for fold, s in summary.items():
        for m, protos in s["models"].items():
            live = protos.get(LIVE, {}).get("overall", {}).get(key, float("nan"))
            sess = protos.get(SESSION, {}).get("overall", {}).get(key, float("nan"))
            lines.append(f"| {fold} | {m} | {live:.3f} | {sess:.3f} |")
    return "\n".join(lines) + "\n"


def _in_order(wanted, have: list[str], x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Columns ``wanted`` of ``x[rows]`` (named ``have``); NaN where the new data lacks one."""
    out = np.full((len(rows), len(wanted)), np.nan, np.float32)
    for j, name in enumerate(wanted):
        if name in have:
            out[:, j] = x[rows, have.index(name)]
    return out
