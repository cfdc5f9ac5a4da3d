"""Training and evaluation across subjects: ``physioaffect train``, ``evaluate``, ``report``.

See ``docs/training.md``. The pieces:

* :class:`TrainConfig` (resolved, saved as YAML/TOML/JSON beside every run);
* :func:`train`: every fold of a protocol, serial or as Ray tasks, resumable, into a run folder;
* :func:`load_checkpoint`, :func:`build_inputs`, :func:`predict`: a fold's network with its
  preprocessing pipeline and normalisation (what the live decoder loads);
* :func:`evaluate`: re-score a run or checkpoint on other data (cross-dataset transfer);
* :func:`write_report`, :func:`compare_runs`: Markdown reports and side-by-side tables;
* :class:`DeepEEGClassifier`: a registered network as a scikit-learn classifier of EEG windows
  (``clone``, ``GridSearchCV`` with a subject splitter), trained by the same engine.
"""

from physioaffect.training.checkpoint import (
    build_inputs,
    fit_adaptation,
    load_checkpoint,
    predict,
)
from physioaffect.training.config import TrainConfig, TrainingError, load_config
from physioaffect.training.estimator import DeepEEGClassifier
from physioaffect.training.evaluate import evaluate
from physioaffect.training.report import compare_runs, write_report
from physioaffect.training.runner import train

__all__ = ["TrainConfig", "TrainingError", "load_config", "train", "evaluate",
           "load_checkpoint", "build_inputs", "fit_adaptation", "predict", "write_report", "compare_runs",
           "DeepEEGClassifier"]
