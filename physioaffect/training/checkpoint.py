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


def build_inputs(contract: CheckpointContract, eeg: np.ndarray | None,
                 peripheral: np.ndarray | None = None,
                 face: np.ndarray | None = None) -> dict[str, np.ndarray]:
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

    Returns
    -------
    dict
        ``{"eeg": ..., "peripheral": ..., "face": ..., "face_present": ...}`` normalised
        float32 arrays (only the modalities the checkpoint uses); pass to :func:`predict`.
    """
    from physioaffect.models.inputs import input_kind
    from physioaffect.training.data import face_present

    out: dict[str, np.ndarray] = {}
    norms = contract.normalisation
    if "eeg" in contract.modalities:
        if eeg is None:
            raise TrainingError("build_inputs: this checkpoint needs EEG windows")
        x = np.asarray(eeg, dtype=np.float32)
        want = (len(contract.channels), contract.n_times)
        if x.ndim != 3 or x.shape[1:] != want:
            raise TrainingError(f"build_inputs: EEG must be (n, {want[0]}, {want[1]}), got "
                                f"{x.shape}")
        if contract.window_norm == "zscore":
            x = (x - x.mean(axis=2, keepdims=True)) / (x.std(axis=2, keepdims=True) + 1e-6)
        kind = input_kind(contract.input_kind or "raw")
        built = kind.build(x, contract.model_sfreq, contract.input_params)
        out["eeg"] = norms["eeg"].transform(built)
    if "peripheral" in contract.modalities:
        if peripheral is None:
            raise TrainingError("build_inputs: this checkpoint needs peripheral features")
        p = np.asarray(peripheral, dtype=np.float32)
        if p.ndim != 2 or p.shape[1] != len(contract.peripheral_features):
            raise TrainingError(f"build_inputs: peripheral features must be (n, "
                                f"{len(contract.peripheral_features)}), got {p.shape}")
        out["peripheral"] = norms["peripheral"].transform(p)
        if contract.model == "fusion":  # no usable peripheral feature: branch masked
            out["peripheral_present"] = np.isfinite(p).any(axis=1).astype(np.float32)
    if "face" in contract.modalities:
        names = contract.face_features
        if face is None:
            if len(out) == 0:
                raise TrainingError("build_inputs: this face-only checkpoint needs face features")
            n = len(next(iter(out.values())))
            face = np.full((n, len(names)), np.nan, np.float32)
        f = np.asarray(face, dtype=np.float32)
        if f.ndim != 2 or f.shape[1] != len(names):
            raise TrainingError(f"build_inputs: face features must be (n, {len(names)}) in the "
                                f"checkpoint's order, got {f.shape}")
        out["face"] = norms["face"].transform(f)
        out["face_present"] = face_present(f).astype(np.float32)
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
