"""Run reports: metrics tables recomputed from the saved predictions, figures, Markdown.

Every number in ``report.md`` comes from ``predictions.csv`` through
:func:`physioaffect.training.metrics.metrics_of`: per fold (``metrics_folds.csv``), per test
subject (``metrics_subjects.csv``, all of a subject's test windows pooled), per protocol
(:mod:`physioaffect.training.live`), and summarised as mean +- standard deviation over subjects
and over folds (``summary.json``). The headline is the **live protocol**, the score a live user
gets (calibration on the first seconds of the session, recording order); the whole-session
(transductive) score stands beside it, named as such. The trivial baseline (training-fold
majority) and the classical baselines stand beside the network. :func:`compare_runs` puts
several runs side by side.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from physioaffect.datasets.base import natural_key
from physioaffect.training.config import TrainingError
from physioaffect.training.live import LIVE, SESSION, protocol_name
from physioaffect.training.metrics import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    metrics_of,
)

__all__ = ["write_report", "compare_runs", "run_status", "load_predictions", "report_figures",
           "per_subject_figure", "confusion_figure", "learning_curves_figure"]


def run_status(run_dir: str | Path) -> dict:
    """``status.json`` of a run plus the number of finished folds."""
    d = Path(run_dir)
    if not (d / "config.json").is_file():
        raise TrainingError(f"{d}: not a run folder (no config.json)")
    st = json.loads((d / "status.json").read_text()) if (d / "status.json").exists() else {}
    folds = json.loads((d / "folds.json").read_text()) if (d / "folds.json").exists() else []
    done = [f["name"] for f in folds if (d / "folds" / f["name"] / "fold.json").exists()]
    return {"status": st.get("status", "unknown"), "n_folds": len(folds), "done": done}


def load_predictions(run_dir: str | Path) -> pd.DataFrame:
    """Predictions of every finished fold, concatenated (column ``protocol``: runs written
    before the live protocol existed hold whole-session scores only, named ``session``)."""
    d = Path(run_dir)
    parts = [pd.read_csv(p, dtype={"subject": str, "stimulus": str})
             for p in sorted((d / "folds").glob("*/predictions.csv"))
             if (p.parent / "fold.json").exists()]
    if not parts:
        raise TrainingError(f"{d}: no finished fold has predictions")
    pred = pd.concat(parts, ignore_index=True)
    if "protocol" not in pred.columns:
        pred.insert(2, "protocol", SESSION)
    return pred


def headline_protocol(pred: pd.DataFrame) -> str:
    """The protocol a report leads with: ``live`` where the run has it."""
    return LIVE if (pred["protocol"] == LIVE).any() else SESSION


def _tables(pred: pd.DataFrame, task: str, n_classes: int):
    names = list(REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS)
    rows_f, rows_s = [], []
    for (fold, model, proto), g in pred.groupby(["fold", "model", "protocol"], sort=False):
        rows_f.append({"fold": fold, "model": model, "protocol": proto, "n": len(g),
                       **metrics_of(g, task, n_classes)})
    for (subj, model, proto), g in pred.groupby(["subject", "model", "protocol"], sort=False):
        rows_s.append({"subject": subj, "model": model, "protocol": proto, "n": len(g),
                       **metrics_of(g, task, n_classes)})
    folds = pd.DataFrame(rows_f)
    subjects = pd.DataFrame(rows_s)
    subjects = subjects.iloc[sorted(range(len(subjects)),
                                    key=lambda i: natural_key(subjects["subject"].iloc[i]))]
    return names, folds, subjects.reset_index(drop=True)


def _summary(table: pd.DataFrame, names: list[str], models: list[str],
             protocol: str | None = None) -> dict:
    if protocol is not None:
        table = table[table["protocol"] == protocol]
    out = {}
    for m in models:
        t = table[table["model"] == m]
        if t.empty:
            continue
        out[m] = {k: {"mean": float(np.nanmean(t[k])) if t[k].notna().any() else float("nan"),
                      "std": float(np.nanstd(t[k])) if t[k].notna().any() else float("nan"),
                      "n": int(t[k].notna().sum())} for k in names}
    return out


def _fmt(s: dict) -> str:
    if not np.isfinite(s["mean"]):
        return "n/a"
    return f"{s['mean']:.3f} ± {s['std']:.3f}"


def _run_config(d: Path):
    """The run's resolved :class:`TrainConfig` (a version-1 config.json is converted)."""
    from physioaffect.training.config import TrainConfig

    return TrainConfig.from_dict(json.loads((d / "config.json").read_text()),
                                 where=str(d / "config.json"))


