"""The run folder: everything a training run writes, written by the driver only.

::

    RUN/
      config.json, config.yaml, config.toml   resolved TrainConfig (rerun with --config)
      status.json                             "running" until every fold is done, then "complete"
      labels.json, quality.json, folds.json, data.json
      folds/<fold>/train_state*.pt            epoch checkpoints (deleted when the fold finishes)
      folds/<fold>/checkpoint/                network + contract (load_checkpoint)
      folds/<fold>/predictions.csv            test predictions of the network and the
                                              baselines under every protocol
      folds/<fold>/history.csv                learning curve
      folds/<fold>/search.csv                 trials of the nested model search (``search``)
      folds/<fold>/search_trials.json         finished trials of an unfinished fold
      folds/<fold>/fold.json                  written last: the fold is finished
      predictions.csv, metrics_*.csv, summary.json, report.md, figures/*.png

Every file is written under a temporary name and renamed, so a reader (or a resumed run) never
sees half of one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from physioaffect.training.config import TrainingError
from physioaffect.training.fold import FoldResult

__all__ = ["write_json", "write_bytes", "write_fold", "stored_trials", "store_trial",
           "TRIALS_NAME", "trial_table"]


def write_json(path: Path, obj: Any) -> None:
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
        write_bytes(ckpt / name, blob)
    result.predictions.to_csv(fold_dir / "predictions.csv", index=False)
    pd.DataFrame(result.history).to_csv(fold_dir / "history.csv", index=False)
    if result.trials:
        pd.DataFrame(trial_table(result.trials)).to_csv(fold_dir / "search.csv", index=False)
    write_json(done, result.summary)
    for path in [*fold_dir.glob("train_state*.pt"), fold_dir / TRIALS_NAME]:
        if path.exists():  # the fold's unfinished state, now done
            path.unlink()
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
    write_json(Path(fold_dir) / TRIALS_NAME, sorted(known.values(),
                                               key=lambda t: (t["setting"], t["inner"])))


def trial_table(trials: list[dict]) -> list[dict]:
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


def write_bytes(path: Path, blob: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)
