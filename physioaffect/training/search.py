"""Nested model selection: hyper-parameters chosen inside each outer fold, on validation subjects.

The nested cross-subject protocol: an outer fold has test subjects T, validation subjects V and
training subjects R. Every setting of the grid (:class:`~physioaffect.training.config.
SearchSettings`) is trained on inner folds made of R and V only and scored on the inner
validation subjects:

- ``inner_folds: 1``: train on R, score on V (the outer fold's own validation split);
- ``inner_folds: k >= 2``: the subjects of R and V are dealt into k groups; each group is scored
  once by a network trained on the others.

The setting with the best mean score is then trained on the outer fold (R, early stopping on V)
and tested on T, exactly like a fold without a search. T takes no part in any trial: the trial
rows are drawn from the outer fold's training and validation rows only, and every trial records
the subjects it used. All settings of an inner fold start from the same seed, so they are
compared on the same initialisation and batch order.

:func:`plan_search` builds the trials (and refuses a grid whose networks cannot be built, or an
inner split without a class, before any fold starts); :func:`run_trial` trains one;
:func:`choose` picks the setting. The serial executor runs them in-process, the Ray executor as
Ray tasks; the code is the same.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from physioaffect.datasets.base import natural_key
from physioaffect.training.config import TrainConfig, TrainingError, apply_setting
from physioaffect.training.data import PreparedData

__all__ = ["plan_search", "run_trial", "choose"]


def _check_settings(cfg: TrainConfig, data: PreparedData, settings: list[dict]) -> None:
    """Build the network of every setting once (a bad value fails here, before any fold)."""
    from physioaffect.training.engine import build_network
    from physioaffect.training.fold import class_names

    n_classes = len(class_names(cfg.label_rule))
    base = cfg.to_dict()
    for setting in settings:
        c = TrainConfig.from_dict(apply_setting(base, setting))
        try:
            build_network(
                c, n_chans=len(data.ch_names), n_times=data.n_times, sfreq=data.sfreq,
                n_outputs=1 if c.task == "regression" else n_classes,
                eeg_input=None if data.eeg_input is None else data.eeg_input[:2],
                n_peripheral=0 if data.peripheral is None else int(data.peripheral.shape[1]),
                n_face=0 if data.face is None else int(data.face.shape[1]))
        except TrainingError as err:
            shown = ", ".join(f"{k}={v!r}" for k, v in setting.items())
            raise TrainingError(f"search.space: setting {shown}: {err}") from None


def _inner_splits(cfg: TrainConfig, data: PreparedData, fold: dict,
                  y: np.ndarray) -> list[dict]:
    """Inner training / validation rows of an outer fold (its test rows never enter)."""
    from physioaffect.training.fold import class_names

    k = cfg.search.inner_folds
    tr, va = (np.asarray(fold[key], dtype=int) for key in ("train", "val"))
    if k == 1:
        if va.size == 0:
            raise TrainingError(f"search.inner_folds: 1 scores settings on the outer fold's "
                                f"validation subjects, and fold {fold['name']} has none; set "
                                "search.inner_folds to 2 or more")
        splits = [{"train": tr, "val": va, "train_subjects": list(fold["train_subjects"]),
                   "val_subjects": list(fold["val_subjects"])}]
    else:
        rows = np.sort(np.concatenate([tr, va]))
        subject = data.meta["subject"].astype(str).to_numpy()[rows]
        subjects = sorted(set(subject), key=natural_key)
        if k > len(subjects) - 1:
            raise TrainingError(f"search.inner_folds: {k} inner folds need at least {k + 1} "
                                f"subjects besides the test subjects; fold {fold['name']} has "
                                f"{len(subjects)}")
        splits = []
        for j in range(k):
            held = subjects[j::k]
            val = np.isin(subject, held)
            splits.append({"train": rows[~val], "val": rows[val],
                           "train_subjects": [s for s in subjects if s not in held],
                           "val_subjects": held})
    names = class_names(cfg.label_rule)
    for j, sp in enumerate(splits):
        if names:
            missing = sorted(set(range(len(names))) - set(y[sp["train"]].astype(int)))
            if missing:
                raise TrainingError(
                    f"search: inner fold {j + 1} of fold {fold['name']} has no "
                    f"{', '.join(names[m] for m in missing)} training window; choose another "
                    "search.inner_folds")
    return splits


def plan_search(cfg: TrainConfig, data: PreparedData, folds: list[dict],
                y: np.ndarray) -> dict[str, dict]:
    """The search of every outer fold: settings and trials (setting x inner fold).

    Raises
    ------
    TrainingError
        A setting whose network cannot be built, an inner split without validation subjects
        or without a class: before any fold starts.

    Returns
    -------
    dict
        Fold name -> ``{"fold", "settings", "metric", "inner_folds", "trials"}``; a trial is
        ``{"fold", "fold_index", "setting", "params", "inner", "metric", "train", "val",
        "train_subjects", "val_subjects"}`` (rows index ``data``).
    """
    settings = cfg.search.settings()
    _check_settings(cfg, data, settings)
    out = {}
    for f in folds:
        splits = _inner_splits(cfg, data, f, y)
        trials = [{"fold": f["name"], "fold_index": f["index"], "setting": i, "params": s,
                   "inner": j, "metric": cfg.search.metric, **sp}
                  for i, s in enumerate(settings) for j, sp in enumerate(splits)]
        out[f["name"]] = {"fold": f["name"], "settings": settings, "metric": cfg.search.metric,
                          "inner_folds": len(splits), "trials": trials}
    return out


def run_trial(cfg_dict: dict, trial: dict, data: PreparedData, y: np.ndarray) -> dict[str, Any]:
    """Train one setting on one inner fold and score it on the inner validation rows.

    Returns
    -------
    dict
        The trial's identity (``fold``, ``setting``, ``params``, ``inner``, subjects),
        ``score`` (``metric`` at the epoch early stopping keeps; NaN if not finite),
        ``best_epoch``, ``epochs_run`` and ``subjects_used`` (subjects of the rows it trained
        and was scored on).
    """
    import torch

    from physioaffect.compute import ThreadPolicy
    from physioaffect.training.data import fit_subject_adaptation
    from physioaffect.training.fold import fit_network

    cfg = TrainConfig.from_dict(apply_setting(cfg_dict, trial["params"]))
    threads = ThreadPolicy(cfg.compute.threads)
    threads.adjust()
    torch.use_deterministic_algorithms(True, warn_only=True)
    tr, va = (np.asarray(trial[k], dtype=int) for k in ("train", "val"))
    # the same seed for every setting of an inner fold: settings differ only in themselves
    seed = cfg.seed + 1000 * trial["fold_index"] + 100 * (trial["inner"] + 1)
    # a configured adaptation is searched with; under ``auto`` settings are compared without
    # one (the fold then chooses its adaptation on its validation subjects)
    adaptation = None
    if cfg.adaptation.method not in ("none", "auto"):
        adaptation = fit_subject_adaptation(cfg, data, np.concatenate([tr, va]),
                                            cfg.adaptation.method)
    fitted = fit_network(cfg, data, y, tr, va, seed, adaptation=adaptation, threads=threads)
    best = fitted["best_epoch"]
    row = next((r for r in fitted["history"] if r["epoch"] == best), {})
    score = float(row.get(trial["metric"], math.nan))
    used = data.meta["subject"].astype(str).to_numpy()[np.concatenate([tr, va])]
    return {**{k: trial[k] for k in ("fold", "setting", "params", "inner", "metric",
                                     "train_subjects", "val_subjects")},
            "score": score if math.isfinite(score) else math.nan, "best_epoch": best,
            "epochs_run": len(fitted["history"]), "subjects_used": sorted(set(used), key=natural_key)}


def choose(cfg_dict: dict, search: dict, trials: list[dict]) -> tuple[dict, dict]:
    """The setting with the best mean score over the inner folds (first one on ties).

    Returns
    -------
    cfg_dict : dict
        The run's config dict with the chosen setting applied.
    chosen : dict
        ``chosen`` (the setting), ``chosen_setting`` (its index), ``scores`` (mean per setting),
        ``metric``, ``inner_folds``, ``subjects_used`` and ``trials``.
    """
    settings, metric = search["settings"], search["metric"]
    scores = []
    for i in range(len(settings)):
        s = [t["score"] for t in trials if t["setting"] == i]
        s = [v for v in s if v is not None and math.isfinite(v)]
        scores.append(float(np.mean(s)) if s else math.nan)
    finite = [i for i, v in enumerate(scores) if math.isfinite(v)]
    if not finite:
        raise TrainingError(f"fold {search['fold']}: no search setting has a finite {metric} "
                            "on the validation subjects")
    sign = -1.0 if metric == "val_accuracy" else 1.0  # accuracy: higher is better
    best = min(finite, key=lambda i: (sign * scores[i], i))
    used = sorted({s for t in trials for s in t.get("subjects_used", [])}, key=natural_key)
    chosen = {"metric": metric, "inner_folds": search["inner_folds"], "chosen_setting": best,
              "chosen": settings[best], "scores": scores, "subjects_used": used,
              "trials": trials}
    return apply_setting(cfg_dict, settings[best]), chosen