def _pipeline_line(p) -> str:
    band = f"{p.l_freq or 0:g}-{p.h_freq:g} Hz" if p.h_freq else f"high-pass {p.l_freq or 0:g} Hz"
    parts = [f"{p.phase} {band} band-pass (order {p.filter_order})"]
    if p.notch_freq:
        parts.append(f"notch {p.notch_freq:g} Hz")
    if p.reference != "none":
        parts.append(f"{p.reference} reference")
    if p.detect_bads:
        parts.append("bad channels " + ("interpolated" if p.interpolate_bads else "marked"))
    if p.resample_sfreq:
        parts.append(f"resampled to {p.resample_sfreq:g} Hz")
    return ", ".join(parts)


def _executor_line(cfg) -> str:
    e = cfg.executor
    if e.kind != "ray":
        return "serial (one process)"
    where = f"Ray cluster {e.address}" if e.address else "local Ray"
    gpus = "auto" if e.gpus_per_fold is None else f"{e.gpus_per_fold:g}"
    return (f"{where}; {e.cpus_per_fold:g} CPU and {gpus} GPU per fold; up to {e.max_retries} "
            f"retries of a fold whose worker or node died; data via {e.data}")


def _data_warnings(d: Path) -> list[str]:
    """Lines that say what was wrong with the data (non-finite EEG ...), if anything."""
    info = json.loads((d / "data.json").read_text()) if (d / "data.json").exists() else {}
    bad = info.get("nonfinite_eeg_windows") or {}
    if not bad:
        return []
    total = sum(bad.values())
    per = ", ".join(f"{s}: {n}" for s, n in bad.items())
    return [f"- **WARNING: {total} of {info.get('n_windows', '?')} EEG windows hold NaN or "
            f"infinite samples** ({per}); the network saw them as zeros (the training mean), "
            "the DE baselines as the training mean of each feature"]


def _quality_lines(d: Path) -> list[str]:
    """Windows of low signal quality per subject and signal, and what training did with them."""
    if not (d / "quality.json").exists():
        return []
    q = json.loads((d / "quality.json").read_text())
    per = q.get("per_subject") or {}
    signals = sorted({sig for row in per.values() for sig in row})
    if not signals:
        return []
    done = {"mask": "peripheral features of a low-quality signal treated as missing; EEG kept",
            "drop": "windows with any low-quality signal left out of training and test",
            "keep": "used as they are"}[q.get("action", "keep")]
    lines = ["", "## Signal quality", "",
             f"Windows whose quality is below {q.get('threshold', 0.5):g} (low / all), per "
             f"subject and signal; action `{q.get('action')}`: {done}.", "",
             "| subject | " + " | ".join(signals) + " |", "|---" * (len(signals) + 1) + "|"]
    for subj, row in per.items():
        cells = [f"{row[s]['low_quality']} / {row[s]['windows']}" if s in row else "n/a"
                 for s in signals]
        lines.append(f"| {subj} | " + " | ".join(cells) + " |")
    if q.get("unusable_everywhere"):
        lines += ["", f"**{', '.join(q['unusable_everywhere'])}: low quality in every window** "
                  "(e.g. a unit the criteria cannot judge, or windows shorter than the signal's "
                  "minimum): its features were "
                  + ("missing throughout" if q.get("action") == "mask" else "used as they are")
                  + "; see docs/features.md for the minimum window and units per signal."]
    return lines


def _training_lines(d: Path) -> list[str]:
    """Per fold: epochs run, the epoch whose weights were kept, and why training stopped."""
    rows = []
    for f in sorted((d / "folds").glob("*/fold.json")) if (d / "folds").is_dir() else []:
        s = json.loads(f.read_text())
        rows.append(f"| {s['name']} | {', '.join(s.get('test_subjects', []))} | "
                    f"{s.get('epochs_run', '?')} | {s.get('best_epoch', '?')} | "
                    f"{s.get('stopped', '') or 'n/a'} |")
    if not rows:
        return []
    return ["", "## Training (network)", "",
            "| fold | test subjects | epochs run | kept weights of epoch | why it stopped |",
            "|---|---|---|---|---|", *rows]


