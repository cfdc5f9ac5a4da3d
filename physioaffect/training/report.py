"""Run reports: metrics tables recomputed from the saved predictions, figures, Markdown.

Every number in ``report.md`` comes from ``predictions.csv`` through
:func:`physioaffect.training.metrics.metrics_of`: per fold (``metrics_folds.csv``), per test
subject (``metrics_subjects.csv``, all of a subject's test windows pooled), and summarised as
mean +- standard deviation over subjects and over folds (``summary.json``). The trivial
baseline (training-fold majority) and the classical baselines stand beside the network.
:func:`compare_runs` puts several runs side by side.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from physioaffect.training.config import TrainingError
from physioaffect.training.metrics import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    metrics_of,
)

__all__ = ["write_report", "compare_runs", "run_status", "load_predictions"]


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
    """Predictions of every finished fold, concatenated."""
    d = Path(run_dir)
    parts = [pd.read_csv(p, dtype={"subject": str, "stimulus": str})
             for p in sorted((d / "folds").glob("*/predictions.csv"))
             if (p.parent / "fold.json").exists()]
    if not parts:
        raise TrainingError(f"{d}: no finished fold has predictions")
    return pd.concat(parts, ignore_index=True)


def _natural(s: str) -> tuple:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(s)))


def _tables(pred: pd.DataFrame, task: str, n_classes: int):
    names = list(REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS)
    rows_f, rows_s = [], []
    for (fold, model), g in pred.groupby(["fold", "model"], sort=False):
        rows_f.append({"fold": fold, "model": model, "n": len(g),
                       **metrics_of(g, task, n_classes)})
    for (subj, model), g in pred.groupby(["subject", "model"], sort=False):
        rows_s.append({"subject": subj, "model": model, "n": len(g),
                       **metrics_of(g, task, n_classes)})
    folds = pd.DataFrame(rows_f)
    subjects = pd.DataFrame(rows_s)
    subjects = subjects.iloc[sorted(range(len(subjects)),
                                    key=lambda i: _natural(subjects["subject"].iloc[i]))]
    return names, folds, subjects.reset_index(drop=True)


def _summary(table: pd.DataFrame, names: list[str], models: list[str]) -> dict:
    out = {}
    for m in models:
        t = table[table["model"] == m]
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
    return sorted(out, key=lambda s: (s.get("index", 0), _natural(s.get("name", ""))))


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
    n_classes = len([c for c in pred.columns if c.startswith("score_")]) or 0
    names, folds, subjects = _tables(pred, task, n_classes)
    models = list(dict.fromkeys(pred["model"]))
    deep = [m for m in models if m not in ("majority", "logreg", "svm")]
    pred.to_csv(d / "predictions.csv", index=False)
    folds.to_csv(d / "metrics_folds.csv", index=False)
    subjects.to_csv(d / "metrics_subjects.csv", index=False)
    summary = {"status": status["status"], "folds_done": len(status["done"]),
               "n_folds": status["n_folds"], "task": task, "models": models,
               "over_subjects": _summary(subjects, names, models),
               "over_folds": _summary(folds, names, models), "labels": labels}
    (d / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    figs = _figures(d, pred, subjects, folds, names[0], models, deep, task, n_classes)
    complete = len(status["done"]) == status["n_folds"] and status["n_folds"] > 0
    lines = [f"# {cfg.dataset} · {cfg.model} · {cfg.protocol} · {cfg.target}", ""]
    if not complete:
        lines += [f"**INCOMPLETE RUN: {len(status['done'])} of {status['n_folds']} folds "
                  "finished. These numbers are not a result.**", ""]
    step = "" if cfg.windows.step_s is None else f", step {cfg.windows.step_s:g} s"
    lines += [
        f"- modalities: {', '.join(cfg.modalities)}; window {cfg.windows.window_s:g} s{step}; "
        f"epochs ≤ {cfg.optim.epochs} (early stopping on validation subjects, patience "
        f"{cfg.optim.patience}); seed {cfg.seed}",
        f"- preprocessing: {_pipeline_line(cfg.preprocessing)}",
        f"- executor: {_executor_line(cfg)}",
        *_data_warnings(d),
        f"- labels: rule `{cfg.label_rule}` ({labels.get('description', '')}) on "
        f"`{cfg.target}`; {labels.get('n_kept', '?')} of {labels.get('n_windows', '?')} windows "
        f"kept, dropped {labels.get('dropped_nan', 0)} NaN and {labels.get('dropped_by_rule', 0)} "
        f"by rule; class counts {labels.get('class_counts', labels.get('mean', ''))}",
        f"- {status['n_folds']} folds; test subjects contribute nothing to training, "
        "normalisation or early stopping; validation = held-out training subjects; models "
        "re-initialised per fold; baselines fitted on the same training windows",
        "- `majority` = training-fold majority class (trivial; regression: training mean); "
        "`logreg`/`svm` (regression: ridge / linear SVR) = "
        f"differential entropy ({cfg.de_bands}) features"
        f"{' + peripheral features' if 'peripheral' in cfg.modalities else ''}",
        "", "## Mean ± std over test subjects", "",
        "| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for m in models:
        lines.append(f"| {m} | " + " | ".join(_fmt(summary['over_subjects'][m][k])
                                             for k in names) + " |")
    lines += ["", "## Mean ± std over folds", "",
              "| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for m in models:
        lines.append(f"| {m} | " + " | ".join(_fmt(summary['over_folds'][m][k])
                                             for k in names) + " |")
    key = names[0]
    lines += ["", f"## Per subject ({key})", "", "| subject | n | " + " | ".join(models) + " |",
              "|---" * (len(models) + 2) + "|"]
    for subj, g in subjects.groupby("subject", sort=False):
        vals = {r["model"]: r[key] for _, r in g.iterrows()}
        lines.append(f"| {subj} | {int(g['n'].iloc[0])} | "
                     + " | ".join(f"{vals.get(m, float('nan')):.3f}" for m in models) + " |")
    lines += _training_lines(d)
    lines += _search_lines(d)
    lines += _retry_lines(d)
    lines += ["", "## Figures", ""] + [f"![{p.stem}](figures/{p.name})" for p in figs]
    lines += ["", "Files: `predictions.csv` (every test window), `metrics_folds.csv`, "
              "`metrics_subjects.csv`, `summary.json`, `config.yaml` (rerun with "
              "`physioaffect train --config config.yaml`), `folds/*/checkpoint` (load with "
              "`physioaffect.training.load_checkpoint`)."]
    path = d / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _figures(d: Path, pred, subjects, folds, key, models, deep, task, n_classes) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fdir = d / "figures"
    fdir.mkdir(exist_ok=True)
    out = []
    # Per-subject bars: every model, the trivial baseline drawn as well.
    subs = list(dict.fromkeys(subjects["subject"]))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(subs) * len(models) / 2), 3.5))
    width = 0.8 / max(len(models), 1)
    for i, m in enumerate(models):
        t = subjects[subjects["model"] == m].set_index("subject").reindex(subs)
        ax.bar(np.arange(len(subs)) + i * width, t[key], width, label=m)
    ax.set_xticks(np.arange(len(subs)) + 0.4 - width / 2, subs, rotation=90)
    ax.set_ylabel(key)
    ax.set_xlabel("test subject")
    ax.legend(fontsize=7, ncol=len(models))
    ax.set_title(f"per-subject {key} (majority = trivial baseline)")
    fig.tight_layout()
    p = fdir / "per_subject.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    out.append(p)
    if task == "classification":
        from sklearn.metrics import confusion_matrix

        for m in deep or models[:1]:
            g = pred[pred["model"] == m]
            cm = confusion_matrix(g["y_true"], g["y_pred"], labels=list(range(n_classes)))
            fig, ax = plt.subplots(figsize=(3.5, 3.2))
            ax.imshow(cm, cmap="Blues")
            for (r, c), v in np.ndenumerate(cm):
                ax.text(c, r, str(v), ha="center", va="center")
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.set_title(f"{m}: all test windows")
            fig.tight_layout()
            p = fdir / f"confusion_{_safe(m)}.png"
            fig.savefig(p, dpi=100)
            plt.close(fig)
            out.append(p)
    hist = sorted((d / "folds").glob("*/history.csv"))
    if hist:
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
        for h in hist:
            t = pd.read_csv(h)
            if t.empty:
                continue
            axes[0].plot(t["epoch"], t["train_loss"], alpha=0.6)
            if "val_loss" in t:
                axes[1].plot(t["epoch"], t["val_loss"], alpha=0.6)
        axes[0].set_title("training loss per fold")
        axes[1].set_title("validation loss per fold")
        for a in axes:
            a.set_xlabel("epoch")
        fig.tight_layout()
        p = fdir / "learning_curves.png"
        fig.savefig(p, dpi=100)
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
