"""Fold checkpoints: the network, the preprocessing pipeline and everything to rebuild the input.

A checkpoint is a folder written by :func:`physioaffect.models.save_model` (``config.json`` +
``model.safetensors``, no pickle); the training metadata sits in ``config.json`` under
``"extra"`` (see :func:`load_checkpoint` for the fields). :func:`build_inputs` turns
preprocessed EEG windows (and peripheral features) into exactly the tensors the network saw in
training, and :func:`predict` runs the network on them: the live decoder uses the same two
functions, so offline and live transforms cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from physioaffect.training.config import TrainingError

__all__ = ["load_checkpoint", "save_checkpoint", "build_inputs", "predict", "check_compatible",
           "CHECKPOINT_FORMAT", "find_checkpoints"]

CHECKPOINT_FORMAT = "physioaffect-training-checkpoint/1"


def save_checkpoint(model, directory: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``model`` and ``meta`` (JSON-serialisable; see :func:`load_checkpoint`)."""
    from physioaffect.models.io import save_model

    meta = {"format": CHECKPOINT_FORMAT, **meta}
    return save_model(model, directory, extra=meta)


def _resolve_dir(path: str | Path) -> Path:
    p = Path(path)
    for cand in (p, p / "checkpoint"):
        if (cand / "config.json").is_file():
            return cand
    raise TrainingError(f"{p}: no checkpoint here (expected config.json and model.safetensors, "
                        "or a fold folder with checkpoint/)")


def find_checkpoints(path: str | Path) -> list[Path]:
    """Checkpoint folders of a run folder (one per fold, in fold order), or ``[path]``."""
    p = Path(path)
    if (p / "folds").is_dir():
        found = sorted(d / "checkpoint" for d in (p / "folds").iterdir()
                       if (d / "checkpoint" / "config.json").is_file())
        if not found:
            raise TrainingError(f"{p}: run folder has no finished fold checkpoints")
        return found
    return [_resolve_dir(p)]


def load_checkpoint(path: str | Path, map_location: str = "cpu"):
    """Load a fold checkpoint for evaluation or live decoding.

    Parameters
    ----------
    path : str or Path
        A checkpoint folder (``<run>/folds/<fold>/checkpoint``) or its fold folder.
    map_location : str
        Device for the network (``"cpu"``, ``"cuda"``).

    Returns
    -------
    model : torch.nn.Module
        The network in eval mode (a :mod:`physioaffect.models` class).
    pipeline_config : physioaffect.preprocessing.PipelineConfig
        The EEG preprocessing applied to each trial before windowing (``phase="causal"`` by
        default, the same filter :class:`~physioaffect.preprocessing.pipeline.StreamingPipeline`
        runs live).
    meta : dict
        ``channels`` (EEG channel names, in input order), ``sfreq`` (Hz), ``n_times`` (samples
        per window), ``window_s``, ``step_s``, ``target``, ``label_rule``, ``task``
        (``classification``/``regression``), ``class_names``, ``n_classes``, ``modalities``
        (``["eeg"]``, ``["eeg", "peripheral"]`` ...), ``input`` (``raw``: ``(B, C, T)``;
        ``graphs``: EmT ``(B, S, C, F)``), ``graph`` (``sub_window_s``, ``sub_overlap``,
        ``bands``: how graphs are computed from a raw window), ``peripheral`` (``signals``,
        ``feature_names``), ``normalisation`` (per input: ``keep`` axes, ``mean``, ``scale``;
        fitted on the fold's training subjects only), ``target_scaling`` (regression: mean and
        std of the training targets), ``pipeline`` (the pipeline config as a dict) and
        ``pipeline_hash``, ``dataset``, ``fold``, ``train_subjects``, ``val_subjects``,
        ``test_subjects``, ``seed``, ``best_epoch``, ``model_name``.

    Raises
    ------
    TrainingError
        Missing or unreadable files, or a folder that is not a training checkpoint.
    """
    from physioaffect.models.io import ModelFileError, load_model, read_config
    from physioaffect.preprocessing.pipeline import PipelineConfig

    d = _resolve_dir(path)
    try:
        cfg = read_config(d)
        model = load_model(d, map_location=map_location)
    except ModelFileError as err:
        raise TrainingError(str(err)) from None
    meta = cfg.get("extra", {})
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{d / 'config.json'}: field 'extra.format' is "
                            f"{meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r} "
                            "(a model saved outside training?)")
    try:
        pipeline = PipelineConfig.from_dict(meta["pipeline"])
    except Exception as err:  # noqa: BLE001
        raise TrainingError(f"{d / 'config.json'}: field 'extra.pipeline' is invalid ({err})") \
            from None
    return model, pipeline, meta