def _fold_summaries(d: Path) -> list[dict]:
    if not (d / "folds").is_dir():
        return []
    out = [json.loads(f.read_text()) for f in (d / "folds").glob("*/fold.json")]
    return sorted(out, key=lambda s: (s.get("index", 0), natural_key(s.get("name", ""))))


def _search_lines(d: Path) -> list[str]:
    """Per outer fold: the hyper-parameters the nested search chose on validation subjects."""
    rows = []
    metric = ""
    for s in _fold_summaries(d):
        c = s.get("search")
        if not c:
            continue
        metric = c["metric"]
        chosen = ", ".join(f"{k}={v}" for k, v in c["chosen"].items())
        score = c["scores"][c["chosen_setting"]]
        rows.append(f"| {s['name']} | {', '.join(s.get('test_subjects', []))} | {chosen} | "
                    f"{score:.4f} | {len(c['scores'])} | {', '.join(c.get('subjects_used', []))} |")
    if not rows:
        return []
    return ["", "## Model selection (nested, validation subjects only)", "",
            f"Each setting was trained on the inner folds of the outer fold's training and "
            f"validation subjects and scored by `{metric}` on the inner validation subjects; "
            "the test subjects took no part (last column: every subject a trial used). All "
            "trials: `folds/*/search.csv`.", "",
            f"| fold | test subjects | chosen setting | mean {metric} | settings tried | "
            "subjects the search used |", "|---|---|---|---|---|---|", *rows]


def _retry_lines(d: Path) -> list[str]:
    """Folds that needed more than one attempt (a worker or node died)."""
    lines = [f"- fold {s['name']}: {s['attempts']} attempts (a worker or node died); the last "
             f"continued from epoch {s.get('resumed_from_epoch', 0)}"
             for s in _fold_summaries(d) if int(s.get("attempts", 1)) > 1]
    return ["", "## Retries", "", *lines] if lines else []


