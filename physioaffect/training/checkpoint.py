"""Fold checkpoints: the network with its :class:`~physioaffect.models.CheckpointContract`.

A checkpoint is a folder written by :func:`physioaffect.models.save_checkpoint`
(``config.json`` + ``model.safetensors``, no pickle, and ``contract.json``). How a checkpoint's
network is fed (:func:`build_inputs`, :func:`fit_adaptation`, :func:`predict`) lives beside the
contract in :mod:`physioaffect.models.feeding`, which evaluation and the live decoder share;
this module adds what only training needs: the fold checkpoints of a run folder.
"""

from __future__ import annotations

from pathlib import Path

from physioaffect.models.contract import (
    CheckpointContract,
    ContractError,
    find_checkpoint_dir,
    load_checkpoint,
    read_contract,
    save_checkpoint,
)
from physioaffect.models.feeding import (
    adaptation_method,
    build_inputs,
    check_compatible,
    fit_adaptation,
    predict,
)
from physioaffect.training.config import TrainingError

__all__ = ["load_checkpoint", "save_checkpoint", "read_contract", "build_inputs", "predict",
           "fit_adaptation", "adaptation_method",
           "check_compatible", "find_checkpoints", "CheckpointContract", "ContractError"]


def find_checkpoints(path: str | Path) -> list[Path]:
    """Checkpoint folders of a run folder (one per fold, in fold order), or ``[path]``."""
    p = Path(path)
    if (p / "folds").is_dir():
        found = sorted(d / "checkpoint" for d in (p / "folds").iterdir()
                       if (d / "checkpoint" / "config.json").is_file())
        if not found:
            raise TrainingError(f"{p}: run folder has no finished fold checkpoints")
        return found
    return [find_checkpoint_dir(p)]
