"""Re-score trained checkpoints on other data (another dataset, new sessions, transfer).

:func:`evaluate` takes a run folder (every fold checkpoint) or one checkpoint, checks that the
new data has the checkpoint's channels and sampling rate *before* reading it all, prepares the
windows with the checkpoint's own preprocessing pipeline and window length, rebuilds the inputs
with the stored training normalisation (:func:`~physioaffect.training.checkpoint.build_inputs`)
and writes predictions and metrics per checkpoint and per subject.

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

from physioaffect.training.config import (
    FACE_FROM_STREAMS,
    TrainConfig,
    TrainingError,
    default_label_rule,
)
from physioaffect.training.runner import class_names

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
                      preprocessing=c0.pipeline, baselines=[], cache_dir=cache_dir,
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
        y, keep, report = make_labels(data.meta, label_rule, target)
    except DatasetError as err:
        raise TrainingError(str(err)) from None
    rows = np.flatnonzero(keep)
    frames, summary = [], {}
    for ck in ckpts:
        model, contract = load_checkpoint(ck)
        if contract.task == "classification" and \
                len(contract.class_names) != len(class_names(label_rule)):
            raise TrainingError(f"{ck}: the checkpoint has {contract.n_classes} classes, the "
                                f"label rule {label_rule!r} gives {len(class_names(label_rule))} "
                                "(choose --label-rule)")
        per = face_x = None
        if "peripheral" in contract.modalities:
            per = _in_order(contract.peripheral_features, data.peripheral_names,
                            data.peripheral, rows)
        if "face" in contract.modalities and data.face is not None:
            face_x = _in_order(contract.face_features, data.face_names, data.face, rows)
        eeg_x = data.raw[rows] if "eeg" in contract.modalities else None
        res = _predict_subjects(model, contract, data.meta["subject"].astype(str).to_numpy()[rows],
                                eeg_x, per, face_x)
        m = data.meta.iloc[rows]
        fold = str(contract.provenance.get("fold", ck.parent.name))
        df = pd.DataFrame({"checkpoint": fold, "model": contract.label or contract.model,
                           "subject": m["subject"].astype(str).to_numpy(),
                           "session": m["session"].to_numpy(), "trial": m["trial"].to_numpy(),
                           "onset_s": m["onset_s"].to_numpy(), "y_true": y})
        if contract.task == "regression":
            df["y_pred"] = res
        else:
            df["y_pred"] = res.argmax(1)
            for k in range(res.shape[1]):
                df[f"score_{k}"] = res[:, k]
        frames.append(df)
        summary[fold] = {
            "overall": metrics_of(df, contract.task, contract.n_classes),
            "per_subject": {s: metrics_of(g, contract.task, contract.n_classes)
                            for s, g in df.groupby("subject")}}
    out.mkdir(parents=True, exist_ok=True)
    pred = pd.concat(frames, ignore_index=True)
    pred.to_csv(out / "predictions.csv", index=False)
    info = {"source": str(source), "dataset": dataset, "root": str(root), "target": target,
            "label_rule": label_rule, "labels": report, "channels": list(c0.channels),
            "checkpoints": summary}
    (out / "evaluation.json").write_text(json.dumps(info, indent=2) + "\n")
    names = list(next(iter(summary.values()))["overall"])
    lines = [f"# Evaluation of {source} on {dataset} ({root})", "",
             f"target `{target}`, rule `{label_rule}`, {len(rows)} windows, "
             f"{len(c0.channels)} channels", "",
             "| checkpoint | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for k, s in summary.items():
        lines.append(f"| {k} | " + " | ".join(f"{s['overall'][n]:.3f}" for n in names) + " |")
    vals = {n: [s["overall"][n] for s in summary.values()] for n in names}
    lines.append("| mean ± std | " + " | ".join(
        f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}" for v in vals.values()) + " |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out


def _in_order(wanted, have: list[str], x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Columns ``wanted`` of ``x[rows]`` (named ``have``); NaN where the new data lacks one."""
    out = np.full((len(rows), len(wanted)), np.nan, np.float32)
    for j, name in enumerate(wanted):
        if name in have:
            out[:, j] = x[rows, have.index(name)]
    return out


def _predict_subjects(model, contract, subjects: np.ndarray, eeg: np.ndarray | None,
                      peripheral: np.ndarray | None, face: np.ndarray | None) -> np.ndarray:
    """Predictions for windows of several subjects: a checkpoint trained with per-subject
    adaptation gets each subject adapted with statistics of its own (unlabelled) windows, as in
    training; one without is scored in one pass."""
    from physioaffect.training.checkpoint import (
        adaptation_method,
        build_inputs,
        fit_adaptation,
        predict,
    )

    if adaptation_method(contract) == "none":
        return predict(model, contract, build_inputs(contract, eeg, peripheral, face))
    res = None
    for s in pd.unique(subjects):
        idx = np.flatnonzero(subjects == s)
        part = [None if a is None else a[idx] for a in (eeg, peripheral, face)]
        adapter = fit_adaptation(contract, *part)
        r = predict(model, contract, build_inputs(contract, *part, adaptation=adapter))
        if res is None:
            res = np.empty((len(subjects),) + r.shape[1:], dtype=r.dtype)
        res[idx] = r
    return res