def check_compatible(meta: dict, ch_names: list[str], sfreq: float, pipeline_hash: str | None,
                     where: str) -> list[int]:
    """Channel indices of the checkpoint's channels in ``ch_names``; raise if incompatible.

    The data must have every channel of the checkpoint (any order, case-insensitive), the same
    sampling rate and, if given, the same preprocessing pipeline hash.
    """
    if abs(float(sfreq) - float(meta["sfreq"])) > 1e-6:
        raise TrainingError(f"{where}: checkpoint expects EEG at {meta['sfreq']:g} Hz, the data "
                            f"is at {sfreq:g} Hz (incompatible pipeline)")
    low = {c.lower(): i for i, c in enumerate(ch_names)}
    missing = [c for c in meta["channels"] if c.lower() not in low]
    if missing:
        raise TrainingError(f"{where}: checkpoint needs channel(s) {', '.join(missing)} that the "
                            f"data lacks (incompatible pipeline; train with --config channels: "
                            "[common channels])")
    if pipeline_hash is not None and pipeline_hash != meta.get("pipeline_hash"):
        raise TrainingError(f"{where}: data preprocessed with pipeline {pipeline_hash}, checkpoint "
                            f"trained with {meta.get('pipeline_hash')} (incompatible pipeline)")
    return [low[c.lower()] for c in meta["channels"]]


def build_inputs(meta: dict, eeg: np.ndarray | None,
                 peripheral: np.ndarray | None = None,
                 face: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Network inputs from preprocessed windows, exactly as in training.

    Parameters
    ----------
    meta : dict
        From :func:`load_checkpoint`.
    eeg : ndarray, shape (n, C, T) or None
        EEG windows in microvolts, channels in ``meta["channels"]`` order, ``T = meta["n_times"]``,
        already filtered with the checkpoint's pipeline.
    peripheral : ndarray, shape (n, F_p) or None
        Peripheral features in ``meta["peripheral"]["feature_names"]`` order (NaN allowed).
    face : ndarray, shape (n, F_f) or None
        Face window features in ``meta["face"]["feature_names"]`` order
        (:func:`physioaffect.features.face.face_window_table`); all-NaN rows, or None with
        other modalities present, mean "no face": the face branch is masked.

    Returns
    -------
    dict
        ``{"eeg": ..., "peripheral": ..., "face": ..., "face_present": ...}`` normalised
        float32 arrays (only the modalities the checkpoint uses); pass to :func:`predict`.
    """
    from physioaffect.training.data import AxisNormaliser, face_present, graph_features

    out: dict[str, np.ndarray] = {}
    norms = meta["normalisation"]
    if "eeg" in meta["modalities"]:
        if eeg is None:
            raise TrainingError("build_inputs: this checkpoint needs EEG windows")
        eeg = np.asarray(eeg, dtype=np.float32)
        want = (len(meta["channels"]), int(meta["n_times"]))
        if eeg.ndim != 3 or eeg.shape[1:] != want:
            raise TrainingError(f"build_inputs: EEG must be (n, {want[0]}, {want[1]}), got "
                                f"{eeg.shape}")
        if meta["input"] == "graphs":
            g = meta["graph"]
            x = graph_features(eeg, float(meta["sfreq"]), g["sub_window_s"], g["sub_overlap"],
                               g["bands"])
        else:
            x = eeg
        out["eeg"] = AxisNormaliser.from_dict(norms["eeg"]).transform(x)
    if "peripheral" in meta["modalities"]:
        if peripheral is None:
            raise TrainingError("build_inputs: this checkpoint needs peripheral features")
        p = np.asarray(peripheral, dtype=np.float32)
        out["peripheral"] = AxisNormaliser.from_dict(norms["peripheral"]).transform(p)
    if "face" in meta["modalities"]:
        names = meta["face"]["feature_names"]
        if face is None:
            if len(out) == 0:
                raise TrainingError("build_inputs: this face-only checkpoint needs face features")
            n = len(next(iter(out.values())))
            face = np.full((n, len(names)), np.nan, np.float32)
        f = np.asarray(face, dtype=np.float32)
        if f.ndim != 2 or f.shape[1] != len(names):
            raise TrainingError(f"build_inputs: face features must be (n, {len(names)}) in the "
                                f"checkpoint's order, got {f.shape}")
        out["face"] = AxisNormaliser.from_dict(norms["face"]).transform(f)
        out["face_present"] = face_present(f).astype(np.float32)
    return out


def predict(model, meta: dict, inputs: dict[str, np.ndarray], batch_size: int = 256,
            device: str | None = None) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` or regression values ``(n,)`` (rating scale)."""
    import torch

    from physioaffect.training.engine import forward

    dev = torch.device(device) if device else next(model.parameters()).device
    model.eval()
    n = len(next(iter(inputs.values())))
    outs = []
    with torch.no_grad():
        for i in range(0, n, batch_size):
            batch = {k: torch.as_tensor(v[i:i + batch_size], device=dev)
                     for k, v in inputs.items()}
            outs.append(forward(model, meta_kind(meta), batch).float().cpu())
    y = torch.cat(outs) if outs else torch.zeros(0, int(meta.get("n_classes") or 1))
    if meta["task"] == "regression":
        ts = meta["target_scaling"]
        return y.reshape(len(y), -1)[:, 0].numpy() * ts["std"] + ts["mean"]
    return torch.softmax(y, dim=1).numpy()


def meta_kind(meta: dict) -> str:
    """``fusion`` when the network takes named modalities, else ``single``."""
    return "fusion" if meta.get("fusion") else "single"


def read_meta(path: str | Path) -> dict:
    """The training metadata of a checkpoint without loading the weights."""
    d = _resolve_dir(path)
    return json.loads((d / "config.json").read_text()).get("extra", {})
