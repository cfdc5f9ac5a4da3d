"""Fold checkpoints: the network with its :class:`~physioaffect.models.CheckpointContract`.

A checkpoint is a folder written by :func:`physioaffect.models.save_checkpoint`
(``config.json`` + ``model.safetensors``, no pickle, and ``contract.json``). :func:`build_inputs`
turns preprocessed EEG windows (and peripheral and face features) into exactly the tensors the
network saw in training, asking the model's input kind how to build them; :func:`predict` runs the
network on them. Evaluation and the live decoder use the same two functions, so offline and live
transforms cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from physioaffect.models.contract import (
    CheckpointContract,
    ContractError,
    find_checkpoint_dir,
    load_checkpoint,
    read_contract,
    save_checkpoint,
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


def check_compatible(contract: CheckpointContract, ch_names: list[str], sfreq: float,
                     where: str) -> list[int]:
    """Channel indices of the checkpoint's channels in ``ch_names``; raise if incompatible.

    The data must have every channel of the checkpoint (any order, case-insensitive) and be
    recorded at the rate the checkpoint's pipeline takes.
    """
    if abs(float(sfreq) - contract.sfreq) > 1e-6:
        raise TrainingError(f"{where}: checkpoint expects EEG at {contract.sfreq:g} Hz, the data "
                            f"is at {sfreq:g} Hz (incompatible pipeline)")
    low = {c.lower(): i for i, c in enumerate(ch_names)}
    missing = [c for c in contract.channels if c.lower() not in low]
    if missing:
        raise TrainingError(f"{where}: checkpoint needs channel(s) {', '.join(missing)} that the "
                            f"data lacks (incompatible pipeline; train with --config channels: "
                            "[common channels])")
    return [low[c.lower()] for c in contract.channels]


def _model_arrays(contract: CheckpointContract, eeg: np.ndarray | None,
                  peripheral: np.ndarray | None, face: np.ndarray | None,
                  where: str) -> dict[str, np.ndarray]:
    """Checked model inputs before adaptation and normalisation (shared by
    :func:`build_inputs` and :func:`fit_adaptation`)."""
    from physioaffect.models.inputs import input_kind

    out: dict[str, np.ndarray] = {}
    if "eeg" in contract.modalities:
        if eeg is None:
            raise TrainingError(f"{where}: this checkpoint needs EEG windows")
        x = np.asarray(eeg, dtype=np.float32)
        want = (len(contract.channels), contract.n_times)
        if x.ndim != 3 or x.shape[1:] != want:
            raise TrainingError(f"{where}: EEG must be (n, {want[0]}, {want[1]}), got "
                                f"{x.shape}")
        if contract.window_norm == "zscore":
            x = (x - x.mean(axis=2, keepdims=True)) / (x.std(axis=2, keepdims=True) + 1e-6)
        kind = input_kind(contract.input_kind or "raw")
        out["eeg"] = kind.build(x, contract.model_sfreq, contract.input_params)
    if "peripheral" in contract.modalities:
        if peripheral is None:
            raise TrainingError(f"{where}: this checkpoint needs peripheral features")
        p = np.asarray(peripheral, dtype=np.float32)
        if p.ndim != 2 or p.shape[1] != len(contract.peripheral_features):
            raise TrainingError(f"{where}: peripheral features must be (n, "
                                f"{len(contract.peripheral_features)}), got {p.shape}")
        out["peripheral"] = p
    if "face" in contract.modalities:
        names = contract.face_features
        if face is None:
            if len(out) == 0:
                raise TrainingError(f"{where}: this face-only checkpoint needs face features")
            n = len(next(iter(out.values())))
            face = np.full((n, len(names)), np.nan, np.float32)
        f = np.asarray(face, dtype=np.float32)
        if f.ndim != 2 or f.shape[1] != len(names):
            raise TrainingError(f"{where}: face features must be (n, {len(names)}) in the "
                                f"checkpoint's order, got {f.shape}")
        out["face"] = f
    return out


def adaptation_method(contract: CheckpointContract) -> str:
    """The per-subject adaptation a checkpoint was trained with (``"none"`` if it was not)."""
    return str((contract.subject_adaptation or {}).get("method", "none"))


def fit_adaptation(contract: CheckpointContract, eeg: np.ndarray | None,
                   peripheral: np.ndarray | None = None, face: np.ndarray | None = None):
    """Fit the checkpoint's per-subject adaptation on windows of ONE new subject.

    The windows are unlabelled: a calibration period of a live session, or all windows of a
    subject being evaluated (transductive, as in training). Same arguments as
    :func:`build_inputs`; pass the result to it as ``adaptation``.

    Returns
    -------
    SubjectAdaptation or None
        None for a checkpoint trained without adaptation.
    """
    from physioaffect.preprocessing.alignment import AdaptationError, SubjectAdaptation

    method = adaptation_method(contract)
    if method == "none":
        return None
    arrays = _model_arrays(contract, eeg, peripheral, face, "fit_adaptation")
    kind = "graphs" if (contract.input_kind or "raw") != "raw" else "raw"
    try:
        return SubjectAdaptation(method, kind).fit(arrays)
    except AdaptationError as err:
        raise TrainingError(f"fit_adaptation: {err}") from None


def build_inputs(contract: CheckpointContract, eeg: np.ndarray | None,
                 peripheral: np.ndarray | None = None,
                 face: np.ndarray | None = None, adaptation: Any = None) -> dict[str, np.ndarray]:
    """Network inputs from preprocessed windows, exactly as in training.

    Parameters
    ----------
    contract : CheckpointContract
    eeg : ndarray, shape (n, C, T) or None
        EEG windows in microvolts after the checkpoint's pipeline, channels in
        ``contract.channels`` order, ``T = contract.n_times`` (at ``contract.model_sfreq``).
    peripheral : ndarray, shape (n, F_p) or None
        Peripheral features in ``contract.peripheral_features`` order (NaN allowed).
    face : ndarray, shape (n, F_f) or None
        Face window features in ``contract.face_features`` order
        (:func:`physioaffect.features.face.face_window_values`); all-NaN rows, or None with
        other modalities present, mean "no face": the face branch is masked.
    adaptation : SubjectAdaptation or None
        The subject's fitted adaptation (:func:`fit_adaptation`), required when the
        checkpoint was trained with one (``contract.subject_adaptation``): all windows given
        here are from that subject.

    Returns
    -------
    dict
        ``{"eeg": ..., "peripheral": ..., "face": ..., "face_present": ...}`` normalised
        float32 arrays (only the modalities the checkpoint uses); pass to :func:`predict`.
    """
    from physioaffect.training.data import face_present

    arrays = _model_arrays(contract, eeg, peripheral, face, "build_inputs")
    method = adaptation_method(contract)
    if method != "none":
        if adaptation is None or not getattr(adaptation, "fitted", False):
            raise TrainingError(
                f"build_inputs: this checkpoint was trained with per-subject adaptation "
                f"{method!r}; fit it on the subject's own unlabelled windows first "
                "(fit_adaptation) and pass it as adaptation=")
        arrays = adaptation.transform(arrays)
    norms = contract.normalisation
    out: dict[str, np.ndarray] = {}
    for name, x in arrays.items():
        out[name] = norms[name].transform(x)
    if "peripheral" in out and contract.model == "fusion":  # no usable feature: branch masked
        out["peripheral_present"] = np.isfinite(arrays["peripheral"]).any(axis=1) \
            .astype(np.float32)
    if "face" in out:
        out["face_present"] = face_present(arrays["face"]).astype(np.float32)
    return out


def predict(model, contract: CheckpointContract, inputs: dict[str, np.ndarray],
            batch_size: int = 256, device: str | None = None) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` or regression values ``(n,)`` (rating scale)."""
    import torch

    from physioaffect.training.engine import forward

    dev = torch.device(device) if device else next(model.parameters()).device
    if model.training:  # eval() walks every module: ~2 ms, too much for a live window
        model.eval()
    n = len(next(iter(inputs.values())))
    kind = "fusion" if contract.model == "fusion" else "single"
    outs = []
    with torch.inference_mode():
        for i in range(0, n, batch_size):
            batch = {k: torch.as_tensor(v[i:i + batch_size], device=dev)
                     for k, v in inputs.items()}
            outs.append(forward(model, kind, batch).float().cpu())
    y = torch.cat(outs) if outs else torch.zeros(0, max(contract.n_outputs, 1))
    if contract.task == "regression":
        mean, std = contract.target_scaling or (0.0, 1.0)
        return y.reshape(len(y), -1)[:, 0].numpy() * std + mean
    return torch.softmax(y, dim=1).numpy()
