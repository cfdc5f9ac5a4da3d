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
import time
from pathlib import Path
from typing import Any

import numpy as np

from physioaffect.log import logger, verbose
from physioaffect.training.config import PROTOCOL_ALIASES, TrainConfig, TrainingError
from physioaffect.training.data import PreparedData, low_quality_windows, prepare_data
from physioaffect.training.fold import FoldResult, class_names, compute_fold, deep_label
from physioaffect.training.progress import (
    choice_line,
    epoch_line,
    fold_line,
    headline_metrics,
    trial_line,
)
from physioaffect.training.rundir import (
    store_trial,
    stored_trials,
    write_fold,
    write_json,
)

__all__ = ["train", "run_fold", "compute_fold", "write_fold", "FoldResult", "deep_label",
           "class_names", "plan_folds"]

#: Config sections that may differ between a run and its resumption.
_RESUME_FREE = ("executor",)


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
    write_json(run_dir / "status.json", {"status": "running", "started": time.time()})
    write_json(run_dir / "labels.json", label_report)
    write_json(run_dir / "quality.json", quality_report(cfg, data))
    write_json(run_dir / "folds.json", [{k: f[k] for k in ("name", "train_subjects", "val_subjects",
                                                      "test_subjects")}
                                   | {"n_train": int(f["train"].size), "n_val": int(f["val"].size),
                                      "n_test": int(f["test"].size)} for f in folds])
    write_json(run_dir / "data.json", {"n_windows": len(data.meta), "channels": data.ch_names,
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
    write_json(run_dir / "status.json", {"status": "complete", "folds": len(summaries),
                                    "seconds": time.perf_counter() - t0,
                                    "finished": time.time()})
    return run_dir


def _say(console: Any, msg: str) -> None:
    """A progress message: on the CLI's console, else through the package logger."""
    if console is not None:
        console.print(msg)
    else:
        logger.info(msg)


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
                    say(epoch_line(name, row, budget))

            s = one(f, on_epoch, lambda t: say(trial_line(t)))
            if s.get("search"):
                say(choice_line(s))
            say(fold_line(cfg, s))
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

            s = one(f, on_epoch, lambda t: bar.console.print(trial_line(t)))
            if s.get("search"):
                bar.console.print(choice_line(s))
            # the bar ends at the epochs actually run, and says why
            bar.update(t_ep, total=s["epochs_run"], completed=s["epochs_run"],
                       info=f"kept epoch {s['best_epoch']}; {s.get('stopped', '')}")
            m = headline_metrics(s).get(deep_label(cfg), {})
            key = "accuracy" if "accuracy" in m else "ccc"
            bar.update(t_folds, advance=1,
                       info=f"last {f['name']}: {key} {m.get(key, float('nan')):.3f}")
            out.append(s)
    return out