def write_report(run_dir: str | Path) -> Path:
    """Write metrics CSV/JSON, figures and ``report.md`` of a run folder; returns report.md."""
    d = Path(run_dir)
    cfg = _run_config(d)
    status = run_status(d)
    labels = json.loads((d / "labels.json").read_text()) if (d / "labels.json").exists() else {}
    task = cfg.task
    pred = load_predictions(d)
    head = headline_protocol(pred)
    n_classes = len([c for c in pred.columns if c.startswith("score_")]) or 0
    names, folds, subjects = _tables(pred, task, n_classes)
    models = list(dict.fromkeys(pred["model"]))
    deep = [m for m in models if m not in ("majority", "logreg", "svm")]
    protocols = list(dict.fromkeys(pred["protocol"]))
    pred.to_csv(d / "predictions.csv", index=False)
    folds.to_csv(d / "metrics_folds.csv", index=False)
    subjects.to_csv(d / "metrics_subjects.csv", index=False)
    summary = {"status": status["status"], "folds_done": len(status["done"]),
               "n_folds": status["n_folds"], "task": task, "models": models,
               "headline_protocol": head,
               "over_subjects": _summary(subjects, names, models, head),
               "over_folds": _summary(folds, names, models, head),
               "protocols": {p: {"over_subjects": _summary(subjects, names, models, p),
                                 "over_folds": _summary(folds, names, models, p)}
                             for p in protocols},
               "adaptation": _adaptation_choices(d), "labels": labels}
    (d / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    head_subjects = subjects[subjects["protocol"] == head]
    head_pred = pred[pred["protocol"] == head]
    figs = _figures(d, head_pred, head_subjects, folds, names[0], models, deep, task, n_classes)
    complete = len(status["done"]) == status["n_folds"] and status["n_folds"] > 0
    lines = [f"# {cfg.dataset} · {cfg.model} · {cfg.protocol} · {cfg.target}", ""]
    if not complete:
        lines += [f"**INCOMPLETE RUN: {len(status['done'])} of {status['n_folds']} folds "
                  "finished. These numbers are not a result.**", ""]
    step = "" if cfg.windows.step_s is None else f", step {cfg.windows.step_s:g} s"
    lines += [
        f"- modalities: {', '.join(cfg.modalities)}; window {cfg.windows.window_s:g} s{step}; "
        f"epochs: {_epoch_budget(cfg)} (early stopping on validation subjects, patience "
        f"{cfg.optim.patience}); seed {cfg.seed}",
        f"- preprocessing: {_pipeline_line(cfg.preprocessing)}",
        f"- executor: {_executor_line(cfg)}",
        *_data_warnings(d),
        f"- labels: rule `{cfg.label_rule}` ({labels.get('description', '')}) on "
        f"`{cfg.target}`; {labels.get('n_kept', '?')} of {labels.get('n_windows', '?')} windows "
        f"kept, dropped {labels.get('dropped_nan', 0)} NaN and {labels.get('dropped_by_rule', 0)} "
        f"by rule; class counts {labels.get('class_counts', labels.get('mean', ''))}",
        f"- {status['n_folds']} folds; test subjects contribute nothing to training, the "
        "training normalisation, early stopping or the choice of adaptation; validation = "
        "held-out training subjects; models re-initialised per fold; baselines fitted on the "
        "same training windows",
        _adaptation_line(cfg, summary["adaptation"]),
        _recipe_line(cfg, summary["adaptation"]),
        "- `majority` = training-fold majority class (trivial; regression: training mean); "
        "`logreg`/`svm` (regression: ridge / linear SVR) = "
        f"differential entropy ({cfg.de_bands}) features"
        f"{' + peripheral features' if 'peripheral' in cfg.modalities else ''}", ""]
    cal = cfg.adaptation.calibration_s
    if head == LIVE:
        lines += ["## The score a live user gets (live protocol, mean ± std over test "
                  "subjects)", "",
                  f"Each test subject's session in recording order (stimuli laid end to end); "
                  f"the per-subject adaptation fitted on its first {cal:g} s only, as the live "
                  "decoder does (`physioaffect decode`), and updated online where the fold "
                  f"chose so; scored on the windows after those {cal:g} s.", ""]
    else:
        lines += ["## Mean ± std over test subjects (whole session)", ""]
        if LIVE not in protocols:
            lines += [f"**No live-protocol score**: no test window follows the first {cal:g} s "
                      "of its session (sessions shorter than the calibration, or a run written "
                      "before the live protocol); these are whole-session scores.", ""]
    lines += _metric_table(summary["over_subjects"], models, names)
    if head == LIVE and SESSION in protocols:
        lines += ["", "## Whole-session score (transductive; not what a live user gets)", "",
                  "Each test subject's adaptation fitted on **all** of its windows, later ones "
                  "included, every window scored. Mean ± std over test subjects.", ""]
        lines += _metric_table(summary["protocols"][SESSION]["over_subjects"], models, names)
    lines += _calibration_lines(summary, deep, names[0], cal, cfg)
    lines += _choice_lines(summary["adaptation"], task)
    lines += ["", f"## Mean ± std over folds ({head})", ""]
    lines += _metric_table(summary["over_folds"], models, names)
    key = names[0]
    lines += ["", f"## Per subject ({key}, {head})", "",
              "| subject | n | " + " | ".join(models) + " |", "|---" * (len(models) + 2) + "|"]
    for subj, g in head_subjects.groupby("subject", sort=False):
        vals = {r["model"]: r[key] for _, r in g.iterrows()}
        lines.append(f"| {subj} | {int(g['n'].iloc[0])} | "
                     + " | ".join(f"{vals.get(m, float('nan')):.3f}" for m in models) + " |")
    lines += _quality_lines(d)
    lines += _training_lines(d)
    lines += _search_lines(d)
    lines += _retry_lines(d)
    lines += ["", "## Figures", ""] + [f"![{p.stem}](figures/{p.name})" for p in figs]
    lines += ["", "Files: `predictions.csv` (every test window under every protocol, column "
              "`protocol`), `metrics_folds.csv`, `metrics_subjects.csv`, `summary.json`, "
              "`config.yaml` (rerun with `physioaffect train --config config.yaml`), "
              "`folds/*/checkpoint` (load with `physioaffect.training.load_checkpoint`)."]
    path = d / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _metric_table(stats: dict, models: list[str], names: list[str]) -> list[str]:
    rows = ["| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for m in models:
        if m in stats:
            rows.append(f"| {m} | " + " | ".join(_fmt(stats[m][k]) for k in names) + " |")
    return rows


def _calibration_lines(summary: dict, deep: list[str], key: str, cal: float, cfg) -> list[str]:
    """The network's live score against calibration length and under one-sided starts."""
    protos = summary["protocols"]
    curve = [c for c in (30.0, 60.0, 120.0, 300.0) if protocol_name(c, cal) in protos]
    one_sided = [p for p in protos if "_onesided_" in p]
    if not curve and not one_sided:
        return []
    cols = [f"{c:g} s" for c in curve] + [p.split("_onesided_")[1] + " first"
                                          for p in one_sided]
    out = ["", f"## Live {key} against calibration length and a one-sided start", "",
           "Calibration on the first N s of each test subject's session (recording order); "
           f"one-sided: the session starts with stimuli of one class only (as many as fill "
           f"{cal:g} s), the others following. Mean ± std over test subjects.", "",
           "| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m in deep:
        cells = []
        for p in [protocol_name(c, cal) for c in curve] + one_sided:
            st = protos.get(p, {}).get("over_subjects", {}).get(m, {}).get(key)
            cells.append(_fmt(st) if st else "n/a")
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    return out


def _adaptation_choices(d: Path) -> list[dict]:
    """Per fold: the adaptation it chose, among which, and why (``fold.json``)."""
    out = []
    for s in _fold_summaries(d):
        ad = s.get("adaptation")
        if ad:
            out.append({"fold": s["name"], "test_subjects": s.get("test_subjects", []), **ad})
    return out


def _choice_lines(choices: list[dict], task: str) -> list[str]:
    if not choices:
        return []
    metric = "CCC" if task == "regression" else "accuracy"
    out = ["", "## Per-subject adaptation chosen per fold", "",
           "`none`: training statistics only; `offline`: the reference fitted on the "
           "calibration period, then frozen; `online`: updated with every window after it. "
           f"Chosen by the live-protocol {metric} on the fold's validation subjects (mean over "
           "recording order and one-sided starts): the simplest within one standard error "
           "(`se`) of the best.", "",
           "| fold | test subjects | network | baselines | why |", "|---|---|---|---|---|"]
    for c in choices:
        base = ", ".join(f"{b}: {v['variant']}" for b, v in (c.get("baselines") or {}).items())
        out.append(f"| {c['fold']} | {', '.join(c['test_subjects'])} | {c['variant']} "
                   f"({c.get('method', '')}) | {base} | {c.get('reason', '')} |")
    return out


def _adaptation_line(cfg, choices: list[dict] | None = None) -> str:
    """What the run did with each subject's own data, in one line."""
    ad = cfg.adaptation
    what = {"euclidean": "Euclidean alignment of raw EEG (He & Wu 2019), other inputs "
                         "z-scored", "subject_zscore": "z-score of every input"}
    if ad.method == "none":
        return ("- per-subject adaptation: none (inductive: nothing of a test subject is used "
                "before it is scored)")
    used = sorted({c["variant"] for c in choices or []})
    how = (f"chosen per fold among none / offline / online on validation subjects (used: "
           f"{', '.join(used) or 'n/a'})" if ad.method == "auto" else f"`{ad.method}`")
    from physioaffect.training.data import eeg_input_kind

    kind = eeg_input_kind(cfg)
    method = ad.candidate(None if kind is None else kind.name)
    methods = sorted({c.get("method") for c in choices or [] if c.get("method") != "none"}) \
        or [method]
    forget = ("no forgetting" if ad.half_life_s is None
              else f"half-life {ad.half_life_s:g} s")
    return (f"- per-subject adaptation: {how}; "
            + "; ".join(f"`{m}` = {what.get(m, m)}" for m in methods)
            + f"; statistics of each subject's own unlabelled windows: training and validation "
              f"subjects their whole sessions, test subjects their first "
              f"{ad.calibration_s:g} s (live protocol; online: updated window by window, "
              f"{forget}) or, in the whole-session score only, all of their windows "
              "(**transductive**)")


def _epoch_budget(cfg) -> str:
    o = cfg.optim
    if o.epochs is not None:
        return f"at most {o.epochs}"
    lo, hi = o.AUTO_EPOCHS
    return f"at most enough for {o.min_steps} optimiser steps, {lo}-{hi}"


def _recipe_line(cfg, choices: list[dict] | None = None) -> str:
    from physioaffect.training.data import eeg_input_kind

    o = cfg.optim
    kind = eeg_input_kind(cfg)
    if o.augment == "none":
        aug = "augmentation: none"
    elif kind is not None and kind.name == "raw":
        aug = f"augmentation: {o.augment} (p = {o.augment_prob:g}) of raw EEG training windows"
    else:
        what = "no EEG" if kind is None else f"{kind.name} inputs"
        aug = (f"augmentation: none ({o.augment} applies to raw EEG windows; this network "
               f"takes {what})")
    bn = ("recomputed on training windows before each validation (precise BN)"
          if o.precise_bn else "running averages of training batches")
    return (f"- optimiser: AdamW lr {o.lr:g}, weight decay {o.weight_decay:g}, batch "
            f"{o.batch_size}, cosine schedule; {aug}; batch-norm statistics {bn}")


#: Axis label of each metric (with its unit where it has one).
_METRIC_LABELS = {
    "accuracy": "accuracy (fraction of test windows)",
    "balanced_accuracy": "balanced accuracy (mean recall over classes)",
    "macro_f1": "macro-F1 (mean F1 over classes)",
    "auc": "ROC AUC",
    "pcc": "Pearson correlation r",
    "ccc": "concordance correlation (CCC)",
}


def _metric_label(key: str, target: str) -> str:
    if key == "rmse":
        return f"RMSE ({target} rating units)"
    return _METRIC_LABELS.get(key, key)


def _class_names(d: Path, n_classes: int) -> list[str]:
    """Class names of a run, as its checkpoints store them (``class k`` when unknown)."""
    for path in sorted((d / "folds").glob("*/checkpoint/contract.json")):
        try:
            names = json.loads(path.read_text()).get("class_names") or []
        except (OSError, ValueError, AttributeError):
            continue
        if len(names) == n_classes:
            return [str(n) for n in names]
    return [f"class {k}" for k in range(n_classes)]


def _loss_label(cfg) -> str:
    """What the training and validation curves measure."""
    loss = getattr(cfg.optim, "loss", None)  # a configurable loss, if the config has one
    if loss:
        return f"{loss} loss"
    if cfg.task == "regression":
        return "MSE loss (standardised target)"
    smoothing = float(getattr(cfg.optim, "label_smoothing", 0.0) or 0.0)
    return "cross-entropy loss (nats" + (f", label smoothing {smoothing:g})"
                                         if smoothing else ")")


def _chance_line(key: str, task: str, n_classes: int, subjects: pd.DataFrame,
                 models: list[str]) -> tuple[float, str] | None:
    """Where a model with no information lands on ``key``, and how to say it."""
    if task == "classification" and n_classes and key in ("accuracy", "balanced_accuracy"):
        return 1.0 / n_classes, f"chance (1/{n_classes})"
    if key == "auc":
        return 0.5, "chance (AUC 0.5)"
    if key in ("pcc", "ccc"):
        return 0.0, "no relation (0)"
    if "majority" in models:
        vals = subjects.loc[subjects["model"] == "majority", key]
        if vals.notna().any():
            return float(vals.mean()), "majority baseline (mean over subjects)"
    return None


def per_subject_figure(subjects: pd.DataFrame, key: str, models: list[str], task: str,
                       n_classes: int, target: str = "rating"):
    """Bars of ``key`` per test subject and model, with the chance (or baseline) line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    subs = list(dict.fromkeys(subjects["subject"]))
    n_bars = len(subs) * max(len(models), 1)
    fig, ax = plt.subplots(figsize=(min(16.0, max(6.0, 0.15 * n_bars + 2.5)), 3.8))
    width = 0.8 / max(len(models), 1)
    colours = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for i, m in enumerate(models):
        t = subjects[subjects["model"] == m].set_index("subject").reindex(subs)
        style = ({"color": "0.7", "hatch": "//", "edgecolor": "0.4"} if m == "majority"
                 else {"color": next(colours)})
        label = "majority (trivial baseline)" if m == "majority" else m
        ax.bar(np.arange(len(subs)) + i * width, t[key], width, label=label, **style)
    chance = _chance_line(key, task, n_classes, subjects, models)
    if chance is not None:
        ax.axhline(chance[0], color="k", linestyle="--", linewidth=1.2, label=chance[1])
    ax.set_xticks(np.arange(len(subs)) + 0.4 - width / 2, [str(s) for s in subs],
                  rotation=90 if len(subs) > 8 else 0)
    if key in ("accuracy", "balanced_accuracy", "macro_f1", "auc"):
        ax.set_ylim(0, 1)
    ax.set_ylabel(_metric_label(key, target))
    ax.set_xlabel("test subject")
    ax.set_title(f"{_metric_label(key, target).split(' (')[0]} per test subject "
                 "(each subject unseen in training)")
    # outside the axes, so that no bar is hidden
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8)
    fig.tight_layout()
    return fig


def confusion_figure(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str],
                     model: str):
    """Confusion matrix (counts and row percentages) with class names on both axes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize
    from sklearn.metrics import confusion_matrix

    k = len(class_names)
    cm = confusion_matrix(y_true, y_pred, labels=list(range(k)))
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(2.2 + 1.1 * k, 1.8 + 1.0 * k))
    cmap, norm = plt.get_cmap("Blues"), Normalize(0, max(int(cm.max()), 1))
    image = ax.imshow(cm, cmap=cmap, norm=norm)
    for (r, c), v in np.ndenumerate(cm):
        red, green, blue, _ = cmap(norm(v))
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # perceived luminance
        ax.text(c, r, f"{v}\n{100 * share[r, c]:.0f}%", ha="center", va="center",
                color="white" if dark else "black", fontsize=9)
    ax.set_xticks(range(k), class_names)
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{model}: {int(cm.sum())} test windows\n(count and % of the true class)",
                 fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="test windows")
    fig.tight_layout()
    return fig


def learning_curves_figure(histories: dict[str, pd.DataFrame], best_epochs: dict[str, int],
                           loss_label: str):
    """Training and validation loss per fold, each fold's kept epoch marked.

    Parameters
    ----------
    histories : dict of str -> DataFrame
        Fold name -> its ``history.csv`` (``epoch``, ``train_loss``, ``val_loss``).
    best_epochs : dict of str -> int
        Fold name -> the epoch whose weights were kept (``fold.json``).
    loss_label : str
        What the loss is (y axis).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    has_val = any("val_loss" in h and h["val_loss"].notna().any() for h in histories.values())
    fig, axes = plt.subplots(1, 2 if has_val else 1, figsize=(9 if has_val else 5.5, 3.6),
                             squeeze=False)
    axes = list(axes[0])
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    for i, (fold, h) in enumerate(histories.items()):
        colour = colours[i % len(colours)]
        line, = axes[0].plot(h["epoch"], h["train_loss"], color=colour, alpha=0.8, label=fold)
        handles.append(line)
        kept_on = axes[-1] if has_val else axes[0]
        column = "val_loss" if has_val else "train_loss"
        if has_val and column in h:
            axes[1].plot(h["epoch"], h[column], color=colour, alpha=0.8)
        best = best_epochs.get(fold)
        at = h[h["epoch"] == best] if best is not None else h.iloc[:0]
        if len(at) and column in at and np.isfinite(at[column].iloc[0]):
            kept_on.plot(best, at[column].iloc[0], marker="*", markersize=12, color=colour,
                         markeredgecolor="k", linestyle="none")
    handles.append(Line2D([], [], marker="*", markersize=12, color="0.6", markeredgecolor="k",
                          linestyle="none", label="kept epoch"))
    axes[0].set_title("training loss per fold")
    if has_val:
        axes[1].set_title("validation loss per fold\n(held-out training subjects)")
    for a in axes:
        a.set_xlabel("epoch")
        a.set_ylabel(loss_label)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    # beside the panels, so that no curve is hidden
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               title="fold", ncol=max(1, math.ceil(len(handles) / 16)))
    return fig


def report_figures(run_dir: str | Path, pred: pd.DataFrame | None = None,
                   subjects: pd.DataFrame | None = None, key: str | None = None,
                   models: list[str] | None = None, deep: list[str] | None = None,
                   n_classes: int | None = None) -> dict[str, Any]:
    """The figures of a run's report, as matplotlib figures (not saved, not closed).

    Everything not given is read from the run folder (predictions, folds, configuration).

    Returns
    -------
    dict of str -> matplotlib.figure.Figure
        File name (``per_subject.png``, ``confusion_<model>.png``, ``learning_curves.png``)
        -> figure.
    """
    d = Path(run_dir)
    cfg = _run_config(d)
    task = cfg.task
    if pred is None:
        pred = load_predictions(d)
        pred = pred[pred["protocol"] == headline_protocol(pred)]
    if n_classes is None:
        n_classes = len([c for c in pred.columns if c.startswith("score_")]) or 0
    if subjects is None or key is None:
        names, _, subjects = _tables(pred, task, n_classes)
        key = key or names[0]
    if models is None:
        models = list(dict.fromkeys(pred["model"]))
    if deep is None:
        deep = [m for m in models if m not in ("majority", "logreg", "svm")]
    figures: dict[str, Any] = {
        "per_subject.png": per_subject_figure(subjects, key, models, task, n_classes,
                                              cfg.target)}
    if task == "classification":
        names = _class_names(d, n_classes)
        for m in deep or models[:1]:
            g = pred[pred["model"] == m]
            figures[f"confusion_{_safe(m)}.png"] = confusion_figure(
                g["y_true"].to_numpy(int), g["y_pred"].to_numpy(int), names, m)
    histories, best = {}, {}
    for h in sorted((d / "folds").glob("*/history.csv"), key=lambda p: natural_key(p.parent.name)):
        t = pd.read_csv(h)
        if t.empty:
            continue
        fold = h.parent.name
        histories[fold] = t
        fold_json = h.parent / "fold.json"
        if fold_json.exists():
            best[fold] = int(json.loads(fold_json.read_text()).get("best_epoch", 0)) or None
    if histories:
        figures["learning_curves.png"] = learning_curves_figure(histories, best, _loss_label(cfg))
    return figures


def _figures(d: Path, pred, subjects, folds, key, models, deep, task, n_classes) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fdir = d / "figures"
    fdir.mkdir(exist_ok=True)
    out = []
    figures = report_figures(d, pred=pred, subjects=subjects, key=key, models=models, deep=deep,
                             n_classes=n_classes)
    for name, fig in figures.items():
        p = fdir / name
        fig.savefig(p, dpi=100, bbox_inches="tight")  # the legends outside the axes included
        plt.close(fig)
        out.append(p)
    return out


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def compare_runs(run_dirs: list[str | Path], metric: str | None = None) -> str:
    """A Markdown table of several runs side by side (mean ± std over test subjects)."""
    rows = []
    for r in run_dirs:
        d = Path(r)
        st = run_status(d)
        if not (d / "summary.json").exists():
            rows.append((d.name, st, None, None))
            continue
        summ = json.loads((d / "summary.json").read_text())
        rows.append((d.name, st, summ, _run_config(d)))
    metric_names = None
    for _, _, s, _ in rows:
        if s:
            metric_names = list(REGRESSION_METRICS if s["task"] == "regression"
                                else CLASSIFICATION_METRICS)
            break
    if metric_names is None:
        raise TrainingError("no run has a report yet (interrupted runs: resume them first)")
    if metric:
        if metric not in metric_names:
            raise TrainingError(f"metric: expected one of {', '.join(metric_names)}")
        metric_names = [metric]
    lines = ["| run | status | dataset | protocol | target | model | "
             + " | ".join(metric_names) + " |", "|---" * (6 + len(metric_names)) + "|"]
    for name, st, s, cfg in rows:
        complete = st["status"] == "complete"
        tag = "complete" if complete else f"INCOMPLETE {len(st['done'])}/{st['n_folds']}"
        if s is None:
            lines.append(f"| {name} | {tag} | | | | | " + " | ".join("" for _ in metric_names)
                         + " |")
            continue
        for m in s["models"]:
            vals = s["over_subjects"][m]
            lines.append(f"| {name} | {tag} | {cfg.dataset} | {cfg.protocol} | "
                         f"{cfg.target} | {m} | "
                         + " | ".join(_fmt(vals[k]) if k in vals else "" for k in metric_names)
                         + " |")
    return "\n".join(lines)
